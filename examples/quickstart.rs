//! The library in a few lines: a listener that stores each message before acknowledging it,
//! and a sender, on a free loopback port. Run with `cargo run --example quickstart`.

use mllp::{FileStore, Listener, Sender};

const MSG: &str = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101||ORU^R01|MSG0001|P|2.5.1\rPID|1\r";

fn main() -> Result<(), mllp::Error> {
    // Store, then ACK: AA only once the message is safely on disk, AE with the reason if not.
    let store = FileStore::open(std::env::temp_dir().join("mllp-quickstart"))?;
    let running = Listener::builder("127.0.0.1:0")
        .bind()?
        .spawn_store(store)?;

    let mut sender = Sender::builder(running.local_addr().to_string()).build()?;
    let ack = sender.send(MSG)?;
    println!("{} for {}", ack.code, ack.control_id);
    running.shutdown();
    running.join()
}
