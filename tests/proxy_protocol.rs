//! Envoy's PROXY protocol listener filter (`envoy.filters.listener.proxy_protocol`): baton
//! behind a load balancer that starts each connection with a v1 or v2 header. Raw TCP clients
//! (and curl's `--haproxy-protocol`) against the real binary on loopback: the header's client
//! address is the one XFF, the access log, RBAC and filter chain matching see; a bad or
//! missing header closes the connection and is counted; a hot restart hands a connection over
//! with the address of its header.

mod common;
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::baton::log_path;
use common::*;
use tls_support::{bootstrap, stat, static_cluster};

const PP: &str =
    "type.googleapis.com/envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol";
const RBAC: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
const LOG_FORMAT: &str = "%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_DIRECT_REMOTE_ADDRESS% \
                          %DOWNSTREAM_LOCAL_ADDRESS% %RESPONSE_CODE%\\n";
const WAIT: Duration = Duration::from_secs(20);

/// The listener's `listener_filters` with the PROXY protocol filter (`fields`: lines of its
/// config, eight spaces deep) and any lines of the listener after it.
fn pp_listener(fields: &str, more: &str) -> String {
    format!(
        "    listener_filters:\n    - name: envoy.filters.listener.proxy_protocol\n      \
         typed_config:\n        \"@type\": {PP}\n{fields}{more}"
    )
}

/// A chain's connection manager (stat prefix `prefix`, `use_remote_address`) routing to
/// `cluster`, with an access log to `log` and `filters` before the router.
fn hcm(prefix: &str, log: &str, cluster: &str, filters: &str) -> String {
    format!(
        r#"      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {prefix}
          use_remote_address: true
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{log}"
              log_format: {{text_format_source: {{inline_string: "{LOG_FORMAT}"}}}}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: {cluster}}}
          http_filters:
{filters}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

/// A v2 header: PROXY over TCP from `src` to `dst` (both IPv4 or both IPv6), with `tlvs`.
fn v2(src: &str, dst: &str, tlvs: &[u8]) -> Vec<u8> {
    let (s, d): (std::net::SocketAddr, std::net::SocketAddr) =
        (src.parse().unwrap(), dst.parse().unwrap());
    let mut body = Vec::new();
    let fam = match (s.ip(), d.ip()) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
            body.extend_from_slice(&a.octets());
            body.extend_from_slice(&b.octets());
            0x11
        }
        (std::net::IpAddr::V6(a), std::net::IpAddr::V6(b)) => {
            body.extend_from_slice(&a.octets());
            body.extend_from_slice(&b.octets());
            0x21
        }
        _ => panic!("mixed families"),
    };
    body.extend_from_slice(&s.port().to_be_bytes());
    body.extend_from_slice(&d.port().to_be_bytes());
    body.extend_from_slice(tlvs);
    v2_raw(0x21, fam, &body)
}

fn v2_raw(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(ver_cmd);
    h.push(fam);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

/// Starts baton: `listener_0` with `listener` lines and `chains`, the cluster `backend` at
/// `backend` and `clusters` lines. Returns it, its port and the admin port.
fn serve(listener: &str, chains: &str, backend: u16, clusters: &str) -> (Baton, u16, u16) {
    let (port, admin) = (free_port(), free_port());
    let yaml = bootstrap(admin, port, listener, chains, backend, clusters);
    (Baton::start(&yaml), port, admin)
}

fn get() -> &'static [u8] {
    b"GET / HTTP/1.1\r\nHost: pp.test\r\nConnection: close\r\n\r\n"
}

/// `header` then a GET on one write: the response status (0: closed without one).
fn status_after(port: u16, header: &[u8]) -> u16 {
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(get());
    status_of(&raw_exchange(port, &bytes, WAIT))
}

