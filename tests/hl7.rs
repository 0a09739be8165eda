//! HL7 header, ACK builder and ACK parser tests. Built ACKs are checked with a small splitter
//! written here, independent of the crate's own header code.

use std::collections::HashSet;

use common::corpus_dir;
use mllp_testkit as common;

use mllp::charset::Charset;
use mllp::hl7::{
    ack_control_id, build_nak_unparseable, salvage_control_id, Ack, AckBuilder, AckCode, AckMode,
    Disposition, Header, ReplyKind, COMMIT_ACK, COMMIT_NAK,
};
use mllp::HeaderError;

// ---------------------------------------------------------------------------------------------
// An independent splitter.

/// The segments of a message: split on CR, LF or CRLF, BOM and blank lines skipped.
fn lines(msg: &[u8]) -> Vec<&[u8]> {
    let msg = msg.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(msg);
    msg.split(|&b| b == b'\r' || b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

/// Fields of a header-like segment, HL7 numbered: `f[n]` is field n (f[0] = name, f[1] = the
/// separator, f[2] = the encoding characters).
fn header_fields(seg: &[u8]) -> Vec<Vec<u8>> {
    let sep = seg[3];
    let mut f: Vec<Vec<u8>> = vec![seg[..3].to_vec(), vec![sep]];
    f.extend(seg[4..].split(|&b| b == sep).map(<[u8]>::to_vec));
    f
}

/// Fields of an ordinary segment: `f[n]` is field n, f[0] = the name.
fn seg_fields(seg: &[u8], sep: u8) -> Vec<Vec<u8>> {
    seg.split(|&b| b == sep).map(<[u8]>::to_vec).collect()
}

fn get(f: &[Vec<u8>], n: usize) -> &[u8] {
    f.get(n).map_or(&[][..], |v| v.as_slice())
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// (name, bytes, is in malformed/) for every corpus file.
fn corpus_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>, bool)> {
    let mut files = Vec::new();
    for (sub, malformed) in [(dir.to_path_buf(), false), (dir.join("malformed"), true)] {
        for entry in std::fs::read_dir(&sub).expect("corpus directory") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "hl7") {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                files.push((name, std::fs::read(&path).unwrap(), malformed));
            }
        }
    }
    files.sort();
    assert!(files.len() > 50, "the corpus looks incomplete");
    files
}

/// Top-level corpus files whose header the crate rejects on purpose, with the error.
/// The two `lfh__sample_*` files declare MSH-2 as `^~\\&` (a doubled backslash): a repeated encoding
/// character, which the header rules reject rather than guess at.
const EXPECTED_HEADER_ERRORS: &[(&str, HeaderError)] = &[
    ("lfh__sample_win.hl7", HeaderError::BadEncodingCharacters),
    ("lfh__sample_unix.hl7", HeaderError::BadEncodingCharacters),
];

// ---------------------------------------------------------------------------------------------
// What the test expects of an ACK, worked out from the inbound message with the splitter above.

struct Inbound {
    sep: u8,
    encoding: Vec<u8>,
    /// Header fields (FHS/BHS/MSH), HL7 numbered.
    head: Vec<Vec<u8>>,
    /// The MSH whose 11/12/15/16/18 drive the ACK (the header itself, or a batch's first MSH).
    msh: Option<Vec<Vec<u8>>>,
    is_batch: bool,
    control_id: Vec<u8>,
}

fn inbound(msg: &[u8]) -> Inbound {
    let segs = lines(msg);
    let head = header_fields(segs[0]);
    let sep = head[1][0];
    let is_batch = head[0] != b"MSH";
    let msh = if is_batch {
        segs.iter()
            .find(|l| l.starts_with(b"MSH"))
            .map(|l| header_fields(l))
    } else {
        Some(head.clone())
    };
    let control_id = if !is_batch {
        get(&head, 10).to_vec()
    } else {
        let bhs = segs
            .iter()
            .take_while(|l| !l.starts_with(b"MSH"))
            .find(|l| l.starts_with(b"BHS"))
            .map(|l| header_fields(l));
        match bhs.as_ref().map(|b| get(b, 11)).filter(|v| !v.is_empty()) {
            Some(id) => id.to_vec(),
            None => get(&head, 11).to_vec(),
        }
    };
    Inbound {
        sep,
        encoding: head[2].clone(),
        msh,
        is_batch,
        control_id,
        head,
    }
}

fn msh_field(inb: &Inbound, n: usize) -> Vec<u8> {
    inb.msh.as_ref().map_or(Vec::new(), |m| get(m, n).to_vec())
}

