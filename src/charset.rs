//! Character sets for HL7 v2 message bodies.
//!
//! MLLP carries bytes; what those bytes mean is declared (sometimes) in MSH-18 or agreed out of
//! band. [`Charset`] names one character set, chosen by a WHATWG encoding label
//! (`"windows-1252"`, `"shift_jis"`, …) or by an HL7 table 0211 name (`"8859/1"`,
//! `"UNICODE UTF-8"`, `"ISO IR87"`, …), and decodes received bytes to UTF-8 or encodes text for
//! sending. It wraps [`encoding_rs`] without exposing it.
//!
//! Three deliberate departures from the WHATWG mapping, where HL7 means the real standard:
//!
//! * `8859/1`, `iso-8859-1`, `latin1` and their aliases decode as true ISO-8859-1 (byte value =
//!   code point). WHATWG maps these labels to windows-1252, which turns bytes 0x80–0x9F into
//!   curly quotes and the euro sign.
//! * `8859/9`, `iso-8859-9`, `latin5` and aliases are true ISO-8859-9 for the same reason
//!   (WHATWG maps them to windows-1254).
//! * `ASCII`, `ISO IR6`, `us-ascii` are strict 7-bit ASCII: a byte above 0x7F is malformed.
//!
//! UTF-16 and UTF-32 are refused: MLLP finds frames by the single bytes 0x0B, 0x1C and 0x0D,
//! which UTF-16 and UTF-32 text contains in the middle of ordinary characters.
//!
//! Decoding is zero-copy when it can be: valid UTF-8 (after stripping a UTF-8 BOM), and pure
//! ASCII in any ASCII-compatible character set, come back as `Cow::Borrowed`.

use std::borrow::Cow;
use std::fmt;

use encoding_rs::{DecoderResult, EncoderResult, Encoding};

use crate::error::CharsetError;

mod names;

/// What to do with bytes that are not valid in the character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Malformed {
    /// Replace each malformed sequence with U+FFFD, count the replacements and log a warning.
    /// An explicit choice: the replaced bytes are lost.
    Replace,
    /// Fail with [`CharsetError::Malformed`]; a listener answers such a message with an
    /// application error (AE) naming the byte offset, without handing it on. The default.
    #[default]
    Reject,
}

/// The result of [`Charset::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The text. Borrowed from the input when no conversion was needed.
    pub text: Cow<'a, str>,
    /// How many malformed sequences were replaced with U+FFFD (always 0 under
    /// [`Malformed::Reject`]).
    pub replaced: usize,
}

/// A character set that can be carried by MLLP. Cheap to copy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Charset {
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Utf8,
    /// Strict 7-bit ASCII.
    Ascii,
    /// True ISO-8859-1: byte = code point.
    Latin1,
    /// True ISO-8859-9: ISO-8859-1 with six Turkish letters swapped in.
    Latin5,
    /// Anything else `encoding_rs` implements.
    Other(&'static Encoding),
}

/// The six positions where ISO-8859-9 differs from ISO-8859-1.
const LATIN5: [(u8, char); 6] = [
    (0xD0, 'Ğ'),
    (0xDD, 'İ'),
    (0xDE, 'Ş'),
    (0xF0, 'ğ'),
    (0xFD, 'ı'),
    (0xFE, 'ş'),
];

impl Charset {
    /// UTF-8, the default.
    pub const UTF_8: Charset = Charset { kind: Kind::Utf8 };
    /// True ISO-8859-1 (byte value = code point).
    pub const ISO_8859_1: Charset = Charset { kind: Kind::Latin1 };
    /// Strict 7-bit US-ASCII.
    pub const ASCII: Charset = Charset { kind: Kind::Ascii };

