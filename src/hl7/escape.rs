//! HL7 escape sequences (`\F\ \S\ \T\ \R\ \E\ \P\`) for text written into, or read from, a
//! field.

use super::header::Separators;

/// Appends `text` to `out` with every delimiter replaced by its escape sequence, using the
/// message's own escape character. CR and LF (which would end the segment) become spaces.
///
/// When the message declares no escape character, delimiters cannot be escaped and are
/// replaced by spaces instead.
pub fn escape_into(text: &str, seps: &Separators, out: &mut Vec<u8>) {
    out.reserve(text.len());
    for &b in text.as_bytes() {
        match (seps.escape, escape_letter(b, seps)) {
            (_, None) if b == b'\r' || b == b'\n' => out.push(b' '),
            (_, None) => out.push(b),
            (Some(esc), Some(letter)) => out.extend_from_slice(&[esc, letter, esc]),
            (None, Some(_)) => out.push(b' '),
        }
    }
}

/// The escape letter for delimiter `b`, or `None` when `b` is not a delimiter.
fn escape_letter(b: u8, seps: &Separators) -> Option<u8> {
    if b == seps.field {
        Some(b'F')
    } else if b == seps.component {
        Some(b'S')
    } else if b == seps.repetition {
        Some(b'R')
    } else if Some(b) == seps.escape {
        Some(b'E')
    } else if Some(b) == seps.subcomponent {
        Some(b'T')
    } else if Some(b) == seps.truncation {
        Some(b'P')
    } else {
        None
    }
}

/// Replaces escape sequences in `value` with what they stand for: the delimiters, `\.br\` as a
/// line feed, `\Xhh…\` as the bytes it encodes. Unknown sequences are kept as they are.
pub fn unescape(value: &[u8], seps: &Separators) -> Vec<u8> {
    let Some(esc) = seps.escape else {
        return value.to_vec();
    };
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if b != esc {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(len) = value[i + 1..].iter().position(|&c| c == esc) else {
            out.extend_from_slice(&value[i..]);
            break;
        };
        let inner = &value[i + 1..i + 1 + len];
        let decoded: Option<Vec<u8>> = match inner {
            b"F" => Some(vec![seps.field]),
            b"S" => Some(vec![seps.component]),
            b"R" => Some(vec![seps.repetition]),
            b"E" => Some(vec![esc]),
            b"T" => seps.subcomponent.map(|t| vec![t]),
            b"P" => seps.truncation.map(|t| vec![t]),
            b".br" => Some(vec![b'\n']),
            [b'X', hex @ ..] => decode_hex(hex),
            _ => None,
        };
        match decoded {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => out.extend_from_slice(&value[i..i + len + 2]),
        }
        i += len + 2;
    }
    out
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_delimiter_and_round_trips() {
        let seps = Separators {
            truncation: Some(b'#'),
            ..Separators::default()
        };
        let mut out = Vec::new();
        escape_into("a|b^c~d\\e&f#g\r\nh", &seps, &mut out);
        assert_eq!(out, b"a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\P\\g  h");
        assert_eq!(unescape(&out, &seps), b"a|b^c~d\\e&f#g  h");
        assert_eq!(
            unescape(b"x\\X414243\\y\\.br\\z\\Q\\", &seps),
            b"xABCy\nz\\Q\\"
        );
        assert_eq!(unescape(b"dangling\\F", &seps), b"dangling\\F");
    }

    #[test]
    fn without_escape_character_delimiters_become_spaces() {
        let seps = Separators {
            escape: None,
            subcomponent: None,
            ..Separators::default()
        };
        let mut out = Vec::new();
        escape_into("a|b^c\\d", &seps, &mut out);
        assert_eq!(out, b"a b c\\d");
    }
}
