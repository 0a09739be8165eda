//! [`FileStore`] as a [`Store`]: the message file, and the verified TLS client subject in a
//! file beside it.

use std::io;
use std::path::Path;

use super::file::{probe, publish, Retry};
use super::temp_name::TempName;
use super::{FileStore, Receipt, Store, StoreError, StoredMessage};
use crate::error::Error;

/// The extension of the file beside a message that holds the verified subject of the TLS
/// client certificate it came with (one line): `0000000007-ID.tls-subject` beside
/// `0000000007-ID.hl7`. Written, durably, after the message file and before the message is
/// acknowledged; only for messages that came with a verified certificate (mutual TLS).
pub const TLS_SUBJECT_EXTENSION: &str = "tls-subject";

impl Store for FileStore {
    fn save(&self, message: &StoredMessage<'_>) -> std::result::Result<Receipt, StoreError> {
        let id = message.control_id().map(str::as_bytes);
        let failed = StoreError::retryable("cannot write the message file");
        let path = match FileStore::save(self, id, message.text()) {
            Ok(path) => path,
            Err(Error::Io { source, .. }) => return Err(failed.with_source(source)),
            Err(e) => return Err(failed.with_source(e)),
        };
        if let Some(subject) = message.tls_subject() {
            save_subject(self, &path, subject).map_err(|e| {
                // The message file is there; without an acknowledgement the sender resends it.
                StoreError::retryable(format!(
                    "cannot write the TLS subject beside {}",
                    path.display()
                ))
                .with_source(e)
            })?;
        }
        Ok(Receipt::new(path.display().to_string()))
    }

    fn name(&self) -> String {
        self.dir().display().to_string()
    }

    fn check(&self) -> std::result::Result<(), StoreError> {
        self.sync.refresh(self.dir());
        probe(self.dir()).map_err(|e| {
            StoreError::retryable(format!(
                "cannot write in the store directory {}",
                self.dir().display()
            ))
            .with_source(e)
        })
    }
}

/// Writes `subject` durably into the file beside the message at `message`.
fn save_subject(store: &FileStore, message: &Path, subject: &str) -> io::Result<()> {
    let dir = store.dir();
    let path = message.with_extension(TLS_SUBJECT_EXTENSION);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::other("no file name"))?;
    let tmp = dir.join(TempName::ours(name));
    match publish(&store.sync, &tmp, &path, format!("{subject}\n").as_bytes()) {
        Ok(()) => Ok(()),
        Err(Retry::Again(e) | Retry::Fail(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charset::Charset;
    use std::time::SystemTime;

    #[test]
    fn the_tls_subject_is_kept_beside_the_message() {
        let dir = std::env::temp_dir().join(format!("mllp-subject-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = FileStore::open(&dir).unwrap();
        let peer = "127.0.0.1:9".parse().unwrap();
        let text = "MSH|^~\\&|A|B|C|D|2026||ADT^A01|ID1|P|2.5\r";
        let plain = StoredMessage::new(text, peer, Charset::UTF_8, SystemTime::now());
        let receipt = Store::save(&store, &plain).unwrap();
        assert!(receipt.location().ends_with("0000000001-ID1.hl7"));
        let signed = plain.with_tls_subject(Some("CN=lab,O=Hospital"));
        Store::save(&store, &signed).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "0000000001-ID1.hl7",
                "0000000002-ID1.hl7",
                "0000000002-ID1.tls-subject"
            ]
        );
        let subject = std::fs::read_to_string(dir.join("0000000002-ID1.tls-subject")).unwrap();
        assert_eq!(subject, "CN=lab,O=Hospital\n");
        // A reopened store continues after both.
        let store = FileStore::open(&dir).unwrap();
        let receipt = Store::save(&store, &plain).unwrap();
        assert!(receipt.location().ends_with("0000000003-ID1.hl7"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
