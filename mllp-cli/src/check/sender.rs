//! `mllp check sender`: listens for a partner's sender and answers its messages by a script,
//! to see how it behaves (see [`run`] for the script).
//!
//! One thread accepts connections, one per connection reads frames with the library's
//! [`Decoder`](mllp::Decoder) (through [`Wire`]); both report to the script, which runs on the
//! calling thread and answers each message as its current step says.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mllp::charset::Charset;
use mllp::hl7::{AckBuilder, AckMode, Disposition, Header, COMMIT_ACK, COMMIT_NAK};
use mllp::Framing;

use super::inbound::{spawn_acceptor, Ev, Frame};
use super::report::{secs, shown, Report, Verdict};

/// The settings of a sender check.
pub struct Plan {
    /// How long to wait for the sender's first message.
    pub first_wait: Duration,
    /// How long each step waits for the sender to do something.
    pub wait: Duration,
    /// The framing.
    pub framing: Framing,
    /// The character set of the ACKs.
    pub charset: Charset,
    /// MLLP release 2: answer with commit blocks.
    pub mllp2: bool,
}

/// Connections closed at once after the drop step, to time the sender's reconnections.
const REFUSALS: usize = 2;

/// The script's view of the sender.
struct Script {
    rx: Receiver<Ev>,
    plan: Plan,
    writers: HashMap<usize, TcpStream>,
    pending: VecDeque<Frame>,
    /// When each connection was accepted (or refused).
    attempts: Vec<Instant>,
    closes: Vec<(usize, Instant, usize)>,
    refuse: Arc<AtomicUsize>,
    /// Control IDs answered with a plain AA.
    acked: Vec<String>,
    /// Control IDs sent again after their AA.
    duplicates: Vec<String>,
}

impl Script {
    /// The next frame within `until`, with accepted and closed connections recorded.
    fn frame(&mut self, until: Instant) -> Option<Frame> {
        if let Some(f) = self.pending.pop_front() {
            return Some(f);
        }
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Ev::Accepted(conn, stream, at)) => {
                    self.writers.insert(conn, stream);
                    self.attempts.push(at);
                }
                Ok(Ev::Refused(at)) => self.attempts.push(at),
                Ok(Ev::Closed(conn, at, partial)) => {
                    self.writers.remove(&conn);
                    self.closes.push((conn, at, partial));
                }
                Ok(Ev::Frame(f)) if !f.id.is_empty() && self.acked.contains(&f.id) => {
                    // Sent again after its AA: answered again, and noted.
                    self.duplicates.push(f.id.clone());
                    self.answer(&f, Disposition::Accept, None);
                }
                Ok(Ev::Frame(f)) => return Some(f),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Sends `payload` framed on `conn` (ignored when it is gone).
    fn reply(&mut self, conn: usize, payload: &[u8]) {
        let mut bytes = Vec::new();
        self.plan.framing.encode_into(payload, &mut bytes);
        if let Some(w) = self.writers.get_mut(&conn) {
            let _ = w.set_write_timeout(Some(self.plan.wait));
            let _ = w.write_all(&bytes);
        }
    }

    /// Answers `f` with `disposition`; with `msa2`, the ACK names that control ID instead.
    fn answer(&mut self, f: &Frame, disposition: Disposition, msa2: Option<&str>) {
        if disposition == Disposition::Accept && msa2.is_none() && !f.id.is_empty() {
            self.acked.push(f.id.clone());
        }
        if self.plan.mllp2 {
            let code = if disposition == Disposition::Accept {
                COMMIT_ACK
            } else {
                COMMIT_NAK
            };
            self.reply(f.conn, code);
            return;
        }
        let Ok(header) = Header::parse(&f.payload) else {
            return;
        };
        let mut ack = Vec::new();
        let text = match disposition {
            Disposition::Accept => None,
            Disposition::Error => Some("mllp check: an application error, on purpose"),
            Disposition::Reject => Some("mllp check: a rejection, on purpose"),
        };
        let mut builder = AckBuilder::new(disposition)
            .mode(AckMode::Original)
            .charset(self.plan.charset);
        if let Some(t) = text {
            builder = builder.text(t);
        }
        if builder.build(&header, &mut ack).is_err() {
            return;
        }
        if let Some(other) = msa2 {
            // MSA-2 is the last field of the MSA segment the builder wrote: `MSA|AA|<id>`.
            let sep = char::from(header.separators().field);
            let from = format!("MSA{sep}AA{sep}{}", f.id);
            if let Some(at) = ack.windows(from.len()).position(|w| w == from.as_bytes()) {
                let to = format!("MSA{sep}AA{sep}{other}");
                ack.splice(at..at + from.len(), to.into_bytes());
            }
        }
        self.reply(f.conn, &ack);
    }

