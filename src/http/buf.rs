//! Byte buffers for connections: a window over a pooled allocation. A connection borrows a
//! buffer only while it has bytes in flight and gives it back when empty, so idle keep-alive
//! connections cost no buffer memory and a busy proxy does not re-zero memory per request.

use std::io::{self, Read, Write};

/// Size of one pooled buffer and of one read.
pub const CHUNK: usize = 16 * 1024;

/// Smallest free tail worth a read syscall.
const MIN_READ: usize = 2 * 1024;

/// Free list of `CHUNK`-sized allocations, bounded so a burst does not pin memory forever:
/// at most `POOL_MAX`, and what stays unused between two `trim` calls beyond `POOL_KEEP` is
/// freed (a burst of 10,000 connections leaves no 10,000 buffers behind).
#[derive(Debug, Default)]
pub struct BufPool {
    free: Vec<Vec<u8>>,
    /// The fewest free buffers since the last `trim`: the bottom `low` of the stack went
    /// unused all that time.
    low: usize,
}

const POOL_MAX: usize = 1024;
/// Free buffers kept however long they stay unused: enough for a few busy connections, so a
/// quiet proxy does not allocate and zero fresh memory for its next requests.
pub const POOL_KEEP: usize = 16;

impl BufPool {
    fn get(&mut self) -> Vec<u8> {
        let v = self.free.pop();
        self.low = self.low.min(self.free.len());
        v.unwrap_or_else(|| vec![0; CHUNK])
    }

    fn put(&mut self, v: Vec<u8>) {
        if v.len() == CHUNK && self.free.len() < POOL_MAX {
            self.free.push(v);
        }
    }

    /// Free buffers beyond `POOL_KEEP`: a `trim` is due some time later.
    pub fn wants_trim(&self) -> bool {
        self.free.len() > POOL_KEEP
    }

    /// Frees the buffers that nobody took since the last call (beyond `POOL_KEEP`), oldest
    /// first; returns how many. Called periodically while `wants_trim`, it returns a burst's
    /// buffers within two periods of the burst's end and leaves a steady load's alone.
    pub fn trim(&mut self) -> usize {
        let n = self.low.min(self.free.len()).saturating_sub(POOL_KEEP);
        self.free.drain(..n);
        self.free.shrink_to(POOL_KEEP.max(self.free.len()));
        self.low = self.free.len();
        n
    }

    /// Free buffers held.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }
}

/// Bytes `v[start..end]` are live; `v.len()` is the allocation (always initialised).
#[derive(Debug, Default)]
pub struct Buf {
    v: Vec<u8>,
    start: usize,
    end: usize,
}

/// Outcome of a read into a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    Data(usize),
    /// Data, and fewer bytes than there was room for: the socket's queue was empty when read.
    /// With edge-triggered readiness, more data will raise a new event, so the caller can skip
    /// the read that would only return EAGAIN (a syscall per request saved).
    Drained(usize),
    Eof,
    WouldBlock,
}

