//! The library in 20 lines: a listener that stores each message before acknowledging it, and a
//! sender, on a free loopback port. Run with `cargo run --example quickstart`.

use mllp::{FileStore, Listener, Message, Response, Sender};

const MSG: &str = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101||ORU^R01|MSG0001|P|2.5.1\rPID|1\r";

fn main() -> Result<(), mllp::Error> {
    let store = FileStore::open(std::env::temp_dir().join("mllp-quickstart"))?;
    let listener = Listener::builder("127.0.0.1:0").bind()?;
    let addr = listener.local_addr().to_string();
    let running = listener.spawn(move |msg: &Message<'_>| {
        // Store, then ACK: AA only once the message is safely on disk.
        match store.save(msg.header().control_id(), msg.text()) {
            Ok(path) => Response::accept_with(format!("stored as {}", path.display())),
            Err(e) => Response::error(format!("not stored: {e}")),
        }
    })?;

    let mut sender = Sender::builder(addr).build()?;
    let ack = sender.send(MSG)?;
    println!("{} {}", ack.code, ack.text.unwrap_or_default());
    running.shutdown();
    running.join()
}
