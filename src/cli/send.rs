//! `mllp send`: send the messages of files (or standard input) and report their ACKs.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mllp::{Charset, Header, Malformed, RetryPolicy, Sender};

use super::args::{Args, UsageError};
use super::options::{label_charset, stderr_line, unknown, Common, Failure};
use super::{logger, split};

/// `mllp send --help`.
pub const HELP: &str = "\
Usage: mllp send ADDR [FILE...] [OPTIONS]

Sends the HL7 messages in each FILE (`-` or none: standard input) to the listener at ADDR,
one at a time, each after the previous one was acknowledged, and prints each message's MSH-10
and ACK code (and the ACK's MSA-3 text). A new message starts at each segment beginning with
MSH; a file starting with FHS or BHS is sent as one block. LF and CRLF become CR.

Options:
  --encoding LABEL        character set of the files and on the wire (default UTF-8);
                          the bytes are sent as they are
  --file-encoding LABEL   the files are in LABEL: convert them to --encoding for sending
  --split-batch           send the messages of an FHS/BHS batch one by one
  --raw                   keep segment endings as they are in the file
  --connect-timeout SECS  (default 10)   --ack-timeout SECS (default 30)
  --retries N             attempts after the first for each message (default 4)
  --tls, --tls-ca PEM, --tls-domain NAME, --tls-cert PEM --tls-key PEM (client identity)
  --mllp2                 expect MLLP release 2 commit blocks instead of HL7 ACKs
  --start-bytes HEX --end-bytes HEX   framing (default 0b and 1c0d)
  -q, --quiet             no per-message lines (a progress line on a terminal)
  -v, -vv                 log connections and retries on standard error

Exit status: 0 when every message got AA or CA, 1 when any got a negative ACK, 2 for usage
errors, unreadable input and connection or delivery failures.";

/// The settings of `mllp send`.
#[derive(Debug)]
struct Config {
    common: Common,
    addr: String,
    files: Vec<String>,
    file_encoding: Option<Charset>,
    split_batch: bool,
    raw: bool,
    connect_timeout: Option<Duration>,
    ack_timeout: Option<Duration>,
    retries: Option<u32>,
    tls: Tls,
}

#[derive(Debug, Default)]
struct Tls {
    on: bool,
    ca: Option<PathBuf>,
    domain: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

fn parse(mut args: Args) -> Result<Config, UsageError> {
    let mut common = Common::default();
    let mut file_encoding = None;
    let mut split_batch = false;
    let mut raw = false;
    let mut connect_timeout = None;
    let mut ack_timeout = None;
    let mut retries = None;
    let mut tls = Tls::default();
    while let Some(name) = args.next_option() {
        if common.take(&name, &mut args)? {
            continue;
        }
        match name.as_str() {
            "file-encoding" => file_encoding = Some(label_charset(&name, &args.value(&name)?)?),
            "split-batch" => split_batch = true,
            "raw" => raw = true,
            "connect-timeout" => connect_timeout = Some(args.seconds(&name)?),
            "ack-timeout" => ack_timeout = Some(args.seconds(&name)?),
            "retries" => retries = Some(args.parsed(&name)?),
            "tls" => tls.on = true,
            "tls-ca" => tls.ca = Some(PathBuf::from(args.value(&name)?)),
            "tls-domain" => tls.domain = Some(args.value(&name)?),
            "tls-cert" => tls.cert = Some(PathBuf::from(args.value(&name)?)),
            "tls-key" => tls.key = Some(PathBuf::from(args.value(&name)?)),
            _ => return Err(unknown("send", &name)),
        }
    }
    let mut positionals = args.positionals().into_iter();
    let Some(addr) = positionals.next() else {
        return Err(UsageError(
            "mllp send needs the address to send to, such as 127.0.0.1:2575".into(),
        ));
    };
    let mut files: Vec<String> = positionals.collect();
    if files.is_empty() {
        files.push("-".into());
    }
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(UsageError(
            "--tls-cert and --tls-key must be given together".into(),
        ));
    }
    tls.on |= tls.ca.is_some() || tls.domain.is_some() || tls.cert.is_some();
    #[cfg(not(feature = "tls"))]
    if tls.on {
        return Err(super::options::no_tls("tls"));
    }
    Ok(Config {
        common,
        addr,
        files,
        file_encoding,
        split_batch,
        raw,
        connect_timeout,
        ack_timeout,
        retries,
        tls,
    })
}

/// One message to send, and where it came from.
struct Outgoing {
    /// `FILE message N`, for error messages.
    origin: String,
    bytes: Vec<u8>,
}

/// Reads every input and cuts it into messages.
fn load(config: &Config) -> Result<Vec<Outgoing>, Failure> {
    let mut out = Vec::new();
    for file in &config.files {
        let (name, bytes) = if file == "-" {
            if std::io::stdin().is_terminal() {
                warn(
                    config,
                    "reading messages from the terminal; end with Ctrl-D",
                );
            }
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(|e| Failure::fatal(format!("cannot read standard input: {e}")))?;
            ("standard input".to_owned(), bytes)
        } else {
            let bytes = std::fs::read(file)
                .map_err(|e| Failure::fatal(format!("cannot read {file}: {e}")))?;
            (file.clone(), bytes)
        };
        let messages = split::messages(&bytes, config.split_batch);
        if messages.is_empty() {
            warn(config, &format!("{name} holds no messages"));
        }
        for (i, msg) in messages.into_iter().enumerate() {
            let bytes = if config.raw {
                msg
            } else {
                split::normalise(&msg)
            };
            out.push(Outgoing {
                origin: format!("{name} message {}", i + 1),
                bytes,
            });
        }
    }
    if out.is_empty() {
        return Err(Failure::fatal("found no HL7 messages in the input"));
    }
    Ok(out)
}

/// A warning of the tool's own on standard error, unless `-q`. (The library's warnings about
/// retries and skipped replies are logged with `-v`: the tool reports every outcome itself.)
fn warn(config: &Config, text: &str) {
    if !config.common.quiet {
        stderr_line(&format!("mllp: warning: {text}"));
    }
}

fn build_sender(config: &Config, charset: Charset) -> Result<Sender, Failure> {
    let mut builder = Sender::builder(config.addr.clone())
        .framing(config.common.framing()?)
        .charset(charset)
        .mllp2(config.common.mllp2);
    if let Some(t) = config.connect_timeout {
        builder = builder.connect_timeout(t);
    }
    if let Some(t) = config.ack_timeout {
        builder = builder.ack_timeout(t);
    }
    if let Some(n) = config.retries {
        builder = builder.retry(RetryPolicy::default().max_attempts(Some(n.saturating_add(1))));
    }
    if config.tls.on {
        let mut tls = mllp::TlsClientConfig::new();
        if let Some(ca) = &config.tls.ca {
            tls = tls.add_root_pem_file(ca)?;
        }
        if let Some(domain) = &config.tls.domain {
            tls = tls.server_name(domain.clone());
        }
        if let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) {
            tls = tls.identity(mllp::Identity::from_pem_files(cert, key)?);
        }
        builder = builder.tls(tls);
    }
    Ok(builder.build()?)
}

