//! Responses baton makes itself (no route, no upstream, timeouts, bad requests), shaped as
//! Envoy's local replies so clients and dashboards see the same thing.

use super::codec::{put_header, reason_phrase};

/// Envoy's body for a cluster with no usable host.
pub const NO_HEALTHY_UPSTREAM: &str = "no healthy upstream";
/// Envoy's body when the upstream failed before a response head: the reset reason
/// (`remote connection failure`, `connection timeout`, `connection termination`,
/// `protocol error`), "retried and the latest" when retries were made, and the transport
/// failure reason of a failed connect (`delayed connect error: 111`).
pub fn upstream_failure(retried: bool, reason: &str, transport: Option<&str>) -> String {
    let mut b = String::from("upstream connect error or disconnect/reset before headers. ");
    if retried {
        b.push_str("retried and the latest ");
    }
    b.push_str("reset reason: ");
    b.push_str(reason);
    if let Some(t) = transport {
        b.push_str(", transport failure reason: ");
        b.push_str(t);
    }
    b
}
/// Envoy's body for the stream idle timeout.
pub const STREAM_TIMEOUT: &str = "stream timeout";
/// Envoy's body for `request_timeout` (408).
pub const REQUEST_TIMEOUT: &str = "request timeout";
/// Envoy's body for the route timeout.
pub const UPSTREAM_TIMEOUT: &str = "upstream request timeout";

/// Makes the status line written at `start` of `out` say `HTTP/1.0` (it says `HTTP/1.1`):
/// what Envoy answers an HTTP/1.0 request it serves.
pub fn as_http_10(out: &mut [u8], start: usize) {
    if let Some(v) = out.get_mut(start..start + 8) {
        if v == b"HTTP/1.1" {
            v[7] = b'0';
        }
    }
}

/// Serialises a complete local reply (head and body) into `out`; returns the body bytes
/// written. `content_type` is written when the body is not empty; `extra` headers (a
/// redirect's Location, a route's response edits, a local reply mapper's headers) go after
/// the content headers and before date/server, which baton always sets itself.
#[allow(clippy::too_many_arguments)]
pub fn write_local_reply(
    out: &mut Vec<u8>,
    status: u16,
    body: &str,
    close: bool,
    server_name: &str,
    date: &str,
    content_type: Option<&str>,
    extra: &[(&str, &str)],
) -> usize {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    // RFC 9110 §8.6, §15.3.5: a 204 carries no body and no Content-Length.
    let body = if status == 204 { "" } else { body };
    if status != 204 {
        put_header(out, "content-length", body.len().to_string().as_bytes());
    }
    if let (false, Some(ct)) = (body.is_empty(), content_type) {
        put_header(out, "content-type", ct.as_bytes());
    }
    for (n, v) in extra {
        put_header(out, n, v.as_bytes());
    }
    put_header(out, "date", date.as_bytes());
    put_header(out, "server", server_name.as_bytes());
    if close {
        put_header(out, "connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    body.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_reply_is_complete_http() {
        let mut v = Vec::new();
        write_local_reply(
            &mut v,
            503,
            NO_HEALTHY_UPSTREAM,
            true,
            "baton",
            "D",
            Some("text/plain"),
            &[],
        );
        let s = String::from_utf8(v).unwrap();
        assert!(s.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(s.contains("content-length: 19\r\n"));
        assert!(s.contains("connection: close\r\n"));
        assert!(s.ends_with("\r\n\r\nno healthy upstream"));
    }
}
