//! `mllp send`: send the messages of files (or standard input) and report their ACKs.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mllp::charset::{Charset, Malformed};
use mllp::hl7::{normalise_endings, split_messages, Batches, Header};
use mllp::{CharsetError, Sender};

use super::addr::{self, Use};
use super::args::{Args, Command, Group, Opt, Spec, UsageError};
use super::logger;
use super::network::KEEPALIVE;
use super::options::{label_charset, stderr_line, Common, Failure, ENCODING, FRAMING, OUTPUT};
use super::sender_options::{SenderOptions, ATTEMPTS, IDENTITY, SENDING};

mod resume;

/// `mllp send`.
pub static COMMAND: Command = Command {
    name: "send",
    usage: "ADDR [FILE...] [OPTIONS]",
    summary: "send the messages in files (or standard input), print the ACKs",
    about: "\
Sends the HL7 messages in each FILE (`-` or none: standard input) to the listener at ADDR,
one at a time, each after the previous one was acknowledged, and prints each message's MSH-10
and ACK code (and the ACK's MSA-3 text).

A new message starts at each segment beginning with MSH; a file starting with FHS or BHS is
sent as one block. LF and CRLF become CR. Files are read as UTF-8 (a byte order mark is
dropped) and encoded into --encoding for the wire; a file not valid in its character set
stops the run before anything is sent.",
    tables: &[
        &FILES, &SENDING, &ATTEMPTS, &IDENTITY, &KEEPALIVE, &ENCODING, &FRAMING, &OUTPUT,
    ],
    footer: "\
Exit status: 0 when every message got AA or CA, 1 when any got a negative ACK, 2 for usage
errors, unreadable input and connection or delivery failures.",
    run,
    check: |args| parse(args).map(drop),
};

/// The options about the files: how they are read and split.
#[derive(Debug, Default)]
struct FileOptions {
    file_encoding: Option<Charset>,
    split_batch: bool,
    raw: bool,
    resume: Option<PathBuf>,
}

const FILES: Group<FileOptions> = Group {
    title: "Files",
    opts: &[
        Opt {
            spec: Spec {
                long: "file-encoding",
                short: None,
                value: Some("LABEL"),
                help: "the files are in LABEL instead of UTF-8",
            },
            set: |f, v| {
                f.file_encoding = Some(label_charset(v.name(), &v.text())?);
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "raw",
                short: None,
                value: None,
                help: "send the files' bytes as they are (no conversion, endings kept); a\n\
                       message whose reply cannot be correlated (no readable header or\n\
                       MSH-10) is sent once and the next ACK is its reply, said so",
            },
            set: |f, _| {
                f.raw = true;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "split-batch",
                short: None,
                value: None,
                help: "send the messages of an FHS/BHS batch one by one",
            },
            set: |f, _| {
                f.split_batch = true;
                Ok(())
            },
        },
        Opt {
            spec: Spec {
                long: "resume",
                short: None,
                value: Some("STATE"),
                help: "append each acknowledged message to the file STATE and skip those it\n\
                       already holds, so a rerun sends only the rest (a message is known by\n\
                       FILE as given, its position in FILE and its MSH-10)",
            },
            set: |f, v| {
                f.resume = Some(v.path());
                Ok(())
            },
        },
    ],
};

/// The settings of `mllp send`.
#[derive(Debug)]
struct Config {
    common: Common,
    addr: String,
    files: Vec<String>,
    file_encoding: Option<Charset>,
    split_batch: bool,
    raw: bool,
    resume: Option<PathBuf>,
    sender: SenderOptions,
}

fn parse(mut args: Args) -> Result<Config, UsageError> {
    let mut common = Common::default();
    let mut files = FileOptions::default();
    let mut sender = SenderOptions::default();
    while let Some(f) = args.next_option()? {
        let handled = FILES.apply(&f, &mut files)?
            || SENDING.apply(&f, &mut sender)?
            || ATTEMPTS.apply(&f, &mut sender)?
            || IDENTITY.apply(&f, &mut sender)?
            || KEEPALIVE.apply(&f, &mut sender.keepalive)?
            || ENCODING.apply(&f, &mut common)?
            || FRAMING.apply(&f, &mut common)?
            || OUTPUT.apply(&f, &mut common)?;
        if !handled {
            return Err(f.unhandled("send"));
        }
    }
    let FileOptions {
        file_encoding,
        split_batch,
        raw,
        resume,
    } = files;
    let mut positionals = args.positionals().into_iter();
    let Some(addr) = positionals.next() else {
        return Err(UsageError(
            "mllp send needs the address to send to, such as 127.0.0.1:2575".into(),
        ));
    };
    let addr = addr::parse("ADDR", &addr, Use::Connect)?;
    let mut files: Vec<String> = positionals.collect();
    if files.is_empty() {
        files.push("-".into());
    }
    if raw && file_encoding.is_some() {
        return Err(UsageError(
            "--raw sends the bytes of the files as they are, so --file-encoding cannot be used \
             with it"
                .into(),
        ));
    }
    sender.finish()?;
    Ok(Config {
        common,
        addr,
        files,
        file_encoding,
        split_batch,
        raw,
        resume,
        sender,
    })
}

/// One message to send, and where it came from.
struct Outgoing {
    /// `FILE message N`, for error messages.
    origin: String,
    /// The file as given (`-`: standard input) and the message's position in it (from 1).
    file: String,
    index: usize,
    /// MSH-10 (or BHS-11/FHS-11), `-` when there is none.
    id: String,
    body: Body,
}

impl Config {
    /// How `--split-batch` says batches are cut.
    fn batches(&self) -> Batches {
        if self.split_batch {
            Batches::Split
        } else {
            Batches::Whole
        }
    }
}

/// What is sent for one message.
enum Body {
    /// Text, encoded into `--encoding` by the sender.
    Text(String),
    /// Bytes sent as they are (`--raw`).
    Raw(Vec<u8>),
}

impl Body {
    fn bytes(&self) -> &[u8] {
        match self {
            Body::Text(text) => text.as_bytes(),
            Body::Raw(bytes) => bytes,
        }
    }
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
        let messages: Vec<Body> = if config.raw {
            split_messages(&bytes, config.batches())
                .into_iter()
                .map(Body::Raw)
                .collect()
        } else {
            let file_cs = config.file_encoding.unwrap_or(Charset::UTF_8);
            let text = decode_file(config, &name, &bytes, file_cs)?;
            let mut bodies = Vec::new();
            for msg in split_messages(text.as_bytes(), config.batches()) {
                // Cut at ASCII bytes only, so each message is still UTF-8.
                let text = String::from_utf8(normalise_endings(&msg)).map_err(|_| {
                    Failure::fatal(format!("{name} could not be cut into UTF-8 messages"))
                })?;
                bodies.push(Body::Text(text));
            }
            bodies
        };
        if messages.is_empty() {
            warn(config, &format!("{name} holds no messages"));
        }
        for (i, body) in messages.into_iter().enumerate() {
            let id = Header::parse(body.bytes())
                .ok()
                .and_then(|h| h.control_id_text().map(String::from))
                .unwrap_or_else(|| "-".into());
            out.push(Outgoing {
                origin: format!("{name} message {}", i + 1),
                file: file.clone(),
                index: i + 1,
                id,
                body,
            });
        }
    }
    if out.is_empty() {
        return Err(Failure::fatal("found no HL7 messages in the input"));
    }
    warn_reused_ids(config, &out);
    Ok(out)
}

