//! Small self-contained pieces the proxy needs and that are not worth a dependency: an index
//! slab for connection tokens, an HTTP date formatter, and a fast non-cryptographic RNG for load
//! balancing and request ids.

use std::time::{SystemTime, UNIX_EPOCH};

/// A vector of slots with a free list: O(1) insert/remove with stable indices (used as tokens).
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Option<T>>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub fn insert(&mut self, v: T) -> usize {
        self.len += 1;
        if let Some(i) = self.free.pop() {
            self.slots[i] = Some(v);
            i
        } else {
            self.slots.push(Some(v));
            self.slots.len() - 1
        }
    }

    /// The index the next `insert` will use (so a value can know its own token).
    pub fn next_key(&self) -> usize {
        self.free.last().copied().unwrap_or(self.slots.len())
    }

    pub fn remove(&mut self, i: usize) -> Option<T> {
        let v = self.slots.get_mut(i)?.take();
        if v.is_some() {
            self.len -= 1;
            self.free.push(i);
        }
        v
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.slots.get(i)?.as_ref()
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.slots.get_mut(i)?.as_mut()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Indices of occupied slots (a snapshot, so the caller may mutate while iterating).
    pub fn keys(&self) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|_| i))
            .collect()
    }
}

/// xorshift64*: fast, good enough for picking hosts and request ids; never for secrets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn from_entropy() -> Rng {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        let seed = t ^ (u64::from(std::process::id()) << 32) ^ 0x2545_f491_4f6c_dd1d;
        Rng(if seed == 0 { 1 } else { seed })
    }

    /// A fixed sequence, for deterministic simulations and tests.
    pub fn with_seed(seed: u64) -> Rng {
        Rng(if seed == 0 { 1 } else { seed })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }
}

/// Request ids (x-request-id) as RFC 9562 version 4 UUIDs from the kernel's CSPRNG
/// (getrandom(2)), fetched 4 KiB at a time so one system call serves 256 ids. Unlike the load
/// balancer's xorshift `Rng`, one id says nothing about the next.
pub struct RequestIds {
    buf: Box<[u8; 4096]>,
    pos: usize,
    /// Used only if the kernel has no getrandom (before Linux 3.17): seeded from the clock.
    fallback: Option<Rng>,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            buf: Box::new([0; 4096]),
            pos: 4096,
            fallback: None,
        }
    }
}

impl RequestIds {
    /// 16 random bytes.
    fn next16(&mut self) -> [u8; 16] {
        if self.pos + 16 > self.buf.len() && !self.refill() {
            let r = self.fallback.get_or_insert_with(|| {
                log::warn!("getrandom unavailable: request ids fall back to a seeded generator");
                Rng::from_entropy()
            });
            let (a, b) = (r.next_u64(), r.next_u64());
            let mut out = [0u8; 16];
            out[..8].copy_from_slice(&a.to_be_bytes());
            out[8..].copy_from_slice(&b.to_be_bytes());
            return out;
        }
        let mut out = [0u8; 16];
        if let Some(src) = self.buf.get(self.pos..self.pos + 16) {
            out.copy_from_slice(src);
        }
        self.pos += 16;
        out
    }

    fn refill(&mut self) -> bool {
        let mut filled = 0;
        while filled < self.buf.len() {
            let Some(rest) = self.buf.get_mut(filled..) else {
                break;
            };
            // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes.
            let n = unsafe { nix::libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
            if n > 0 {
                filled += n as usize;
            } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return false;
            }
        }
        self.pos = 0;
        true
    }

    /// A random (version 4) UUID in its usual text form. Written digit by digit: `format!`
    /// here was a tenth of the per-request cost.
    pub fn uuid4(&mut self) -> String {
        let bytes = self.next16();
        uuid4_text(bytes)
    }

    /// `uuid4` as bytes on the stack (the request path writes it straight into a head).
    pub fn uuid4_bytes(&mut self) -> [u8; 36] {
        let bytes = self.next16();
        uuid4_ascii(bytes)
    }
}

/// The text form of 16 random bytes as a version 4, variant 1 UUID.
pub fn uuid4_text(b: [u8; 16]) -> String {
    // Hex digits and dashes only, so this never fails.
    String::from_utf8(uuid4_ascii(b).to_vec()).unwrap_or_default()
}

