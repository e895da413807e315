//! HCM file access logs (`envoy.access_loggers.file`). Lines are rendered into a per-file
//! memory buffer when a request ends and written by the reactor's periodic tick (or at once
//! when a buffer grows large), so a slow disk costs one write per tick, not one per request.
//! Files are opened with O_APPEND; SIGUSR1 reopens them for logrotate; buffers are flushed
//! on exit (drop).

pub mod format;
pub mod record;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::time::Duration;

use crate::config::AccessLog;
pub use format::{Format, Slots};
pub use record::{Captured, Flags, Rq};

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
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let res = match self.file.as_mut() {
            Some(f) => f.write_all(&self.buf),
            None => Err(std::io::Error::other("not open")),
        };
        match res {
            Ok(()) => {
                self.buf.clear();
                self.failing = false;
            }
            Err(e) => {
                if !self.failing {
                    log::warn!("access log {}: {e}", self.path);
                    self.failing = true;
                }
                if self.buf.len() > MAX_BUFFER {
                    log::warn!(
                        "access log {}: dropping {} buffered bytes",
                        self.path,
                        self.buf.len()
                    );
                    self.buf.clear();
                }
            }
        }
    }
}

fn open(path: &str) -> std::io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

/// One listener's loggers and the headers their formats need.
#[derive(Debug, Default)]
struct ListenerLogs {
    slots: Slots,
    /// (file index, format)
    loggers: Vec<(usize, Format)>,
}

#[derive(Debug, Default)]
pub struct AccessLogs {
    files: Vec<LogFile>,
    /// Indexed like `Ctx::listeners`.
    listeners: Vec<ListenerLogs>,
    /// A flush tick is armed.
    tick_armed: bool,
}

impl AccessLogs {
    /// Opens every configured file (one handle per distinct path); a file that cannot be
    /// opened is a start-up error naming it, as in Envoy.
    pub fn open(per_listener: &[&[AccessLog]]) -> Result<AccessLogs, String> {
        let mut a = AccessLogs::default();
        for logs in per_listener {
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
                let f = Format::compile(&cfg.format, &mut l.slots);
                l.loggers.push((fi, f));
            }
            a.listeners.push(l);
        }
        Ok(a)
    }

    /// The capture slots of listener `l` when it logs; None means "capture nothing".
    #[inline]
    pub fn slots(&self, l: usize) -> Option<&Slots> {
        self.listeners
            .get(l)
            .filter(|x| !x.loggers.is_empty())
            .map(|x| &x.slots)
    }

    /// Renders `rq` into every logger of its listener. Returns true when lines are waiting
    /// for the next flush tick.
    pub fn log(&mut self, rq: &Rq, cluster_name: Option<&str>) -> bool {
        let Some(l) = self.listeners.get(rq.listener) else {
            return false;
        };
        let mut waiting = false;
        for (fi, f) in &l.loggers {
            let Some(file) = self.files.get_mut(*fi) else {
                continue;
            };
            f.render(&mut file.buf, rq, cluster_name);
            if file.buf.len() >= FLUSH_AT {
                file.flush();
            }
            waiting |= !file.buf.is_empty();
        }
        waiting
    }

    /// After a line was logged: true when a flush tick must be armed (none is yet).
    pub fn want_flush_tick(&mut self) -> bool {
        !std::mem::replace(&mut self.tick_armed, true)
    }

    /// The flush tick fired: write what is buffered.
    pub fn on_tick(&mut self) {
        self.tick_armed = false;
        self.flush();
    }

    /// Writes every buffered line.
    pub fn flush(&mut self) {
        for f in &mut self.files {
            f.flush();
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
