//! The little of MessagePack the Datadog agent's `/v0.4/traces` needs: arrays, maps,
//! strings, integers and doubles, each in its smallest encoding (as the spec asks:
//! <https://github.com/msgpack/msgpack/blob/master/spec.md>). Writes only; nothing here
//! can fail.

/// An array of `n` elements follows.
pub fn array(out: &mut Vec<u8>, n: usize) {
    header(out, n, 0x90, 0xdc, 0xdd);
}

/// A map of `n` key/value pairs follows.
pub fn map(out: &mut Vec<u8>, n: usize) {
    header(out, n, 0x80, 0xde, 0xdf);
}

/// A fixarray/fixmap for under 16, else the 16- or 32-bit form (a length beyond 32 bits
/// cannot be built in memory here).
fn header(out: &mut Vec<u8>, n: usize, fix: u8, b16: u8, b32: u8) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(b16);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// A UTF-8 string.
pub fn str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if let Ok(n) = u8::try_from(n) {
        out.push(0xd9);
        out.push(n);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xda);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

/// An unsigned integer.
pub fn uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else if let Ok(v) = u8::try_from(v) {
        out.extend_from_slice(&[0xcc, v]);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(0xcd);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(0xce);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// A signed integer (a non-negative one as `uint`).
pub fn int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        return uint(out, v as u64);
    }
    if v >= -32 {
        out.push(v as i8 as u8);
    } else if let Ok(v) = i8::try_from(v) {
        out.extend_from_slice(&[0xd0, v as u8]);
    } else if let Ok(v) = i16::try_from(v) {
        out.push(0xd1);
        out.extend_from_slice(&v.to_be_bytes());
    } else if let Ok(v) = i32::try_from(v) {
        out.push(0xd2);
        out.extend_from_slice(&v.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// A 64-bit float (the agent reads `metrics` values as doubles).
pub fn f64(out: &mut Vec<u8>, v: f64) {
    out.push(0xcb);
    out.extend_from_slice(&v.to_bits().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn each_value_takes_its_smallest_form() {
        assert_eq!(enc(|o| uint(o, 0)), [0x00]);
        assert_eq!(enc(|o| uint(o, 127)), [0x7f]);
        assert_eq!(enc(|o| uint(o, 128)), [0xcc, 0x80]);
        assert_eq!(enc(|o| uint(o, 256)), [0xcd, 0x01, 0x00]);
        assert_eq!(enc(|o| uint(o, 65_536)), [0xce, 0, 1, 0, 0]);
        assert_eq!(
            enc(|o| uint(o, u64::MAX)),
            [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(enc(|o| int(o, 1)), [0x01]);
        assert_eq!(enc(|o| int(o, -1)), [0xff]);
        assert_eq!(enc(|o| int(o, -32)), [0xe0]);
        assert_eq!(enc(|o| int(o, -33)), [0xd0, 0xdf]);
        assert_eq!(enc(|o| int(o, -129)), [0xd1, 0xff, 0x7f]);
        assert_eq!(enc(|o| int(o, -40_000)), [0xd2, 0xff, 0xff, 0x63, 0xc0]);
        assert_eq!(enc(|o| int(o, i64::MIN))[0], 0xd3);
        assert_eq!(enc(|o| str(o, "")), [0xa0]);
        assert_eq!(enc(|o| str(o, "ab")), [0xa2, b'a', b'b']);
        let s32 = "x".repeat(32);
        assert_eq!(enc(|o| str(o, &s32))[..2], [0xd9, 32]);
        let s256 = "x".repeat(256);
        assert_eq!(enc(|o| str(o, &s256))[..3], [0xda, 1, 0]);
        let s70k = "x".repeat(70_000);
        assert_eq!(enc(|o| str(o, &s70k))[..5], [0xdb, 0, 1, 0x11, 0x70]);
        assert_eq!(enc(|o| array(o, 1)), [0x91]);
        assert_eq!(enc(|o| array(o, 16)), [0xdc, 0, 16]);
        assert_eq!(enc(|o| array(o, 70_000))[0], 0xdd);
        assert_eq!(enc(|o| map(o, 12)), [0x8c]);
        assert_eq!(enc(|o| map(o, 16)), [0xde, 0, 16]);
        assert_eq!(enc(|o| f64(o, 1.0)), [0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]);
    }
}