/// The text of a file in character set `cs`. A UTF-8 byte order mark means UTF-8; a UTF-16
/// one, or bytes not valid in the character set, are an error naming the message and the
/// byte offset.
fn decode_file(config: &Config, name: &str, bytes: &[u8], cs: Charset) -> Result<String, Failure> {
    if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        return Err(Failure::fatal(format!(
            "{name} starts with a UTF-16 byte order mark; MLLP cannot carry UTF-16 text: \
             convert the file to UTF-8"
        )));
    }
    let (cs, skip) = if bytes.starts_with(b"\xEF\xBB\xBF") {
        if cs != Charset::UTF_8 {
            warn(
                config,
                &format!(
                    "{name} starts with a UTF-8 byte order mark: it is read as UTF-8, not {cs}"
                ),
            );
        }
        (Charset::UTF_8, 3)
    } else {
        (cs, 0)
    };
    let body = &bytes[skip..];
    match cs.decode(body, Malformed::Reject) {
        Ok(decoded) => Ok(decoded.text.into_owned()),
        Err(CharsetError::Malformed { at }) => {
            let message = split_messages(&body[..at.min(body.len())], config.batches())
                .len()
                .max(1);
            let hint = if config.file_encoding.is_some() {
                "check --file-encoding, or send the bytes as they are with --raw"
            } else {
                "name the files' character set with --file-encoding, or send the bytes as they \
                 are with --raw"
            };
            Err(Failure::fatal(format!(
                "{name} is not valid {cs}: message {message}, byte {} of the file; nothing was \
                 sent ({hint})",
                at + skip
            )))
        }
        Err(e) => Err(Failure::fatal(format!("{name}: {e}"))),
    }
}

