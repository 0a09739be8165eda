//! Where received messages are kept before they are acknowledged: the [`Store`] trait, its
//! errors, the message view it gets, [`FileStore`], and [`DedupStore`] (duplicate suppression
//! in front of any store, telling a resend from a reused control ID by a [`ContentDigest`]).

mod dedup;
mod digest;
mod dir_sync;
mod error;
mod file;
mod file_store;
mod message;
mod temp_name;
mod url;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

pub use dedup::{DedupStore, MAX_CAPACITY as MAX_DEDUP_KEYS};
pub use digest::ContentDigest;
pub use error::{StoreError, StoreErrorKind};
pub use file::FileStore;
pub use file_store::TLS_SUBJECT_EXTENSION;
pub use message::StoredMessage;
pub use url::{percent_decode, UrlOptions};

/// A durable home for received messages.
///
/// Where received messages are kept: the [`Store`] trait, and [`FileStore`], its file system
/// implementation.
///
/// A listener that saves each message in a store before acknowledging it (store-then-ACK,
/// [`StoreHandler`](crate::listener::StoreHandler) or [`Listener::spawn_store`]) answers `AA`
/// only for a message the store has made durable: [`Store::save`] returns `Ok` only when the
/// message would survive a crash of this process (and, for a store in a broker or database,
/// of the node it was written to). When it cannot, the [`StoreError`] says whether trying
/// again can succeed ([`StoreErrorKind::Retryable`]: the sender gets `AE` and resends) or not
/// ([`StoreErrorKind::Refused`]: `AR`).
///
/// Stores in other crates (a message broker, a document database) implement the same trait;
/// this crate depends on none of them.
///
/// # Example
/// A store that keeps messages in memory (not durable: for tests only), used by a listener:
///
/// ```
/// use std::sync::Mutex;
/// use mllp::{Listener, Receipt, Sender, Store, StoreError, StoredMessage};
///
/// #[derive(Default)]
/// struct Memory(Mutex<Vec<(Option<String>, String)>>);
///
/// impl Store for Memory {
///     fn save(&self, message: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
///         let mut kept = self.0.lock().map_err(|_| StoreError::retryable("lock poisoned"))?;
///         if message.text().len() > 1_000 {
///             return Err(StoreError::refused("larger than 1000 bytes"));
///         }
///         kept.push((message.control_id().map(str::to_owned), message.text().to_owned()));
///         Ok(Receipt::new(format!("memory #{}", kept.len())))
///     }
///
///     fn name(&self) -> String {
///         "memory".into()
///     }
/// }
///
/// let store = std::sync::Arc::new(Memory::default());
/// let running = Listener::builder("127.0.0.1:0").bind()?.spawn_store(store.clone())?;
/// let mut sender = Sender::builder(running.local_addr().to_string()).build()?;
/// let ack = sender.send("MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260101||ADT^A01|ID1|P|2.5\r")?;
/// assert!(ack.is_success());
/// assert_eq!(store.0.lock().unwrap()[0].0.as_deref(), Some("ID1"));
/// running.shutdown();
/// running.join()?;
/// # Ok::<(), mllp::Error>(())
/// ```
///
/// [`Listener::spawn_store`]: crate::Listener::spawn_store
///
/// Called concurrently from the listener's connection threads (one call per connection at a
/// time), hence `Send + Sync`. Implementations must never panic on a message's contents: every
/// field of a [`StoredMessage`] comes from the network.
pub trait Store: Send + Sync + 'static {
    /// Keeps `message` durably and says where.
    ///
    /// Returns `Ok` only when the message would survive a crash of this process, and for a
    /// store in a broker or database a crash of the node that took it (a publisher confirm
    /// after a persistent write, a write concern of the majority). Until then the listener
    /// has not acknowledged the message.
    ///
    /// # Errors
    /// A [`StoreError`] saying whether a retry can succeed: [`StoreErrorKind::Retryable`] for
    /// a store that is unreachable, full or too slow to confirm (the message may even have
    /// been kept: the sender's resend then creates a duplicate with the same MSH-10, never a
    /// loss); [`StoreErrorKind::Refused`] for a message the store will never take.
    fn save(&self, message: &StoredMessage<'_>) -> Result<Receipt, StoreError>;

    /// Saves as [`save`](Self::save) does, but returns by `deadline` (plus a small margin)
    /// whatever the store does: a store that has not answered by then returns a
    /// [retryable](StoreErrorKind::Retryable) error (the message may still be kept: the
    /// sender's resend is then a duplicate, never a loss). A
    /// [`StoreHandler`](crate::StoreHandler) with a [store wait](crate::StoreHandler::store_wait)
    /// calls it with the end of the wait, so that a store that hangs (a database that stopped
    /// answering) cannot hold a sender past it.
    ///
    /// The default calls `save`: enough for a store whose `save` is bounded on its own (a
    /// directory). A store that can hang implements it (`MongoStore` runs the driver on a
    /// thread and stops waiting at the deadline); a store that wraps another passes it on.
    ///
    /// # Errors
    /// As [`save`](Self::save).
    fn save_before(
        &self,
        message: &StoredMessage<'_>,
        deadline: Instant,
    ) -> Result<Receipt, StoreError> {
        let _ = deadline;
        self.save(message)
    }

    /// Where messages go, for logs and the listener's startup line: a directory, or a URL
    /// without credentials.
    fn name(&self) -> String;

    /// Checks that the store can take messages now (at startup, say): `Ok` by default.
    ///
    /// # Errors
    /// As [`save`](Self::save): why messages cannot be saved.
    fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn save(&self, message: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
        (**self).save(message)
    }
    fn save_before(
        &self,
        message: &StoredMessage<'_>,
        deadline: Instant,
    ) -> Result<Receipt, StoreError> {
        (**self).save_before(message, deadline)
    }
    fn name(&self) -> String {
        (**self).name()
    }
    fn check(&self) -> Result<(), StoreError> {
        (**self).check()
    }
}

