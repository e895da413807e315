//! One listener, several filter chains, each with its own terminal filter: the chain chosen
//! for a connection (by SNI, transport protocol, destination port, or the default chain)
//! decides which connection manager or TCP proxy serves it. Real clients (curl, python ssl)
//! against the real binary on loopback; a hot restart hands each connection to the new
//! process on its own chain.
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::hot::*;
use common::*;
use tls_support::*;

/// An HTTP connection manager (stat prefix `prefix`) routing everything to `cluster`.
fn hcm(prefix: &str, cluster: &str) -> String {
    prefixed_hcm(prefix, "", cluster)
}

/// A TCP proxy (stat prefix `prefix`) to `cluster`.
fn tcp(prefix: &str, cluster: &str) -> String {
    format!(
        r#"      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {prefix}
          cluster: {cluster}
"#
    )
}

/// A bootstrap: listener_0 on `port` with `chains` (and `extra` listener lines), clusters
/// `backend` and `two` on the given upstream ports, admin on `admin`.
fn config(port: u16, admin: u16, chains: &str, extra: &str, one: u16, two: u16) -> String {
    bootstrap(admin, port, extra, chains, one, &static_cluster("two", two))
}

fn https(port: u16, name: &str, ca: &str) -> String {
    curl_ok(&[
        "--cacert",
        ca,
        "--resolve",
        &format!("{name}:{port}:127.0.0.1"),
        &format!("https://{name}:{port}/"),
    ])
}

#[test]
fn two_connection_managers_chosen_by_sni() {
    let pki = Pki::new("chains_sni");
    let (up1, up2) = (Upstream::start("one"), Upstream::start("two"));
    let a = pki.leaf("a", "/CN=a.test", "DNS:a.test");
    let b = pki.leaf("b", "/CN=b.test", "DNS:b.test");
    let chains = [
        tls_chain(
            &hcm("ingress_a", "backend"),
            &["server_names: [a.test]"],
            &a,
            &[],
        ),
        tls_chain(
            &hcm("ingress_b", "two"),
            &["server_names: [b.test]"],
            &b,
            &[],
        ),
    ]
    .concat();
    let (port, admin) = (free_port(), free_port());
    let p = Baton::start(&config(port, admin, &chains, "", up1.port(), up2.port()));
    for _ in 0..2 {
        assert_eq!(https(p.port, "a.test", &pki.ca()), up1.greeting());
        assert_eq!(https(p.port, "b.test", &pki.ca()), up2.greeting());
    }
    // Each connection manager counts its own connections and requests; the listener all.
    assert_eq!(stat(admin, "http.ingress_a.downstream_rq_total"), 2);
    assert_eq!(stat(admin, "http.ingress_b.downstream_rq_total"), 2);
    assert_eq!(stat(admin, "http.ingress_a.downstream_cx_total"), 2);
    assert_eq!(stat(admin, "http.ingress_b.downstream_cx_total"), 2);
    let listener = format!("listener.127.0.0.1_{port}");
    // (Plus the harness's readiness probe.)
    assert!(stat(admin, &format!("{listener}.downstream_cx_total")) >= 4);
    let dump = curl_ok(&[&format!("http://127.0.0.1:{admin}/config_dump")]);
    assert!(dump.contains("ingress_a") && dump.contains("ingress_b"));
}

#[test]
fn an_http_chain_and_a_tcp_chain_share_a_listener() {
    let pki = Pki::new("chains_mixed");
    let (up1, up2) = (Upstream::start("one"), Upstream::start("two"));
    let a = pki.leaf("a", "/CN=a.test", "DNS:a.test");
    let mut chains = tls_chain(
        &hcm("ingress_a", "backend"),
        &["transport_protocol: tls"],
        &a,
        &[],
    );
    chains.push_str("    - filter_chain_match: {transport_protocol: raw_buffer}\n      filters:\n");
    chains.push_str(&tcp("plain_tcp", "two"));
    let admin = free_port();
    let p = Baton::start(&config(
        free_port(),
        admin,
        &chains,
        "",
        up1.port(),
        up2.port(),
    ));
    // TLS: the connection manager routes to `one`; plain bytes: the TCP proxy to `two`.
    assert_eq!(https(p.port, "a.test", &pki.ca()), up1.greeting());
    let plain = curl_ok(&[&format!("http://127.0.0.1:{}/", p.port)]);
    assert_eq!(plain, up2.greeting());
    assert_eq!(stat(admin, "tcp.plain_tcp.downstream_cx_total"), 1);
    assert_eq!(stat(admin, "http.ingress_a.downstream_rq_total"), 1);
}