fn is_enhanced(inb: &Inbound, mode: AckMode) -> bool {
    mode == AckMode::Auto && (!msh_field(inb, 15).is_empty() || !msh_field(inb, 16).is_empty())
}

fn expect_sent(inb: &Inbound, mode: AckMode, d: Disposition) -> bool {
    if !is_enhanced(inb, mode) {
        return true;
    }
    match msh_field(inb, 15).as_slice() {
        b"NE" => false,
        b"ER" => d != Disposition::Accept,
        b"SU" => d == Disposition::Accept,
        _ => true,
    }
}

fn expect_code(inb: &Inbound, mode: AckMode, d: Disposition) -> &'static str {
    match (is_enhanced(inb, mode), d) {
        (false, Disposition::Accept) => "AA",
        (false, Disposition::Error) => "AE",
        (false, Disposition::Reject) => "AR",
        (true, Disposition::Accept) => "CA",
        (true, Disposition::Error) => "CE",
        (true, Disposition::Reject) => "CR",
    }
}

fn is_v25_or_later(version: &[u8]) -> bool {
    let v = s(version);
    let mut parts = v.split(['.', '^']);
    let major: u32 = match parts.next().and_then(|p| p.parse().ok()) {
        Some(m) => m,
        None => return true,
    };
    let minor: u32 = match parts.next().map(str::parse) {
        Some(Ok(m)) => m,
        Some(Err(_)) => return true,
        None => 0,
    };
    (major, minor) >= (2, 5)
}

