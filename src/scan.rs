//! Fast byte search for the framing decoder.
//!
//! The decoder looks for the first byte of the end sequence (and, under
//! [`StartInFrame::Restart`](crate::StartInFrame::Restart), of the start sequence) in every byte
//! of every frame, and a sender looks for the end sequence in every message it sends, so this
//! is the hot loop of the crate; the module is private to it. On `x86_64` it uses AVX2 when the
//! CPU has it (detected at run time), 128 bytes per iteration, with one comparison per byte for
//! one needle; otherwise SSE2, which every `x86_64` CPU has, 64 bytes per iteration; elsewhere a
//! portable SWAR loop over two `usize` words at a time (the technique of `memchr`'s fallback).
//! All are tested against a naive oracle at every alignment; `BENCHMARKS.md` has the figures
//! that justify the SIMD paths.

/// The index of the first `a` in `hay`.
#[inline]
pub(crate) fn find_byte(a: u8, hay: &[u8]) -> Option<usize> {
    find_either(a, a, hay)
}

/// The index of the first byte of `hay` equal to `a` or to `b`.
#[inline]
pub(crate) fn find_either(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
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
pub(crate) fn find_seq(needle: &[u8], hay: &[u8]) -> Option<usize> {
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

/// The portable fallback: SWAR over `usize` words (on `x86_64`, compiled for its tests only).
#[cfg(any(test, not(target_arch = "x86_64")))]
mod swar {
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
    pub(super) fn find(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
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
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };

    /// The index of the first byte equal to `a` or `b`.
    #[inline]
    pub(super) fn find(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
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

/// AVX2, 128 bytes per iteration, for CPUs that have it; one comparison per byte when both
/// needles are the same byte (the end sequence's first byte alone), two otherwise.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8,
    };

    /// Whether this CPU supports AVX2 (detected once; later calls read a cached flag).
    #[inline]
    pub(super) fn available() -> bool {
        std::is_x86_feature_detected!("avx2")
    }

    /// The index of the first byte equal to `a` or `b`.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2 ([`available`]).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn find(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
        if a == b {
            find_in::<false>(a, b, hay)
        } else {
            find_in::<true>(a, b, hay)
        }
    }

    /// [`find`], comparing each byte with `b` too when `TWO`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn find_in<const TWO: bool>(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
        let len = hay.len();
        let ptr = hay.as_ptr();
        let va = _mm256_set1_epi8(a as i8);
        let vb = _mm256_set1_epi8(b as i8);
        let hits = |v: __m256i| {
            if TWO {
                _mm256_or_si256(_mm256_cmpeq_epi8(v, va), _mm256_cmpeq_epi8(v, vb))
            } else {
                _mm256_cmpeq_epi8(v, va)
            }
        };
        // The first hit among 64 bytes whose halves' hits are `h0`, `h1`.
        let first = |h0: __m256i, h1: __m256i| {
            let m0 = _mm256_movemask_epi8(h0) as u32 as u64;
            let m1 = _mm256_movemask_epi8(h1) as u32 as u64;
            let m = m0 | (m1 << 32);
            (m != 0).then(|| m.trailing_zeros() as usize)
        };
        let mut i = 0;
        while i + 128 <= len {
            // SAFETY: the four loads read 32 bytes each at `ptr + i + 32 * k` (k < 4), inside
            // `hay` because `i + 128 <= len`; `_mm256_loadu_si256` has no alignment
            // requirement.
            let (v0, v1, v2, v3) = unsafe {
                let p = ptr.add(i) as *const __m256i;
                (
                    _mm256_loadu_si256(p),
                    _mm256_loadu_si256(p.add(1)),
                    _mm256_loadu_si256(p.add(2)),
                    _mm256_loadu_si256(p.add(3)),
                )
            };
            let (h0, h1, h2, h3) = (hits(v0), hits(v1), hits(v2), hits(v3));
            let any = _mm256_or_si256(_mm256_or_si256(h0, h1), _mm256_or_si256(h2, h3));
            if _mm256_movemask_epi8(any) != 0 {
                return first(h0, h1)
                    .or_else(|| first(h2, h3).map(|p| p + 64))
                    .map(|p| i + p);
            }
            i += 128;
        }
        while i + 64 <= len {
            // SAFETY: both loads read 32 bytes at `ptr + i` and `ptr + i + 32`, inside `hay`
            // because `i + 64 <= len`.
            let (v0, v1) = unsafe {
                let p = ptr.add(i) as *const __m256i;
                (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
            };
            if let Some(p) = first(hits(v0), hits(v1)) {
                return Some(i + p);
            }
            i += 64;
        }
        super::sse2::find(a, b, &hay[i..]).map(|p| i + p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification: the index of the first byte equal to `a` or `b`.
    fn naive(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
        hay.iter().position(|&x| x == a || x == b)
    }

    type Find = fn(u8, u8, &[u8]) -> Option<usize>;

    /// Every implementation this CPU can run, and the dispatching entry point.
    fn implementations() -> Vec<(&'static str, Find)> {
        let mut all: Vec<(&'static str, Find)> =
            vec![("swar", swar::find), ("dispatch", find_either)];
        #[cfg(target_arch = "x86_64")]
        {
            all.push(("sse2", sse2::find));
            if avx2::available() {
                fn avx2_find(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
                    // SAFETY: only listed after `avx2::available` has checked that this CPU
                    // supports AVX2.
                    unsafe { avx2::find(a, b, hay) }
                }
                all.push(("avx2", avx2_find));
            }
        }
        all
    }

    /// Room for a window of 150 bytes (past the 64-byte loop into the 16-byte loop and the
    /// tail) starting at any of 64 offsets, plus a byte on either side.
    const ROOM: usize = 1 + 64 + 150 + 1;

    /// One allocation, aligned to 64 bytes, so that the window starting at offset `s` of it
    /// starts at an address that is `s` modulo 64: every SIMD load alignment is reached.
    #[repr(align(64))]
    struct Aligned([u8; ROOM]);

    /// The window `buf[start..start + len]` of one buffer, for every start offset (so every
    /// alignment) and every length, with no match, a match at every position, and a second
    /// match after the first; a match just before and just after the window must not be seen.
    /// Every implementation must agree with the naive oracle.
    #[test]
    fn matches_the_oracle_at_every_alignment_of_one_buffer() {
        let implementations = implementations();
        for (a, b) in [
            (0x1C, 0x0B),
            (0x1C, 0x1C),
            (0x03, 0x02),
            (0x00, 0xFF),
            (0x80, 0x7F),
        ] {
            // Background bytes: neighbours of the needles' values, never the needles.
            let mut buf = Aligned([0; ROOM]);
            for (i, x) in buf.0.iter_mut().enumerate() {
                let v = (i as u8).wrapping_mul(7).wrapping_add(3) | 0x40;
                *x = if v == a || v == b { 0x41 } else { v };
            }
            let check = |buf: &[u8], start: usize, len: usize| {
                let hay = &buf[start..start + len];
                let want = naive(a, b, hay);
                for (name, find) in &implementations {
                    assert_eq!(
                        find(a, b, hay),
                        want,
                        "{name}: a={a:#04x} b={b:#04x} start={start} len={len} {hay:?}"
                    );
                }
                assert_eq!(find_byte(a, hay), naive(a, a, hay), "find_byte {hay:?}");
            };
            // Every alignment with lengths up to 80; longer windows at a few alignments.
            let shapes = (1..=64)
                .flat_map(|start| (0..=80).map(move |len| (start, len)))
                .chain((1..=4).flat_map(|start| (100..=150).map(move |len| (start, len))));
            for (start, len) in shapes {
                let buf = &mut buf.0;
                // Matches just outside the window.
                let (before, after) = (buf[start - 1], buf[start + len]);
                buf[start - 1] = a;
                buf[start + len] = b;
                check(buf, start, len);
                for pos in start..start + len {
                    let saved = buf[pos];
                    for needle in [a, b] {
                        buf[pos] = needle;
                        check(buf, start, len);
                        // A second match later must not win.
                        if pos + 3 < start + len {
                            let later = buf[pos + 3];
                            buf[pos + 3] = a;
                            check(buf, start, len);
                            buf[pos + 3] = later;
                        }
                    }
                    buf[pos] = saved;
                }
                buf[start - 1] = before;
                buf[start + len] = after;
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
