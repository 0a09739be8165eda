//! The test messages `mllp check listener` sends: clearly marked as tests (MSH-11 `T`,
//! applications `MLLPCHECK`, MSH-10 `MLLPCHECK-<run>-<n>`), and the checks of the ACK header
//! that answers one.

use mllp::charset::Charset;

/// What every control ID of a check starts with.
pub const ID_PREFIX: &str = "MLLPCHECK-";
/// MSH-3 and MSH-4 of the test messages.
pub const SENDING: (&str, &str) = ("MLLPCHECK", "MLLPCHECKFAC");
/// MSH-5 and MSH-6 of the test messages.
pub const RECEIVING: (&str, &str) = ("PARTNER", "PARTNERFAC");
/// MSH-12 of the test messages.
pub const VERSION: &str = "2.5.1";
/// The non-ASCII name of the character-set check (Latin-1 letters, and CJK in UTF-8).
pub const NAME_LATIN: &str = "MÜLLER-NÚÑEZ^ZOË";
/// Added to the name when the wire is UTF-8.
pub const NAME_CJK: &str = " 王小明";

/// Makes the test messages of one run.
pub struct Maker {
    run: String,
    next: u32,
    charset: Charset,
    stamp: String,
}

impl Maker {
    /// A maker for one run, messages in `charset`.
    pub fn new(charset: Charset) -> Maker {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // Four base-36 digits that change every second, so two runs a minute apart differ.
        let mut run = String::new();
        let mut n = now.as_secs() % (36 * 36 * 36 * 36);
        for _ in 0..4 {
            run.insert(0, char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
            n /= 36;
        }
        let mut stamp = Vec::new();
        mllp::hl7::write_timestamp(now.as_secs(), &mut stamp);
        Maker {
            run: run.to_ascii_uppercase(),
            next: 1,
            charset,
            stamp: String::from_utf8_lossy(&stamp[..14]).into_owned(),
        }
    }

    /// A new control ID: `MLLPCHECK-<run>-<n>` (at most 20 characters).
    pub fn id(&mut self) -> String {
        let id = format!("{ID_PREFIX}{}-{}", self.run, self.next);
        self.next += 1;
        id
    }

    /// A test ADT^A01 with a new control ID, padded with NTE segments to about `size` bytes
    /// (none when `size` is small), patient name `name`; the text and its control ID.
    pub fn message(&mut self, size: usize, name: &str) -> (String, String) {
        let id = self.id();
        let msh18 = match self.charset.msh18_name() {
            Some(n) if self.charset != Charset::UTF_8 || !name.is_ascii() => format!("||||||{n}"),
            _ => String::new(),
        };
        let (sa, sf) = SENDING;
        let (ra, rf) = RECEIVING;
        let stamp = &self.stamp;
        let mut text = format!(
            "MSH|^~\\&|{sa}|{sf}|{ra}|{rf}|{stamp}||ADT^A01^ADT_A01|{id}|T|{VERSION}{msh18}\r\
             EVN|A01|{stamp}\r\
             PID|1||MLLPCHECK^^^MLLPCHECK^MR||{name}||19700101|U\r\
             NTE|1||Test message from mllp check: not a real patient.\r"
        );
        let mut n = 2;
        let line = "X".repeat(1000);
        while text.len() + 1100 < size {
            text.push_str(&format!("NTE|{n}||{line}\r"));
            n += 1;
        }
        let last = format!("NTE|{n}||");
        if let Some(fill) = size
            .checked_sub(text.len() + last.len() + 1)
            .filter(|f| *f > 0)
        {
            text.push_str(&last);
            text.push_str(&"X".repeat(fill));
            text.push('\r');
        }
        (text, id)
    }

    /// A message in the wire character set, as bytes, with its control ID.
    pub fn bytes(&mut self, size: usize, name: &str) -> (Vec<u8>, String) {
        let (text, id) = self.message(size, name);
        let bytes = match self.charset.encode(&text) {
            Ok(b) => b.into_owned(),
            Err(_) => text.into_bytes(),
        };
        (bytes, id)
    }

    /// A plain test message.
    pub fn plain(&mut self) -> (Vec<u8>, String) {
        self.bytes(0, "CHECK^TEST")
    }

    /// The non-ASCII name for this run's character set: Latin letters, plus CJK in UTF-8;
    /// `None` when the character set cannot carry any of it (ASCII).
    pub fn non_ascii_name(&self) -> Option<String> {
        let name = if self.charset == Charset::UTF_8 {
            format!("{NAME_LATIN}{NAME_CJK}")
        } else {
            NAME_LATIN.to_owned()
        };
        self.charset.encode(&name).is_ok().then_some(name)
    }

    /// The character set.
    pub fn charset(&self) -> Charset {
        self.charset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mllp::hl7::Header;

    #[test]
    fn messages_are_marked_and_sized() {
        let mut m = Maker::new(Charset::UTF_8);
        let (text, id) = m.message(0, "A^B");
        assert!(id.starts_with(ID_PREFIX) && id.len() <= 20, "{id}");
        let h = Header::parse(text.as_bytes()).unwrap();
        assert_eq!(h.control_id(), Some(id.as_bytes()));
        assert_eq!(h.processing_id(), Some(&b"T"[..]));
        assert_eq!(h.charset_name(), None);
        let (big, id2) = m.message(64 * 1024, "A^B");
        assert_ne!(id, id2);
        assert_eq!(big.len(), 64 * 1024);
        let name = m.non_ascii_name().unwrap();
        let (text, _) = m.message(0, &name);
        let h = Header::parse(text.as_bytes()).unwrap();
        assert_eq!(h.charset_name(), Some(&b"UNICODE UTF-8"[..]));
        assert!(Maker::new(Charset::ASCII).non_ascii_name().is_none());
    }
}