/// Checks every rule for the ACK `out` built for `msg`; returns the ACK's MSH-10.
fn check_ack(
    name: &str,
    msg: &[u8],
    out: &[u8],
    mode: AckMode,
    d: Disposition,
    text: Option<&str>,
) -> Vec<u8> {
    let inb = inbound(msg);
    let ctx = format!("{name} {mode:?} {d:?}");
    assert!(out.ends_with(b"\r"), "{ctx}: ACK must end with CR");
    assert!(!out.contains(&b'\n'), "{ctx}: ACK must use CR only");
    let segs: Vec<&[u8]> = out[..out.len() - 1].split(|&b| b == b'\r').collect();
    let want_segments = if d == Disposition::Accept { 2 } else { 3 };
    assert_eq!(segs.len(), want_segments, "{ctx}: {}", s(out));

    // MSH
    let msh = header_fields(segs[0]);
    assert_eq!(get(&msh, 0), b"MSH", "{ctx}");
    assert_eq!(get(&msh, 1), [inb.sep], "{ctx}: field separator");
    assert_eq!(get(&msh, 2), inb.encoding, "{ctx}: encoding characters");
    assert_eq!(get(&msh, 3), get(&inb.head, 5), "{ctx}: MSH-3 = inbound 5");
    assert_eq!(get(&msh, 4), get(&inb.head, 6), "{ctx}: MSH-4 = inbound 6");
    assert_eq!(get(&msh, 5), get(&inb.head, 3), "{ctx}: MSH-5 = inbound 3");
    assert_eq!(get(&msh, 6), get(&inb.head, 4), "{ctx}: MSH-6 = inbound 4");
    let ts = get(&msh, 7);
    assert_eq!(ts.len(), 19, "{ctx}: MSH-7 {}", s(ts));
    assert!(ts[..14].iter().all(u8::is_ascii_digit), "{ctx}: {}", s(ts));
    assert_eq!(&ts[14..], b"+0000", "{ctx}");
    assert!(ts.starts_with(b"20"), "{ctx}: MSH-7 year");
    let month: u32 = s(&ts[4..6]).parse().unwrap();
    assert!((1..=12).contains(&month), "{ctx}");

    let comp = inb.encoding[0];
    let mt = get(&msh, 9);
    if inb.is_batch {
        assert_eq!(mt, b"ACK", "{ctx}: batch MSH-9");
    } else {
        let inbound_mt = get(&inb.head, 9);
        let first_rep = inbound_mt.split(|&b| b == inb.encoding[1]).next().unwrap();
        let inbound_comps: Vec<&[u8]> = first_rep.split(|&b| b == comp).collect();
        let ack_comps: Vec<&[u8]> = mt.split(|&b| b == comp).collect();
        assert_eq!(
            ack_comps.len(),
            inbound_comps.len().min(3),
            "{ctx}: MSH-9 {}",
            s(mt)
        );
        assert_eq!(ack_comps[0], b"ACK", "{ctx}");
        if ack_comps.len() >= 2 {
            assert_eq!(ack_comps[1], inbound_comps[1], "{ctx}: trigger");
        }
        if ack_comps.len() == 3 {
            assert_eq!(ack_comps[2], b"ACK", "{ctx}");
        }
    }
    let id = get(&msh, 10).to_vec();
    assert!(!id.is_empty() && id.len() <= 20, "{ctx}: MSH-10 {}", s(&id));
    assert_ne!(id, inb.control_id, "{ctx}: MSH-10 must be new");
    assert_ne!(id, get(&inb.head, 10), "{ctx}");

    let (want11, want12) = match &inb.msh {
        Some(m) if !inb.is_batch => (get(m, 11).to_vec(), get(m, 12).to_vec()),
        Some(m) => (
            Some(get(m, 11))
                .filter(|v| !v.is_empty())
                .unwrap_or(b"P")
                .to_vec(),
            Some(get(m, 12))
                .filter(|v| !v.is_empty())
                .unwrap_or(b"2.5")
                .to_vec(),
        ),
        None => (b"P".to_vec(), b"2.5".to_vec()),
    };
    assert_eq!(get(&msh, 11), want11, "{ctx}: MSH-11 echoed");
    assert_eq!(get(&msh, 12), want12, "{ctx}: MSH-12 echoed");
    for n in 13..=17 {
        assert!(get(&msh, n).is_empty(), "{ctx}: MSH-{n} empty");
    }
    let inbound18 = msh_field(&inb, 18);
    if inbound18.is_empty() {
        assert!(
            msh.len() <= 13,
            "{ctx}: no MSH-18 unless the inbound had one"
        );
    } else {
        assert_eq!(get(&msh, 18), b"UNICODE UTF-8", "{ctx}: MSH-18");
    }

    // MSA
    let msa = seg_fields(segs[1], inb.sep);
    assert_eq!(get(&msa, 0), b"MSA", "{ctx}");
    assert_eq!(
        get(&msa, 1),
        expect_code(&inb, mode, d).as_bytes(),
        "{ctx}: MSA-1"
    );
    assert_eq!(get(&msa, 2), inb.control_id, "{ctx}: MSA-2");
    let escaped = text.map(|t| escape_oracle(t, &inb.encoding, inb.sep));
    match &escaped {
        Some(e) => assert_eq!(get(&msa, 3), e.as_slice(), "{ctx}: MSA-3"),
        None => assert_eq!(msa.len(), 3, "{ctx}: no MSA-3 without text"),
    }

    // ERR
    if d != Disposition::Accept {
        let err = seg_fields(segs[2], inb.sep);
        assert_eq!(get(&err, 0), b"ERR", "{ctx}");
        let version = msh_field(&inb, 12);
        let version = version.split(|&b| b == comp).next().unwrap_or_default();
        let default_code: &[u8] = if d == Disposition::Reject {
            b"200"
        } else {
            b"207"
        };
        if version.is_empty() || is_v25_or_later(version) {
            assert!(get(&err, 1).is_empty(), "{ctx}: no ERR-1 from 2.5 on");
            let err3: Vec<&[u8]> = get(&err, 3).split(|&b| b == comp).collect();
            assert_eq!(err3[0], default_code, "{ctx}: ERR-3 code");
            assert_eq!(err3.last().unwrap(), b"HL70357", "{ctx}: ERR-3 table");
            assert_eq!(get(&err, 4), b"E", "{ctx}: ERR-4");
            if let Some(e) = &escaped {
                assert_eq!(get(&err, 8), e.as_slice(), "{ctx}: ERR-8");
            }
        } else {
            assert_eq!(err.len(), 2, "{ctx}: only ERR-1 before 2.5: {}", s(segs[2]));
            let eld: Vec<&[u8]> = get(&err, 1).split(|&b| b == comp).collect();
            assert_eq!(eld.len(), 4, "{ctx}");
            assert!(eld[3].starts_with(default_code), "{ctx}: ERR-1 code");
            if let (Some(e), Some(&sub)) = (&escaped, inb.encoding.get(3)) {
                let ce: Vec<&[u8]> = eld[3].split(|&b| b == sub).collect();
                assert_eq!(ce[1], e.as_slice(), "{ctx}: ERR-1 text");
            }
        }
    }
    id
}