/// Warns about messages that reuse an MSH-10 of an earlier message of the run: a late or
/// doubled ACK of one cannot be told from an ACK of the other.
fn warn_reused_ids(config: &Config, messages: &[Outgoing]) {
    const SHOWN: usize = 5;
    let mut first: HashMap<&str, &str> = HashMap::new();
    let mut reused = 0;
    for msg in messages.iter().filter(|m| m.id != "-") {
        match first.get(msg.id.as_str()) {
            None => {
                first.insert(&msg.id, &msg.origin);
            }
            Some(earlier) => {
                reused += 1;
                if reused <= SHOWN {
                    warn(
                        config,
                        &format!(
                            "{} reuses MSH-10 {} of {earlier}: the listener's ACKs for the two \
                             cannot be told apart",
                            msg.origin, msg.id
                        ),
                    );
                }
            }
        }
    }
    if reused > SHOWN {
        warn(
            config,
            &format!("{reused} messages in all reuse the MSH-10 of an earlier message of this run"),
        );
    }
}

/// A warning of the tool's own on standard error, unless `-q`. (The library's warnings about
/// retries and skipped replies are logged with `-v`: the tool reports every outcome itself.)
fn warn(config: &Config, text: &str) {
    if !config.common.quiet {
        stderr_line(&format!("mllp: warning: {text}"));
    }
}

