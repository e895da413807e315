//! Consistent hashing for RING_HASH and MAGLEV: xxHash64 (the function Envoy hashes request
//! keys and ring entries with, so a key maps as it would in Envoy for the same hosts), the
//! ring (Envoy's ring_hash_lb) and the Maglev table (maglev_lb). Both are built from the hosts'
//! addresses and weights only, so the same config gives the same host per key in every
//! process, including a hot-restart successor.

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(acc: u64, val: u64) -> u64 {
    (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
}

fn u64_at(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    for (d, s) in a.iter_mut().zip(b) {
        *d = *s;
    }
    u64::from_le_bytes(a)
}

/// xxHash64 of `data` with `seed` (the reference algorithm, little-endian reads).
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    let mut rest = data;
    let mut h = if data.len() >= 32 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 32 {
            let (stripe, tail) = rest.split_at(32);
            for (i, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, u64_at(stripe.get(i * 8..).unwrap_or_default()));
            }
            rest = tail;
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for lane in v {
            h = merge(h, lane);
        }
        h
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(data.len() as u64);
    while rest.len() >= 8 {
        let (w, tail) = rest.split_at(8);
        h ^= round(0, u64_at(w));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = tail;
    }
    if rest.len() >= 4 {
        let (w, tail) = rest.split_at(4);
        h ^= (u64_at(w) & 0xFFFF_FFFF).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = tail;
    }
    for &b in rest {
        h ^= u64::from(b).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// A host of a table: its index (in the cluster's hosts), address and normalized weight
/// (the weights of a table sum to 1).
#[derive(Debug, Clone)]
pub struct Entry {
    pub host: usize,
    /// What the host is hashed by: its address (`ip:port`), or its name.
    pub key: String,
    pub weight: f64,
}

/// Envoy's ring: each host gets ring points in proportion to its weight, hashed from
/// "address_i"; a key goes to the first point at or after its hash (wrapping).
#[derive(Debug, Clone, Default)]
pub struct Ring {
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// The ring over `hosts` with `min_size`..=`max_size` points (Envoy's scaling: enough
    /// points that the lightest host gets at least one per `min_size`, capped at `max_size`).
    pub fn new(hosts: &[Entry], min_size: u64, max_size: u64) -> Ring {
        let min_w = hosts
            .iter()
            .map(|e| e.weight)
            .filter(|w| *w > 0.0)
            .fold(f64::INFINITY, f64::min);
        if !min_w.is_finite() {
            return Ring::default();
        }
        let scale = ((min_w * min_size as f64).ceil() / min_w).min(max_size as f64);
        let mut points = Vec::with_capacity(scale.ceil().min(max_size as f64) as usize);
        let (mut current, mut target) = (0.0f64, 0.0f64);
        for e in hosts {
            let addr = &e.key;
            target += scale * e.weight;
            let mut i = 0u64;
            while current < target {
                let key = format!("{addr}_{i}");
                points.push((xxh64(key.as_bytes(), 0), e.host));
                i += 1;
                current += 1.0;
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The host for `hash`.
    pub fn pick(&self, hash: u64) -> Option<usize> {
        let i = self.points.partition_point(|p| p.0 < hash);
        self.points
            .get(i)
            .or_else(|| self.points.first())
            .map(|p| p.1)
    }
}

/// Envoy's Maglev table: each host fills slots along its own permutation of the table (offset
/// and skip from xxHash64 of its address with seeds 0 and 1), lighter hosts skipping turns in
/// proportion to their weight; a key goes to slot `hash % size`.
#[derive(Debug, Clone, Default)]
pub struct Maglev {
    table: Vec<usize>,
}

impl Maglev {
    /// The table of `size` slots (a prime) over `hosts`.
    pub fn new(hosts: &[Entry], size: u64) -> Maglev {
        if hosts.is_empty() || size == 0 {
            return Maglev::default();
        }
        struct Build {
            host: usize,
            offset: u64,
            skip: u64,
            weight: f64,
            target: f64,
            next: u64,
        }
        let mut entries: Vec<Build> = hosts
            .iter()
            .filter(|e| e.weight > 0.0)
            .map(|e| {
                let a = &e.key;
                Build {
                    host: e.host,
                    offset: xxh64(a.as_bytes(), 0) % size,
                    skip: xxh64(a.as_bytes(), 1) % (size - 1).max(1) + 1,
                    weight: e.weight,
                    target: 0.0,
                    next: 0,
                }
            })
            .collect();
        let max_w = entries.iter().map(|e| e.weight).fold(0.0, f64::max);
        if entries.is_empty() {
            return Maglev::default();
        }
        let mut table: Vec<Option<usize>> = vec![None; size as usize];
        let mut filled = 0u64;
        let mut iteration = 1u64;
        while filled < size {
            for e in entries.iter_mut() {
                if filled >= size {
                    break;
                }
                if (iteration as f64) * e.weight < e.target {
                    continue;
                }
                e.target += max_w;
                // A prime size makes the permutation visit every slot within `size` steps.
                for _ in 0..size {
                    let c = (e.offset.wrapping_add(e.skip.wrapping_mul(e.next)) % size) as usize;
                    e.next += 1;
                    if let Some(slot @ None) = table.get_mut(c) {
                        *slot = Some(e.host);
                        break;
                    }
                }
                filled += 1;
            }
            iteration += 1;
        }
        Maglev {
            table: table.into_iter().map(|s| s.unwrap_or(0)).collect(),
        }
    }

    /// The host for `hash`.
    pub fn pick(&self, hash: u64) -> Option<usize> {
        let n = self.table.len() as u64;
        self.table.get(hash.checked_rem(n)? as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn xxh64_matches_the_reference_vectors() {
        // Checked against libxxhash 0.8's XXH64 (seed 0), and every input length class.
        for (input, want) in [
            (&b""[..], 0xef46db3751d8e999),
            (b"a", 0xd24ec4f1a98c6e5b),
            (b"abc", 0x44bc2cf5ad770999),
            (b"127.0.0.1:8080_0", 0xf673a43b9624fa24),
            (&[b'x'; 40][..], 0x926f564e1b3e18d5),
            (b"hello world, this is 33 bytes!!!!", 0xa074801991220b10),
        ] {
            assert_eq!(
                xxh64(input, 0),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    fn entries(n: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                host: i,
                key: SocketAddr::from(([127, 0, 0, 1], 8000 + i as u16)).to_string(),
                weight: 1.0 / n as f64,
            })
            .collect()
    }

    fn shares(pick: impl Fn(u64) -> Option<usize>, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for k in 0..10_000u64 {
            if let Some(h) = pick(xxh64(&k.to_le_bytes(), 0)) {
                c[h] += 1;
            }
        }
        c
    }

    #[test]
    fn the_ring_spreads_keys_by_weight_and_moves_few_when_a_host_goes() {
        let hosts = entries(4);
        let ring = Ring::new(&hosts, 1024, 8 << 20);
        assert_eq!(ring.len(), 1024);
        for c in shares(|h| ring.pick(h), 4) {
            assert!((2000..3000).contains(&c), "{c}");
        }
        // Weights 3:1 over two hosts.
        let mut two = entries(2);
        two[0].weight = 0.75;
        two[1].weight = 0.25;
        let r = Ring::new(&two, 1024, 8 << 20);
        let c = shares(|h| r.pick(h), 2);
        assert!((6800..8200).contains(&c[0]), "{c:?}");
        // The same hosts give the same ring (another process, a hot restart).
        let again = Ring::new(&hosts, 1024, 8 << 20);
        assert!((0..1000u64).all(|k| ring.pick(k * 7919) == again.pick(k * 7919)));
        // Host 3 goes: only its keys move.
        let three = Ring::new(&hosts[..3], 1024, 8 << 20);
        for k in 0..2000u64 {
            let h = xxh64(&k.to_le_bytes(), 0);
            let before = ring.pick(h);
            if before != Some(3) {
                assert_eq!(three.pick(h), before);
            }
        }
        assert_eq!(Ring::new(&[], 1024, 8 << 20).pick(1), None);
    }

    #[test]
    fn the_maglev_table_fills_by_weight_and_is_stable() {
        let hosts = entries(3);
        let m = Maglev::new(&hosts, 65537);
        assert_eq!(m.table.len(), 65537);
        for h in 0..3 {
            let n = m.table.iter().filter(|&&x| x == h).count();
            assert!((21_000..22_700).contains(&n), "host {h}: {n}");
        }
        let mut w = entries(2);
        w[0].weight = 0.8;
        w[1].weight = 0.2;
        let m2 = Maglev::new(&w, 65537);
        let n0 = m2.table.iter().filter(|&&x| x == 0).count();
        assert!((51_000..53_800).contains(&n0), "{n0}");
        let again = Maglev::new(&hosts, 65537);
        assert_eq!(m.table, again.table);
        // A host going away moves few keys of the others.
        let two = Maglev::new(&hosts[..2], 65537);
        let moved = (0..65537usize)
            .filter(|&i| m.table[i] != 2 && two.table[i] != m.table[i])
            .count();
        assert!(moved < 65537 / 10, "{moved}");
        assert_eq!(Maglev::new(&[], 65537).pick(1), None);
    }
}
