//! `mllp listen`: receive messages, store each in a file, then acknowledge it.

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mllp::charset::Malformed;
use mllp::hl7::AckMode;
use mllp::{
    DedupStore, Handler, Listener, ListenerStats, Message, Response, ShutdownHandle, Store,
    StoreHandler,
};

use super::addr::{self, Use};
use super::args::{Args, Command, Group, Opt, Spec, UsageError};
use super::metrics::{self, MetricsOptions, MONITORING};
use super::network::{Access, KeepaliveChoice, ACCESS, KEEPALIVE};
use super::options::{Common, Failure, ENCODING, FRAMING, OUTPUT};
use super::secret::Secret;
use super::store_policy::{StorePolicy, STORE_POLICY};
use super::{logger, serve_tls, signal, stores};

/// The address listened on when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:2575";
/// The store directory when `--store` is not given.
pub const DEFAULT_STORE: &str = "./inbox";

/// `mllp listen`.
pub static COMMAND: Command = Command {
    name: "listen",
    usage: "[ADDR] [OPTIONS]",
    summary: "receive messages, store each (file, RabbitMQ, MongoDB), then acknowledge it",
    about: "\
Receives HL7 messages on ADDR (default 127.0.0.1:2575; port 0 picks a free port) and stores
each one, as UTF-8, in a file of its own, a RabbitMQ queue or a MongoDB collection before
acknowledging it: AA once it is safely kept, else see --store-wait.

Prints `listening on ADDR` first, then one line per message (file or queue, MSH-10, MSH-9,
peer), and a summary when stopped (Ctrl-C, SIGTERM).",
    tables: &[
        &STORE,
        &STORE_POLICY,
        &RECEIVING,
        &MONITORING,
        &serve_tls::SERVING_TLS,
        &ACCESS,
        &KEEPALIVE,
        &ENCODING,
        &FRAMING,
        &OUTPUT,
    ],
    footer: "\
Exit status: 0 when stopped (or --count reached), 1 when stopped before --count was reached,
2 for usage errors and startup failures.",
    run,
    check: |args| parse(args).map(drop),
};

/// `--store` (or `--store-file`, or `MLLP_STORE`) and what it needs.
#[derive(Debug, Default)]
struct StoreChoice {
    /// A directory or a URL; see [`stores::open`].
    store: Secret,
    options: stores::StoreOptions,
}

/// The environment variable that names the store when neither `--store` nor `--store-file`
/// does.
pub const STORE_ENV: &str = "MLLP_STORE";

const STORE: Group<StoreChoice> = Group {
    title: "Store",
    opts: &[
        Opt {
            spec: Spec {
                long: "store",
                short: None,
                value: Some("DIR|URL"),
                help: "where messages go (default ./inbox): a directory, file:///DIR,\n\
                       amqp[s]://USER:PASS@H1:P1[,H2:P2...]/VHOST?queue=Q[&queue_type=quorum]\n\
                       (or ?exchange=E&routing_key=K): RabbitMQ, AA after its confirm, or\n\
                       mongodb://HOST:PORT/DB?collection=NAME[&dedup=true]: a document each;\n\
                       a URL with a password is better kept off the command line: see\n\
                       --store-file, or set MLLP_STORE",
            },
            set: |c, v| {
                c.store.given = Some(v.text());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "store-file",
                short: None,
                value: Some("PATH"),
                help: "read --store from the first line of PATH (a file only this service can\n\
                       read, such as a systemd credential), so no password shows in `ps`",
            },
            set: |c, v| {
                c.store.file = Some(v.path());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "tls-ca",
                short: None,
                value: Some("PEM"),
                help: "CA certificates to trust for an amqps:// store",
            },
            set: |c, v| {
                c.options.tls_ca = Some(v.path());
                Ok(())
            },
        },
    ],
};

/// The settings of `mllp listen`.
#[derive(Debug)]
struct Config {
    common: Common,
    addr: String,
    /// A directory or a URL (see [`stores::open`]), from `--store`, `--store-file` or
    /// [`STORE_ENV`].
    store: Secret,
    listen: ListenOptions,
    store_options: stores::StoreOptions,
    store_policy: StorePolicy,
}

