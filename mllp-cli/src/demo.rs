//! `mllp demo`: a listener and a sender on loopback, a few messages, a short benchmark.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use mllp::charset::Charset;
use mllp::{FileStore, Framing, Handler, Listener, Message, Response, Sender, StoreHandler};

use super::args::{Args, Command, Group, Opt, Spec, UsageError};
use super::listen::print_line;
use super::logger;
use super::options::{Common, Failure, FRAMING, OUTPUT};
use mllp_cli::bench::{self, BenchConfig};

/// `mllp demo`.
pub static COMMAND: Command = Command {
    name: "demo",
    usage: "[OPTIONS]",
    summary: "a listener and a sender on loopback: messages, ACKs, a benchmark",
    about: "\
Shows the tool at work, on loopback only: starts a listener on a free port of 127.0.0.1 that
stores each message as UTF-8 in a new temporary directory before acknowledging it, sends it a
few built-in messages (one in ISO-8859-1, declared in MSH-18, and one of a type the demo
listener rejects), prints each ACK and the file its message went to, and ends with a short
benchmark. The stored files are left in place for you to look at.",
    tables: &[&DEMO, &FRAMING, &OUTPUT],
    footer: "\
Exit status: 0 when everything went as shown, 1 when an ACK was not the expected one, 2 for
usage errors and failures.",
    run,
    check: |args| parse(args).map(drop),
};

/// The number of messages of the closing benchmark.
struct BenchMessages(usize);

const DEMO: Group<BenchMessages> = Group {
    title: "Demo",
    opts: &[Opt {
        spec: Spec {
            long: "bench-messages",
            short: None,
            value: Some("N"),
            help: "messages in the closing benchmark (default 2000)",
        },
        set: |b, v| {
            b.0 = v.parsed()?;
            Ok(())
        },
    }],
};

/// One built-in message.
struct Sample {
    what: &'static str,
    charset: Charset,
    text: &'static str,
    /// Whether the demo listener accepts it.
    accepted: bool,
}

const SAMPLES: &[Sample] = &[
    Sample {
        what: "ADT^A01 admission, UTF-8",
        charset: Charset::UTF_8,
        text: "MSH|^~\\&|ADMIT|GENHOSP|EHR|GENHOSP|20260101083000||ADT^A01^ADT_A01|DEMO-0001|P|2.5.1\r\
               EVN|A01|20260101083000\r\
               PID|1||100001^^^GENHOSP^MR||DOE^JANE^Q||19800101|F|||1 MAIN ST^^SPRINGFIELD^IL^62701\r\
               PV1|1|I|4W^401^1^GENHOSP||||1234^WELBY^MARCUS\r",
        accepted: true,
    },
    Sample {
        what: "ORU^R01 lab results, UTF-8",
        charset: Charset::UTF_8,
        text: "MSH|^~\\&|LAB|GENHOSP|EHR|GENHOSP|20260101091500||ORU^R01^ORU_R01|DEMO-0002|P|2.5.1\r\
               PID|1||100001^^^GENHOSP^MR||DOE^JANE^Q||19800101|F\r\
               OBR|1|ORD1001|LAB2002|24331-1^Lipid panel^LN|||20260101080000\r\
               OBX|1|NM|2093-3^Cholesterol^LN||185|mg/dL|<200|N|||F\r\
               OBX|2|NM|2571-8^Triglycerides^LN||120|mg/dL|<150|N|||F\r\
               OBX|3|NM|2085-9^HDL Cholesterol^LN||55|mg/dL|>40|N|||F\r",
        accepted: true,
    },
    Sample {
        what: "ADT^A08 update, ISO-8859-1 per MSH-18",
        charset: Charset::ISO_8859_1,
        text: "MSH|^~\\&|ADMIT|GENHOSP|EHR|GENHOSP|20260101101000||ADT^A08^ADT_A01|DEMO-0003|P|2.5.1|||||DEU|8859/1\r\
               EVN|A08|20260101101000\r\
               PID|1||100002^^^GENHOSP^MR||MÜLLER^JOSÉ||19750315|M|||Königstraße 5^^MÜNCHEN^^80331^DEU\r",
        accepted: true,
    },
    Sample {
        what: "ZZZ^Z99, a type the demo listener rejects",
        charset: Charset::UTF_8,
        text: "MSH|^~\\&|OTHER|GENHOSP|EHR|GENHOSP|20260101110000||ZZZ^Z99|DEMO-0004|P|2.5.1\r\
               ZZZ|1|unsupported\r",
        accepted: false,
    },
];

fn parse(mut args: Args) -> Result<(Common, usize), UsageError> {
    let mut common = Common::default();
    let mut bench_messages = BenchMessages(2000);
    while let Some(f) = args.next_option()? {
        let handled = DEMO.apply(&f, &mut bench_messages)?
            || FRAMING.apply(&f, &mut common)?
            || OUTPUT.apply(&f, &mut common)?;
        if !handled {
            return Err(f.unhandled("demo"));
        }
    }
    let bench_messages = bench_messages.0;
    if let Some(extra) = args.positionals().first() {
        return Err(UsageError(format!(
            "mllp demo takes no arguments, but {extra:?} was given"
        )));
    }
    Ok((common, bench_messages))
}

