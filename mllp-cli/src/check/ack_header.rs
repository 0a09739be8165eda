//! The checks of an ACK's header: applications and facilities swapped, MSH-9, a unique MSH-10,
//! MSH-11/12 echoed, the encoding characters and the last segment's terminator.

use mllp::hl7::Header;

use super::listener::list;
use super::messages::{RECEIVING, SENDING, VERSION};
use super::report::{Report, Verdict};
use super::session::Session;

/// What is wrong with the header of `ack`, the reply to a test message, for each header check
/// (an empty list: nothing).
#[derive(Debug, Default)]
pub struct HeaderFindings {
    /// MSH-3..6 not the message's 5, 6, 3, 4.
    pub swapped: Vec<String>,
    /// MSH-9, as found.
    pub msh9: String,
    /// MSH-10 of the ACK.
    pub control_id: String,
    /// MSH-11 and MSH-12, as found.
    pub msh11: String,
    /// MSH-12.
    pub msh12: String,
    /// MSH-1 and MSH-2.
    pub encoding: String,
    /// How the last segment ends (`CR`, `LF`, `nothing`).
    pub terminator: &'static str,
}

/// Reads the header of `ack`; `None` when it has no readable MSH.
pub fn read_header(ack: &[u8]) -> Option<HeaderFindings> {
    let h = Header::parse(ack).ok()?;
    let text = |v: Option<&[u8]>| String::from_utf8_lossy(v.unwrap_or_default()).into_owned();
    let mut swapped = Vec::new();
    let (sa, sf) = SENDING;
    let (ra, rf) = RECEIVING;
    for (n, want) in [(3, ra), (4, rf), (5, sa), (6, sf)] {
        let got = text(h.component(n, 1));
        if got != want {
            swapped.push(format!("MSH-{n} {got:?} (expected {want:?})"));
        }
    }
    let terminator = match ack.last() {
        Some(b'\r') => "CR",
        Some(b'\n') if ack.ends_with(b"\r\n") => "CRLF",
        Some(b'\n') => "LF",
        _ => "nothing",
    };
    Some(HeaderFindings {
        swapped,
        msh9: text(h.field(9)),
        control_id: text(h.field(10)),
        msh11: text(h.field(11)),
        msh12: text(h.field(12)),
        encoding: format!("{}{}", text(h.field(1)), text(h.field(2))),
        terminator,
    })
}

/// The rows about the header of `first`, the first reply, and the MSH-10s of every reply.
pub fn rows(report: &mut Report, s: &Session<'_>, first: &[u8]) {
    let Some(h) = read_header(first) else {
        report.add(
            "ack-header",
            "ACK header",
            Verdict::Fail,
            "the first reply has no readable MSH",
        );
        return;
    };
    let (sa, sf) = SENDING;
    let (ra, rf) = RECEIVING;
    let (verdict, evidence) = if h.swapped.is_empty() {
        (Verdict::Pass, format!("MSH-3..6 = {ra}|{rf}|{sa}|{sf}"))
    } else {
        (Verdict::Warn, list(&h.swapped, 4))
    };
    report.add(
        "ack-swapped",
        "ACK applications and facilities swapped",
        verdict,
        evidence,
    );
    let (verdict, evidence) = match h.msh9.as_str() {
        "ACK^A01^ACK" => (Verdict::Pass, "ACK^A01^ACK".to_owned()),
        m if m.starts_with("ACK") => (
            Verdict::Warn,
            format!("{m:?} (HL7 2.4 and later: ACK^<trigger>^ACK)"),
        ),
        m => (Verdict::Fail, format!("{m:?} is not an ACK")),
    };
    report.add("ack-msh9", "ACK message type (MSH-9)", verdict, evidence);
    let ids: Vec<String> = s
        .replies
        .iter()
        .filter_map(|r| read_header(r).map(|h| h.control_id))
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    let (verdict, evidence) = if ids.iter().any(|i| i.is_empty()) {
        (Verdict::Warn, "an ACK has an empty MSH-10".to_owned())
    } else if unique.len() == ids.len() {
        (
            Verdict::Pass,
            format!(
                "{} ACKs, {} distinct MSH-10s (first {:?})",
                ids.len(),
                unique.len(),
                h.control_id
            ),
        )
    } else {
        (
            Verdict::Warn,
            format!(
                "{} ACKs share {} MSH-10s (first {:?})",
                ids.len(),
                unique.len(),
                h.control_id
            ),
        )
    };
    report.add(
        "ack-msh10",
        "ACK control ID unique (MSH-10)",
        verdict,
        evidence,
    );
    let ok = h.msh11 == "T" && h.msh12 == VERSION;
    report.add(
        "ack-version",
        "ACK echoes MSH-11/MSH-12",
        if ok { Verdict::Pass } else { Verdict::Warn },
        format!(
            "MSH-11 {:?}, MSH-12 {:?} (the message had \"T\", {VERSION:?}){}",
            h.msh11,
            h.msh12,
            if ok {
                ""
            } else {
                ": a fixed value breaks partners that check it"
            }
        ),
    );
    report.add(
        "ack-encoding",
        "ACK encoding characters",
        if h.encoding == "|^~\\&" {
            Verdict::Pass
        } else {
            Verdict::Warn
        },
        format!("MSH-1/MSH-2 {:?}", h.encoding),
    );
    report.add(
        "ack-terminator",
        "ACK last segment terminated",
        if h.terminator == "CR" {
            Verdict::Pass
        } else {
            Verdict::Warn
        },
        format!("the last segment ends with {}", h.terminator),
    );
}
