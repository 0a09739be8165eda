//! What `mllp check listener --tls` reports of the TLS session: the protocol and cipher agreed
//! (as the OpenSSL connector reports them), and the listener's certificate: its subject and
//! issuer common names and the end of its validity, from the DER of the leaf certificate (the
//! chain above it is not shown).
//!
//! A small DER walker suffices: the fields are at fixed places in every X.509 certificate.
//! Input from the network: every length is checked and a malformed certificate is `None`.

use super::report::{Report, Verdict};
use super::session::Session;

/// The parts of a certificate the report shows.
#[derive(Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's common name (empty if none).
    pub subject: String,
    /// The issuer's common name (empty if none).
    pub issuer: String,
    /// The end of validity, seconds since the Unix epoch.
    pub not_after: i64,
}

/// The TLS rows, from the current connection of `s`.
pub fn tls_rows(report: &mut Report, s: &Session<'_>) {
    let peer = s.wire.as_ref().and_then(|w| w.stream().tls_peer());
    let agreed = peer.and_then(|p| Some((p.protocol()?, p.cipher()?)));
    let protocol = match agreed {
        Some((protocol, cipher)) => format!(
            "{protocol}, cipher {cipher} (TLS 1.2 or later is accepted, or what \
             --tls-min-version says)"
        ),
        None => "TLS 1.2 or later (the lowest version this tool accepts); the negotiated \
                 version and cipher were not reported"
            .to_owned(),
    };
    report.add("tls-protocol", "TLS protocol", Verdict::Pass, protocol);
    let Some(der) = peer.and_then(|p| p.certificate_der()) else {
        report.add(
            "tls-certificate",
            "TLS certificate",
            Verdict::Warn,
            "the listener presented no certificate that could be shown",
        );
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match parse(der) {
        Some(cert) => {
            let days = (cert.not_after - now).div_euclid(86_400);
            let verdict = match days {
                d if d < 0 => Verdict::Fail,
                d if d < 30 => Verdict::Warn,
                _ => Verdict::Pass,
            };
            report.add(
                "tls-certificate",
                "TLS certificate",
                verdict,
                format!(
                    "subject CN {:?}, issuer CN {:?}, expires in {days} days; verified against \
                     the trusted CAs; the chain above the leaf is not shown",
                    cert.subject, cert.issuer
                ),
            );
        }
        None => report.add(
            "tls-certificate",
            "TLS certificate",
            Verdict::Warn,
            format!("{} bytes of DER that could not be read", der.len()),
        ),
    }
}

/// One DER element: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Reads a DER certificate.
pub fn parse(der: &[u8]) -> Option<CertInfo> {
    const SEQUENCE: u8 = 0x30;
    let (tag, cert, _) = element(der)?;
    (tag == SEQUENCE).then_some(())?;
    let (tag, tbs, _) = element(cert)?;
    (tag == SEQUENCE).then_some(())?;
    let (mut tag, mut body, mut rest) = element(tbs)?;
    if tag == 0xa0 {
        // [0] version
        (tag, body, rest) = element(rest)?;
    }
    let _serial = (tag, body);
    let (_, _signature, rest) = element(rest)?;
    let (_, issuer, rest) = element(rest)?;
    let (tag, validity, rest) = element(rest)?;
    (tag == SEQUENCE).then_some(())?;
    let (_, subject, _) = element(rest)?;
    let (_, _not_before, after) = element(validity)?;
    let (tag, not_after, _) = element(after)?;
    Some(CertInfo {
        subject: common_name(subject),
        issuer: common_name(issuer),
        not_after: time(tag, not_after)?,
    })
}

/// The common name (OID 2.5.4.3) in a distinguished name.
fn common_name(mut name: &[u8]) -> String {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    while let Some((_, set, rest)) = element(name) {
        name = rest;
        let mut attrs = set;
        while let Some((_, attr, more)) = element(attrs) {
            attrs = more;
            if let Some((0x06, oid, value)) = element(attr) {
                if oid == CN {
                    if let Some((_, text, _)) = element(value) {
                        return String::from_utf8_lossy(text).into_owned();
                    }
                }
            }
        }
    }
    String::new()
}

/// A UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18) as
/// Unix seconds.
fn time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
        })
    };
    let (year, rest) = match tag {
        0x17 if text.len() >= 12 => {
            let yy = digits(&text[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        0x18 if text.len() >= 14 => (digits(&text[..4])?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| digits(&rest[i..i + 2]);
    let (month, day) = (field(0)?, field(2)?);
    let (h, m, s) = (field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(time(0x17, b"700102000001Z"), Some(86_401));
        assert_eq!(time(0x18, b"20000301000000Z"), Some(11_017 * 86_400));
        assert_eq!(time(0x17, b"7001"), None);
        assert_eq!(time(0x17, b"701302000001Z"), None);
    }

    #[test]
    fn malformed_input_is_none() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(parse(&[0x30, 0x02, 0x30, 0x00]), None);
    }
}
