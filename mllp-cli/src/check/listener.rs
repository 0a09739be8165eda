//! `mllp check listener`: sends test messages to a partner's listener and reports how it
//! behaves, one row per check (see [`run`] for the list).

use std::time::{Duration, Instant};

use mllp::hl7::AckCode;

use super::messages::Maker;
use super::report::{secs, Report, Verdict};
use super::session::{Answer, Session, Target};

/// The settings of a listener check beyond the connection.
pub struct Plan {
    /// Messages in the sequence on one connection (latency, one ACK each).
    pub count: usize,
    /// The largest message to try.
    pub max_size: usize,
    /// How long to watch an idle connection.
    pub wait: Duration,
    /// Also send a message without MSH-10 and junk.
    pub include_malformed: bool,
    /// MLLP release 2: replies are commit blocks.
    pub mllp2: bool,
}

/// How long to wait for frames that should not come (a second ACK) after a reply.
fn linger(plan: &Plan) -> Duration {
    plan.wait.min(Duration::from_millis(300))
}

/// Runs every check of a listener and returns the report. `Err` when not even one
/// connection could be made.
pub fn run(target: &Target, plan: &Plan, maker: &mut Maker) -> Result<Report, String> {
    let mut report = Report::new("listener", target.addr.clone());
    let mut s = Session::new(target);
    s.wire()?;
    if target.tls.is_some() {
        super::cert::tls_rows(&mut report, &s);
    }
    let first = sequence(&mut report, &mut s, plan, maker);
    if plan.mllp2 {
        report.add(
            "ack-header",
            "ACK header",
            Verdict::Skip,
            "MLLP release 2: the replies are commit blocks, which have no header",
        );
    } else if let Some(first) = first {
        super::ack_header::rows(&mut report, &s, &first);
    }
    bytewise(&mut report, &mut s, plan, maker);
    two_in_one_write(&mut report, &mut s, plan, maker);
    non_ascii(&mut report, &mut s, maker);
    largest(&mut report, &mut s, plan, maker);
    second_connection(&mut report, &mut s, maker);
    idle(&mut report, target, plan);
    latency(&mut report, &s);
    if plan.include_malformed {
        super::malformed::rows(&mut report, &mut s, maker);
    }
    s.hang_up();
    Ok(report)
}

/// The sequence of plain messages on one connection: accepted, connection kept, one ACK per
/// message, MSA-2. Returns the first reply frame.
fn sequence(
    report: &mut Report,
    s: &mut Session<'_>,
    plan: &Plan,
    maker: &mut Maker,
) -> Option<Vec<u8>> {
    let mut ids = Vec::new();
    let mut answers = Vec::new();
    let mut first_reply = None;
    let before = s.connections;
    let first_send = s.per_send.len();
    for i in 0..plan.count {
        let (msg, id) = maker.plain();
        let answer = s.ask(&msg, &id);
        if i == 0 {
            first_reply = s.replies.last().cloned();
        }
        // A second ACK comes at once if it comes at all; later extras show up before the
        // next reply and are counted there.
        if i < 2 || i + 1 == plan.count {
            s.linger(linger(plan));
        }
        ids.push(id);
        answers.push(answer);
    }
    // The first connection was opened before the sequence.
    let connections = s.connections - before + 1;
    let accepted = answers.iter().filter(|a| a.accepted()).count();
    let n = answers.len();
    let verdict = match accepted {
        a if a == n => Verdict::Pass,
        0 if !answers.iter().any(|a| matches!(a, Answer::Ack { .. })) => Verdict::Fail,
        _ => Verdict::Warn,
    };
    report.add(
        "accepts",
        "Accepts a test message",
        verdict,
        format!(
            "{accepted} of {n} plain test messages accepted; the first got {}",
            answers[0].describe(s.target.ack_timeout)
        ),
    );
    let (verdict, evidence) = match connections {
        1 => (Verdict::Pass, format!("{n} messages on one connection")),
        c if c >= n => (
            Verdict::Warn,
            format!(
                "closed the connection after every message: {c} connections for {n} messages \
                 (a sender must reconnect for each one)"
            ),
        ),
        c => (
            Verdict::Warn,
            format!(
                "closed the connection {} times: {c} connections for {n} messages",
                c - 1
            ),
        ),
    };
    let evidence = match s.stale {
        0 => evidence,
        k => format!(
            "{evidence}; {k} messages were written into a connection it had just closed and \
             sent again"
        ),
    };
    report.add(
        "keeps-connection",
        "Keeps the connection open",
        verdict,
        evidence,
    );
    let frames: Vec<usize> = s.per_send[first_send..].to_vec();
    let shown: Vec<String> = frames.iter().map(usize::to_string).collect();
    let (verdict, evidence) = if frames.iter().all(|&f| f == 1) {
        (Verdict::Pass, format!("{n} messages, one reply frame each"))
    } else {
        (
            Verdict::Fail,
            format!(
                "reply frames after each of the {n} messages: {} (expected 1 each)",
                shown.join(", ")
            ),
        )
    };
    report.add(
        "ack-per-message",
        "Exactly one ACK per message",
        verdict,
        evidence,
    );
    if !plan.mllp2 {
        let mismatched: Vec<String> = answers
            .iter()
            .zip(&ids)
            .enumerate()
            .filter_map(|(i, (a, id))| match a {
                Answer::Ack { ack, .. } if ack.control_id != *id => Some(format!(
                    "message {} ({id}): MSA-2 {:?}",
                    i + 1,
                    ack.control_id
                )),
                _ => None,
            })
            .collect();
        let acked = answers
            .iter()
            .filter(|a| matches!(a, Answer::Ack { .. }))
            .count();
        let (verdict, evidence) = match (acked, mismatched.is_empty()) {
            (0, _) => (Verdict::Skip, "no ACK to look at".to_owned()),
            (_, true) => (Verdict::Pass, format!("MSA-2 = MSH-10 in all {acked} ACKs")),
            (_, false) => (Verdict::Fail, list(&mismatched, 4)),
        };
        report.add("msa2", "MSA-2 echoes MSH-10", verdict, evidence);
    }
    first_reply
}

