//! `admin.access_log_path`: one line per admin request in Envoy's default access-log format,
//! written at once (admin requests are rare) without blocking: the file is opened
//! non-blocking, and a line the file will not take is dropped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Instant;

use crate::access_log::{Captured, Format, Rq, Slots};

pub struct AdminLog {
    path: String,
    file: File,
    format: Format,
    slots: Slots,
}

impl AdminLog {
    /// Opens the log; a file that cannot be opened is a start-up error naming it.
    pub fn open(path: &str) -> Result<AdminLog, String> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| format!("admin.access_log_path {path}: {e}"))?;
        let mut slots = Slots::default();
        let format = Format::compile(crate::config::DEFAULT_ACCESS_LOG_FORMAT, &mut slots);
        Ok(AdminLog {
            path: path.to_string(),
            file,
            format,
            slots,
        })
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
            crate::observe::capture_request(
                &self.slots,
                req.method.unwrap_or("-"),
                req.path.unwrap_or("-"),
                host,
                req.headers,
            )
        } else {
            Captured::new(&self.slots)
        };
        rq.cap = Some(Box::new(c));
        let mut line = Vec::with_capacity(160);
        self.format
            .render(&mut line, &rq, &crate::access_log::Names::default());
        if let Err(e) = self.file.write_all(&line) {
            log::debug!("admin access log {}: {e}; line dropped", self.path);
        }
    }
}
