//! The PROXY protocol header (HAProxy's spec, v1 text and v2 binary) as Envoy's
//! `envoy.filters.listener.proxy_protocol` reads it: pure, given the connection's first bytes.
//! The caller peeks the socket, asks `parse`, and drains `Header::len` bytes once it is found,
//! so nothing past the header is ever consumed here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature (12 bytes), then version/command, family/transport and a 16-bit length.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED: usize = 16;
/// What starts a v1 line (Envoy's `PROXY_PROTO_V1_SIGNATURE`).
const V1_SIGNATURE: &[u8] = b"PROXY ";
/// The longest v1 line, CRLF included (the spec's 107 bytes).
pub const V1_MAX: usize = 107;
/// The most a header can take: v2's fixed part and a 16-bit length of addresses and TLVs.
pub const MAX_LEN: usize = V2_FIXED + u16::MAX as usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: Version,
    /// Bytes it takes on the wire (drained from the socket once parsed).
    pub len: usize,
    /// The client's address and the address it connected to; `None` for v1 `UNKNOWN` and the
    /// v2 `LOCAL` command (the connection's own addresses stand, as the spec says).
    pub addrs: Option<(SocketAddr, SocketAddr)>,
}

/// Which headers a listener takes (`disallowed_versions`), and whether a connection may come
/// without one (`allow_requests_without_proxy_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    pub v1: bool,
    pub v2: bool,
    pub optional: bool,
}

/// What the first bytes of a connection say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not decided yet: at least this many bytes are needed.
    More(usize),
    /// No header, and the listener takes connections without one: serve the bytes as they are.
    Absent,
    Found(Header),
    /// A well-formed start of a version `disallowed_versions` names.
    Denied(Version),
    /// Not a valid header (its version when that was known).
    Bad(Option<Version>),
}

/// Reads the header at the start of `buf` (the bytes peeked so far).
pub fn parse(buf: &[u8], a: Accept) -> Step {
    let v2_prefix = prefix_of(buf, &V2_SIGNATURE);
    let v1_prefix = prefix_of(buf, V1_SIGNATURE);
    if a.optional && !(a.v2 && v2_prefix) && !(a.v1 && v1_prefix) {
        return Step::Absent;
    }
    if v2_prefix {
        if buf.len() < V2_FIXED {
            return Step::More(V2_FIXED);
        }
        if !a.v2 {
            return Step::Denied(Version::V2);
        }
        return v2(buf);
    }
    if !v1_prefix {
        // Neither signature can follow: no sense waiting for more.
        return Step::Bad(None);
    }
    let window = buf.get(..buf.len().min(V1_MAX)).unwrap_or_default();
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= V1_MAX {
            return Step::Bad(Some(Version::V1));
        }
        return Step::More(buf.len() + 1);
    };
    if !a.v1 {
        return Step::Denied(Version::V1);
    }
    let len = end + 2;
    match buf.get(..end).and_then(v1_line) {
        Some(addrs) => Step::Found(Header {
            version: Version::V1,
            len,
            addrs,
        }),
        None => Step::Bad(Some(Version::V1)),
    }
}

/// Whether `buf` and `sig` agree on their common length.
fn prefix_of(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf.get(..n) == sig.get(..n)
}

/// A v1 line without its CRLF: `PROXY TCP4|TCP6 src dst sport dport`, or `PROXY UNKNOWN …`.
/// `Some(None)`: a valid line that carries no addresses.
fn v1_line(line: &[u8]) -> Option<Option<(SocketAddr, SocketAddr)>> {
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let parts: Vec<&str> = line.split(' ').collect();
    if parts.len() < 2 || parts.first() != Some(&"PROXY") {
        return None;
    }
    // UNKNOWN: the proxy could not tell; the rest of the line is ignored (the spec).
    if parts.get(1) == Some(&"UNKNOWN") {
        return Some(None);
    }
    let [_, family, src, dst, sport, dport] = parts.as_slice() else {
        return None;
    };
    let ip = |s: &str| -> Option<IpAddr> {
        match *family {
            "TCP4" => s.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            "TCP6" => s.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            _ => None,
        }
    };
    let port = |s: &str| -> Option<u16> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let from = SocketAddr::new(ip(src)?, port(sport)?);
    let to = SocketAddr::new(ip(dst)?, port(dport)?);
    unicast(from.ip()).then_some(())?;
    unicast(to.ip()).then_some(())?;
    Some(Some((from, to)))
}