#[test]
fn destination_port_and_the_default_chain() {
    let (up1, up2) = (Upstream::start("one"), Upstream::start("two"));
    for (matched, want) in [(true, &up1), (false, &up2)] {
        let port = free_port();
        let dport = if matched { port } else { port ^ 1 };
        let mut chains =
            format!("    - filter_chain_match: {{destination_port: {dport}}}\n      filters:\n");
        chains.push_str(&hcm("by_port", "backend"));
        let mut default = String::from("    default_filter_chain:\n      filters:\n");
        default.push_str(&hcm("fallback", "two"));
        let admin = free_port();
        let p = Baton::start(&config(
            port,
            admin,
            &chains,
            &default,
            up1.port(),
            up2.port(),
        ));
        let got = curl_ok(&[&format!("http://127.0.0.1:{}/", p.port)]);
        assert_eq!(got, want.greeting(), "destination_port {dport} on {port}");
    }
    // Without a default chain, a connection no chain matches is closed at once and counted.
    let port = free_port();
    let mut chains = format!(
        "    - filter_chain_match: {{destination_port: {}}}\n      filters:\n",
        port ^ 1
    );
    chains.push_str(&hcm("by_port", "backend"));
    let admin = free_port();
    let p = Baton::start(&config(port, admin, &chains, "", up1.port(), up2.port()));
    let mut c = RawConn::connect(p.port);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(c.closed_within(IO_TIMEOUT));
    // (The harness's readiness probe was one such connection too.)
    let n = stat(
        admin,
        &format!("listener.127.0.0.1_{port}.no_filter_chain_match"),
    );
    assert!(n >= 1, "{n}");
}

#[test]
fn source_and_destination_addresses_choose_the_chain() {
    let (up1, up2) = (Upstream::start("one"), Upstream::start("two"));
    let (port, admin) = (free_port(), free_port());
    // Every chain holds the listener's address by the same /8; the client's address, then its
    // port, decide; a client matching neither gets the chain without source criteria.
    let local_port = free_port();
    let mut chains = String::from(
        "    - filter_chain_match:\n        prefix_ranges: [{address_prefix: 127.0.0.0, prefix_len: 8}]\n        source_prefix_ranges: [{address_prefix: 127.0.0.2, prefix_len: 32}]\n      filters:\n",
    );
    chains.push_str(&hcm("from_two", "two"));
    chains.push_str(&format!(
        "    - filter_chain_match:\n        prefix_ranges: [{{address_prefix: 127.0.0.0, prefix_len: 8}}]\n        source_ports: [{local_port}]\n      filters:\n"
    ));
    chains.push_str(&hcm("from_port", "two"));
    chains.push_str(
        "    - filter_chain_match:\n        prefix_ranges: [{address_prefix: 127.0.0.0, prefix_len: 8}]\n      filters:\n",
    );
    chains.push_str(&hcm("others", "backend"));
    let _p = Baton::start(&config(port, admin, &chains, "", up1.port(), up2.port()));
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(curl_ok(&[&url]), up1.greeting(), "from 127.0.0.1");
    assert_eq!(
        curl_ok(&["--interface", "127.0.0.2", &url]),
        up2.greeting(),
        "from 127.0.0.2"
    );
    assert_eq!(
        curl_ok(&["--local-port", &local_port.to_string(), &url]),
        up2.greeting(),
        "from port {local_port}"
    );
    assert_eq!(stat(admin, "http.from_two.downstream_rq_total"), 1);
    assert_eq!(stat(admin, "http.from_port.downstream_rq_total"), 1);
}

/// A passed-through TLS chain `tunnel` (by SNI `t.test`) to cluster `two`, and a plain HTTP
/// chain named `web` to `backend`.
fn tunnel_and_web(port: u16, admin: u16, web: &str, one: u16, two: u16) -> String {
    let mut chains = String::from(
        "    - name: tunnel\n      filter_chain_match: {server_names: [t.test]}\n      filters:\n",
    );
    chains.push_str(&tcp("passthrough", "two"));
    chains.push_str(&format!("    - name: {web}\n      filters:\n"));
    chains.push_str(&hcm("web", "backend"));
    config(port, admin, &chains, "", one, two)
}

#[test]
fn a_handed_over_connection_whose_chain_is_gone_is_closed() {
    let (up1, up2) = (Upstream::start("one"), Upstream::start("two"));
    let (port, admin) = (free_port(), free_port());
    let old_cfg = tunnel_and_web(port, admin, "web", up1.port(), up2.port());
    let dir = HotDir::new("chains_gone");
    let mut old = hot_start(&old_cfg, &dir, &[]);
    let mut web = RawConn::connect(port);
    web.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(web.expect_response(false).body, up1.greeting().as_bytes());
    // The new config names the HTTP chain differently: the idle connection, handed over as
    // `web`'s, finds no such chain and is closed, as one of a removed listener.
    let new_cfg = tunnel_and_web(port, admin, "site", up1.port(), up2.port());
    let (mut new, _) = hot_takeover(&new_cfg, &dir, &[], &old);
    old.sigterm();
    expect_exit_code(&mut old, 0, EXIT_WAIT);
    assert!(web.closed_within(IO_TIMEOUT));
    assert!(
        new.wait_log("that this config lacks", IO_TIMEOUT),
        "{}",
        new.log()
    );
    // New connections are served by the renamed chain.
    assert_eq!(get_body(port), up1.greeting());
}

