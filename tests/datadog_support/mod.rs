//! A Datadog agent for the tests, in Python on 127.0.0.1: it receives `POST /v0.4/traces`,
//! decodes the msgpack itself (no library), checks the headers and the trace count, writes
//! one JSON span per line and answers with the `rate_by_service` it was started with.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use super::common;

const AGENT: &str = r#"
import http.server, json, struct, sys
out, rates, host = sys.argv[1], sys.argv[2], sys.argv[3]

def decode(b, i):
    t = b[i]; i += 1
    def n(k, fmt):
        return struct.unpack('>' + fmt, b[i:i + k])[0], i + k
    if t <= 0x7f: return t, i
    if t >= 0xe0: return t - 256, i
    if 0x80 <= t <= 0x8f: return dmap(b, i, t & 15)
    if 0x90 <= t <= 0x9f: return darr(b, i, t & 15)
    if 0xa0 <= t <= 0xbf: return b[i:i + (t & 31)].decode(), i + (t & 31)
    if t == 0xd9: k, i = n(1, 'B'); return b[i:i + k].decode(), i + k
    if t == 0xda: k, i = n(2, 'H'); return b[i:i + k].decode(), i + k
    if t == 0xdb: k, i = n(4, 'I'); return b[i:i + k].decode(), i + k
    if t == 0xdc: k, i = n(2, 'H'); return darr(b, i, k)
    if t == 0xdd: k, i = n(4, 'I'); return darr(b, i, k)
    if t == 0xde: k, i = n(2, 'H'); return dmap(b, i, k)
    if t == 0xdf: k, i = n(4, 'I'); return dmap(b, i, k)
    fmts = {0xcc: (1, 'B'), 0xcd: (2, 'H'), 0xce: (4, 'I'), 0xcf: (8, 'Q'),
            0xd0: (1, 'b'), 0xd1: (2, 'h'), 0xd2: (4, 'i'), 0xd3: (8, 'q'), 0xcb: (8, 'd')}
    if t in fmts: return n(*fmts[t])
    raise ValueError('type %x' % t)

def darr(b, i, k):
    r = []
    for _ in range(k):
        v, i = decode(b, i); r.append(v)
    return r, i

def dmap(b, i, k):
    r = {}
    for _ in range(k):
        key, i = decode(b, i); v, i = decode(b, i); r[key] = v
    return r, i

class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('content-length', '0')))
        ok = self.path == '/v0.4/traces'
        ok = ok and self.headers.get('content-type') == 'application/msgpack'
        ok = ok and self.headers.get('host') == host
        try:
            chunks, end = decode(body, 0)
            ok = ok and end == len(body) and isinstance(chunks, list)
            ok = ok and int(self.headers.get('x-datadog-trace-count')) == len(chunks)
        except Exception as e:
            ok = False
        with open(out, 'a') as f:
            if ok:
                for c in chunks:
                    for s in c:
                        f.write(json.dumps(s, sort_keys=True) + '\n')
            else:
                f.write('BAD ' + self.path + ' ' + repr(body) + '\n')
        answer = ('{"rate_by_service": %s}' % rates).encode()
        self.send_response(200 if ok else 400)
        self.send_header('content-length', str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(('127.0.0.1', 0), H)
print(s.server_port, flush=True)
s.serve_forever()
"#;

/// The Python agent; killed (by its PID) when dropped.
pub struct Agent {
    child: Child,
    pub port: u16,
    out: PathBuf,
}

impl Agent {
    /// An agent answering every report with `rates` (a JSON object), expecting the reports'
    /// Host to be `host`.
    pub fn start(rates: &str, host: &str) -> Agent {
        let (child, port, out) = common::python_recorder(AGENT, "datadog-spans", &[rates, host]);
        Agent { child, port, out }
    }

    /// What the agent wrote: one JSON span per line, or `BAD …` for a report it refused.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The span with id `id`, waiting (bounded) for it to be reported.
    pub fn span(&self, id: &str) -> String {
        let want = format!("\"span_id\": {id},");
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.lines().into_iter().find(|s| s.contains(&want)) {
                return s;
            }
            if Instant::now() >= end {
                panic!("no span {id} in {:?}", self.lines());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the agent now (a dead agent).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}
