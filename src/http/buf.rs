//! Byte buffers for connections: a window over a pooled allocation. A connection borrows a
//! buffer only while it has bytes in flight and gives it back when empty, so idle keep-alive
//! connections cost no buffer memory and a busy proxy does not re-zero memory per request.

use std::io::{self, Read, Write};

/// Size of one read.
pub const CHUNK: usize = 16 * 1024;

/// Room beyond one read in every pooled allocation: the client's out buffer takes our response
/// head and then a whole read of body bytes behind it. Without it that buffer outgrew its
/// allocation on every response of 16 KiB or more, and the grown allocation (zeroed when grown,
/// not the pool's size) went back to the allocator, so each such response paid a `calloc`, a
/// 16 KiB `memset` and a `free`.
const HEAD_ROOM: usize = 2 * 1024;

/// Size of one pooled allocation.
const ALLOC: usize = CHUNK + HEAD_ROOM;

/// Where an empty buffer starts filling: the head room is in front, so a read still gets a
/// whole `CHUNK` and a rewritten response head can be put before the body bytes read behind the
/// upstream's head without moving them (`Buf::prepend`).
const FRONT: usize = HEAD_ROOM;

/// Smallest free tail worth a read syscall.
const MIN_READ: usize = 2 * 1024;

/// Free list of `ALLOC`-sized allocations, bounded so a burst does not pin memory forever:
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
        v.unwrap_or_else(|| vec![0; ALLOC])
    }

    fn put(&mut self, v: Vec<u8>) {
        if v.len() == ALLOC && self.free.len() < POOL_MAX {
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

    /// Frees every free buffer at once (the overload manager's `shrink_heap`); returns how
    /// many.
    pub fn trim_all(&mut self) -> usize {
        let n = self.free.len();
        self.free = Vec::new();
        self.low = 0;
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
        if self.is_empty() && self.v.len() >= FRONT + min {
            // Filling starts behind free room, so a head can go in front later (`prepend`).
            self.start = FRONT;
            self.end = FRONT;
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

    /// Puts `bytes` in front of the live ones when the room before them holds them, without
    /// moving what is buffered; false (and nothing changed) when it does not.
    pub fn prepend(&mut self, bytes: &[u8]) -> bool {
        let Some(at) = self.start.checked_sub(bytes.len()) else {
            return false;
        };
        if self.is_empty() {
            return false;
        }
        match self.v.get_mut(at..self.start) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.start = at;
                true
            }
            None => false,
        }
    }

    /// Moves the first `n` bytes to the end of `to`. When they are all there is and `to` is
    /// empty, the two buffers trade allocations instead of copying (a relayed body's bytes
    /// pass from the reading side's buffer to the writing side's without a copy).
    pub fn move_front(&mut self, n: usize, to: &mut Buf, pool: &mut BufPool) {
        if n == self.len() && to.is_empty() {
            std::mem::swap(self, to);
            return;
        }
        if let Some(data) = self.data().get(..n) {
            to.extend(pool, data);
        }
        self.consume(n);
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
    fn a_head_and_a_full_read_fit_one_pooled_allocation() {
        // The client's out buffer of a large response: our head, then one read of body bytes.
        let mut pool = BufPool::default();
        let mut b = Buf::default();
        b.extend(&mut pool, &[b'h'; 1500]);
        b.extend(&mut pool, &[b'b'; CHUNK]);
        b.consume(b.len());
        b.release(&mut pool);
        // Not grown, so it goes back to the pool instead of to the allocator.
        assert_eq!(pool.free_count(), 1);
    }

    #[test]
    fn a_head_goes_in_front_of_bytes_read_into_an_empty_buffer() {
        let mut pool = BufPool::default();
        let mut b = Buf::default();
        // Nothing buffered: nothing to go in front of.
        assert!(!b.prepend(b"x"));
        let mut r: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nbody";
        assert!(matches!(
            b.read_from(&mut pool, &mut r, CHUNK).unwrap(),
            ReadOutcome::Drained(23)
        ));
        b.consume(19);
        let ours = [b'H'; FRONT + 19];
        assert!(b.prepend(&ours));
        assert_eq!(b.len(), ours.len() + 4);
        assert!(b.data().starts_with(&ours) && b.data().ends_with(b"body"));
        // The room in front is used up.
        assert!(!b.prepend(b"x"));
        assert_eq!(b.data().len(), ours.len() + 4);
    }

    #[test]
    fn moving_everything_to_an_empty_buffer_trades_allocations() {
        let mut pool = BufPool::default();
        let (mut a, mut b) = (Buf::default(), Buf::default());
        a.extend(&mut pool, b"abcdef");
        let at = a.data().as_ptr();
        a.move_front(6, &mut b, &mut pool);
        assert_eq!(b.data(), b"abcdef");
        // The same bytes, not a copy.
        assert_eq!(b.data().as_ptr(), at);
        assert!(a.is_empty());
        // A part, or onto bytes already there: copied, in order.
        a.extend(&mut pool, b"ghij");
        a.move_front(2, &mut b, &mut pool);
        assert_eq!((a.data(), b.data()), (&b"ij"[..], &b"abcdefgh"[..]));
        a.move_front(2, &mut b, &mut pool);
        assert_eq!(b.data(), b"abcdefghij");
        assert!(a.is_empty());
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
