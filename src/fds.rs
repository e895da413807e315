//! Running out of file descriptors without stopping: a few descriptors are held in reserve so
//! that the admin interface and the restart socket can still accept when client connections
//! have used up the limit, and listeners whose accept failed for lack of descriptors are
//! retried on a timer (a full backlog raises no new readiness edge to wake them).

use std::fs::File;
use std::io;
use std::time::Duration;

/// How often a listener paused for lack of descriptors tries again (nginx: 500 ms).
pub const ACCEPT_RETRY: Duration = Duration::from_millis(500);

/// Descriptors held back for the admin interface and the restart socket.
const RESERVE: usize = 8;

/// Whether an accept (or socket) error means the process or system is out of descriptors or
/// socket memory: a passing shortage, not a broken listener.
pub fn exhausted(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOBUFS | nix::libc::ENOMEM)
    )
}

/// A few open descriptors (on /dev/null) to give back when the control plane must accept.
#[derive(Debug, Default)]
pub struct Reserve {
    held: Vec<File>,
}

impl Reserve {
    /// Opens the reserve (as much of it as the limit allows).
    pub fn new() -> Reserve {
        let mut r = Reserve::default();
        r.refill();
        r
    }

    /// Gives every reserved descriptor back to the process.
    pub fn release(&mut self) {
        if !self.held.is_empty() {
            log::warn!("out of file descriptors: releasing the reserve for the control plane");
        }
        self.held.clear();
    }

    /// Takes descriptors back into the reserve while the limit allows.
    pub fn refill(&mut self) {
        while self.held.len() < RESERVE {
            match File::open("/dev/null") {
                Ok(f) => self.held.push(f),
                Err(_) => return,
            }
        }
    }
}

/// Accepts from a control-plane listener, using the reserve when descriptors ran out: the
/// reserve is released, the accept tried once more, and the reserve refilled as far as it can
/// be. `accept` returns `Ok(None)` for "nothing queued".
pub fn accept_with_reserve<T>(
    reserve: &mut Reserve,
    mut accept: impl FnMut() -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    match accept() {
        Err(e) if exhausted(&e) => {
            reserve.release();
            let r = accept();
            reserve.refill();
            r
        }
        r => r,
    }
}

/// Turns TCP keep-alive on for `s`, with the probe settings given (the system's for the rest).
pub fn tcp_keepalive(
    s: &impl std::os::fd::AsFd,
    k: &crate::config::TcpKeepalive,
) -> nix::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(s, sockopt::KeepAlive, &true)?;
    if let Some(t) = k.time {
        setsockopt(s, sockopt::TcpKeepIdle, &t)?;
    }
    if let Some(i) = k.interval {
        setsockopt(s, sockopt::TcpKeepInterval, &i)?;
    }
    if let Some(n) = k.probes {
        setsockopt(s, sockopt::TcpKeepCount, &n)?;
    }
    Ok(())
}

/// `setsockopt(level, name)` with a C int, for options nix has no type for (a listener's
/// `socket_options`, TCP_FASTOPEN on a listening socket).
pub fn set_int_option(
    s: &impl std::os::fd::AsFd,
    level: i32,
    name: i32,
    value: i32,
) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let len = std::mem::size_of::<i32>() as nix::libc::socklen_t;
    // SAFETY: the descriptor is borrowed for the call, and the value pointer and length
    // describe one live, initialised C int.
    let rc = unsafe {
        nix::libc::setsockopt(
            s.as_fd().as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            len,
        )
    };
    nix::errno::Errno::result(rc).map(drop)
}
