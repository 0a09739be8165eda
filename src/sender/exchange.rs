//! The sans-I/O exchange of one message: write its frame, await the correlated acknowledgement,
//! skip stale frames, classify the outcome and decide on retries with backoff. No sockets and
//! no clock: the driver performs what [`Exchange::poll_transmit`] asks for and reports back,
//! passing the time in.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{info, warn};

use super::link::Link;
use super::reply::{control_id, is_retryable, judge, Id};
pub use super::transmit::Transmit;

mod decode;
use crate::codec::Event;
use crate::error::{Error, FrameError, Outcome, Result, Timeout};
use crate::hl7::{Ack, AckCode, ReplyKind};
use crate::retry::Backoff;

/// The most frames discarded before one write; a peer that sends more is left.
const MAX_STALE_FRAMES: usize = 64;

/// Where an exchange is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the driver to connect, until the deadline.
    Connect { deadline: Instant },
    /// Discarding what the peer sent before the message is written; `frames` and `bytes` so
    /// far.
    Drain { frames: usize, bytes: usize },
    /// Writing the frame, `written` bytes so far, until the deadline.
    Write { written: usize, deadline: Instant },
    /// Awaiting the reply until the deadline.
    Await { deadline: Instant },
    /// Waiting before the next attempt.
    Backoff { until: Instant },
    /// Over.
    Done,
}

/// The exchange of one message with its peer, without I/O: the sender's per-message protocol
/// as a state machine.
///
/// The driver loops: it calls [`poll_transmit`](Self::poll_transmit), performs what it asks
/// for ([`Transmit`]), and reports what happened with the `handle_*` methods, passing the
/// current time; [`poll_timeout`](Self::poll_timeout) says until when the current step may
/// take. The exchange keeps every rule of [`Sender`](crate::Sender): frames waiting before a
/// write are discarded, replies whose MSA-2 is not the message's control ID are skipped,
/// failures close the connection and are retried within the [`RetryPolicy`](crate::RetryPolicy) and
/// [`Timeouts::total`](crate::Timeouts::total), and the result is the acknowledgement or [`Error::Delivery`].
///
/// Driven by hand, with no socket and no clock:
///
/// ```
/// use std::time::{Duration, Instant};
/// use mllp::{Exchange, Link, SenderConfig, Transmit};
///
/// let mut link = Link::new("lab:2575", &SenderConfig::default());
/// let msg = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01|MSG0001|P|2.5.1\rPID|1\r";
/// let now = Instant::now();
/// let mut ex = Exchange::new(&mut link, msg, now)?;
///
/// assert_eq!(ex.poll_transmit(), Transmit::Connect);
/// ex.handle_connected(None, now);
///
/// let Transmit::Write(parts) = ex.poll_transmit() else { panic!("a write") };
/// let frame: Vec<u8> = parts.concat();
/// assert_eq!((frame[0], &frame[frame.len() - 2..]), (0x0B, &b"\x1c\r"[..]));
/// ex.handle_written(frame.len(), now);
///
/// assert_eq!(ex.poll_transmit(), Transmit::Read);
/// assert_eq!(ex.poll_timeout(), Some(now + Duration::from_secs(30)));
/// // The reply arrives in two pieces.
/// ex.handle_input(b"\x0bMSH|^~\\&|EHR|HOSP|LAB|HOSP|20240101||ACK|A1|P|2.5.1\r", now);
/// ex.handle_input(b"MSA|AA|MSG0001\r\x1c\r", now);
///
/// assert_eq!(ex.poll_transmit(), Transmit::Done);
/// let ack = ex.take_result().expect("a result")?;
/// assert!(ack.is_success());
/// assert_eq!(ack.control_id, "MSG0001");
/// # Ok::<(), mllp::Error>(())
/// ```
#[derive(Debug)]
pub struct Exchange<'a> {
    link: &'a mut Link,
    message: &'a [u8],
    /// The control ID the reply must echo; empty when not correlated.
    id: &'a [u8],
    /// Whether the reply must echo `id` ([`uncorrelated`](Exchange::uncorrelated): any
    /// acknowledgement is the reply).
    correlate: bool,
    state: State,
    backoff: Backoff,
    total: Option<Instant>,
    written_any: bool,
    /// A close of the connection is to be requested before anything else.
    close: bool,
    result: Option<Result<Ack>>,
}