/// Escapes `text` the way HL7 says, from first principles.
fn escape_oracle(text: &str, encoding: &[u8], field: u8) -> Vec<u8> {
    let esc = encoding.get(2).copied();
    let mut out = Vec::new();
    for &b in text.as_bytes() {
        let letter = if b == field {
            Some(b'F')
        } else if b == encoding[0] {
            Some(b'S')
        } else if b == encoding[1] {
            Some(b'R')
        } else if Some(b) == esc {
            Some(b'E')
        } else if Some(&b) == encoding.get(3) {
            Some(b'T')
        } else if Some(&b) == encoding.get(4) {
            Some(b'P')
        } else {
            None
        };
        match (letter, esc) {
            (Some(l), Some(e)) => out.extend_from_slice(&[e, l, e]),
            (Some(_), None) => out.push(b' '),
            (None, _) if b == b'\r' || b == b'\n' => out.push(b' '),
            (None, _) => out.push(b),
        }
    }
    out
}

const DISPOSITIONS: [Disposition; 3] =
    [Disposition::Accept, Disposition::Error, Disposition::Reject];
const MODES: [AckMode; 2] = [AckMode::Auto, AckMode::Original];

// ---------------------------------------------------------------------------------------------
// Corpus

#[test]
fn corpus_headers_parse_and_acks_obey_the_rules() {
    let Some(dir) = corpus_dir() else { return };
    let mut ids = HashSet::new();
    let mut checked = 0;
    let mut batches = 0;
    for (name, bytes, malformed) in corpus_files(&dir) {
        let header = match Header::parse(&bytes) {
            Ok(h) => h,
            Err(e) => {
                let expected = EXPECTED_HEADER_ERRORS.iter().find(|(n, _)| *n == name);
                assert!(
                    malformed || expected.is_some_and(|(_, want)| *want == e),
                    "{name}: header should parse, got {e}"
                );
                let mut out = Vec::new();
                let salvaged = salvage_control_id(&bytes);
                build_nak_unparseable(salvaged, &e.to_string(), &mut out);
                let ack = Ack::parse(&out).unwrap();
                assert_eq!(ack.code, AckCode::ApplicationReject);
                // The samples whose only fault is MSH-2 still name their message in MSA-2.
                if expected.is_some() {
                    let id = salvaged.unwrap_or_else(|| panic!("{name}: no MSH-10 found"));
                    assert!(!id.is_empty(), "{name}");
                    assert_eq!(ack.control_id.as_bytes(), id, "{name}");
                }
                assert_eq!(ack.errors, [e.to_string()]);
                continue;
            }
        };
        assert!(
            !EXPECTED_HEADER_ERRORS.iter().any(|(n, _)| *n == name),
            "{name} parsed but was expected to fail"
        );
        // The crate's view agrees with the splitter.
        let inb = inbound(&bytes);
        assert_eq!(header.segment_name(), get(&inb.head, 0), "{name}");
        assert_eq!(header.separators().field, inb.sep, "{name}");
        assert_eq!(header.field(2), Some(inb.encoding.as_slice()), "{name}");
        for n in 1..inb.head.len() + 2 {
            assert_eq!(
                header.field(n),
                inb.head.get(n).map(Vec::as_slice),
                "{name} field {n}"
            );
        }
        assert_eq!(
            header.control_id().unwrap_or_default(),
            inb.control_id,
            "{name}"
        );
        batches += usize::from(header.is_batch());

        for d in DISPOSITIONS {
            for mode in MODES {
                for text in [None, Some("Bad value: a|b^c~d\\e&f\rline2")] {
                    let mut b = AckBuilder::new(d).mode(mode);
                    if let Some(t) = text {
                        b = b.text(t);
                    }
                    let mut out = b"junk".to_vec();
                    let sent = b.build(&header, &mut out).unwrap();
                    assert_eq!(sent, expect_sent(&inb, mode, d), "{name} {mode:?} {d:?}");
                    if !sent {
                        assert_eq!(out, b"junk", "{name}: a suppressed ACK writes nothing");
                        continue;
                    }
                    let ack_bytes = &out[4..];
                    let id = check_ack(&name, &bytes, ack_bytes, mode, d, text);
                    assert!(ids.insert(id), "{name}: MSH-10 repeated");
                    let parsed = Ack::parse(ack_bytes).unwrap();
                    assert_eq!(parsed.control_id.as_bytes(), inb.control_id.as_slice());
                    assert_eq!(parsed.code.as_str(), expect_code(&inb, mode, d));
                    if let Some(t) = text {
                        if inb.encoding.len() >= 4 {
                            let want = t.replace('\r', " ");
                            assert_eq!(parsed.text.as_deref(), Some(&*want), "{name}");
                            if d != Disposition::Accept {
                                assert_eq!(parsed.errors, [want], "{name}");
                            }
                        }
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(
        batches >= 3,
        "the corpus has FHS/BHS batches; found {batches}"
    );
    assert!(checked > 500, "only {checked} ACKs checked");
}

#[test]
fn corpus_acks_parse() {
    let Some(dir) = corpus_dir() else { return };
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let ack = Ack::parse(&read("izgw__messages_49.hl7")).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationError);
    assert_eq!(ack.control_id, "9299381");
    assert_eq!(
        ack.errors,
        [
            // The first ERR puts its text in ERR-9 (not ERR-8): ERR-3's text is used.
            "required field missing",
            "PID is required segment. Message rejected "
        ]
    );
    let ack = Ack::parse(&read("izgw__messages_11.hl7")).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationAccept);
    assert_eq!(ack.control_id, "0851077658473390286");
    assert!(ack.is_success() && ack.errors.is_empty());
    assert_eq!(
        ack_control_id(&read("hapi__messages_02.hl7")),
        Some(&b"msgCtrlId"[..])
    );
}

// ---------------------------------------------------------------------------------------------
// Builder details

const V251: &[u8] =
    b"MSH|^~\\&|LAB|HOSP|EHR|CLINIC|20240101120000||ORU^R01^ORU_R01|CTRL-1|P|2.5.1\rPID|1\r";

fn build(msg: &[u8], b: AckBuilder<'_>) -> (bool, Vec<u8>) {
    let h = Header::parse(msg).unwrap();
    let mut out = Vec::new();
    let sent = b.build(&h, &mut out).unwrap();
    (sent, out)
}

#[test]
fn original_mode_ack() {
    let (sent, out) = build(V251, AckBuilder::new(Disposition::Accept));
    assert!(sent);
    check_ack("v251", V251, &out, AckMode::Auto, Disposition::Accept, None);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("MSH|^~\\&|EHR|CLINIC|LAB|HOSP|"), "{text}");
    assert!(text.contains("||ACK^R01^ACK|"), "{text}");
    assert!(text.ends_with("|P|2.5.1\rMSA|AA|CTRL-1\r"), "{text}");
}

#[test]
fn err_segment_by_version() {
    let (_, out) = build(
        V251,
        AckBuilder::new(Disposition::Error)
            .text("disk full")
            .error_code(207),
    );
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.ends_with(
            "MSA|AE|CTRL-1|disk full\rERR|||207^Application internal error^HL70357|E||||disk full\r"
        ),
        "{text}"
    );
    let v23 = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|X9|T|2.3\r";
    let (_, out) = build(
        v23,
        AckBuilder::new(Disposition::Reject).text("no such type"),
    );
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.ends_with("MSA|AR|X9|no such type\rERR|^^^200&no such type&HL70357\r"),
        "{text}"
    );
    check_ack(
        "v23",
        v23,
        text.as_bytes(),
        AckMode::Auto,
        Disposition::Reject,
        Some("no such type"),
    );
}

