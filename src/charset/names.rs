//! Naming a character set: HL7 table 0211 (MSH-18) names and WHATWG encoding labels, in both
//! directions.

use encoding_rs::Encoding;

use super::{Charset, Kind};
use crate::error::CharsetError;
use crate::hl7::Header;

/// HL7 table 0211 names understood by [`Charset::from_label`], with what they map to.
const HL7_NAMES: &[(&str, Hl7Name)] = &[
    ("ASCII", Hl7Name::Kind(Kind::Ascii)),
    ("ISO IR6", Hl7Name::Kind(Kind::Ascii)),
    ("8859/1", Hl7Name::Kind(Kind::Latin1)),
    ("8859/2", Hl7Name::Label("iso-8859-2")),
    ("8859/3", Hl7Name::Label("iso-8859-3")),
    ("8859/4", Hl7Name::Label("iso-8859-4")),
    ("8859/5", Hl7Name::Label("iso-8859-5")),
    ("8859/6", Hl7Name::Label("iso-8859-6")),
    ("8859/7", Hl7Name::Label("iso-8859-7")),
    ("8859/8", Hl7Name::Label("iso-8859-8")),
    ("8859/9", Hl7Name::Kind(Kind::Latin5)),
    ("8859/15", Hl7Name::Label("iso-8859-15")),
    ("UNICODE UTF-8", Hl7Name::Kind(Kind::Utf8)),
    ("UNICODE", Hl7Name::Kind(Kind::Utf8)),
    ("ISO IR87", Hl7Name::Label("iso-2022-jp")),
    ("GB 18030-2000", Hl7Name::Label("gb18030")),
    ("KS X 1001", Hl7Name::Label("euc-kr")),
    ("BIG-5", Hl7Name::Label("big5")),
    ("UNICODE UTF-16", Hl7Name::Refused(WIDE)),
    ("UNICODE UTF-32", Hl7Name::Refused(WIDE)),
    (
        "ISO IR14",
        Hl7Name::Refused("JIS X 0201 on its own is not supported; use ISO IR87 or Shift_JIS"),
    ),
    (
        "ISO IR159",
        Hl7Name::Refused("JIS X 0212 on its own is not supported; use ISO IR87 or EUC-JP"),
    ),
    (
        "CNS 11643-1992",
        Hl7Name::Refused("CNS 11643 is not supported; use BIG-5"),
    ),
];

