//! Character set tests: labels, round trips, malformed input under both policies, encoding
//! errors, MSH-18 detection.

use std::borrow::Cow;

use mllp_testkit as common;

use mllp::charset::Decoded;
use mllp::charset::{Charset, Malformed};
use mllp::hl7::Header;
use mllp::CharsetError;

#[test]
fn labels_and_names() {
    // (label, name(), msh18_name())
    let table: &[(&str, &str, Option<&str>)] = &[
        ("UNICODE UTF-8", "UTF-8", Some("UNICODE UTF-8")),
        ("UNICODE", "UTF-8", Some("UNICODE UTF-8")),
        ("utf8", "UTF-8", Some("UNICODE UTF-8")),
        ("ASCII", "US-ASCII", Some("ASCII")),
        ("ISO IR6", "US-ASCII", Some("ASCII")),
        ("us-ascii", "US-ASCII", Some("ASCII")),
        ("8859/1", "ISO-8859-1", Some("8859/1")),
        ("iso-8859-1", "ISO-8859-1", Some("8859/1")),
        ("Latin1", "ISO-8859-1", Some("8859/1")),
        ("8859/2", "ISO-8859-2", Some("8859/2")),
        ("8859/3", "ISO-8859-3", Some("8859/3")),
        ("8859/4", "ISO-8859-4", Some("8859/4")),
        ("8859/5", "ISO-8859-5", Some("8859/5")),
        ("8859/6", "ISO-8859-6", Some("8859/6")),
        ("8859/7", "ISO-8859-7", Some("8859/7")),
        ("8859/8", "ISO-8859-8", Some("8859/8")),
        ("8859/9", "ISO-8859-9", Some("8859/9")),
        ("iso-8859-9", "ISO-8859-9", Some("8859/9")),
        ("8859/15", "ISO-8859-15", Some("8859/15")),
        ("ISO IR87", "ISO-2022-JP", Some("ISO IR87")),
        ("GB 18030-2000", "gb18030", Some("GB 18030-2000")),
        ("KS X 1001", "EUC-KR", Some("KS X 1001")),
        ("BIG-5", "Big5", Some("BIG-5")),
        ("windows-1252", "windows-1252", None),
        ("cp1252", "windows-1252", None),
        ("shift_jis", "Shift_JIS", None),
        ("euc-jp", "EUC-JP", None),
        (" unicode utf-8 ", "UTF-8", Some("UNICODE UTF-8")),
    ];
    for &(label, name, msh18) in table {
        let cs = Charset::from_label(label).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(cs.name(), name, "{label}");
        assert_eq!(cs.msh18_name(), msh18, "{label}");
        if let Some(n) = msh18 {
            assert_eq!(Charset::from_label(n).unwrap(), cs, "{n} maps back");
        }
    }
}

#[test]
fn refused_and_unknown_labels_say_why() {
    for label in [
        "UNICODE UTF-16",
        "UNICODE UTF-32",
        "utf-16",
        "utf-16be",
        "utf-32le",
        "ISO IR14",
        "ISO IR159",
        "CNS 11643-1992",
        "iso-2022-kr",
    ] {
        match Charset::from_label(label) {
            Err(e @ CharsetError::Unsupported { .. }) => {
                let text = e.to_string();
                assert!(text.contains(label), "the label is named: {text}");
            }
            other => panic!("{label}: {other:?}"),
        }
    }
    let e = Charset::from_label("8859/99").unwrap_err();
    assert_eq!(e, CharsetError::Unknown("8859/99".into()));
    assert!(e.to_string().contains("8859/99"));
}

#[test]
fn round_trips() {
    let latin1_all: String = (0x80u32..=0xFF)
        .map(|c| char::from_u32(c).unwrap())
        .collect();
    let table: &[(&str, &str)] = &[
        ("8859/1", &latin1_all),
        ("iso-8859-1", "Müller, José; Straße ½ ©"),
        ("windows-1252", "“quoted” – €5 • Œuvre"),
        ("shift_jis", "山田太郎 ｶﾀｶﾅ テスト"),
        ("ISO IR87", "山田太郎 テスト abc"),
        ("GB 18030-2000", "张伟 患者 𠀀 ü"),
        ("KS X 1001", "김민준 환자"),
        ("BIG-5", "陳大文 病人"),
        ("8859/9", "Ğİ Şğ ış ç ö"),
        ("8859/15", "€ Š š Ž ž Œ œ Ÿ"),
        ("8859/5", "Иванов Иван"),
        ("UNICODE UTF-8", "Grüße 山田 😀"),
    ];
    for &(label, text) in table {
        let cs = Charset::from_label(label).unwrap();
        let bytes = cs.encode(text).unwrap_or_else(|e| panic!("{label}: {e}"));
        if cs != Charset::UTF_8 {
            assert_ne!(&*bytes, text.as_bytes(), "{label} really converts");
        }
        let Decoded {
            text: back,
            replaced,
        } = cs.decode(&bytes, Malformed::Reject).unwrap();
        assert_eq!(back, text, "{label}");
        assert_eq!(replaced, 0);
    }
}

#[test]
fn latin1_is_byte_equals_code_point() {
    let bytes: Vec<u8> = (0x80u8..=0xFF).collect();
    for label in ["8859/1", "iso-8859-1", "ISO_8859-1", "l1"] {
        let cs = Charset::from_label(label).unwrap();
        let text = cs.decode(&bytes, Malformed::Reject).unwrap().text;
        for (b, c) in bytes.iter().zip(text.chars()) {
            assert_eq!(u32::from(*b), u32::from(c), "{label}");
        }
    }
    // windows-1252 stays windows-1252.
    let w = Charset::from_label("windows-1252").unwrap();
    assert_eq!(
        w.decode(&[0x80, 0x93], Malformed::Reject).unwrap().text,
        "€“"
    );
}

