//! `mllp spool DIR`: what a relay's spool holds, and the operator's commands on its dead
//! letters. Reading and the dead-letter commands work while a relay runs.

use mllp::Outbox;

use super::args::{Args, UsageError};
use super::listen::print_line;
use super::logger;
use super::options::{unknown, Common, Failure};

/// `mllp spool --help`.
pub const HELP: &str = "\
Usage: mllp spool DIR [stats|list|requeue-dead|purge-dead|skip]

The spool of `mllp relay`, read without disturbing a relay that runs on it:
  stats (default)   `pending N`, `dead-lettered N`, `delivered N`, `oldest-pending-age SECS`
                    (or -), `held yes|no`, `relay PID` (or `relay none`), and `head -` or,
                    while the message at the head fails, `head NAME MSH-10 attempts N age
                    SECS: WHY` (the last error, or the ACK's code and MSA-3/ERR texts)
  list              the failing head as above, then one line per dead letter: its name,
                    MSH-10, and why (the ACK or error)
  requeue-dead      put the dead letters back in the queue (behind the pending messages) and
                    release a hold; a running relay takes them within a second
  purge-dead        delete the dead letters
  skip              move the failing message at the head to the dead letters, so the rest
                    flows; a running relay does it before its next attempt (waits up to 30 s)

Exit status: 0 on success, 1 when skip finds no failing head, 2 for usage errors and a missing,
unreadable or corrupt spool.";

/// How long `skip` waits for a running relay to act.
const SKIP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `mllp spool`.
pub fn run(mut args: Args) -> Result<u8, Failure> {
    let mut common = Common::default();
    while let Some(name) = args.next_option() {
        if !common.take(&name, &mut args)? {
            return Err(unknown("spool", &name).into());
        }
    }
    logger::init(common.log_level(log::LevelFilter::Warn));
    let mut positionals = args.positionals().into_iter();
    let dir = positionals.next().ok_or_else(|| {
        UsageError("mllp spool needs the spool directory, as given to mllp relay --spool".into())
    })?;
    let action = positionals.next().unwrap_or_else(|| "stats".into());
    if let Some(extra) = positionals.next() {
        return Err(UsageError(format!("mllp spool takes one command, not also {extra:?}")).into());
    }
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
            print_line(&match Outbox::holder(&dir) {
                Some(pid) => format!("relay {pid}"),
                None => "relay none".into(),
            });
            let head = Outbox::head(&dir).map_err(failed)?;
            print_line(&head.map_or_else(|| "head -".into(), |h| head_line(&h)));
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
                "mllp spool has no command {other:?}: stats, list, requeue-dead, purge-dead or \
                 skip"
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