    fn close(&mut self, conn: usize) {
        if let Some(w) = self.writers.remove(&conn) {
            let _ = w.shutdown(Shutdown::Both);
        }
    }
}

/// The message's segments after MSH, to tell a resend under a new MSH-10 from a new message.
fn body(payload: &[u8]) -> &[u8] {
    let end = payload.iter().position(|&b| b == b'\r' || b == b'\n');
    end.map_or(&[][..], |e| &payload[e..])
}

/// Where and when a frame came, relative to `since`.
fn when(f: &Frame, since: Instant, conn: usize) -> String {
    let on = if f.conn == conn {
        "the same connection"
    } else {
        "a new connection"
    };
    format!(
        "after {} on {on}",
        secs(f.at.saturating_duration_since(since))
    )
}

/// Listens on `listener` and runs the script; the report has a row for every step.
pub fn run(listener: TcpListener, plan: Plan) -> Report {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let mut report = Report::new("sender", addr);
    let (tx, rx) = mpsc::channel();
    let refuse = Arc::new(AtomicUsize::new(0));
    spawn_acceptor(listener, tx, plan.framing, refuse.clone());
    let mut s = Script {
        rx,
        plan,
        writers: HashMap::new(),
        pending: VecDeque::new(),
        attempts: Vec::new(),
        closes: Vec::new(),
        refuse,
        acked: Vec::new(),
        duplicates: Vec::new(),
    };
    let wait = s.plan.wait;
    let hold = wait.min(Duration::from_secs(1)) / 4;
    let Some(first) = s.frame(Instant::now() + s.plan.first_wait) else {
        report.add(
            "first-message",
            "A first message",
            Verdict::Fail,
            format!(
                "no message within {} ({} connections)",
                secs(s.plan.first_wait),
                s.attempts.len()
            ),
        );
        return report;
    };
    framing_row(&mut report, &s, &first);
    // 1. The ACK held back a little: does the next message wait for it?
    match s.frame(first.at + hold) {
        Some(again) if !first.id.is_empty() && again.id == first.id => {
            report.add(
                "waits-for-ack",
                "Waits for each ACK",
                Verdict::Warn,
                format!(
                    "sent MSH-10 {} again {} while its ACK was held for {}: its ACK timeout is \
                     shorter than that",
                    first.id,
                    when(&again, first.at, first.conn),
                    secs(hold)
                ),
            );
            s.answer(&again, Disposition::Accept, None);
        }
        Some(next) => {
            report.add(
                "waits-for-ack",
                "Waits for each ACK",
                Verdict::Fail,
                format!(
                    "sent MSH-10 {} {} while the ACK of {} was held for {}",
                    next.id,
                    when(&next, first.at, first.conn),
                    first.id,
                    secs(hold)
                ),
            );
            s.pending.push_back(next);
        }
        None => report.add(
            "waits-for-ack",
            "Waits for each ACK",
            Verdict::Pass,
            format!("sent nothing while the ACK was held for {}", secs(hold)),
        ),
    }
    s.answer(&first, Disposition::Accept, None);
    let steps: [Step; 5] = [no_ack, after_error, after_reject, wrong_msa2, dropped];
    for (i, step) in steps.iter().enumerate() {
        let Some(x) = s.frame(Instant::now() + wait) else {
            // Step i has row i; the drop step has two.
            for id in &ROWS[i..] {
                report.add(
                    id,
                    title(id),
                    Verdict::Skip,
                    format!("the sender sent no further message within {}", secs(wait)),
                );
            }
            break;
        };
        step(&mut report, &mut s, x);
    }
    let (verdict, evidence) = match s.duplicates.as_slice() {
        [] => (
            Verdict::Pass,
            "no message was sent again after its AA".to_owned(),
        ),
        d => (
            Verdict::Warn,
            format!(
                "sent again after its AA: {} (the receiver must drop duplicates)",
                d.join(", ")
            ),
        ),
    };
    report.add(
        "no-duplicates",
        "Sends an acknowledged message once",
        verdict,
        evidence,
    );
    report
}

type Step = fn(&mut Report, &mut Script, Frame);

/// The rows of the steps after the first message, in order.
const ROWS: [&str; 6] = [
    "resend-no-ack",
    "after-ae",
    "after-ar",
    "checks-msa2",
    "resend-after-drop",
    "reconnect",
];

fn title(id: &str) -> &'static str {
    match id {
        "resend-no-ack" => "Resends when no ACK comes",
        "after-ae" => "After an AE",
        "after-ar" => "After an AR",
        "checks-msa2" => "Checks MSA-2",
        "resend-after-drop" => "Resends after the connection drops",
        _ => "Reconnects",
    }
}

