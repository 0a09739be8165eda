//! The C API from C: compiles the programs in `tests/c/` against `mllp.h` with
//! `-Wall -Wextra -Werror`, links each one against both `libmllp.a` and `libmllp.so`, and runs
//! them (under AddressSanitizer and UBSan when the compiler supports them).
//!
//! The static and shared libraries come from `cargo build --lib` run by [`clib`] (same target
//! directory, profile and features as this test).
//!
//! Some programs talk to Rust over the network (see [`Peer`]): the C sender to a Rust
//! listener started here, the C listener to a Rust sender driven from here, the gateway example
//! to a Rust listener. Every wait is bounded and child processes are killed when a check fails.
//!
//! The TLS program talks to both: the C sender to a Rust TLS listener, Rust TLS senders to C
//! TLS listeners, with the test certificates of `mllp-testkit`. The client certificate program
//! talks to `openssl s_server` limited to TLS 1.2 and to its own listener, whose served
//! certificate the Rust side reads before and after the program reloads it.
//!
//! Environment: `CC` picks the compiler (default `cc`; without one the test is skipped with a
//! notice). `MLLP_TEST_CORPUS` is passed on to the programs. `MLLP_C_TESTS_VALGRIND=1` builds
//! without sanitizers and runs every program under valgrind instead (`.ci/valgrind-c`).

mod clib;

use mllp_testkit as common;

use clib::{build_library, Library};

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mllp_core::{Framing, Listener, Message, Response, RunningListener, Sender, StartInFrame};

/// What a C program runs against.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peer {
    /// Nothing: the program checks the library on its own.
    Alone,
    /// A Rust listener on 127.0.0.1 ([`rust_listener`]), its port in `MLLP_TEST_PORT`, and a
    /// port where nothing listens in `MLLP_TEST_DEAD_PORT`.
    RustListener,
    /// The program is a listener: it prints `PORT <n>`, [`drive_c_listener`] sends to it with
    /// Rust senders, then writes `stop` to its stdin and checks the `STATS` line it prints.
    RustSender,
    /// The gateway example of `mllp-ffi/README.md`, run against a Rust listener with two files.
    Gateway,
    /// TLS (`tls_test`): a Rust TLS listener ([`rust_listener`] serving `server.pem`), its port
    /// in `MLLP_TEST_TLS_PORT` and the certificate directory in `MLLP_TEST_CERTS`; then the
    /// program's own TLS listeners, driven by [`talk_tls`]. In a build without the `tls`
    /// feature the program only checks configuration errors and says it skips the rest.
    Tls,
    /// Client certificates (`tls_client_auth_test`): `openssl s_server -tls1_2` on 127.0.0.1,
    /// its port in `MLLP_TEST_TLS12_PORT`, the test certificates in `MLLP_TEST_CERTS` and the
    /// files made for the run ([`make_client_auth_files`]) in `MLLP_TEST_SCRATCH`; then the
    /// program's listener, driven by [`talk_client_auth`]. Without the `tls` feature, as
    /// [`Peer::Tls`].
    TlsClientAuth,
}

const WARNINGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pthread"];
const SANITIZERS: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-g",
];

/// One test per C program in `tests/c/` (each a `main` that exits 0 when every check passes)
/// and link kind, so that one failing program does not hide the others. The module's name is
/// the filter `valgrind-c` runs.
mod c_programs {
    use super::{c_program, Peer};

    macro_rules! programs {
        ($($program:ident: $peer:expr;)*) => {
            $(
                mod $program {
                    use super::*;

                    #[test]
                    fn static_lib() {
                        c_program(stringify!($program), $peer, false);
                    }

                    #[test]
                    fn shared_lib() {
                        c_program(stringify!($program), $peer, true);
                    }
                }
            )*
        };
    }

    programs! {
        decoder_test: Peer::Alone;
        errors_test: Peer::Alone;
        builder_test: Peer::Alone;
        ack_test: Peer::Alone;
        split_test: Peer::Alone;
        log_test: Peer::Alone;
        sender_test: Peer::RustListener;
        listener_test: Peer::RustSender;
        gateway_example: Peer::Gateway;
        tls_test: Peer::Tls;
        tls_client_auth_test: Peer::TlsClientAuth;
        sigpipe_test: Peer::Alone;
        network_test: Peer::Alone;
        outbox_test: Peer::RustListener;
    }
}