/// `uuid4_text` without the allocation. Each byte's two digits go to a fixed place in a
/// template that already holds the dashes (it is on every request without an x-request-id).
fn uuid4_ascii(mut b: [u8; 16]) -> [u8; 36] {
    /// Where each byte's two hex digits start in `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = *b"00000000-0000-0000-0000-000000000000";
    for (byte, at) in b.into_iter().zip(AT) {
        out[at] = HEX[usize::from(byte >> 4)];
        out[at + 1] = HEX[usize::from(byte & 0xf)];
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A multiply-rotate hasher for small trusted keys on the hot path (pool addresses, domain
/// names from our own config). SipHash's DoS resistance buys nothing for keys a peer cannot
/// choose, and it showed up in profiles.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    // Integers straight to the mix: the default methods go through `write`'s chunk loop
    // (a `SocketAddr`'s port and discriminant are hashed on every pool look-up). These maps
    // are only looked up, never iterated into output, so the changed hashes show nowhere.
    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

/// `n`'s digits in `RADIX` (10 or 16), right-aligned in a stack buffer: (buffer, first index).
/// A constant radix lets the compiler divide by multiplying; decimal goes two digits a step
/// (it runs a few times per request: status, content-length, timings).
#[inline]
pub fn digits<const RADIX: u64>(mut n: u64) -> ([u8; 20], usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    if RADIX == 10 {
        // u64::MAX has 20 digits: at most 9 pairs here, then one or two digits below.
        while n >= 100 {
            let pair = (n % 100) as usize * 2;
            n /= 100;
            i -= 2;
            tmp[i..i + 2].copy_from_slice(&DEC_PAIRS[pair..pair + 2]);
        }
        if n >= 10 {
            let pair = n as usize * 2;
            i -= 2;
            tmp[i..i + 2].copy_from_slice(&DEC_PAIRS[pair..pair + 2]);
        } else {
            i -= 1;
            tmp[i] = b'0' + n as u8;
        }
        return (tmp, i);
    }
    loop {
        i -= 1;
        tmp[i] = HEX[(n % RADIX) as usize];
        n /= RADIX;
        if n == 0 {
            return (tmp, i);
        }
    }
}

/// "00" to "99", for writing decimal two digits at a time.
const DEC_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `n` in decimal (no allocation, no formatter).
pub fn push_dec(out: &mut Vec<u8>, n: u64) {
    let (tmp, i) = digits::<10>(n);
    out.extend_from_slice(&tmp[i..]);
}

/// Appends `n` in decimal, zero-padded to `width` digits (timestamps).
pub fn push_dec_padded(out: &mut Vec<u8>, n: u64, width: usize) {
    let (tmp, i) = digits::<10>(n);
    for _ in (tmp.len() - i)..width {
        out.push(b'0');
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Appends `n` in decimal, zero-padded to `width` digits, to a `String` (access-log lines).
pub fn push_num(out: &mut String, n: u64, width: usize) {
    let (tmp, i) = digits::<10>(n);
    for _ in (tmp.len() - i)..width {
        out.push('0');
    }
    // ASCII digits only, so this never fails.
    out.push_str(std::str::from_utf8(&tmp[i..]).unwrap_or("0"));
}

/// Appends `n` in lower-case hex (chunk sizes).
pub fn push_hex(out: &mut Vec<u8>, n: u64) {
    let (tmp, i) = digits::<16>(n);
    out.extend_from_slice(&tmp[i..]);
}

/// Appends an IP address as text (IPv4 by hand: it is on every request's X-Forwarded-For).
pub fn push_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_dec(out, u64::from(o));
            }
        }
        std::net::IpAddr::V6(v6) => out.extend_from_slice(v6.to_string().as_bytes()),
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats a Unix time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the Date format.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The current time as an HTTP date.
pub fn http_date_now() -> String {
    http_date(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

/// Gives freed heap memory back to the OS. glibc keeps freed chunks in its arenas, and free
/// pages between live allocations stay resident until trimmed; after a burst of connections
/// that is most of the burst's memory. A no-op on other C libraries.
pub fn release_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; any pad is valid.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_known_values() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn number_and_ip_writers_match_std() {
        let mut edges = vec![0u64, 7, 9, 10, 11, 99, 100, 101, 255, 999, 1000, 1 << 20];
        edges.extend([u64::MAX, u64::MAX - 1, 10u64.pow(19), 10u64.pow(19) - 1]);
        edges.extend((1..20).flat_map(|k| [10u64.pow(k) - 1, 10u64.pow(k), 10u64.pow(k) + 1]));
        edges.extend((0..2000).chain((0..64).map(|k| 1u64 << k)));
        for n in edges {
            let mut v = Vec::new();
            push_dec(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
            let mut h = Vec::new();
            push_hex(&mut h, n);
            assert_eq!(h, format!("{n:x}").as_bytes());
        }
        for ip in ["127.0.0.1", "0.0.0.0", "255.10.9.1", "::1", "fe80::1"] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut v = Vec::new();
            push_ip(&mut v, ip);
            assert_eq!(v, ip.to_string().as_bytes());
        }
    }

    #[test]
    fn string_writers_match_std() {
        for (n, w) in [(0u64, 0usize), (7, 3), (1234, 2), (5, 9)] {
            let mut s = String::new();
            push_num(&mut s, n, w);
            assert_eq!(s, format!("{n:0w$}"));
        }
        for (n, w) in [(0u64, 4usize), (7, 2), (2026, 4), (123, 2)] {
            let mut v = Vec::new();
            push_dec_padded(&mut v, n, w);
            assert_eq!(v, format!("{n:0w$}").as_bytes());
        }
    }

    #[test]
    fn slab_reuses_slots() {
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        let c = s.insert("c");
        assert_eq!(c, a);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 2);
        assert_eq!(s.keys(), vec![a, b]);
    }

    #[test]
    fn rng_below_stays_in_range_and_uuid_shape() {
        let mut r = Rng::from_entropy();
        for _ in 0..1000 {
            assert!(r.below(7) < 7);
        }
        let mut ids = RequestIds::default();
        let u = ids.uuid4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(u.matches('-').count(), 4);
        // Different every time, across a refill of the 4 KiB pool.
        let all: std::collections::HashSet<String> = (0..600).map(|_| ids.uuid4()).collect();
        assert_eq!(all.len(), 600);
        assert_eq!(
            uuid4_text([0xff; 16]),
            "ffffffff-ffff-4fff-bfff-ffffffffffff"
        );
        let counting: [u8; 16] = std::array::from_fn(|i| (i as u8) * 17);
        assert_eq!(uuid4_text(counting), "00112233-4455-4677-8899-aabbccddeeff");
        assert_eq!(uuid4_text([0; 16]), "00000000-0000-4000-8000-000000000000");
    }
}