fn framing_row(report: &mut Report, s: &Script, f: &Frame) {
    let start = shown(s.plan.framing.start(), 8);
    let end = shown(s.plan.framing.end(), 8);
    let cr = matches!(f.payload.last(), Some(b'\r'));
    let mut evidence = format!(
        "frames {start}...{end}; the last segment ends with {}",
        match f.payload.last() {
            Some(b'\r') => "CR",
            Some(b'\n') => "LF",
            _ => "no terminator",
        }
    );
    if f.skipped > 0 {
        evidence.push_str(&format!("; {} bytes outside frames before it", f.skipped));
    }
    let verdict = if f.skipped > 0 || Header::parse(&f.payload).is_err() {
        evidence.push_str(&format!("; starts {}", shown(&f.payload, 24)));
        Verdict::Fail
    } else if !cr {
        Verdict::Warn
    } else {
        Verdict::Pass
    };
    report.add("framing", "Framing", verdict, evidence);
}

/// What came after `x` within the wait: the same message again, another, or nothing.
enum Next {
    Same(Frame),
    Renamed(Frame),
    Other(Frame),
    Nothing,
}

fn next_after(s: &mut Script, x: &Frame, until: Instant) -> Next {
    match s.frame(until) {
        // Without MSH-10, the same message is the same content.
        Some(f) if x.id.is_empty() && body(&f.payload) == body(&x.payload) => Next::Same(f),
        Some(f) if !x.id.is_empty() && f.id == x.id => Next::Same(f),
        Some(f) if body(&f.payload) == body(&x.payload) => Next::Renamed(f),
        Some(f) => Next::Other(f),
        None => Next::Nothing,
    }
}

fn no_ack(report: &mut Report, s: &mut Script, x: Frame) {
    let wait = s.plan.wait;
    let (verdict, evidence) = match next_after(s, &x, x.at + wait) {
        Next::Same(f) => {
            let e = format!("resent MSH-10 {} {}", x.id, when(&f, x.at, x.conn));
            s.answer(&f, Disposition::Accept, None);
            (Verdict::Pass, e)
        }
        Next::Renamed(f) => {
            let e = format!(
                "resent the message under a new MSH-10 {} {}",
                f.id,
                when(&f, x.at, x.conn)
            );
            s.answer(&f, Disposition::Accept, None);
            (Verdict::Warn, e)
        }
        Next::Other(f) => {
            let e = format!(
                "sent another message (MSH-10 {}) {} without an ACK for {}: an unconfirmed message was given up",
                f.id,
                when(&f, x.at, x.conn),
                x.id
            );
            s.pending.push_back(f);
            (Verdict::Fail, e)
        }
        Next::Nothing => {
            s.answer(&x, Disposition::Accept, None);
            let closed = s.closes.iter().find(|c| c.0 == x.conn).map_or_else(
                || "the connection stayed open; the late ACK was then sent".to_owned(),
                |c| {
                    let cut = match c.2 {
                        0 => String::new(),
                        n => format!(", {n} bytes into a frame"),
                    };
                    format!(
                        "it closed the connection after {}{cut}",
                        secs(c.1.saturating_duration_since(x.at))
                    )
                },
            );
            (
                Verdict::Warn,
                format!("no resend within {}; {closed}", secs(wait)),
            )
        }
    };
    report.add("resend-no-ack", title("resend-no-ack"), verdict, evidence);
}

fn after_negative(report: &mut Report, s: &mut Script, x: Frame, reject: bool) {
    let (id, code) = if reject {
        ("after-ar", "AR")
    } else {
        ("after-ae", "AE")
    };
    let disposition = if reject {
        Disposition::Reject
    } else {
        Disposition::Error
    };
    s.answer(&x, disposition, None);
    let wait = s.plan.wait;
    let (verdict, evidence) = match next_after(s, &x, Instant::now() + wait) {
        Next::Same(f) => {
            let e = format!(
                "resent the same MSH-10 {} after the {code}",
                when(&f, x.at, x.conn)
            );
            s.answer(&f, Disposition::Accept, None);
            let v = if reject { Verdict::Warn } else { Verdict::Pass };
            (
                v,
                if reject {
                    format!("{e}: a rejected message is resent unchanged")
                } else {
                    e
                },
            )
        }
        Next::Renamed(f) => {
            let e = format!(
                "resent it under a new MSH-10 {} {}",
                f.id,
                when(&f, x.at, x.conn)
            );
            s.answer(&f, Disposition::Accept, None);
            (Verdict::Warn, e)
        }
        Next::Other(f) => {
            let e = format!(
                "took the {code} as final and sent the next message {}",
                when(&f, x.at, x.conn)
            );
            s.pending.push_back(f);
            (Verdict::Pass, e)
        }
        Next::Nothing => (
            Verdict::Pass,
            format!("sent nothing more within {} after the {code}", secs(wait)),
        ),
    };
    report.add(id, title(id), verdict, evidence);
}