#[test]
fn texts_use_the_message_escape_character() {
    let custom = b"MSH#!@%*#S#F#R#F#2026##ADT!A01#7#P#2.5\n";
    let (_, out) = build(
        custom,
        AckBuilder::new(Disposition::Error).text("a#b!c@d%e*f"),
    );
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains("MSA#AE#7#a%F%b%S%c%R%d%E%e%T%f\r"), "{text}");
    assert!(
        text.contains("ERR###207!Application internal error!HL70357#E####a%F%b%S%c%R%d%E%e%T%f\r"),
        "{text}"
    );
    let ack = Ack::parse(&out).unwrap();
    assert_eq!(ack.text.as_deref(), Some("a#b!c@d%e*f"));
    assert_eq!(ack.errors, ["a#b!c@d%e*f"]);
}

#[test]
fn enhanced_mode_follows_msh15() {
    // (MSH-15, MSH-16, sent for Accept, sent for Error)
    let table: &[(&str, &str, bool, bool)] = &[
        ("AL", "", true, true),
        ("NE", "AL", false, false),
        ("ER", "", false, true),
        ("SU", "", true, false),
        ("", "AL", true, true), // empty MSH-15 with MSH-16 valued counts as AL
        ("XX", "", true, true), // unknown: AL
    ];
    for &(m15, m16, accept, error) in table {
        let msg = format!("MSH|^~\\&|A|B|C|D|2024||ADT^A01|ID1|P|2.5|||{m15}|{m16}\r");
        let h = Header::parse(msg.as_bytes()).unwrap();
        for (d, want, code) in [
            (Disposition::Accept, accept, "CA"),
            (Disposition::Error, error, "CE"),
        ] {
            let mut out = Vec::new();
            let sent = AckBuilder::new(d).build(&h, &mut out).unwrap();
            assert_eq!(sent, want, "MSH-15={m15} MSH-16={m16} {d:?}");
            assert_eq!(out.is_empty(), !want);
            if sent {
                assert_eq!(Ack::parse(&out).unwrap().code.as_str(), code);
                check_ack("enh", msg.as_bytes(), &out, AckMode::Auto, d, None);
            }
            // Forcing original mode always answers, with AA/AE.
            out.clear();
            let b = AckBuilder::new(d).mode(AckMode::Original);
            assert!(b.build(&h, &mut out).unwrap());
            assert_eq!(Ack::parse(&out).unwrap().code, b.code(&h));
            assert!(!b.code(&h).as_str().starts_with('C'));
        }
    }
}

