//! Why a store could not keep a message, and whether trying again can help.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use crate::error::Error;

/// Whether a failed save can succeed when tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not keep the message now, but may later: a broker or database that is
    /// unreachable, a confirm or write concern that timed out, a full disk, an I/O error. The
    /// listener answers `AE` (`CE`; a commit NAK in MLLP release 2 mode): the sender keeps the
    /// message and resends it.
    Retryable,
    /// The store will never take this message (too large for it, refused by its rules): a
    /// retry cannot succeed, so a listener does not retry it while the sender waits. The
    /// listener answers `AE` (`CE`; a commit NAK) with the reason, as for any failed save.
    Refused,
}

/// Why [`Store::save`](super::Store::save) (or [`Store::check`](super::Store::check)) failed:
/// a [kind](StoreErrorKind) that decides the acknowledgement, a sentence for the operator and
/// the sender (it goes into the ACK's MSA-3 and ERR segment, so it must not hold credentials
/// or patient data), and the underlying error when there is one.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl StoreError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A failure that may not happen again: see [`StoreErrorKind::Retryable`].
    pub fn retryable(message: impl Into<String>) -> StoreError {
        StoreError::new(StoreErrorKind::Retryable, message)
    }

    /// A message the store will never take: see [`StoreErrorKind::Refused`].
    pub fn refused(message: impl Into<String>) -> StoreError {
        StoreError::new(StoreErrorKind::Refused, message)
    }

    /// The same error, caused by `source` (shown after the message, and by
    /// [`source`](StdError::source)).
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Whether a retry can succeed.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// `true` for [`StoreErrorKind::Retryable`].
    pub fn is_retryable(&self) -> bool {
        self.kind == StoreErrorKind::Retryable
    }

    /// The sentence, without the source.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// An I/O error is retryable: a full disk, a missing permission, a failing device can all be
/// fixed by an operator while the sender keeps resending.
impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> StoreError {
        StoreError::retryable("I/O error").with_source(e)
    }
}

/// A crate error met by a store (opening a [`FileStore`](super::FileStore), say): retryable
/// except for an invalid configuration.
impl From<Error> for StoreError {
    fn from(e: Error) -> StoreError {
        let kind = match e {
            Error::Config(_) => StoreErrorKind::Refused,
            _ => StoreErrorKind::Retryable,
        };
        let message = match kind {
            StoreErrorKind::Refused => "invalid store configuration",
            _ => "store failure",
        };
        StoreError::new(kind, message).with_source(e)
    }
}

/// Into the crate's one error type, for `?` in functions returning [`crate::Result`]:
/// [`Error::Store`].
impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        Error::Store(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_texts_and_conversions() {
        let full = io::Error::new(io::ErrorKind::StorageFull, "no space left on device");
        let e = StoreError::from(full);
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "I/O error: no space left on device");
        let e = StoreError::refused("too large").with_source("limit 10 bytes");
        assert_eq!(e.kind(), StoreErrorKind::Refused);
        assert_eq!(e.message(), "too large");
        assert_eq!(e.to_string(), "too large: limit 10 bytes");
        assert_eq!(e.source().unwrap().to_string(), "limit 10 bytes");

        let e = Error::from(StoreError::retryable("broker unreachable").with_source(
            io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused"),
        ));
        let Error::Store(inner) = &e else {
            panic!("{e:?}")
        };
        assert!(inner.is_retryable());
        assert_eq!(
            e.to_string(),
            "store error: broker unreachable: connection refused"
        );
        let cause = std::error::Error::source(&e).and_then(std::error::Error::source);
        assert_eq!(cause.unwrap().to_string(), "connection refused");

        let back = StoreError::from(Error::Config("bad".into()));
        assert_eq!(back.kind(), StoreErrorKind::Refused);
        assert!(StoreError::from(Error::Closed).is_retryable());
    }
}
