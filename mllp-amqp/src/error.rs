//! The one error type of this crate.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// What went wrong talking to the broker, or configuring the client.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The AMQP URL (or another setting) is wrong: fix the configuration. The text never
    /// holds the password.
    Url(String),
    /// No host could be connected to (each host's reason is in the text): the broker is down
    /// or unreachable, or refused the credentials. Try again later.
    Connect(String),
    /// The broker, or the connection to it, failed during an operation (`during`): the
    /// channel or connection is dropped and the next operation reconnects.
    Broker {
        /// What was being done: `publish`, `consume`, `declare the queue`...
        during: &'static str,
        /// The client's error.
        source: Box<dyn StdError + Send + Sync + 'static>,
        /// Whether the broker closed the channel for this operation (a soft error such as
        /// NOT_FOUND or PRECONDITION_FAILED): the same operation will fail again.
        refused: bool,
    },
    /// An operation (`what`) did not finish within `after`: the connection is dropped.
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long it was awaited.
        after: Duration,
    },
    /// Delivering a message onward over MLLP failed (the forwarder).
    Mllp(mllp::Error),
    /// The queue a forwarder consumes from does not exist (a forwarder never declares it):
    /// fix the name, or create the queue (`mllp listen --store amqp://...?queue=NAME` does).
    NoQueue(String),
}

impl Error {
    pub(crate) fn broker(during: &'static str, e: lapin::Error) -> Error {
        let refused = e.is_amqp_soft_error();
        Error::Broker {
            during,
            source: Box::new(e),
            refused,
        }
    }

    /// Whether trying again later can succeed: `false` for configuration errors and for
    /// operations the broker refused.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Url(_) | Error::NoQueue(_) => false,
            Error::Broker { refused, .. } => !refused,
            Error::Connect(_) | Error::Timeout { .. } => true,
            Error::Mllp(_) => true,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Url(why) => write!(f, "bad AMQP URL: {why}"),
            Error::Connect(why) => write!(f, "cannot connect to the broker: {why}"),
            Error::Broker { during, source, .. } => write!(f, "broker error ({during}): {source}"),
            Error::Timeout { what, after } => {
                write!(f, "no {what} from the broker within {after:?}")
            }
            Error::Mllp(e) => write!(f, "{e}"),
            Error::NoQueue(queue) => write!(f, "the queue {queue} does not exist"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Broker { source, .. } => Some(source.as_ref()),
            Error::Mllp(e) => Some(e),
            _ => None,
        }
    }
}

impl From<mllp::Error> for Error {
    fn from(e: mllp::Error) -> Error {
        Error::Mllp(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_and_kinds() {
        assert!(std::mem::size_of::<Error>() <= 64);
        assert!(!Error::Url("x".into()).is_retryable());
        assert!(Error::Connect("x".into()).is_retryable());
        let t = Error::Timeout {
            what: "confirm",
            after: Duration::from_secs(1),
        };
        assert!(t.is_retryable());
        assert_eq!(t.to_string(), "no confirm from the broker within 1s");
    }
}
