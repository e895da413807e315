//! What baton remembers about one request for its stats and access log. Kept small and
//! allocation-free; the captured header values exist only when a format prints them.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use super::format::Slots;

/// Envoy's %RESPONSE_FLAGS%: why a request ended the way it did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u32);

impl Flags {
    /// No route configured for the request (404).
    pub const NR: u32 = 1;
    /// Upstream connection failure (connect refused, connect timeout).
    pub const UF: u32 = 1 << 1;
    /// No healthy upstream host in the cluster.
    pub const UH: u32 = 1 << 2;
    /// Upstream request timeout (route timeout, 504).
    pub const UT: u32 = 1 << 3;
    /// The retry limit was exceeded.
    pub const URX: u32 = 1 << 4;
    /// Upstream connection termination (closed or reset before the response was complete).
    pub const UC: u32 = 1 << 5;
    /// Downstream connection termination (the client went away first).
    pub const DC: u32 = 1 << 6;
    /// Connection local reset.
    pub const LR: u32 = 1 << 7;
    /// Downstream protocol error (bad request head or body).
    pub const DPE: u32 = 1 << 8;
    /// Upstream protocol error (the response was not HTTP/1).
    pub const UPE: u32 = 1 << 9;
    /// Stream idle timeout.
    pub const SI: u32 = 1 << 10;
    /// Upstream overflow: a retry refused by the cluster's retry limit.
    pub const UO: u32 = 1 << 11;
    /// Failed local health check: the health check filter answered 503.
    pub const LH: u32 = 1 << 12;
    /// Duration timeout: a TCP proxy connection reached `max_downstream_connection_duration`.
    pub const DT: u32 = 1 << 13;
    /// Rate limited: the local rate limit filter answered (429).
    pub const RL: u32 = 1 << 14;
    /// Fault injected: the fault filter answered with its abort status.
    pub const FI: u32 = 1 << 15;
    /// Delay injected: the fault filter held the request before forwarding it.
    pub const DI: u32 = 1 << 16;
    /// Unauthorized by an external service: the ext_authz filter denied the request.
    pub const UAEX: u32 = 1 << 17;
    /// Upstream remote reset: an HTTP/2 upstream reset the request's stream.
    pub const UR: u32 = 1 << 18;
    /// Downstream remote reset: an HTTP/2 client reset the request's stream.
    pub const DR: u32 = 1 << 19;