#[test]
fn charset_goes_into_msh18_only_when_the_inbound_had_one() {
    let with18 = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|ID1|P|2.5||||||8859/1\r";
    let latin1 = Charset::from_label("8859/1").unwrap();
    let (_, out) = build(
        with18,
        AckBuilder::new(Disposition::Error)
            .charset(latin1)
            .text("café"),
    );
    assert!(out.starts_with(b"MSH|^~\\&|C|D|A|B|"));
    let first = out.split(|&b| b == b'\r').next().unwrap();
    assert!(first.ends_with(b"|P|2.5||||||8859/1"), "{}", s(first));
    assert!(
        out.windows(4).any(|w| w == b"caf\xE9"),
        "text encoded in ISO-8859-1"
    );
    assert_eq!(Ack::parse(&out).unwrap().text.as_deref(), Some("café"));

    let (_, out) = build(V251, AckBuilder::new(Disposition::Accept).charset(latin1));
    assert!(!out.windows(6).any(|w| w == b"8859/1"));

    // A character the charset cannot carry is an error, and nothing is written.
    let h = Header::parse(with18).unwrap();
    let mut out = b"keep".to_vec();
    let err = AckBuilder::new(Disposition::Error)
        .charset(latin1)
        .text("€")
        .build(&h, &mut out)
        .unwrap_err();
    assert!(matches!(err, mllp::Error::Charset(_)), "{err}");
    assert_eq!(out, b"keep");
}

#[test]
fn batch_is_acknowledged_once_with_bhs11() {
    let batch = b"FHS|^~\\&|SA|SF|RA|RF|2024||||F-11\rBHS|^~\\&|SA|SF|RA|RF|2024||||B-11\rMSH|^~\\&|SA|SF|RA|RF|2024||ORU^R01|M1|T|2.3|||AL\rBTS|1\rFTS|1\r";
    let h = Header::parse(batch).unwrap();
    assert_eq!(h.control_id(), Some(&b"B-11"[..]));
    let mut out = Vec::new();
    assert!(AckBuilder::new(Disposition::Accept)
        .build(&h, &mut out)
        .unwrap());
    check_ack(
        "batch",
        batch,
        &out,
        AckMode::Auto,
        Disposition::Accept,
        None,
    );
    let text = s(&out);
    assert!(text.contains("||ACK|"), "{text}");
    assert!(text.contains("|T|2.3\rMSA|CA|B-11\r"), "{text}");

    let fhs_only =
        b"FHS|^~\\&|SA|SF|RA|RF|2024||||F-11\rMSH|^~\\&|SA|SF|RA|RF|2024||ORU^R01|M1|P|2.5\r";
    let (_, out) = build(fhs_only, AckBuilder::new(Disposition::Accept));
    assert_eq!(ack_control_id(&out), Some(&b"F-11"[..]));
    let bhs_only = b"BHS|^~\\&|SA|SF|RA|RF|2024||||B-7\r";
    let (_, out) = build(bhs_only, AckBuilder::new(Disposition::Error));
    assert_eq!(ack_control_id(&out), Some(&b"B-7"[..]));
    assert!(s(&out).contains("|P|2.5\r"), "defaults without an MSH");
}

