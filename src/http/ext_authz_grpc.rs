//! ext_authz with a gRPC authorization service (`grpc_service.envoy_grpc`): the
//! `envoy.service.auth.v3.CheckRequest` made from a request head and its connection, and the
//! `CheckResponse` read back into what the filter does (Envoy's `check_request_utils.cc` and
//! `ext_authz_grpc_impl.cc`; field numbers from `external_auth.proto`,
//! `attribute_context.proto` and `config/core/v3/base.proto`). The call itself is
//! `grpc::call`.

use std::net::SocketAddr;
use std::time::SystemTime;

use super::codec::{is_hop_by_hop, RequestHead};
use super::rbac::Conn;
use crate::config::AppendAction;
use crate::grpc::proto::{self, Malformed, Value};
use crate::route::edits::Op;

/// The method every check calls.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// A header the service asked for, with Envoy's append semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    pub name: String,
    pub value: String,
    pub action: AppendAction,
}

/// A decoded `CheckResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `status.code` is OK (0).
    pub allowed: bool,
    /// `ok_response.headers`: onto the upstream request.
    pub headers: Vec<Mutation>,
    /// `ok_response.headers_to_remove`.
    pub headers_to_remove: Vec<String>,
    /// `ok_response.response_headers_to_add`: onto the client's response.
    pub response_headers: Vec<Mutation>,
    /// `denied_response.status.code`, 403 when unset.
    pub status: u16,
    /// `denied_response.headers`: onto the denial.
    pub denied_headers: Vec<Mutation>,
    /// `denied_response.body`.
    pub body: String,
}

/// `envoy.config.core.v3.Address` with its `socket_address` (address 2, port_value 3).
fn put_address(out: &mut Vec<u8>, field: u32, a: SocketAddr) {
    proto::put_message(out, field, |peer| {
        proto::put_message(peer, 1, |addr| {
            proto::put_message(addr, 1, |sa| {
                proto::put_bytes(sa, 2, a.ip().to_string().as_bytes());
                proto::put_uint(sa, 3, u64::from(a.port()));
            });
        });
    });
}

/// The `CheckRequest` for `req` on `conn`: source and destination peers, and the request's
/// time and HTTP attributes (id, method, headers as a lower-case map with repeats joined by
/// commas, path, host, scheme, protocol; size is the body bytes received so far, none at the
/// head). `id` stands for Envoy's stream id.
pub(super) fn check_request(
    req: &RequestHead<'_>,
    conn: &Conn<'_>,
    id: u64,
    now: SystemTime,
) -> Vec<u8> {
    let scheme = if req.secure { "https" } else { "http" };
    let host = req.host.unwrap_or_default();
    // The request's header map as Envoy holds it: pseudo-headers first, then each name once.
    let mut headers: Vec<(String, String)> = vec![
        (":authority".into(), host.into()),
        (":path".into(), req.path.into()),
        (":method".into(), req.method.into()),
        (":scheme".into(), scheme.into()),
    ];
    for h in req.headers {
        let name = h.name.to_ascii_lowercase();
        // Envoy's own marker of a partial body; Host is `:authority` already.
        if name == "x-envoy-auth-partial-body" || name == "host" {
            continue;
        }
        let value = String::from_utf8_lossy(h.value);
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => headers.push((name, value.into_owned())),
        }
    }
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(512);
    proto::put_message(&mut out, 1, |attrs| {
        put_address(attrs, 1, conn.source);
        put_address(attrs, 2, conn.local);
        proto::put_message(attrs, 4, |r| {
            proto::put_message(r, 1, |t| {
                proto::put_uint(t, 1, since.as_secs());
                proto::put_uint(t, 2, u64::from(since.subsec_nanos()));
            });
            proto::put_message(r, 2, |h| {
                proto::put_bytes(h, 1, id.to_string().as_bytes());
                proto::put_bytes(h, 2, req.method.as_bytes());
                for (n, v) in &headers {
                    proto::put_map_entry(h, 3, n.as_bytes(), v.as_bytes());
                }
                proto::put_bytes(h, 4, req.path.as_bytes());
                proto::put_bytes(h, 5, host.as_bytes());
                proto::put_bytes(h, 6, scheme.as_bytes());
                let protocol = if req.minor == 0 {
                    "HTTP/1.0"
                } else {
                    "HTTP/1.1"
                };
                proto::put_bytes(h, 10, protocol.as_bytes());
            });
        });
    });
    out
}

/// A header the service may set: a token name (lower-cased) and a value without CR, LF or
/// NUL — anything else would let it forge the message it lands in.
fn checked(name: String, value: String) -> Result<(String, String), Malformed> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) || value.contains(['\r', '\n', '\0']) {
        return Err(Malformed);
    }
    Ok((name.to_ascii_lowercase(), value))
}

