//! HCM file access logs (`envoy.access_loggers.file`). Lines are rendered into a per-file
//! memory buffer when a request ends and written by the reactor's periodic tick (or at once
//! when a buffer grows large), so a slow disk costs one write per tick, not one per request.
//! Files are opened with O_APPEND and O_NONBLOCK: a pipe or terminal whose reader stalls
//! (`/dev/stdout` into a stuck consumer) makes writes return "would block" instead of
//! freezing the reactor; what cannot be written waits in the buffer, and past `MAX_BUFFER` the
//! oldest lines are dropped and counted (`access_logs.dropped_lines`). SIGUSR1 reopens the
//! files for logrotate; buffers are flushed on exit (drop).

pub mod filter;
pub mod format;
pub mod json;
pub mod record;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use crate::config::{AccessLog, LocalReplyConfig};
pub use format::{Format, Names, Slots};
pub use record::{Captured, Flags, Rq, TlsInfo};

/// How often buffered lines are written while there are any.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A buffer this large is written at once instead of waiting for the tick.
const FLUSH_AT: usize = 64 * 1024;
/// A file that cannot be written keeps at most this much; older lines are dropped (and said so).
const MAX_BUFFER: usize = 8 << 20;

#[derive(Debug)]
struct LogFile {
    path: String,
    file: Option<File>,
    buf: Vec<u8>,
    /// Whether the current write failure was already logged (one line per failure period).
    failing: bool,
}

