//! Upgrades (WebSocket and other `Upgrade:` protocols) and CONNECT: which requests ask for one,
//! and whether the connection manager and the route allow it, with Envoy's rules.

use super::codec::{named_in_connection, RequestHead};
use crate::config::RouteUpgrade;

/// How an allowed upgrade request is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// Forwarded with its `Upgrade` header and `Connection: upgrade`; a 101 opens the tunnel.
    Upgrade,
    /// CONNECT forwarded as a request (the upstream terminates it); a 2xx opens the tunnel.
    Connect,
    /// CONNECT terminated here: connect to the route's cluster, answer 200, then pipe.
    Terminate,
}

/// The upgrade type a request asks for: `CONNECT` for a CONNECT request, else the `Upgrade`
/// header's value when `Connection` names `upgrade`. `h2c` is no upgrade for an HTTP/1-only
/// proxy: as Envoy does, such a request is served as a plain one (the headers are dropped).
pub fn requested<'a>(req: &RequestHead<'a>) -> Option<&'a [u8]> {
    if req.method == "CONNECT" {
        return Some(b"CONNECT");
    }
    if !named_in_connection(req.headers, "upgrade") {
        return None;
    }
    let value = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("upgrade"))?
        .value
        .trim_ascii();
    (!value.is_empty() && !value.eq_ignore_ascii_case(b"h2c")).then_some(value)
}

/// Envoy's table: a route entry for the type decides (enabled or not); without one, the
/// connection manager's entry does (enabled by default). `None`: refused (403).
pub fn allowed(
    hcm: &[(String, bool)],
    route: &[RouteUpgrade],
    requested: &[u8],
    connect: bool,
) -> Option<Upgrade> {
    let is = |t: &str| t.as_bytes().eq_ignore_ascii_case(requested);
    let on = match route.iter().find(|u| is(&u.upgrade_type)) {
        Some(u) => u.enabled.then_some(u.terminate_connect),
        None => hcm
            .iter()
            .find(|(t, _)| is(t))
            .and_then(|(_, on)| on.then_some(false)),
    };
    match (on?, connect) {
        (true, true) => Some(Upgrade::Terminate),
        (false, true) => Some(Upgrade::Connect),
        (_, false) => Some(Upgrade::Upgrade),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ru(t: &str, enabled: bool, terminate: bool) -> RouteUpgrade {
        RouteUpgrade {
            upgrade_type: t.into(),
            enabled,
            terminate_connect: terminate,
        }
    }

    #[test]
    fn envoys_enable_table() {
        let hcm_on = [("websocket".to_string(), true)];
        let hcm_off = [("websocket".to_string(), false)];
        let ws = b"WebSocket";
        // HCM T, route default → T; HCM T, route F → F; HCM F, route T → T; HCM F → F.
        assert_eq!(allowed(&hcm_on, &[], ws, false), Some(Upgrade::Upgrade));
        let off = [ru("websocket", false, false)];
        assert_eq!(allowed(&hcm_on, &off, ws, false), None);
        let on = [ru("websocket", true, false)];
        assert_eq!(allowed(&hcm_off, &on, ws, false), Some(Upgrade::Upgrade));
        assert_eq!(allowed(&hcm_off, &[], ws, false), None);
        // Not configured anywhere: refused; another type does not count.
        assert_eq!(allowed(&[], &[], ws, false), None);
        assert_eq!(allowed(&hcm_on, &[], b"spdy/3", false), None);
        // CONNECT: forwarded unless the route terminates it.
        let hcm_c = [("connect".to_string(), true)];
        assert_eq!(
            allowed(&hcm_c, &[], b"CONNECT", true),
            Some(Upgrade::Connect)
        );
        let term = [ru("connect", true, true)];
        assert_eq!(
            allowed(&[], &term, b"CONNECT", true),
            Some(Upgrade::Terminate)
        );
    }

    /// What `requested` says of a raw head, and the head's (path, host).
    fn ask(raw: &[u8]) -> (Option<Vec<u8>>, String, Option<String>) {
        let mut slots = crate::http::codec::header_slots();
        let req = crate::http::codec::parse_request(raw, &mut slots)
            .unwrap()
            .unwrap();
        let t = requested(&req).map(<[u8]>::to_vec);
        (t, req.path.to_string(), req.host.map(str::to_string))
    }

    #[test]
    fn requested_needs_connection_upgrade() {
        let r = ask(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: keep-alive, Upgrade\r\nupgrade: websocket\r\n\r\n");
        assert_eq!(r.0.as_deref(), Some(&b"websocket"[..]));
        let r = ask(b"GET / HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\n\r\n");
        assert_eq!(r.0, None);
        let r = ask(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n");
        assert_eq!(r.0, None);
        let r = ask(b"CONNECT a.test:443 HTTP/1.1\r\nhost: a.test:443\r\n\r\n");
        assert_eq!(r.0.as_deref(), Some(&b"CONNECT"[..]));
        assert_eq!(
            (r.1.as_str(), r.2.as_deref()),
            ("a.test:443", Some("a.test:443"))
        );
    }
}