/// A `HeaderValueOption` (header 1: key 1, value 2; append 2, a BoolValue; append_action 3).
/// The deprecated `append`, when set, wins (true: append, false: overwrite), as in Envoy's
/// `getAppendAction`; otherwise a non-zero `append_action`. With neither, the header
/// overwrites: `external_auth.proto` says `append` "defaults to false when used in this
/// message", and a client's own copy of a header the service sets (`x-current-user`) must not
/// reach the upstream beside it. (The newest Envoy reads the zero `append_action` as
/// APPEND_IF_EXISTS_OR_ADD, which proto3 cannot tell from unset.) An unknown action overwrites.
fn mutation(msg: &[u8]) -> Result<Mutation, Malformed> {
    let (mut name, mut value) = (String::new(), String::new());
    let mut append = None;
    let mut action = 0;
    proto::fields(msg, |f, v| {
        match f {
            1 => proto::fields(v.bytes().ok_or(Malformed)?, |f, v| {
                match f {
                    1 => name = proto::text(v)?,
                    2 => value = proto::text(v)?,
                    _ => {}
                }
                Ok(())
            })?,
            2 => {
                let mut b = false;
                proto::fields(v.bytes().ok_or(Malformed)?, |f, v| {
                    if f == 1 {
                        b = v.varint().ok_or(Malformed)? != 0;
                    }
                    Ok(())
                })?;
                append = Some(b);
            }
            3 => action = v.varint().ok_or(Malformed)?,
            _ => {}
        }
        Ok(())
    })?;
    let action = match (append, action) {
        (Some(true), _) => AppendAction::AppendIfExistsOrAdd,
        (None, 1) => AppendAction::AddIfAbsent,
        (None, 3) => AppendAction::OverwriteIfExists,
        _ => AppendAction::OverwriteIfExistsOrAdd,
    };
    let (name, value) = checked(name, value)?;
    Ok(Mutation {
        name,
        value,
        action,
    })
}