impl Buf {
    pub fn data(&self) -> &[u8] {
        &self.v[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Drops `n` bytes from the front.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room for at least `min` more bytes at the end; returns the writable tail.
    fn spare(&mut self, pool: &mut BufPool, min: usize) -> &mut [u8] {
        if self.v.is_empty() {
            self.v = pool.get();
        }
        if self.v.len() - self.end < min {
            if self.start > 0 {
                self.v.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.v.len() - self.end < min {
                let want = (self.end + min).max(self.v.len() * 2);
                self.v.resize(want, 0);
            }
        }
        &mut self.v[self.end..]
    }

    pub fn extend(&mut self, pool: &mut BufPool, bytes: &[u8]) {
        let tail = self.spare(pool, bytes.len());
        tail[..bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    /// One read of up to `max` bytes (at least 1) into the free tail. The tail only has to
    /// hold `MIN_READ` bytes: growing the allocation to fit a whole `CHUNK` behind a few
    /// buffered bytes would zero fresh memory on every read.
    pub fn read_from<R: Read>(
        &mut self,
        pool: &mut BufPool,
        r: &mut R,
        max: usize,
    ) -> io::Result<ReadOutcome> {
        let max = max.clamp(1, CHUNK);
        let tail = self.spare(pool, max.min(MIN_READ));
        let len = tail.len().min(max);
        loop {
            match r.read(&mut tail[..len]) {
                Ok(0) => return Ok(ReadOutcome::Eof),
                Ok(n) => {
                    self.end += n;
                    return Ok(if n < len {
                        ReadOutcome::Drained(n)
                    } else {
                        ReadOutcome::Data(n)
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadOutcome::WouldBlock)
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes as much as the socket takes. Returns false when it would block with bytes left.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<bool> {
        self.write_with(|b| w.write(b))
    }

    /// `write_to` through a write call of the caller's choosing.
    pub fn write_with(
        &mut self,
        mut write: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> io::Result<bool> {
        while !self.is_empty() {
            match write(self.data()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.consume(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Returns the allocation to the pool when nothing is buffered.
    pub fn release(&mut self, pool: &mut BufPool) {
        if self.is_empty() && !self.v.is_empty() {
            pool.put(std::mem::take(&mut self.v));
            self.start = 0;
            self.end = 0;
        }
    }

    /// Takes the buffered bytes out (used when a connection is handed to another owner).
    pub fn take_bytes(&mut self) -> Vec<u8> {
        let out = self.data().to_vec();
        self.consume(out.len());
        out
    }

    pub fn has_allocation(&self) -> bool {
        !self.v.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_frees_what_stayed_unused_and_keeps_a_few() {
        let mut pool = BufPool::default();
        let mut bufs: Vec<Buf> = (0..100).map(|_| Buf::default()).collect();
        for b in &mut bufs {
            b.extend(&mut pool, b"x");
        }
        for b in &mut bufs {
            b.consume(1);
            b.release(&mut pool);
        }
        assert_eq!(pool.free_count(), 100);
        assert!(pool.wants_trim());
        // The burst just ended: its buffers were in use since the last trim.
        assert_eq!(pool.trim(), 0);
        // A steady load of 10 connections keeps its buffers.
        for b in bufs.iter_mut().take(10) {
            b.extend(&mut pool, b"y");
        }
        for b in bufs.iter_mut().take(10) {
            b.consume(1);
            b.release(&mut pool);
        }
        assert_eq!(pool.trim(), 90 - POOL_KEEP);
        assert_eq!(pool.free_count(), 10 + POOL_KEEP);
        // Then the load stops: its 10 go too.
        assert!(pool.wants_trim());
        assert_eq!(pool.trim(), 10);
        assert_eq!(pool.free_count(), POOL_KEEP);
        assert!(!pool.wants_trim());
        assert_eq!(pool.trim(), 0);
    }

    #[test]
    fn extend_consume_compact_and_release() {
        let mut pool = BufPool::default();
        let mut b = Buf::default();
        assert!(!b.has_allocation());
        b.extend(&mut pool, b"hello");
        b.consume(2);
        assert_eq!(b.data(), b"llo");
        let big = vec![7u8; CHUNK * 3];
        b.extend(&mut pool, &big);
        assert_eq!(b.len(), 3 + CHUNK * 3);
        b.consume(b.len());
        assert!(b.is_empty());
        b.release(&mut pool);
        assert!(!b.has_allocation());
        let mut r: &[u8] = b"abc";
        assert_eq!(
            b.read_from(&mut pool, &mut r, 2).unwrap(),
            ReadOutcome::Data(2)
        );
        assert_eq!(b.data(), b"ab");
        let mut out = Vec::new();
        assert!(b.write_to(&mut out).unwrap());
        assert_eq!(out, b"ab");
        let mut empty: &[u8] = b"";
        assert_eq!(
            b.read_from(&mut pool, &mut empty, 10).unwrap(),
            ReadOutcome::Eof
        );
    }
}
