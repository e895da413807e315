//! A registry's state as plain (name, value) lists, and a compact byte encoding so the
//! hot-restart channel can carry it without knowing anything about stats.

/// Counters as totals, importable gauges as current values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub counters: Vec<(String, u64)>,
    pub gauges: Vec<(String, i64)>,
}

const MAGIC: &[u8; 4] = b"BST1";
/// Longest stat name accepted when decoding (Envoy's limit is far lower in practice).
const MAX_NAME: usize = 4096;

impl Snapshot {
    /// `BST1`, counter count (u32 LE), then per counter: name length (u16 LE), name, value
    /// (u64 LE); then the same for gauges with i64 values.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + (self.counters.len() + self.gauges.len()) * 48);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.counters.len() as u32).to_le_bytes());
        for (n, v) in &self.counters {
            put_name(&mut out, n);
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(self.gauges.len() as u32).to_le_bytes());
        for (n, v) in &self.gauges {
            put_name(&mut out, n);
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes `encode`'s output; any truncation, bad name or trailing byte is an error.
    pub fn decode(b: &[u8]) -> Result<Snapshot, String> {
        let mut r = Reader { b, at: 0 };
        if r.take(4)? != MAGIC {
            return Err("stats snapshot: bad magic".into());
        }
        let mut s = Snapshot::default();
        let n = r.u32()?;
        for _ in 0..n {
            let name = r.name()?;
            s.counters.push((name, u64::from_le_bytes(r.array()?)));
        }
        let n = r.u32()?;
        for _ in 0..n {
            let name = r.name()?;
            s.gauges.push((name, i64::from_le_bytes(r.array()?)));
        }
        if r.at != b.len() {
            return Err("stats snapshot: trailing bytes".into());
        }
        Ok(s)
    }
}

fn put_name(out: &mut Vec<u8>, n: &str) {
    let b = &n.as_bytes()[..n.len().min(MAX_NAME)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or("stats snapshot: truncated")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn name(&mut self) -> Result<String, String> {
        let len = u16::from_le_bytes(self.array()?) as usize;
        if len > MAX_NAME {
            return Err("stats snapshot: name too long".into());
        }
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| "stats snapshot: name is not UTF-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_damage() {
        let s = Snapshot {
            counters: vec![
                ("a.b".into(), 7),
                ("cluster.x.upstream_rq_total".into(), u64::MAX),
            ],
            gauges: vec![("g".into(), -3)],
        };
        let b = s.encode();
        assert_eq!(Snapshot::decode(&b), Ok(s));
        for cut in 0..b.len() {
            assert!(Snapshot::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = b.clone();
        extra.push(0);
        assert!(Snapshot::decode(&extra).is_err());
        assert!(Snapshot::decode(b"XXXX\0\0\0\0\0\0\0\0").is_err());
        // A huge count with no data is an error, not an allocation.
        assert!(Snapshot::decode(b"BST1\xff\xff\xff\xff").is_err());
    }
}