/// Reads a `CheckResponse` (status 1, denied_response 2, ok_response 3). A malformed message,
/// or a header that could not be sent, makes the check an error.
pub fn decide(msg: &[u8]) -> Result<Decision, Malformed> {
    let mut d = Decision {
        allowed: true,
        headers: Vec::new(),
        headers_to_remove: Vec::new(),
        response_headers: Vec::new(),
        status: 403,
        denied_headers: Vec::new(),
        body: String::new(),
    };
    let (mut denied, mut ok): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    let mut code = 0;
    proto::fields(msg, |f, v| {
        match f {
            // google.rpc.Status: code 1.
            1 => proto::fields(v.bytes().ok_or(Malformed)?, |f, v| {
                if f == 1 {
                    code = v.varint().ok_or(Malformed)?;
                }
                Ok(())
            })?,
            // A oneof: the last one present wins.
            2 => (denied, ok) = (Some(v.bytes().ok_or(Malformed)?), None),
            3 => (ok, denied) = (Some(v.bytes().ok_or(Malformed)?), None),
            _ => {}
        }
        Ok(())
    })?;
    // An int32 on the wire: anything but zero (a negative code too) is not OK.
    d.allowed = code == 0;
    if d.allowed {
        if let Some(ok) = ok {
            proto::fields(ok, |f, v| {
                match f {
                    2 => d.headers.push(mutation(v.bytes().ok_or(Malformed)?)?),
                    5 => d
                        .headers_to_remove
                        .push(proto::text(v)?.to_ascii_lowercase()),
                    6 => d
                        .response_headers
                        .push(mutation(v.bytes().ok_or(Malformed)?)?),
                    _ => {}
                }
                Ok(())
            })?;
        }
    } else if let Some(denied) = denied {
        proto::fields(denied, |f, v: Value<'_>| {
            match f {
                // envoy.type.v3.HttpStatus: code 1 (an enum of HTTP statuses).
                1 => proto::fields(v.bytes().ok_or(Malformed)?, |f, v| {
                    if f == 1 {
                        let c = v.varint().ok_or(Malformed)?;
                        if c > 0 {
                            d.status = u16::try_from(c)
                                .ok()
                                .filter(|c| (100..=999).contains(c))
                                .ok_or(Malformed)?;
                        }
                    }
                    Ok(())
                })?,
                2 => d
                    .denied_headers
                    .push(mutation(v.bytes().ok_or(Malformed)?)?),
                3 => d.body = proto::text(v)?,
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(d)
}

/// The edits a list of mutations makes. Framing, connection and pseudo headers and Host are
/// never touched: they belong to the message they would land in (Envoy ignores them in
/// `headers_to_remove` too).
pub(super) fn edits(m: &[Mutation]) -> Vec<Op> {
    m.iter()
        .filter(|m| !is_hop_by_hop(&m.name) && m.name != "host")
        .map(|m| Op::fixed(&m.name, &m.value, m.action))
        .collect()
}

pub(super) fn removals(names: &[String]) -> Vec<Op> {
    names
        .iter()
        .filter(|n| !is_hop_by_hop(n) && *n != "host" && !n.starts_with(':'))
        .map(|n| Op::Remove(n.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::codec;

    fn hvo(out: &mut Vec<u8>, field: u32, k: &str, v: &str, append: Option<bool>, action: u64) {
        proto::put_message(out, field, |o| {
            proto::put_message(o, 1, |h| {
                proto::put_bytes(h, 1, k.as_bytes());
                proto::put_bytes(h, 2, v.as_bytes());
            });
            if let Some(a) = append {
                proto::put_message(o, 2, |b| proto::put_uint(b, 1, u64::from(a)));
            }
            proto::put_uint(o, 3, action);
        });
    }

    #[test]
    fn an_ok_response_gives_its_header_edits() {
        let mut m = Vec::new();
        proto::put_message(&mut m, 1, |_| {});
        proto::put_message(&mut m, 3, |ok| {
            hvo(ok, 2, "X-Current-User", "u1", Some(false), 0);
            hvo(ok, 2, "x-tag", "a", None, 0);
            hvo(ok, 2, "x-more", "m", Some(true), 2);
            hvo(ok, 2, "x-once", "b", None, 1);
            proto::put_bytes(ok, 5, b"Authorization");
            hvo(ok, 6, "x-resp", "r", None, 2);
        });
        let d = decide(&m).unwrap();
        assert!(d.allowed);
        assert_eq!(d.headers[0].name, "x-current-user");
        assert_eq!(d.headers[0].action, AppendAction::OverwriteIfExistsOrAdd);
        assert_eq!(d.headers[1].action, AppendAction::OverwriteIfExistsOrAdd);
        assert_eq!(d.headers[2].action, AppendAction::AppendIfExistsOrAdd);
        assert_eq!(d.headers[3].action, AppendAction::AddIfAbsent);
        assert_eq!(d.headers_to_remove, ["authorization"]);
        assert_eq!(d.response_headers.len(), 1);
        assert_eq!(
            removals(&["host".into(), ":path".into(), "x-a".into()]).len(),
            1
        );
    }

    #[test]
    fn a_denial_carries_its_status_headers_and_body_and_403_by_default() {
        let mut m = Vec::new();
        proto::put_message(&mut m, 1, |s| proto::put_uint(s, 1, 7));
        proto::put_message(&mut m, 2, |dn| {
            proto::put_message(dn, 1, |s| proto::put_uint(s, 1, 401));
            hvo(dn, 2, "x-why", "no", None, 0);
            proto::put_bytes(dn, 3, b"go away");
        });
        let d = decide(&m).unwrap();
        assert!(!d.allowed);
        assert_eq!((d.status, d.body.as_str()), (401, "go away"));
        assert_eq!(d.denied_headers.len(), 1);
        let mut m = Vec::new();
        proto::put_message(&mut m, 1, |s| proto::put_uint(s, 1, 16));
        let d = decide(&m).unwrap();
        assert_eq!((d.allowed, d.status), (false, 403));
        // No status at all is OK (proto3's zero).
        assert!(decide(&[]).unwrap().allowed);
    }

    #[test]
    fn a_header_that_would_forge_the_message_is_malformed() {
        for (k, v) in [("x-a", "1\r\nx-b: 2"), ("bad name", "v"), ("", "v")] {
            let mut m = Vec::new();
            proto::put_message(&mut m, 3, |ok| hvo(ok, 2, k, v, None, 0));
            assert_eq!(decide(&m), Err(Malformed), "{k:?}");
        }
        assert_eq!(decide(&[0x0a, 9]), Err(Malformed));
    }

    #[test]
    fn the_check_request_has_the_attributes() {
        let mut slots = codec::header_slots();
        let raw = b"GET /p?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
        let Ok(Some(req)) = codec::parse_request(raw, &mut slots) else {
            panic!("parse");
        };
        let a: SocketAddr = "10.0.0.1:5555".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let conn = Conn {
            local: b,
            direct: a,
            source: a,
            client: a,
            tls: None,
        };
        let m = check_request(&req, &conn, 42, SystemTime::UNIX_EPOCH);
        // CheckRequest.attributes → request → http.
        let mut attrs = None;
        proto::fields(&m, |f, v| {
            assert_eq!(f, 1);
            attrs = v.bytes();
            Ok(())
        })
        .unwrap();
        let (mut http, mut source) = (None, None);
        proto::fields(attrs.unwrap(), |f, v| {
            match f {
                1 => source = v.bytes(),
                4 => proto::fields(v.bytes().unwrap(), |f, v| {
                    if f == 2 {
                        http = v.bytes();
                    }
                    Ok(())
                })?,
                _ => {}
            }
            Ok(())
        })
        .unwrap();
        assert!(source.unwrap().windows(8).any(|w| w == b"10.0.0.1"));
        let mut got = Vec::new();
        proto::fields(http.unwrap(), |f, v| {
            if f == 3 {
                let mut kv = Vec::new();
                proto::fields(v.bytes().unwrap(), |_, v| {
                    kv.push(proto::text(v)?);
                    Ok(())
                })?;
                got.push(kv.join("="));
            } else if let Some(b) = v.bytes() {
                got.push(format!("{f}:{}", String::from_utf8_lossy(b)));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(
            got,
            [
                "1:42",
                "2:GET",
                ":authority=h",
                ":path=/p?q=1",
                ":method=GET",
                ":scheme=http",
                "x-a=1,2",
                "4:/p?q=1",
                "5:h",
                "6:http",
                "10:HTTP/1.1"
            ]
        );
    }
}