impl LogFile {
    /// Writes what the file takes without blocking. Returns the number of lines dropped
    /// because the buffer outgrew `MAX_BUFFER` while the file would not take them.
    fn flush(&mut self) -> u64 {
        let mut written = 0;
        let mut err = None;
        while written < self.buf.len() {
            let Some(f) = self.file.as_mut() else {
                err = Some(std::io::Error::other("not open"));
                break;
            };
            match f.write(self.buf.get(written..).unwrap_or_default()) {
                Ok(0) => {
                    err = Some(std::io::ErrorKind::WriteZero.into());
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        self.buf.drain(..written);
        match err {
            None => self.failing = false,
            Some(e) => {
                if !self.failing {
                    log::warn!("access log {}: {e}", self.path);
                    self.failing = true;
                }
            }
        }
        if self.buf.len() <= MAX_BUFFER {
            return 0;
        }
        let lines = self.buf.iter().filter(|&&b| b == b'\n').count() as u64;
        log::warn!(
            "access log {}: not writable; dropping {lines} buffered lines",
            self.path
        );
        self.buf.clear();
        lines
    }
}

/// Opens (creates) a log file for appending without blocking (the admin's logs too).
pub fn open(path: &str) -> std::io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
}

/// How a logger writes its lines.
#[derive(Debug)]
pub enum LineFormat {
    Text(Format),
    Json(json::JsonFormat),
}

impl LineFormat {
    /// Compiles a logger's format (text or JSON), registering the headers it prints.
    pub fn compile(cfg: &AccessLog, slots: &mut Slots) -> LineFormat {
        match &cfg.json {
            Some(j) => LineFormat::Json(json::JsonFormat::compile(j, slots)),
            None => LineFormat::Text(Format::compile(&cfg.format, slots)),
        }
    }

    /// Appends the line of `rq`.
    pub fn render(&self, out: &mut Vec<u8>, rq: &Rq, names: &Names<'_>) {
        match self {
            LineFormat::Text(f) => f.render(out, rq, names),
            LineFormat::Json(j) => j.render(out, rq, names),
        }
    }
}

/// One configured logger: its file, its format, and the filter a request must pass.
#[derive(Debug)]
struct Logger {
    file: usize,
    format: LineFormat,
    filter: Option<filter::Filter>,
}

/// One listener's loggers, its local reply formats, and the headers they need.
#[derive(Debug, Default)]
struct ListenerLogs {
    slots: Slots,
    loggers: Vec<Logger>,
    /// The connection manager's `local_reply_config`, compiled with these slots.
    local_reply: Option<crate::http::local_reply::LocalReply>,
    /// Requests are recorded with their captured headers: something logs or formats them.
    captures: bool,
}

#[derive(Debug, Default)]
pub struct AccessLogs {
    files: Vec<LogFile>,
    /// Indexed like `Ctx::listeners`.
    listeners: Vec<ListenerLogs>,
    /// A flush tick is armed.
    tick_armed: bool,
    /// Lines dropped because a file would not take them, not yet counted in the stats.
    dropped: u64,
    /// Records of ended requests, kept for the next ones (no allocation per request).
    #[allow(clippy::vec_box)]
    spare: Vec<Box<Captured>>,
}

/// Most spare records kept.
const SPARE_MAX: usize = 256;

impl AccessLogs {
    /// Opens every configured file (one handle per distinct path); a file that cannot be
    /// opened is a start-up error naming it, as in Envoy. Each listener's local reply config
    /// is compiled here too: its formats share the listener's capture slots.
    pub fn open(
        per_listener: &[(&[AccessLog], Option<&LocalReplyConfig>)],
    ) -> Result<AccessLogs, String> {
        let mut a = AccessLogs::default();
        for (logs, local_reply) in per_listener {
            let mut l = ListenerLogs::default();
            for cfg in logs.iter() {
                let fi = match a.files.iter().position(|f| f.path == cfg.path) {
                    Some(i) => i,
                    None => {
                        let f =
                            open(&cfg.path).map_err(|e| format!("access log {}: {e}", cfg.path))?;
                        a.files.push(LogFile {
                            path: cfg.path.clone(),
                            file: Some(f),
                            buf: Vec::new(),
                            failing: false,
                        });
                        a.files.len() - 1
                    }
                };
                let f = LineFormat::compile(cfg, &mut l.slots);
                let filter = cfg
                    .filter
                    .as_ref()
                    .map(|f| filter::Filter::compile(f, &mut l.slots));
                l.loggers.push(Logger {
                    file: fi,
                    format: f,
                    filter,
                });
            }
            l.local_reply =
                local_reply.map(|c| crate::http::local_reply::LocalReply::compile(c, &mut l.slots));
            l.captures = !l.loggers.is_empty() || l.local_reply.is_some();
            a.listeners.push(l);
        }
        Ok(a)
    }

    /// The capture slots of listener `l` when it logs or formats local replies; None means
    /// "capture nothing".
    #[inline]
    pub fn slots(&self, l: usize) -> Option<&Slots> {
        self.listeners
            .get(l)
            .filter(|x| x.captures)
            .map(|x| &x.slots)
    }

    /// Listener `l`'s local reply config and its capture slots, when it has one.
    pub fn local_reply(&self, l: usize) -> Option<(&crate::http::local_reply::LocalReply, &Slots)> {
        let x = self.listeners.get(l)?;
        Some((x.local_reply.as_ref()?, &x.slots))
    }

    /// An empty record for a request on listener `l` (None when it does not log).
    pub fn captured(&mut self, l: usize) -> Option<Box<Captured>> {
        let slots = &self.listeners.get(l).filter(|x| x.captures)?.slots;
        Some(match self.spare.pop() {
            Some(mut c) => {
                c.reset(slots);
                c
            }
            None => Box::new(Captured::new(slots)),
        })
    }

    /// A logged request's record back for the next one.
    pub fn put_captured(&mut self, c: Box<Captured>) {
        if self.spare.len() < SPARE_MAX {
            self.spare.push(c);
        }
    }

    /// Renders `rq` into every logger of its listener whose filter it passes (`rq` has
    /// ended: `now` is not read for a duration). Returns true when lines are waiting for the
    /// next flush tick.
    pub fn log(&mut self, rq: &Rq, names: &Names<'_>, now: std::time::Instant) -> bool {
        let Some(l) = self.listeners.get(rq.listener) else {
            return false;
        };
        let mut waiting = false;
        for lg in &l.loggers {
            if lg.filter.as_ref().is_some_and(|f| !f.matches(rq, now)) {
                continue;
            }
            let Some(file) = self.files.get_mut(lg.file) else {
                continue;
            };
            lg.format.render(&mut file.buf, rq, names);
            if file.buf.len() >= FLUSH_AT {
                self.dropped += file.flush();
            }
            waiting |= !file.buf.is_empty();
        }
        waiting
    }

    /// After a line was logged: true when a flush tick must be armed (none is yet).
    pub fn want_flush_tick(&mut self) -> bool {
        !std::mem::replace(&mut self.tick_armed, true)
    }

    /// The flush tick fired: write what is buffered. Returns true when lines still wait
    /// (a file that would block), so the caller arms another tick.
    pub fn on_tick(&mut self) -> bool {
        self.tick_armed = false;
        self.flush();
        let waiting = self.files.iter().any(|f| !f.buf.is_empty());
        if waiting {
            self.tick_armed = true;
        }
        waiting
    }

    /// Lines dropped since the last call (for the `access_logs.dropped_lines` counter).
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Writes every buffered line the files take without blocking.
    pub fn flush(&mut self) {
        for f in &mut self.files {
            self.dropped += f.flush();
        }
    }

    /// Flushes, then reopens every file by path (SIGUSR1 after logrotate moved them).
    pub fn reopen(&mut self) {
        self.flush();
        for f in &mut self.files {
            match open(&f.path) {
                Ok(h) => f.file = Some(h),
                Err(e) => log::warn!("access log {}: cannot reopen: {e}", f.path),
            }
        }
        if !self.files.is_empty() {
            log::info!("access logs reopened ({} files)", self.files.len());
        }
    }
}

impl Drop for AccessLogs {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_pipe_never_blocks_and_drops_counted_lines() {
        let (rd, wr) = nix::unistd::pipe().expect("pipe");
        let flags = nix::fcntl::fcntl(&wr, nix::fcntl::F_GETFL).expect("getfl");
        let nb = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&wr, nix::fcntl::F_SETFL(nb)).expect("setfl");
        let mut f = LogFile {
            path: "pipe".into(),
            file: Some(File::from(wr)),
            buf: Vec::new(),
            failing: false,
        };
        let line = [b'x'; 99];
        let mut dropped = 0;
        let mut lines = 0u64;
        // Nobody reads `rd`: the pipe fills, then everything waits in the buffer, then lines
        // are dropped — and no call blocks.
        while lines < 120_000 {
            f.buf.extend_from_slice(&line);
            f.buf.push(b'\n');
            lines += 1;
            if f.buf.len() >= FLUSH_AT {
                dropped += f.flush();
            }
            assert!(f.buf.len() <= MAX_BUFFER + FLUSH_AT);
        }
        assert!(dropped > 0, "nothing dropped");
        assert!(dropped < lines, "everything dropped");
        drop(rd);
    }
}