/// TCP needs unicast addresses at both ends (Envoy checks each).
fn unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast(),
        IpAddr::V6(a) => !a.is_unspecified() && !a.is_multicast(),
    }
}

/// A v2 header whose 16 fixed bytes are in `buf`.
fn v2(buf: &[u8]) -> Step {
    let bad = Step::Bad(Some(Version::V2));
    let (Some(&ver_cmd), Some(&fam), Some(&hi), Some(&lo)) =
        (buf.get(12), buf.get(13), buf.get(14), buf.get(15))
    else {
        return Step::More(V2_FIXED);
    };
    if ver_cmd >> 4 != 2 {
        return bad;
    }
    let local = ver_cmd & 0x0f == 0;
    let addr_len = match (local, fam >> 4) {
        (true, _) => 0,
        (false, 1) => 12,
        (false, 2) => 36,
        // AF_UNIX and AF_UNSPEC with the PROXY command: Envoy closes the connection.
        _ => return bad,
    };
    let rest = usize::from(u16::from_be_bytes([hi, lo]));
    if rest < addr_len {
        return bad;
    }
    let len = V2_FIXED + rest;
    let Some(whole) = buf.get(..len) else {
        return Step::More(len);
    };
    if local {
        // A health check of the proxy's own: its addresses and TLVs are ignored.
        return Step::Found(Header {
            version: Version::V2,
            len,
            addrs: None,
        });
    }
    // Only PROXY (1) is left, over STREAM (1) or DGRAM (2).
    if ver_cmd & 0x0f != 1 || !matches!(fam & 0x0f, 1 | 2) {
        return bad;
    }
    let a = whole.get(V2_FIXED..V2_FIXED + addr_len).unwrap_or_default();
    let addrs = match addr_len {
        12 => {
            let ip = |i: usize| -> Option<IpAddr> {
                let b: [u8; 4] = a.get(i..i + 4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(b)))
            };
            v2_pair(a, ip(0), ip(4), 8)
        }
        _ => {
            let ip = |i: usize| -> Option<IpAddr> {
                let b: [u8; 16] = a.get(i..i + 16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            };
            v2_pair(a, ip(0), ip(16), 32)
        }
    };
    let Some((from, to)) = addrs else { return bad };
    if !unicast(from.ip()) || !unicast(to.ip()) {
        return bad;
    }
    if !tlvs_ok(whole.get(V2_FIXED + addr_len..).unwrap_or_default()) {
        return bad;
    }
    Step::Found(Header {
        version: Version::V2,
        len,
        addrs: Some((from, to)),
    })
}

/// Source and destination from their addresses and the two ports at `ports`.
fn v2_pair(
    a: &[u8],
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    ports: usize,
) -> Option<(SocketAddr, SocketAddr)> {
    let port = |i: usize| -> Option<u16> {
        let b: [u8; 2] = a.get(i..i + 2)?.try_into().ok()?;
        Some(u16::from_be_bytes(b))
    };
    Some((
        SocketAddr::new(src?, port(ports)?),
        SocketAddr::new(dst?, port(ports + 2)?),
    ))
}