/// A python TLS client through the listener to `t.test` (passed through to the TLS origin):
/// one request, then one more on the same connection after a line on stdin.
const TUNNEL_CLIENT: &str = r#"
import http.client, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection("t.test", port, context=ctx, timeout=20)
c.sock = None
import socket
raw = socket.create_connection(("127.0.0.1", port), timeout=20)
c.sock = ctx.wrap_socket(raw, server_hostname="t.test")
for i in range(2):
    if i == 1:
        sys.stdin.readline()
    c.request("GET", "/")
    r = c.getresponse()
    body = r.read().decode()
    print("%d %s" % (r.status, body.split()[2] if body.startswith("secure") else body), flush=True)
"#;

#[test]
fn hot_restart_keeps_each_connections_chain() {
    let pki = Pki::new("chains_hr");
    let origin_cert = pki.leaf("t", "/CN=t.test", "DNS:t.test");
    let origin = PyTls::start(&origin_cert, None);
    let up1 = Upstream::start("one");
    let (port, admin) = (free_port(), free_port());
    let cfg = tunnel_and_web(port, admin, "web", up1.port(), origin.port);
    let dir = HotDir::new("chains_hr");
    let mut old = hot_start(&cfg, &dir, &[]);

    let mut client = Command::new("python3")
        .args(["-c", TUNNEL_CLIENT, &port.to_string(), &pki.ca()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = BufReader::new(client.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("first answer");
    assert_eq!(line.trim(), "200 t.test", "through the tunnel chain");

    let mut web = RawConn::connect(port);
    web.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = web.expect_response(false);
    assert_eq!(r.body, up1.greeting().as_bytes());

    let (new, _) = hot_takeover(&cfg, &dir, &[], &old);
    old.sigterm();
    expect_exit_code(&mut old, 0, EXIT_WAIT);
    let log = old.log();
    assert!(log.contains("tunnel(s) to the new process"), "{log}");

    // Both connections go on in the new process, each on its own chain.
    web.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = web.expect_response(false);
    assert_eq!(
        r.body,
        up1.greeting().as_bytes(),
        "the web chain after the restart"
    );
    let stdin = client.stdin.as_mut().expect("stdin");
    stdin.write_all(b"go\n").expect("stdin");
    line.clear();
    out.read_line(&mut line).expect("second answer");
    assert_eq!(line.trim(), "200 t.test", "the tunnel after the restart");
    let status = client.wait().expect("client");
    assert!(status.success());
    assert!(
        !new.log().contains("that this config lacks"),
        "{}",
        new.log()
    );
    std::thread::sleep(Duration::from_millis(50));
}

/// A keep-alive client bound to 127.0.0.2: one request, then (after a line on stdin) another
/// on the same connection; prints `status body` for each.
const FROM_127_0_0_2: &str = r#"
import http.client, sys
port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=20, source_address=("127.0.0.2", 0))
for i in range(2):
    if i == 1:
        sys.stdin.readline()
    c.request("GET", "/")
    r = c.getresponse()
    print("%d %s" % (r.status, r.read().decode().strip()), flush=True)
"#;

/// Chains `b` (any client) and `a` (clients from 127.0.0.2), `a` forwarding to `a_cluster`:
/// with `backend` both have the same terminal filter.
fn same_terminal_chains(port: u16, admin: u16, a_cluster: &str, one: u16, two: u16) -> String {
    let mut chains = String::from("    - name: b\n      filters:\n");
    chains.push_str(&hcm("b", "backend"));
    chains.push_str(
        "    - name: a\n      filter_chain_match:\n        source_prefix_ranges: \
         [{address_prefix: 127.0.0.2, prefix_len: 32}]\n      filters:\n",
    );
    chains.push_str(&hcm("b", a_cluster));
    config(port, admin, &chains, "", one, two)
}

/// Two chains with identical terminal filters share one in the old process; a connection
/// handed over from the second is named by its own chain, so when the new config gives that
/// chain another cluster, the connection is served by it.
#[test]
fn a_handed_over_connection_keeps_its_chain_when_chains_shared_a_terminal() {
    let (up1, up2) = (Upstream::start("one"), Upstream::start("two"));
    let (port, admin) = (free_port(), free_port());
    let dir = HotDir::new("same_terminal");
    let v1 = same_terminal_chains(port, admin, "backend", up1.port(), up2.port());
    let mut old = hot_start(&v1, &dir, &[]);
    let mut client = Command::new("python3")
        .args(["-c", FROM_127_0_0_2, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = BufReader::new(client.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("first answer");
    assert!(line.contains(up1.greeting().trim()), "{line}");
    let v2 = same_terminal_chains(port, admin, "two", up1.port(), up2.port());
    let (new, _) = hot_takeover(&v2, &dir, &[], &old);
    old.sigterm();
    expect_exit_code(&mut old, 0, EXIT_WAIT);
    client
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("write");
    line.clear();
    out.read_line(&mut line).expect("second answer");
    let _ = client.wait();
    new.sigterm();
    assert!(
        line.contains(up2.greeting().trim()),
        "served by another chain: {line}"
    );
}
