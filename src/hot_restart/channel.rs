//! The restart socket's I/O: probing and binding the path, peer credentials, and a framed,
//! non-blocking Unix stream that carries file descriptors with SCM_RIGHTS. No decisions here;
//! the state machine makes them.

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use baton_statemachine::{decode, encode, CodecError, Message, MAX_FDS_PER_BATCH, MAX_FRAME_LEN};
use mio::net::{UnixListener, UnixStream};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// What start-up found at `--hot-restart-file`.
pub enum Probe {
    /// Nothing there, or a stale socket nobody answered (already removed): start fresh.
    Fresh,
    /// A live parent answered.
    Parent(std::os::unix::net::UnixStream),
}

fn path_error(path: &Path, cause: impl std::fmt::Display) -> String {
    format!("hot restart file {}: {cause}", path.display())
}

/// Looks at the path and connects to a parent if one serves it. Every problem that would
/// otherwise lead to two processes fighting over the ports is an error naming the path.
pub fn probe(path: &Path) -> Result<Probe, String> {
    let uid = nix::unistd::geteuid().as_raw();
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            check_dir_writable(path)?;
            Ok(Probe::Fresh)
        }
        Err(e) => Err(path_error(path, e)),
        Ok(meta) => {
            if !meta.file_type().is_socket() {
                return Err(path_error(path, "exists and is not a socket"));
            }
            if meta.uid() != uid {
                return Err(path_error(
                    path,
                    format!(
                        "owned by uid {}, not by this process's uid {uid}",
                        meta.uid()
                    ),
                ));
            }
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(s) => {
                    check_peer_uid(&s).map_err(|e| path_error(path, e))?;
                    Ok(Probe::Parent(s))
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    log::info!(
                        "hot restart file {}: stale socket (nobody answers), removing it",
                        path.display()
                    );
                    check_dir_writable(path)?;
                    std::fs::remove_file(path).map_err(|e| {
                        path_error(path, format!("cannot remove stale socket: {e}"))
                    })?;
                    Ok(Probe::Fresh)
                }
                Err(e) => Err(path_error(path, e)),
            }
        }
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn check_dir_writable(path: &Path) -> Result<(), String> {
    let dir = parent_dir(path);
    match std::fs::metadata(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(path_error(
                path,
                format!("directory {} does not exist", dir.display()),
            ))
        }
        Err(e) => {
            return Err(path_error(
                path,
                format!("directory {}: {e}", dir.display()),
            ))
        }
        Ok(m) if !m.is_dir() => {
            return Err(path_error(
                path,
                format!("{} is not a directory", dir.display()),
            ))
        }
        Ok(_) => {}
    }
    nix::unistd::access(
        &dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .map_err(|e| {
        path_error(
            path,
            format!("directory {} is not writable: {}", dir.display(), e.desc()),
        )
    })
}

/// Binds the restart socket with mode 0600 (the umask covers the window before chmod).
pub fn bind_restart_listener(path: &Path) -> Result<UnixListener, String> {
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let r = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let l = r.map_err(|e| path_error(path, crate::server::io_cause(&e)))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| path_error(path, e))?;
    Ok(l)
}

/// Refuses peers running as another user (SO_PEERCRED).
pub fn check_peer_uid<F: AsFd>(s: &F) -> Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    let cred = nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("SO_PEERCRED: {}", e.desc()))?;
    if cred.uid() != me {
        return Err(format!(
            "peer pid {} runs as uid {}, not {me}",
            cred.pid(),
            cred.uid()
        ));
    }
    Ok(())
}

/// One queued outgoing frame and the fds that must travel with its first byte.
struct Out {
    bytes: Vec<u8>,
    sent: usize,
    fds: Vec<RawFd>,
    /// Keeps the fds alive until they are sent.
    _owned: Vec<OwnedFd>,
}

/// A framed restart-socket connection.
pub struct Conn {
    pub stream: UnixStream,
    rbuf: Vec<u8>,
    out: VecDeque<Out>,
    /// Fds received and not yet claimed by a `ListenerFds` frame.
    pub fds: VecDeque<OwnedFd>,
    /// Only the link to our parent carries fds; on any other link (a child that may not even
    /// have said Hello) received fds are closed at once, so an unauthenticated peer cannot make
    /// us hold descriptors.
    accepts_fds: bool,
    pub eof: bool,
    /// `fill` stopped with the socket possibly holding more: the frames it has must be decoded
    /// (releasing buffer and fds) and `fill` called again, as no new readiness edge will come.
    pub paused: bool,
}

