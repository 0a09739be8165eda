//! `--metrics-addr ADDR` (on `listen`, `relay` and `forward`): an HTTP endpoint for
//! Prometheus and for probes that speak HTTP.
//!
//! * `GET /metrics`: every counter of the core's tables for the roles the command plays
//!   ([`ListenerStats::TABLE`], [`StoreStats::TABLE`], [`OutboxStats::TABLE`]), the store and
//!   delivery duration histograms, `mllp_store_up` (the judgement of the health server, see
//!   [`health`](super::health)), the forwarder's deliveries, `mllp_build_info` and
//!   `process_start_time_seconds`, `mllp_log_lines_dropped_total`, in the Prometheus text format ([`expose`]).
//! * `GET /healthz`: `200 up` while the store can take messages, `503 down` (or `503 drain`
//!   once stopping): the same judgement as `--health-addr`.
//!
//! A scrape never slows message handling: the server runs on a thread of its own, answers one
//! connection at a time ([`http`]), and reads atomics and the last health judgement; it never
//! calls the store. (The relay's spool gauges take the spool's state lock for a copy of a few
//! integers, as an enqueue does.)

pub mod expose;
pub mod http;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mllp::{ListenerStats, Outbox, OutboxStats, ShutdownHandle, Store, StoreCounters, StoreStats};

use super::addr::{self, Use};
use super::args::{Group, Opt, Spec};
use super::health::{self, SharedProbe, State};
pub use expose::Page;
use http::Answer;

/// After a failed `accept`, the thread waits this long before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The settings of the metrics endpoint.
#[derive(Debug, Default, Clone)]
pub struct MetricsOptions {
    /// `--metrics-addr`: where to answer `/metrics` and `/healthz`.
    pub addr: Option<String>,
}

/// `--metrics-addr`.
pub const MONITORING: Group<MetricsOptions> = Group {
    title: "Monitoring",
    opts: &[Opt {
        spec: Spec {
            long: "metrics-addr",
            short: None,
            value: Some("ADDR"),
            help: "answer HTTP on ADDR: GET /metrics in the Prometheus text format, GET\n\
                   /healthz 200 while the store can take messages, 503 while it cannot\n\
                   (the judgement of --health-addr); see docs/monitoring.md",
        },
        set: |m, v| {
            m.addr = Some(addr::parse("--metrics-addr", &v.text(), Use::Listen)?);
            Ok(())
        },
    }],
};

/// The process start, as Unix time in seconds: taken when the first metrics endpoint is
/// bound, at startup.
static START: OnceLock<f64> = OnceLock::new();

/// Writes more metrics to a page.
pub type Extra = Box<dyn Fn(&mut Page) + Send>;

/// Where the figures of a page come from: each role the command plays.
#[derive(Default)]
pub struct Sources {
    /// The listener's counters.
    pub listener: Option<ShutdownHandle>,
    /// The store handler's counters.
    pub store: Option<StoreCounters>,
    /// The health judgement of the store.
    pub probe: Option<SharedProbe>,
    /// The relay's spool (weak: the relay closes it at the end, when it holds the last
    /// handle).
    pub spool: Option<Weak<Outbox>>,
    /// More metrics, written by the command (the forwarder's deliveries).
    pub extra: Option<Extra>,
}

/// A bound metrics endpoint, not yet answering (the sources may not exist yet).
pub struct Bound {
    listener: TcpListener,
    local: SocketAddr,
}

/// Binds the metrics endpoint on `addr`.
///
/// # Errors
/// One sentence for the operator.
pub fn bind(addr: &str) -> Result<Bound, String> {
    START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    });
    let cannot = |e: std::io::Error| format!("cannot listen for metrics on {addr}: {e}");
    let listener = TcpListener::bind(addr).map_err(cannot)?;
    let local = listener.local_addr().map_err(cannot)?;
    Ok(Bound { listener, local })
}

impl Bound {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Answers requests from `sources` on a thread of its own, for as long as the process
    /// runs.
    ///
    /// # Errors
    /// One sentence when the thread cannot start.
    pub fn start(self, sources: Sources) -> Result<(), String> {
        std::thread::Builder::new()
            .name("mllp-metrics".into())
            .spawn(move || loop {
                match self.listener.accept() {
                    Ok((tcp, peer)) => {
                        if let Err(e) = http::serve_one(tcp, |path| route(path, &sources)) {
                            log::debug!("metrics: cannot answer {peer}: {e}");
                        }
                    }
                    Err(e) => {
                        log::warn!("metrics: accept failed: {e}");
                        std::thread::sleep(ACCEPT_BACKOFF);
                    }
                }
            })
            .map(drop)
            .map_err(|e| format!("cannot start the metrics thread: {e}"))
    }
}