/// How the C programs are built and run in this test process, worked out once.
struct Setup {
    cc: String,
    lib: &'static Library,
    out: std::path::PathBuf,
    sanitize: bool,
    valgrind: bool,
}

/// The setup, or `None` (after a notice) when the C programs cannot run here.
fn setup() -> Option<&'static Setup> {
    static SETUP: std::sync::OnceLock<Option<Setup>> = std::sync::OnceLock::new();
    SETUP
        .get_or_init(|| {
            let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
            if !runs(&cc, &["--version"]) {
                common::skip(format!("no C compiler ({cc}) for the C API tests"));
                return None;
            }
            let valgrind = std::env::var_os("MLLP_C_TESTS_VALGRIND").is_some_and(|v| v == "1");
            if valgrind && !runs("valgrind", &["--version"]) {
                common::skip("MLLP_C_TESTS_VALGRIND=1 but valgrind is not installed");
                return None;
            }
            let lib = build_library();
            let out = lib.staticlib.parent().unwrap().join("c-tests");
            std::fs::create_dir_all(&out).unwrap();
            let sanitize = !valgrind && sanitizers_work(&cc, &out);
            if !valgrind && !sanitize {
                common::skip(format!(
                    "{cc} cannot build and run with -fsanitize=address,undefined (the sanitizer \
                     runs)"
                ));
            }
            Some(Setup {
                cc,
                lib,
                out,
                sanitize,
                valgrind,
            })
        })
        .as_ref()
}

/// Builds `program` against the static or the shared library, runs it with its peer, and
/// fails with the program's output when it fails.
fn c_program(program: &'static str, peer: Peer, shared: bool) {
    let Some(setup) = setup() else { return };
    let run = Run {
        program,
        peer,
        shared,
        sanitize: setup.sanitize,
        valgrind: setup.valgrind,
    };
    if let Err(e) = build_and_run(&setup.cc, setup.lib, &setup.out, run) {
        panic!("{e}");
    }
}

/// One program, one link, one way of running.
#[derive(Clone, Copy)]
struct Run {
    program: &'static str,
    peer: Peer,
    shared: bool,
    sanitize: bool,
    valgrind: bool,
}

fn build_and_run(cc: &str, lib: &Library, out: &Path, run: Run) -> Result<(), String> {
    let Run {
        program,
        peer,
        shared,
        sanitize,
        valgrind,
    } = run;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let link = if shared { "shared" } else { "static" };
    let suffix = if valgrind { "-plain" } else { "" };
    let exe = out.join(format!("{program}-{link}{suffix}"));
    let mut cmd = Command::new(cc);
    cmd.args(WARNINGS);
    if sanitize {
        cmd.args(SANITIZERS);
    }
    cmd.arg("-I")
        .arg(root)
        .arg(root.join("tests/c").join(format!("{program}.c")))
        .arg("-o")
        .arg(&exe);
    if shared {
        let dir = lib.cdylib.parent().unwrap();
        cmd.arg(&lib.cdylib)
            .arg(format!("-Wl,-rpath,{}", dir.display()));
    } else {
        cmd.arg(&lib.staticlib).args(&lib.native);
    }
    let output = cmd.output().map_err(|e| format!("{cc}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "compiling {program} ({link}) failed: {cmd:?}\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }

    let mut cmd = if valgrind {
        let mut v = Command::new("valgrind");
        v.args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--quiet",
        ])
        .arg(&exe);
        v
    } else {
        Command::new(&exe)
    };
    cmd.env("UBSAN_OPTIONS", "print_stacktrace=1");
    let limit = Duration::from_secs(if valgrind { 600 } else { 60 });
    let log = out.join(format!("{program}-{link}.log"));
    let (ok, text) = match peer {
        Peer::Alone => run_with_timeout(cmd, &log, limit)?,
        Peer::RustListener => {
            let listener = rust_listener(None);
            cmd.env("MLLP_TEST_PORT", listener.local_addr().port().to_string())
                .env("MLLP_TEST_DEAD_PORT", dead_port().to_string());
            run_with_timeout(cmd, &log, limit)?
        }
        Peer::Gateway => {
            let listener = rust_listener(None);
            cmd.arg(listener.local_addr().to_string());
            for i in 1..=2 {
                let file = out.join(format!("{program}-{link}-{i}.hl7"));
                let msg = format!(
                    "MSH|^~\\&|GW|HOSP|EHR|HOSP|20260101||ORU^R01|GW{i}|P|2.5.1\rOBX|1|ST|X||{i}\r"
                );
                std::fs::write(&file, msg).map_err(|e| e.to_string())?;
                cmd.arg(file);
            }
            let (ok, text) = run_with_timeout(cmd, &log, limit)?;
            let messages = listener.stats().messages;
            let aa = text.matches(": AA").count();
            if ok && (messages, aa) != (2, 2) {
                (
                    false,
                    format!("{text}\n(listener got {messages} messages, {aa} AA lines)"),
                )
            } else {
                (ok, text)
            }
        }
        Peer::RustSender => drive_c_listener(cmd, &log, limit, valgrind, talk, check_stats),
        Peer::Tls => run_tls(cmd, &log, limit, valgrind)?,
        Peer::TlsClientAuth => {
            // Certificates made for the run: in a temporary directory, removed after a pass.
            let scratch = common::scratch_dir(&format!("c-{program}-{link}{suffix}"));
            let (ok, text) = run_tls_client_auth(cmd, &log, &scratch, limit, valgrind)?;
            if ok {
                let _ = std::fs::remove_dir_all(&scratch);
            }
            (ok, text)
        }
    };
    eprintln!(
        "{program} ({link}): {}",
        text.trim_end().replace('\n', " | ")
    );
    if ok {
        Ok(())
    } else {
        Err(format!("{program} ({link}) failed:\n{text}"))
    }
}

