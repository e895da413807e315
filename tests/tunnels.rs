//! WebSocket upgrades and CONNECT tunnels through the real binary: a real WebSocket client and
//! server (python `websockets`), Envoy's 403 for an upgrade nobody allowed, half-close and
//! reset in each direction (raw TCP peers), the tunnel idle timeout, a long download through a
//! terminated CONNECT (raw TCP and curl's proxy tunnel), and tunnels that move to the new
//! process at each hot restart.

mod admin_util;
mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use admin_util::{eventually, stat, wait_live};
use common::baton::log_path;
use common::hot::{expect_exit_code, hot_start, hot_takeover, HotDir, EXIT_WAIT};
use common::*;

/// Options of one test set-up.
#[derive(Default)]
struct Opts {
    /// The connection manager allows `websocket` upgrades.
    hcm_websocket: bool,
    /// Extra lines under the `/` route's `route:`.
    route: &'static str,
    access_log: Option<String>,
}

/// baton on a fresh port: `/` goes to cluster `ws` (port `ws`), CONNECT (terminated) to
/// cluster `raw` (port `raw`); admin on `admin`.
fn yaml(listen: u16, admin: u16, ws: u16, raw: u16, o: &Opts) -> String {
    let mut y = common::yaml::listener_head("127.0.0.1", listen);
    if o.hcm_websocket {
        y.push_str("          upgrade_configs:\n          - upgrade_type: WebSocket\n");
    }
    if let Some(path) = &o.access_log {
        let format =
            "%REQ(:METHOD)% %RESPONSE_CODE% %RESPONSE_FLAGS% rx=%BYTES_RECEIVED% tx=%BYTES_SENT%\n";
        y.push_str(&admin_util::access_logs(&[(
            path.clone(),
            Some(format.into()),
        )]));
    }
    y.push_str(&format!(
        r#"          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - match: {{connect_matcher: {{}}}}
                route:
                  cluster: raw
                  upgrade_configs: [{{upgrade_type: CONNECT, connect_config: {{}}}}]
              - match: {{prefix: "/"}}
                route:
                  cluster: ws
{route}          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
"#,
        route = o.route
    ));
    for (name, port) in [("ws", ws), ("raw", raw)] {
        y.push_str(&format!(
            "  - name: {name}\n    connect_timeout: 1s\n    type: STATIC\n    lb_policy: ROUND_ROBIN\n    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint:\n            address:\n              socket_address: {{address: 127.0.0.1, port_value: {port}}}\n"
        ));
    }
    y.push_str(&format!(
        "admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {admin}}}\n"
    ));
    y
}

struct Proxy {
    b: Baton,
    port: u16,
    admin: u16,
}

fn start(ws: u16, raw: u16, o: &Opts) -> Proxy {
    let (port, admin) = (free_port(), free_port());
    let b = Baton::start(&yaml(port, admin, ws, raw, o));
    wait_live(admin);
    Proxy { b, port, admin }
}

// ---- a real WebSocket client and server ----

const WS_SERVER: &str = r#"
import asyncio, sys
import websockets

async def echo(ws, *_):
    async for m in ws:
        await ws.send(m)

async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), max_size=None):
        print("listening", flush=True)
        await asyncio.Future()

asyncio.run(main())
"#;

/// Sends `n` messages (text and binary, up to 68 KiB) and checks each echo, in order.
const WS_CLIENT: &str = r#"
import asyncio, os, sys
import websockets

async def main():
    n = int(sys.argv[2])
    async with websockets.connect(sys.argv[1], max_size=None) as ws:
        for i in range(n):
            msg = os.urandom(i * 997 % 70000) if i % 2 else "text message %d" % i
            await ws.send(msg)
            got = await ws.recv()
            if got != msg:
                print("MISMATCH", i, flush=True)
                sys.exit(1)
    print("OK", n, flush=True)

asyncio.run(main())
"#;