/// The monitoring of a listening command (`listen`, `relay`): one judgement of the store for
/// the health line (`--health-addr`), `/healthz` and `mllp_store_up`, and the endpoints bound.
pub struct Monitor {
    probe: Option<SharedProbe>,
    health: Option<SocketAddr>,
    metrics: Option<Bound>,
}

impl Monitor {
    /// Watches `store` when either address is given (the listener must then save through the
    /// store returned), answers health checks on `health_addr` at once, and binds
    /// `metrics_addr` (answered once [`serve`](Self::serve) names the counters).
    ///
    /// # Errors
    /// One sentence for the operator.
    pub fn start(
        store: Box<dyn Store>,
        handle: &ShutdownHandle,
        health_addr: Option<&str>,
        metrics_addr: Option<&str>,
    ) -> Result<(Box<dyn Store>, Monitor), String> {
        let (store, probe) = if health_addr.is_some() || metrics_addr.is_some() {
            let (probe, watched) = health::watch(Arc::from(store), handle.clone())?;
            (Box::new(watched) as Box<dyn Store>, Some(probe))
        } else {
            (store, None)
        };
        let health = match (health_addr, &probe) {
            (Some(at), Some(probe)) => Some(health::serve_on(at, Arc::clone(probe))?),
            _ => None,
        };
        let metrics = metrics_addr.map(bind).transpose()?;
        let monitor = Monitor {
            probe,
            health,
            metrics,
        };
        Ok((store, monitor))
    }

    /// `, health on ADDR, metrics on ADDR` for the first line, as far as they are served.
    pub fn addresses(&self) -> String {
        let mut line = String::new();
        if let Some(local) = self.health {
            line.push_str(&format!(", health on {local}"));
        }
        if let Some(bound) = &self.metrics {
            line.push_str(&format!(", metrics on {}", bound.local_addr()));
        }
        line
    }

    /// Answers `/metrics` and `/healthz` from the listener of `handle`, the store handler's
    /// `counters` and the relay's `spool`, if metrics were asked for.
    ///
    /// # Errors
    /// One sentence when the thread cannot start.
    pub fn serve(
        self,
        handle: &ShutdownHandle,
        counters: StoreCounters,
        spool: Option<Arc<Outbox>>,
    ) -> Result<(), String> {
        let Some(bound) = self.metrics else {
            return Ok(());
        };
        bound.start(Sources {
            listener: Some(handle.clone()),
            store: Some(counters),
            probe: self.probe,
            spool: spool.as_ref().map(Arc::downgrade),
            extra: None,
        })
    }
}

fn route(path: &str, sources: &Sources) -> Answer {
    match path {
        "/metrics" => Answer {
            status: "200 OK",
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: page(sources),
        },
        "/healthz" => match sources.probe.as_ref().map(health::state_of) {
            None | Some(State::Up) => Answer::text("200 OK", "up\n"),
            Some(State::Down) => Answer::text("503 Service Unavailable", "down\n"),
            Some(State::Drain) => Answer::text("503 Service Unavailable", "drain\n"),
        },
        _ => Answer::text("404 Not Found", "try /metrics or /healthz\n"),
    }
}

/// The page of `/metrics`.
pub fn page(sources: &Sources) -> String {
    let mut page = Page::default();
    page.info(
        "mllp_build_info",
        "The version of mllp that is running (always 1).",
        &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
    );
    page.gauge(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds.",
        START.get().copied().unwrap_or(0.0),
    );
    page.counter(
        "mllp_log_lines_dropped_total",
        "Log lines dropped because standard error did not keep up (nobody read it).",
        &[("", super::logger::dropped())],
    );
    if let Some(handle) = &sources.listener {
        let stats: ListenerStats = handle.stats();
        page.table(ListenerStats::TABLE, &stats);
    }
    if let Some(store) = &sources.store {
        let stats: StoreStats = store.stats();
        page.table(StoreStats::TABLE, &stats);
        page.histogram(
            "mllp_store_duration_seconds",
            "How long each message's save took, store wait and retries included.",
            &store.durations(),
        );
    }
    if let Some(probe) = &sources.probe {
        let up = health::state_of(probe) == State::Up;
        page.gauge(
            "mllp_store_up",
            "1 while the store can take messages (the health judgement), else 0.",
            if up { 1.0 } else { 0.0 },
        );
    }
    if let Some(spool) = sources.spool.as_ref().and_then(Weak::upgrade) {
        let stats: OutboxStats = spool.stats();
        page.table(OutboxStats::TABLE, &stats);
        page.histogram(
            "mllp_delivery_duration_seconds",
            "How long each delivery attempt took (connection, write and acknowledgement).",
            &spool.delivery_durations(),
        );
    }
    if let Some(extra) = &sources.extra {
        extra(&mut page);
    }
    page.into_text()
}

