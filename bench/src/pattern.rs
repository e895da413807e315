//! The deterministic body content the tools send and the checksum they compare, so a test can
//! prove that 100 MiB came through unchanged without holding it in memory.

/// Byte at offset `i` of every generated body: `a..z` repeating (printable, so a truncated
/// body is readable in a failure message).
pub fn byte_at(i: u64) -> u8 {
    b'a' + (i % 26) as u8
}

/// Fills `buf` with the pattern starting at body offset `offset`.
pub fn fill(offset: u64, buf: &mut [u8]) {
    let start = (offset % 26) as u8;
    for (i, b) in buf.iter_mut().enumerate() {
        *b = b'a' + ((start as usize + i) % 26) as u8;
    }
}

/// A block of pattern bytes that starts at a multiple of 26, reusable for any aligned offset.
pub fn block(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill(0, &mut v);
    v
}

/// 64-bit FNV-1a, streaming. Not cryptographic: it only has to catch lost, duplicated or
/// reordered bytes.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn update(&mut self, data: &[u8]) {
        let mut h = self.0;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// Checksum of the first `len` pattern bytes, as `/sink` would report for a pattern upload.
pub fn pattern_checksum(len: u64) -> u64 {
    let blk = block(26 * 2521); // 65,546 bytes, a multiple of 26
    let mut h = Fnv::default();
    let mut left = len;
    while left > 0 {
        let n = left.min(blk.len() as u64) as usize;
        h.update(&blk[..n]);
        left -= n as u64;
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_matches_byte_at_at_any_offset() {
        let mut buf = [0u8; 100];
        fill(1234, &mut buf);
        for (i, b) in buf.iter().enumerate() {
            assert_eq!(*b, byte_at(1234 + i as u64));
        }
    }

    #[test]
    fn checksum_of_pattern_equals_streamed_checksum() {
        let mut h = Fnv::default();
        let mut buf = vec![0u8; 1000];
        let mut off = 0;
        while off < 100_000 {
            fill(off, &mut buf);
            h.update(&buf);
            off += 1000;
        }
        assert_eq!(h.finish(), pattern_checksum(100_000));
        assert_ne!(pattern_checksum(100_000), pattern_checksum(99_999));
    }
}