fn build_sender(config: &Config, charset: Charset) -> Result<Sender, Failure> {
    config.sender.sender(&config.addr, &config.common, charset)
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
    logger::init(
        config.common.log_level(log::LevelFilter::Error),
        config.common.log_format,
    );
    let charset = config.common.charset()?;
    let framing = config.common.framing()?;
    let mut messages = load(&config)?;
    let mut state = match &config.resume {
        Some(path) => Some(resume::State::open(path)?),
        None => None,
    };
    if let Some(state) = &state {
        let before = messages.len();
        messages.retain(|m| !state.contains(&m.file, m.index, &m.id));
        let skipped = before - messages.len();
        if skipped > 0 && !config.common.quiet {
            stderr_line(&format!(
                "mllp: info: {skipped} of {before} messages were acknowledged in an earlier run \
                 ({}); sending the other {}",
                state.path().display(),
                messages.len()
            ));
        }
        if messages.is_empty() {
            return Ok(0);
        }
    }
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
        let id = &msg.id;
        if let Some(at) = find(msg.body.bytes(), framing.start()) {
            unsendable += 1;
            stderr_line(&format!(
                "mllp: error: {} cannot be sent: it contains the frame start sequence at byte \
                 {at}, where the listener would cut it",
                msg.origin
            ));
            continue;
        }
        let result = match &msg.body {
            Body::Text(text) => sender.send(text),
            Body::Raw(bytes) => {
                if charset.decode(bytes, Malformed::Reject).is_err() {
                    warn(
                        &config,
                        &format!(
                            "{} is not valid {charset}; it is sent unchanged (--raw)",
                            msg.origin
                        ),
                    );
                }
                // Bad input is a normal test of an engine: a message whose reply cannot be
                // correlated (no readable header, no MSH-10) is still sent, once, and the next
                // ACK is taken as its reply.
                if msg.id == "-" {
                    sender.send_uncorrelated(bytes)
                } else {
                    sender.send_bytes(bytes)
                }
            }
        };
        let uncorrelated = matches!(msg.body, Body::Raw(_)) && msg.id == "-";
        match result {
            Ok(ack) => {
                if ack.is_success() {
                    if let Some(state) = &mut state {
                        state.record(&msg.file, msg.index, id)?;
                    }
                } else {
                    negative += 1;
                }
                if !config.common.quiet {
                    let text = ack
                        .text
                        .as_deref()
                        .or(ack.errors.first().map(String::as_str));
                    let mut line = match text {
                        Some(t) if !t.is_empty() => format!("{id} {} {t}", ack.code),
                        _ => format!("{id} {}", ack.code),
                    };
                    if uncorrelated {
                        line.push_str(&format!(
                            " (not correlated: the next ACK received, MSA-2 {:?})",
                            ack.control_id
                        ));
                    }
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
            Err(e @ (mllp::Error::Header(_) | mllp::Error::Frame(_) | mllp::Error::Charset(_))) => {
                // Something about this message; the next ones may be fine.
                unsendable += 1;
                let hint = match e {
                    mllp::Error::Header(mllp::HeaderError::MissingField { field: 11 }) => {
                        " (--split-batch sends its messages one at a time)"
                    }
                    _ => "",
                };
                stderr_line(&format!(
                    "mllp: error: {} cannot be sent: {e}{hint}",
                    msg.origin
                ));
            }
            Err(e) => {
                progress.update(done, total, true);
                let left = total - done;
                if let Some(state) = &mut state {
                    state.sync();
                }
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
    if let Some(state) = &mut state {
        state.sync();
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
        parse(Args::new(&COMMAND, v.iter().map(OsString::from)))
    }

    #[test]
    fn addresses_files_and_tls() {
        let c = parse_v(&["h:1"]).unwrap();
        assert_eq!(
            (c.addr.as_str(), c.files.as_slice()),
            ("h:1", &["-".to_string()][..])
        );
        let c = parse_v(&["h:1", "a", "-", "--attempts", "1", "--raw"]).unwrap();
        assert_eq!(c.files, ["a", "-"]);
        assert_eq!((c.sender.attempts, c.raw), (Some(1), true));
        assert!(parse_v(&[]).is_err());
        assert!(parse_v(&["h:1", "--tls-cert", "c"]).is_err());
        assert!(parse_v(&["h:1", "--file-encoding", "nope"]).is_err());
        assert!(parse_v(&["h:1", "--raw", "--file-encoding", "latin1"]).is_err());
        let c = parse_v(&["h:1", "--resume", "st", "--write-timeout", "2.5"]).unwrap();
        assert_eq!(c.resume, Some(PathBuf::from("st")));
        assert_eq!(c.sender.write_timeout, Some(Duration::from_millis(2500)));
        #[cfg(feature = "tls")]
        assert!(
            parse_v(&["h:1", "--tls-ca", "ca.pem"])
                .unwrap()
                .sender
                .tls
                .on
        );
        #[cfg(not(feature = "tls"))]
        assert!(parse_v(&["h:1", "--tls"]).is_err());
    }
}