#[test]
fn valid_utf8_is_borrowed_and_bom_stripped() {
    let input = "\u{FEFF}MSH|^~\\&|Grüße".as_bytes();
    let d = Charset::UTF_8.decode(input, Malformed::Reject).unwrap();
    assert!(matches!(d.text, Cow::Borrowed(_)));
    assert_eq!(d.text, "MSH|^~\\&|Grüße");
    // Pure ASCII is borrowed in any ASCII-compatible charset, and in ISO-2022-JP without escapes.
    for label in [
        "8859/1",
        "windows-1252",
        "shift_jis",
        "GB 18030-2000",
        "ISO IR87",
        "ASCII",
    ] {
        let d = Charset::from_label(label)
            .unwrap()
            .decode(b"MSH|^~\\&|A", Malformed::Reject)
            .unwrap();
        assert!(matches!(d.text, Cow::Borrowed(_)), "{label}");
    }
    assert!(matches!(
        Charset::UTF_8.encode("abc").unwrap(),
        Cow::Borrowed(_)
    ));
    assert!(matches!(
        Charset::ISO_8859_1.encode("abc").unwrap(),
        Cow::Borrowed(_)
    ));
}

#[test]
fn malformed_input_under_both_policies() {
    // (label, input, offset of the first malformed sequence, replacements, replaced text)
    let table: &[(&str, &[u8], usize, usize, &str)] = &[
        (
            "UNICODE UTF-8",
            b"ab\xFFcd\xC3",
            2,
            2,
            "ab\u{FFFD}cd\u{FFFD}",
        ),
        ("UNICODE UTF-8", b"\xEF\xBB\xBFa\x80", 4, 1, "a\u{FFFD}"),
        ("ASCII", b"ok\xE9ok\xFF", 2, 2, "ok\u{FFFD}ok\u{FFFD}"),
        ("shift_jis", b"ab\x82", 2, 1, "ab\u{FFFD}"),
        ("KS X 1001", b"x\xFFy", 1, 1, "x\u{FFFD}y"),
        (
            "ISO IR87",
            b"a\x1B$B0!\x1B(B\x0Eb",
            9,
            1,
            "a\u{4E9C}\u{FFFD}b",
        ),
    ];
    for &(label, input, at, n, replaced) in table {
        let cs = Charset::from_label(label).unwrap();
        assert_eq!(
            cs.decode(input, Malformed::Reject).unwrap_err(),
            CharsetError::Malformed { at },
            "{label} {input:?}"
        );
        let d = cs.decode(input, Malformed::Replace).unwrap();
        assert_eq!(d.replaced, n, "{label} {input:?}");
        assert_eq!(d.text, replaced, "{label} {input:?}");
    }
}

#[test]
fn unmappable_characters_are_errors_with_their_position() {
    let table: &[(&str, &str, usize, char)] = &[
        ("8859/1", "abc€", 3, '€'),
        ("ASCII", "Müller", 1, 'ü'),
        ("8859/9", "xÐ", 1, 'Ð'),
        ("shift_jis", "ok 😀", 3, '😀'),
        ("KS X 1001", "가 é", 4, 'é'),
        ("ISO IR87", "日本 ü", 7, 'ü'),
        ("windows-1252", "a\u{0100}", 1, '\u{0100}'),
    ];
    for &(label, text, at, ch) in table {
        let cs = Charset::from_label(label).unwrap();
        let e = cs.encode(text).unwrap_err();
        assert_eq!(e, CharsetError::Unmappable { at, ch }, "{label}");
        assert!(e.to_string().contains(&format!("byte {at}")), "{e}");
    }
}

#[test]
fn detection_from_msh18() {
    let header = |msh18: &str| format!("MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5||||||{msh18}\r");
    let cases: &[(&str, Charset)] = &[
        ("8859/1", Charset::ISO_8859_1),
        ("UNICODE UTF-8~8859/1", Charset::UTF_8),
        ("", Charset::ASCII),
        ("NO SUCH SET", Charset::ASCII),
        ("UNICODE UTF-16", Charset::ASCII),
    ];
    for (msh18, want) in cases {
        let msg = header(msh18);
        let h = Header::parse(msg.as_bytes()).unwrap();
        assert_eq!(
            Charset::from_header(&h, Charset::ASCII),
            *want,
            "MSH-18={msh18}"
        );
    }
}

#[test]
fn corpus_decodes_in_its_declared_charset() {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    let mut utf8_files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "hl7") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let cs = match Header::parse(&bytes) {
            Ok(h) => Charset::from_header(&h, Charset::UTF_8),
            Err(_) => Charset::UTF_8,
        };
        // Both policies must agree on valid input and never panic.
        let replaced = cs.decode(&bytes, Malformed::Replace).unwrap();
        if let Ok(strict) = cs.decode(&bytes, Malformed::Reject) {
            assert_eq!(strict, replaced, "{path:?}");
            assert_eq!(strict.replaced, 0);
            if cs == Charset::UTF_8 {
                assert!(matches!(strict.text, Cow::Borrowed(_)), "{path:?}");
                utf8_files += 1;
            }
        } else {
            assert!(replaced.replaced > 0, "{path:?}");
        }
    }
    assert!(utf8_files > 50);
}
