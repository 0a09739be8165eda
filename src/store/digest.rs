//! [`ContentDigest`]: what tells a resend from another message that reuses a control ID.

use std::fmt;

use crate::crc::{crc32, crc64};

/// A digest of a message's content, which duplicate suppression compares besides the key
/// (MSH-3, MSH-4, MSH-10): a resend is the same key *and* the same content; the same key with
/// other content is another message (a sending system that reset its counter), stored as new.
///
/// **The content** is the whole message as the listener decoded it to UTF-8 ([`StoredMessage::text`],
/// segment endings as received), MSH-7 and every other field included. A resend by a sending
/// system (a lost ACK, a timeout) is the same frame sent again, byte for byte. Leaving fields
/// out (MSH-7, say) would take two messages that differ only there for one, and the second
/// would be answered `AA` and never stored: a silent loss. Counting every byte costs at worst
/// a second copy of a resend whose sender rewrote its header, which the store keeps, counts
/// and logs as a reused control ID.
///
/// **The digest** is 16 bytes: the CRC-64 (ECMA-182, as XZ) and the CRC-32 (IEEE) of the
/// content, and its length in bytes (modulo 2³²). The two generator polynomials have no common
/// factor, so together they are a 96-bit cyclic code: any two contents of the same length
/// that differ only within 12 consecutive bytes (a changed timestamp, patient ID or counter)
/// always have different digests, and two arbitrary different contents of the same length
/// have the same digest by chance with a probability of about 2⁻⁹⁶. A CRC-32 alone would be
/// 2⁻³², once in a few billion pairs: too weak to answer `AA` to a message never stored. It
/// is not a cryptographic hash: a sender can build a collision on purpose, but only to have
/// its own message taken for its own earlier one with the same key.
///
/// [`StoredMessage::text`]: crate::StoredMessage::text
///
/// ```
/// use mllp::ContentDigest;
///
/// let a = ContentDigest::of(b"MSH|^~\\&|LAB|HOSP|||20260101||ADT^A01|1|P|2.5\rPID|1||7||SMITH\r");
/// let b = ContentDigest::of(b"MSH|^~\\&|LAB|HOSP|||20260102||ADT^A01|1|P|2.5\rPID|1||8||JONES\r");
/// assert_ne!(a, b);
/// assert_eq!(ContentDigest::from_bytes(a.to_bytes()), a);
/// assert_eq!(a.to_string().len(), 32);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentDigest([u8; 16]);

impl ContentDigest {
    /// The digest of `content`.
    pub fn of(content: &[u8]) -> ContentDigest {
        let mut d = [0; 16];
        d[..8].copy_from_slice(&crc64(content).to_be_bytes());
        d[8..12].copy_from_slice(&crc32(content).to_be_bytes());
        // The length modulo 2^32 on purpose: it is part of a digest, not a size.
        d[12..].copy_from_slice(&(content.len() as u32).to_be_bytes());
        ContentDigest(d)
    }

    /// The 16 bytes: CRC-64 and CRC-32 of the content, and its length, each big-endian.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0
    }

    /// A digest from the bytes [`to_bytes`](Self::to_bytes) gave.
    pub fn from_bytes(bytes: [u8; 16]) -> ContentDigest {
        ContentDigest(bytes)
    }
}

/// 32 lowercase hexadecimal digits.
impl fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentDigest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_differences_in_a_short_window() {
        let d = ContentDigest::of(b"123456789");
        assert_eq!(
            d.to_string(),
            "995dc9bbdf1939facbf4392600000009",
            "CRC-64/XZ, CRC-32 and the length"
        );
        // Every change of one or two bytes in a message is seen.
        let base = b"MSH|^~\\&|LAB|HOSP|||20260101120000||ADT^A01|1|P|2.5\rPID|1||7||SMITH\r";
        let digest = ContentDigest::of(base);
        let mut seen = std::collections::HashSet::new();
        for i in 0..base.len() {
            for x in [1u8, 0x80, 0xFF] {
                let mut changed = base.to_vec();
                changed[i] ^= x;
                if i + 1 < base.len() {
                    changed[i + 1] ^= x.rotate_left(3);
                }
                let other = ContentDigest::of(&changed);
                assert_ne!(other, digest, "byte {i} ^ {x}");
                seen.insert(other);
            }
        }
        assert_eq!(seen.len(), base.len() * 3, "no two changes collide");
        assert_ne!(ContentDigest::of(b"a"), ContentDigest::of(b"a\0"));
    }
}
