//! [`MongoStore`]: one document per message, inserted with an acknowledged write concern
//! before the listener answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mllp::{Receipt, Store, StoreError, StoredMessage};
use mongodb::bson::{doc, Bson, DateTime, Document};
use mongodb::options::{Acknowledgment, ClientOptions};
use mongodb::sync::{Client, Collection};

use crate::config::{
    Config, DEFAULT_CONNECT_TIMEOUT, DEFAULT_SERVER_SELECTION_TIMEOUT,
    DEFAULT_WRITE_CONCERN_TIMEOUT,
};
use crate::dedup::{self, DIGEST_FIELD};
use crate::error::{is_duplicate_key, save_error, summary, Error};
use crate::workers::{Workers, LATE};

/// The largest message text stored: MongoDB's document limit is 16 MiB, and the other fields
/// need a little room. A larger message is refused (`AE`, the store will never take it).
pub const MAX_TEXT_BYTES: usize = 16 * 1024 * 1024 - 64 * 1024;

/// The longest a [`save`](Store::save) (without a deadline of the caller's), or opening a
/// store with `dedup=true` (which creates the index), waits for the server: its server
/// selection (5 s by default) and write concern (10 s) timeouts fit in it. A listener with a
/// store wait bounds each save by the end of the wait instead ([`Store::save_before`]).
pub const SAVE_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest [`Store::check`] waits for the server's answer to a ping: a server that does
/// not answer in that time fails the check (a health check every second must not wait for
/// the server selection timeout).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A [`Store`] that inserts each message as one document into a MongoDB collection and returns
/// only once the server acknowledged the insert with the write concern: by default
/// `w: "majority", j: true` (a majority of the replica set has it in its journal), unless the
/// connection string sets `w`, `journal` or `wtimeoutMS` itself.
///
/// Each document has these fields (header fields are `null` when empty or absent):
///
/// | field | BSON type | value |
/// |---|---|---|
/// | `control_id` | string | MSH-10 (the batch control ID for a batch) |
/// | `message_type` | string | MSH-9, whole (`ADT^A01^ADT_A01`) |
/// | `sending_application` | string | MSH-3, whole |
/// | `sending_facility` | string | MSH-4 |
/// | `receiving_application` | string | MSH-5 |
/// | `receiving_facility` | string | MSH-6 |
/// | `received_at` | date | when the listener had read the whole message (ms) |
/// | `peer` | string | the sender's address, `IP:PORT` |
/// | `tls_subject` | string or null | the verified subject of the client's TLS certificate (mutual TLS only) |
/// | `charset` | string | the character set on the wire (`UTF-8`, `ISO-8859-1`, ...) |
/// | `message` | string | the message as UTF-8, segment endings as received |
/// | `size` | int64 | the length of `message` in bytes (UTF-8) |
/// | `content_digest` | string | the [`ContentDigest`](mllp::ContentDigest) of `message`, 32 hex digits |
///
/// Every failure is an error, so the listener answers `AE`: a server that cannot be reached
/// or a write concern not satisfied in time is [retryable](mllp::StoreErrorKind::Retryable)
/// (the document may even have been kept: the sender's resend is then a duplicate, which
/// `dedup=true` recognises); a message too large for a document is
/// [refused](mllp::StoreErrorKind::Refused).
///
/// With [`Config::dedup`], a unique index ([`DEDUP_INDEX`](crate::DEDUP_INDEX)) on
/// (`sending_application`, `sending_facility`, `control_id`, `content_digest`) is created
/// when the store opens (for documents whose `control_id` is a string: a message without
/// MSH-10 is never taken for a resend), and an insert that hits it returns a [duplicate
/// receipt](Receipt::duplicate) naming the document already there, counted in
/// [`Stats::resends`]. A message with the key of a stored one but another content (a sending
/// system that reset its counter) is inserted as a new document, logged at warn, counted in
/// [`Stats::reused_control_ids`], and its receipt
/// [says so](Receipt::reuses_control_id). The key-only index `mllp_dedup` of earlier versions,
/// which refused such messages, is dropped when the store opens (with a warning); documents
/// stored before have no `content_digest`, so their resends are stored again once.
///
/// The driver runs on a few threads of the store's own, started on demand (at most
/// [`MAX_WORKERS`](crate::MAX_WORKERS), each with a stack of
/// [`DRIVER_STACK_SIZE`](crate::DRIVER_STACK_SIZE)): its synchronous API polls an operation on
/// the calling thread, and that needs more stack than a listener's connection thread has.
///
/// Every call returns on time whatever the server does: the driver has no socket timeout, so
/// an operation on a server that stopped answering (a hung process, a network that drops
/// packets) could block for as long as it does; the caller waits for its thread until a
/// deadline and then returns a retryable error ("did not answer within ..."):
/// [`save_before`](Store::save_before) the caller's deadline (a listener's store wait),
/// [`save`](Store::save) [`SAVE_TIMEOUT`], [`check`](Store::check) [`CHECK_TIMEOUT`]. An
/// insert given up on may still complete on the server: the sender's resend is then a
/// duplicate (which `dedup=true` recognises), never a loss.
pub struct MongoStore {
    shared: Arc<Shared>,
    workers: Workers,
}