fn python(script: &str, args: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.arg("-c").arg(script).args(args);
    // The client must talk to baton directly, whatever proxy the environment names.
    for v in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        c.env_remove(v);
    }
    c
}

/// The python websockets echo server; killed (by its pid) when dropped.
struct WsServer(Child);

impl WsServer {
    fn start(port: u16) -> WsServer {
        let mut child = python(WS_SERVER, &[&port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 (with the websockets package) is needed");
        let mut line = [0u8; 9];
        let out = child.stdout.as_mut().expect("server stdout");
        out.read_exact(&mut line)
            .expect("websocket server did not start");
        assert_eq!(&line, b"listening");
        WsServer(child)
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_websocket_echo_session_works_through_baton() {
    let ws_port = free_port();
    let _server = WsServer::start(ws_port);
    let log = log_path("tunnel_ws_access");
    let p = start(
        ws_port,
        free_port(),
        &Opts {
            hcm_websocket: true,
            access_log: Some(log.display().to_string()),
            ..Opts::default()
        },
    );
    let out = python(
        WS_CLIENT,
        &[&format!("ws://127.0.0.1:{}/chat", p.port), "200"],
    )
    .output()
    .expect("run the websocket client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK 200"),
        "client: {stdout} {}\nbaton: {}",
        String::from_utf8_lossy(&out.stderr),
        p.b.log()
    );
    assert_eq!(
        stat(p.admin, "http.ingress_http.downstream_cx_upgrades_total"),
        1
    );
    assert!(eventually(IO_TIMEOUT, || stat(
        p.admin,
        "http.ingress_http.downstream_cx_upgrades_active"
    ) == 0));
    // One access-log line for the whole session, with the bytes of both directions.
    let mut line = String::new();
    assert!(eventually(IO_TIMEOUT, || {
        line = std::fs::read_to_string(&log).unwrap_or_default();
        line.contains(" 101 ")
    }));
    assert_eq!(line.lines().count(), 1, "{line}");
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // 100 binary messages average ~35 KB each way; frames add a little on top.
    assert!(
        field("rx=") > 3_000_000 && field("tx=") > 3_000_000,
        "{line}"
    );
    assert!(line.starts_with("GET 101 "), "{line}");
}

#[test]
fn an_upgrade_without_upgrade_configs_gets_envoys_403() {
    let up = Upstream::start("up1");
    let p = start(up.port(), free_port(), &Opts::default());
    let mut c = RawConn::connect(p.port);
    c.send(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    let r = c.expect_response(false);
    assert_eq!(r.status(), 403);
    assert!(r.body_str().is_empty());
    assert!(
        up.seen().is_empty(),
        "a refused upgrade reached the upstream"
    );
    assert_eq!(
        stat(
            p.admin,
            "http.ingress_http.downstream_rq_ws_on_non_ws_route"
        ),
        1
    );
    // The same request without the upgrade is served.
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.expect_response(false).status(), 200);
    // An upgrade disabled on the route is refused even when the HCM allows it.
    let p = start(
        up.port(),
        free_port(),
        &Opts {
            hcm_websocket: true,
            route:
                "                  upgrade_configs: [{upgrade_type: websocket, enabled: false}]\n",
            ..Opts::default()
        },
    );
    let mut c = RawConn::connect(p.port);
    c.send(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert_eq!(c.expect_response(false).status(), 403);
}

// ---- half-close and reset, with raw TCP peers ----

/// A raw upstream: accepts one connection, reads the upgrade request, answers 101, then
/// hands the socket to `then`.
fn raw_upstream(then: impl FnOnce(TcpStream) + Send + 'static) -> (u16, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(
                s.read(&mut b).expect("read request"),
                1,
                "request cut short"
            );
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.contains("upgrade: websocket\r\n"), "{head}");
        assert!(head.contains("connection: upgrade\r\n"), "{head}");
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .expect("write 101");
        then(s)
    });
    (port, h)
}