#[derive(Clone, Copy)]
enum Hl7Name {
    Kind(Kind),
    Label(&'static str),
    Refused(&'static str),
}

const WIDE: &str =
    "MLLP framing bytes cannot be found reliably in UTF-16 or UTF-32 text; use UTF-8";

/// WHATWG labels that mean ISO-8859-1 (WHATWG would give windows-1252).
const LATIN1_LABELS: &[&str] = &[
    "iso-8859-1",
    "iso8859-1",
    "iso88591",
    "iso_8859-1",
    "iso_8859-1:1987",
    "iso-ir-100",
    "latin1",
    "l1",
    "csisolatin1",
    "ibm819",
    "cp819",
];

/// WHATWG labels that mean ISO-8859-9 (WHATWG would give windows-1254).
const LATIN5_LABELS: &[&str] = &[
    "iso-8859-9",
    "iso8859-9",
    "iso88599",
    "iso_8859-9",
    "iso_8859-9:1989",
    "iso-ir-148",
    "latin5",
    "l5",
    "csisolatin5",
];

/// WHATWG labels that mean US-ASCII (WHATWG would give windows-1252).
const ASCII_LABELS: &[&str] = &["ascii", "us-ascii", "ansi_x3.4-1968"];

impl Charset {
    /// The character set for a WHATWG encoding label or an HL7 table 0211 (MSH-18) name.
    ///
    /// Matching ignores ASCII case and surrounding spaces. HL7 names are tried first, so
    /// `"UNICODE"` means UTF-8 (as HL7 uses it), not WHATWG's UTF-16LE.
    pub fn from_label(label: &str) -> Result<Charset, CharsetError> {
        let trimmed = label.trim();
        for (name, what) in HL7_NAMES {
            if name.eq_ignore_ascii_case(trimmed) {
                return match *what {
                    Hl7Name::Kind(kind) => Ok(Charset { kind }),
                    Hl7Name::Label(l) => Self::from_whatwg(l, label),
                    Hl7Name::Refused(reason) => Err(CharsetError::Unsupported {
                        label: label.to_owned(),
                        reason,
                    }),
                };
            }
        }
        Self::from_whatwg(trimmed, label)
    }

    fn from_whatwg(label: &str, original: &str) -> Result<Charset, CharsetError> {
        let is = |list: &[&str]| list.iter().any(|l| l.eq_ignore_ascii_case(label));
        if is(LATIN1_LABELS) {
            return Ok(Charset::ISO_8859_1);
        }
        if is(LATIN5_LABELS) {
            return Ok(Charset { kind: Kind::Latin5 });
        }
        if is(ASCII_LABELS) {
            return Ok(Charset::ASCII);
        }
        let lower = label.to_ascii_lowercase();
        if lower.starts_with("utf-32") || lower.starts_with("utf32") || lower == "ucs-4" {
            return Err(CharsetError::Unsupported {
                label: original.to_owned(),
                reason: WIDE,
            });
        }
        let Some(enc) = Encoding::for_label_no_replacement(label.as_bytes()) else {
            return Err(match Encoding::for_label(label.as_bytes()) {
                Some(_) => CharsetError::Unsupported {
                    label: original.to_owned(),
                    reason: "this label names no usable encoding (WHATWG maps it to replacement)",
                },
                None => CharsetError::Unknown(original.to_owned()),
            });
        };
        if enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE {
            return Err(CharsetError::Unsupported {
                label: original.to_owned(),
                reason: WIDE,
            });
        }
        if enc == encoding_rs::X_USER_DEFINED {
            return Err(CharsetError::Unsupported {
                label: original.to_owned(),
                reason: "x-user-defined is a browser-internal encoding",
            });
        }
        if enc == encoding_rs::UTF_8 {
            return Ok(Charset::UTF_8);
        }
        Ok(Charset {
            kind: Kind::Other(enc),
        })
    }

    /// The character set declared in the header's MSH-18 (first repetition) when present and
    /// known, else `default`. An unknown or unusable MSH-18 name logs a warning and gives
    /// `default`.
    pub fn from_header(header: &Header<'_>, default: Charset) -> Charset {
        let Some(name) = header.charset_name() else {
            return default;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            log::warn!("MSH-18 is not ASCII; using the default character set {default}");
            return default;
        };
        match Charset::from_label(name) {
            Ok(cs) => cs,
            Err(e) => {
                log::warn!("{e}; using the default character set {default}");
                default
            }
        }
    }

    /// The HL7 table 0211 name to write into MSH-18, or `None` when HL7 has no name for this
    /// character set (windows-1252, Shift_JIS, EUC-JP, GBK, …).
    pub fn msh18_name(&self) -> Option<&'static str> {
        match self.kind {
            Kind::Utf8 => Some("UNICODE UTF-8"),
            Kind::Ascii => Some("ASCII"),
            Kind::Latin1 => Some("8859/1"),
            Kind::Latin5 => Some("8859/9"),
            Kind::Other(enc) => {
                let names: &[(&'static Encoding, &str)] = &[
                    (encoding_rs::ISO_8859_2, "8859/2"),
                    (encoding_rs::ISO_8859_3, "8859/3"),
                    (encoding_rs::ISO_8859_4, "8859/4"),
                    (encoding_rs::ISO_8859_5, "8859/5"),
                    (encoding_rs::ISO_8859_6, "8859/6"),
                    (encoding_rs::ISO_8859_7, "8859/7"),
                    (encoding_rs::ISO_8859_8, "8859/8"),
                    (encoding_rs::ISO_8859_15, "8859/15"),
                    (encoding_rs::ISO_2022_JP, "ISO IR87"),
                    (encoding_rs::GB18030, "GB 18030-2000"),
                    (encoding_rs::EUC_KR, "KS X 1001"),
                    (encoding_rs::BIG5, "BIG-5"),
                ];
                names.iter().find(|(e, _)| *e == enc).map(|(_, n)| *n)
            }
        }
    }
}
