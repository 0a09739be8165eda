//! [`Keepalive`]: the TCP keepalive timers set on every connection, both sides.

use std::net::TcpStream;
use std::time::Duration;

use crate::error::{Error, Result};

/// The TCP keepalive timers of a connection: after [`idle`](Self::idle) without traffic the
/// operating system sends a probe, then one every [`interval`](Self::interval), and drops the
/// connection when [`count`](Self::count) probes in a row go unanswered.
///
/// HL7 connections stay open for days and may carry nothing for hours; a firewall or NAT table
/// that forgets such a connection, or a peer that vanished, would otherwise go unnoticed until
/// the next message (a sender's write that is never acknowledged, a listener slot held by a
/// dead connection). The defaults notice a dead peer within about ten minutes of silence:
/// [`DEFAULT_KEEPALIVE_IDLE`] (5 minutes), then a probe every [`DEFAULT_KEEPALIVE_INTERVAL`]
/// (1 minute), [`DEFAULT_KEEPALIVE_COUNT`] (5) of them. The timers are whole seconds.
///
/// On by default on sender connections ([`SenderConfig::keepalive`](crate::SenderConfig::keepalive))
/// and accepted connections ([`ListenerConfig::keepalive`](crate::ListenerConfig::keepalive)).
/// Set on Linux, Android, the Apple platforms and FreeBSD; elsewhere the operating system's
/// defaults stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// How long a connection is idle before the first probe. Default:
    /// [`DEFAULT_KEEPALIVE_IDLE`] (5 minutes).
    pub idle: Duration,
    /// The time between probes. Default: [`DEFAULT_KEEPALIVE_INTERVAL`] (1 minute).
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped. Default:
    /// [`DEFAULT_KEEPALIVE_COUNT`] (5).
    pub count: u32,
}

/// The default idle time before the first keepalive probe: 5 minutes.
pub const DEFAULT_KEEPALIVE_IDLE: Duration = Duration::from_secs(5 * 60);
/// The default time between keepalive probes: 1 minute.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// The default number of unanswered probes before a connection is dropped: 5.
pub const DEFAULT_KEEPALIVE_COUNT: u32 = 5;
/// The longest idle time or interval accepted: 32767 s (Linux's limit).
pub const MAX_KEEPALIVE_SECS: u64 = 32767;
/// The most probes accepted: 127 (Linux's limit).
pub const MAX_KEEPALIVE_COUNT: u32 = 127;

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            idle: DEFAULT_KEEPALIVE_IDLE,
            interval: DEFAULT_KEEPALIVE_INTERVAL,
            count: DEFAULT_KEEPALIVE_COUNT,
        }
    }
}

impl Keepalive {
    /// Timers in whole seconds.
    pub fn new(idle: Duration, interval: Duration, count: u32) -> Keepalive {
        Keepalive {
            idle,
            interval,
            count,
        }
    }

    /// Checks the timers: idle time and interval from 1 s to [`MAX_KEEPALIVE_SECS`] in whole
    /// seconds, count from 1 to [`MAX_KEEPALIVE_COUNT`].
    ///
    /// # Errors
    /// [`Error::Config`] naming the value out of range.
    pub fn validate(&self) -> Result<()> {
        for (name, d) in [("idle time", self.idle), ("interval", self.interval)] {
            if d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > MAX_KEEPALIVE_SECS {
                return Err(Error::Config(format!(
                    "the keepalive {name} must be whole seconds from 1 to {MAX_KEEPALIVE_SECS}, not {} s",
                    d.as_secs_f64()
                )));
            }
        }
        if self.count == 0 || self.count > MAX_KEEPALIVE_COUNT {
            return Err(Error::Config(format!(
                "the keepalive count must be from 1 to {MAX_KEEPALIVE_COUNT}, not {}",
                self.count
            )));
        }
        Ok(())
    }

    /// The keepalive settings of a connected socket as the operating system reports them
    /// (`None`: keepalive is off): to check what a connection runs with.
    ///
    /// # Errors
    /// The operating system's error, or [`std::io::ErrorKind::Unsupported`] on a platform where
    /// the timers cannot be read.
    pub fn of(tcp: &TcpStream) -> std::io::Result<Option<Keepalive>> {
        super::sys::keepalive_of(tcp)
    }

    /// Sets `keepalive` on a socket (`None`: turns keepalive off).
    pub(crate) fn apply(tcp: &TcpStream, keepalive: Option<&Keepalive>) -> std::io::Result<()> {
        super::sys::set_keepalive(tcp, keepalive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn timers_are_set_and_read_back_and_can_be_turned_off() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let k = Keepalive::new(Duration::from_secs(120), Duration::from_secs(7), 3);
        Keepalive::apply(&tcp, Some(&k)).unwrap();
        assert_eq!(Keepalive::of(&tcp).unwrap(), Some(k));
        Keepalive::apply(&tcp, None).unwrap();
        assert_eq!(Keepalive::of(&tcp).unwrap(), None);
    }

    #[test]
    fn out_of_range_timers_are_refused() {
        let ok = Keepalive::default();
        assert!(ok.validate().is_ok());
        for bad in [
            Keepalive {
                idle: Duration::ZERO,
                ..ok
            },
            Keepalive {
                idle: Duration::from_millis(1500),
                ..ok
            },
            Keepalive {
                interval: Duration::from_secs(40_000),
                ..ok
            },
            Keepalive { count: 0, ..ok },
            Keepalive { count: 128, ..ok },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
