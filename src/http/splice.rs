//! Zero-copy response bodies: body bytes the exchange core grants (`Conn::splice_budget`) go
//! from the upstream socket into a pipe and from the pipe to the client socket with
//! `splice(2)`, so they never enter our buffers. The core decides how many bytes flow; this
//! module only moves them. Pipes come from a bounded free list (`PipePool`, in `Ctx`): a
//! session holds one only while it splices, and only an empty pipe goes back, so bytes of one
//! connection can never reach another. Idle pipes hold descriptors, so the list gives back
//! what a burst left behind (`PipePool::trim`) and everything when descriptors run out
//! (`PipePool::release`).

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};

/// Most idle pipes kept (two descriptors each); more are closed when given back.
const POOL_MAX: usize = 64;

/// Idle pipes kept however long they stay unused (8 descriptors): a few concurrent spliced
/// responses' worth, so a quiet proxy's next large response does not pay for a new pipe
/// (`pipe2` and three `fcntl`s) while a burst's pipes do not hold descriptors for good.
pub const POOL_KEEP: usize = 4;

/// The capacity assumed when the kernel does not say (Linux's default pipe size with 4 KiB
/// pages).
const DEFAULT_PIPE: usize = 64 * 1024;

/// The capacity asked for each new pipe: a 1 MiB body then takes 5 splice pairs instead of
/// 17 (a default pipe has 16 page slots): 1.19× the requests/s at 0.78× the CPU per 1 MiB
/// response in `bench/ab.sh`.
const BIG_PIPE: usize = 256 * 1024;

/// Most enlarged pipes alive at once in a process (16 MiB of pipe capacity). The kernel
/// charges pipe capacity to the user (`pipe-user-pages-soft`, 64 MiB by default); past it
/// every new pipe of that user, in any process, gets two pages. Beyond this bound pipes keep
/// the default size, so a baton takes at most a quarter of that budget for the larger size
/// (half while a hot restart runs two).
const BIG_PIPES_MAX: usize = 64;

/// A pipe and the bytes it holds (spliced in from an upstream, not yet out to the client).
#[derive(Debug)]
pub struct Pipe {
    rd: OwnedFd,
    wr: OwnedFd,
    cap: usize,
    fill: usize,
    /// Held while this pipe is enlarged: counts it against `BIG_PIPES_MAX` until dropped.
    _big: Option<BigPipe>,
}

/// One enlarged pipe alive; the count goes down when the pipe is dropped, wherever that is.
#[derive(Debug)]
struct BigPipe(Rc<Cell<usize>>);

impl Drop for BigPipe {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// What a splice from a socket into the pipe did.
#[derive(Debug)]
pub enum In {
    Moved(usize),
    /// The socket's peer closed its side.
    Eof,
    /// Nothing moved: the socket had no bytes, or the pipe no room for them.
    WouldBlock,
    /// The kernel will not splice these descriptors (or not now): copy instead.
    Refused,
    /// The socket failed (a reset).
    Failed(io::Error),
}

impl Pipe {
    /// A new pipe, enlarged to `BIG_PIPE` when it is smaller (a default pipe is 16 pages:
    /// 64 KiB with 4 KiB pages, 1 MiB with 64 KiB pages, which is left alone), `big` (the
    /// live count of enlarged pipes) is under its bound and the kernel agrees.
    fn new(big: &Rc<Cell<usize>>) -> io::Result<Pipe> {
        let (rd, wr) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // The kernel may hand out smaller pipes when a user holds many (pipe-user-pages-soft):
        // ask it, so a splice never asks for more than the pipe holds.
        let size = |wr: &OwnedFd| {
            fcntl(wr, FcntlArg::F_GETPIPE_SZ)
                .ok()
                .and_then(|c| usize::try_from(c).ok())
                .filter(|&c| c > 0)
        };
        let mut cap = size(&wr).unwrap_or(DEFAULT_PIPE);
        let mut held = None;
        if cap < BIG_PIPE && big.get() < BIG_PIPES_MAX {
            // Refused (EPERM past the user's pipe budget, or a smaller pipe-max-size): the
            // pipe keeps its size.
            let asked = i32::try_from(BIG_PIPE).unwrap_or(i32::MAX);
            if fcntl(&wr, FcntlArg::F_SETPIPE_SZ(asked)).is_ok() {
                big.set(big.get() + 1);
                held = Some(BigPipe(Rc::clone(big)));
                cap = size(&wr).unwrap_or(cap);
            }
        }
        Ok(Pipe {
            rd,
            wr,
            cap,
            fill: 0,
            _big: held,
        })
    }

    /// Bytes in the pipe, not yet at the client.
    pub fn fill(&self) -> usize {
        self.fill
    }