    /// The character set's canonical name (IANA/WHATWG spelling), e.g. `"UTF-8"`,
    /// `"ISO-8859-1"`, `"Shift_JIS"`.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Utf8 => "UTF-8",
            Kind::Ascii => "US-ASCII",
            Kind::Latin1 => "ISO-8859-1",
            Kind::Latin5 => "ISO-8859-9",
            Kind::Other(enc) => enc.name(),
        }
    }

    /// Whether every ASCII byte stands for the same ASCII character in this character set
    /// (false only for ISO-2022-JP, whose escape sequences switch meaning).
    pub fn is_ascii_compatible(&self) -> bool {
        match self.kind {
            Kind::Other(enc) => enc.is_ascii_compatible(),
            _ => true,
        }
    }

    /// Decodes received bytes to UTF-8.
    ///
    /// Valid UTF-8 input (UTF-8 charset, after stripping a UTF-8 BOM) and pure-ASCII input in an
    /// ASCII-compatible charset is returned borrowed, without copying. Malformed sequences are
    /// replaced or rejected according to `policy`.
    pub fn decode<'a>(
        &self,
        bytes: &'a [u8],
        policy: Malformed,
    ) -> Result<Decoded<'a>, CharsetError> {
        let borrowed = |text: &'a str| Decoded {
            text: Cow::Borrowed(text),
            replaced: 0,
        };
        let result = match self.kind {
            Kind::Utf8 => {
                let (skip, body) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
                    Some(rest) => (3, rest),
                    None => (0, bytes),
                };
                match std::str::from_utf8(body) {
                    Ok(text) => return Ok(borrowed(text)),
                    Err(e) => decode_utf8_slow(body, e.valid_up_to(), policy)
                        .map_err(|at| CharsetError::Malformed { at: at + skip })?,
                }
            }
            Kind::Ascii => {
                if let Ok(text) = ascii_str(bytes) {
                    return Ok(borrowed(text));
                }
                let at = bytes.iter().position(|b| !b.is_ascii()).unwrap_or(0);
                if policy == Malformed::Reject {
                    return Err(CharsetError::Malformed { at });
                }
                let mut n = 0;
                let text: String = bytes
                    .iter()
                    .map(|&b| {
                        if b.is_ascii() {
                            b as char
                        } else {
                            n += 1;
                            '\u{FFFD}'
                        }
                    })
                    .collect();
                (text, n)
            }
            Kind::Latin1 | Kind::Latin5 => {
                if let Ok(text) = ascii_str(bytes) {
                    return Ok(borrowed(text));
                }
                let latin5 = self.kind == Kind::Latin5;
                let text: String = bytes
                    .iter()
                    .map(|&b| {
                        if latin5 {
                            if let Some((_, c)) = LATIN5.iter().find(|(x, _)| *x == b) {
                                return *c;
                            }
                        }
                        b as char
                    })
                    .collect();
                (text, 0)
            }
            Kind::Other(enc) => {
                let plain_ascii = if enc.is_ascii_compatible() {
                    bytes.is_ascii()
                } else {
                    // ISO-2022-JP: ASCII without the shift and escape bytes stays ASCII.
                    bytes
                        .iter()
                        .all(|&b| b.is_ascii() && !matches!(b, 0x0E | 0x0F | 0x1B))
                };
                if plain_ascii {
                    if let Ok(text) = ascii_str(bytes) {
                        return Ok(borrowed(text));
                    }
                }
                decode_with(enc, bytes, policy).map_err(|at| CharsetError::Malformed { at })?
            }
        };
        let (text, replaced) = result;
        if replaced > 0 {
            log::warn!(
                "replaced {replaced} malformed byte sequence(s) while decoding {}",
                self.name()
            );
        }
        Ok(Decoded {
            text: Cow::Owned(text),
            replaced,
        })
    }

    /// Encodes text for sending.
    ///
    /// Returns the input borrowed when no conversion is needed (UTF-8, or ASCII text in an
    /// ASCII-compatible charset). A character the charset cannot represent is an error naming
    /// its byte offset in `text`; nothing is ever silently replaced.
    pub fn encode<'a>(&self, text: &'a str) -> Result<Cow<'a, [u8]>, CharsetError> {
        let unmappable = |at: usize, ch: char| CharsetError::Unmappable { at, ch };
        match self.kind {
            Kind::Utf8 => Ok(Cow::Borrowed(text.as_bytes())),
            _ if text.is_ascii() && self.is_ascii_compatible() => {
                Ok(Cow::Borrowed(text.as_bytes()))
            }
            Kind::Ascii => {
                let (at, ch) = text
                    .char_indices()
                    .find(|(_, c)| !c.is_ascii())
                    .unwrap_or((0, '\0'));
                Err(unmappable(at, ch))
            }
            Kind::Latin1 | Kind::Latin5 => {
                let latin5 = self.kind == Kind::Latin5;
                let mut out = Vec::with_capacity(text.len());
                for (at, ch) in text.char_indices() {
                    if latin5 {
                        if let Some((b, _)) = LATIN5.iter().find(|(_, c)| *c == ch) {
                            out.push(*b);
                            continue;
                        }
                        if LATIN5.iter().any(|(b, _)| u32::from(*b) == u32::from(ch)) {
                            return Err(unmappable(at, ch));
                        }
                    }
                    match u8::try_from(u32::from(ch)) {
                        Ok(b) => out.push(b),
                        Err(_) => return Err(unmappable(at, ch)),
                    }
                }
                Ok(Cow::Owned(out))
            }
            Kind::Other(enc) => encode_with(enc, text).map(Cow::Owned),
        }
    }
}

