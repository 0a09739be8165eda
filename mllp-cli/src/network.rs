//! The network options: TCP keepalive on the connections of every command that connects or
//! listens, and, on the receiving side, which peers may connect (`--allow`) and which
//! proxies start their connections with a PROXY protocol header (`--proxy-protocol-from`).

use mllp::{Cidr, Keepalive, ListenerBuilder, SenderBuilder};

use super::addr;
use super::args::{Group, Opt, Spec, UsageError};

/// `--keepalive`: `None` until given (the library's default, on).
#[derive(Debug, Default, Clone, Copy)]
pub struct KeepaliveChoice(Option<Option<Keepalive>>);

impl KeepaliveChoice {
    /// A listener builder with this choice.
    pub fn listener(self, builder: ListenerBuilder) -> ListenerBuilder {
        match self.0 {
            Some(k) => builder.keepalive(k),
            None => builder,
        }
    }

    /// A sender builder with this choice.
    pub fn sender(self, builder: SenderBuilder) -> SenderBuilder {
        match self.0 {
            Some(k) => builder.keepalive(k),
            None => builder,
        }
    }
}

/// `--keepalive`, for every command that connects or listens (a relay's both sides).
pub const KEEPALIVE: Group<KeepaliveChoice> = Group {
    title: "TCP keepalive",
    opts: &[Opt {
        spec: Spec {
            long: "keepalive",
            short: None,
            value: Some("IDLE,INT,N"),
            help: "TCP keepalive on every connection: a probe after IDLE seconds without\n\
                   traffic, then one every INT seconds, the connection dropped after N\n\
                   unanswered (default 300,60,5: 5 minutes, 1 minute, 5 probes); `off`",
        },
        set: |k, v| {
            k.0 = Some(keepalive(v.name(), &v.text())?);
            Ok(())
        },
    }],
};

/// Parses `IDLE,INT,N` (whole seconds) or `off`.
fn keepalive(name: &str, text: &str) -> Result<Option<Keepalive>, UsageError> {
    if text == "off" {
        return Ok(None);
    }
    let bad = || {
        UsageError(format!(
            "--{name} is IDLE,INT,N (whole seconds, seconds, probes: 300,60,5) or off, not {text:?}"
        ))
    };
    let parts: Vec<&str> = text.split(',').collect();
    let [idle, interval, count] = parts[..] else {
        return Err(bad());
    };
    let secs = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    let k = Keepalive::new(
        std::time::Duration::from_secs(secs(idle)?),
        std::time::Duration::from_secs(secs(interval)?),
        count.trim().parse().map_err(|_| bad())?,
    );
    k.validate()
        .map_err(|e| UsageError(format!("--{name}: {}", strip(&e))))?;
    Ok(Some(k))
}

/// An error's message without the library's "invalid configuration: " prefix.
fn strip(e: &mllp::Error) -> String {
    match e {
        mllp::Error::Config(msg) => msg.clone(),
        e => e.to_string(),
    }
}

/// Which peers may connect to a listener, and which are proxies.
#[derive(Debug, Default)]
pub struct Access {
    /// `--allow`: empty for everyone.
    allow: Vec<Cidr>,
    /// `--proxy-protocol-from`: empty for the PROXY protocol off.
    proxy_from: Vec<Cidr>,
}

impl Access {
    /// A listener builder with these lists.
    pub fn listener(&self, mut builder: ListenerBuilder) -> ListenerBuilder {
        for block in &self.allow {
            builder = builder.allow(*block);
        }
        for block in &self.proxy_from {
            builder = builder.proxy_protocol_from(*block);
        }
        builder
    }
}

/// `--allow` and `--proxy-protocol-from`, for the commands that listen.
pub const ACCESS: Group<Access> = Group {
    title: "Who may connect",
    opts: &[
        Opt {
            spec: Spec {
                long: "allow",
                short: None,
                value: Some("CIDR[,CIDR]"),
                help:
                    "serve only peers in these address blocks (10.0.0.0/8, 192.0.2.7, fd00::/8;\n\
                       repeatable): anyone else is closed at once, logged and counted; the\n\
                       address checked is the client's, after any PROXY protocol header",
            },
            set: |a, v| {
                a.allow.extend(addr::blocks(v.name(), &v.text())?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "proxy-protocol-from",
                short: None,
                value: Some("CIDR[,CIDR]"),
                help: "connections from these proxies (HAProxy with send-proxy-v2; repeatable)\n\
                       start with a PROXY protocol header (v1 or v2), which names the client\n\
                       that lines, stores and --allow see; without one, or with a malformed\n\
                       one, they are refused, as is a header from anyone else. Default: off",
            },
            set: |a, v| {
                a.proxy_from.extend(addr::blocks(v.name(), &v.text())?);
                Ok(())
            },
        },
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keepalive_values() {
        assert_eq!(
            keepalive("keepalive", "120,10,3").unwrap(),
            Some(Keepalive::new(
                Duration::from_secs(120),
                Duration::from_secs(10),
                3
            ))
        );
        assert_eq!(keepalive("keepalive", "off").unwrap(), None);
        for bad in [
            "", "1,2", "1,2,3,4", "0,60,5", "300,60,0", "1.5,60,5", "x,60,5",
        ] {
            let e = keepalive("keepalive", bad).unwrap_err().0;
            assert!(e.starts_with("--keepalive"), "{bad}: {e}");
        }
    }
}
