//! Cyclic redundancy checks, table-driven, with the tables computed at compile time: CRC-32
//! (IEEE 802.3, the polynomial of zip and PNG) for every outbox record and index slot, and
//! CRC-64 (ECMA-182, as XZ uses it) for the content digest of a message
//! ([`ContentDigest`](crate::ContentDigest)).

/// The reflected IEEE polynomial.
const POLY32: u32 = 0xEDB8_8320;
/// The reflected ECMA-182 polynomial.
const POLY64: u64 = 0xC96C_5795_D787_0F42;

/// The table of a reflected CRC with polynomial `poly`: one entry per byte value. Computed in
/// 64 bits for both widths (a 32-bit polynomial never sets the upper half).
const fn table(poly: u64) -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { poly ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

const TABLE32: [u32; 256] = {
    let wide = table(POLY32 as u64);
    let mut narrow = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        narrow[i] = wide[i] as u32;
        i += 1;
    }
    narrow
};

const TABLE64: [u64; 256] = table(POLY64);

/// A running CRC-32.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Crc32(u32);

impl Crc32 {
    /// The state before any byte.
    pub(crate) fn new() -> Crc32 {
        Crc32(0xFFFF_FFFF)
    }

    /// Adds `bytes`.
    pub(crate) fn update(mut self, bytes: &[u8]) -> Crc32 {
        for &b in bytes {
            self.0 = TABLE32[((self.0 ^ u32::from(b)) & 0xFF) as usize] ^ (self.0 >> 8);
        }
        self
    }

    /// The checksum of everything added.
    pub(crate) fn finish(self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }
}

/// The CRC-32 of `bytes`.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    Crc32::new().update(bytes).finish()
}

/// The CRC-64/XZ of `bytes`.
pub(crate) fn crc64(bytes: &[u8]) -> u64 {
    let mut crc = !0u64;
    for &b in bytes {
        crc = TABLE64[((crc ^ u64::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // The check value of CRC-32/ISO-HDLC, and two more from zlib's crc32.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
        // Incremental updates give the one-shot value.
        let split = Crc32::new().update(b"1234").update(b"56789").finish();
        assert_eq!(split, 0xCBF4_3926);
        // The check value of CRC-64/XZ (the catalogue of parametrised CRC algorithms).
        assert_eq!(crc64(b"123456789"), 0x995D_C9BB_DF19_39FA);
        assert_eq!(crc64(b""), 0);
    }
}