pub fn list(items: &[String], max: usize) -> String {
    let mut out = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > max {
        out.push_str(&format!("; and {} more", items.len() - max));
    }
    out
}

/// One row from one exchange: pass when accepted.
fn exchange_row(
    report: &mut Report,
    s: &Session<'_>,
    id: &'static str,
    title: &'static str,
    answer: &Answer,
    what: &str,
) {
    let verdict = match answer {
        a if a.accepted() => Verdict::Pass,
        Answer::Ack { .. } => Verdict::Warn,
        _ => Verdict::Fail,
    };
    report.add(
        id,
        title,
        verdict,
        format!("{what}: {}", answer.describe(s.target.ack_timeout)),
    );
}

fn bytewise(report: &mut Report, s: &mut Session<'_>, plan: &Plan, maker: &mut Maker) {
    let (msg, id) = maker.plain();
    let n = msg.len() + s.target.framing.start().len() + s.target.framing.end().len();
    let answer = s.ask_with(&msg, &id, |w, p, t| {
        w.send_bytewise(p, t.max(Duration::from_secs(5)))
    });
    exchange_row(
        report,
        s,
        "one-byte-writes",
        "Message in one-byte writes",
        &answer,
        &format!("{n} writes of one byte"),
    );
    s.linger(linger(plan));
}

fn two_in_one_write(report: &mut Report, s: &mut Session<'_>, plan: &Plan, maker: &mut Maker) {
    let (m1, id1) = maker.plain();
    let (m2, id2) = maker.plain();
    let first = s.ask_with(&m1, &id1, |w, p, t| {
        let mut both = w.framed(p);
        both.extend_from_slice(&w.framed(&m2));
        w.write_raw(&both, t)
    });
    s.note_sent(&id2);
    let second = if s.wire.as_ref().is_some_and(|w| !w.is_closed()) || first.accepted() {
        s.read_reply(&id2, s.target.ack_timeout)
    } else {
        Answer::Closed
    };
    s.linger(linger(plan));
    let both = first.accepted() && second.accepted();
    let t = s.target.ack_timeout;
    let evidence = if plan.mllp2 {
        format!(
            "first: {}; second: {}",
            first.describe(t),
            second.describe(t)
        )
    } else {
        format!(
            "first: {} (ACK frames naming it: {}); second: {} (ACK frames naming it: {})",
            first.describe(t),
            s.acks_of(&id1),
            second.describe(t),
            s.acks_of(&id2)
        )
    };
    let verdict = if both {
        Verdict::Pass
    } else if matches!(first, Answer::Ack { .. }) && matches!(second, Answer::Ack { .. }) {
        Verdict::Warn
    } else {
        Verdict::Fail
    };
    report.add(
        "two-in-one-write",
        "Two messages in one write",
        verdict,
        evidence,
    );
}

fn non_ascii(report: &mut Report, s: &mut Session<'_>, maker: &mut Maker) {
    let charset = maker.charset();
    let Some(name) = maker.non_ascii_name() else {
        report.add(
            "non-ascii",
            "Non-ASCII text",
            Verdict::Skip,
            format!("{charset} carries no non-ASCII text"),
        );
        return;
    };
    let (msg, id) = maker.bytes(0, &name);
    let answer = s.ask(&msg, &id);
    let mut what = format!(
        "PID-5 {name:?} in {charset}, MSH-18 {:?}",
        charset.msh18_name().unwrap_or("")
    );
    if let Answer::Ack { ack, .. } = &answer {
        if let Some(t) = ack.text.as_deref().filter(|t| t.contains('\u{fffd}')) {
            what.push_str(&format!("; the ACK text has replaced characters: {t:?}"));
        }
    }
    exchange_row(report, s, "non-ascii", "Non-ASCII text", &answer, &what);
}

