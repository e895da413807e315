//! Just enough protocol buffers (the binary wire format) for the few messages baton exchanges
//! over gRPC: varints, length-delimited fields (strings, bytes, nested messages, map entries,
//! which are nested messages of key 1 and value 2), and a reader that walks a message's fields
//! and skips the ones it is not asked about. Hand-rolled so that no code generator or
//! dependency comes in for a handful of fields.

/// Wire types (the low 3 bits of a field's key).
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// Appends `v` as a base-128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u64) {
    put_varint(out, (u64::from(field) << 3) | wire);
}

/// Appends field `field` as a varint (proto3: a zero is not written).
pub fn put_uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_key(out, field, VARINT);
        put_varint(out, v);
    }
}

/// Appends field `field` as an `int64` (negative numbers take ten bytes, as protobuf writes them).
pub fn put_int(out: &mut Vec<u8>, field: u32, v: i64) {
    put_uint(out, field, v as u64);
}

/// Appends field `field` as bytes or a string (proto3: an empty one is not written).
pub fn put_bytes(out: &mut Vec<u8>, field: u32, v: &[u8]) {
    if !v.is_empty() {
        put_len(out, field, v);
    }
}

/// Appends a length-delimited field even when empty (a nested message that is present).
fn put_len(out: &mut Vec<u8>, field: u32, v: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// Appends field `field` as a nested message that `build` writes (present even when empty).
pub fn put_message(out: &mut Vec<u8>, field: u32, build: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    build(&mut inner);
    put_len(out, field, &inner);
}

/// Appends one entry of a `map<string, string>` field.
pub fn put_map_entry(out: &mut Vec<u8>, field: u32, key: &[u8], value: &[u8]) {
    put_message(out, field, |e| {
        put_bytes(e, 1, key);
        put_bytes(e, 2, value);
    });
}

/// A field's value as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    /// Length-delimited: bytes, a string, a nested message or a packed list.
    Bytes(&'a [u8]),
    /// A fixed32 or fixed64 (read as little-endian, widened).
    Fixed(u64),
}

impl<'a> Value<'a> {
    pub fn varint(self) -> Option<u64> {
        match self {
            Value::Varint(v) => Some(v),
            _ => None,
        }
    }

    pub fn bytes(self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// The message is not valid protobuf (a truncated field, an overlong varint, a group or an
/// unknown wire type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, Malformed> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or(Malformed)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Malformed)
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], Malformed> {
    let end = pos.checked_add(n).ok_or(Malformed)?;
    let s = buf.get(*pos..end).ok_or(Malformed)?;
    *pos = end;
    Ok(s)
}

/// Walks the fields of `msg` in order: `each(field number, value)`. A field may repeat (the
/// caller keeps the last of a singular one, every one of a repeated one, as protobuf reads
/// them).
pub fn fields<'a>(
    msg: &'a [u8],
    mut each: impl FnMut(u32, Value<'a>) -> Result<(), Malformed>,
) -> Result<(), Malformed> {
    let mut pos = 0;
    while pos < msg.len() {
        let key = varint(msg, &mut pos)?;
        let field = u32::try_from(key >> 3).map_err(|_| Malformed)?;
        if field == 0 {
            return Err(Malformed);
        }
        let v = match key & 7 {
            VARINT => Value::Varint(varint(msg, &mut pos)?),
            FIXED64 => {
                let b = take(msg, &mut pos, 8)?;
                Value::Fixed(u64::from_le_bytes(b.try_into().map_err(|_| Malformed)?))
            }
            LEN => {
                let n = usize::try_from(varint(msg, &mut pos)?).map_err(|_| Malformed)?;
                Value::Bytes(take(msg, &mut pos, n)?)
            }
            FIXED32 => {
                let b = take(msg, &mut pos, 4)?;
                Value::Fixed(u64::from(u32::from_le_bytes(
                    b.try_into().map_err(|_| Malformed)?,
                )))
            }
            _ => return Err(Malformed),
        };
        each(field, v)?;
    }
    Ok(())
}

/// A string field's text: protobuf requires UTF-8 in `string` fields.
pub fn text(v: Value<'_>) -> Result<String, Malformed> {
    let b = v.bytes().ok_or(Malformed)?;
    std::str::from_utf8(b)
        .map(str::to_string)
        .map_err(|_| Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let mut m = Vec::new();
        put_uint(&mut m, 1, 300);
        put_bytes(&mut m, 2, b"hi");
        put_message(&mut m, 3, |i| put_uint(i, 1, 7));
        put_map_entry(&mut m, 4, b"k", b"v");
        put_int(&mut m, 5, -1);
        put_uint(&mut m, 6, 0); // proto3: not written
        assert_eq!(&m[..3], [0x08, 0xac, 0x02]);
        let mut seen = Vec::new();
        fields(&m, |f, v| {
            seen.push((f, v));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[0], (1, Value::Varint(300)));
        assert_eq!(seen[1], (2, Value::Bytes(b"hi")));
        assert_eq!(seen[2], (3, Value::Bytes(&[0x08, 7])));
        assert_eq!(seen[3], (4, Value::Bytes(&[0x0a, 1, b'k', 0x12, 1, b'v'])));
        assert_eq!(seen[4], (5, Value::Varint(u64::MAX)));
    }

    #[test]
    fn broken_messages_are_refused_not_trusted() {
        for bad in [
            &[0x0a, 5, b'a'][..], // length past the end
            &[0x08][..],          // varint missing
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ][..],
            &[0x0b][..],       // start group
            &[0x00, 0x00][..], // field 0
            &[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f][..],
        ] {
            assert_eq!(fields(bad, |_, _| Ok(())), Err(Malformed), "{bad:?}");
        }
        let mut fixed = vec![0x0d, 1, 0, 0, 0, 0x11];
        fixed.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
        let mut got = Vec::new();
        fields(&fixed, |f, v| {
            got.push((f, v));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, [(1, Value::Fixed(1)), (2, Value::Fixed(2))]);
    }
}
