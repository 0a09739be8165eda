//! `--store-wait SECS` and `--on-store-failure close|nak`: what `mllp listen` does while a
//! store fails, for every kind of store.

use std::time::Duration;

use mllp::{OnStoreFailure, Store, StoreHandler};

use super::args::{Args, UsageError};

/// The store wait when `--store-wait` is not given.
pub const DEFAULT_STORE_WAIT: Duration = Duration::from_secs(5);

/// The options' values.
#[derive(Debug, Clone, Copy)]
pub struct StorePolicy {
    /// `--store-wait SECS`: how long a retryable failure is retried while the sender waits.
    pub wait: Duration,
    /// `--on-store-failure`: the answer once the wait is over.
    pub on_failure: OnStoreFailure,
}

impl Default for StorePolicy {
    fn default() -> StorePolicy {
        StorePolicy {
            wait: DEFAULT_STORE_WAIT,
            on_failure: OnStoreFailure::Close,
        }
    }
}

impl StorePolicy {
    /// No wait, `AE` at once: for a store whose failures do not pass while a sender waits (a
    /// relay's full or failing spool).
    pub const NAK_AT_ONCE: StorePolicy = StorePolicy {
        wait: Duration::ZERO,
        on_failure: OnStoreFailure::Nak,
    };

    /// Takes option `name` (and its value) if it is one of these; returns whether it was.
    pub fn take(&mut self, name: &str, args: &mut Args) -> Result<bool, UsageError> {
        match name {
            "store-wait" => {
                let secs: f64 = args.parsed(name)?;
                if !(secs.is_finite() && (0.0..=3600.0).contains(&secs)) {
                    return Err(UsageError(
                        "--store-wait must be a number of seconds from 0 to 3600".into(),
                    ));
                }
                self.wait = Duration::from_secs_f64(secs);
            }
            "on-store-failure" => {
                self.on_failure = match args.value(name)?.as_str() {
                    "close" => OnStoreFailure::Close,
                    "nak" => OnStoreFailure::Nak,
                    other => {
                        return Err(UsageError(format!(
                            "--on-store-failure is close or nak, not {other:?}"
                        )))
                    }
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `handler` with this policy.
    pub fn apply<S: Store>(&self, handler: StoreHandler<S>) -> StoreHandler<S> {
        handler.store_wait(self.wait).on_failure(self.on_failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn take(v: &[&str]) -> Result<StorePolicy, UsageError> {
        let mut args = Args::new(v.iter().map(OsString::from)).unwrap();
        let mut policy = StorePolicy::default();
        while let Some(name) = args.next_option() {
            assert!(policy.take(&name, &mut args)?, "{name}");
        }
        Ok(policy)
    }

    #[test]
    fn defaults_and_values() {
        let p = take(&[]).unwrap();
        assert_eq!(
            (p.wait, p.on_failure),
            (DEFAULT_STORE_WAIT, OnStoreFailure::Close)
        );
        let p = take(&["--store-wait", "0.5", "--on-store-failure", "nak"]).unwrap();
        assert_eq!(
            (p.wait, p.on_failure),
            (Duration::from_millis(500), OnStoreFailure::Nak)
        );
        assert_eq!(take(&["--store-wait=0"]).unwrap().wait, Duration::ZERO);
        for bad in [
            &["--store-wait", "-1"][..],
            &["--store-wait", "nan"],
            &["--store-wait", "4000"],
            &["--on-store-failure", "retry"],
        ] {
            assert!(take(bad).is_err(), "{bad:?}");
        }
    }
}