/// The options of the receiving side, shared by `mllp listen` and `mllp relay`.
#[derive(Debug)]
pub struct ListenOptions {
    msh18: bool,
    malformed: Malformed,
    ack_mode: AckMode,
    count: Option<u64>,
    max_connections: Option<usize>,
    single: bool,
    /// `None`: the library's default; `Some(None)`: eviction off.
    evict_after: Option<Option<Duration>>,
    frame_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
    /// `--tls-cert` and its companions; see [`serve_tls::SERVING_TLS`].
    pub(crate) tls: serve_tls::TlsOptions,
    /// `--dedup N`: how many keys to remember.
    dedup: Option<usize>,
    /// `--dedup-index PATH`.
    dedup_index: Option<PathBuf>,
    /// `--health-addr`: where to answer health checks; see [`health`](super::health).
    health_addr: Option<String>,
    /// `--metrics-addr`; see [`metrics`].
    pub metrics: MetricsOptions,
    /// `--keepalive` (in a relay, for both sides).
    pub keepalive: KeepaliveChoice,
    /// `--allow` and `--proxy-protocol-from`.
    pub access: Access,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            msh18: true,
            malformed: Malformed::Reject,
            // The library's default, so that a Rust program, a C program and the CLI answer
            // the same message alike.
            ack_mode: mllp::ListenerConfig::default().ack_mode,
            count: None,
            max_connections: None,
            single: false,
            evict_after: None,
            frame_timeout: None,
            idle_timeout: None,
            tls: serve_tls::TlsOptions::default(),
            dedup: None,
            dedup_index: None,
            health_addr: None,
            metrics: MetricsOptions::default(),
            keepalive: KeepaliveChoice::default(),
            access: Access::default(),
        }
    }
}