/// `bytes` as `&str` when it is all ASCII.
fn ascii_str(bytes: &[u8]) -> Result<&str, ()> {
    if bytes.is_ascii() {
        std::str::from_utf8(bytes).map_err(|_| ())
    } else {
        Err(())
    }
}

/// Decodes invalid UTF-8 (valid up to `valid`) with replacement, or returns the offset of the
/// first malformed sequence under [`Malformed::Reject`].
fn decode_utf8_slow(
    bytes: &[u8],
    valid: usize,
    policy: Malformed,
) -> Result<(String, usize), usize> {
    if policy == Malformed::Reject {
        return Err(valid);
    }
    let mut text = String::with_capacity(bytes.len() + 2);
    let mut replaced = 0;
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                text.push_str(s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // `good` is valid by construction.
                text.push_str(std::str::from_utf8(good).unwrap_or_default());
                text.push('\u{FFFD}');
                replaced += 1;
                let skip = e.error_len().unwrap_or(bad.len());
                rest = &bad[skip..];
            }
        }
    }
    Ok((text, replaced))
}

/// Decodes with `encoding_rs`, counting replacements; `Err(offset)` on the first malformed
/// sequence under [`Malformed::Reject`].
fn decode_with(
    enc: &'static Encoding,
    bytes: &[u8],
    policy: Malformed,
) -> Result<(String, usize), usize> {
    let mut decoder = enc.new_decoder_without_bom_handling();
    let cap = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len().saturating_mul(3).saturating_add(16));
    let mut text = String::with_capacity(cap);
    let mut replaced = 0;
    let mut pos = 0;
    loop {
        let (result, read) =
            decoder.decode_to_string_without_replacement(&bytes[pos..], &mut text, true);
        pos += read;
        match result {
            DecoderResult::InputEmpty => break,
            DecoderResult::OutputFull => {
                let more = decoder
                    .max_utf8_buffer_length_without_replacement(bytes.len() - pos)
                    .unwrap_or(64)
                    .max(64);
                text.reserve(more);
            }
            DecoderResult::Malformed(bad, extra) => {
                if policy == Malformed::Reject {
                    let at = pos.saturating_sub(usize::from(bad) + usize::from(extra));
                    return Err(at);
                }
                if text.capacity() - text.len() < 3 {
                    text.reserve(64);
                }
                text.push('\u{FFFD}');
                replaced += 1;
            }
        }
    }
    Ok((text, replaced))
}

/// Encodes with `encoding_rs` without replacement.
fn encode_with(enc: &'static Encoding, text: &str) -> Result<Vec<u8>, CharsetError> {
    let mut encoder = enc.new_encoder();
    let cap = encoder
        .max_buffer_length_from_utf8_without_replacement(text.len())
        .unwrap_or(text.len().saturating_mul(4).saturating_add(16));
    let mut out = Vec::with_capacity(cap);
    let mut pos = 0;
    loop {
        let (result, read) =
            encoder.encode_from_utf8_to_vec_without_replacement(&text[pos..], &mut out, true);
        pos += read;
        match result {
            EncoderResult::InputEmpty => return Ok(out),
            EncoderResult::OutputFull => {
                let more = encoder
                    .max_buffer_length_from_utf8_without_replacement(text.len() - pos)
                    .unwrap_or(64)
                    .max(64);
                out.reserve(more);
            }
            EncoderResult::Unmappable(ch) => {
                return Err(CharsetError::Unmappable {
                    at: pos - ch.len_utf8(),
                    ch,
                })
            }
        }
    }
}

impl Default for Charset {
    fn default() -> Self {
        Charset::UTF_8
    }
}

impl fmt::Debug for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Charset({})", self.name())
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_labels_are_true_latin1() {
        for label in ["8859/1", "iso-8859-1", "ISO-8859-1", "latin1"] {
            let cs = Charset::from_label(label).unwrap();
            let d = cs.decode(&[0x80, 0x93, 0xE9], Malformed::Reject).unwrap();
            assert_eq!(d.text, "\u{80}\u{93}é", "{label}");
        }
        let w = Charset::from_label("windows-1252").unwrap();
        let d = w.decode(&[0x80], Malformed::Reject).unwrap();
        assert_eq!(d.text, "€");
    }

    #[test]
    fn wide_encodings_are_refused_with_a_reason() {
        for label in [
            "utf-16",
            "UTF-16LE",
            "utf-32",
            "UNICODE UTF-16",
            "UNICODE UTF-32",
        ] {
            match Charset::from_label(label) {
                Err(CharsetError::Unsupported { reason, .. }) => {
                    assert!(reason.contains("UTF-16"), "{label}: {reason}")
                }
                other => panic!("{label}: {other:?}"),
            }
        }
        assert_eq!(
            Charset::from_label("klingon"),
            Err(CharsetError::Unknown("klingon".into()))
        );
    }
}