#[cfg(test)]
/// The metric table of `docs/monitoring.md`, made from the core's tables and the metrics this
/// module adds: one row per metric, with its type, labels and help.
pub fn doc_table() -> String {
    use mllp::{Stat, StatKind};
    fn rows<S>(out: &mut Vec<(String, String, String, String)>, role: &str, table: &[Stat<S>]) {
        for s in table {
            let label = s.label.split('=').next().unwrap_or("").to_owned();
            if let Some(row) = out.iter_mut().find(|r| r.0 == s.metric) {
                let value = s.label.split('"').nth(1).unwrap_or("");
                if !value.is_empty() && !row.2.contains(value) {
                    row.2.push_str(", ");
                    row.2.push_str(value);
                }
                continue;
            }
            let kind = match s.kind {
                StatKind::Counter => "counter",
                StatKind::Gauge => "gauge",
            };
            let labels = match s.label.split('"').nth(1) {
                Some(value) => format!("{label}={value}"),
                None => String::new(),
            };
            out.push((
                s.metric.to_owned(),
                format!("{kind} ({role})"),
                labels,
                s.help.to_owned(),
            ));
        }
    }
    let mut out = Vec::new();
    let mut add = |name: &str, kind: &str, labels: &str, help: &str| {
        out.push((name.into(), kind.into(), labels.into(), help.into()));
    };
    add(
        "mllp_build_info",
        "gauge (all)",
        "version",
        "The version of mllp that is running (always 1).",
    );
    add(
        "process_start_time_seconds",
        "gauge (all)",
        "",
        "Start time of the process since the Unix epoch in seconds.",
    );
    add(
        "mllp_log_lines_dropped_total",
        "counter (all)",
        "",
        "Log lines dropped because standard error did not keep up (nobody read it).",
    );
    rows(&mut out, "listen, relay", ListenerStats::TABLE);
    rows(&mut out, "listen, relay", StoreStats::TABLE);
    let mut add = |name: &str, kind: &str, labels: &str, help: &str| {
        out.push((name.into(), kind.into(), labels.into(), help.into()));
    };
    add(
        "mllp_store_duration_seconds",
        "histogram (listen, relay)",
        "le",
        "How long each message's save took, store wait and retries included.",
    );
    add(
        "mllp_store_up",
        "gauge (listen, relay)",
        "",
        "1 while the store can take messages (the health judgement), else 0.",
    );
    rows(&mut out, "relay", OutboxStats::TABLE);
    let mut add = |name: &str, kind: &str, labels: &str, help: &str| {
        out.push((name.into(), kind.into(), labels.into(), help.into()));
    };
    add(
        "mllp_delivery_duration_seconds",
        "histogram (relay)",
        "le",
        "How long each delivery attempt took (connection, write and acknowledgement).",
    );
    add(
        "mllp_redeliveries_total",
        "counter (forward)",
        "",
        "Deliveries the broker had delivered before, to a consumer that did not acknowledge them.",
    );
    let mut text =
        String::from("| metric | type (commands) | labels | meaning |\n|---|---|---|---|\n");
    for (name, mut kind, mut labels, help) in out {
        if name == "mllp_deliveries_total" {
            // `mllp forward` counts messages (not attempts), with `unsendable` for those
            // dead-lettered unsent (see `forward.rs`).
            kind = "counter (relay, forward)".into();
            labels.push_str(", unsendable");
        }
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("`{labels}`")
        };
        text.push_str(&format!("| `{name}` | {kind} | {labels} | {help} |\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    /// The guide's metric table is this one: a counter added to a core table and not to the
    /// guide fails here (the new table is printed, to paste).
    #[test]
    fn the_guide_lists_every_metric() {
        let guide = include_str!("../../../docs/monitoring.md");
        let table = super::doc_table();
        assert!(
            guide.contains(&table),
            "docs/monitoring.md does not hold the metric table; it is now:\n\n{table}"
        );
    }
}
