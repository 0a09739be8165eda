//! Why a store could not be opened ([`Error`]), and how a driver error becomes the
//! [`StoreError`] the listener answers with.

use std::error::Error as StdError;
use std::fmt;

use mllp::StoreError;
use mongodb::error::{ErrorKind as DriverKind, WriteFailure};

/// MongoDB's error code for a duplicate key in a unique index.
pub(crate) const DUPLICATE_KEY: i32 = 11000;

/// What kind of failure an [`Error`] is: what the caller should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The store URL or connection string is wrong (bad scheme or option, no database): fix
    /// it; trying again changes nothing.
    Url,
    /// No server answered within the server selection timeout (down, wrong address, network,
    /// TLS handshake): check the server and the address, then start again.
    Unreachable,
    /// A server answered but refused what the store needs (authentication, permissions, the
    /// unique index for `dedup=true`).
    Server,
}

/// Why a [`MongoStore`](crate::MongoStore) could not be opened or checked. Its `Display` is one
/// line for an operator and never holds credentials.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl Error {
    pub(crate) fn url(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Url,
            message: message.into(),
            source: None,
        }
    }

    /// No thread could run the driver (`reason`).
    pub(crate) fn other(reason: &'static str) -> Error {
        Error {
            kind: ErrorKind::Server,
            message: reason.to_owned(),
            source: None,
        }
    }

    /// `what` failed with the driver error `e`.
    pub(crate) fn driver(what: &str, e: mongodb::error::Error) -> Error {
        let kind = match *e.kind {
            DriverKind::InvalidArgument { .. } | DriverKind::InvalidTlsConfig { .. } => {
                ErrorKind::Url
            }
            _ if is_unreachable(&e) => ErrorKind::Unreachable,
            _ => ErrorKind::Server,
        };
        Error {
            kind,
            message: format!("{what}: {}", summary(&e)),
            source: Some(Box::new(e)),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> StoreError {
        match e.kind {
            ErrorKind::Url => StoreError::refused(e.message),
            _ => StoreError::retryable(e.message),
        }
    }
}

/// Whether the server could not be reached at all (as opposed to answering with an error).
fn is_unreachable(e: &mongodb::error::Error) -> bool {
    matches!(
        *e.kind,
        DriverKind::ServerSelection { .. }
            | DriverKind::Io(_)
            | DriverKind::ConnectionPoolCleared { .. }
            | DriverKind::DnsResolve { .. }
            | DriverKind::Shutdown
    )
}

/// The error a failed insert is answered with: retryable (`AE`, the sender resends) unless
/// the message itself can never be stored (a document over the server's size limit, text the
/// driver cannot encode): then refused. A write concern that was not satisfied is retryable:
/// the document may be kept all the same, and the resend is then a duplicate, never a loss.
pub(crate) fn save_error(e: mongodb::error::Error) -> StoreError {
    let refused = match &*e.kind {
        DriverKind::BsonSerialization(_) => true,
        DriverKind::Write(WriteFailure::WriteError(w)) => BSON_TOO_LARGE.contains(&w.code),
        DriverKind::Command(c) => BSON_TOO_LARGE.contains(&c.code),
        _ => false,
    };
    let what = if is_unreachable(&e) {
        "MongoDB unreachable"
    } else if matches!(
        &*e.kind,
        DriverKind::Write(WriteFailure::WriteConcernError(_))
    ) {
        "the write concern was not satisfied"
    } else {
        "MongoDB insert failed"
    };
    let message = format!("{what}: {}", summary(&e));
    if refused {
        StoreError::refused(message)
    } else {
        StoreError::retryable(message)
    }
}

/// Server error codes for a document over the size limit (BSONObjectTooLarge).
const BSON_TOO_LARGE: [i32; 1] = [10334];

/// The driver's error in one short line: for a server selection timeout, the first server's
/// error instead of the whole topology description.
pub(crate) fn summary(e: &mongodb::error::Error) -> String {
    let text = match &*e.kind {
        DriverKind::ServerSelection { message, .. } => {
            // "... Servers: [ { Address: h:p, Type: Unknown, Error: Kind: I/O error: \
            //  Connection refused (os error 111), labels: {} } ] }"
            let cause = message
                .split_once("Error: Kind: ")
                .map(|(_, rest)| rest.split(", labels").next().unwrap_or(rest));
            match cause {
                Some(cause) => format!("no server available ({cause})"),
                None => "no server available".to_owned(),
            }
        }
        DriverKind::Write(WriteFailure::WriteError(w)) => {
            format!("write error {}: {}", w.code, w.message)
        }
        DriverKind::Write(WriteFailure::WriteConcernError(w)) => {
            format!("write concern error {}: {}", w.code, w.message)
        }
        DriverKind::Command(c) => {
            format!("server error {} ({}): {}", c.code, c.code_name, c.message)
        }
        other => other.to_string(),
    };
    text.replace(['\n', '\r'], " ")
}

/// Whether `e` is a duplicate key in a unique index.
pub(crate) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        DriverKind::Write(WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        DriverKind::Command(c) => c.code == DUPLICATE_KEY,
        _ => false,
    }
}
