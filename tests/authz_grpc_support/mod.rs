//! A gRPC authorization service of the tests' own: python `grpcio` serving
//! `envoy.service.auth.v3.Authorization/Check` with a generic handler on raw bytes, the few
//! protobuf fields it reads and writes coded by hand. It records each check (method, path,
//! host, the request's header map, the source address, the call's metadata) as a JSON line, and
//! decides by the checked request:
//!
//! | request | answer |
//! |---|---|
//! | `authorization: Bearer NAME` | OK: `x-current-user: NAME` (append false) and `x-tag: t` (neither append nor action) set upstream, `x-list: s` appended, `x-drop-me` removed, `x-authz-note: ok` on the response |
//! | path containing `/slow` | OK after 2 s (past the tests' check timeouts) |
//! | path containing `/unavailable` | the call fails with UNAVAILABLE |
//! | path containing `/garbage` | a response message that is not protobuf |
//! | anything else | PERMISSION_DENIED with a 401, `x-authz-reason: no token` and a body |

use std::process::{Child, Command, Stdio};

const SERVER: &str = r#"
import json, sys, time
from concurrent import futures
import grpc

record = sys.argv[1]

def varint(b, i):
    v, s = 0, 0
    while True:
        c = b[i]; i += 1
        v |= (c & 0x7f) << s; s += 7
        if c < 0x80:
            return v, i

def fields(b):
    i, out = 0, []
    while i < len(b):
        k, i = varint(b, i)
        f, w = k >> 3, k & 7
        if w == 0:
            v, i = varint(b, i)
        elif w == 2:
            n, i = varint(b, i); v = b[i:i + n]; i += n
        elif w == 1:
            v = b[i:i + 8]; i += 8
        else:
            v = b[i:i + 4]; i += 4
        out.append((f, v))
    return out

def one(b, f):
    for g, v in fields(b):
        if g == f:
            return v
    return b""

def put_varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7f) | 0x80]); v >>= 7
    return out + bytes([v])

def ld(f, b):
    return put_varint((f << 3) | 2) + put_varint(len(b)) + b

def num(f, v):
    return put_varint(f << 3) + put_varint(v)

def hvo(k, v, append=None):
    out = ld(1, ld(1, k.encode()) + ld(2, v.encode()))
    if append is not None:
        out += ld(2, num(1, 1 if append else 0))
    return out

def check(request, context):
    attrs = one(request, 1)
    http = one(one(attrs, 4), 2)
    headers = {}
    for f, v in fields(http):
        if f == 3:
            headers[one(v, 1).decode()] = one(v, 2).decode()
    source = one(one(one(one(attrs, 1), 1), 1), 2).decode()
    path = one(http, 4).decode()
    seen = {
        "method": one(http, 2).decode(), "path": path, "host": one(http, 5).decode(),
        "headers": headers, "source": source,
        "metadata": {k: v for k, v in context.invocation_metadata()},
    }
    with open(record, "a") as f:
        f.write(json.dumps(seen) + "\n")
    if "/slow" in path:
        time.sleep(2)
    if "/unavailable" in path:
        context.abort(grpc.StatusCode.UNAVAILABLE, "authz is down")
    if "/garbage" in path:
        return b"\xff\xff\xff"
    auth = headers.get("authorization", "")
    if auth.startswith("Bearer "):
        ok = (ld(2, hvo("x-current-user", auth[7:], append=False)) + ld(2, hvo("x-tag", "t"))
              + ld(2, hvo("x-list", "s", append=True)) + ld(5, b"x-drop-me")
              + ld(6, hvo("x-authz-note", "ok")))
        return ld(1, b"") + ld(3, ok)
    denied = ld(1, num(1, 401)) + ld(2, hvo("x-authz-reason", "no token")) + ld(3, b"denied by grpc authz")
    return ld(1, num(1, 7)) + ld(2, denied)

server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
    "envoy.service.auth.v3.Authorization",
    {"Check": grpc.unary_unary_rpc_method_handler(check)}),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
"#;

/// The running service; killed (by its PID) on drop.
pub struct GrpcAuthz {
    child: Child,
    pub port: u16,
    record: std::path::PathBuf,
}

impl GrpcAuthz {
    pub fn start(name: &str) -> GrpcAuthz {
        use std::io::BufRead;
        let record = crate::common::baton::log_path(name);
        let _ = std::fs::remove_file(&record);
        let mut child = Command::new("python3")
            .args(["-c", SERVER, record.to_str().expect("utf-8 path")])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 (with the grpcio package) is needed");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the gRPC authorization service did not start (is grpcio installed?)");
        };
        GrpcAuthz {
            child,
            port,
            record,
        }
    }

    /// The checks received so far, as JSON (read as YAML, its superset).
    pub fn seen(&self) -> Vec<serde_yaml::Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_yaml::from_str(l).ok())
            .collect()
    }
}

impl Drop for GrpcAuthz {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