fn kib(n: usize) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

fn largest(report: &mut Report, s: &mut Session<'_>, plan: &Plan, maker: &mut Maker) {
    let mut sizes: Vec<usize> = [1, 16, 64, 256, 1024, 2048, 4096, 8192, 16384]
        .iter()
        .map(|k| k * 1024)
        .filter(|&n| n < plan.max_size)
        .collect();
    sizes.push(plan.max_size);
    let mut best = None;
    let mut refused = None;
    for size in sizes {
        let (msg, id) = maker.bytes(size, "CHECK^TEST");
        // A large message may take a while to arrive and be parsed.
        let answer = s.ask_with(&msg, &id, |w, p, t| w.send(p, t + Duration::from_secs(5)));
        if answer.accepted() {
            best = Some(msg.len());
        } else {
            refused = Some((msg.len(), answer.describe(s.target.ack_timeout)));
            s.hang_up();
            break;
        }
    }
    let (verdict, evidence) = match (best, refused) {
        (Some(b), None) => (
            Verdict::Pass,
            format!("every size up to {} accepted", kib(b)),
        ),
        (Some(b), Some((n, why))) => (
            Verdict::Warn,
            format!("largest accepted {}; {}: {why}", kib(b), kib(n)),
        ),
        (None, Some((n, why))) => (Verdict::Fail, format!("{}: {why}", kib(n))),
        (None, None) => (Verdict::Skip, "nothing sent".into()),
    };
    report.add(
        "largest-message",
        "Largest message accepted",
        verdict,
        evidence,
    );
}

fn second_connection(report: &mut Report, s: &mut Session<'_>, maker: &mut Maker) {
    s.hang_up();
    let first = match s.target.connect() {
        Ok(w) => w,
        Err(e) => {
            report.add(
                "second-connection",
                "Second connection while one is open",
                Verdict::Fail,
                e,
            );
            return;
        }
    };
    let (msg, id) = maker.plain();
    let second = s.ask(&msg, &id);
    s.hang_up();
    s.wire = Some(first);
    let (msg, id) = maker.plain();
    let again = s.ask(&msg, &id);
    let t = s.target.ack_timeout;
    let verdict = match (second.accepted(), again.accepted()) {
        (true, true) => Verdict::Pass,
        (true, false) => Verdict::Warn,
        _ => Verdict::Fail,
    };
    report.add(
        "second-connection",
        "Second connection while one is open",
        verdict,
        format!(
            "with one connection open and idle, a second one: {}; then the first: {}",
            second.describe(t),
            again.describe(t)
        ),
    );
    s.hang_up();
}

fn idle(report: &mut Report, target: &Target, plan: &Plan) {
    let mut wire = match target.connect() {
        Ok(w) => w,
        Err(e) => {
            report.add("idle", "Idle connection", Verdict::Fail, e);
            return;
        }
    };
    let started = Instant::now();
    let (verdict, evidence) = match wire.read(plan.wait) {
        super::wire::Got::Closed { .. } => (
            Verdict::Pass,
            format!(
                "closed an idle connection after {}",
                secs(started.elapsed())
            ),
        ),
        super::wire::Got::Quiet => (
            Verdict::Pass,
            format!(
                "kept an idle connection open for the {} watched",
                secs(plan.wait)
            ),
        ),
        super::wire::Got::Frame(f) => (
            Verdict::Warn,
            format!(
                "sent a frame unprompted after {}: {}",
                secs(started.elapsed()),
                super::report::shown(&f, 60)
            ),
        ),
    };
    report.add("idle", "Idle connection", verdict, evidence);
    wire.close();
}

fn latency(report: &mut Report, s: &Session<'_>) {
    let mut l = s.latencies.clone();
    if l.is_empty() {
        report.add(
            "latency",
            "ACK latency",
            Verdict::Skip,
            "no accepted message",
        );
        return;
    }
    l.sort();
    let at = |q: f64| l[((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1];
    let (p50, p99) = (at(0.5), at(0.99));
    report.add(
        "latency",
        "ACK latency",
        if p99 > Duration::from_secs(1) {
            Verdict::Warn
        } else {
            Verdict::Pass
        },
        format!(
            "p50 {}, p99 {} over {} messages",
            secs(p50),
            secs(p99),
            l.len()
        ),
    );
}

/// The reply code in a few words, for the malformed rows.
pub fn code_of(answer: &Answer) -> Option<AckCode> {
    match answer {
        Answer::Ack { ack, .. } => Some(ack.code),
        _ => None,
    }
}
