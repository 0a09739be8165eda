//! Store, then acknowledge: the [`Handler`] that saves every message in a [`Store`].

use std::fmt;
use std::time::SystemTime;

use log::{error, info, warn};

use super::handler::{Handler, Message, Response};
use crate::store::{Receipt, Store, StoreError, StoredMessage};

/// Called after each successful save, before the acknowledgement is written.
type OnSaved = Box<dyn Fn(&StoredMessage<'_>, &Receipt) + Send + Sync + 'static>;

/// A [`Handler`] that saves every message in a [`Store`] and acknowledges it only then:
/// `AA` (`CA`, a commit ACK) once [`Store::save`] returned `Ok`; when it failed, `AE` (`CE`),
/// retryable or refused alike, with error code 207 and the error's text
/// "message could not be stored: ..." (a commit NAK in MLLP release 2 mode). A message that
/// was not saved is never accepted; a store that panics is answered `AE` by the listener.
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
}

impl<S: Store> StoreHandler<S> {
    /// A handler saving into `store`.
    pub fn new(store: S) -> StoreHandler<S> {
        StoreHandler {
            store,
            on_saved: None,
        }
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

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Saves `message` (as [`handle`](Handler::handle) does, without the acknowledgement):
    /// the receipt, or the error, logged.
    ///
    /// # Errors
    /// What [`Store::save`] returned.
    pub fn save(&self, message: &Message<'_>) -> Result<Receipt, StoreError> {
        let stored = StoredMessage::new(
            message.text(),
            message.peer_addr(),
            message.charset(),
            SystemTime::now(),
        );
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
        match self.store.save(&stored) {
            Ok(receipt) => {
                if receipt.is_duplicate() {
                    info!(
                        "message {id} from {} was already stored in {} ({receipt}): \
                         acknowledged again, not stored twice",
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
                    "message {id} from {} could not be stored in {}: {e}",
                    message.peer_addr(),
                    self.store.name()
                );
                Err(e)
            }
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
            Err(e) => Self::response_for(&e),
        }
    }
}

impl<S: Store> fmt::Debug for StoreHandler<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreHandler")
            .field("store", &self.store.name())
            .field("on_saved", &self.on_saved.is_some())
            .finish()
    }
}
