//! Store, then acknowledge: the [`Handler`] that saves every message in a [`Store`].

use std::fmt;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use super::handler::{Handler, Message, Response};
use super::store_stats::{StoreCounters, StoreStats};
use crate::store::{Receipt, Store, StoreError, StoredMessage};

/// What a [`StoreHandler`] answers when a message could not be stored, once any
/// [store wait](StoreHandler::store_wait) is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnStoreFailure {
    /// No acknowledgement: the connection is closed ([`Response::close`]), which every sender
    /// treats as "not delivered, try again". Nothing reaches the sender's error queue; the
    /// message stays with the sender. What `mllp listen` does by default.
    Close,
    /// `AE` (`CE`; a commit NAK in MLLP release 2 mode) with the reason, error code 207: the
    /// sender knows why, and queues or alerts as it does for any negative acknowledgement.
    /// What [`StoreHandler::new`] does.
    Nak,
}

/// The first pause between two save attempts during a [store wait](StoreHandler::store_wait);
/// each following pause doubles, up to [`STORE_RETRY_MAX`].
pub(crate) const STORE_RETRY_FIRST: Duration = Duration::from_millis(50);
/// The longest pause between two save attempts during a store wait.
pub(crate) const STORE_RETRY_MAX: Duration = Duration::from_millis(500);