/// Opens the tunnel from the client side: the request, then the 101 head.
fn open_tunnel(port: u16) -> TcpStream {
    let mut c = TcpStream::connect(local(port)).expect("connect");
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.write_all(b"GET /t HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .expect("send");
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    c
}

fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            r => panic!(
                "head cut short: {r:?} after {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads until EOF; an error (a reset) is returned as such.
fn read_to_eof(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).map(|_| v)
}

fn reset(s: TcpStream) {
    ::baton::http::upstream::reset_on_close(&s);
    drop(s);
}

fn ws_proxy(up: u16) -> Proxy {
    start(
        up,
        free_port(),
        &Opts {
            hcm_websocket: true,
            ..Opts::default()
        },
    )
}

#[test]
fn the_clients_half_close_reaches_the_upstream_which_can_still_answer() {
    let (up, h) = raw_upstream(|mut s| {
        let got = read_to_eof(&mut s).expect("FIN, not a reset");
        assert_eq!(got, b"client data");
        s.write_all(b"answer after your FIN").expect("write");
    });
    let p = ws_proxy(up);
    let mut c = open_tunnel(p.port);
    c.write_all(b"client data").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        read_to_eof(&mut c).expect("clean end"),
        b"answer after your FIN"
    );
    h.join().expect("upstream side");
    assert!(eventually(IO_TIMEOUT, || stat(
        p.admin,
        "http.ingress_http.downstream_cx_upgrades_active"
    ) == 0));
}

#[test]
fn the_upstreams_half_close_reaches_the_client_which_can_still_send() {
    let (up, h) = raw_upstream(|mut s| {
        s.write_all(b"server done").expect("write");
        s.shutdown(Shutdown::Write).expect("shutdown");
        assert_eq!(read_to_eof(&mut s).expect("FIN"), b"client still talking");
    });
    let p = ws_proxy(up);
    let mut c = open_tunnel(p.port);
    let mut got = Vec::new();
    let mut b = [0u8; 64];
    while got.len() < 11 {
        let n = c.read(&mut b).expect("read");
        assert!(n > 0, "EOF before the data");
        got.extend_from_slice(&b[..n]);
    }
    assert_eq!(got, b"server done");
    assert_eq!(
        c.read(&mut b).expect("EOF"),
        0,
        "the upstream's FIN is passed on"
    );
    c.write_all(b"client still talking").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    h.join().expect("upstream side");
    assert_eq!(read_to_eof(&mut c).expect("closed"), b"");
}

#[test]
fn a_client_reset_resets_the_upstream() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (up, h) = raw_upstream(move |mut s| {
        let mut b = [0u8; 5];
        s.read_exact(&mut b).expect("data first");
        tx.send(()).unwrap();
        let r = read_to_eof(&mut s);
        assert_eq!(
            r.map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionReset),
            "the client's reset is passed on as a reset"
        );
    });
    let p = ws_proxy(up);
    let mut c = open_tunnel(p.port);
    c.write_all(b"hello").unwrap();
    rx.recv_timeout(IO_TIMEOUT).expect("upstream got the data");
    reset(c);
    h.join().expect("upstream side");
}

#[test]
fn an_upstream_reset_resets_the_client() {
    let (up, h) = raw_upstream(|mut s| {
        s.write_all(b"partial").expect("write");
        thread::sleep(Duration::from_millis(100));
        reset(s);
    });
    let p = ws_proxy(up);
    let mut c = open_tunnel(p.port);
    let mut got = [0u8; 7];
    c.read_exact(&mut got).expect("data before the reset");
    assert_eq!(&got, b"partial");
    let r = read_to_eof(&mut c);
    assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::ConnectionReset));
    h.join().expect("upstream side");
}

