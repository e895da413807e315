//! What baton remembers about one request for its stats and access log. Kept small and
//! allocation-free; the captured header values exist only when a format prints them.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use super::format::Slots;

/// Envoy's %RESPONSE_FLAGS%: why a request ended the way it did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u16);

impl Flags {
    /// No route configured for the request (404).
    pub const NR: u16 = 1;
    /// Upstream connection failure (connect refused, connect timeout).
    pub const UF: u16 = 1 << 1;
    /// No healthy upstream host in the cluster.
    pub const UH: u16 = 1 << 2;
    /// Upstream request timeout (route timeout, 504).
    pub const UT: u16 = 1 << 3;
    /// The retry limit was exceeded.
    pub const URX: u16 = 1 << 4;
    /// Upstream connection termination (closed or reset before the response was complete).
    pub const UC: u16 = 1 << 5;
    /// Downstream connection termination (the client went away first).
    pub const DC: u16 = 1 << 6;
    /// Connection local reset.
    pub const LR: u16 = 1 << 7;
    /// Downstream protocol error (bad request head or body).
    pub const DPE: u16 = 1 << 8;
    /// Upstream protocol error (the response was not HTTP/1).
    pub const UPE: u16 = 1 << 9;
    /// Stream idle timeout.
    pub const SI: u16 = 1 << 10;

    /// Envoy's order of the short codes in %RESPONSE_FLAGS%.
    const NAMES: [(u16, &'static str); 11] = [
        (Self::LR, "LR"),
        (Self::UH, "UH"),
        (Self::UF, "UF"),
        (Self::UC, "UC"),
        (Self::UT, "UT"),
        (Self::NR, "NR"),
        (Self::URX, "URX"),
        (Self::DC, "DC"),
        (Self::DPE, "DPE"),
        (Self::UPE, "UPE"),
        (Self::SI, "SI"),
    ];

    pub fn set(&mut self, f: u16) {
        self.0 |= f;
    }

    pub fn has(self, f: u16) -> bool {
        self.0 & f != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Comma-separated codes, nothing when empty (the renderer prints `-`).
    pub fn write(self, out: &mut String) {
        for (bit, name) in Self::NAMES {
            if self.has(bit) {
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(name);
            }
        }
    }
}

/// Header values some format prints, by the listener's capture slots.
#[derive(Debug, Clone)]
pub struct Captured {
    pub start_wall: SystemTime,
    pub req: Vec<Option<String>>,
    pub resp: Vec<Option<String>>,
}

impl Captured {
    pub fn new(slots: &Slots) -> Captured {
        Captured {
            start_wall: SystemTime::now(),
            req: vec![None; slots.req.len()],
            resp: vec![None; slots.resp.len()],
        }
    }
}

/// One request, from its head to its end.
#[derive(Debug, Clone)]
pub struct Rq {
    pub start: Instant,
    pub end: Option<Instant>,
    pub listener: usize,
    pub peer: SocketAddr,
    /// HTTP/1.x minor version of the request.
    pub minor: u8,
    /// Status sent to the client; 0 when none was.
    pub status: u16,
    pub flags: Flags,
    /// Request body bytes received.
    pub bytes_rx: u64,
    /// Response body bytes sent.
    pub bytes_tx: u64,
    pub cluster: Option<usize>,
    pub upstream: Option<SocketAddr>,
    /// Present only when the listener has an access log.
    pub cap: Option<Box<Captured>>,
}

impl Rq {
    pub fn new(start: Instant, listener: usize, peer: SocketAddr, minor: u8) -> Rq {
        Rq {
            start,
            end: None,
            listener,
            peer,
            minor,
            status: 0,
            flags: Flags::default(),
            bytes_rx: 0,
            bytes_tx: 0,
            cluster: None,
            upstream: None,
            cap: None,
        }
    }

    pub fn duration_ms(&self) -> u128 {
        self.end
            .unwrap_or(self.start)
            .saturating_duration_since(self.start)
            .as_millis()
    }
}
