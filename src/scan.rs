//! Fast byte search for the framing decoder.
//!
//! The decoder looks for the first byte of the end sequence (and, under
//! [`StartInFrame::Restart`](crate::StartInFrame::Restart), of the start sequence) in every byte of
//! every frame, so this is the hot loop of the crate. On `x86_64` it uses AVX2 when the CPU has
//! it (detected at run time) and SSE2, which every `x86_64` CPU has, otherwise, 64 bytes per
//! iteration; elsewhere a portable SWAR loop over two `usize` words at a time (the technique of
//! `memchr`'s fallback). All are tested against a naive oracle at every alignment;
//! `BENCHMARKS.md` has the figures that justify the SIMD paths.

/// The index of the first `a` in `hay`.
#[inline]
pub fn find_byte(a: u8, hay: &[u8]) -> Option<usize> {
    find_either(a, a, hay)
}

/// The index of the first byte of `hay` equal to `a` or to `b`.
#[inline]
pub fn find_either(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if hay.len() >= 64 && avx2::available() {
            // SAFETY: `available` has checked that this CPU supports AVX2.
            return unsafe { avx2::find(a, b, hay) };
        }
        sse2::find(a, b, hay)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        swar::find(a, b, hay)
    }
}

/// The index of the first occurrence of `needle` (non-empty) in `hay`.
pub fn find_seq(needle: &[u8], hay: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(i) = find_byte(first, &hay[from..]) {
        let at = from + i;
        if hay[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// The portable fallback: SWAR over `usize` words.
pub mod swar {
    const WORD: usize = std::mem::size_of::<usize>();
    const LO: usize = usize::MAX / 255; // 0x0101…01
    const HI: usize = LO << 7; // 0x8080…80

    /// Nonzero exactly when some byte of `v` is zero; on little-endian the lowest set bit marks
    /// the first zero byte (the borrow only produces false positives above a true zero).
    #[inline(always)]
    fn zero_bytes(v: usize) -> usize {
        v.wrapping_sub(LO) & !v & HI
    }

    #[inline(always)]
    fn load(chunk: &[u8]) -> usize {
        let mut word = [0u8; WORD];
        word.copy_from_slice(&chunk[..WORD]);
        usize::from_ne_bytes(word)
    }

    #[inline(always)]
    fn first_in_word(mask: usize, chunk: &[u8], a: u8, b: u8) -> usize {
        if cfg!(target_endian = "little") {
            (mask.trailing_zeros() / 8) as usize
        } else {
            chunk
                .iter()
                .position(|&x| x == a || x == b)
                .unwrap_or(WORD - 1)
        }
    }

    /// The index of the first byte equal to `a` or `b`.
    pub fn find(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
        let va = LO * a as usize;
        let vb = LO * b as usize;
        let mut i = 0;
        while i + 2 * WORD <= hay.len() {
            let w0 = load(&hay[i..]);
            let w1 = load(&hay[i + WORD..]);
            let m0 = zero_bytes(w0 ^ va) | zero_bytes(w0 ^ vb);
            let m1 = zero_bytes(w1 ^ va) | zero_bytes(w1 ^ vb);
            if m0 | m1 != 0 {
                if m0 != 0 {
                    return Some(i + first_in_word(m0, &hay[i..i + WORD], a, b));
                }
                return Some(i + WORD + first_in_word(m1, &hay[i + WORD..i + 2 * WORD], a, b));
            }
            i += 2 * WORD;
        }
        hay[i..]
            .iter()
            .position(|&x| x == a || x == b)
            .map(|p| i + p)
    }
}

/// SSE2, 64 bytes per iteration (SSE2 is part of the `x86_64` baseline).
#[cfg(target_arch = "x86_64")]
pub mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };

    /// The index of the first byte equal to `a` or `b`.
    #[inline]
    pub fn find(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
        let len = hay.len();
        let ptr = hay.as_ptr();
        let mut i = 0;
        // SAFETY: SSE2 is enabled on every x86_64 target. Each load reads 16 bytes at
        // `ptr + i + 16 * k` only after checking that `i + 64 <= len` (k < 4) or `i + 16 <= len`
        // (k = 0), so every read stays inside `hay`; `_mm_loadu_si128` has no alignment
        // requirement.
        unsafe {
            let va = _mm_set1_epi8(a as i8);
            let vb = _mm_set1_epi8(b as i8);
            let hits = |v: __m128i| _mm_or_si128(_mm_cmpeq_epi8(v, va), _mm_cmpeq_epi8(v, vb));
            while i + 64 <= len {
                let p = ptr.add(i) as *const __m128i;
                let h0 = hits(_mm_loadu_si128(p));
                let h1 = hits(_mm_loadu_si128(p.add(1)));
                let h2 = hits(_mm_loadu_si128(p.add(2)));
                let h3 = hits(_mm_loadu_si128(p.add(3)));
                let any = _mm_or_si128(_mm_or_si128(h0, h1), _mm_or_si128(h2, h3));
                if _mm_movemask_epi8(any) != 0 {
                    let m = (_mm_movemask_epi8(h0) as u32 as u64)
                        | ((_mm_movemask_epi8(h1) as u32 as u64) << 16)
                        | ((_mm_movemask_epi8(h2) as u32 as u64) << 32)
                        | ((_mm_movemask_epi8(h3) as u32 as u64) << 48);
                    return Some(i + m.trailing_zeros() as usize);
                }
                i += 64;
            }
            while i + 16 <= len {
                let m = _mm_movemask_epi8(hits(_mm_loadu_si128(ptr.add(i) as *const __m128i)));
                if m != 0 {
                    return Some(i + m.trailing_zeros() as usize);
                }
                i += 16;
            }
        }
        hay[i..]
            .iter()
            .position(|&x| x == a || x == b)
            .map(|p| i + p)
    }
}

/// AVX2, 64 bytes per iteration, for CPUs that have it.
#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8,
    };

    /// Whether this CPU supports AVX2 (detected once; later calls read a cached flag).
    #[inline]
    pub fn available() -> bool {
        std::is_x86_feature_detected!("avx2")
    }

    /// The index of the first byte equal to `a` or `b`.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2 ([`available`]).
    #[target_feature(enable = "avx2")]
    pub unsafe fn find(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
        let len = hay.len();
        let ptr = hay.as_ptr();
        let va = _mm256_set1_epi8(a as i8);
        let vb = _mm256_set1_epi8(b as i8);
        let hits = |v: __m256i| _mm256_or_si256(_mm256_cmpeq_epi8(v, va), _mm256_cmpeq_epi8(v, vb));
        let mut i = 0;
        while i + 64 <= len {
            // SAFETY: both loads read 32 bytes at `ptr + i` and `ptr + i + 32`, inside `hay`
            // because `i + 64 <= len`; `_mm256_loadu_si256` has no alignment requirement.
            let (v0, v1) = unsafe {
                let p = ptr.add(i) as *const __m256i;
                (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
            };
            let m0 = _mm256_movemask_epi8(hits(v0)) as u32 as u64;
            let m1 = _mm256_movemask_epi8(hits(v1)) as u32 as u64;
            let m = m0 | (m1 << 32);
            if m != 0 {
                return Some(i + m.trailing_zeros() as usize);
            }
            i += 64;
        }
        super::sse2::find(a, b, &hay[i..]).map(|p| i + p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
        hay.iter().position(|&x| x == a || x == b)
    }

    /// Every length up to 80, every alignment of a 64-byte window, a match at every position
    /// (or none), with decoys of neighbouring byte values around it.
    #[test]
    fn matches_oracle_at_every_alignment() {
        let backing: Vec<u8> = (0..256u32).map(|i| (i * 7 + 3) as u8 | 0x40).collect();
        for (a, b) in [
            (0x1C, 0x0B),
            (0x1C, 0x1C),
            (0x03, 0x02),
            (0x00, 0xFF),
            (0x80, 0x7F),
        ] {
            // Short inputs at every alignment; longer ones (past the 64-byte loop into the
            // 16-byte loop and the tail) at a few.
            let shapes = (0..64)
                .flat_map(|align| (0..80).map(move |len| (align, len)))
                .chain((0..4).flat_map(|align| (100..150).map(move |len| (align, len))));
            for (align, len) in shapes {
                {
                    let mut buf = backing[align..align + len].to_vec();
                    for x in buf.iter_mut() {
                        if *x == a || *x == b {
                            *x = 0x41;
                        }
                    }
                    let check = |hay: &[u8]| {
                        let want = naive(a, b, hay);
                        assert_eq!(swar::find(a, b, hay), want, "swar a={a} b={b} {hay:?}");
                        assert_eq!(find_either(a, b, hay), want, "simd a={a} b={b} {hay:?}");
                        #[cfg(target_arch = "x86_64")]
                        {
                            assert_eq!(sse2::find(a, b, hay), want, "sse2 {hay:?}");
                            if avx2::available() {
                                // SAFETY: AVX2 support was just checked.
                                let got = unsafe { avx2::find(a, b, hay) };
                                assert_eq!(got, want, "avx2 a={a} b={b} {hay:?}");
                            }
                        }
                        assert_eq!(find_byte(a, hay), naive(a, a, hay));
                    };
                    check(&buf);
                    for pos in 0..len {
                        let saved = buf[pos];
                        for needle in [a, b] {
                            buf[pos] = needle;
                            check(&buf);
                            // A second match later must not win.
                            if pos + 3 < len {
                                let later = buf[pos + 3];
                                buf[pos + 3] = a;
                                check(&buf);
                                buf[pos + 3] = later;
                            }
                        }
                        buf[pos] = saved;
                    }
                }
            }
        }
    }

    #[test]
    fn finds_sequences() {
        assert_eq!(find_seq(b"\x1c\r", b"abc\x1cx\x1c\r"), Some(5));
        assert_eq!(find_seq(b"\x1c\r", b"abc\x1c"), None);
        assert_eq!(find_seq(b"", b"abc"), None);
        assert_eq!(find_seq(b"c", b"abc"), Some(2));
    }
}
