//! Just enough DER to read a certificate's subject (for `%DOWNSTREAM_PEER_SUBJECT%`) and its
//! subject alternative names (for `match_typed_subject_alt_names`). rustls verifies the
//! certificate; this only reads fields of one it already accepted. Every read is bounds
//! checked: a malformed certificate yields `None`, never a panic.

use crate::config::SanType;

/// One DER element: (tag, contents, what follows it).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    Some((tag, b.get(hdr..end)?, b.get(end..)?))
}

/// The elements of a constructed value, in order.
fn children(mut b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, v, rest) = tlv(b)?;
        b = rest;
        Some((tag, v))
    })
}

/// TBSCertificate's fields: (subject, extensions) contents.
fn tbs_parts(cert: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let (_, c, _) = tlv(cert)?;
    let (_, tbs, _) = tlv(c)?;
    let mut fields = children(tbs).peekable();
    if fields.peek().is_some_and(|(t, _)| *t == 0xa0) {
        fields.next(); // version
    }
    // serial, signature, issuer, validity, subject
    let subject = fields.nth(4)?.1;
    let ext = fields.find(|(t, _)| *t == 0xa3).map(|(_, v)| v);
    Some((subject, ext))
}

const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];

/// The subject alternative names of the certificate, with their types.
pub fn sans(cert: &[u8]) -> Vec<(SanType, String)> {
    let mut out = Vec::new();
    let Some((_, Some(ext))) = tbs_parts(cert) else {
        return out;
    };
    let Some((_, list, _)) = tlv(ext) else {
        return out;
    };
    for (_, e) in children(list) {
        let mut parts = children(e);
        if parts.next().map(|(_, oid)| oid) != Some(SAN_OID) {
            continue;
        }
        let Some((_, value)) = parts.find(|(t, _)| *t == 0x04) else {
            continue;
        };
        let Some((_, names, _)) = tlv(value) else {
            continue;
        };
        for (tag, v) in children(names) {
            let item = match tag {
                0x81 => (SanType::Email, String::from_utf8_lossy(v).into_owned()),
                0x82 => (SanType::Dns, String::from_utf8_lossy(v).into_owned()),
                0x86 => (SanType::Uri, String::from_utf8_lossy(v).into_owned()),
                0x87 => match v.len() {
                    4 => {
                        let a: [u8; 4] = [v[0], v[1], v[2], v[3]];
                        (SanType::IpAddress, std::net::Ipv4Addr::from(a).to_string())
                    }
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(v);
                        (SanType::IpAddress, std::net::Ipv6Addr::from(a).to_string())
                    }
                    _ => continue,
                },
                _ => continue,
            };
            out.push(item);
        }
    }
    out
}

/// The subject as RFC 2253 text (`CN=client,O=Example`), as Envoy prints it.
pub fn subject(cert: &[u8]) -> Option<String> {
    let (name, _) = tbs_parts(cert)?;
    let mut rdns: Vec<String> = Vec::new();
    for (_, set) in children(name) {
        let mut parts = Vec::new();
        for (_, atv) in children(set) {
            let mut f = children(atv);
            let oid = f.next()?.1;
            let (tag, val) = f.next()?;
            let text = match tag {
                0x1e => {
                    let units: Vec<u16> = val
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    String::from_utf16_lossy(&units)
                }
                _ => String::from_utf8_lossy(val).into_owned(),
            };
            parts.push(format!("{}={}", attr_name(oid), escape(&text)));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

fn attr_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x09] => "STREET".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x55, 0x04, 0x05] => "serialNumber".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".into(),
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID".into(),
        _ => dotted(oid),
    }
}

fn dotted(oid: &[u8]) -> String {
    let mut out = String::new();
    let mut v: u64 = 0;
    for (i, &b) in oid.iter().enumerate() {
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if out.is_empty() {
                let (a, rest) = if v < 80 {
                    (v / 40, v % 40)
                } else {
                    (2, v - 80)
                };
                out = format!("{a}.{rest}");
            } else {
                out.push_str(&format!(".{v}"));
            }
            v = 0;
        }
        if i > 64 {
            break;
        }
    }
    out
}

/// RFC 2253 escaping of an attribute value.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == s.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u32;
        for len in 0..300 {
            let mut b = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b.push((seed >> 16) as u8);
            }
            if let Some(first) = b.first_mut() {
                *first = 0x30;
            }
            let _ = subject(&b);
            let _ = sans(&b);
        }
        assert_eq!(subject(&[]), None);
        assert!(sans(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_empty());
    }

    #[test]
    fn escapes_and_oids() {
        assert_eq!(escape("a,b"), "a\\,b");
        assert_eq!(escape(" x "), "\\ x\\ ");
        assert_eq!(dotted(&[0x2a, 0x03]), "1.2.3");
    }
}