/// Runs `cmd` with its output in `log`, killing it after `limit`. Returns (success, output).
fn run_with_timeout(
    mut cmd: Command,
    log: &Path,
    limit: Duration,
) -> Result<(bool, String), String> {
    let file = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = std::fs::read_to_string(log).unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok((true, text)),
        Some(s) => {
            text.push_str(&format!("\n({s})"));
            Ok((false, text))
        }
        None => {
            text.push_str(&format!("\n(killed after {limit:?})"));
            Ok((false, text))
        }
    }
}

/// The Rust listener the C sender talks to, over TLS when `tls` is given. It answers by
/// control ID prefix: `REJ` → AR "rejected by test", `ERR` → AE "error by test", `SLOW` → AA
/// after 800 ms, else AA; always in original mode, and start bytes inside a frame are payload
/// (some corpus files hold one).
fn rust_listener(tls: Option<mllp_core::TlsServerConfig>) -> RunningListener {
    let mut builder = Listener::builder("127.0.0.1:0")
        .framing(Framing::default().start_in_frame(StartInFrame::Ignore))
        .ack_mode(mllp_core::hl7::AckMode::Original)
        .shutdown_grace(Duration::from_secs(2));
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    builder
        .bind()
        .expect("a Rust listener on 127.0.0.1")
        .spawn(|m: &Message<'_>| {
            let id = m.control_id().unwrap_or("");
            if id.starts_with("REJ") {
                Response::reject("rejected by test")
            } else if id.starts_with("ERR") {
                Response::error("error by test")
            } else if id.starts_with("SLOW") {
                std::thread::sleep(Duration::from_millis(800));
                Response::accept()
            } else {
                Response::accept()
            }
        })
        .expect("the Rust listener's thread")
}

/// A local port where nothing listens: bound, then freed.
fn dead_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    socket.local_addr().unwrap().port()
}

