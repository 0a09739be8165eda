//! Support for the MongoDB store tests: the test server, a driver client to read documents
//! back, and a sender that keeps resending a message until it is accepted.
#![allow(dead_code)]

use std::net::TcpStream;
use std::time::{Duration, Instant};

use mllp::{Connection, Framing};
use mongodb::bson::Document;
use mongodb::sync::{Client, Collection};

pub use mllp_testkit::mongo::MongoServer;

/// Every read, write and server wait of these tests is bounded by this.
pub const LIMIT: Duration = Duration::from_secs(30);

/// Options for the tests' store URLs: fail fast while the server is down, find it again soon
/// after it is back.
pub const FAST: &str = "serverSelectionTimeoutMS=1500&heartbeatFrequencyMS=500";

/// A database name of this test and process, so that tests sharing a real server never meet.
pub fn database(test: &str) -> String {
    format!("mllp_test_{}_{test}", std::process::id())
}

/// The collection `database.collection` on `server`, read through the driver (and dropped
/// with its database at the end of the test by [`drop_database`]).
pub fn collection(server: &MongoServer, database: &str, collection: &str) -> Collection<Document> {
    let uri = format!("{}/?serverSelectionTimeoutMS=10000", server.uri());
    Client::with_uri_str(uri)
        .expect("a driver client")
        .database(database)
        .collection(collection)
}

/// Every document of `coll`.
pub fn documents(coll: &Collection<Document>) -> Vec<Document> {
    coll.find(mongodb::bson::doc! {})
        .run()
        .expect("find")
        .map(|d| d.expect("a document"))
        .collect()
}

/// Drops the test's database (for a real server; the local one is deleted with its directory).
pub fn drop_database(server: &MongoServer, database: &str) {
    let uri = format!("{}/?serverSelectionTimeoutMS=10000", server.uri());
    if let Ok(client) = Client::with_uri_str(uri) {
        let _ = client.database(database).drop().run();
    }
}

/// One connection to a listener that reconnects after an error.
pub struct Peer {
    addr: String,
    conn: Option<Connection<TcpStream>>,
    /// Answers other than AA, and exchanges that failed, so far.
    pub refusals: u64,
}

impl Peer {
    pub fn new(addr: &str) -> Peer {
        Peer {
            addr: addr.to_owned(),
            conn: None,
            refusals: 0,
        }
    }

    /// The local address of the current connection (connecting first if needed).
    pub fn local_addr(&mut self) -> std::net::SocketAddr {
        self.connected()
            .expect("connect")
            .get_ref()
            .local_addr()
            .unwrap()
    }

    fn connected(&mut self) -> Result<&mut Connection<TcpStream>, String> {
        if self.conn.is_none() {
            let tcp = TcpStream::connect(&self.addr).map_err(|e| format!("connect: {e}"))?;
            tcp.set_read_timeout(Some(LIMIT)).unwrap();
            tcp.set_write_timeout(Some(LIMIT)).unwrap();
            self.conn = Some(Connection::new(tcp, Framing::default()));
        }
        Ok(self.conn.as_mut().unwrap())
    }

    /// Sends `message` once: its ACK's text, or the error (after which it reconnects).
    pub fn exchange(&mut self, message: &[u8]) -> Result<String, String> {
        let result = self.connected().and_then(|c| {
            c.write_frame(message).map_err(|e| e.to_string())?;
            match c.read_frame().map_err(|e| e.to_string())? {
                Some(ack) => Ok(String::from_utf8_lossy(ack).into_owned()),
                None => Err("closed without an ACK".to_owned()),
            }
        });
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    /// Sends `message` until it is answered AA, or `deadline` passes (then panics).
    pub fn send_until_accepted(&mut self, message: &[u8], deadline: Instant) {
        loop {
            match self.exchange(message) {
                Ok(ack) if ack.contains("MSA|AA|") => return,
                _ => self.refusals += 1,
            }
            assert!(
                Instant::now() < deadline,
                "not accepted before the deadline ({} refusals)",
                self.refusals
            );
            // A pause between resends (not synchronisation: the resend is the test).
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// An ADT message from `app`/`fac` with the control ID `id`.
pub fn message(app: &str, fac: &str, id: &str) -> String {
    format!(
        "MSH|^~\\&|{app}|{fac}|EHR|WARD|20260101120000||ADT^A01^ADT_A01|{id}|P|2.5.1\r\
         PID|1||{id}^^^HOSP^MR||DOE^JANE\r"
    )
}
