//! The admin's access logs: `admin.access_log_path` (one line per admin request in Envoy's
//! default access-log format) and `admin.access_log[]` (loggers as a connection manager's:
//! file, stdout or stderr, a text or JSON format, a filter). Lines are written at once (admin
//! requests are rare) without blocking: files are opened non-blocking, and a line a file will
//! not take is dropped.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

use crate::access_log::filter::Filter;
use crate::access_log::{Captured, LineFormat, Rq, Slots};
use crate::config::AccessLog;

struct Logger {
    path: String,
    file: File,
    format: LineFormat,
    filter: Option<Filter>,
}

pub struct AdminLog {
    loggers: Vec<Logger>,
    slots: Slots,
}

impl AdminLog {
    /// Opens the logs (`None` when there is none); a file that cannot be opened is a start-up
    /// error naming it.
    pub fn open(path: Option<&str>, logs: &[AccessLog]) -> Result<Option<AdminLog>, String> {
        let open = |path: &str, field: &str| {
            crate::access_log::open(path).map_err(|e| format!("{field} {path}: {e}"))
        };
        let mut slots = Slots::default();
        let mut loggers = Vec::new();
        if let Some(p) = path {
            loggers.push(Logger {
                path: p.to_string(),
                file: open(p, "admin.access_log_path")?,
                format: LineFormat::Text(crate::access_log::Format::compile(
                    crate::config::DEFAULT_ACCESS_LOG_FORMAT,
                    &mut slots,
                )),
                filter: None,
            });
        }
        for l in logs {
            loggers.push(Logger {
                path: l.path.clone(),
                file: open(&l.path, "admin.access_log")?,
                format: LineFormat::compile(l, &mut slots),
                filter: l.filter.as_ref().map(|f| Filter::compile(f, &mut slots)),
            });
        }
        Ok((!loggers.is_empty()).then_some(AdminLog { loggers, slots }))
    }

    /// Logs one answered request: the raw request bytes, the status and size sent.
    pub fn log(
        &mut self,
        request: &[u8],
        peer: SocketAddr,
        start: Instant,
        status: u16,
        sent: u64,
    ) {
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut hdrs);
        let parsed = req.parse(request).is_ok();
        let minor = req.version.unwrap_or(1);
        let mut rq = Rq::new(start, 0, peer, minor);
        rq.end = Some(Instant::now());
        rq.status = status;
        rq.bytes_tx = sent;
        let c = if parsed {
            let host = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("host"))
                .and_then(|h| std::str::from_utf8(h.value).ok());
            // The admin listener is plain HTTP.
            let parts = (
                req.method.unwrap_or("-"),
                req.path.unwrap_or("-"),
                host,
                &*req.headers,
            );
            crate::observe::capture_request(&self.slots, parts, "http")
        } else {
            Captured::new(&self.slots)
        };
        rq.cap = Some(Box::new(c));
        let now = Instant::now();
        let mut line = Vec::with_capacity(160);
        for l in &mut self.loggers {
            if l.filter.as_ref().is_some_and(|f| !f.matches(&rq, now)) {
                continue;
            }
            line.clear();
            l.format
                .render(&mut line, &rq, &crate::access_log::Names::default());
            if let Err(e) = l.file.write_all(&line) {
                log::debug!("admin access log {}: {e}; line dropped", l.path);
            }
        }
    }
}