/// Called after each successful save, before the acknowledgement is written.
type OnSaved = Box<dyn Fn(&StoredMessage<'_>, &Receipt) + Send + Sync + 'static>;

/// A [`Handler`] that saves every message in a [`Store`] and acknowledges it only then:
/// `AA` (`CA`, a commit ACK) once [`Store::save`] returned `Ok`. A message that was not saved
/// is never accepted; a store that panics is answered `AE` by the listener.
///
/// When a save fails:
/// * a [retryable](crate::StoreErrorKind::Retryable) failure (a broker that is unreachable or
///   slow to confirm) is tried again, with pauses of 50 ms doubling up to 500 ms, for up to
///   the [store wait](Self::store_wait) while the sender waits for its acknowledgement (by
///   default there is no wait);
/// * a [refused](crate::StoreErrorKind::Refused) message, which no retry can store, is
///   answered at once with `AE` (`CE`), error code 207 and the text
///   "message could not be stored: ..." (a commit NAK in MLLP release 2 mode);
///   Each attempt is bounded by the end of the wait ([`Store::save_before`]), and no attempt
///   starts after it, so a store that hangs holds the sender for the wait and no longer;
/// * a retryable failure that outlasted the wait is answered as the
///   [failure policy](Self::on_failure) says: `AE` as for a refusal
///   ([`OnStoreFailure::Nak`], the default), or no answer and the connection closed
///   ([`OnStoreFailure::Close`]).
///
/// Failures are logged at error, with the control ID and the peer; a message decoded with
/// replacement characters ([`Malformed::Replace`](crate::charset::Malformed::Replace)) is logged at
/// warn and stored.
///
/// [`Listener::spawn_store`](super::Listener::spawn_store) and
/// [`Listener::run_store`](super::Listener::run_store) use it.
pub struct StoreHandler<S> {
    store: S,
    on_saved: Option<OnSaved>,
    wait: Duration,
    on_failure: OnStoreFailure,
    counters: StoreCounters,
}

impl<S: Store> StoreHandler<S> {
    /// A handler saving into `store`, without a store wait, answering `AE` for any failure.
    pub fn new(store: S) -> StoreHandler<S> {
        StoreHandler {
            store,
            on_saved: None,
            wait: Duration::ZERO,
            on_failure: OnStoreFailure::Nak,
            counters: StoreCounters::default(),
        }
    }

    /// Retries a retryable failure for up to `wait` (default zero: no retry) before giving
    /// up on the message, while the sender waits for its acknowledgement. Keep it well under
    /// the senders' ACK timeout (often 10-30 s), or they give up first and resend, making a
    /// duplicate if the store then succeeds.
    #[must_use]
    pub fn store_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// What to answer when a retryable failure outlasted the [store wait](Self::store_wait)
    /// (default [`OnStoreFailure::Nak`]).
    #[must_use]
    pub fn on_failure(mut self, policy: OnStoreFailure) -> Self {
        self.on_failure = policy;
        self
    }

    /// Calls `f` after each successful save, on the connection's thread, before the
    /// acknowledgement is written (so keep it short): to report or count stored messages.
    /// A panic in `f` is answered `AE` although the message was saved (the sender's resend
    /// then makes a duplicate, never a loss).
    #[must_use]
    pub fn on_saved(
        mut self,
        f: impl Fn(&StoredMessage<'_>, &Receipt) + Send + Sync + 'static,
    ) -> Self {
        self.on_saved = Some(Box::new(f));
        self
    }

    /// The counters of the messages saved so far (see [`StoreStats`]).
    pub fn stats(&self) -> StoreStats {
        self.counters.stats()
    }

    /// The live counters, shared: keep a clone to read them once the handler is given to a
    /// listener.
    pub fn counters(&self) -> StoreCounters {
        self.counters.clone()
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Saves `message` as [`handle`](Handler::handle) does, without the acknowledgement:
    /// retrying a retryable failure for up to the [store wait](Self::store_wait). The
    /// receipt, or the last error, logged.
    ///
    /// # Errors
    /// What the last [`Store::save`] returned.
    pub fn save(&self, message: &Message<'_>) -> Result<Receipt, StoreError> {
        let stored = StoredMessage::from_message(message);
        let id = stored.control_id().unwrap_or("(no MSH-10)");
        if message.replaced() > 0 {
            warn!(
                "message {id} from {}: {} byte sequence(s) not valid in {} were replaced with \
                 U+FFFD",
                message.peer_addr(),
                message.replaced(),
                message.charset()
            );
        }
        let started = Instant::now();
        let result = self.save_waiting(&stored, id);
        self.counters.saved(started.elapsed(), &result);
        match result {
            Ok(receipt) => {
                if receipt.is_duplicate() {
                    info!(
                        event = "duplicate", peer:% = message.peer_addr(),
                        connection = message.connection_id(), control_id = id,
                        message_type = stored.message_type().unwrap_or(""),
                        store:% = self.store.name(), outcome = "duplicate";
                        "message {id} from {} was already stored in {} ({receipt}): \
                         acknowledged again, not stored twice",
                        message.peer_addr(),
                        self.store.name()
                    );
                } else {
                    debug!(
                        event = "stored", peer:% = message.peer_addr(),
                        connection = message.connection_id(), control_id = id,
                        message_type = stored.message_type().unwrap_or(""),
                        store:% = self.store.name(), outcome = "stored";
                        "message {id} from {} stored in {} ({receipt})",
                        message.peer_addr(),
                        self.store.name()
                    );
                }
                if let Some(f) = &self.on_saved {
                    f(&stored, &receipt);
                }
                Ok(receipt)
            }
            Err(e) => {
                error!(
                    event = "store_failed", peer:% = message.peer_addr(),
                    connection = message.connection_id(), control_id = id,
                    message_type = stored.message_type().unwrap_or(""),
                    store:% = self.store.name(),
                    outcome = if e.is_retryable() { "retryable" } else { "refused" },
                    error:% = e;
                    "message {id} from {} could not be stored in {}: {e}",
                    message.peer_addr(),
                    self.store.name()
                );
                Err(e)
            }
        }
    }

    /// One save, then more while a retryable failure lasts and the store wait has time left.
    /// With a wait, every attempt is a [`Store::save_before`] the end of the wait, and no
    /// attempt starts once it is over: the whole wait ends on time even when the store hangs.
    fn save_waiting(&self, stored: &StoredMessage<'_>, id: &str) -> Result<Receipt, StoreError> {
        let end = Instant::now() + self.wait;
        let mut pause = STORE_RETRY_FIRST;
        let mut attempts = 1u32;
        loop {
            let result = if self.wait.is_zero() {
                self.store.save(stored)
            } else {
                self.store.save_before(stored, end)
            };
            match result {
                Err(e) if e.is_retryable() => {
                    let left = end.saturating_duration_since(Instant::now());
                    if !left.is_zero() {
                        debug!("message {id}: save attempt {attempts} failed ({e}); retrying");
                        std::thread::sleep(pause.min(left));
                        pause = (pause * 2).min(STORE_RETRY_MAX);
                    }
                    if Instant::now() >= end {
                        if attempts > 1 {
                            warn!(
                                "message {id}: still not stored after {attempts} attempts in \
                                 {:?}",
                                self.wait
                            );
                        }
                        return Err(e);
                    }
                    attempts += 1;
                }
                result => return result,
            }
        }
    }

    /// The answer to a message whose save failed with `error`, after any store wait: `AE`
    /// with the reason for a refusal, and for a retryable failure as the
    /// [failure policy](Self::on_failure) says.
    pub fn response_after(&self, error: &StoreError) -> Response {
        match self.on_failure {
            OnStoreFailure::Close if error.is_retryable() => Response::close(),
            _ => Self::response_for(error),
        }
    }

    /// The negative acknowledgement for a failed save: AE (CE in enhanced mode) with the
    /// reason, whether a retry can succeed or not. The kind decides what happens before that
    /// answer (a retryable failure may be retried while the sender waits), not its code: AE
    /// is what senders and interface engines queue and alert on, where AR would make many of
    /// them drop the message.
    pub fn response_for(error: &StoreError) -> Response {
        Response::error(format!("message could not be stored: {error}")).error_code(207)
    }
}

impl<S: Store> Handler for StoreHandler<S> {
    fn handle(&self, message: &Message<'_>) -> Response {
        match self.save(message) {
            Ok(_) => Response::accept(),
            Err(e) => self.response_after(&e),
        }
    }
}

impl<S: Store> fmt::Debug for StoreHandler<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreHandler")
            .field("store", &self.store.name())
            .field("on_saved", &self.on_saved.is_some())
            .field("wait", &self.wait)
            .field("on_failure", &self.on_failure)
            .finish()
    }
}