#[test]
fn an_idle_tunnel_is_reset_after_the_routes_idle_timeout() {
    let (up, h) = raw_upstream(|mut s| {
        // Stays silent; sees the tunnel end as a reset.
        let r = read_to_eof(&mut s);
        assert!(r.is_err(), "idle tunnel ended with a reset: {r:?}");
    });
    let p = start(
        up,
        free_port(),
        &Opts {
            hcm_websocket: true,
            route: "                  idle_timeout: 0.5s\n",
            ..Opts::default()
        },
    );
    let mut c = open_tunnel(p.port);
    let r = read_to_eof(&mut c);
    assert!(r.is_err(), "idle tunnel ended with a reset: {r:?}");
    h.join().expect("upstream side");
}

// ---- CONNECT ----

const DOWNLOAD: u64 = 64 << 20;

/// A raw upstream that sends `total` pattern bytes (pausing `pause` after each 128 KiB) to
/// the one connection it accepts, then closes.
fn download_upstream(total: u64, pause: Duration) -> (u16, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut off = 0u64;
        let mut buf = vec![0u8; 128 * 1024];
        while off < total {
            let n = buf.len().min((total - off) as usize);
            pattern::fill(off, &mut buf[..n]);
            s.write_all(&buf[..n]).expect("write download");
            off += n as u64;
            thread::sleep(pause);
        }
    });
    (port, h)
}

/// Opens a CONNECT tunnel through baton on `port`: the 200 has no framing headers.
fn connect_tunnel(port: u16) -> TcpStream {
    let mut c = TcpStream::connect(local(port)).expect("connect");
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.write_all(b"CONNECT files.test:443 HTTP/1.1\r\nHost: files.test:443\r\n\r\n")
        .unwrap();
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    c
}

/// Reads pattern bytes to EOF, checking each; `progress` follows the count. Returns it.
fn read_pattern(mut c: TcpStream, progress: &std::sync::atomic::AtomicU64) -> u64 {
    let mut off = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let mut want = vec![0u8; 256 * 1024];
    loop {
        let n = c.read(&mut buf).expect("read download");
        if n == 0 {
            return off;
        }
        pattern::fill(off, &mut want[..n]);
        assert!(buf[..n] == want[..n], "byte mismatch near offset {off}");
        off += n as u64;
        progress.store(off, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An HTTP/2 client's CONNECT: its END_STREAM is the half-close of its side of the tunnel
/// (RFC 9113 §8.5), which reaches the upstream as a FIN; the upstream can still answer, and
/// its close ends the stream. The half-close used to stop at baton (the upstream waited).
#[test]
fn an_http2_connects_end_stream_is_a_half_close_the_upstream_sees() {
    use ::baton::h2::frame::{self as h2f, Frame};
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let raw = l.local_addr().expect("addr").port();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let got = read_to_eof(&mut s).expect("FIN, not a reset");
        assert_eq!(got, b"client data");
        s.write_all(b"answer after your FIN").expect("write");
    });
    let p = start(free_port(), raw, &Opts::default());
    let mut c = TcpStream::connect(local(p.port)).expect("connect");
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut w = h2f::PREFACE.to_vec();
    h2f::write_settings(&mut w, &[]);
    let mut block = Vec::new();
    let fields = [
        (&b":method"[..], &b"CONNECT"[..]),
        (b":authority", b"files.test:443"),
    ];
    ::baton::h2::hpack::Encoder::new().encode(&mut fields.into_iter(), &mut block);
    h2f::write_headers(&mut w, 1, &block, false, 16_384);
    c.write_all(&w).unwrap();
    let mut wire = Vec::new();
    let mut data = Vec::new();
    let mut sent_body = false;
    let mut b = [0u8; 4096];
    'read: loop {
        let n = c.read(&mut b).expect("read frames");
        assert!(
            n > 0,
            "closed before the answer: {:?}",
            String::from_utf8_lossy(&data)
        );
        wire.extend_from_slice(&b[..n]);
        while let Ok(Some((f, used))) = h2f::parse(&wire, 1 << 24) {
            match f {
                Frame::Headers { stream: 1, .. } if !sent_body => {
                    // The tunnel is up (200): our data, then END_STREAM.
                    let mut d = Vec::new();
                    h2f::write_data(&mut d, 1, b"client data", true);
                    c.write_all(&d).unwrap();
                    sent_body = true;
                }
                Frame::Data {
                    stream: 1,
                    data: piece,
                    end_stream,
                    ..
                } => {
                    data.extend_from_slice(piece);
                    if end_stream {
                        break 'read;
                    }
                }
                _ => {}
            }
            wire.drain(..used);
        }
    }
    assert_eq!(data, b"answer after your FIN");
    h.join().expect("upstream side");
}

