//! The client side of `mllp check listener`: connections to the listener under check (TCP or
//! TLS), and one exchange at a time over them, with every ACK frame counted and timed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mllp::hl7::Ack;
use mllp::{Framing, TlsClient, TlsConnector};

use super::report::shown;
use super::wire::{tcp, Got, Wire};

/// Where and how to connect.
pub struct Target {
    /// The address as given.
    pub addr: String,
    /// What it resolved to.
    pub addrs: Vec<SocketAddr>,
    /// The TLS connector and the name the certificate must have, with `--tls`.
    pub tls: Option<(Arc<dyn TlsConnector>, String)>,
    /// The framing.
    pub framing: Framing,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long an ACK may take.
    pub ack_timeout: Duration,
    /// How long a write may take.
    pub write_timeout: Duration,
}

impl Target {
    /// A new connection.
    pub fn connect(&self) -> Result<Wire, String> {
        let mut last = String::from("no address");
        for addr in &self.addrs {
            match tcp(addr, self.connect_timeout) {
                Ok(tcp) => {
                    let stream = match &self.tls {
                        None => tcp.into(),
                        Some((connector, domain)) => {
                            TlsClient::connect_with(&**connector, domain, tcp, self.connect_timeout)
                                .map_err(|e| format!("TLS handshake with {}: {e}", self.addr))?
                        }
                    };
                    return Ok(Wire::new(stream, self.framing));
                }
                Err(e) => last = format!("cannot connect to {addr}: {e}"),
            }
        }
        Err(last)
    }
}

/// How an exchange ended.
#[derive(Debug)]
pub enum Answer {
    /// A reply was read.
    Ack {
        /// The reply as parsed.
        ack: Ack,
    },
    /// A frame that is not an acknowledgement.
    Unreadable(Vec<u8>),
    /// The peer closed the connection without answering.
    Closed,
    /// No reply within the ACK timeout.
    Silent,
    /// The message could not be written (or the connection could not be made).
    NotSent(String),
}

impl Answer {
    /// Whether the message was accepted (AA or CA, or a commit ACK).
    pub fn accepted(&self) -> bool {
        matches!(self, Answer::Ack { ack, .. } if ack.is_success())
    }

    /// The evidence in a few words: `AA`, `AE "text"`, `closed without an ACK`.
    pub fn describe(&self, ack_timeout: Duration) -> String {
        match self {
            Answer::Ack { ack, .. } => {
                let text = ack
                    .text
                    .as_deref()
                    .or(ack.errors.first().map(String::as_str));
                match text {
                    Some(t) if !t.is_empty() => format!("{} {t:?}", ack.code),
                    _ => ack.code.to_string(),
                }
            }
            Answer::Unreadable(f) => format!("a frame that is not an ACK: {}", shown(f, 60)),
            Answer::Closed => "closed the connection without an ACK".into(),
            Answer::Silent => format!("no ACK within {}", super::report::secs(ack_timeout)),
            Answer::NotSent(e) => format!("not sent: {e}"),
        }
    }
}

/// Connections to the listener, one current; every ACK frame counted by the control ID it
/// names.
pub struct Session<'t> {
    /// Where to connect.
    pub target: &'t Target,
    /// The current connection.
    pub wire: Option<Wire>,
    /// Connections opened.
    pub connections: usize,
    /// How many reply frames named each control ID (MSA-2).
    pub acks: HashMap<String, usize>,
    /// Control IDs sent, in order.
    pub sent: Vec<String>,
    /// Round-trip times of accepted messages.
    pub latencies: Vec<Duration>,
    /// The raw reply frames, in order.
    pub replies: Vec<Vec<u8>>,
    /// Reply frames read after each message sent and before the next.
    pub per_send: Vec<usize>,
    /// Messages sent again on a new connection because the peer had closed the one they were
    /// written to.
    pub stale: usize,
}