/// The TLVs after the addresses are well formed (type, 16-bit length, value), each within the
/// header: Envoy refuses a header whose TLVs overrun it, even when it keeps none of them.
fn tlvs_ok(mut t: &[u8]) -> bool {
    while !t.is_empty() {
        let (Some(&hi), Some(&lo)) = (t.get(1), t.get(2)) else {
            return false;
        };
        let end = 3 + usize::from(u16::from_be_bytes([hi, lo]));
        match t.get(end..) {
            Some(rest) => t = rest,
            None => return false,
        }
    }
    true
}

/// The header baton writes first on an upstream connection (Envoy's upstream PROXY protocol
/// transport socket): the client `from` connected to `to`. v1 names both families as one
/// (`TCP6`, with IPv4 addresses mapped, when they differ); v2 without addresses is the `LOCAL`
/// command (Envoy's header when no downstream connection names a client).
pub fn header(version: Version, addrs: Option<(SocketAddr, SocketAddr)>) -> Vec<u8> {
    match (version, addrs) {
        (Version::V1, None) => b"PROXY UNKNOWN\r\n".to_vec(),
        (Version::V1, Some((from, to))) => {
            let (a, b) = match (from.ip(), to.ip()) {
                (IpAddr::V4(a), IpAddr::V4(b)) => return v1_text("TCP4", a, b, from, to),
                (a, b) => (v6(a), v6(b)),
            };
            v1_text("TCP6", a, b, from, to)
        }
        (Version::V2, None) => {
            let mut h = V2_SIGNATURE.to_vec();
            h.extend_from_slice(&[0x20, 0x00, 0, 0]);
            h
        }
        (Version::V2, Some((from, to))) => {
            let mut h = V2_SIGNATURE.to_vec();
            h.push(0x21);
            match (from.ip(), to.ip()) {
                (IpAddr::V4(a), IpAddr::V4(b)) => {
                    h.extend_from_slice(&[0x11, 0, 12]);
                    h.extend_from_slice(&a.octets());
                    h.extend_from_slice(&b.octets());
                }
                (a, b) => {
                    h.extend_from_slice(&[0x21, 0, 36]);
                    h.extend_from_slice(&v6(a).octets());
                    h.extend_from_slice(&v6(b).octets());
                }
            }
            h.extend_from_slice(&from.port().to_be_bytes());
            h.extend_from_slice(&to.port().to_be_bytes());
            h
        }
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

fn v1_text(
    family: &str,
    a: impl std::fmt::Display,
    b: impl std::fmt::Display,
    from: SocketAddr,
    to: SocketAddr,
) -> Vec<u8> {
    format!("PROXY {family} {a} {b} {} {}\r\n", from.port(), to.port()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Accept = Accept {
        v1: true,
        v2: true,
        optional: false,
    };

    fn found(buf: &[u8]) -> Header {
        match parse(buf, ALL) {
            Step::Found(h) => h,
            other => panic!("{other:?} for {buf:?}"),
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    pub(crate) fn v2_header(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn v4_body() -> Vec<u8> {
        let mut b = vec![192, 0, 2, 7, 10, 1, 2, 3];
        b.extend_from_slice(&5555u16.to_be_bytes());
        b.extend_from_slice(&443u16.to_be_bytes());
        b
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let h = found(b"PROXY TCP4 192.0.2.7 10.1.2.3 5555 443\r\nGET / HTTP/1.1\r\n");
        assert_eq!(h.len, 40);
        assert_eq!(h.version, Version::V1);
        assert_eq!(
            h.addrs,
            Some((addr("192.0.2.7:5555"), addr("10.1.2.3:443")))
        );
        let h = found(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n");
        assert_eq!(
            h.addrs,
            Some((addr("[2001:db8::1]:1"), addr("[2001:db8::2]:65535")))
        );
        let h = found(b"PROXY UNKNOWN\r\nx");
        assert_eq!((h.len, h.addrs), (15, None));
        let h = found(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n");
        assert_eq!(h.addrs, None);
    }

    #[test]
    fn v1_malformed_lines_are_bad() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 10.1.2.3 5555\r\n"[..],
            b"PROXY TCP4 192.0.2.7  10.1.2.3 5555 443\r\n",
            b"PROXY TCP4 2001:db8::1 10.1.2.3 5555 443\r\n",
            b"PROXY TCP6 192.0.2.7 10.1.2.3 5555 443\r\n",
            b"PROXY TCP4 192.0.2.7 10.1.2.3 5555 65536\r\n",
            b"PROXY TCP4 192.0.2.7 10.1.2.3 +555 443\r\n",
            b"PROXY TCP4 0.0.0.0 10.1.2.3 5555 443\r\n",
            b"PROXY TCP4 192.0.2.7 224.0.0.1 5555 443\r\n",
            b"PROXY UDP4 192.0.2.7 10.1.2.3 5555 443\r\n",
            b"PROXY \r\n",
        ] {
            assert_eq!(parse(bad, ALL), Step::Bad(Some(Version::V1)), "{bad:?}");
        }
        // Not a header at all.
        assert_eq!(parse(b"GET / HTTP/1.1\r\n", ALL), Step::Bad(None));
        // No CRLF within 107 bytes.
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(V1_MAX, b'1');
        assert_eq!(parse(&long, ALL), Step::Bad(Some(Version::V1)));
    }

    #[test]
    fn split_headers_ask_for_more() {
        let line = b"PROXY TCP4 192.0.2.7 10.1.2.3 5555 443\r\n";
        for n in 0..line.len() {
            assert!(
                matches!(parse(&line[..n], ALL), Step::More(m) if m > n),
                "{n}"
            );
        }
        let h = v2_header(1, 0x11, &v4_body());
        for n in 0..h.len() {
            assert!(matches!(parse(&h[..n], ALL), Step::More(m) if m > n), "{n}");
        }
        assert!(matches!(parse(&h, ALL), Step::Found(_)));
    }

    #[test]
    fn v2_inet_inet6_local_and_tlvs() {
        let mut h = v2_header(1, 0x11, &v4_body());
        h.extend_from_slice(b"rest");
        let got = found(&h);
        assert_eq!(got.len, 28);
        assert_eq!(
            got.addrs,
            Some((addr("192.0.2.7:5555"), addr("10.1.2.3:443")))
        );
        let mut b6 = Vec::new();
        b6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        b6.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        b6.extend_from_slice(&[0, 80, 1, 187]);
        let got = found(&v2_header(1, 0x21, &b6));
        assert_eq!(
            got.addrs,
            Some((addr("[2001:db8::1]:80"), addr("[2001:db8::2]:443")))
        );
        // LOCAL: no addresses, whatever follows (even an AF_UNIX block) is skipped.
        let got = found(&v2_header(0, 0x31, &[0; 216]));
        assert_eq!((got.len, got.addrs), (232, None));
        // TLVs are skipped when well formed.
        let mut body = v4_body();
        body.extend_from_slice(&[0x01, 0, 2, b'h', b'2', 0x05, 0, 0]);
        assert_eq!(found(&v2_header(1, 0x11, &body)).len, 16 + 12 + 8);
    }

    #[test]
    fn v2_refusals() {
        let bad = Step::Bad(Some(Version::V2));
        // AF_UNIX with PROXY, AF_UNSPEC with PROXY.
        assert_eq!(parse(&v2_header(1, 0x31, &[0; 216]), ALL), bad);
        assert_eq!(parse(&v2_header(1, 0x00, &[]), ALL), bad);
        // Version 1 in the v2 framing; an unknown command; an unknown transport.
        let mut h = v2_header(1, 0x11, &v4_body());
        h[12] = 0x11;
        assert_eq!(parse(&h, ALL), bad);
        assert_eq!(parse(&v2_header(2, 0x11, &v4_body()), ALL), bad);
        assert_eq!(parse(&v2_header(1, 0x13, &v4_body()), ALL), bad);
        // Length shorter than the addresses; a TLV running past the header.
        assert_eq!(parse(&v2_header(1, 0x11, &v4_body()[..8]), ALL), bad);
        let mut body = v4_body();
        body.extend_from_slice(&[0x01, 0, 9, b'x']);
        assert_eq!(parse(&v2_header(1, 0x11, &body), ALL), bad);
        let mut body = v4_body();
        body.extend_from_slice(&[0x01, 0]);
        assert_eq!(parse(&v2_header(1, 0x11, &body), ALL), bad);
    }

    /// The fuzz harness's properties over deterministic mutations of valid headers (the
    /// libFuzzer target explores further; this keeps a stable-toolchain check).
    #[test]
    fn mutated_headers_keep_the_fuzz_properties() {
        let mut rng = crate::util::Rng::with_seed(0x5eed);
        let mut seeds = vec![
            b"PROXY TCP4 192.0.2.7 10.1.2.3 5555 443\r\nGET /".to_vec(),
            b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
        ];
        let mut body = v4_body();
        body.extend_from_slice(&[0x01, 0, 2, b'h', b'2']);
        seeds.push(v2_header(1, 0x11, &body));
        seeds.push(v2_header(0, 0x00, &[]));
        for i in 0..20_000u64 {
            let mut d = seeds[(i % seeds.len() as u64) as usize].clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(d.len() as u64 + 1) as usize;
                match rng.below(4) {
                    0 if at < d.len() => d[at] = rng.next_u64() as u8,
                    1 => d.insert(at, rng.next_u64() as u8),
                    2 => d.truncate(at),
                    _ if at < d.len() => d[at] ^= 1 << rng.below(8),
                    _ => {}
                }
            }
            d.insert(0, rng.below(8) as u8);
            crate::fuzz_harness::proxy_protocol(&d);
        }
    }

    #[test]
    fn written_headers_read_back() {
        let pairs = [
            (addr("192.0.2.7:5555"), addr("10.1.2.3:443")),
            (addr("[2001:db8::1]:1"), addr("[2001:db8::2]:2")),
        ];
        for v in [Version::V1, Version::V2] {
            for p in pairs {
                let h = header(v, Some(p));
                assert_eq!(found(&h).addrs, Some(p), "{v:?} {p:?}");
                assert_eq!(found(&h).len, h.len());
            }
            assert_eq!(found(&header(v, None)).addrs, None);
        }
        assert_eq!(
            header(Version::V1, Some(pairs[0])),
            b"PROXY TCP4 192.0.2.7 10.1.2.3 5555 443\r\n"
        );
        // Mixed families: both as IPv6.
        let mixed = (addr("192.0.2.7:1"), addr("[2001:db8::2]:2"));
        let back = found(&header(Version::V1, Some(mixed))).addrs;
        assert_eq!(back, Some((addr("[::ffff:192.0.2.7]:1"), mixed.1)));
    }

    #[test]
    fn optional_and_disallowed_versions() {
        let opt = Accept {
            optional: true,
            ..ALL
        };
        assert_eq!(parse(b"GET / HTTP/1.1\r\n", opt), Step::Absent);
        assert_eq!(parse(b"\x16\x03\x01", opt), Step::Absent);
        assert_eq!(parse(b"PRO", opt), Step::More(4));
        assert!(matches!(parse(b"PROXY UNKNOWN\r\n", opt), Step::Found(_)));
        let no_v1 = Accept { v1: false, ..ALL };
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n", no_v1),
            Step::Denied(Version::V1)
        );
        let no_v2 = Accept { v2: false, ..ALL };
        assert_eq!(
            parse(&v2_header(1, 0x11, &v4_body()), no_v2),
            Step::Denied(Version::V2)
        );
        // Optional and v1 disallowed: a v1 line is just bytes.
        let opt_no_v1 = Accept {
            v1: false,
            optional: true,
            ..ALL
        };
        assert_eq!(parse(b"PROXY UNKNOWN\r\n", opt_no_v1), Step::Absent);
    }
}