fn status_of(resp: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(resp);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Sends `bytes` one at a time (each its own segment), then reads the response to the end.
fn trickle(port: u16, bytes: &[u8]) -> u16 {
    let mut s = TcpStream::connect(local(port)).expect("connect");
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    for b in bytes {
        s.write_all(&[*b]).expect("write");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    status_of(&out)
}

fn last_xff(up: &Upstream) -> String {
    let seen = up.seen();
    let last = seen.last().expect("the upstream saw a request");
    last.header("x-forwarded-for").unwrap_or("-").to_string()
}

#[test]
fn the_header_names_the_client_for_xff_the_access_log_and_rbac() {
    let up = Upstream::start("one");
    let log = log_path("pp_access");
    let log = log.to_str().unwrap();
    let rbac = format!(
        r#"          - name: envoy.filters.http.rbac
            typed_config:
              "@type": {RBAC}
              rules:
                action: ALLOW
                policies:
                  balanced:
                    permissions: [{{any: true}}]
                    principals:
                    - and_ids:
                        ids:
                        - source_ip: {{address_prefix: 192.0.2.0, prefix_len: 24}}
                        - direct_remote_ip: {{address_prefix: 127.0.0.1, prefix_len: 32}}
                    - remote_ip: {{address_prefix: "2001:db8::", prefix_len: 32}}
                    - source_ip: {{address_prefix: 127.0.0.0, prefix_len: 8}}
"#
    );
    let chains = format!("    - filters:\n{}", hcm("pp", log, "backend", &rbac));
    let (_p, port, admin) = serve(
        &pp_listener("        stat_prefix: lb\n", ""),
        &chains,
        up.port(),
        "",
    );

    // v1, header and request in one write: nothing after the header is lost.
    let v1 = b"PROXY TCP4 192.0.2.7 198.51.100.1 5555 8443\r\n";
    assert_eq!(status_after(port, v1), 200);
    assert_eq!(last_xff(&up), "192.0.2.7");
    // v2 over IPv6 with TLVs, one byte per segment: the header is put together.
    let mut v2h = v2(
        "[2001:db8::7]:1234",
        "[2001:db8::1]:80",
        &[0x05, 0, 2, 1, 2],
    );
    v2h.extend_from_slice(get());
    assert_eq!(trickle(port, &v2h), 200);
    assert_eq!(last_xff(&up), "2001:db8::7");
    // A client RBAC does not allow (by the header's address).
    let other = b"PROXY TCP4 198.51.100.9 198.51.100.1 6000 443\r\n";
    assert_eq!(status_after(port, other), 403);
    // v2 LOCAL (the balancer's own health check): the socket's addresses stand.
    assert_eq!(status_after(port, &v2_raw(0x20, 0, &[])), 200);
    assert_eq!(last_xff(&up), "127.0.0.1");
    // curl sends a v1 header with its own addresses.
    let body = curl_ok(&["--haproxy-protocol", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(body, up.greeting());

    let lines = log_lines(log, 5);
    assert_eq!(lines.len(), 5, "{lines:?}");
    let f: Vec<Vec<&str>> = lines.iter().map(|l| l.split(' ').collect()).collect();
    // Remote: the header's client; direct: the socket's peer; local: the header's target.
    assert_eq!(
        (f[0][0], f[0][2], f[0][3]),
        ("192.0.2.7:5555", "198.51.100.1:8443", "200")
    );
    assert!(f[0][1].starts_with("127.0.0.1:"), "{:?}", f[0]);
    assert_eq!(
        (f[1][0], f[1][2], f[1][3]),
        ("[2001:db8::7]:1234", "[2001:db8::1]:80", "200")
    );
    assert!(f[1][1].starts_with("127.0.0.1:"));
    assert_eq!((f[2][0], f[2][3]), ("198.51.100.9:6000", "403"));
    assert!(
        f[3][0].starts_with("127.0.0.1:") && f[3][0] == f[3][1],
        "{:?}",
        f[3]
    );
    assert_eq!(f[3][2], format!("127.0.0.1:{port}"));
    assert_eq!(f[4][3], "200");

    assert_eq!(stat(admin, "proxy_proto.lb.versions.v1.found"), 3);
    assert_eq!(stat(admin, "proxy_proto.lb.versions.v2.found"), 2);
    assert_eq!(stat(admin, "downstream_cx_proxy_proto_error"), 0);
}

#[test]
fn bad_missing_and_disallowed_headers_close_the_connection_and_are_counted() {
    let up = Upstream::start("one");
    let log = log_path("pp_bad");
    let log = log.to_str().unwrap();
    let chains = format!("    - filters:\n{}", hcm("pp", log, "backend", ""));
    let listener = pp_listener(
        "        disallowed_versions: [V2]\n",
        "    listener_filters_timeout: 1s\n",
    );
    let (_p, port, admin) = serve(&listener, &chains, up.port(), "");

    // No header: closed, no response.
    assert_eq!(raw_exchange(port, get(), WAIT), b"");
    assert_eq!(stat(admin, "proxy_proto.not_found_disallowed"), 1);
    // A v1 line without its ports.
    assert_eq!(
        status_after(port, b"PROXY TCP4 192.0.2.7 198.51.100.1\r\n"),
        0
    );
    assert_eq!(stat(admin, "proxy_proto.versions.v1.error"), 1);
    assert_eq!(stat(admin, "downstream_cx_proxy_proto_error"), 2);
    // v2 is disallowed here: found, refused, not an error.
    assert_eq!(
        status_after(port, &v2("192.0.2.7:1", "192.0.2.8:2", &[])),
        0
    );
    assert_eq!(stat(admin, "proxy_proto.versions.v2.found"), 1);
    assert_eq!(stat(admin, "proxy_proto.versions.v2.disallowed"), 1);
    assert_eq!(stat(admin, "downstream_cx_proxy_proto_error"), 2);
    // A v1 line past 107 bytes without its CRLF.
    let mut long = b"PROXY TCP4 ".to_vec();
    long.resize(200, b'9');
    assert_eq!(raw_exchange(port, &long, WAIT), b"");
    assert_eq!(stat(admin, "proxy_proto.versions.v1.error"), 2);
    // A client that sends nothing is closed once listener_filters_timeout passes.
    let mut silent = RawConn::connect(port);
    assert!(silent.closed_within(WAIT));
    let scope = format!("listener.127.0.0.1_{port}");
    assert_eq!(
        stat(admin, &format!("{scope}.downstream_pre_cx_timeout")),
        1
    );
    // A valid v1 header still works.
    assert_eq!(status_after(port, b"PROXY UNKNOWN\r\n"), 200);
    assert_eq!(up.requests(), 1);
}

#[test]
fn without_a_header_a_client_is_served_when_the_filter_allows_it() {
    let up = Upstream::start("one");
    let log = log_path("pp_optional");
    let log = log.to_str().unwrap();
    let chains = format!("    - filters:\n{}", hcm("pp", log, "backend", ""));
    let listener = pp_listener("        allow_requests_without_proxy_protocol: true\n", "");
    let (_p, port, admin) = serve(&listener, &chains, up.port(), "");
    let body = curl_ok(&[&format!("http://127.0.0.1:{port}/")]);
    assert_eq!(body, up.greeting());
    assert_eq!(last_xff(&up), "127.0.0.1");
    assert_eq!(
        status_after(port, b"PROXY TCP4 192.0.2.7 192.0.2.1 1 80\r\n"),
        200
    );
    assert_eq!(last_xff(&up), "192.0.2.7");
    assert_eq!(stat(admin, "proxy_proto.not_found_allowed"), 1);
    assert_eq!(stat(admin, "proxy_proto.versions.v1.found"), 1);
    // Half a header, then the client's FIN: closed then, not at the 15 s timeout.
    let mut half = RawConn::connect(port);
    half.send(b"PROXY TCP4 192.0.2.7 ");
    half.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let t0 = std::time::Instant::now();
    assert!(half.closed_within(WAIT));
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

#[test]
fn the_header_addresses_choose_the_filter_chain() {
    let (one, two) = (Upstream::start("one"), Upstream::start("two"));
    let log = log_path("pp_chains");
    let log = log.to_str().unwrap();
    let chains = [
        format!(
            "    - filter_chain_match: {{destination_port: 8443}}\n      filters:\n{}",
            hcm("by_port", log, "two", "")
        ),
        format!(
            "    - filter_chain_match: {{source_prefix_ranges: [{{address_prefix: 192.0.2.0, prefix_len: 24}}]}}\n      filters:\n{}",
            hcm("by_source", log, "backend", "")
        ),
        // The direct source is the socket's peer (127.0.0.1), never the header's client.
        format!(
            "    - filter_chain_match:\n        destination_port: 81\n        direct_source_prefix_ranges: [{{address_prefix: 203.0.113.0, prefix_len: 24}}]\n      filters:\n{}",
            hcm("direct_wrong", log, "two", "")
        ),
        format!(
            "    - filter_chain_match: {{destination_port: 81}}\n      filters:\n{}",
            hcm("by_direct", log, "backend", "")
        ),
        r#"    - filter_chain_match: {destination_port: 9000}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: pp_tcp
          cluster: two
"#
        .to_string(),
    ]
    .concat();
    let (_p, port, admin) = serve(
        &pp_listener("", ""),
        &chains,
        one.port(),
        &static_cluster("two", two.port()),
    );
    let ask = |h: &str| -> String {
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend_from_slice(get());
        let r = raw_exchange(port, &bytes, WAIT);
        let text = String::from_utf8_lossy(&r).into_owned();
        text.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
    };
    assert_eq!(
        ask("PROXY TCP4 192.0.2.7 10.0.0.1 5555 80\r\n"),
        one.greeting()
    );
    assert_eq!(
        ask("PROXY TCP4 198.51.100.9 10.0.0.1 5555 8443\r\n"),
        two.greeting()
    );
    assert_eq!(
        ask("PROXY TCP4 203.0.113.5 10.0.0.1 5555 81\r\n"),
        one.greeting()
    );
    // The TCP proxy forwards what follows the header, without it.
    assert_eq!(
        ask("PROXY TCP4 198.51.100.9 10.0.0.1 5555 9000\r\n"),
        two.greeting()
    );
    // No chain for this client and port.
    assert_eq!(ask("PROXY TCP4 198.51.100.9 10.0.0.1 5555 80\r\n"), "");
    assert_eq!(stat(admin, "http.by_source.downstream_rq_total"), 1);
    assert_eq!(stat(admin, "http.by_port.downstream_rq_total"), 1);
    assert_eq!(stat(admin, "http.by_direct.downstream_rq_total"), 1);
    assert_eq!(stat(admin, "tcp.pp_tcp.downstream_cx_total"), 1);
    let scope = format!("listener.127.0.0.1_{port}");
    assert_eq!(stat(admin, &format!("{scope}.no_filter_chain_match")), 1);
    assert_eq!(stat(admin, "proxy_proto.versions.v1.found"), 5);
}

#[test]
fn listener_filter_config_errors_name_their_field() {
    let chains = format!("    - filters:\n{}", hcm("pp", "/dev/null", "backend", ""));
    let cases = [
        ("        rules: [{tlv_type: 1}]\n", "", "rules"),
        (
            "        pass_through_tlvs: {match_type: INCLUDE_ALL}\n",
            "",
            "pass_through_tlvs",
        ),
        (
            "        disallowed_versions: [V1, V2]\n",
            "",
            "disallowed_versions",
        ),
        ("        nope: 1\n", "", "nope"),
        (
            "",
            "    - name: envoy.filters.listener.tls_inspector\n",
            "listener_filters[1]",
        ),
    ];
    for (fields, more, path) in cases {
        let listener = pp_listener(fields, more);
        // The inspector after the reader is fine; before it, refused.
        let listener = if more.is_empty() {
            listener
        } else {
            format!(
                "    listener_filters:\n{more}{}",
                &pp_listener(fields, "")[22..]
            )
        };
        let yaml = bootstrap(free_port(), free_port(), &listener, &chains, 1, "");
        let out = refusal(&yaml);
        assert!(out.contains(path), "{path}: {out}");
    }
}

#[test]
fn a_handed_over_connection_keeps_the_address_of_its_header() {
    use common::hot::*;
    let (one, two) = (Upstream::start("one"), Upstream::start("two"));
    let log = log_path("pp_hot");
    let log = log.to_str().unwrap();
    // The header's client picks chain `a`, the socket's (127.0.0.1) would pick `b`. They
    // share a connection manager in the first config; in the second, `b` routes to `two`:
    // the connection must be named to the new process by its header's address.
    let (port, admin) = (free_port(), free_port());
    let cfg = |b_cluster: &str| {
        let chains = [
            format!(
                "    - name: a\n      filter_chain_match: {{source_prefix_ranges: [{{address_prefix: 192.0.2.0, prefix_len: 24}}]}}\n      filters:\n{}",
                hcm("web", log, "backend", "")
            ),
            format!("    - name: b\n      filters:\n{}", hcm("web", log, b_cluster, "")),
        ]
        .concat();
        bootstrap(
            admin,
            port,
            &pp_listener("", ""),
            &chains,
            one.port(),
            &static_cluster("two", two.port()),
        )
    };
    let dir = HotDir::new("pp_hot");
    let mut old = hot_start(&cfg("backend"), &dir, &[]);
    let mut c = RawConn::connect(port);
    c.send(b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 80\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.expect_response(false).body, one.greeting().as_bytes());
    // A connection whose header is still coming when the new process takes over.
    let mut waiting = RawConn::connect(port);
    waiting.send(b"PROXY TCP4 192.0.2.");

    let (_new, _) = hot_takeover(&cfg("two"), &dir, &[], &old);
    waiting.send(b"8 10.0.0.1 6666 80\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(
        waiting.expect_response(false).body,
        one.greeting().as_bytes()
    );
    assert_eq!(last_xff(&one), "192.0.2.8");
    old.sigterm();
    expect_exit_code(&mut old, 0, EXIT_WAIT);
    assert!(handed_connections(&old) >= 1, "{}", old.log());

    // The idle connection goes on in the new process: same chain, same client address.
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.expect_response(false).body, one.greeting().as_bytes());
    assert_eq!(last_xff(&one), "192.0.2.7");
    let lines = log_lines(log, 3);
    let last: Vec<&str> = lines.last().expect("a line").split(' ').collect();
    assert_eq!(last[0], "192.0.2.7:5555", "{lines:?}");
    assert!(last[1].starts_with("127.0.0.1:"), "{lines:?}");
    assert_eq!(two.requests(), 0);
}

/// A python client: the PROXY line `sys.argv[3]`, then TLS to `a.test` and one GET; prints
/// the status line and the body.
#[cfg(feature = "tls")]
const TLS_AFTER_HEADER: &str = r#"
import socket, ssl, sys
port, ca, line = int(sys.argv[1]), sys.argv[2], sys.argv[3]
raw = socket.create_connection(("127.0.0.1", port), timeout=20)
raw.sendall(line.encode() + b"\r\n")
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(raw, server_hostname="a.test")
s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
head, _, body = out.partition(b"\r\n\r\n")
print(head.split(b"\r\n")[0].decode(), body.decode(), end="")
"#;

#[cfg(feature = "tls")]
#[test]
fn the_header_comes_before_the_tls_handshake_and_its_client_chooses_the_chain() {
    use tls_support::{tls_chain, Pki};
    let pki = Pki::new("pp_tls");
    let (one, two) = (Upstream::start("one"), Upstream::start("two"));
    let cert = pki.leaf("a", "/CN=a.test", "DNS:a.test");
    let log = log_path("pp_tls");
    let log = log.to_str().unwrap();
    let chains = [
        tls_chain(
            &hcm("lb_tls", log, "backend", ""),
            &[
                "server_names: [a.test]",
                "source_prefix_ranges: [{address_prefix: 192.0.2.0, prefix_len: 24}]",
            ],
            &cert,
            &[],
        ),
        tls_chain(
            &hcm("other_tls", log, "two", ""),
            &["server_names: [a.test]"],
            &cert,
            &[],
        ),
    ]
    .concat();
    let (port, admin) = (free_port(), free_port());
    // The inspector after the PROXY reader, as Envoy's docs order them.
    let listener = pp_listener(
        "",
        "    - name: envoy.filters.listener.tls_inspector\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector\n",
    );
    let yaml = bootstrap(
        admin,
        port,
        &listener,
        &chains,
        one.port(),
        &static_cluster("two", two.port()),
    );
    let _p = Baton::start(&yaml);
    let run = |line: &str| -> String {
        let o = std::process::Command::new("python3")
            .args(["-c", TLS_AFTER_HEADER, &port.to_string(), &pki.ca(), line])
            .output()
            .expect("python3");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let want = |up: &Upstream| format!("HTTP/1.1 200 OK {}", up.greeting());
    assert_eq!(run("PROXY TCP4 192.0.2.7 10.0.0.1 5555 443"), want(&one));
    assert_eq!(last_xff(&one), "192.0.2.7");
    assert_eq!(run("PROXY TCP4 198.51.100.9 10.0.0.1 5555 443"), want(&two));
    assert_eq!(last_xff(&two), "198.51.100.9");
    assert_eq!(stat(admin, "http.lb_tls.downstream_rq_total"), 1);
    assert_eq!(stat(admin, "proxy_proto.versions.v1.found"), 2);
}

/// An upstream that records, per connection, what came before its first request (the PROXY
/// header) and the path of each request; it answers `200 ok`, keep-alive.
struct Recorder {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

/// One upstream connection: its bytes before the first request, and its request paths.
type Seen = (Vec<u8>, Vec<String>);

impl Recorder {
    fn start() -> Recorder {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let all = seen.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let all = all.clone();
                std::thread::spawn(move || {
                    s.set_read_timeout(Some(WAIT)).unwrap();
                    let me = {
                        let mut v = all.lock().unwrap();
                        v.push((Vec::new(), Vec::new()));
                        v.len() - 1
                    };
                    let mut buf = Vec::new();
                    let mut first = true;
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = s.read(&mut chunk) {
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        // (A v2 header holds a CRLF CRLF of its own: look past the GET.)
                        let find = |b: &[u8], w: &[u8]| b.windows(w.len()).position(|x| x == w);
                        while let Some((at, end)) = find(&buf, b"GET ")
                            .and_then(|at| Some((at, at + find(buf.get(at..)?, b"\r\n\r\n")?)))
                        {
                            let head = String::from_utf8_lossy(&buf[at..end]).to_string();
                            let path = head.split(' ').nth(1).unwrap_or("").to_string();
                            {
                                let mut v = all.lock().unwrap();
                                if first {
                                    v[me].0 = buf[..at].to_vec();
                                    first = false;
                                }
                                v[me].1.push(path);
                            }
                            buf.drain(..end + 4);
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                        }
                    }
                });
            }
        });
        Recorder { port, seen }
    }

    /// (header, paths) of each connection so far whose requests match `path`.
    fn conns(&self, path: &str) -> Vec<Seen> {
        let v = self.seen.lock().unwrap().clone();
        v.into_iter()
            .filter(|(_, p)| p.iter().any(|x| x == path))
            .collect()
    }
}

/// A STATIC cluster `name` to `port` whose transport socket is the upstream PROXY protocol
/// socket of `version` over raw_buffer; `more`: lines of the cluster after it.
fn pp_cluster(name: &str, port: u16, version: &str, more: &str) -> String {
    format!(
        "{}    transport_socket:\n      name: envoy.transport_sockets.upstream_proxy_protocol\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport\n        config: {{version: {version}}}\n        transport_socket: {{name: envoy.transport_sockets.raw_buffer}}\n{more}",
        static_cluster(name, port)
    )
}

#[test]
fn an_upstream_proxy_protocol_cluster_sends_each_client_in_a_header_of_its_own() {
    let rec = Recorder::start();
    let log = log_path("pp_up");
    let log = log.to_str().unwrap();
    let chains = format!("    - filters:\n{}", hcm("pp", log, "pp1", ""));
    let listener = pp_listener("        allow_requests_without_proxy_protocol: true\n", "");
    let (_p, port, _admin) = serve(
        &listener,
        &chains,
        1,
        &pp_cluster("pp1", rec.port, "V1", ""),
    );
    let req = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes();

    // Client A: two requests on one connection, one upstream connection with A's header.
    let mut a = RawConn::connect(port);
    let mut first = b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 80\r\n".to_vec();
    first.extend_from_slice(&req("/a1"));
    a.send(&first);
    assert_eq!(a.expect_response(false).status(), 200);
    // Client B, while A's upstream connection is idle in the pool: one of its own.
    let mut b = RawConn::connect(port);
    let mut bb = b"PROXY TCP4 192.0.2.8 10.0.0.1 6666 80\r\n".to_vec();
    bb.extend_from_slice(&req("/b"));
    b.send(&bb);
    assert_eq!(b.expect_response(false).status(), 200);
    a.send(&req("/a2"));
    assert_eq!(a.expect_response(false).status(), 200);
    // A client without a header: baton's own connection is named.
    let mut c = RawConn::connect(port);
    c.send(&req("/c"));
    assert_eq!(c.expect_response(false).status(), 200);

    let conn_a = rec.conns("/a1");
    assert_eq!(conn_a.len(), 1);
    assert_eq!(conn_a[0].0, b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 80\r\n");
    assert_eq!(
        conn_a[0].1,
        ["/a1", "/a2"],
        "A's connection is reused for A only"
    );
    let conn_b = rec.conns("/b");
    assert_eq!(conn_b[0].0, b"PROXY TCP4 192.0.2.8 10.0.0.1 6666 80\r\n");
    assert_eq!(conn_b[0].1, ["/b"]);
    let own = String::from_utf8(rec.conns("/c")[0].0.clone()).unwrap();
    let f: Vec<&str> = own.trim_end().split(' ').collect();
    assert_eq!(
        &f[..4],
        ["PROXY", "TCP4", "127.0.0.1", "127.0.0.1"],
        "{own:?}"
    );
    assert_eq!(f[5], rec.port.to_string());
}

#[test]
fn a_tcp_proxy_names_its_client_in_v2_and_health_checks_send_local() {
    let rec = Recorder::start();
    let checks = "    health_checks:\n    - timeout: 1s\n      interval: 0.2s\n      no_traffic_interval: 0.2s\n      unhealthy_threshold: 2\n      healthy_threshold: 1\n      http_health_check: {path: /hc}\n";
    let chains = r#"    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: pp_tcp
          cluster: pp2
"#;
    let (_p, port, _admin) = serve("", chains, 1, &pp_cluster("pp2", rec.port, "V2", checks));
    let mut s = TcpStream::connect(local(port)).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    let client = s.local_addr().unwrap();
    s.write_all(b"GET /t HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = [0u8; 64];
    let n = s.read(&mut got).expect("response");
    assert!(got[..n].starts_with(b"HTTP/1.1 200"));
    let want = v2(&client.to_string(), &format!("127.0.0.1:{port}"), &[]);
    assert_eq!(rec.conns("/t")[0].0, want);
    // Health checks name no client: the LOCAL command.
    let mut hc = Vec::new();
    for _ in 0..100 {
        hc = rec.conns("/hc");
        if !hc.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!hc.is_empty(), "no health check arrived");
    assert_eq!(hc[0].0, v2_raw(0x20, 0, &[]));
}

#[test]
fn upstream_socket_config_errors_name_their_field() {
    let ts = |config: &str, rest: &str| {
        format!(
            "  - name: pp\n    type: STATIC\n    load_assignment: {{cluster_name: pp, endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}}}}}]}}]}}\n    transport_socket:\n      name: envoy.transport_sockets.upstream_proxy_protocol\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport\n        config: {{{config}}}\n{rest}"
        )
    };
    let raw = "        transport_socket: {name: envoy.transport_sockets.raw_buffer}\n";
    let cases = [
        (
            ts("pass_through_tlvs: {match_type: INCLUDE_ALL}", raw),
            "config.pass_through_tlvs",
        ),
        (
            ts("added_tlvs: [{type: 224, value: YQ==}]", raw),
            "config.added_tlvs",
        ),
        (ts("version: V3", raw), "config.version"),
        (
            ts("", &format!("{raw}        tlv_as_pool_key: true\n")),
            "tlv_as_pool_key",
        ),
        (ts("", ""), "typed_config.transport_socket"),
        (
            ts(
                "",
                "        transport_socket: {name: envoy.transport_sockets.alts}\n",
            ),
            "typed_config.transport_socket",
        ),
    ];
    let chains = format!("    - filters:\n{}", hcm("pp", "/dev/null", "backend", ""));
    for (cluster, path) in cases {
        let yaml = bootstrap(free_port(), free_port(), "", &chains, 1, &cluster);
        let out = refusal(&yaml);
        assert!(out.contains(path), "{path}: {out}");
    }
    // A request mirror cluster sends no header: refused.
    let mirrored = hcm("pp", "/dev/null", "backend", "").replace(
        "route: {cluster: backend}",
        "route: {cluster: backend, request_mirror_policies: [{cluster: pp}]}",
    );
    let yaml = bootstrap(
        free_port(),
        free_port(),
        "",
        &format!("    - filters:\n{mirrored}"),
        1,
        &ts("", raw),
    );
    let out = refusal(&yaml);
    assert!(out.contains("mirror") && out.contains("PROXY"), "{out}");
    // V2 over TLS loads (in a build with TLS).
    if !cfg!(feature = "tls") {
        return;
    }
    let tls = "        transport_socket:\n          name: envoy.transport_sockets.tls\n          typed_config:\n            \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n            sni: up.test\n";
    let yaml = bootstrap(
        free_port(),
        free_port(),
        "",
        &chains,
        1,
        &ts("version: V2", tls),
    );
    let (status, _, err) = run_baton(&["--mode", "validate", "--config-yaml", &yaml], WAIT);
    assert!(status.success(), "{err}");
}

/// A python TLS origin that first reads a v1 PROXY line in the clear, then the handshake and
/// one request; it answers with the line it read. Prints its port first.
#[cfg(feature = "tls")]
const PP_TLS_ORIGIN: &str = r#"
import socket, ssl, sys
cert, key = sys.argv[1], sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(8)
print(l.getsockname()[1], flush=True)
l.settimeout(30)
while True:
    c, _ = l.accept()
    c.settimeout(20)
    line = b""
    while not line.endswith(b"\r\n") and len(line) < 108:
        b = c.recv(1)
        if not b:
            break
        line += b
    t = ctx.wrap_socket(c, server_side=True)
    req = b""
    while b"\r\n\r\n" not in req:
        b = t.recv(4096)
        if not b:
            break
        req += b
    body = line.strip()
    t.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    t.close()
"#;

#[cfg(feature = "tls")]
#[test]
fn the_upstream_header_goes_before_the_tls_handshake() {
    use std::io::BufRead;
    use tls_support::Pki;
    let pki = Pki::new("pp_up_tls");
    let (cert, key) = pki.leaf("up", "/CN=up.test", "DNS:up.test");
    let mut origin = std::process::Command::new("python3")
        .args(["-c", PP_TLS_ORIGIN, &cert, &key])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufReader::new(origin.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("origin port");
    let up: u16 = line.trim().parse().expect("a port");
    let tls = "        transport_socket:\n          name: envoy.transport_sockets.tls\n          typed_config:\n            \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n            sni: up.test\n";
    let cluster = format!(
        "{}    transport_socket:\n      name: envoy.transport_sockets.upstream_proxy_protocol\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport\n{tls}",
        static_cluster("pp_tls", up)
    );
    let chains = format!("    - filters:\n{}", hcm("pp", "/dev/null", "pp_tls", ""));
    let (_p, port, _admin) = serve(&pp_listener("", ""), &chains, 1, &cluster);
    let mut bytes = b"PROXY TCP4 192.0.2.7 10.0.0.1 5555 80\r\n".to_vec();
    bytes.extend_from_slice(get());
    let r = raw_exchange(port, &bytes, WAIT);
    let text = String::from_utf8_lossy(&r);
    let _ = origin.kill();
    let _ = origin.wait();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.ends_with("\r\n\r\nPROXY TCP4 192.0.2.7 10.0.0.1 5555 80"),
        "{text}"
    );
}