#[test]
fn nak_for_unparseable_input() {
    let mut out = Vec::new();
    let reason = HeaderError::NoHeader.to_string();
    build_nak_unparseable(None, &reason, &mut out);
    let segs = lines(&out);
    let msh = header_fields(segs[0]);
    assert_eq!(get(&msh, 9), b"ACK");
    assert_eq!(get(&msh, 11), b"P");
    assert_eq!(get(&msh, 12), b"2.5");
    assert_eq!(
        segs[1],
        b"MSA|AR||the message does not start with MSH, BHS or FHS"
    );
    let err = seg_fields(segs[2], b'|');
    assert_eq!(get(&err, 4), b"E");
    assert_eq!(get(&err, 8), reason.as_bytes());
    let ack = Ack::parse(&out).unwrap();
    assert_eq!(ack.code, AckCode::ApplicationReject);
    assert_eq!(ack.control_id, "");
    assert_eq!(ack.errors, [reason]);
}

#[test]
fn a_nak_names_the_message_when_its_control_id_can_still_be_found() {
    for (msg, id) in [
        // MSH-2 with a doubled escape character (a real sample): MSH-10 is still there.
        (
            &b"MSH|^~\\\\&|A|B|C|D|2024||ADT^A01|ID-1|P|2.5\rPID|1\r"[..],
            Some(&b"ID-1"[..]),
        ),
        (
            b"\xEF\xBB\xBF\r\nMSH|^|A|B|C|D|2024||ADT^A01|X 9  |P|2.5\r",
            Some(b"X 9"),
        ),
        (b"BHS|x|A|B|C|D|2024||||B-7\r", Some(b"B-7")),
        (b"MSH#^~\\&#A#B#C#D#2024##ADT^A01#a|b#P\r", Some(b"a|b")),
        (b"MSH|^~\\\\&|A|B|C|D|2024||ADT^A01||P\r", None),
        (b"MSH|^~\\\\&|A|B\rPID|1|2|3|4|5|6|7|8|9|10\r", None),
        (b"MSHA^~\\&|A", None),
        (b"PID|1", None),
    ] {
        assert_eq!(
            salvage_control_id(msg),
            id,
            "{}",
            String::from_utf8_lossy(msg)
        );
    }
    let mut out = Vec::new();
    build_nak_unparseable(Some(b"a|b"), "bad header", &mut out);
    let ack = Ack::parse(&out).unwrap();
    assert_eq!(
        (ack.code, ack.control_id.as_str()),
        (AckCode::ApplicationReject, "a\\F\\b")
    );
}

#[test]
fn header_tolerates_bom_blank_lines_and_line_endings() {
    let bodies: &[&[u8]] = &[
        b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|ID|P|2.5\rPID|1\r",
        b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|ID|P|2.5\nPID|1\n",
        b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|ID|P|2.5\r\nPID|1\r\n",
        b"\xEF\xBB\xBFMSH|^~\\&|A|B|C|D|2024||ADT^A01|ID|P|2.5",
        b"\r\n\r\nMSH|^~\\&|A|B|C|D|2024||ADT^A01|ID|P|2.5\r",
        b"\xEF\xBB\xBF\n\nMSH|^~\\&|A|B|C|D|2024||ADT^A01|ID|P|2.5\r",
    ];
    for body in bodies {
        let h = Header::parse(body).unwrap();
        assert_eq!(h.control_id(), Some(&b"ID"[..]), "{}", s(body));
        assert_eq!(h.version(), Some(&b"2.5"[..]));
        assert_eq!(h.field(13), None);
    }
    let trunc = Header::parse(b"MSH|^~\\&#|A").unwrap();
    assert_eq!(trunc.separators().truncation, Some(b'#'));
    assert_eq!(trunc.field(3), Some(&b"A"[..]));
}

// ---------------------------------------------------------------------------------------------
// Parser