impl<'t> Session<'t> {
    /// A session with no connection yet.
    pub fn new(target: &'t Target) -> Session<'t> {
        Session {
            target,
            wire: None,
            connections: 0,
            acks: HashMap::new(),
            sent: Vec::new(),
            latencies: Vec::new(),
            replies: Vec::new(),
            per_send: Vec::new(),
            stale: 0,
        }
    }

    /// Makes sure there is a current connection, opening one if there is none or the peer
    /// closed it.
    pub fn wire(&mut self) -> Result<(), String> {
        if self.wire.as_mut().is_none_or(Wire::peer_gone) {
            self.wire = Some(self.target.connect()?);
            self.connections += 1;
        }
        Ok(())
    }

    /// Drops the current connection.
    pub fn hang_up(&mut self) {
        if let Some(w) = self.wire.take() {
            w.close();
        }
    }

    /// Records a reply frame; returns its MSA-2 when it is an acknowledgement.
    pub fn record(&mut self, frame: &[u8]) -> Option<Ack> {
        self.replies.push(frame.to_vec());
        if let Some(n) = self.per_send.last_mut() {
            *n += 1;
        }
        let ack = Ack::parse(frame).ok()?;
        *self.acks.entry(ack.control_id.clone()).or_default() += 1;
        Some(ack)
    }

    /// Sends `payload` (control ID `id`) as `write` writes it and reads the reply: frames that
    /// name a message sent earlier are counted as extra ACKs of that message and skipped.
    pub fn ask_with(
        &mut self,
        payload: &[u8],
        id: &str,
        write: impl Fn(&mut Wire, &[u8], Duration) -> std::io::Result<()>,
    ) -> Answer {
        let (ack_timeout, write_timeout) = (self.target.ack_timeout, self.target.write_timeout);
        let reused = self.wire.is_some();
        let answer = self.attempt(payload, id, &write, write_timeout, ack_timeout);
        // A peer that closes after each reply may close just after the check looked: a
        // message written into that connection is sent again once on a new one, as a sender
        // would.
        let stale = matches!(answer, Answer::Closed | Answer::NotSent(_))
            && self.per_send.last() == Some(&0);
        if reused && stale {
            self.hang_up();
            self.stale += 1;
            if let Some(last) = self.sent.pop() {
                debug_assert_eq!(last, id);
                self.per_send.pop();
            }
            return self.attempt(payload, id, &write, write_timeout, ack_timeout);
        }
        answer
    }

    fn attempt(
        &mut self,
        payload: &[u8],
        id: &str,
        write: &impl Fn(&mut Wire, &[u8], Duration) -> std::io::Result<()>,
        write_timeout: Duration,
        ack_timeout: Duration,
    ) -> Answer {
        if let Err(e) = self.wire() {
            return Answer::NotSent(e);
        }
        self.note_sent(id);
        let Some(wire) = self.wire.as_mut() else {
            return Answer::NotSent("no connection".into());
        };
        if let Err(e) = write(wire, payload, write_timeout) {
            self.hang_up();
            return Answer::NotSent(e.to_string());
        }
        self.read_reply(id, ack_timeout)
    }

    /// Notes that the message `id` was sent.
    pub fn note_sent(&mut self, id: &str) {
        self.sent.push(id.to_owned());
        self.per_send.push(0);
    }

    /// Sends one message in one write and reads its reply.
    pub fn ask(&mut self, payload: &[u8], id: &str) -> Answer {
        self.ask_with(payload, id, |w, p, t| w.send(p, t))
    }

    /// Reads the reply to `id` (see [`ask_with`](Self::ask_with)).
    pub fn read_reply(&mut self, id: &str, within: Duration) -> Answer {
        let written = Instant::now();
        let end = written + within;
        loop {
            let Some(wire) = self.wire.as_mut() else {
                return Answer::Closed;
            };
            match wire.read(end.saturating_duration_since(Instant::now())) {
                Got::Frame(frame) => {
                    let latency = written.elapsed();
                    match self.record(&frame) {
                        Some(ack)
                            if !ack.control_id.is_empty()
                                && ack.control_id != id
                                && self.sent.contains(&ack.control_id) =>
                        {
                            continue
                        }
                        Some(ack) => {
                            if ack.is_success() {
                                self.latencies.push(latency);
                            }
                            return Answer::Ack { ack };
                        }
                        None => return Answer::Unreadable(frame),
                    }
                }
                Got::Closed { .. } => return Answer::Closed,
                Got::Quiet => return Answer::Silent,
            }
        }
    }

    /// Reads whatever the peer sends within `within` on the current connection, counting ACK
    /// frames; returns how many frames came and whether the peer closed.
    pub fn linger(&mut self, within: Duration) -> (usize, bool) {
        let Some(wire) = self.wire.as_mut() else {
            return (0, true);
        };
        let frames = wire.read_all(within);
        let closed = wire.is_closed();
        for f in &frames {
            self.record(f);
        }
        (frames.len(), closed)
    }

    /// How many ACK frames named `id`.
    pub fn acks_of(&self, id: &str) -> usize {
        self.acks.get(id).copied().unwrap_or(0)
    }
}
