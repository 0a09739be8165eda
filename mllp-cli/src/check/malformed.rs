//! `mllp check listener --include-malformed`: what the listener answers to a message without
//! MSH-10 and to a frame of junk, and whether it still serves afterwards.

use mllp::hl7::AckCode;

use super::listener::code_of;
use super::messages::Maker;
use super::report::{Report, Verdict};
use super::session::{Answer, Session};

/// Adds the two rows.
pub fn rows(report: &mut Report, s: &mut Session<'_>, maker: &mut Maker) {
    let (text, id) = maker.message(0, "CHECK^TEST");
    let without = text.replacen(&format!("|{id}|"), "||", 1);
    let answer = s.ask(without.as_bytes(), "");
    // Any ACK will do: the message is readable, only its ACK cannot name it.
    let any = matches!(answer, Answer::Ack { .. });
    row(
        report,
        s,
        maker,
        ("no-msh10", "Message without MSH-10"),
        &answer,
        any,
    );
    let junk = b"THIS IS NOT HL7 (mllp check)\r";
    let answer = s.ask(junk, "");
    let negative = matches!(
        code_of(&answer),
        Some(
            AckCode::ApplicationError
                | AckCode::ApplicationReject
                | AckCode::CommitError
                | AckCode::CommitReject
        )
    );
    row(
        report,
        s,
        maker,
        ("junk", "Junk in a frame"),
        &answer,
        negative,
    );
}

fn row(
    report: &mut Report,
    s: &mut Session<'_>,
    maker: &mut Maker,
    (id, title): (&'static str, &'static str),
    answer: &Answer,
    good: bool,
) {
    let t = s.target.ack_timeout;
    let (msg, next) = maker.plain();
    let after = s.ask(&msg, &next);
    let verdict = match (good, after.accepted()) {
        (_, false) => Verdict::Fail,
        (true, true) => Verdict::Pass,
        (false, true) => Verdict::Warn,
    };
    report.add(
        id,
        title,
        verdict,
        format!(
            "reply: {}; a valid message after it: {}",
            answer.describe(t),
            after.describe(t)
        ),
    );
}