    /// Splices at most `max` bytes from `src` into the pipe.
    pub fn fill_from(&mut self, src: impl AsFd, max: usize) -> In {
        let want = max.min(self.cap.saturating_sub(self.fill));
        if want == 0 {
            return In::WouldBlock;
        }
        let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
        loop {
            return match splice(src.as_fd(), None, &self.wr, None, want, flags) {
                Ok(0) => In::Eof,
                Ok(n) => {
                    self.fill += n;
                    In::Moved(n)
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => In::WouldBlock,
                Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::ENOMEM) => {
                    In::Refused
                }
                Err(e) => In::Failed(e.into()),
            };
        }
    }

    /// Splices what the pipe holds to `dst`. `Ok(false)`: `dst` is full (wait for writable).
    pub fn drain_to(&mut self, dst: impl AsFd) -> io::Result<bool> {
        let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
        while self.fill > 0 {
            match splice(&self.rd, None, dst.as_fd(), None, self.fill, flags) {
                Ok(0) => {
                    // The pipe is empty after all: our count was wrong. Never reuse it.
                    return Err(io::Error::other("spliced pipe ran dry"));
                }
                Ok(n) => self.fill = self.fill.saturating_sub(n),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }
}

/// Idle pipes, ready for the next session that splices. Bounded like `BufPool`: at most
/// `POOL_MAX`, and what stays unused between two `trim` calls beyond `POOL_KEEP` is closed,
/// so a burst of spliced downloads does not keep its descriptors (and pipe pages charged to
/// the user) after it.
#[derive(Debug, Default)]
pub struct PipePool {
    free: Vec<Pipe>,
    /// The fewest idle pipes since the last `trim`: the bottom `low` of the stack went unused
    /// all that time.
    low: usize,
    /// Enlarged pipes alive (idle here or held by sessions).
    big: Rc<Cell<usize>>,
}

impl PipePool {
    /// An empty pipe: from the free list, else a new one. `None` when none can be made
    /// (out of descriptors): the caller copies instead.
    pub fn take(&mut self) -> Option<Pipe> {
        let reused = self.free.pop();
        self.low = self.low.min(self.free.len());
        if reused.is_some() {
            return reused;
        }
        match Pipe::new(&self.big) {
            Ok(p) => Some(p),
            Err(e) => {
                log::debug!("no pipe for splicing ({e}): copying");
                None
            }
        }
    }

    /// Gives a pipe back. One that still holds bytes (or that the list has no room for) is
    /// closed, never reused.
    pub fn put(&mut self, p: Pipe) {
        if p.fill == 0 && self.free.len() < POOL_MAX {
            self.free.push(p);
        }
    }

    /// Idle pipes held (for tests and the descriptor budget).
    pub fn idle(&self) -> usize {
        self.free.len()
    }

    /// Idle pipes beyond `POOL_KEEP`: a `trim` is due some time later.
    pub fn wants_trim(&self) -> bool {
        self.free.len() > POOL_KEEP
    }

    /// Closes the idle pipes that nobody took since the last call (beyond `POOL_KEEP`), oldest
    /// first; returns how many. Called with `BufPool::trim`, it closes a burst's pipes within
    /// two periods of the burst's end and leaves those a steady load takes in turn alone.
    pub fn trim(&mut self) -> usize {
        let n = self.low.min(self.free.len()).saturating_sub(POOL_KEEP);
        self.free.drain(..n);
        self.low = self.free.len();
        n
    }

    /// Closes every idle pipe; returns how many. For a process out of descriptors: those
    /// pipes are better spent on connections, and a new one is made when splicing needs it.
    pub fn release(&mut self) -> usize {
        let n = self.free.len();
        self.free.clear();
        self.low = 0;
        n
    }

    /// Enlarged pipes alive, idle or held by sessions.
    #[cfg(test)]
    fn enlarged(&self) -> usize {
        self.big.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let a = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (b, _) = l.accept().expect("accept");
        (a, b)
    }

    /// Bytes go socket → pipe → socket intact; EOF and an empty socket are told apart; a
    /// pipe holding bytes is not taken back.
    #[test]
    fn bytes_pass_through_a_pipe_in_order() {
        let (mut up_peer, up) = pair();
        let (down, mut client) = pair();
        up.set_nonblocking(true).expect("nonblocking");
        down.set_nonblocking(true).expect("nonblocking");
        let mut pool = PipePool::default();
        let mut p = pool.take().expect("pipe");
        assert!(matches!(p.fill_from(&up, 1000), In::WouldBlock));
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
        up_peer.write_all(&data).expect("write");
        let mut got = Vec::new();
        while got.len() < data.len() {
            match p.fill_from(&up, 1 << 20) {
                In::Moved(n) => assert!(n <= p.cap),
                In::WouldBlock => {}
                other => panic!("unexpected {other:?}"),
            }
            assert!(p.drain_to(&down).expect("drain"));
            let mut buf = [0u8; 65536];
            client.set_nonblocking(true).expect("nonblocking");
            if let Ok(n) = client.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert!(got == data);
        drop(up_peer);
        let mut eof = false;
        for _ in 0..1000 {
            match p.fill_from(&up, 10) {
                In::Eof => {
                    eof = true;
                    break;
                }
                In::WouldBlock => std::thread::sleep(std::time::Duration::from_millis(1)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(eof);
        pool.put(p);
        assert_eq!(pool.idle(), 1);
        let mut full = pool.take().expect("pipe");
        assert_eq!(pool.idle(), 0);
        full.fill = 1;
        pool.put(full);
        assert_eq!(pool.idle(), 0, "a pipe holding bytes is closed");
    }

    /// Pipes are enlarged up to the bound, later ones keep the kernel's size, and the count
    /// follows pipes dropped anywhere (here: by the test, as a session would drop one).
    #[test]
    fn enlarged_pipes_are_bounded_and_counted_until_dropped() {
        let mut pool = PipePool::default();
        let pipes: Vec<Pipe> = (0..BIG_PIPES_MAX + 6)
            .map(|_| pool.take().expect("pipe"))
            .collect();
        let big = pipes.iter().filter(|p| p._big.is_some()).count();
        assert_eq!(pool.enlarged(), big);
        assert!(big <= BIG_PIPES_MAX);
        for p in &pipes {
            if p._big.is_some() {
                assert_eq!(p.cap, BIG_PIPE, "the kernel reports the size it granted");
            }
        }
        // Where the kernel grants the size at all (it may not past the user's pipe budget),
        // exactly the bound's worth are enlarged and the rest are not.
        if pipes.first().is_some_and(|p| p._big.is_some()) {
            assert_eq!(big, BIG_PIPES_MAX);
            assert!(pipes.iter().skip(BIG_PIPES_MAX).all(|p| p._big.is_none()));
        }
        let mut pipes = pipes;
        pipes.truncate(1);
        let first_big = usize::from(pipes.iter().any(|p| p._big.is_some()));
        assert_eq!(pool.enlarged(), first_big);
        for p in pipes {
            pool.put(p);
        }
        assert_eq!(pool.idle(), 1);
        assert_eq!(pool.enlarged(), first_big, "an idle pipe still counts");
    }

    /// After a burst, what nobody took for a whole period is closed down to `POOL_KEEP`
    /// (oldest first), what a steady load takes in turn stays, the enlarged count follows
    /// the closed pipes, and `release` closes every idle pipe.
    #[test]
    fn trim_closes_what_stayed_unused_and_release_closes_all() {
        let mut pool = PipePool::default();
        let burst: Vec<Pipe> = (0..20).map(|_| pool.take().expect("pipe")).collect();
        for p in burst {
            pool.put(p);
        }
        assert_eq!(pool.idle(), 20);
        assert!(pool.wants_trim());
        // The burst just ended: its pipes were in use since the last trim.
        assert_eq!(pool.trim(), 0);
        assert_eq!(pool.idle(), 20);
        // A steady load of 6 concurrent splices takes and gives back the top of the stack.
        for _ in 0..3 {
            let held: Vec<Pipe> = (0..6).map(|_| pool.take().expect("pipe")).collect();
            for p in held {
                pool.put(p);
            }
        }
        // Of the 14 pipes nobody took, all but `POOL_KEEP` are closed; the 6 in use stay.
        assert_eq!(pool.trim(), 14 - POOL_KEEP);
        assert_eq!(pool.idle(), 6 + POOL_KEEP);
        // The load stops: one more period closes all but `POOL_KEEP`.
        assert_eq!(pool.trim(), 6);
        assert_eq!(pool.idle(), POOL_KEEP);
        assert!(!pool.wants_trim(), "an idle proxy arms no trim timer");
        assert_eq!(pool.trim(), 0);
        assert!(
            pool.enlarged() <= POOL_KEEP,
            "closed pipes left the enlarged count"
        );
        // Descriptors run out: the kept pipes go too, and splicing still gets a new one.
        assert_eq!(pool.release(), POOL_KEEP);
        assert_eq!(pool.idle(), 0);
        assert_eq!(pool.enlarged(), 0);
        let p = pool.take().expect("a new pipe after a release");
        pool.put(p);
        assert_eq!(pool.idle(), 1);
    }
}