impl<'a> Exchange<'a> {
    /// Starts the exchange of `message` over `link` at `now` (the start of the total
    /// deadline). The first step is to connect, or, on an open connection, to discard what
    /// the peer sent since the last reply.
    ///
    /// # Errors
    /// Before anything is sent: [`Error::Header`] when the message has no readable header or
    /// an empty control ID, [`Error::Frame`] with [`FrameError::PayloadContainsEnd`] when it
    /// contains the frame end sequence.
    pub fn new(link: &'a mut Link, message: &'a [u8], now: Instant) -> Result<Exchange<'a>> {
        let id = control_id(message)?;
        Exchange::start(link, message, Some(id), now)
    }

    /// Like [`new`](Self::new), for a message whose reply cannot be correlated (no readable
    /// header or no control ID: testing a peer with malformed input): the next
    /// acknowledgement received is taken as the reply whatever its MSA-2, and there is one
    /// attempt only, since a resend could not be told from the first send by its reply.
    ///
    /// # Errors
    /// [`Error::Frame`] with [`FrameError::PayloadContainsEnd`] when the message contains the
    /// frame end sequence.
    pub fn uncorrelated(
        link: &'a mut Link,
        message: &'a [u8],
        now: Instant,
    ) -> Result<Exchange<'a>> {
        Exchange::start(link, message, None, now)
    }

    fn start(
        link: &'a mut Link,
        message: &'a [u8],
        id: Option<&'a [u8]>,
        now: Instant,
    ) -> Result<Exchange<'a>> {
        link.framing.check_payload(message)?;
        let total = link.timeouts.total.and_then(|t| now.checked_add(t));
        let retry = match id {
            Some(_) => link.retry,
            None => link.retry.max_attempts(Some(1)),
        };
        let mut backoff = Backoff::start(retry);
        backoff.begin();
        let mut ex = Exchange {
            link,
            message,
            id: id.unwrap_or_default(),
            correlate: id.is_some(),
            state: State::Done,
            backoff,
            total,
            written_any: false,
            close: false,
            result: None,
        };
        ex.begin_attempt(now);
        Ok(ex)
    }

    /// The control ID the reply must echo in MSA-2 (MSH-10, or BHS-11/FHS-11 for a batch).
    pub fn control_id(&self) -> &[u8] {
        self.id
    }

    /// The attempts begun so far, the current one included.
    pub fn attempts(&self) -> u32 {
        self.backoff.attempts()
    }

    /// What the driver is to do next.
    pub fn poll_transmit(&mut self) -> Transmit<'_> {
        if std::mem::take(&mut self.close) {
            return Transmit::Close;
        }
        match self.state {
            State::Connect { .. } => Transmit::Connect,
            State::Drain { .. } => Transmit::Drain,
            State::Write { written, .. } => {
                Transmit::Write(self.link.unwritten(self.message, written))
            }
            State::Await { .. } => Transmit::Read,
            State::Backoff { .. } => Transmit::Wait,
            State::Done => Transmit::Done,
        }
    }

    /// Until when the current step may take: its phase deadline (connect, write, ACK) or the
    /// end of the backoff, and never later than the total deadline; `None` when there is no
    /// deadline (discarding stale frames is done without waiting) or the exchange is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.state {
            State::Connect { deadline }
            | State::Write { deadline, .. }
            | State::Await { deadline } => Some(deadline),
            State::Backoff { until } => Some(until),
            State::Drain { .. } => None,
            State::Done => return None,
        };
        match (phase, self.total) {
            (Some(p), Some(t)) => Some(p.min(t)),
            (p, t) => p.or(t),
        }
    }

    /// The time is `now`: a deadline that has passed ends its phase (a timeout, retried within
    /// the policy), the total deadline ends the exchange, and the end of a backoff starts the
    /// next attempt. Early calls change nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Done {
            return;
        }
        if self.total.is_some_and(|t| now >= t) {
            warn!(
                "message {} to {} was not acknowledged within the total timeout",
                Id(self.id),
                self.link.peer()
            );
            self.link.drop_connection_into(&mut self.close);
            return self.give_up(Error::Timeout(Timeout::Total), self.state_wrote(), now);
        }
        match self.state {
            State::Connect { deadline } if now >= deadline => {
                self.fail(Error::Timeout(Timeout::Connect), false, now)
            }
            State::Write { deadline, .. } if now >= deadline => {
                self.fail(Error::Timeout(Timeout::Write), false, now)
            }
            State::Await { deadline } if now >= deadline => self.ack_timed_out(now),
            State::Backoff { until } if now >= until => {
                self.backoff.begin();
                self.link.stats.retries += 1;
                self.begin_attempt(now);
            }
            _ => {}
        }
    }

    /// The driver connected (to `peer`, when known, for logs).
    pub fn handle_connected(&mut self, peer: Option<SocketAddr>, now: Instant) {
        if !matches!(self.state, State::Connect { .. }) {
            return;
        }
        let link = &mut *self.link;
        link.reset_input();
        link.check.connected();
        link.connected = true;
        link.peer = peer;
        link.stats.connects += 1;
        if std::mem::take(&mut link.lost) {
            link.stats.reconnects += 1;
            info!("reconnected to {} ({})", link.peer(), link.target);
        } else {
            info!("connected to {} ({})", link.peer(), link.target);
        }
        self.begin_write(now);
    }

    /// `n` more bytes of the frame were written.
    pub fn handle_written(&mut self, n: usize, now: Instant) {
        let State::Write { written, deadline } = self.state else {
            return;
        };
        let written = written.saturating_add(n);
        if written < self.link.frame_len(self.message) {
            self.state = State::Write { written, deadline };
            return;
        }
        self.link.stats.frames_written += 1;
        self.written_any = true;
        self.state = State::Await {
            deadline: after(now, self.link.timeouts.ack),
        };
    }

    /// Bytes arrived from the peer.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        match self.state {
            State::Drain { .. } | State::Await { .. } => {}
            // Bytes read while connecting or writing are kept for the next step; afterwards
            // they answer nothing.
            State::Connect { .. } | State::Backoff { .. } | State::Done => return,
            State::Write { .. } => {}
        }
        self.link.buf.extend_from_slice(data);
        if let State::Drain { frames, bytes } = self.state {
            let bytes = bytes.saturating_add(data.len());
            self.state = State::Drain { frames, bytes };
            if bytes > self.link.framing.max_size().saturating_mul(2) {
                warn!(
                    "{} keeps sending bytes that answer no message; connecting again",
                    self.link.peer()
                );
                return self.reconnect(now);
            }
        }
        match self.state {
            State::Drain { .. } => self.decode_stale(now),
            State::Await { .. } => self.decode_reply(now),
            _ => {}
        }
    }

    /// Everything waiting was read (after [`Transmit::Drain`]): write the message, unless part
    /// of a frame was left, which makes the exchange connect again.
    pub fn handle_drained(&mut self, now: Instant) {
        if !matches!(self.state, State::Drain { .. }) {
            return;
        }
        if self.link.decoder.in_frame() || !self.link.buf.is_empty() {
            warn!(
                "{} sent part of a frame that answers no message in flight; connecting again",
                self.link.peer()
            );
            return self.reconnect(now);
        }
        self.begin_write(now);
    }

    /// The peer closed the connection (a read returned end of stream).
    pub fn handle_eof(&mut self, now: Instant) {
        match self.state {
            State::Drain { .. } => {
                info!(
                    "{} closed the idle connection; connecting again",
                    self.link.peer()
                );
                self.reconnect(now);
            }
            State::Write { .. } => self.fail(Error::Closed, false, now),
            State::Await { .. } => {
                let link = &mut *self.link;
                let error = match link.decoder.finish(&link.buf) {
                    Some(d) => match d.event {
                        Event::Frame(range) => {
                            let ack = judge(link, range, self.correlate.then_some(self.id));
                            link.buf.clear();
                            if let Some(ack) = ack {
                                return self.on_ack(ack, now);
                            }
                            Error::Closed
                        }
                        Event::Truncated { len } => FrameError::Truncated { len }.into(),
                        Event::Oversized { .. } => FrameError::Oversized {
                            max: link.framing.max_size(),
                        }
                        .into(),
                        _ => Error::Closed,
                    },
                    None => Error::Closed,
                };
                if matches!(error, Error::Closed) {
                    warn!(
                        "{} closed the connection before acknowledging message {}",
                        self.link.peer(),
                        Id(self.id)
                    );
                }
                self.fail(error, true, now);
            }
            _ => {}
        }
    }

    /// An operation failed. A timeout (an [`Error::Timeout`], or an I/O error of kind
    /// `TimedOut` or `WouldBlock`) is taken for the deadline of the current phase.
    pub fn handle_error(&mut self, error: Error, now: Instant) {
        if error.is_timeout() && self.total.is_some_and(|t| now >= t) {
            return self.handle_timeout(now);
        }
        let timed_out = error.is_timeout();
        match self.state {
            State::Connect { .. } if timed_out => {
                self.fail(Error::Timeout(Timeout::Connect), false, now)
            }
            State::Connect { .. } => self.fail(error, false, now),
            State::Drain { .. } => {
                warn!(
                    "reading what {} sent on the idle connection failed ({error}); connecting again",
                    self.link.peer()
                );
                self.reconnect(now);
            }
            State::Write { .. } if timed_out => {
                self.fail(Error::Timeout(Timeout::Write), false, now)
            }
            State::Write { .. } => self.fail(error, false, now),
            State::Await { .. } if timed_out => self.ack_timed_out(now),
            State::Await { .. } => self.fail(error, true, now),
            State::Backoff { .. } | State::Done => {}
        }
    }

    /// Whether the exchange is over.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The result, once [`poll_transmit`](Self::poll_transmit) returned [`Transmit::Done`]:
    /// the acknowledgement (positive or negative), or [`Error::Delivery`]. `None` before, and
    /// after it was taken.
    pub fn take_result(&mut self) -> Option<Result<Ack>> {
        self.result.take()
    }

    /// Starts an attempt: discard stale frames on an open connection, else connect. What is
    /// buffered is always looked at; the connection itself is checked only when that can
    /// matter (see [`WriteCheck`](super::check::WriteCheck)), else the write begins at once.
    fn begin_attempt(&mut self, now: Instant) {
        if self.link.connected {
            self.state = State::Drain {
                frames: 0,
                bytes: 0,
            };
            if !self.link.buf.is_empty() {
                self.decode_stale(now);
            }
            // Nothing buffered, nothing half-read, and nothing the socket could hold would
            // change the outcome: write at once.
            let settled = self.link.buf.is_empty() && !self.link.decoder.in_frame();
            if matches!(self.state, State::Drain { .. })
                && settled
                && !self.link.check.needed(self.id, now)
            {
                self.begin_write(now);
            }
        } else {
            self.state = State::Connect {
                deadline: after(now, self.link.timeouts.connect),
            };
        }
    }

    /// Closes the connection and connects again within the same attempt.
    fn reconnect(&mut self, now: Instant) {
        self.link.drop_connection_into(&mut self.close);
        self.state = State::Connect {
            deadline: after(now, self.link.timeouts.connect),
        };
    }

    fn begin_write(&mut self, now: Instant) {
        self.link.check.wrote(self.id);
        self.link.load_frame(self.message);
        self.state = State::Write {
            written: 0,
            deadline: after(now, self.link.timeouts.write),
        };
    }

    fn state_wrote(&self) -> bool {
        matches!(self.state, State::Await { .. })
    }

    fn on_ack(&mut self, ack: Ack, now: Instant) {
        self.link.check.replied(now);
        if let Some(end) = self.link.outage.succeeded(now) {
            info!(
                "{} answers again, after {} failed attempt(s) in {:.1} s",
                self.link.target,
                end.failures,
                end.lasted.as_secs_f64()
            );
        }
        if !self.should_resend(&ack) {
            return self.finish(Ok(ack));
        }
        match self.next_delay(now) {
            None => {
                warn!(
                    "message {} was answered with {} {} time(s); returning the last answer",
                    Id(self.id),
                    ack.code,
                    self.backoff.attempts()
                );
                self.finish(Ok(ack));
            }
            Some(delay) => {
                info!(
                    "sending message {} to {} again in {} ms after {}",
                    Id(self.id),
                    self.link.peer(),
                    delay.as_millis(),
                    ack.code
                );
                self.state = State::Backoff {
                    until: after(now, delay),
                };
            }
        }
    }

    /// Whether a reply asks for the message to be sent again.
    fn should_resend(&self, ack: &Ack) -> bool {
        match ack.code {
            AckCode::CommitReject if ack.kind == ReplyKind::Mllp2 => true,
            AckCode::ApplicationReject | AckCode::CommitReject => self.link.resend_on_reject,
            _ => false,
        }
    }

    fn ack_timed_out(&mut self, now: Instant) {
        self.link.stats.ack_timeouts += 1;
        warn!(
            "no ACK from {} for message {} within {} ms; closing the connection",
            self.link.peer(),
            Id(self.id),
            self.link.timeouts.ack.as_millis()
        );
        self.fail(Error::Timeout(Timeout::Ack), true, now);
    }

    /// The delay before the next attempt, or `None` when the policy or the total deadline
    /// does not allow one.
    fn next_delay(&mut self, now: Instant) -> Option<Duration> {
        let delay = self.backoff.next_delay(&mut self.link.jitter)?;
        match self.total {
            Some(total) if after(now, delay) >= total => None,
            _ => Some(delay),
        }
    }

    /// An attempt failed: close the connection first (nothing read on it may be taken for a
    /// reply to a later message), then wait and try again, or give up.
    fn fail(&mut self, error: Error, written: bool, now: Instant) {
        self.link.drop_connection_into(&mut self.close);
        let delay = if is_retryable(&error) {
            self.next_delay(now)
        } else {
            None
        };
        let Some(delay) = delay else {
            return self.give_up(error, written, now);
        };
        self.written_any |= written;
        // A peer that is down for hours makes a few lines, not one per attempt.
        if let Some(line) = self.link.outage.failed(now) {
            warn!(
                "attempt {} to send message {} to {} failed ({}); trying again in {} ms ({line})",
                self.backoff.attempts(),
                Id(self.id),
                self.link.target,
                error,
                delay.as_millis()
            );
        }
        self.state = State::Backoff {
            until: after(now, delay),
        };
    }

    fn give_up(&mut self, error: Error, written: bool, now: Instant) {
        self.written_any |= written;
        let outcome = if self.written_any {
            Outcome::Unconfirmed
        } else {
            Outcome::NotDelivered
        };
        if let Some(line) = self.link.outage.failed(now) {
            warn!(
                "message {} to {} {} after {} attempt(s): {} ({line})",
                Id(self.id),
                self.link.target,
                outcome,
                self.backoff.attempts(),
                error
            );
        }
        self.finish(Err(Error::Delivery {
            outcome,
            attempts: self.backoff.attempts(),
            last: Box::new(error),
        }));
    }

    fn finish(&mut self, result: Result<Ack>) {
        match &result {
            Ok(_) => self.link.stats.messages += 1,
            Err(_) => self.link.stats.failures += 1,
        }
        self.result = Some(result);
        self.state = State::Done;
    }
}

/// `now + d`, saturating far in the future.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}
