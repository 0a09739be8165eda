//! `--store-wait SECS` and `--on-store-failure close|nak`: what `mllp listen` does while a
//! store fails, for every kind of store.

use std::time::Duration;

use mllp::{OnStoreFailure, Store, StoreHandler};

use super::args::{Group, Opt, Spec};

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

/// `--store-wait` and `--on-store-failure`.
pub const STORE_POLICY: Group<StorePolicy> = Group {
    title: "When the store fails",
    opts: &[
        Opt {
            spec: Spec {
                long: "store-wait",
                short: None,
                value: Some("SECS"),
                help: "retry a failing store this long while the sender waits (default 5,\n\
                       at most 3600)",
            },
            set: |p, v| {
                p.wait = v.seconds_up_to(3600.0)?;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "on-store-failure",
                short: None,
                value: Some("close|nak"),
                help: "then close (default: no ACK, the sender resends) or nak (AE, reason)",
            },
            set: |p, v| {
                p.on_failure = v.choice(&[
                    ("close", OnStoreFailure::Close),
                    ("nak", OnStoreFailure::Nak),
                ])?;
                Ok(())
            },
        },
    ],
};

impl StorePolicy {
    /// No wait, `AE` at once: for a store whose failures do not pass while a sender waits (a
    /// relay's full or failing spool).
    pub const NAK_AT_ONCE: StorePolicy = StorePolicy {
        wait: Duration::ZERO,
        on_failure: OnStoreFailure::Nak,
    };

    /// `handler` with this policy.
    pub fn apply<S: Store>(&self, handler: StoreHandler<S>) -> StoreHandler<S> {
        handler.store_wait(self.wait).on_failure(self.on_failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Args, Command, UsageError};
    use std::ffi::OsString;

    fn take(v: &[&str]) -> Result<StorePolicy, UsageError> {
        static CMD: Command = Command {
            name: "x",
            usage: "",
            summary: "",
            about: "",
            tables: &[&STORE_POLICY],
            footer: "",
            run: |_| Ok(0),
            check: |_| Ok(()),
        };
        let mut args = Args::new(&CMD, v.iter().map(OsString::from));
        let mut policy = StorePolicy::default();
        while let Some(f) = args.next_option()? {
            assert!(STORE_POLICY.apply(&f, &mut policy)?);
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