/// What the worker threads need of the store.
struct Shared {
    client: Client,
    collection: Collection<Document>,
    /// `DATABASE.COLLECTION`, the start of every receipt.
    location: String,
    name: String,
    dedup: bool,
    stored: AtomicU64,
    resends: AtomicU64,
    reused: AtomicU64,
    failed: AtomicU64,
}

/// What a [`MongoStore`] has done since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages inserted as new documents.
    pub stored: u64,
    /// Resends recognised by the unique index (`dedup=true`): answered, not stored again.
    pub resends: u64,
    /// Messages inserted as new documents although a document with the same key (MSH-3,
    /// MSH-4, MSH-10) but another content was stored (`dedup=true`): reused control IDs.
    pub reused_control_ids: u64,
    /// Saves that failed (answered `AE`).
    pub failed: u64,
}

impl MongoStore {
    /// Opens the store a [`Config`] describes. Reaches the server only for `dedup=true` (to
    /// create the unique index); [`Store::check`] pings it.
    ///
    /// # Errors
    /// [`Error`]: a connection string the driver rejects, one with no database or with `w=0`
    /// (writes nobody acknowledges could be acknowledged to the sender and lost)
    /// ([`Url`](crate::ErrorKind::Url)); with `dedup=true`, a server that cannot be reached
    /// ([`Unreachable`](crate::ErrorKind::Unreachable)) or refuses the index
    /// ([`Server`](crate::ErrorKind::Server)).
    pub fn open(config: Config) -> Result<MongoStore, Error> {
        let mut options = ClientOptions::parse(config.connection_string())
            .run()
            .map_err(|e| Error::driver("the MongoDB connection string is not valid", e))?;
        let database = options.default_database.clone().ok_or_else(|| {
            Error::url("the URL names no database: mongodb://HOST:PORT/DATABASE?collection=NAME")
        })?;
        let mut concern = options.write_concern.take().unwrap_or_default();
        if concern.w == Some(Acknowledgment::Nodes(0)) {
            return Err(Error::url(
                "w=0 does not wait for the server: a message could be acknowledged and lost",
            ));
        }
        concern.w.get_or_insert(Acknowledgment::Majority);
        concern.journal.get_or_insert(true);
        concern
            .w_timeout
            .get_or_insert(DEFAULT_WRITE_CONCERN_TIMEOUT);
        options.write_concern = Some(concern);
        options
            .server_selection_timeout
            .get_or_insert(DEFAULT_SERVER_SELECTION_TIMEOUT);
        options
            .connect_timeout
            .get_or_insert(DEFAULT_CONNECT_TIMEOUT);
        options.app_name.get_or_insert_with(|| "mllp".to_owned());
        let client = Client::with_options(options)
            .map_err(|e| Error::driver("the MongoDB client cannot start", e))?;
        let collection = client
            .database(&database)
            .collection::<Document>(config.collection_name());
        let shared = Arc::new(Shared {
            client,
            location: format!("{database}.{}", config.collection_name()),
            collection,
            name: config.redacted(),
            dedup: config.is_dedup(),
            stored: AtomicU64::new(0),
            resends: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        });
        let store = MongoStore {
            shared,
            workers: Workers::new(),
        };
        if store.shared.dedup {
            let shared = Arc::clone(&store.shared);
            store
                .workers
                .run(Instant::now() + SAVE_TIMEOUT, move || shared.create_index())
                .map_err(Error::other)??;
        }
        Ok(store)
    }

    /// Opens the store a store URL names ([`Config::from_url`], then [`open`](Self::open)).
    ///
    /// # Errors
    /// As [`Config::from_url`] and [`open`](Self::open).
    pub fn open_url(url: &str) -> Result<MongoStore, Error> {
        MongoStore::open(Config::from_url(url)?)
    }

    /// The counters since the store was opened.
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            stored: s.stored.load(Ordering::Relaxed),
            resends: s.resends.load(Ordering::Relaxed),
            reused_control_ids: s.reused.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
        }
    }

    /// The document a message is stored as (see the table on [`MongoStore`]).
    pub fn document(message: &StoredMessage<'_>) -> Document {
        let text = |v: Option<&str>| v.map_or(Bson::Null, |s| Bson::String(s.to_owned()));
        doc! {
            "control_id": text(message.control_id()),
            "message_type": text(message.message_type()),
            "sending_application": text(message.sending_application()),
            "sending_facility": text(message.sending_facility()),
            "receiving_application": text(message.receiving_application()),
            "receiving_facility": text(message.receiving_facility()),
            "received_at": DateTime::from_system_time(message.received_at()),
            "peer": message.peer_addr().to_string(),
            "tls_subject": text(message.tls_subject()),
            "charset": message.charset().name(),
            "message": message.text(),
            "size": message.text().len() as i64,
            DIGEST_FIELD: message.content_digest().to_string(),
        }
    }
}