impl<S: Store + ?Sized> Store for Arc<S> {
    fn save(&self, message: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
        (**self).save(message)
    }
    fn save_before(
        &self,
        message: &StoredMessage<'_>,
        deadline: Instant,
    ) -> Result<Receipt, StoreError> {
        (**self).save_before(message, deadline)
    }
    fn name(&self) -> String {
        (**self).name()
    }
    fn check(&self) -> Result<(), StoreError> {
        (**self).check()
    }
}

/// Where a store put a message: a file path, a broker's exchange and routing key, a document
/// ID. Shown to operators (`mllp listen` prints it); never holds credentials.
///
/// A store that recognises a resend of a message it already keeps (same sending application,
/// facility and MSH-10) answers with a [`duplicate`](Receipt::duplicate) receipt instead of
/// keeping a second copy: the listener acknowledges it `AA` all the same, so a sender's
/// at-least-once retries become exactly-once in the store. A message with the key of one
/// already kept but another content (a sending system that reset its counter) is kept as a
/// new message, and its receipt says so ([`reuses_control_id`](Receipt::reuses_control_id)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    location: String,
    duplicate: bool,
    reused: bool,
}

impl Receipt {
    /// A receipt naming `location`.
    pub fn new(location: impl Into<String>) -> Receipt {
        Receipt {
            location: location.into(),
            duplicate: false,
            reused: false,
        }
    }

    /// A receipt for a message the store already kept, at `location`: nothing new was stored.
    pub fn duplicate(location: impl Into<String>) -> Receipt {
        Receipt {
            location: location.into(),
            duplicate: true,
            reused: false,
        }
    }

    /// Where the message is.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether the message was already kept, so that this save stored nothing new.
    pub fn is_duplicate(&self) -> bool {
        self.duplicate
    }

    /// This receipt, marked as that of a message stored as new although a message with the
    /// same sending application, facility and MSH-10 but another content was stored before
    /// (see [`ContentDigest`]).
    #[must_use]
    pub fn reusing_control_id(mut self) -> Receipt {
        self.reused = true;
        self
    }

    /// Whether the message was stored as new although its key (MSH-3, MSH-4, MSH-10) had been
    /// seen with another content: the sending system reused a control ID.
    pub fn reuses_control_id(&self) -> bool {
        self.reused
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.location)
    }
}