/// A child process killed (and reaped) when dropped, so no check can leave one behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a C listener program, sends to it from Rust (`talk`), stops it and checks the `STATS`
/// line it reports (`check`). Returns (success, the program's output and the checks' findings).
///
/// `talk` is the Rust side of the conversation: given the program's output lines, the list
/// the lines it read go to, its stdin, the deadline and whether it runs under valgrind, it
/// sends, tells the program to stop and returns its `STATS` line.
fn drive_c_listener(
    mut cmd: Command,
    log: &Path,
    limit: Duration,
    valgrind: bool,
    talk: impl FnOnce(
        &mpsc::Receiver<String>,
        &mut Vec<String>,
        Option<ChildStdin>,
        Instant,
        bool,
    ) -> Result<String, String>,
    check: fn(&str) -> Result<(), String>,
) -> (bool, String) {
    let stderr = match std::fs::File::create(log) {
        Ok(f) => f,
        Err(e) => return (false, format!("{}: {e}", log.display())),
    };
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn();
    let mut child = match child {
        Ok(c) => Killed(c),
        Err(e) => return (false, format!("{cmd:?}: {e}")),
    };
    let stdin = child.0.stdin.take();
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + limit;
    let mut output = Vec::new();
    let result = talk(&lines, &mut output, stdin, deadline, valgrind);
    // Wait for the exit (bounded), then collect what it printed and logged.
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => break None,
        }
    };
    drop(child);
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        output.push(line);
    }
    let mut text = output.join("\n");
    text.push('\n');
    text.push_str(&std::fs::read_to_string(log).unwrap_or_default());
    let ok = match (&result, status) {
        (Err(e), _) => {
            text.push_str(&format!("\n(check failed: {e})"));
            false
        }
        (Ok(stats), Some(s)) if s.success() => match check(stats) {
            Ok(()) => true,
            Err(e) => {
                text.push_str(&format!("\n(check failed: {e})"));
                false
            }
        },
        (Ok(_), Some(s)) => {
            text.push_str(&format!("\n({s})"));
            false
        }
        (Ok(_), None) => {
            text.push_str(&format!("\n(killed after {limit:?})"));
            false
        }
    };
    (ok, text)
}

/// The Rust side of the C listener test: waits for the port, sends, tells the program to stop,
/// and returns its `STATS` line.
fn talk(
    lines: &mpsc::Receiver<String>,
    output: &mut Vec<String>,
    stdin: Option<ChildStdin>,
    deadline: Instant,
    valgrind: bool,
) -> Result<String, String> {
    let port = wait_for(lines, output, deadline, "PORT ")?;
    let port = port.trim().parse::<u16>().map_err(|e| e.to_string())?;
    let addr = format!("127.0.0.1:{port}");
    let ack_timeout = Duration::from_secs(if valgrind { 60 } else { 10 });
    let sender = || {
        Sender::builder(addr.clone())
            .ack_timeout(ack_timeout)
            .retry(mllp_core::RetryPolicy::none())
            .build()
            .map_err(|e| e.to_string())
    };
    let msg = |id: &str| format!("MSH|^~\\&|RS|HOSP|CL|HOSP|20260101||ADT^A01|{id}|P|2.5\rPID|1\r");

    let mut s = sender()?;
    let cases = [
        ("ACC1", "AA", Some("stored ACC1")),
        ("ERR1", "AE", Some("cannot store")),
        ("REJ1", "AR", Some("unsupported")),
        ("BAD1", "AE", Some("application internal error")),
        ("M1", "AA", None),
    ];
    for (id, code, text) in cases {
        let ack = s.send(&msg(id)).map_err(|e| format!("{id}: {e}"))?;
        if ack.code.as_str() != code || ack.control_id != id || ack.text.as_deref() != text {
            return Err(format!("{id}: unexpected ACK {ack:?}"));
        }
    }

    // A slow callback on one connection does not hold up another connection.
    let slow = std::thread::spawn({
        let mut a = sender()?;
        let m = msg("SLOW1");
        move || {
            let sent = Instant::now();
            let ack = a.send(&m);
            (ack.map(|a| a.code.as_str()), sent.elapsed(), Instant::now())
        }
    });
    // The slow callback is running (it says so) before the other connection sends.
    wait_for(lines, output, deadline, "SLOW_STARTED")?;
    let mut b = sender()?;
    for id in ["ACC2", "ACC3"] {
        let ack = b.send(&msg(id)).map_err(|e| format!("{id}: {e}"))?;
        if ack.code.as_str() != "AA" {
            return Err(format!("{id}: unexpected ACK {ack:?}"));
        }
    }
    let b_done = Instant::now();
    let (code, took, a_done) = slow.join().map_err(|_| "the slow sender panicked")?;
    let code = code.map_err(|e| format!("SLOW1: {e}"))?;
    if code != "AA" || took < Duration::from_millis(300) {
        return Err(format!("SLOW1: {code} after {took:?}"));
    }
    if !valgrind && b_done > a_done {
        return Err("the second connection waited for the slow callback".into());
    }
    output.push(format!(
        "(rust) slow callback took {took:?}; the other connection finished {:?} earlier",
        a_done.saturating_duration_since(b_done)
    ));

    stop(lines, output, stdin, deadline)
}