#[test]
fn a_long_download_through_a_terminated_connect_is_byte_exact() {
    let (raw, h) = download_upstream(DOWNLOAD, Duration::ZERO);
    let p = start(free_port(), raw, &Opts::default());
    let c = connect_tunnel(p.port);
    let progress = std::sync::atomic::AtomicU64::new(0);
    assert_eq!(read_pattern(c, &progress), DOWNLOAD);
    h.join().expect("upstream");
    assert_eq!(
        stat(p.admin, "http.ingress_http.downstream_cx_upgrades_total"),
        1
    );
}

#[test]
fn curl_through_a_connect_tunnel_and_connects_that_fail() {
    let up = Upstream::start("up1");
    let p = start(up.port(), up.port(), &Opts::default());
    let file = log_path("tunnel_curl_download");
    let n = 8 << 20;
    let out = Command::new("curl")
        .args(["-sS", "-p", "-x", &format!("http://127.0.0.1:{}", p.port)])
        .arg(format!("http://127.0.0.1:{}/bytes/{n}", up.port()))
        .arg("-o")
        .arg(&file)
        .env_remove("http_proxy")
        .env_remove("no_proxy")
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = std::fs::read(&file).expect("download");
    assert_eq!(body.len(), n);
    assert!(body == pattern::block(n), "download differs");
    // A cluster that refuses: Envoy's 503 connect failure, no tunnel.
    let p = start(up.port(), free_port(), &Opts::default());
    let mut c = RawConn::connect(p.port);
    c.send(b"CONNECT files.test:443 HTTP/1.1\r\nHost: files.test:443\r\n\r\n");
    let r = c.expect_response(false);
    assert_eq!(r.status(), 503);
    assert!(
        r.body_str().contains("connection failure"),
        "{}",
        r.body_str()
    );
    // A CONNECT target without a port is no authority-form: 400.
    let p2 = start(up.port(), up.port(), &Opts::default());
    let r = raw_exchange(
        p2.port,
        b"CONNECT nohost HTTP/1.1\r\nHost: nohost\r\n\r\n",
        IO_TIMEOUT,
    );
    assert!(
        r.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&r)
    );
}

// ---- tunnels across hot restarts ----

/// One WebSocket session: says "open", then sends numbered messages (every 10 ms) and checks
/// each echo until the file argv[2] exists; any close, reconnect, loss, duplicate or reorder
/// fails it. Prints "OK <messages>".
const WS_SESSION: &str = r#"
import asyncio, os, sys
import websockets

async def main():
    async with websockets.connect(sys.argv[1], max_size=None) as ws:
        print("open", flush=True)
        i = 0
        while not os.path.exists(sys.argv[2]):
            msg = "message %d " % i + "x" * (i % 3000)
            await ws.send(msg)
            got = await ws.recv()
            if got != msg:
                print("MISMATCH at", i, flush=True)
                sys.exit(1)
            i += 1
            await asyncio.sleep(0.01)
    print("OK", i, flush=True)

asyncio.run(main())
"#;

/// A WebSocket echo server, baton (first generation, restart socket) allowing websocket, and
/// a `WS_SESSION` client whose session is open.
struct HotSession {
    _server: WsServer,
    port: u16,
    admin: u16,
    cfg: String,
    dir: HotDir,
    client: Child,
    stop: std::path::PathBuf,
}

