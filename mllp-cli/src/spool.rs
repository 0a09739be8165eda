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
    usage: "DIR [stats|verify|list|requeue-dead|purge-dead]",
    summary: "what a relay's spool holds; verify it; list, requeue or purge dead letters",
    about: "\
The spool of `mllp relay`, read without disturbing a relay that runs on it:
  stats (default)   `pending N`, `dead-lettered N`, `delivered N`, `oldest-pending-age SECS`
                    (or -), `held yes|no`, `damaged N` (damaged byte ranges skipped),
                    `missing-segments N`, `cursor-lost N`, `relay PID` (or `relay none`)
  verify            one line per fault (a damaged segment and offset, a missing segment, a
                    lost cursor; kept in DIR/damaged until removed), or `ok`; exit status 1
                    when there is any (see SPOOL.md)
  list              one line per dead letter: its name, MSH-10, and why (the ACK or error)
  requeue-dead      put the dead letters back in the queue (behind the pending messages) and
                    release a hold; a running relay takes them within a second
  purge-dead        delete the dead letters",
    tables: &[&OUTPUT],
    footer: "\
Exit status: 0 on success, 1 when verify finds a fault, 2 for usage errors and an unreadable
spool.",
    run,
    check: |args| parse(args).map(drop),
};

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
    logger::init(common.log_level(log::LevelFilter::Warn));
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
        other => {
            return Err(UsageError(format!(
            "mllp spool has no command {other:?}: stats, verify, list, requeue-dead or purge-dead"
        ))
            .into())
        }
    }
    Ok(0)
}
