//! HPACK (RFC 7541): a decoder with the dynamic table the peer's encoder drives, and an encoder
//! that uses only the static table. Without a dynamic table on our side there is no encoder
//! state to keep in step with the peer, and a proxy's header blocks are mostly one-off values.

use std::collections::VecDeque;

use super::huffman;

/// The static table (RFC 7541 Appendix A); index 1 is the first entry.
#[rustfmt::skip]
pub const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// The default SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2).
pub const DEFAULT_TABLE: usize = 4096;

/// Every entry costs its name, its value and 32 octets of overhead (RFC 7541 §4.1); RFC 9113
/// §6.5.2 counts the header list the same way.
const ENTRY_OVERHEAD: usize = 32;

/// Why a header block was refused. Every one but `ListTooLarge` is a connection error of type
/// COMPRESSION_ERROR (RFC 9113 §4.3): the dynamic table may no longer match the peer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpackError {
    /// The block ends inside a representation.
    Truncated,
    /// An integer longer than this decoder accepts (over 2^35: no real value is that big).
    IntegerOverflow,
    /// Index 0, or past the end of the static and dynamic tables.
    BadIndex(usize),
    Huffman(huffman::HuffmanError),
    /// A dynamic table size update above the size this side advertised.
    SizeUpdateTooLarge(usize),
    /// A dynamic table size update after the block's first field (RFC 7541 §4.2).
    SizeUpdateNotAtStart,
    /// The decoded list passed `max_list`. The whole block was still decoded, so the dynamic
    /// table is in step with the peer: a stream error (431 / RST_STREAM) is enough.
    ListTooLarge,
}

impl std::fmt::Display for HpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HpackError::Truncated => f.write_str("header block ends inside a field"),
            HpackError::IntegerOverflow => f.write_str("HPACK integer too large"),
            HpackError::BadIndex(i) => write!(f, "HPACK index {i} out of range"),
            HpackError::Huffman(e) => e.fmt(f),
            HpackError::SizeUpdateTooLarge(s) => {
                write!(
                    f,
                    "dynamic table size update to {s}, above the advertised maximum"
                )
            }
            HpackError::SizeUpdateNotAtStart => {
                f.write_str("dynamic table size update after the first field of a block")
            }
            HpackError::ListTooLarge => f.write_str("header list larger than the limit"),
        }
    }
}

impl std::error::Error for HpackError {}

impl From<huffman::HuffmanError> for HpackError {
    fn from(e: huffman::HuffmanError) -> HpackError {
        HpackError::Huffman(e)
    }
}

/// Reads an integer with an `prefix`-bit prefix (RFC 7541 §5.1) at `*pos`, moving past it.
fn read_int(block: &[u8], pos: &mut usize, prefix: u32) -> Result<usize, HpackError> {
    let mask = ((1u16 << prefix) - 1) as u8;
    let first = *block.get(*pos).ok_or(HpackError::Truncated)? & mask;
    *pos += 1;
    if first < mask {
        return Ok(usize::from(first));
    }
    let mut value = u64::from(mask);
    let mut shift = 0u32;
    loop {
        let b = *block.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        value += u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
    usize::try_from(value).map_err(|_| HpackError::IntegerOverflow)
}

/// Appends `value` as an integer with a `prefix`-bit prefix; `high` holds the representation's
/// pattern bits above the prefix.
fn write_int(out: &mut Vec<u8>, high: u8, prefix: u32, value: usize) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        out.push(high | value as u8);
        return;
    }
    out.push(high | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Reads a string literal (RFC 7541 §5.2) at `*pos`: the raw octets, or their Huffman decoding
/// in `scratch`.
fn read_string<'b>(
    block: &'b [u8],
    pos: &mut usize,
    scratch: &'b mut Vec<u8>,
) -> Result<&'b [u8], HpackError> {
    let huffman = block.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = read_int(block, pos, 7)?;
    let end = pos.checked_add(len).ok_or(HpackError::Truncated)?;
    let raw = block.get(*pos..end).ok_or(HpackError::Truncated)?;
    *pos = end;
    if !huffman {
        return Ok(raw);
    }
    scratch.clear();
    huffman::decode(raw, scratch)?;
    Ok(scratch)
}

/// Appends a string literal, Huffman-coded when that is shorter.
fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    let coded = huffman::encoded_len(s);
    if coded < s.len() {
        write_int(out, 0x80, 7, coded);
        huffman::encode(s, out);
    } else {
        write_int(out, 0, 7, s.len());
        out.extend_from_slice(s);
    }
}

/// A dynamic table entry: name, value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// The HPACK decoder of one connection direction: the dynamic table the peer's encoder fills.
pub struct Decoder {
    /// Newest first: dynamic index 62 is `table[0]`.
    table: VecDeque<Entry>,
    /// The table's size as RFC 7541 §4.1 counts it.
    size: usize,
    /// The current maximum: 4096 at first, then what the peer's size updates set.
    capacity: usize,
    /// The largest size update accepted: the SETTINGS_HEADER_TABLE_SIZE this side advertised,
    /// or 4096 if that is larger (a peer may use the initial size before it sees ours).
    max_table: usize,
    /// Huffman-decoded names and values land here, reused from block to block.
    name_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl Decoder {
    /// A decoder for a side that advertises SETTINGS_HEADER_TABLE_SIZE `max_table`. The table
    /// starts at the protocol's initial 4096 octets whatever is advertised: the peer's encoder
    /// uses that size until it sends a size update (RFC 7541 §4.2), and a decoder that evicted
    /// on a different size would read the wrong entries.
    pub fn new(max_table: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            capacity: DEFAULT_TABLE,
            max_table: max_table.max(DEFAULT_TABLE),
            name_buf: Vec::new(),
            value_buf: Vec::new(),
        }
    }