/// Reads the program's lines (into `output`) until one starts with `prefix`; returns the rest
/// of that line.
fn wait_for(
    lines: &mpsc::Receiver<String>,
    output: &mut Vec<String>,
    deadline: Instant,
    prefix: &str,
) -> Result<String, String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .map_err(|_| format!("the program printed no {prefix:?} line"))?;
        output.push(line.clone());
        if let Some(rest) = line.strip_prefix(prefix) {
            return Ok(rest.to_owned());
        }
    }
}

/// Writes `stop` to the program's stdin, closes it, and returns the program's `STATS` line.
fn stop(
    lines: &mpsc::Receiver<String>,
    output: &mut Vec<String>,
    stdin: Option<ChildStdin>,
    deadline: Instant,
) -> Result<String, String> {
    let mut stdin = stdin.ok_or("no stdin")?;
    stdin
        .write_all(b"stop\n")
        .and_then(|()| stdin.flush())
        .map_err(|e| format!("writing stop: {e}"))?;
    drop(stdin);
    wait_for(lines, output, deadline, "STATS ")
}

/// Runs `tls_test`: with the `tls` feature against a Rust TLS listener and then as TLS
/// listeners for [`talk_tls`]; without it, on its own, expecting its notice that it skips the
/// TLS exchanges.
fn run_tls(
    mut cmd: Command,
    log: &Path,
    limit: Duration,
    valgrind: bool,
) -> Result<(bool, String), String> {
    let certs = Path::new(common::CERTS_DIR);
    cmd.env("MLLP_TEST_CERTS", certs);
    #[cfg(feature = "tls")]
    {
        let config = mllp_core::TlsServerConfig::new(common::pem_identity("server"));
        let listener = rust_listener(Some(config));
        cmd.env(
            "MLLP_TEST_TLS_PORT",
            listener.local_addr().port().to_string(),
        );
        let (ok, text) = drive_c_listener(cmd, log, limit, valgrind, talk_tls, check_tls_stats);
        let messages = listener.stats().messages;
        // Six sends are acknowledged; the three that fail never get past the handshake.
        if ok && messages != 6 {
            return Ok((
                false,
                format!("{text}\n(the Rust TLS listener got {messages} messages, not 6)"),
            ));
        }
        Ok((ok, text))
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = valgrind;
        let (ok, text) = run_with_timeout(cmd, log, limit)?;
        if ok && !text.contains("no TLS support") {
            return Ok((false, format!("{text}\n(no notice that TLS is skipped)")));
        }
        Ok((ok, text))
    }
}

/// The Rust side of `tls_test`'s listeners: a TLS sender trusting the test CA sends to the
/// PEM-configured and to the PKCS#12-configured C listener, expecting AA with the callback's
/// text; then `stop`.
#[cfg(feature = "tls")]
fn talk_tls(
    lines: &mpsc::Receiver<String>,
    output: &mut Vec<String>,
    stdin: Option<ChildStdin>,
    deadline: Instant,
    valgrind: bool,
) -> Result<String, String> {
    let ports = wait_for(lines, output, deadline, "TLS_PORTS ")?;
    let ports: Vec<u16> = ports
        .split_whitespace()
        .map(|p| p.parse::<u16>().map_err(|e| format!("{ports:?}: {e}")))
        .collect::<Result<_, _>>()?;
    let [pem, p12] = ports[..] else {
        return Err(format!("expected two ports: {ports:?}"));
    };
    let timeout = Duration::from_secs(if valgrind { 60 } else { 10 });
    for (name, port) in [("PEM", pem), ("P12", p12)] {
        let mut sender = Sender::builder(format!("127.0.0.1:{port}"))
            .tls(common::trusting_test_ca())
            .connect_timeout(timeout)
            .ack_timeout(timeout)
            .retry(mllp_core::RetryPolicy::none())
            .build()
            .map_err(|e| e.to_string())?;
        for i in 1..=2 {
            let id = format!("{name}{i}");
            let ack = sender
                .send(&common::adt(&id))
                .map_err(|e| format!("{id}: {e}"))?;
            let text = format!("tls {id}");
            if ack.code.as_str() != "AA" || ack.control_id != id || ack.text != Some(text) {
                return Err(format!("{id}: unexpected ACK {ack:?}"));
            }
        }
        output.push(format!("(rust) TLS sender to the {name} listener: 2 x AA"));
    }
    stop(lines, output, stdin, deadline)
}