/// The options of the receiving side, shared by `mllp listen` and `mllp relay`.
pub const RECEIVING: Group<ListenOptions> = Group {
    title: "Receiving",
    opts: &[
        Opt {
            spec: Spec {
                long: "count",
                short: None,
                value: Some("N"),
                help: "exit 0 once N messages have been stored and acknowledged",
            },
            set: |l, v| {
                l.count = Some(v.count()?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "max-connections",
                short: None,
                value: Some("N"),
                help: "connections served at once (default 10)",
            },
            set: |l, v| {
                l.max_connections = Some(v.count()?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "single",
                short: None,
                value: None,
                help: "one connection; a new one replaces an idle old one",
            },
            set: |l, _| {
                l.single = true;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "evict-after",
                short: None,
                value: Some("SECS"),
                help: "all slots taken: evict the longest without a message, if >= SECS\n\
                       (default 5; 0: never, refuse the newcomer)",
            },
            set: |l, v| {
                let secs: f64 = v.parsed()?;
                if !(secs.is_finite() && secs >= 0.0) {
                    return Err(UsageError(
                        "--evict-after must be a number of seconds, 0 to turn eviction off".into(),
                    ));
                }
                l.evict_after = Some((secs > 0.0).then(|| Duration::from_secs_f64(secs)));
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "frame-timeout",
                short: None,
                value: Some("SECS"),
                help: "a started frame must complete within this (default 60)",
            },
            set: |l, v| {
                l.frame_timeout = Some(v.seconds()?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "idle-timeout",
                short: None,
                value: Some("SECS"),
                help: "close connections idle this long (default: never)",
            },
            set: |l, v| {
                l.idle_timeout = Some(v.seconds()?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "ack-mode",
                short: None,
                value: Some("original|auto"),
                help: "original (default, as in the library and the C API): AA/AE/AR to every\n\
                       message; auto: CA/CE/CR sent as MSH-15 asks when MSH-15/16 are valued\n\
                       (only for peers that speak enhanced mode)",
            },
            set: |l, v| {
                l.ack_mode =
                    v.choice(&[("original", AckMode::Original), ("auto", AckMode::Auto)])?;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "malformed",
                short: None,
                value: Some("reject|replace"),
                help: "text invalid in its character set: reject (default: AE, not stored) or\n\
                       replace it with U+FFFD and store it",
            },
            set: |l, v| {
                l.malformed = v.choice(&[
                    ("reject", Malformed::Reject),
                    ("replace", Malformed::Replace),
                ])?;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "msh18",
                short: None,
                value: None,
                help: "decode each message in the character set its MSH-18 names, when known\n\
                       (default)",
            },
            set: |l, _| {
                l.msh18 = true;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "no-msh18",
                short: None,
                value: None,
                help: "always decode in --encoding, whatever MSH-18 says",
            },
            set: |l, _| {
                l.msh18 = false;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "dedup",
                short: None,
                value: Some("N"),
                help: "remember the last N keys (MSH-3, MSH-4, MSH-10) stored: a resend is\n\
                       answered AA again and not stored twice (a directory store keeps them\n\
                       in DIR/.dedup-index, a relay in its spool)",
            },
            set: |l, v| {
                let n: usize = v.count()?;
                if n > mllp::MAX_DEDUP_KEYS {
                    return Err(UsageError(format!(
                        "--dedup is a number of keys from 1 to {}",
                        mllp::MAX_DEDUP_KEYS
                    )));
                }
                l.dedup = Some(n);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "dedup-index",
                short: None,
                value: Some("PATH"),
                help: "where --dedup keeps its keys (needed with a URL store)",
            },
            set: |l, v| {
                l.dedup_index = Some(v.path());
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "health-addr",
                short: None,
                value: Some("ADDR"),
                help: "answer each TCP connection on ADDR with one line for a load balancer\n\
                       (HAProxy agent-check): `up ready` while the store can take messages,\n\
                       `down` while it cannot (its check fails or hangs, or a save just\n\
                       failed), `drain` once stopping",
            },
            set: |l, v| {
                l.health_addr = Some(addr::parse("--health-addr", &v.text(), Use::Listen)?);
                Ok(())
            },
        },
    ],
};

impl ListenOptions {
    /// Checks the options that conflict, once all are read.
    pub fn check(&self) -> Result<(), UsageError> {
        if self.single && self.max_connections.is_some_and(|n| n != 1) {
            return Err(UsageError(
                "--single and --max-connections cannot be used together".into(),
            ));
        }
        self.tls.check()?;
        if self.dedup_index.is_some() && self.dedup.is_none() {
            return Err(UsageError("--dedup-index needs --dedup N".into()));
        }
        Ok(())
    }

    /// `store` behind duplicate suppression when `--dedup N` was given: the keys are kept in
    /// `--dedup-index PATH`, or else in `default_index` (a file beside the messages), which a
    /// store without a local directory does not have.
    pub fn dedup(
        &self,
        store: Box<dyn Store>,
        default_index: Option<PathBuf>,
    ) -> Result<Box<dyn Store>, Failure> {
        let Some(n) = self.dedup else {
            return Ok(store);
        };
        let index = match (&self.dedup_index, default_index) {
            (Some(path), _) => path.clone(),
            (None, Some(path)) => path,
            (None, None) => {
                return Err(Failure::fatal(format!(
                    "--dedup with the store {} needs --dedup-index PATH (a file for the keys \
                     it remembers)",
                    store.name()
                )))
            }
        };
        let dedup = DedupStore::open(store, &index, n).map_err(|e| {
            Failure::fatal(format!(
                "cannot use the duplicate index: {}",
                stores::innermost(&e)
            ))
        })?;
        Ok(Box::new(dedup))
    }

    /// Whether the listener accepts TLS.
    pub fn tls(&self) -> bool {
        self.tls.cert.is_some()
    }
}

fn parse(mut args: Args) -> Result<Config, UsageError> {
    let mut common = Common::default();
    let mut listen = ListenOptions::default();
    let mut store = StoreChoice::default();
    let mut store_policy = StorePolicy::default();
    while let Some(f) = args.next_option()? {
        let handled = ENCODING.apply(&f, &mut common)?
            || FRAMING.apply(&f, &mut common)?
            || OUTPUT.apply(&f, &mut common)?
            || RECEIVING.apply(&f, &mut listen)?
            || MONITORING.apply(&f, &mut listen.metrics)?
            || serve_tls::SERVING_TLS.apply(&f, &mut listen)?
            || ACCESS.apply(&f, &mut listen.access)?
            || KEEPALIVE.apply(&f, &mut listen.keepalive)?
            || STORE_POLICY.apply(&f, &mut store_policy)?
            || STORE.apply(&f, &mut store)?;
        if !handled {
            return Err(f.unhandled("listen"));
        }
    }
    let mut positionals = args.positionals().into_iter();
    let addr = positionals.next().unwrap_or_else(|| DEFAULT_ADDR.into());
    let addr = addr::parse("ADDR", &addr, Use::Listen)?;
    if let Some(extra) = positionals.next() {
        return Err(UsageError(format!(
            "mllp listen takes one address, but {extra:?} was given as well"
        )));
    }
    listen.check()?;
    Ok(Config {
        common,
        addr,
        store: store.store,
        listen,
        store_options: store.options,
        store_policy,
    })
}

/// How many lines may wait for standard output; beyond that, lines are dropped (and counted).
const PRINT_QUEUE: usize = 1024;
/// How long stopping waits for waiting lines and the summary to be printed.
const PRINT_DRAIN: Duration = Duration::from_secs(2);

/// Per-message lines, printed by a thread of their own so that a standard output nobody reads
/// never blocks a connection (and with it the ACKs and the shutdown). When the queue is full
/// the line is dropped and counted.
pub(crate) struct Printer {
    tx: Option<SyncSender<String>>,
    state: Arc<PrintState>,
}

#[derive(Default)]
struct PrintState {
    /// Lines queued and not yet written.
    waiting: AtomicU64,
    /// Lines dropped: the queue was full, or standard output failed.
    dropped: AtomicU64,
}

impl Printer {
    pub(crate) fn start() -> Printer {
        let (tx, rx) = mpsc::sync_channel::<String>(PRINT_QUEUE);
        let state = Arc::new(PrintState::default());
        let state2 = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("mllp-stdout".into())
            .spawn(move || {
                for line in rx {
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                        state2.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    state2.waiting.fetch_sub(1, Ordering::Release);
                }
            });
        match thread {
            Ok(_) => Printer {
                tx: Some(tx),
                state,
            },
            Err(e) => {
                log::warn!("cannot start the output thread ({e}): message lines are not printed");
                Printer { tx: None, state }
            }
        }
    }

    /// Queues a line; never blocks.
    pub(crate) fn line(&self, line: String) {
        let Some(tx) = &self.tx else {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.state.waiting.fetch_add(1, Ordering::AcqRel);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(line) {
            self.state.waiting.fetch_sub(1, Ordering::AcqRel);
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }

    /// Waits, at most until `end`, for the waiting lines to be written; returns whether they
    /// were.
    fn drain(&self, end: Instant) -> bool {
        while self.state.waiting.load(Ordering::Acquire) > 0 {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Lines queued and not yet written.
    fn waiting(&self) -> u64 {
        self.state.waiting.load(Ordering::Acquire)
    }
}

thread_local! {
    /// The line of the message being acknowledged on this connection thread, printed once its
    /// ACK is written.
    static PENDING: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The handler of `mllp listen`: the library's store-then-ACK handler, with each message's
/// line printed once its ACK is written.
struct ListenHandler {
    inner: StoreHandler<Box<dyn Store>>,
    printer: Option<Arc<Printer>>,
    /// Messages answered as resends of one already stored, and messages stored as new with
    /// the key of another (a reused control ID).
    receipts: Arc<[AtomicU64; 2]>,
}

impl Handler for ListenHandler {
    fn handle(&self, message: &Message<'_>) -> Response {
        self.inner.handle(message)
    }

    fn acknowledged(&self, _connection_id: u64, written: bool) {
        let line = PENDING.with(|p| p.borrow_mut().take());
        if let (Some(printer), Some(line), true) = (&self.printer, line, written) {
            printer.line(line);
        }
    }
}

impl ListenHandler {
    /// Saves in `store`; prints (when `printer` is given) `FILE MSH-10 MSH-9 PEER` for each
    /// stored message, and stops the listener once `count` messages are stored.
    fn new(
        store: Box<dyn Store>,
        policy: StorePolicy,
        printer: Option<Arc<Printer>>,
        count: Option<u64>,
        handle: ShutdownHandle,
    ) -> ListenHandler {
        let print = printer.is_some();
        let stored = AtomicU64::new(0);
        let receipts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let counts = Arc::clone(&receipts);
        let inner = policy
            .apply(StoreHandler::new(store))
            .on_saved(move |message, receipt| {
                if receipt.is_duplicate() {
                    counts[0].fetch_add(1, Ordering::Relaxed);
                }
                if receipt.reuses_control_id() {
                    counts[1].fetch_add(1, Ordering::Relaxed);
                }
                if print {
                    let field = |v: Option<&str>| v.unwrap_or("-").to_owned();
                    let kind = match message.segment_name() {
                        Some(segment @ ("BHS" | "FHS")) => segment.to_owned(),
                        _ => field(message.message_type()),
                    };
                    let line = format!(
                        "{receipt} {} {kind} {}",
                        field(message.control_id()),
                        message.peer_addr()
                    );
                    PENDING.with(|p| *p.borrow_mut() = Some(line));
                }
                let stored = stored.fetch_add(1, Ordering::SeqCst) + 1;
                if count == Some(stored) {
                    // The listener lets this message's ACK be written before it stops.
                    log::info!("{stored} messages stored: stopping");
                    handle.shutdown();
                }
            });
        ListenHandler {
            inner,
            printer,
            receipts,
        }
    }
}

/// Writes a line to standard output; a closed output is not an error worth stopping for.
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs `mllp listen`.
pub fn run(args: Args) -> Result<u8, Failure> {
    let config = parse(args)?;
    logger::init(
        config.common.log_level(log::LevelFilter::Warn),
        config.common.log_format,
    );
    let spec = config
        .store
        .resolve("store", STORE_ENV, Some(DEFAULT_STORE))?;
    let store = stores::open(&spec, &config.store_options).map_err(Failure::fatal)?;
    store.check().map_err(|e| {
        Failure::fatal(format!(
            "cannot store in {}: {}",
            store.name(),
            stores::innermost(&e)
        ))
    })?;
    let name = store.name();
    let index = stores::local_dir(&spec).map(|dir| dir.join(stores::DEDUP_INDEX_FILE));
    let store = config.listen.dedup(store, index)?;
    let tls = if config.listen.tls() { " with TLS" } else { "" };
    serve(
        &config.addr,
        &config.listen,
        &config.common,
        store,
        config.store_policy,
        None,
        |local| format!("listening on {local}{tls} (storing in {name})"),
    )
}

/// Listens on `addr`, saves each message in `store` before acknowledging it (`spool`: the
/// relay's outbox, for the metrics), and prints
/// `first_line(local address)` once listening, then a line per message (unless `-q`) and a
/// summary when stopped; the exit code.
pub fn serve(
    addr: &str,
    options: &ListenOptions,
    common: &Common,
    store: Box<dyn Store>,
    policy: StorePolicy,
    spool: Option<Arc<mllp::Outbox>>,
    first_line: impl FnOnce(std::net::SocketAddr) -> String,
) -> Result<u8, Failure> {
    let framing = common.framing()?;
    let charset = common.charset()?;
    let mut builder = Listener::builder(addr)
        .framing(framing)
        .charset(charset)
        .detect_msh18(options.msh18)
        .malformed(options.malformed)
        .ack_mode(options.ack_mode)
        .reply(common.reply());
    if options.single {
        builder = builder.max_connections(1).replace_idle(true);
    } else if let Some(n) = options.max_connections {
        builder = builder.max_connections(n);
    }
    if let Some(after) = options.evict_after {
        builder = builder.evict_after(after);
    }
    if let Some(t) = options.frame_timeout {
        builder = builder.frame_timeout(Some(t));
    }
    if options.idle_timeout.is_some() {
        builder = builder.idle_timeout(options.idle_timeout);
    }
    let tls = options.tls.files();
    if let Some(files) = &tls {
        builder = builder.tls_acceptor(files.acceptor()?);
    }
    builder = options.access.listener(options.keepalive.listener(builder));
    let listener = builder.bind().map_err(|e| match e {
        // The error names the address already.
        mllp::Error::Io {
            phase: mllp::Phase::Bind,
            ..
        } => Failure::fatal(format!("cannot listen: {e}")),
        e => Failure::fatal(format!("cannot listen on {addr}: {e}")),
    })?;
    let handle = listener.shutdown_handle();
    let signal_handle = handle.clone();
    let (store, monitor) = metrics::Monitor::start(
        store,
        &handle,
        options.health_addr.as_deref(),
        options.metrics.addr.as_deref(),
    )
    .map_err(Failure::fatal)?;
    signal::install(move || signal_handle.shutdown());
    match (tls, listener.tls_handle()) {
        (Some(files), Some(handle)) => serve_tls::reload_on_hangup(files, handle),
        // SIGHUP (`systemctl reload`) must not end a listener that has nothing to reload.
        _ => signal::on_hangup(|| print_line("SIGHUP: nothing to reload (no TLS)")),
    }
    let line = first_line(listener.local_addr()) + &monitor.addresses();
    print_line(&line);
    let printer = (!common.quiet).then(|| Arc::new(Printer::start()));
    let handler = ListenHandler::new(
        store,
        policy,
        printer.clone(),
        options.count,
        handle.clone(),
    );
    monitor
        .serve(&handle, handler.inner.counters(), spool)
        .map_err(Failure::fatal)?;
    let receipts = Arc::clone(&handler.receipts);
    listener.run(handler)?;
    let stats = handle.stats();
    if let Some(printer) = printer {
        // Bounded: a standard output nobody reads must not keep the process from exiting.
        let end = Instant::now() + PRINT_DRAIN;
        let drained = printer.drain(end);
        let lost = printer.dropped() + printer.waiting();
        let [resends, reused] = [0, 1].map(|i| receipts[i].load(Ordering::Relaxed));
        let summary = summary(&stats, resends, reused, lost);
        if drained {
            printer.line(summary.clone());
        }
        if !(drained && printer.drain(end)) || lost > 0 {
            log::warn!(
                "standard output did not keep up: {lost} message line{} not printed; {summary}",
                plural(lost)
            );
        }
    }
    match options.count {
        Some(n) if stats.acks_aa + stats.acks_ca + stats.commit_acks < n => {
            Err(Failure::negative(format!(
                "stopped before {n} messages were stored ({} were)",
                stats.acks_aa + stats.acks_ca + stats.commit_acks
            )))
        }
        _ => Ok(0),
    }
}

/// One line: messages, connections, acknowledgements by code, resends not stored again,
/// messages stored as new with a reused control ID, and how many message lines were not
/// printed because standard output did not keep up.
pub fn summary(s: &ListenerStats, resends: u64, reused: u64, dropped_lines: u64) -> String {
    let mut line = format!(
        "stopped: {} message{} on {} connection{}",
        s.messages,
        plural(s.messages),
        s.connections_total,
        plural(s.connections_total)
    );
    let codes = [
        ("AA", s.acks_aa),
        ("AE", s.acks_ae),
        ("AR", s.acks_ar),
        ("CA", s.acks_ca),
        ("CE", s.acks_ce),
        ("CR", s.acks_cr),
        ("commit ACK", s.commit_acks),
        ("commit NAK", s.commit_naks),
        ("unreadable", s.nak_unparseable),
        ("oversized", s.oversized_frames),
        ("refused connections", s.connections_refused),
        ("denied connections", s.connections_denied),
        ("refused PROXY headers", s.proxy_refused),
        ("replaced connections", s.connections_replaced),
        ("evicted connections", s.connections_evicted),
        ("resends not stored again", resends),
        ("reused control IDs stored as new", reused),
        ("closed unanswered", s.closed_unanswered),
        ("unprinted lines", dropped_lines),
    ];
    let parts: Vec<String> = codes
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    if !parts.is_empty() {
        line.push_str("; ");
        line.push_str(&parts.join(", "));
    }
    line
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn parse_v(v: &[&str]) -> Result<Config, UsageError> {
        parse(Args::new(&COMMAND, v.iter().map(OsString::from)))
    }

    #[test]
    fn defaults_and_conflicts() {
        let c = parse_v(&[]).unwrap();
        assert_eq!(c.addr, DEFAULT_ADDR);
        assert_eq!(
            (c.store.given.as_deref(), c.store.file.as_deref()),
            (None, None)
        );
        // `--evict-after 0` turns eviction off (the rule itself: the listener's session tests).
        assert_eq!(c.listen.evict_after, None);
        let after = |v: &str| parse_v(&["--evict-after", v]).unwrap().listen.evict_after;
        assert_eq!(after("0"), Some(None));
        assert_eq!(after("1.5"), Some(Some(Duration::from_millis(1500))));
        let c = parse_v(&["0.0.0.0:1", "--count", "3", "--single", "--store=x"]).unwrap();
        assert_eq!(
            (c.addr.as_str(), c.listen.count, c.listen.single),
            ("0.0.0.0:1", Some(3), true)
        );
        for bad in [
            &["a:1", "b:2"][..],
            &["--single", "--max-connections", "2"],
            &["--tls-cert", "c.pem"],
            &["--tls-key-password-file", "pw"],
            &["--count", "0"],
            &["--frame-timeout", "-1"],
            &["--dedup", "0"],
            &["--dedup-index", "x"],
            &["--nope"],
        ] {
            assert!(parse_v(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn summary_names_only_what_happened() {
        let mut s = ListenerStats::default();
        s.messages = 3;
        s.connections_total = 1;
        s.acks_aa = 2;
        s.acks_ae = 1;
        assert_eq!(
            summary(&s, 0, 0, 0),
            "stopped: 3 messages on 1 connection; AA 2, AE 1"
        );
        s.acks_aa = 3;
        s.acks_ae = 0;
        assert_eq!(
            summary(&s, 2, 0, 0),
            "stopped: 3 messages on 1 connection; AA 3, resends not stored again 2"
        );
        assert_eq!(
            summary(&s, 2, 1, 0),
            "stopped: 3 messages on 1 connection; AA 3, resends not stored again 2, reused \
             control IDs stored as new 1"
        );
    }
}