#[test]
fn ack_parser_table() {
    // (reply, code, MSA-2, MSA-3, errors)
    type Case<'a> = (&'a [u8], AckCode, &'a str, Option<&'a str>, &'a [&'a str]);
    let cases: &[Case<'_>] = &[
        (b"MSH|^~\\&|A|B|C|D|2024||ACK|1|P|2.5\rMSA|AA|42\r", AckCode::ApplicationAccept, "42", None, &[]),
        (b"MSH|^~\\&|A|B|C|D|2024||ACK|1|P|2.5\rMSA|AA|42", AckCode::ApplicationAccept, "42", None, &[]),
        (b"MSH|^~\\&|A|B|C|D|2024||ACK|1|P|2.5\nMSA|CA|42\n", AckCode::CommitAccept, "42", None, &[]),
        (b"MSH|^~\\&|A|B|C|D|2024||ACK|1|P|2.5\r\nMSA|CR|42|nope\r\n", AckCode::CommitReject, "42", Some("nope"), &[]),
        (
            b"MSH|^~\\&|A|B|C|D|2024||ACK|1|P|2.5\rMSA|AE|7|bad \\F\\ field\rERR|||207^Application internal error^HL70357|E||||x\\S\\y\rERR|||101^Required field missing^HL70357|E\r",
            AckCode::ApplicationError,
            "7",
            Some("bad | field"),
            &["x^y", "Required field missing"],
        ),
        (
            b"MSH|^~\\&|A|B|C|D|2024||ACK|1|P|2.3\rMSA|AR|9\rERR|^^^200&Unsupported message type&HL70357",
            AckCode::ApplicationReject,
            "9",
            None,
            &["Unsupported message type"],
        ),
        (b"MSH|^~\\&|A|B|C|D|2024||ACK|1|P|2.5||||||8859/1\rMSA|AE|5|caf\xE9\r", AckCode::ApplicationError, "5", Some("café"), &[]),
    ];
    for (reply, code, id, text, errors) in cases {
        let ack = Ack::parse(reply).unwrap_or_else(|e| panic!("{}: {e}", s(reply)));
        assert_eq!(ack.kind, ReplyKind::Hl7);
        assert_eq!(ack.code, *code, "{}", s(reply));
        assert_eq!(ack.control_id, *id);
        assert_eq!(ack.text.as_deref(), *text, "{}", s(reply));
        assert_eq!(ack.errors, *errors, "{}", s(reply));
        assert_eq!(ack.raw, *reply);
        assert_eq!(ack_control_id(reply), Some(id.as_bytes()));
        assert_eq!(ack.is_success(), code.is_success());
    }
}

#[test]
fn ack_parser_rejects_non_acks_and_reads_commit_blocks() {
    let not_ack = Ack::parse(b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1\r").unwrap_err();
    assert!(
        matches!(not_ack, mllp::Error::Header(HeaderError::NotAnAck)),
        "{not_ack}"
    );
    let bad_code = Ack::parse(b"MSH|^~\\&|A|B|C|D|2024||ACK|1|P|2.5\rMSA|ZZ|1\r").unwrap_err();
    assert!(matches!(
        bad_code,
        mllp::Error::Header(HeaderError::NotAnAck)
    ));
    assert!(matches!(
        Ack::parse(b"garbage"),
        Err(mllp::Error::Header(HeaderError::NoHeader))
    ));

    let ok = Ack::parse(COMMIT_ACK).unwrap();
    assert_eq!(
        (ok.kind, ok.code, ok.is_success()),
        (ReplyKind::Mllp2, AckCode::CommitAccept, true)
    );
    let nak = Ack::parse(COMMIT_NAK).unwrap();
    assert_eq!(
        (nak.kind, nak.code, nak.is_success()),
        (ReplyKind::Mllp2, AckCode::CommitReject, false)
    );
    assert_eq!(ack_control_id(COMMIT_ACK), None);
    assert_eq!(
        ack_control_id(b"MSA|AA|77"),
        Some(&b"77"[..]),
        "MSA without MSH"
    );
}

// ---------------------------------------------------------------------------------------------
// Fuzz replay

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn ack_build_replay_seeds_corpus_and_random_inputs() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/ack_build");
    for entry in std::fs::read_dir(seeds).unwrap() {
        mllp_testkit::fuzzing::ack_build(&std::fs::read(entry.unwrap().path()).unwrap());
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let alphabet: &[u8] = b"MSHBFA|^~\\&#%!*\r\n0123ALNEERSU.2 \xEF\xBB\xBF\xFF\x00";
    for _ in 0..4000 {
        let mut input: Vec<u8> = match rng.below(4) {
            0 => b"MSH|^~\\&".to_vec(),
            1 => vec![b'M', b'S', b'H', alphabet[rng.below(alphabet.len())]],
            2 => b"FHS|^~\\&|||||||||F\rBHS|^~\\&".to_vec(),
            _ => Vec::new(),
        };
        for _ in 0..rng.below(120) {
            input.push(alphabet[rng.below(alphabet.len())]);
        }
        mllp_testkit::fuzzing::ack_build(&input);
    }
    let Some(dir) = corpus_dir() else { return };
    for (_, bytes, _) in corpus_files(&dir) {
        mllp_testkit::fuzzing::ack_build(&bytes);
        // And a few mutations of each.
        for _ in 0..20 {
            let mut m = bytes[..bytes.len().min(400)].to_vec();
            if !m.is_empty() {
                let i = rng.below(m.len());
                m[i] = alphabet[rng.below(alphabet.len())];
            }
            mllp_testkit::fuzzing::ack_build(&m);
        }
    }
}