impl HotSession {
    fn start(tag: &str) -> (HotSession, Baton) {
        let ws_port = free_port();
        let server = WsServer::start(ws_port);
        let (port, admin) = (free_port(), free_port());
        let cfg = yaml(
            port,
            admin,
            ws_port,
            free_port(),
            &Opts {
                hcm_websocket: true,
                ..Opts::default()
            },
        );
        let dir = HotDir::new(tag);
        let first = hot_start(&cfg, &dir, &[]);
        let stop = log_path(&format!("{tag}_stop"));
        let url = format!("ws://127.0.0.1:{port}/s");
        let mut client = python(WS_SESSION, &[&url, &stop.display().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the websocket client");
        let mut open = [0u8; 4];
        client
            .stdout
            .as_mut()
            .expect("client stdout")
            .read_exact(&mut open)
            .expect("the session did not open");
        assert_eq!(&open, b"open");
        let s = HotSession {
            _server: server,
            port,
            admin,
            cfg,
            dir,
            client,
            stop,
        };
        (s, first)
    }

    /// Ends the session; returns how many messages were echoed (every one checked).
    fn finish(self, last: &Baton) -> u64 {
        thread::sleep(Duration::from_millis(200));
        std::fs::write(&self.stop, "stop").expect("stop file");
        let out = self.client.wait_with_output().expect("client");
        let _ = std::fs::remove_file(&self.stop);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("OK "),
            "client: {stdout} {}\nbaton: {}",
            String::from_utf8_lossy(&out.stderr),
            last.log()
        );
        stdout
            .split_whitespace()
            .last()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

#[test]
fn a_websocket_session_keeps_echoing_through_20_hot_restarts() {
    let (s, mut gen) = HotSession::start("tunnel_ws");
    for i in 0..20 {
        thread::sleep(Duration::from_millis(100));
        let (next, _) = hot_takeover(&s.cfg, &s.dir, &[], &gen);
        gen.sigterm();
        expect_exit_code(&mut gen, 0, EXIT_WAIT);
        assert!(
            gen.log().contains("tunnel(s) to the new process"),
            "restart {i}: the tunnel did not move\n{}",
            gen.log()
        );
        gen = next;
    }
    let admin = s.admin;
    let n = s.finish(&gen);
    assert!(n > 20, "only {n} messages echoed");
    // The session was one tunnel the whole time: opened once, never reopened.
    assert_eq!(
        stat(admin, "http.ingress_http.downstream_cx_upgrades_total"),
        1
    );
}

#[test]
fn tunnels_stay_with_the_old_process_when_the_new_one_dies_before_adopting_them() {
    let (s, mut old) = HotSession::start("tunnel_rollback");
    // The new process (and only it: the hook matches this test's port) dies when the tunnel
    // arrives, before acknowledging it.
    std::env::set_var("BATON_TEST_DIE_ON_TUNNELS", s.port.to_string());
    let (mut new, _) = hot_takeover(&s.cfg, &s.dir, &[], &old);
    old.sigterm();
    expect_exit_code(&mut new, 3, EXIT_WAIT);
    assert!(
        old.wait_log("resuming them", IO_TIMEOUT),
        "no rollback\n{}",
        old.log()
    );
    // The session goes on through the old process, then ends normally; the old process,
    // draining, exits 0 once it is over.
    assert!(s.finish(&old) > 0);
    expect_exit_code(&mut old, 0, EXIT_WAIT);
}

#[test]
fn a_connect_download_runs_byte_exact_through_a_hot_restart() {
    const TOTAL: u64 = 32 << 20;
    // Paced, so the restart happens mid-download.
    let (raw, up) = download_upstream(TOTAL, Duration::from_millis(5));
    let (port, admin) = (free_port(), free_port());
    let cfg = yaml(port, admin, free_port(), raw, &Opts::default());
    let dir = HotDir::new("tunnel_connect");
    let mut old = hot_start(&cfg, &dir, &[]);
    let c = connect_tunnel(port);
    let got = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = got.clone();
    let reader = thread::spawn(move || read_pattern(c, &seen));
    let now = || got.load(std::sync::atomic::Ordering::Relaxed);
    assert!(eventually(IO_TIMEOUT, || now() > 2 << 20));
    let (_new, _) = hot_takeover(&cfg, &dir, &[], &old);
    old.sigterm();
    expect_exit_code(&mut old, 0, EXIT_WAIT);
    assert!(
        old.log().contains("tunnel(s) to the new process"),
        "{}",
        old.log()
    );
    let before_end = now();
    up.join().expect("upstream");
    assert_eq!(reader.join().expect("reader"), TOTAL);
    assert!(before_end < TOTAL, "the restart came after the download");
}

/// More tunnels than the child holds descriptors for at once (four batches of 253): the
/// parent sends its batches faster than the child adopts them, and the child must leave the
/// rest in the restart socket until it has room, never drop them. Each tunnel echoes one
/// line before the restart and one after, on the same connection.
#[test]
fn six_hundred_tunnels_move_in_one_restart_and_all_keep_echoing() {
    const N: usize = 600;
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up = l.local_addr().expect("addr").port();
    // An upstream answering each upgrade with 101, then echoing bytes (a thread each).
    let acceptor = thread::spawn(move || {
        let mut echoers = Vec::new();
        for _ in 0..N {
            let Ok((mut s, _)) = l.accept() else { break };
            echoers.push(thread::spawn(move || {
                let _ = s.set_read_timeout(Some(EXIT_WAIT));
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut b).unwrap_or(0) != 1 {
                        return;
                    }
                    head.push(b[0]);
                }
                if s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").is_err() {
                    return;
                }
                let mut buf = [0u8; 256];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }));
        }
        for e in echoers {
            let _ = e.join();
        }
    });
    let (port, admin) = (free_port(), free_port());
    let cfg = yaml(
        port,
        admin,
        up,
        free_port(),
        &Opts {
            hcm_websocket: true,
            ..Opts::default()
        },
    );
    let dir = HotDir::new("tunnels_600");
    let mut old = hot_start(&cfg, &dir, &[]);
    let echo = |c: &mut TcpStream, line: &str| {
        c.write_all(line.as_bytes()).expect("write");
        let mut got = vec![0u8; line.len()];
        c.read_exact(&mut got).expect("echo");
        assert_eq!(String::from_utf8_lossy(&got), line);
    };
    let mut clients: Vec<TcpStream> = (0..N).map(|_| open_tunnel(port)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        echo(c, &format!("before {i}\n"));
    }
    let (new, _) = hot_takeover(&cfg, &dir, &[], &old);
    // The new process is stopped while the old one hands over: every batch is then in the
    // restart socket when it reads the first (as when the two share a busy CPU).
    let signal = |pid: u32, sig| {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        nix::sys::signal::kill(pid, sig).expect("signal the new process");
    };
    signal(new.pid(), nix::sys::signal::Signal::SIGSTOP);
    old.sigterm();
    let batches = N.div_ceil(126);
    assert!(
        old.wait_log_n("tunnel(s) to the new process", batches, EXIT_WAIT),
        "{}",
        old.log()
    );
    signal(new.pid(), nix::sys::signal::Signal::SIGCONT);
    expect_exit_code(&mut old, 0, EXIT_WAIT);
    assert!(
        !old.log().contains("without their fds"),
        "{}\n{}",
        old.log(),
        new.log()
    );
    assert!(!new.log().contains("without their fds"), "{}", new.log());
    for (i, c) in clients.iter_mut().enumerate() {
        echo(c, &format!("after {i}\n"));
    }
    assert_eq!(
        stat(admin, "http.ingress_http.downstream_cx_upgrades_active"),
        N as i64
    );
    drop(clients);
    drop(new);
    let _ = acceptor.join();
}
