//! The outbox as a [`Store`]: what a listener in front of it (a relay) acknowledges.

use super::segment::{self, Kind};
use super::Outbox;
use crate::error::Error;
use crate::store::{Receipt, Store, StoreError, StoredMessage};

/// An outbox is a [`Store`]: a listener that saves into it acknowledges a message once it is
/// durably queued for delivery (store-and-forward). A full or failing outbox is a retryable
/// error: the sender gets AE and keeps the message.
impl Store for Outbox {
    fn save(&self, message: &StoredMessage<'_>) -> std::result::Result<Receipt, StoreError> {
        match self.inner.append(Kind::Text, message.text().as_bytes()) {
            Ok((seq, off)) => Ok(Receipt::new(format!(
                "{}/segments/{} @{off}",
                self.inner.dir.display(),
                segment::file_name(seq)
            ))),
            Err(e @ Error::Full { .. }) => Err(StoreError::retryable(e.to_string())),
            // The error is the source, shown once after the sentence.
            Err(e) => Err(StoreError::retryable("cannot queue the message").with_source(e)),
        }
    }

    fn name(&self) -> String {
        self.inner.dir.display().to_string()
    }

    fn check(&self) -> std::result::Result<(), StoreError> {
        match &self.inner.lock().failed {
            Some(why) => Err(StoreError::retryable(why.clone())),
            None => Ok(()),
        }
    }
}
