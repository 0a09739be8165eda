//! A MongoDB store for the [`mllp`] listener: each HL7 v2 message is inserted as one document,
//! with a write concern of the majority and the journal by default, before the sender gets
//! its `AA`.
//!
//! [`MongoStore`] implements [`mllp::Store`], so [`Listener::spawn_store`](mllp::Listener::spawn_store)
//! (or `mllp listen --store mongodb://...`) acknowledges a message only once MongoDB has
//! acknowledged its document; any failure is answered `AE` and the sender resends. With
//! `dedup=true` a unique index on (`sending_application`, `sending_facility`, `control_id`,
//! `content_digest`) turns those at-least-once resends into exactly-once documents, while a
//! message that reuses a control ID with another content is stored (and counted). The document schema is
//! on [`MongoStore`]; the URL options on [`Config::from_url`].
//!
//! It uses the official `mongodb` driver through its synchronous API (which runs a small tokio
//! runtime of its own), with TLS through OpenSSL. `mongodb+srv://` URLs need this crate's
//! `srv` feature (the driver's DNS resolver).
//!
//! # Example
//! A listener storing into the collection `adt` of the database `hl7` (needs a server):
//!
//! ```no_run
//! use std::sync::Arc;
//! use mllp::{Listener, Store};
//! use mllp_mongodb::MongoStore;
//!
//! let store = Arc::new(MongoStore::open_url(
//!     "mongodb://127.0.0.1:27017/hl7?collection=adt&dedup=true",
//! )?);
//! store.check()?; // a server that is down is an error now, not at the first message
//! let running = Listener::builder("127.0.0.1:2575").bind()?.spawn_store(store.clone())?;
//! // ... senders deliver; each AA means a document in hl7.adt ...
//! running.shutdown();
//! running.join()?;
//! println!("{} stored, {} resends", store.stats().stored, store.stats().resends);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod dedup;
mod error;
mod store;
mod workers;

pub use config::{
    Config, DEFAULT_COLLECTION, DEFAULT_CONNECT_TIMEOUT, DEFAULT_SERVER_SELECTION_TIMEOUT,
    DEFAULT_WRITE_CONCERN_TIMEOUT,
};
pub use dedup::DEDUP_INDEX;
pub use error::{Error, ErrorKind};
pub use store::{MongoStore, Stats, CHECK_TIMEOUT, MAX_TEXT_BYTES, SAVE_TIMEOUT};
pub use workers::{DRIVER_STACK_SIZE, MAX_WORKERS};

use mllp::Store;

/// Opens the store a `mongodb://` or `mongodb+srv://` URL names, for a registry of stores by
/// URL scheme (`mllp listen --store`), with the same signature as every store crate's
/// `open_url`. TLS settings go in the URL (`tls=true&tlsCAFile=...`), so `options.tls_ca` is
/// refused rather than ignored.
///
/// # Errors
/// As [`MongoStore::open_url`]; a URL error for `options.tls_ca`. The text never holds
/// credentials.
pub fn open_url(url: &str, options: &mllp::store::UrlOptions) -> Result<Box<dyn Store>, Error> {
    if options.tls_ca.is_some() {
        return Err(Error::url(
            "a CA file for MongoDB goes in the URL (tls=true&tlsCAFile=PATH), not beside it",
        ));
    }
    Ok(Box::new(MongoStore::open_url(url)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_url_refuses_a_setting_it_has_no_use_for() {
        let options = mllp::store::UrlOptions::new().tls_ca("/some/ca.pem");
        let e = open_url("mongodb://127.0.0.1:1/hl7", &options)
            .err()
            .expect("a CA file beside a MongoDB URL is refused");
        assert_eq!(e.kind(), ErrorKind::Url, "{e}");
        assert!(e.to_string().contains("tlsCAFile"), "{e}");
    }
}