fn after_error(report: &mut Report, s: &mut Script, x: Frame) {
    after_negative(report, s, x, false);
}

fn after_reject(report: &mut Report, s: &mut Script, x: Frame) {
    after_negative(report, s, x, true);
}

fn wrong_msa2(report: &mut Report, s: &mut Script, x: Frame) {
    if s.plan.mllp2 {
        s.answer(&x, Disposition::Accept, None);
        report.add(
            "checks-msa2",
            title("checks-msa2"),
            Verdict::Skip,
            "MLLP release 2 commit blocks name no message",
        );
        return;
    }
    let other = format!("{}X", x.id);
    s.answer(&x, Disposition::Accept, Some(&other));
    let wait = s.plan.wait;
    let (verdict, evidence) = match next_after(s, &x, Instant::now() + wait) {
        Next::Same(f) => {
            let e = format!(
                "ignored an ACK naming {other} and resent {} {}",
                x.id,
                when(&f, x.at, x.conn)
            );
            s.answer(&f, Disposition::Accept, None);
            (Verdict::Pass, e)
        }
        Next::Renamed(f) => {
            let e = format!(
                "ignored an ACK naming {other} and resent under a new MSH-10 {}",
                f.id
            );
            s.answer(&f, Disposition::Accept, None);
            (Verdict::Warn, e)
        }
        Next::Other(f) => {
            let e = format!(
                "took an ACK naming {other} as the ACK of {} and sent the next message {}",
                x.id,
                when(&f, x.at, x.conn)
            );
            s.pending.push_back(f);
            (Verdict::Fail, e)
        }
        Next::Nothing => {
            s.answer(&x, Disposition::Accept, None);
            (
                Verdict::Pass,
                format!(
                    "did not take an ACK naming {other}: sent nothing more within {}",
                    secs(wait)
                ),
            )
        }
    };
    report.add("checks-msa2", title("checks-msa2"), verdict, evidence);
}

fn dropped(report: &mut Report, s: &mut Script, x: Frame) {
    let wait = s.plan.wait;
    s.refuse.store(REFUSALS, Ordering::SeqCst);
    let dropped_at = Instant::now();
    s.close(x.conn);
    let before = s.attempts.len();
    let mut until = dropped_at + wait;
    let next = loop {
        match next_after(s, &x, until) {
            Next::Nothing
                if s.attempts.len() > before
                    && s.attempts.last().is_some_and(|t| *t + wait > until) =>
            {
                until = *s.attempts.last().unwrap_or(&until) + wait;
            }
            n => break n,
        }
    };
    let (verdict, evidence) = match next {
        Next::Same(f) => {
            let e = format!("resent MSH-10 {} {}", x.id, when(&f, dropped_at, x.conn));
            s.answer(&f, Disposition::Accept, None);
            (Verdict::Pass, e)
        }
        Next::Renamed(f) => {
            s.answer(&f, Disposition::Accept, None);
            (
                Verdict::Warn,
                format!("resent it under a new MSH-10 {}", f.id),
            )
        }
        Next::Other(f) => {
            s.answer(&f, Disposition::Accept, None);
            (
                Verdict::Fail,
                format!("sent the next message (MSH-10 {}) after the drop: {} was never confirmed and not resent", f.id, x.id),
            )
        }
        Next::Nothing => (
            Verdict::Warn,
            format!("nothing within {} of the drop", secs(wait)),
        ),
    };
    report.add(
        "resend-after-drop",
        title("resend-after-drop"),
        verdict,
        evidence,
    );
    let attempts: Vec<Duration> = s.attempts[before..]
        .iter()
        .map(|t| t.saturating_duration_since(dropped_at))
        .collect();
    let (verdict, evidence) = if attempts.is_empty() {
        (
            Verdict::Warn,
            format!("no new connection within {} of the drop", secs(wait)),
        )
    } else {
        let shown: Vec<String> = attempts.iter().map(|d| secs(*d)).collect();
        (
            Verdict::Pass,
            format!(
                "connection attempts {} after the drop (the first {} closed at once by the check)",
                shown.join(", "),
                REFUSALS.min(attempts.len())
            ),
        )
    };
    report.add("reconnect", title("reconnect"), verdict, evidence);
}
