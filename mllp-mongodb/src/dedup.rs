//! `dedup=true`: the unique index that turns resends into one document, keyed on the message's
//! key (MSH-3, MSH-4, MSH-10) **and** its content digest, so that a message that reuses a
//! control ID with another content is stored as a new document (and counted) instead of being
//! answered `AA` and dropped.

use log::{debug, warn};
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::IndexOptions;
use mongodb::sync::Collection;
use mongodb::IndexModel;

use crate::error::Error;

/// The name of the unique index `dedup=true` creates.
pub const DEDUP_INDEX: &str = "mllp_dedup_content";

/// The name of the index earlier versions created on the key alone. It would refuse a message
/// that reuses a control ID, so it is dropped when the store opens, as is any unique index on
/// exactly the key's three fields (a server may name indexes its own way).
const KEY_ONLY_INDEX: &str = "mllp_dedup";

/// The field of the [`ContentDigest`](mllp::ContentDigest) of `message`, 32 hex digits.
pub(crate) const DIGEST_FIELD: &str = "content_digest";

/// The fields of a message's key.
const KEY_FIELDS: [&str; 3] = ["sending_application", "sending_facility", "control_id"];

/// Creates the unique index on the key and the digest (for documents whose `control_id` is a
/// string: a message without MSH-10 is never taken for a resend), then drops a unique index on
/// the key alone (as earlier versions made it) if there is one.
pub(crate) fn create_index(collection: &Collection<Document>, store: &str) -> Result<(), Error> {
    let mut keys = Document::new();
    for field in KEY_FIELDS.iter().chain([&DIGEST_FIELD]) {
        keys.insert(*field, 1);
    }
    let index = IndexModel::builder()
        .keys(keys)
        .options(
            IndexOptions::builder()
                .name(DEDUP_INDEX.to_owned())
                .unique(true)
                .partial_filter_expression(doc! { "control_id": { "$type": "string" } })
                .build(),
        )
        .build();
    collection
        .create_index(index)
        .run()
        .map_err(|e| Error::driver(&format!("cannot create the unique index in {store}"), e))?;
    debug!("unique index {DEDUP_INDEX} ready in {store}");
    let indexes = collection
        .list_indexes()
        .run()
        .map_err(|e| Error::driver(&format!("cannot list the indexes of {store}"), e))?;
    for index in indexes {
        let index =
            index.map_err(|e| Error::driver(&format!("cannot list the indexes of {store}"), e))?;
        let options = index.options.unwrap_or_default();
        let key_only = options.unique == Some(true)
            && index.keys.len() == KEY_FIELDS.len()
            && KEY_FIELDS.iter().all(|k| index.keys.contains_key(k));
        let Some(name) = options.name.filter(|n| key_only || n == KEY_ONLY_INDEX) else {
            continue;
        };
        collection.drop_index(&name).run().map_err(|e| {
            Error::driver(
                &format!("cannot drop the key-only unique index {name} in {store}"),
                e,
            )
        })?;
        warn!(
            "dropped the unique index {name} in {store}: on the key alone (as `dedup=true` made \
             it before), it refused messages that reuse a control ID with another content; \
             {DEDUP_INDEX} (key and content digest) replaces it. Resends of documents stored \
             before, which have no {DIGEST_FIELD}, are stored again once"
        );
    }
    Ok(())
}

/// The filter that finds the document a resend of `document` hits: key and digest.
pub(crate) fn resend_filter(document: &Document) -> Document {
    let mut filter = key_filter(document);
    filter.insert(DIGEST_FIELD, field(document, DIGEST_FIELD));
    filter
}

/// Whether a document with the key of `document` but another content digest is stored: the
/// sending system reused a control ID. `None` when the server could not say.
pub(crate) fn reuses_key(collection: &Collection<Document>, document: &Document) -> Option<bool> {
    if !matches!(document.get("control_id"), Some(Bson::String(_))) {
        return Some(false);
    }
    let mut filter = key_filter(document);
    // A document stored before digests were kept cannot say whether it is the same message.
    let digest = field(document, DIGEST_FIELD);
    filter.insert(DIGEST_FIELD, doc! { "$exists": true, "$ne": digest });
    match collection
        .find_one(filter)
        .projection(doc! { "_id": 1 })
        .run()
    {
        Ok(found) => Some(found.is_some()),
        Err(e) => {
            debug!("cannot look for an earlier message with the same control ID: {e}");
            None
        }
    }
}

fn key_filter(document: &Document) -> Document {
    let mut filter = Document::new();
    for k in KEY_FIELDS {
        filter.insert(k, field(document, k));
    }
    filter
}

fn field(document: &Document, key: &str) -> Bson {
    document.get(key).cloned().unwrap_or(Bson::Null)
}