/// Checks `tls_test`'s `STATS key=value ...` line against what [`talk_tls`] sent.
#[cfg(feature = "tls")]
fn check_tls_stats(stats: &str) -> Result<(), String> {
    expect_stats(
        stats,
        &[
            ("pem", 2),
            ("p12", 2),
            ("calls", 4),
            ("tls_failures", 0),
            ("bad_info", 0),
        ],
    )
}

/// Runs `tls_client_auth_test`: with the `tls` feature, makes its files in `scratch`, starts
/// `openssl s_server -tls1_2` for its sender and drives its listener with
/// [`talk_client_auth`]; without it, on its own, expecting its notice that it skips the TLS
/// exchanges.
fn run_tls_client_auth(
    mut cmd: Command,
    log: &Path,
    scratch: &Path,
    limit: Duration,
    valgrind: bool,
) -> Result<(bool, String), String> {
    cmd.env("MLLP_TEST_CERTS", common::CERTS_DIR);
    #[cfg(feature = "tls")]
    {
        if !runs("openssl", &["version"]) {
            common::skip("no openssl command (the client certificate program)");
            return Ok((true, "skipped: no openssl command".into()));
        }
        make_client_auth_files(scratch)?;
        let (_server, tls12_port) = tls12_server()?;
        cmd.env("MLLP_TEST_SCRATCH", scratch)
            .env("MLLP_TEST_TLS12_PORT", tls12_port.to_string());
        let scratch = scratch.to_path_buf();
        let talk = move |lines: &mpsc::Receiver<String>,
                         output: &mut Vec<String>,
                         stdin: Option<ChildStdin>,
                         deadline: Instant,
                         valgrind: bool| {
            talk_client_auth(&scratch, lines, output, stdin, deadline, valgrind)
        };
        Ok(drive_c_listener(
            cmd,
            log,
            limit,
            valgrind,
            talk,
            check_client_auth_stats,
        ))
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = (scratch, valgrind);
        let (ok, text) = run_with_timeout(cmd, log, limit)?;
        if ok && !text.contains("no TLS support") {
            return Ok((false, format!("{text}\n(no notice that TLS is skipped)")));
        }
        Ok((ok, text))
    }
}