    /// The dynamic table's size (RFC 7541 §4.1) and its entries, newest first.
    pub fn table(&self) -> (usize, impl Iterator<Item = (&[u8], &[u8])>) {
        (self.size, self.table.iter().map(|(n, v)| (&n[..], &v[..])))
    }

    /// Decodes one complete header block; `emit(name, value)` per field, in order. Fails past
    /// `max_list` octets (RFC 9113 header list size: name+value+32 each): then the rest of the
    /// block is still decoded to keep the table in step, but no more fields are emitted. On any
    /// error the fields emitted so far are to be discarded.
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list: usize,
        emit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut pos = 0;
        let mut at_start = true;
        let mut list = 0usize;
        let mut too_large = false;
        while let Some(&b) = block.get(pos) {
            if b & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                if !at_start {
                    return Err(HpackError::SizeUpdateNotAtStart);
                }
                let size = read_int(block, &mut pos, 5)?;
                if size > self.max_table {
                    return Err(HpackError::SizeUpdateTooLarge(size));
                }
                self.capacity = size;
                self.evict_for(0);
                continue;
            }
            at_start = false;
            let mut add = |name: &[u8], value: &[u8]| {
                list = list.saturating_add(name.len() + value.len() + ENTRY_OVERHEAD);
                too_large |= list > max_list;
                if !too_large {
                    emit(name, value);
                }
            };
            if b & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = read_int(block, &mut pos, 7)?;
                let (name, value) = lookup(&self.table, index)?;
                add(name, value);
                continue;
            }
            // Literals (§6.2): with incremental indexing (01), without (0000), never (0001).
            let indexing = b & 0xc0 == 0x40;
            let index = read_int(block, &mut pos, if indexing { 6 } else { 4 })?;
            let name = if index == 0 {
                read_string(block, &mut pos, &mut self.name_buf)?
            } else {
                lookup(&self.table, index)?.0
            };
            let value = read_string(block, &mut pos, &mut self.value_buf)?;
            add(name, value);
            if indexing {
                // Copied only when it fits: `name` may borrow the table the insert changes.
                let size = name.len() + value.len() + ENTRY_OVERHEAD;
                let entry = (size <= self.capacity).then(|| (Box::from(name), Box::from(value)));
                self.insert(size, entry);
            }
        }
        if too_large {
            return Err(HpackError::ListTooLarge);
        }
        Ok(())
    }

    /// Evicts the oldest entries until `incoming` more octets fit in the capacity (§4.4).
    fn evict_for(&mut self, incoming: usize) {
        while self.size + incoming > self.capacity {
            let Some((n, v)) = self.table.pop_back() else {
                break;
            };
            self.size -= n.len() + v.len() + ENTRY_OVERHEAD;
        }
    }

    /// Adds an entry of `size` octets (§4.4); `None` (larger than the capacity) empties the
    /// table and adds nothing.
    fn insert(&mut self, size: usize, entry: Option<Entry>) {
        let Some(entry) = entry else {
            self.table.clear();
            self.size = 0;
            return;
        };
        self.evict_for(size);
        self.size += size;
        self.table.push_front(entry);
    }
}

/// The entry at `index` (§2.3.3): 1..=61 static, then the dynamic table newest first.
fn lookup(table: &VecDeque<Entry>, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
    if let Some(&(n, v)) = index.checked_sub(1).and_then(|i| STATIC.get(i)) {
        return Ok((n, v));
    }
    index
        .checked_sub(STATIC.len() + 1)
        .and_then(|i| table.get(i))
        .map(|(n, v)| (&n[..], &v[..]))
        .ok_or(HpackError::BadIndex(index))
}

/// The HPACK encoder: static-table references and literals without indexing, so the peer's
/// decoder table is never used.
#[derive(Debug, Default)]
pub struct Encoder {
    /// A name with uppercase letters is lowercased here (reused from field to field).
    lower: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Appends one header block: static-table indices where name and value or the name match,
    /// literals without indexing otherwise. Each block opens with a dynamic table size update to
    /// 0: nothing to keep in sync, and it is always valid, even right after the peer lowers
    /// its SETTINGS_HEADER_TABLE_SIZE (when decoders such as nghttp2 require an update). Names
    /// are written lowercase whatever the caller passes: an uppercase one makes the message
    /// malformed (RFC 9113 §8.2.1).
    pub fn encode<'a>(
        &mut self,
        fields: &mut dyn Iterator<Item = (&'a [u8], &'a [u8])>,
        out: &mut Vec<u8>,
    ) {
        out.push(0x20);
        for (name, value) in fields {
            let name = if name.iter().any(u8::is_ascii_uppercase) {
                self.lower.clear();
                self.lower.extend(name.iter().map(u8::to_ascii_lowercase));
                &self.lower[..]
            } else {
                name
            };
            let mut name_index = 0;
            let mut full = None;
            for (i, &(n, v)) in STATIC.iter().enumerate() {
                if n == name {
                    if v == value {
                        full = Some(i + 1);
                        break;
                    }
                    if name_index == 0 {
                        name_index = i + 1;
                    }
                }
            }
            if let Some(index) = full {
                write_int(out, 0x80, 7, index);
                continue;
            }
            write_int(out, 0x00, 4, name_index);
            if name_index == 0 {
                write_string(out, name);
            }
            write_string(out, value);
        }
    }
}

#[cfg(test)]
#[path = "hpack_tests.rs"]
mod tests;