/// Most fds a parent link may have waiting for their frames (four full batches).
const MAX_HELD_FDS: usize = 4 * MAX_FDS_PER_BATCH;

/// What reading a connection produced.
pub enum Read {
    Frame(Message),
    Nothing,
}

impl Conn {
    /// `accepts_fds`: this is the link to our parent (the only peer that sends fds).
    pub fn new(stream: UnixStream, accepts_fds: bool) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            out: VecDeque::new(),
            fds: VecDeque::new(),
            accepts_fds,
            eof: false,
            paused: false,
        }
    }

    /// Queues a frame (with fds to pass, which are duplicated so the caller keeps its own).
    pub fn queue(&mut self, msg: &Message, fds: &[RawFd]) -> Result<(), String> {
        let mut bytes = Vec::new();
        encode(msg, &mut bytes).map_err(|e| format!("encode {}: {e:?}", msg.name()))?;
        let mut owned = Vec::with_capacity(fds.len());
        for &fd in fds {
            // SAFETY: the caller's fd is open for the duration of this call (it owns the
            // listener); we only borrow it to duplicate it.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let dup = borrowed
                .try_clone_to_owned()
                .map_err(|e| format!("dup: {e}"))?;
            owned.push(dup);
        }
        self.out.push_back(Out {
            bytes,
            sent: 0,
            fds: owned.iter().map(AsRawFd::as_raw_fd).collect(),
            _owned: owned,
        });
        Ok(())
    }

    /// Writes queued frames until done or the socket is full.
    pub fn flush(&mut self) -> io::Result<()> {
        while let Some(o) = self.out.front_mut() {
            let iov = [IoSlice::new(&o.bytes[o.sent..])];
            let rights;
            let cmsgs: &[ControlMessage] = if o.sent == 0 && !o.fds.is_empty() {
                rights = [ControlMessage::ScmRights(&o.fds)];
                &rights
            } else {
                &[]
            };
            match sendmsg::<()>(
                self.stream.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(n) => {
                    o.sent += n;
                    if o.sent >= o.bytes.len() {
                        self.out.pop_front();
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(io::Error::from_raw_os_error(e as i32)),
            }
        }
        Ok(())
    }

    pub fn has_pending_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Reads what the socket has (bytes and fds) into the connection's buffers, returning how
    /// many bytes it read. It stops early (`paused`) when a whole frame is buffered or another
    /// batch of fds would not fit: a parent handing over thousands of tunnels sends batches
    /// faster than they are adopted, and its fds must wait in the socket, not be dropped.
    pub fn fill(&mut self) -> io::Result<usize> {
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0;
        self.paused = false;
        loop {
            let fds_full = self.accepts_fds && self.fds.len() + MAX_FDS_PER_BATCH > MAX_HELD_FDS;
            if self.rbuf.len() > MAX_FRAME_LEN + 4 || fds_full {
                // A whole frame never needs more; decode will report the problem.
                self.paused = true;
                return Ok(total);
            }
            let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS_PER_BATCH]);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let r = recvmsg::<()>(
                self.stream.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
            );
            let mut unwanted = false;
            let (n, truncated) = match r {
                Ok(msg) => {
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmRights(fds) = c {
                                for fd in fds {
                                    // SAFETY: the kernel just installed this fd for us.
                                    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                                    if self.accepts_fds && self.fds.len() < MAX_HELD_FDS {
                                        self.fds.push_back(owned);
                                    } else {
                                        unwanted = true; // dropped: closed at once
                                    }
                                }
                            }
                        }
                    }
                    (msg.bytes, msg.flags.contains(MsgFlags::MSG_CTRUNC))
                }
                Err(nix::errno::Errno::EAGAIN) => return Ok(total),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(io::Error::from_raw_os_error(e as i32)),
            };
            if truncated {
                return Err(io::Error::other("control message truncated (too many fds)"));
            }
            if unwanted && !self.accepts_fds {
                return Err(io::Error::other("a child peer sent file descriptors"));
            }
            if n == 0 {
                self.eof = true;
                return Ok(total);
            }
            total += n;
            self.rbuf.extend_from_slice(&buf[..n]);
        }
    }

    /// Decodes the next whole frame, if any.
    pub fn next_frame(&mut self) -> Result<Read, CodecError> {
        match decode(&self.rbuf)? {
            Some((msg, used)) => {
                self.rbuf.drain(..used);
                Ok(Read::Frame(msg))
            }
            None => Ok(Read::Nothing),
        }
    }
}