/// A progress line on standard error, redrawn at most five times a second.
struct Progress {
    on: bool,
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    fn update(&mut self, done: usize, total: usize, last: bool) {
        if !self.on
            || (!last
                && self
                    .drawn
                    .is_some_and(|t| t.elapsed() < Duration::from_millis(200)))
        {
            return;
        }
        self.drawn = Some(Instant::now());
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{done}/{total} messages, {rate:.0} msg/s");
        if last {
            let _ = writeln!(err);
        }
    }
}

/// Runs `mllp send`.
pub fn run(args: Args) -> Result<u8, Failure> {
    let config = parse(args)?;
    // The tool reports every outcome itself; the library's retry warnings come with -v.
    logger::init(config.common.log_level(log::LevelFilter::Error));
    let charset = config.common.charset()?;
    let framing = config.common.framing()?;
    let messages = load(&config)?;
    let mut sender = build_sender(&config, charset)?;
    let mut progress = Progress {
        on: config.common.quiet && std::io::stderr().is_terminal(),
        started: Instant::now(),
        drawn: None,
    };
    let total = messages.len();
    let (mut negative, mut unsendable) = (0, 0);
    let mut out = std::io::stdout().lock();
    for (done, msg) in messages.iter().enumerate() {
        progress.update(done, total, false);
        let id = Header::parse(&msg.bytes)
            .ok()
            .and_then(|h| {
                h.control_id()
                    .map(|id| String::from_utf8_lossy(id).into_owned())
            })
            .unwrap_or_else(|| "-".into());
        if let Some(at) = find(&msg.bytes, framing.start()) {
            unsendable += 1;
            stderr_line(&format!(
                "mllp: {} cannot be sent: it contains the frame start sequence at byte {at}, \
                 where the listener would cut it",
                msg.origin
            ));
            continue;
        }
        let result = match config.file_encoding.filter(|cs| *cs != charset) {
            Some(file_cs) => match file_cs.decode(&msg.bytes, Malformed::Reject) {
                Ok(text) => sender.send(&text.text),
                Err(e) => Err(mllp::Error::Charset(e)),
            },
            None => {
                if charset.decode(&msg.bytes, Malformed::Reject).is_err() {
                    warn(
                        &config,
                        &format!(
                            "{} is not valid {charset}; it is sent unchanged (see --encoding)",
                            msg.origin
                        ),
                    );
                }
                sender.send_bytes(&msg.bytes)
            }
        };
        match result {
            Ok(ack) => {
                if !ack.is_success() {
                    negative += 1;
                }
                if !config.common.quiet {
                    let text = ack
                        .text
                        .as_deref()
                        .or(ack.errors.first().map(String::as_str));
                    let line = match text {
                        Some(t) if !t.is_empty() => format!("{id} {} {t}", ack.code),
                        _ => format!("{id} {}", ack.code),
                    };
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
            Err(e @ (mllp::Error::Header(_) | mllp::Error::Frame(_) | mllp::Error::Charset(_))) => {
                // Something about this message; the next ones may be fine.
                unsendable += 1;
                stderr_line(&format!("mllp: {} cannot be sent: {e}", msg.origin));
            }
            Err(e) => {
                progress.update(done, total, true);
                let left = total - done;
                return Err(Failure::fatal(format!(
                    "{} (MSH-10 {id}) to {}: {e}{}",
                    msg.origin,
                    config.addr,
                    match left - 1 {
                        0 => String::new(),
                        1 => "; 1 more message was not sent".to_owned(),
                        n => format!("; {n} more messages were not sent"),
                    }
                )));
            }
        }
    }
    progress.update(total, total, true);
    log::info!(
        "sent {total} messages in {:.2} s",
        progress.started.elapsed().as_secs_f64()
    );
    if unsendable > 0 {
        return Err(Failure::fatal(format!(
            "{unsendable} of {total} messages could not be sent"
        )));
    }
    if negative > 0 {
        return Err(Failure::negative(format!(
            "{negative} of {total} messages got a negative acknowledgement"
        )));
    }
    Ok(0)
}

/// The offset of the first `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn parse_v(v: &[&str]) -> Result<Config, UsageError> {
        parse(Args::new(v.iter().map(OsString::from)).unwrap())
    }

    #[test]
    fn addresses_files_and_tls() {
        let c = parse_v(&["h:1"]).unwrap();
        assert_eq!(
            (c.addr.as_str(), c.files.as_slice()),
            ("h:1", &["-".to_string()][..])
        );
        let c = parse_v(&["h:1", "a", "-", "--retries", "0", "--raw"]).unwrap();
        assert_eq!(c.files, ["a", "-"]);
        assert_eq!((c.retries, c.raw), (Some(0), true));
        assert!(parse_v(&[]).is_err());
        assert!(parse_v(&["h:1", "--tls-cert", "c"]).is_err());
        assert!(parse_v(&["h:1", "--file-encoding", "nope"]).is_err());
        #[cfg(feature = "tls")]
        assert!(parse_v(&["h:1", "--tls-ca", "ca.pem"]).unwrap().tls.on);
        #[cfg(not(feature = "tls"))]
        assert!(parse_v(&["h:1", "--tls"]).is_err());
    }
}