/// A new directory under the system's temporary directory.
fn temp_store() -> Result<FileStore, Failure> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("mllp-demo-{}-{nanos:09}", std::process::id()));
    FileStore::open(&dir).map_err(|e| {
        Failure::fatal(format!(
            "cannot create the demo directory {}: {e}",
            dir.display()
        ))
    })
}

/// Runs `mllp demo`.
pub fn run(args: Args) -> Result<u8, Failure> {
    let (common, bench_messages) = parse(args)?;
    // The demo shows its negative acknowledgement itself; the library's warning comes with -v.
    logger::init(common.log_level(log::LevelFilter::Error), common.log_format);
    let framing = common.framing()?;
    let store = temp_store()?;
    let dir = store.dir().to_path_buf();
    let stored: Arc<Mutex<HashMap<String, PathBuf>>> = Arc::default();
    let seen = Arc::clone(&stored);
    let store = StoreHandler::new(store).on_saved(move |message, receipt| {
        let id = message.control_id().unwrap_or_default().to_owned();
        if let Ok(mut seen) = seen.lock() {
            seen.insert(id, PathBuf::from(receipt.location()));
        }
    });
    let handler = move |message: &Message<'_>| {
        if message
            .header()
            .message_type()
            .is_some_and(|t| t.starts_with(b"ZZZ"))
        {
            return Response::reject("message type ZZZ is not handled here").error_code(200);
        }
        store.handle(message)
    };
    let builder = Listener::builder("127.0.0.1:0")
        .framing(framing)
        .detect_msh18(true)
        .reply(common.reply());
    let running = builder.bind()?.spawn(handler)?;
    let addr = running.local_addr().to_string();
    print_line(&format!(
        "A listener on {addr} stores each message as UTF-8 in {} before acknowledging it.\n",
        dir.display()
    ));

    let mut unexpected = 0;
    for sample in SAMPLES {
        let mut sender = sender(&addr, framing, sample.charset, common.mllp2)?;
        let ack = sender.send(sample.text)?;
        let id = mllp::hl7::Header::parse(sample.text.as_bytes())
            .ok()
            .and_then(|h| h.control_id_text().map(String::from))
            .unwrap_or_default();
        let mut line = format!("{}: ACK {} for {id}", sample.what, ack.code);
        if let Some(text) = ack.text.as_deref().filter(|t| !t.is_empty()) {
            line.push_str(&format!(" ({text})"));
        }
        print_line(&line);
        let path = stored.lock().ok().and_then(|s| s.get(&id).cloned());
        if let Some(path) = &path {
            print_line(&format!("  stored in {}", path.display()));
            if sample.charset != Charset::UTF_8 {
                show_utf8(path, sample.charset);
            }
        }
        if ack.is_success() != sample.accepted || path.is_some() != sample.accepted {
            unexpected += 1;
        }
    }
    running.shutdown();
    running.join()?;

    print_line(&format!(
        "\nBenchmark: {bench_messages} messages over loopback, one connection:"
    ));
    let config = BenchConfig {
        messages: bench_messages,
        framing,
        mllp2: common.mllp2,
        ..BenchConfig::default()
    };
    if bench_messages > 0 {
        let report = bench::run(&config)
            .map_err(|e| Failure::fatal(format!("the benchmark failed: {e}")))?;
        bench::print(&report, &mut std::io::stdout())
            .map_err(|e| Failure::fatal(format!("cannot write the report: {e}")))?;
    }
    print_line(&format!(
        "\nThe stored messages are in {}; remove the directory when done.",
        dir.display()
    ));
    if unexpected > 0 {
        return Err(Failure::negative(format!(
            "{unexpected} demo messages were not acknowledged as expected"
        )));
    }
    Ok(0)
}

fn sender(addr: &str, framing: Framing, charset: Charset, mllp2: bool) -> Result<Sender, Failure> {
    Ok(Sender::builder(addr)
        .framing(framing)
        .charset(charset)
        .reply(mllp_cli::bench::reply_kind(mllp2))
        .build()?)
}

/// Prints the PID segment of a stored file, to show that it is UTF-8 now.
fn show_utf8(path: &Path, sent_as: Charset) {
    let Ok(bytes) = std::fs::read(path) else {
        return;
    };
    match String::from_utf8(bytes) {
        Ok(text) => {
            if let Some(pid) = text.split('\r').find(|s| s.starts_with("PID")) {
                print_line(&format!("  sent as {sent_as}; the file holds UTF-8: {pid}"));
            }
        }
        Err(_) => log::error!("{} is not UTF-8", path.display()),
    }
}