/// Runs the `openssl` command in `dir` with the words of `args`, then `more`; its error
/// output as the error.
#[cfg(feature = "tls")]
fn openssl_in(dir: &Path, args: &str, more: &[&str]) -> Result<(), String> {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args.split_whitespace())
        .args(more)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("openssl {args}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {args} {more:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Makes in `dir` (an empty directory), with the `openssl` command, what `tls_client_auth_test`
/// needs beside the test certificates: a new server certificate for the reload,
/// `reloaded.pem` and its key `reloaded.key` (subject "CN=mllp reloaded test server", for
/// localhost and 127.0.0.1, signed by the test CA, valid for a day), and the DER form of the
/// certificates compared: `reloaded.der`, `server.der`, `client.der`.
#[cfg(feature = "tls")]
fn make_client_auth_files(dir: &Path) -> Result<(), String> {
    let key = "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out reloaded.key";
    openssl_in(dir, key, &[])?;
    let request = "req -new -key reloaded.key -out reloaded.csr -subj";
    openssl_in(dir, request, &["/CN=mllp reloaded test server"])?;
    std::fs::write(
        dir.join("reloaded.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .map_err(|e| e.to_string())?;
    // A serial of its own, so that no two runs make the same certificate.
    let serial = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_nanos();
    let sign = "x509 -req -in reloaded.csr -days 1 -sha256 -extfile reloaded.ext -out reloaded.pem";
    let (ca, ca_key) = (common::cert_path("ca.pem"), common::cert_path("ca.key"));
    let serial = format!("0x{serial:x}");
    openssl_in(
        dir,
        sign,
        &["-CA", &ca, "-CAkey", &ca_key, "-set_serial", &serial],
    )?;
    for (pem, der) in [
        ("reloaded.pem".to_owned(), "reloaded.der"),
        (common::cert_path("server.pem"), "server.der"),
        (common::cert_path("client.pem"), "client.der"),
    ] {
        openssl_in(dir, &format!("x509 -outform DER -out {der} -in"), &[&pem])?;
    }
    Ok(())
}

/// `openssl s_server` on 127.0.0.1 (an OS-chosen port) with the test server identity,
/// speaking TLS 1.2 only; it answers nothing. Returns the process (killed when dropped) and
/// its port.
#[cfg(feature = "tls")]
fn tls12_server() -> Result<(Killed, u16), String> {
    let child = Command::new("openssl")
        .current_dir(common::CERTS_DIR)
        .args(["s_server", "-accept", "127.0.0.1:0", "-tls1_2"])
        .args(["-cert", "server.pem", "-key", "server.key"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("openssl s_server: {e}"))?;
    let mut server = Killed(child);
    let stdout = server.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    // Reads the port, then keeps reading (the server prints what it receives) until it ends.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.trim().strip_prefix("ACCEPT ") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "openssl s_server printed no ACCEPT line".to_owned())?;
    let port = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| format!("openssl s_server: ACCEPT {addr}"))?;
    Ok((server, port))
}

/// A TLS connection to 127.0.0.1:`port` presenting the test client certificate and trusting
/// the test CA: the certificate the listener served (DER) and the connection.
#[cfg(feature = "tls")]
fn connect_with_client_cert(
    port: u16,
    limit: Duration,
) -> Result<(Vec<u8>, mllp_core::Connection<mllp_core::Stream>), String> {
    let config = common::trusting_test_ca().identity(common::pem_identity("client"));
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(limit))
        .and_then(|()| tcp.set_write_timeout(Some(limit)))
        .map_err(|e| e.to_string())?;
    let stream = mllp_core::TlsClient::new(&config)
        .map_err(|e| e.to_string())?
        .connect("localhost", tcp, limit)
        .map_err(|e| format!("TLS connection: {e}"))?;
    let der = stream
        .tls_peer()
        .and_then(|p| p.certificate_der())
        .ok_or("no served certificate")?
        .to_vec();
    Ok((der, mllp_core::Connection::new(stream, Framing::default())))
}

/// Sends an ADT message with control ID `id` over `conn` and expects its AA.
#[cfg(feature = "tls")]
fn expect_aa(conn: &mut mllp_core::Connection<mllp_core::Stream>, id: &str) -> Result<(), String> {
    conn.write_frame(common::adt(id).as_bytes())
        .map_err(|e| format!("{id}: {e}"))?;
    let ack = conn
        .read_frame()
        .map_err(|e| format!("{id}: {e}"))?
        .ok_or_else(|| format!("{id}: closed without an acknowledgement"))?;
    let ack = String::from_utf8_lossy(ack);
    if ack.contains(&format!("MSA|AA|{id}")) {
        Ok(())
    } else {
        Err(format!("{id}: unexpected acknowledgement {ack:?}"))
    }
}

/// Writes `line` to the program's stdin.
#[cfg(feature = "tls")]
fn command(stdin: &mut ChildStdin, line: &str) -> Result<(), String> {
    stdin
        .write_all(format!("{line}\n").as_bytes())
        .and_then(|()| stdin.flush())
        .map_err(|e| format!("writing {line}: {e}"))
}

/// The Rust side of `tls_client_auth_test`'s listener (TLS 1.3 at least, client certificates
/// from the test CA): a client limited to TLS 1.2 is refused; a connection with the test
/// client certificate is served `server.pem`, still after the failed reloads, and
/// `reloaded.pem` (of `scratch`) after the reload, while the connection opened before it
/// keeps working; then `stop`.
#[cfg(feature = "tls")]
fn talk_client_auth(
    scratch: &Path,
    lines: &mpsc::Receiver<String>,
    output: &mut Vec<String>,
    stdin: Option<ChildStdin>,
    deadline: Instant,
    valgrind: bool,
) -> Result<String, String> {
    let mut stdin = stdin.ok_or("no stdin")?;
    let port = wait_for(lines, output, deadline, "CLIENT_AUTH_PORT ")?;
    let port = port.trim().parse::<u16>().map_err(|e| e.to_string())?;
    let limit = Duration::from_secs(if valgrind { 60 } else { 10 });
    let read = |name: &str| std::fs::read(scratch.join(name)).map_err(|e| format!("{name}: {e}"));
    let (server_der, reloaded_der) = (read("server.der")?, read("reloaded.der")?);

    // The oldest version the listener takes is TLS 1.3: `openssl s_client -tls1_2`, with the
    // test client certificate, fails its handshake (the listener counts it, see the STATS).
    let mut client = Command::new("openssl");
    let args = format!(
        "s_client -connect 127.0.0.1:{port} -tls1_2 -cert client.pem -key client.key -CAfile \
         ca.pem"
    );
    client
        .current_dir(common::CERTS_DIR)
        .args(args.split_whitespace());
    let log = scratch.join("s_client.log");
    let (ok, text) = run_with_timeout(client, &log, limit)?;
    if ok {
        let session = text.lines().find(|l| l.starts_with("New, ")).unwrap_or("");
        return Err(format!("a TLS 1.2 client was served: {session}"));
    }
    output.push("(rust) openssl s_client -tls1_2: refused".into());

    let (der, mut old) = connect_with_client_cert(port, limit)?;
    if der != server_der {
        return Err("before the reload, the listener does not serve server.pem".into());
    }
    expect_aa(&mut old, "OLD1")?;

    command(&mut stdin, "reload-bad")?;
    wait_for(lines, output, deadline, "RELOAD_BAD_DONE")?;
    let (der, mut kept) = connect_with_client_cert(port, limit)?;
    if der != server_der {
        return Err("after the failed reloads, the listener does not serve server.pem".into());
    }
    expect_aa(&mut kept, "KEPT1")?;
    output.push("(rust) failed reloads: server.pem still served".into());

    command(&mut stdin, "reload")?;
    wait_for(lines, output, deadline, "RELOADED")?;
    let (der, mut new) = connect_with_client_cert(port, limit)?;
    if der != reloaded_der {
        return Err("after the reload, the listener does not serve reloaded.pem".into());
    }
    if !der
        .windows(b"mllp reloaded test server".len())
        .any(|w| w == b"mllp reloaded test server")
    {
        return Err("the served certificate does not name \"mllp reloaded test server\"".into());
    }
    expect_aa(&mut new, "NEW1")?;
    // The connection opened before the reload goes on, with the certificate it was served.
    expect_aa(&mut old, "OLD2")?;
    output.push(
        "(rust) reload: new connections get CN=mllp reloaded test server, the older one still \
         answers"
            .into(),
    );
    stop(lines, output, Some(stdin), deadline)
}

/// Checks `tls_client_auth_test`'s `STATS key=value ...` line: six messages served, each with
/// the test client's subject and certificate in the callback (AUTH1 and AFTER1 from C; OLD1,
/// KEPT1, NEW1, OLD2 from [`talk_client_auth`]); five handshakes refused (no certificate,
/// another CA twice, expired, TLS 1.2).
#[cfg(feature = "tls")]
fn check_client_auth_stats(stats: &str) -> Result<(), String> {
    expect_stats(
        stats,
        &[
            ("calls", 6),
            ("subject_ok", 6),
            ("aa", 6),
            ("bad_info", 0),
            ("tls_failures", 5),
        ],
    )
}

/// Checks that each `key` of a `STATS key=value ...` line has the value wanted.
fn expect_stats(stats: &str, want: &[(&str, u64)]) -> Result<(), String> {
    for &(key, n) in want {
        if stat(stats, key)? != n {
            return Err(format!("{key} should be {n}: STATS {stats}"));
        }
    }
    Ok(())
}

/// The value of `key` in a `key=value ...` line.
fn stat(stats: &str, key: &str) -> Result<u64, String> {
    stats
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {key} in STATS {stats}"))
}

/// Checks the C listener's `STATS key=value ...` line against what [`talk`] sent.
fn check_stats(stats: &str) -> Result<(), String> {
    expect_stats(
        stats,
        &[
            ("calls", 8),
            ("messages", 8),
            ("aa", 5),
            ("ae", 2),
            ("ar", 1),
            ("connections", 3),
            ("bad_info", 0),
        ],
    )?;
    if stat(stats, "max_in_flight")? < 2 {
        return Err(format!("callbacks never overlapped: STATS {stats}"));
    }
    Ok(())
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a trivial program builds and runs with the sanitizers.
fn sanitizers_work(cc: &str, out: &Path) -> bool {
    let src = out.join("sanitizer-probe.c");
    let exe = out.join("sanitizer-probe");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let built = Command::new(cc)
        .args(SANITIZERS)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    built && runs(exe.to_str().unwrap(), &[])
}