    /// Envoy's order of the short codes in %RESPONSE_FLAGS%.
    pub const NAMES: [(u32, &'static str); 20] = [
        (Self::LH, "LH"),
        (Self::LR, "LR"),
        (Self::UR, "UR"),
        (Self::UH, "UH"),
        (Self::UF, "UF"),
        (Self::UC, "UC"),
        (Self::UO, "UO"),
        (Self::UT, "UT"),
        (Self::NR, "NR"),
        (Self::DI, "DI"),
        (Self::FI, "FI"),
        (Self::RL, "RL"),
        (Self::UAEX, "UAEX"),
        (Self::URX, "URX"),
        (Self::DC, "DC"),
        (Self::DPE, "DPE"),
        (Self::DT, "DT"),
        (Self::UPE, "UPE"),
        (Self::SI, "SI"),
        (Self::DR, "DR"),
    ];

    pub fn set(&mut self, f: u32) {
        self.0 |= f;
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    /// The bits a tunnel carries to the next process: the hot-restart wire format has 16
    /// (`Tunnels.flags: u16`, frozen so that any two releases can hand over). The bits above
    /// them are DI, lost on a moved tunnel's log line, and UAEX and UR, which never reach a
    /// tunnel (a denied request is never upgraded; nothing is upgraded over HTTP/2).
    pub fn wire_bits(self) -> u16 {
        (self.0 & 0xffff) as u16
    }

    pub fn from_wire_bits(b: u16) -> Flags {
        Flags(u32::from(b))
    }

    pub fn has(self, f: u32) -> bool {
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

/// Header values some format prints, by the listener's capture slots. All values share one
/// text buffer (three allocations per request, however many headers are captured).
#[derive(Debug, Clone)]
pub struct Captured {
    pub start_wall: SystemTime,
    text: String,
    req: Vec<Option<(u32, u32)>>,
    resp: Vec<Option<(u32, u32)>>,
}

impl Captured {
    pub fn new(slots: &Slots) -> Captured {
        Captured {
            start_wall: SystemTime::now(),
            text: String::with_capacity(128),
            req: vec![None; slots.req.len()],
            resp: vec![None; slots.resp.len()],
        }
    }

    /// Empties a used record for another request (its allocations are kept).
    pub fn reset(&mut self, slots: &Slots) {
        self.start_wall = SystemTime::now();
        self.text.clear();
        self.req.clear();
        self.req.resize(slots.req.len(), None);
        self.resp.clear();
        self.resp.resize(slots.resp.len(), None);
    }

    /// Stores request (`resp` false) or response slot `i`: the values joined with ","
    /// (how Envoy presents a repeated header); nothing when there is none.
    pub fn put<'a>(&mut self, resp: bool, i: usize, values: impl Iterator<Item = &'a [u8]>) {
        self.put_joined(resp, i, ",", values);
    }

    /// `put` with the values joined by `sep`.
    pub fn put_joined<'a>(
        &mut self,
        resp: bool,
        i: usize,
        sep: &str,
        values: impl Iterator<Item = &'a [u8]>,
    ) {
        let start = self.text.len();
        let mut any = false;
        for v in values {
            if any {
                self.text.push_str(sep);
            }
            any = true;
            match std::str::from_utf8(v) {
                Ok(s) => self.text.push_str(s),
                Err(_) => self.text.push_str(&String::from_utf8_lossy(v)),
            }
        }
        let list = if resp { &mut self.resp } else { &mut self.req };
        if let (true, Some(slot)) = (any, list.get_mut(i)) {
            *slot = Some((start as u32, self.text.len() as u32));
        }
    }

    /// Forgets request slot `i` (a header the connection manager removed).
    pub fn clear_req(&mut self, i: usize) {
        if let Some(s) = self.req.get_mut(i) {
            *s = None;
        }
    }

    fn get(&self, list: &[Option<(u32, u32)>], i: usize) -> Option<&str> {
        let (a, b) = (*list.get(i)?)?;
        self.text.get(a as usize..b as usize)
    }

    pub fn req(&self, i: usize) -> Option<&str> {
        self.get(&self.req, i)
    }

    pub fn resp(&self, i: usize) -> Option<&str> {
        self.get(&self.resp, i)
    }
}

/// One request, from its head to its end.
#[derive(Debug, Clone)]
pub struct Rq {
    pub start: Instant,
    pub end: Option<Instant>,
    pub listener: usize,
    /// The trusted client address (Envoy's downstream remote address).
    pub peer: SocketAddr,
    /// The connection's peer (Envoy's downstream direct remote address).
    pub direct_peer: SocketAddr,
    /// The connection's local address, when a format prints it.
    pub local: Option<SocketAddr>,
    /// The process-wide number of the client connection (%CONNECTION_ID%).
    pub conn_id: u64,
    /// (virtual host, route) indices of the matched route.
    pub route: Option<(usize, usize)>,
    /// Upstream attempts made (0: never sent upstream).
    pub attempts: u32,
    /// Envoy's %RESPONSE_CODE_DETAILS%; empty until something decided the response.
    pub details: Cow<'static, str>,
    /// A failed upstream connect: (failed at once, errno), for
    /// %UPSTREAM_TRANSPORT_FAILURE_REASON% and the details.
    pub connect_error: Option<(bool, i32)>,
    /// Local address of the upstream connection of the last attempt.
    pub upstream_local: Option<SocketAddr>,
    /// When the request was received in full, and when the first upstream response byte
    /// was read (the %REQUEST_DURATION% and %RESPONSE_DURATION% instants).
    pub req_done: Option<Instant>,
    pub resp_first: Option<Instant>,
    /// The body of a local reply, kept only when the listener logs.
    pub local_body: Option<Box<str>>,
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
    /// The client connection's TLS session; `None` for plain connections.
    pub tls: Option<std::rc::Rc<TlsInfo>>,
    /// The request's span, when its connection manager traces.
    pub span: Option<Box<crate::tracing::Span>>,
    /// Traced because an internal caller forced it (Envoy's trace reason `ServiceForced`).
    pub trace_forced: bool,
    /// The health check filter took the request as a health check (Envoy's
    /// `StreamInfo::healthCheck`), answered here or passed through.
    pub health_check: bool,
    /// A fault filter's delay holds the request: the filter's `active_faults` gauge, given
    /// back (by the fault filter) when the delay or the request ends.
    pub active_fault: Option<crate::stats::Gauge>,
}

/// A downstream TLS session as the access log prints it; shared by its connection's requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// The client certificate's subject (RFC 2253), when it sent one.
    pub peer_subject: Option<String>,
    /// The client certificate's URI and DNS subject alternative names (an RBAC principal's
    /// `authenticated` reads them).
    pub peer_uri_sans: Vec<String>,
    pub peer_dns_sans: Vec<String>,
}

impl Rq {
    pub fn new(start: Instant, listener: usize, peer: SocketAddr, minor: u8) -> Rq {
        Rq {
            start,
            end: None,
            listener,
            peer,
            direct_peer: peer,
            local: None,
            conn_id: 0,
            route: None,
            attempts: 0,
            details: Cow::Borrowed(""),
            connect_error: None,
            upstream_local: None,
            req_done: None,
            resp_first: None,
            local_body: None,
            minor,
            status: 0,
            flags: Flags::default(),
            bytes_rx: 0,
            bytes_tx: 0,
            cluster: None,
            upstream: None,
            cap: None,
            tls: None,
            span: None,
            trace_forced: false,
            health_check: false,
            active_fault: None,
        }
    }

    /// Sets %RESPONSE_CODE_DETAILS% unless something already explained the response.
    pub fn detail(&mut self, d: impl Into<Cow<'static, str>>) {
        if self.details.is_empty() {
            self.details = d.into();
        }
    }

    /// Envoy's transport failure reason of a failed connect, e.g. `delayed connect error: 111`
    /// (the access log writes it with `_` for spaces).
    pub fn transport_failure(&self) -> Option<String> {
        self.connect_error.map(|(at_once, errno)| {
            let when = if at_once { "immediate" } else { "delayed" };
            format!("{when} connect error: {errno}")
        })
    }

    pub fn duration_ms(&self) -> u128 {
        self.end
            .unwrap_or(self.start)
            .saturating_duration_since(self.start)
            .as_millis()
    }
}
