//! `mllp spool DIR`: what a relay's spool holds, and the operator's commands on its dead
//! letters. Reading and the dead-letter commands work while a relay runs.

use mllp::Outbox;

use super::args::{Args, Command, UsageError};
use super::listen::print_line;
use super::logger;
use super::options::{Common, Failure, OUTPUT};

/// `mllp spool`.
pub static COMMAND: Command = Command {
    name: "spool",
    usage: "DIR [stats|verify|list|requeue-dead|purge-dead|skip]",
    summary: "what a relay's spool holds and what is stuck; verify, skip, requeue, purge",
    about: "\
The spool of `mllp relay`, read without disturbing a relay that runs on it:
  stats (default)   `pending N`, `dead-lettered N`, `delivered N`, `oldest-pending-age SECS`
                    (or -), `held yes|no`, `damaged N` (damaged byte ranges skipped),
                    `missing-segments N`, `cursor-lost N`, `relay PID` (or `relay none`), and
                    `head -` or, while the message at the head fails, `head NAME MSH-10
                    attempts N age SECS: WHY` (the last error, or the ACK's code and
                    MSA-3/ERR texts)
  verify            one line per fault (a damaged segment and offset, a missing segment, a
                    lost cursor; kept in DIR/damaged until removed), or `ok`; exit status 1
                    when there is any (see SPOOL.md)
  list              the failing head as above, then one line per dead letter: its name,
                    MSH-10, and why (the ACK or error)
  requeue-dead      put the dead letters back in the queue (behind the pending messages) and
                    release a hold; a running relay takes them within a second
  purge-dead        delete the dead letters
  skip              move the failing message at the head to the dead letters, so the rest
                    flows; a running relay does it before its next attempt (waits up to 30 s)",
    tables: &[&OUTPUT],
    footer: "\
Exit status: 0 on success, 1 when verify finds a fault or skip finds no failing head, 2 for
usage errors and a missing or unreadable spool.",
    run,
    check: |args| parse(args).map(drop),
};

/// How long `skip` waits for a running relay to act.
const SKIP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The spool directory and what to do with it.
fn parse(mut args: Args) -> Result<(Common, String, String), UsageError> {
    let mut common = Common::default();
    while let Some(f) = args.next_option()? {
        if !OUTPUT.apply(&f, &mut common)? {
            return Err(f.unhandled("spool"));
        }
    }
    let mut positionals = args.positionals().into_iter();
    let dir = positionals.next().ok_or_else(|| {
        UsageError("mllp spool needs the spool directory, as given to mllp relay --spool".into())
    })?;
    let action = positionals.next().unwrap_or_else(|| "stats".into());
    if let Some(extra) = positionals.next() {
        return Err(UsageError(format!(
            "mllp spool takes one command, not also {extra:?}"
        )));
    }
    Ok((common, dir, action))
}

/// Runs `mllp spool`.
pub fn run(args: Args) -> Result<u8, Failure> {
    let (common, dir, action) = parse(args)?;
    logger::init(common.log_level(log::LevelFilter::Warn), common.log_format);
    let failed = |e: mllp::Error| Failure::fatal(format!("spool {dir}: {e}"));
    match action.as_str() {
        "stats" => {
            let s = Outbox::inspect(&dir).map_err(failed)?;
            print_line(&format!("pending {}", s.pending));
            print_line(&format!("dead-lettered {}", s.dead_lettered));
            print_line(&format!("delivered {}", s.delivered));
            print_line(&match s.oldest_pending_age {
                Some(age) => format!("oldest-pending-age {:.1}", age.as_secs_f64()),
                None => "oldest-pending-age -".into(),
            });
            print_line(&format!("held {}", if s.held { "yes" } else { "no" }));
            print_line(&format!("damaged {}", s.damaged_regions));
            print_line(&format!("missing-segments {}", s.missing_segments));
            print_line(&format!("cursor-lost {}", s.cursor_lost));
            print_line(&match Outbox::holder(&dir) {
                Some(pid) => format!("relay {pid}"),
                None => "relay none".into(),
            });
            let head = Outbox::head(&dir).map_err(failed)?;
            print_line(&head.map_or_else(|| "head -".into(), |h| head_line(&h)));
        }
        "verify" => {
            let faults = Outbox::verify(&dir).map_err(failed)?;
            for fault in &faults {
                print_line(&fault.to_string());
            }
            if !faults.is_empty() {
                log::error!("spool {dir}: {} faults (see SPOOL.md)", faults.len());
                return Ok(1);
            }
            print_line("ok");
        }
        "list" => {
            if let Some(head) = Outbox::head(&dir).map_err(failed)? {
                print_line(&head_line(&head));
            }
            for d in Outbox::dead_letters(&dir).map_err(failed)? {
                let reason = d.reason.replace(['\r', '\n'], " ");
                let id = d.control_id().unwrap_or_else(|| "-".into());
                print_line(&format!("{} {id} {}", d.name, reason.trim_end()));
            }
        }
        "requeue-dead" => {
            let n = Outbox::requeue_dead(&dir).map_err(failed)?;
            print_line(&format!("requeued {n}"));
        }
        "purge-dead" => {
            let n = Outbox::purge_dead(&dir).map_err(failed)?;
            print_line(&format!("purged {n}"));
        }
        "skip" => match Outbox::skip_head(&dir, SKIP_WAIT).map_err(failed)? {
            Some(h) => print_line(&format!(
                "skipped {} {}",
                h.name,
                h.control_id.as_deref().unwrap_or("-")
            )),
            None => {
                return Err(Failure::negative(format!(
                    "spool {dir}: nothing to skip: no message at the head is failing"
                )))
            }
        },
        other => {
            return Err(UsageError(format!(
                "mllp spool has no command {other:?}: stats, verify, list, requeue-dead, \
                 purge-dead or skip"
            ))
            .into())
        }
    }
    Ok(0)
}

/// `head NAME MSH-10 attempts N age SECS: WHY` for the failing head.
fn head_line(h: &mllp::Head) -> String {
    let age = std::time::SystemTime::now()
        .duration_since(h.enqueued_at)
        .unwrap_or_default();
    let why = h.last_error.lines().next().unwrap_or("");
    format!(
        "head {} {} attempts {} age {:.1}: {}",
        h.name,
        h.control_id.as_deref().unwrap_or("-"),
        h.attempts,
        age.as_secs_f64(),
        why.replace('\r', " ")
    )
}
