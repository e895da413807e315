//! TEMPORARY stand-in for h2-wire's HPACK (same API), so the client transcoder builds and its
//! tests run before that lands: literal fields without indexing and new names only (RFC 7541
//! §6.2.2), no Huffman, no tables. Replaced by h2-wire's file at the merge.

#[derive(Debug)]
pub struct HpackError;

impl std::fmt::Display for HpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HPACK error")
    }
}

pub struct Decoder;

fn int(b: &[u8], at: &mut usize, prefix: u8) -> Result<usize, HpackError> {
    let first = *b.get(*at).ok_or(HpackError)?;
    *at += 1;
    let max = (1usize << prefix) - 1;
    let mut v = usize::from(first) & max;
    if v < max {
        return Ok(v);
    }
    let mut shift = 0;
    loop {
        let c = *b.get(*at).ok_or(HpackError)?;
        *at += 1;
        v += usize::from(c & 0x7f) << shift;
        shift += 7;
        if c & 0x80 == 0 || shift > 28 {
            return Ok(v);
        }
    }
}

fn put_int(out: &mut Vec<u8>, first: u8, prefix: u8, v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    let mut v = v - max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

impl Decoder {
    pub fn new(_max_table: usize) -> Decoder {
        Decoder
    }

    pub fn decode(
        &mut self,
        block: &[u8],
        max_list: usize,
        emit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut at = 0;
        let mut size = 0;
        while at < block.len() {
            if block.get(at) != Some(&0) {
                return Err(HpackError);
            }
            at += 1;
            let n = int(block, &mut at, 7)?;
            let name = block.get(at..at + n).ok_or(HpackError)?;
            at += n;
            let n = int(block, &mut at, 7)?;
            let value = block.get(at..at + n).ok_or(HpackError)?;
            at += n;
            size += name.len() + value.len() + 32;
            if size > max_list {
                return Err(HpackError);
            }
            emit(name, value);
        }
        Ok(())
    }
}

pub struct Encoder;

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder
    }

    pub fn encode<'a>(
        &mut self,
        fields: &mut dyn Iterator<Item = (&'a [u8], &'a [u8])>,
        out: &mut Vec<u8>,
    ) {
        for (n, v) in fields {
            out.push(0);
            put_int(out, 0, 7, n.len());
            out.extend_from_slice(n);
            put_int(out, 0, 7, v.len());
            out.extend_from_slice(v);
        }
    }
}