impl Store for MongoStore {
    /// Inserts the message's document, on one of the store's threads (see
    /// [`DRIVER_STACK_SIZE`](crate::DRIVER_STACK_SIZE)), waiting [`SAVE_TIMEOUT`] at most.
    fn save(&self, message: &StoredMessage<'_>) -> Result<Receipt, StoreError> {
        self.save_before(message, Instant::now() + SAVE_TIMEOUT)
    }

    /// As [`save`](Store::save), waiting until `deadline` at most.
    fn save_before(
        &self,
        message: &StoredMessage<'_>,
        deadline: Instant,
    ) -> Result<Receipt, StoreError> {
        if message.text().len() > MAX_TEXT_BYTES {
            return Err(self.shared.fail(StoreError::refused(format!(
                "{} bytes: larger than a MongoDB document can hold ({MAX_TEXT_BYTES} bytes \
                 of text)",
                message.text().len()
            ))));
        }
        let document = Self::document(message);
        let label = format!(
            "message {} from {}",
            message.control_id().unwrap_or("-"),
            message.peer_addr()
        );
        let shared = Arc::clone(&self.shared);
        let asked = Instant::now();
        match self
            .workers
            .run(deadline, move || shared.insert(document, &label))
        {
            Ok(result) => result,
            Err(reason) => Err(self.shared.fail(StoreError::retryable(late(reason, asked)))),
        }
    }

    fn name(&self) -> String {
        self.shared.name.clone()
    }

    /// Pings the server, waiting [`CHECK_TIMEOUT`] at most (and the server selection timeout,
    /// 5 s unless the URL sets `serverSelectionTimeoutMS`, for a server that cannot be
    /// reached).
    fn check(&self) -> Result<(), StoreError> {
        let shared = Arc::clone(&self.shared);
        let asked = Instant::now();
        self.workers
            .run(asked + CHECK_TIMEOUT, move || shared.ping())
            .map_err(|reason| StoreError::retryable(late(reason, asked)))?
    }
}

/// The reason a call on the driver's threads failed, with how long it waited when that was
/// the reason.
fn late(reason: &'static str, asked: Instant) -> String {
    if reason == LATE {
        format!("{reason} (waited {} ms)", asked.elapsed().as_millis())
    } else {
        reason.to_owned()
    }
}

impl Shared {
    fn create_index(&self) -> Result<(), Error> {
        dedup::create_index(&self.collection, &self.name)
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.client
            .database(self.collection.namespace().db.as_str())
            .run_command(doc! { "ping": 1 })
            .run()
            .map(|_| ())
            .map_err(|e| {
                StoreError::retryable(format!("MongoDB did not answer a ping: {}", summary(&e)))
            })
    }

    /// Inserts `document` (of the message `label` names, for the log).
    fn insert(&self, document: Document, label: &str) -> Result<Receipt, StoreError> {
        let key = self.dedup.then(|| dedup::resend_filter(&document));
        let check = key.is_some().then(|| document.clone());
        match self.collection.insert_one(document).run() {
            Ok(done) => {
                self.stored.fetch_add(1, Ordering::Relaxed);
                let id = match done.inserted_id {
                    Bson::ObjectId(oid) => oid.to_hex(),
                    other => other.to_string(),
                };
                let receipt = Receipt::new(format!("{}/{id}", self.location));
                match check.and_then(|d| dedup::reuses_key(&self.collection, &d)) {
                    Some(true) => {
                        self.reused.fetch_add(1, Ordering::Relaxed);
                        warn!(
                            "{label} reuses the control ID of a different message stored \
                             before (the sending system may have reset its counter): stored \
                             as a new document, {receipt}"
                        );
                        Ok(receipt.reusing_control_id())
                    }
                    _ => Ok(receipt),
                }
            }
            Err(e) if key.is_some() && is_duplicate_key(&e) => {
                self.resends.fetch_add(1, Ordering::Relaxed);
                let receipt = self.duplicate(key.unwrap_or_default());
                // The listener logs it at info, with the store's name.
                debug!("{label} is a resend of {receipt}: not stored again");
                Ok(receipt)
            }
            Err(e) => Err(self.fail(save_error(e))),
        }
    }

    /// The receipt for a resend: the document already stored, when it can be found.
    fn duplicate(&self, key: Document) -> Receipt {
        let found = self
            .collection
            .find_one(key)
            .projection(doc! { "_id": 1 })
            .run();
        let id = match found {
            Ok(Some(d)) => match d.get("_id") {
                Some(Bson::ObjectId(oid)) => oid.to_hex(),
                Some(other) => other.to_string(),
                None => "duplicate".to_owned(),
            },
            _ => "duplicate".to_owned(),
        };
        Receipt::duplicate(format!("{}/{id}", self.location))
    }

    fn fail(&self, e: StoreError) -> StoreError {
        self.failed.fetch_add(1, Ordering::Relaxed);
        e
    }
}

impl std::fmt::Debug for MongoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoStore")
            .field("name", &self.shared.name)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
