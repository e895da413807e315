//! The TCP proxy network filter (`envoy.filters.network.tcp_proxy`) through the real binary,
//! with raw TCP peers: bytes both ways byte-exact, the client or the server speaking first,
//! half-close each way, a refused upstream (the client closed unanswered, counted), connect
//! attempts moving to the next endpoint, the idle timeout and the maximum duration, TLS
//! passed through untouched and TLS terminated on the chain, the access log, and a session
//! that keeps echoing across a hot restart.

mod admin_util;
mod common;
mod tls_support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::Duration;

use admin_util::{eventually, stat, wait_live};
use common::baton::log_path;
use common::hot::{expect_exit_code, hot_start, hot_takeover, HotDir, EXIT_WAIT};
use common::*;

/// The TCP proxy's `typed_config` lines (under `stat_prefix: tp`), indented for `yaml`.
fn fields(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| format!("          {l}\n"))
        .collect::<String>()
}

/// A listener on `listen` whose one chain is a TCP proxy (`tcp` its extra lines, from
/// `fields`), `chain_extra` lines after the filters (a transport socket), clusters by name
/// with their endpoint ports, and the admin on `admin`.
fn yaml(
    listen: u16,
    admin: u16,
    tcp: &str,
    chain_extra: &str,
    clusters: &[(&str, &[u16])],
) -> String {
    let mut y = format!(
        r#"static_resources:
  listeners:
  - name: tcp_listener
    address:
      socket_address:
        address: 127.0.0.1
        port_value: {listen}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tp
{tcp}{chain_extra}  clusters:
"#
    );
    for (name, ports) in clusters {
        y.push_str(&format!(
            "  - name: {name}\n    connect_timeout: 2s\n    type: STATIC\n    lb_policy: ROUND_ROBIN\n    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:{}\n",
            if ports.is_empty() { " []" } else { "" }
        ));
        for p in *ports {
            y.push_str(&format!(
                "        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {p}}}}}}}\n"
            ));
        }
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

/// baton with a TCP proxy to cluster `up` (one endpoint per port).
fn start(tcp: &[&str], up: &[u16]) -> Proxy {
    start_with(tcp, "", &[("up", up)])
}

fn start_with(tcp: &[&str], chain_extra: &str, clusters: &[(&str, &[u16])]) -> Proxy {
    let mut lines = vec!["cluster: up"];
    lines.extend_from_slice(tcp);
    let (port, admin) = (free_port(), free_port());
    let b = quiet_start(
        &yaml(port, admin, &fields(&lines), chain_extra, clusters),
        admin,
    );
    Proxy { b, port, admin }
}

/// Starts baton and waits until it serves without connecting to its listener: a probe
/// connection (`Baton::start`'s) would be proxied like any other, opening an upstream
/// connection and counting in the stats the tests check.
fn quiet_start(yaml: &str, admin: u16) -> Baton {
    let mut b = Baton::spawn_args(yaml, &[]);
    assert!(
        b.wait_log(" serving: config", common::baton::START_TIMEOUT),
        "baton did not start\n{}",
        b.log()
    );
    wait_live(admin);
    b
}

fn connect(port: u16) -> TcpStream {
    let c = TcpStream::connect(local(port)).expect("connect");
    c.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    c
}

/// Reads until EOF; an error (a reset) is returned as such.
fn read_to_eof(s: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    s.read_to_end(&mut v).map(|_| v)
}

fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v).expect("read");
    v
}

/// An upstream that serves every connection it accepts: it sends `banner` (if any), then
/// echoes what it reads; at the client's FIN it sends `bye` and closes.
fn echo_upstream(banner: &'static [u8], bye: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            thread::spawn(move || {
                if s.write_all(banner).is_err() {
                    return;
                }
                let mut buf = [0u8; 16384];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => {
                            let _ = s.write_all(bye);
                            return;
                        }
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    });
    port
}

/// Writes `len` pattern bytes, then shuts the write side down.
fn send_pattern(mut s: TcpStream, len: u64) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut off = 0u64;
        while off < len {
            let n = buf.len().min((len - off) as usize);
            pattern::fill(off, &mut buf[..n]);
            s.write_all(&buf[..n]).expect("write pattern");
            off += n as u64;
        }
        s.shutdown(Shutdown::Write).expect("shutdown");
    })
}

/// Reads pattern bytes to EOF, checking each; returns how many.
fn recv_pattern(s: &mut TcpStream) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    loop {
        let n = s.read(&mut buf).expect("read pattern");
        if n == 0 {
            return off;
        }
        pattern::fill(off, &mut want[..n]);
        assert!(buf[..n] == want[..n], "byte mismatch near offset {off}");
        off += n as u64;
    }
}

#[test]
fn mebibytes_cross_both_ways_at_once_byte_exact() {
    const UP: u64 = 6 << 20;
    const DOWN: u64 = 5 << 20;
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up_port = l.local_addr().expect("addr").port();
    let upstream = thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let writer = send_pattern(s.try_clone().expect("clone"), DOWN);
        let got = recv_pattern(&mut s);
        writer.join().expect("upstream writer");
        got
    });
    let p = start(&[], &[up_port]);
    let mut c = connect(p.port);
    let writer = send_pattern(c.try_clone().expect("clone"), UP);
    assert_eq!(recv_pattern(&mut c), DOWN);
    writer.join().expect("client writer");
    assert_eq!(upstream.join().expect("upstream"), UP);
    assert_eq!(stat(p.admin, "tcp.tp.downstream_cx_total"), 1);
    assert_eq!(stat(p.admin, "cluster.up.upstream_cx_total"), 1);
    assert!(eventually(IO_TIMEOUT, || stat(
        p.admin,
        "cluster.up.upstream_cx_active"
    ) == 0));
    // A TCP proxy's connection is no HTTP request.
    assert_eq!(stat(p.admin, "cluster.up.upstream_rq_total"), 0);
}

#[test]
fn the_client_or_the_server_may_speak_first() {
    // Server first: the banner arrives before the client sent anything.
    let up = echo_upstream(b"220 ready\r\n", b"");
    let p = start(&[], &[up]);
    let mut c = connect(p.port);
    assert_eq!(read_n(&mut c, 11), b"220 ready\r\n");
    c.write_all(b"EHLO x\r\n").unwrap();
    assert_eq!(read_n(&mut c, 8), b"EHLO x\r\n");
    // Client first: bytes sent before the upstream connection exists are not lost.
    let up = echo_upstream(b"", b"");
    let p = start(&[], &[up]);
    let mut c = TcpStream::connect(local(p.port)).expect("connect");
    c.write_all(b"sent at once").unwrap();
    c.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(read_n(&mut c, 12), b"sent at once");
}

#[test]
fn the_clients_half_close_reaches_the_upstream_which_can_still_answer() {
    let up = echo_upstream(b"", b"goodbye after your FIN");
    let p = start(&[], &[up]);
    let mut c = connect(p.port);
    c.write_all(b"client data").unwrap();
    assert_eq!(read_n(&mut c, 11), b"client data");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        read_to_eof(&mut c).expect("a clean end"),
        b"goodbye after your FIN"
    );
    assert!(eventually(IO_TIMEOUT, || stat(
        p.admin,
        "cluster.up.upstream_cx_active"
    ) == 0));
}

#[test]
fn the_upstreams_half_close_reaches_the_client_which_can_still_send() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up = l.local_addr().expect("addr").port();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        s.write_all(b"server done").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        read_to_eof(&mut s).expect("FIN")
    });
    let p = start(&[], &[up]);
    let mut c = connect(p.port);
    assert_eq!(read_n(&mut c, 11), b"server done");
    let mut b = [0u8; 8];
    assert_eq!(c.read(&mut b).expect("EOF"), 0, "the FIN is passed on");
    c.write_all(b"client still talking").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(h.join().expect("upstream"), b"client still talking");
    assert_eq!(read_to_eof(&mut c).expect("closed"), b"");
}

#[test]
fn a_refused_upstream_closes_the_client_unanswered_and_is_counted() {
    let (dead, _hold) = refused_port();
    let log = log_path("tcp_refused");
    let lines = [
        "access_log:".to_string(),
        format!(
            "- {{name: envoy.access_loggers.file, typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: \"{}\", log_format: {{text_format_source: {{inline_string: \"flags=%RESPONSE_FLAGS% attempts=%UPSTREAM_REQUEST_ATTEMPT_COUNT% code=%RESPONSE_CODE% proto=%PROTOCOL% up=%UPSTREAM_HOST%\\n\"}}}}}}}}",
            log.display()
        ),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let p = start(&lines, &[dead]);
    let mut c = connect(p.port);
    c.write_all(b"anyone there?").unwrap();
    // Closed with nothing written (a FIN, or a reset for the unread bytes).
    assert!(read_to_eof(&mut c).map_or(true, |v| v.is_empty()));
    assert_eq!(stat(p.admin, "cluster.up.upstream_cx_connect_fail"), 1);
    assert_eq!(
        stat(p.admin, "cluster.up.upstream_cx_connect_attempts_exceeded"),
        1
    );
    assert_eq!(stat(p.admin, "tcp.tp.downstream_cx_total"), 1);
    let mut line = String::new();
    assert!(eventually(IO_TIMEOUT, || {
        line = std::fs::read_to_string(&log).unwrap_or_default();
        !line.is_empty()
    }));
    assert_eq!(
        line,
        format!("flags=UF,URX attempts=1 code=0 proto=- up=127.0.0.1:{dead}\n")
    );
    // An empty cluster: no host at all (UH, upstream_cx_none_healthy).
    let p = start_with(&[], "", &[("up", &[])]);
    let mut c = connect(p.port);
    assert!(read_to_eof(&mut c).map_or(true, |v| v.is_empty()));
    assert_eq!(stat(p.admin, "cluster.up.upstream_cx_none_healthy"), 1);
    assert_eq!(stat(p.admin, "cluster.up.upstream_cx_total"), 0);
}

/// Opens `n` connections one after the other, each sending a line an echo upstream would
/// return; returns how many were closed instead of echoed (they met a dead host).
fn echo_or_closed(port: u16, n: usize) -> usize {
    let mut closed = 0;
    for i in 0..n {
        let mut c = connect(port);
        let msg = format!("connection {i}");
        c.write_all(msg.as_bytes()).unwrap();
        let mut b = vec![0u8; msg.len()];
        if c.read_exact(&mut b).is_err() {
            closed += 1;
        }
    }
    closed
}

#[test]
fn max_connect_attempts_moves_a_failed_connect_to_the_next_endpoint() {
    let (dead, _hold) = refused_port();
    let up = echo_upstream(b"", b"");
    // Round robin over [dead, up]: every other connection tries the dead one first.
    let p = start(&["max_connect_attempts: 2"], &[dead, up]);
    for i in 0..4 {
        let mut c = connect(p.port);
        let msg = format!("connection {i}");
        c.write_all(msg.as_bytes()).unwrap();
        assert_eq!(read_n(&mut c, msg.len()), msg.as_bytes(), "connection {i}");
    }
    assert!(stat(p.admin, "cluster.up.upstream_cx_connect_fail") >= 1);
    assert_eq!(
        stat(p.admin, "cluster.up.upstream_cx_connect_attempts_exceeded"),
        0
    );
    // With one attempt (Envoy's default) a connection that meets the dead host is closed.
    let p = start(&[], &[dead, up]);
    let closed = echo_or_closed(p.port, 4);
    assert!(closed >= 1, "no connection met the dead host");
    assert_eq!(
        stat(p.admin, "cluster.up.upstream_cx_connect_attempts_exceeded"),
        closed as i64
    );
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let up = echo_upstream(b"", b"");
    let p = start(&["idle_timeout: 0.5s"], &[up]);
    let mut c = connect(p.port);
    c.write_all(b"ping").unwrap();
    assert_eq!(read_n(&mut c, 4), b"ping");
    // Then silence: closed, both sides, within a generous bound.
    let r = read_to_eof(&mut c);
    assert!(r.map_or(true, |v| v.is_empty()));
    assert!(eventually(IO_TIMEOUT, || stat(
        p.admin,
        "tcp.tp.idle_timeout"
    ) == 1));
    assert!(eventually(IO_TIMEOUT, || stat(
        p.admin,
        "cluster.up.upstream_cx_active"
    ) == 0));
}

#[test]
fn a_busy_connection_ends_at_its_maximum_duration() {
    let up = echo_upstream(b"", b"");
    let p = start(&["max_downstream_connection_duration: 1s"], &[up]);
    let mut c = connect(p.port);
    let mut ended = false;
    for _ in 0..200 {
        if c.write_all(b"busy").is_err() {
            ended = true;
            break;
        }
        let mut b = [0u8; 4];
        if c.read_exact(&mut b).is_err() {
            ended = true;
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    assert!(ended, "still open after 10 s of traffic");
    assert_eq!(
        stat(p.admin, "tcp.tp.max_downstream_connection_duration"),
        1
    );
}

#[test]
fn a_connection_limit_filter_may_come_first() {
    let up = echo_upstream(b"hi", b"");
    let (port, admin) = (free_port(), free_port());
    let y = yaml(port, admin, &fields(&["cluster: up"]), "", &[("up", &[up])]).replace(
        "      - name: envoy.filters.network.tcp_proxy\n",
        "      - name: envoy.filters.network.connection_limit\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit\n          stat_prefix: cl\n          max_connections: 1\n      - name: envoy.filters.network.tcp_proxy\n",
    );
    let _b = quiet_start(&y, admin);
    let mut first = connect(port);
    assert_eq!(read_n(&mut first, 2), b"hi");
    let mut second = connect(port);
    assert!(read_to_eof(&mut second).map_or(true, |v| v.is_empty()));
    assert_eq!(stat(admin, "connection_limit.cl.limited_connections"), 1);
}

#[test]
fn tls_passes_through_untouched_to_the_upstreams_certificate() {
    let pki = tls_support::Pki::new("tcp_passthrough");
    let cert = pki.leaf("a", "/CN=a.test", "DNS:a.test");
    let origin = tls_support::PyTls::start(&cert, None);
    let p = start(&[], &[origin.port]);
    // curl checks the certificate against the CA and the name: the handshake is the
    // upstream's own, and the upstream saw the client's SNI.
    let out = curl_ok(&[
        "--cacert",
        &pki.ca(),
        "--resolve",
        &format!("a.test:{}:127.0.0.1", p.port),
        &format!("https://a.test:{}/", p.port),
    ]);
    assert!(out.starts_with("secure "), "{out}");
    assert!(out.contains(" a.test "), "the SNI passed through: {out}");
    assert_eq!(stat(p.admin, "tcp.tp.downstream_cx_total"), 1);
}

/// A TLS client (Python's ssl, verifying against `ca` as `a.test`) that sends a line and
/// prints what comes back and its TLS version.
const TLS_CLIENT: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="a.test")
s.sendall(b"over tls\n")
got = b""
while not got.endswith(b"over tls\n"):
    d = s.recv(100)
    if not d:
        break
    got += d
print(got.decode().strip(), s.version())
"#;

#[test]
fn a_tls_context_on_the_chain_terminates_tls_and_forwards_plaintext() {
    let pki = tls_support::Pki::new("tcp_terminate");
    let cert = pki.leaf("a", "/CN=a.test", "DNS:a.test");
    let up = echo_upstream(b"", b"");
    let chain = format!(
        r#"      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {{filename: "{}"}}
              private_key: {{filename: "{}"}}
"#,
        cert.0, cert.1
    );
    let p = start_with(&[], &chain, &[("up", &[up])]);
    let out = Command::new("python3")
        .args(["-c", TLS_CLIENT, &p.port.to_string(), &pki.ca()])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("over tls TLSv1."),
        "{stdout} {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        p.b.log()
    );
    let handshakes = format!("listener.127.0.0.1_{}.ssl.handshake", p.port);
    assert_eq!(stat(p.admin, &handshakes), 1);
}

/// One line out, the same line back.
fn echo_line(c: &mut TcpStream, line: &str) {
    c.write_all(line.as_bytes()).expect("write");
    assert_eq!(String::from_utf8_lossy(&read_n(c, line.len())), line);
}

#[test]
fn a_session_keeps_echoing_across_hot_restarts() {
    let up = echo_upstream(b"", b"");
    let (port, admin) = (free_port(), free_port());
    let cfg = yaml(port, admin, &fields(&["cluster: up"]), "", &[("up", &[up])]);
    let dir = HotDir::new("tcp_proxy_restart");
    let mut gen = hot_start(&cfg, &dir, &[]);
    // hot_start's probe connection counts too: it is over by the time the admin says so.
    assert!(eventually(IO_TIMEOUT, || stat(
        admin,
        "cluster.up.upstream_cx_active"
    ) == 0));
    let before = stat(admin, "tcp.tp.downstream_cx_total");
    let mut c = connect(port);
    echo_line(&mut c, "before any restart\n");
    for i in 0..3 {
        let (next, _) = hot_takeover(&cfg, &dir, &[], &gen);
        gen.sigterm();
        expect_exit_code(&mut gen, 0, EXIT_WAIT);
        assert!(
            gen.log().contains("tunnel(s) to the new process"),
            "restart {i}: the connection did not move\n{}",
            gen.log()
        );
        gen = next;
        // The same connection, the same upstream connection, served by the new process.
        echo_line(&mut c, &format!("after restart {i}\n"));
    }
    // Counted once (stats carry over; a moved connection is not a new one), one upstream
    // connection the whole time.
    assert_eq!(stat(admin, "tcp.tp.downstream_cx_total"), before + 1);
    assert_eq!(stat(admin, "cluster.up.upstream_cx_active"), 1);
    // A new connection is served by the newest process.
    let mut d = connect(port);
    echo_line(&mut d, "a new connection\n");
    assert_eq!(stat(admin, "tcp.tp.downstream_cx_total"), before + 2);
    // The half-close still works after the moves.
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut c).expect("clean end"), b"");
    drop(gen);
}

#[test]
fn weighted_clusters_spread_connections_by_weight() {
    let a = echo_upstream(b"A", b"");
    let b = echo_upstream(b"B", b"");
    let (port, admin) = (free_port(), free_port());
    let tcp = fields(&[
        "weighted_clusters:",
        "  clusters: [{name: up, weight: 1}, {name: other, weight: 1}]",
    ]);
    let _b = quiet_start(
        &yaml(port, admin, &tcp, "", &[("up", &[a]), ("other", &[b])]),
        admin,
    );
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let mut c = connect(port);
        *seen.entry(read_n(&mut c, 1)).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both clusters get connections: {seen:?}");
    assert_eq!(
        stat(admin, "cluster.up.upstream_cx_total")
            + stat(admin, "cluster.other.upstream_cx_total"),
        40
    );
}

#[test]
fn the_access_log_writes_one_line_per_connection_when_it_ends() {
    let up = echo_upstream(b"hello\n", b"bye\n");
    let log = log_path("tcp_access");
    let stdout_like = format!(
        "- {{name: envoy.access_loggers.file, typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: \"{}\"}}}}",
        log.display()
    );
    let p = start(&["access_log:", &stdout_like], &[up]);
    let mut c = connect(p.port);
    assert_eq!(read_n(&mut c, 6), b"hello\n");
    echo_line(&mut c, "0123456789\n");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut c).expect("end"), b"bye\n");
    let mut line = String::new();
    assert!(eventually(IO_TIMEOUT, || {
        line = std::fs::read_to_string(&log).unwrap_or_default();
        !line.is_empty()
    }));
    // Envoy's default format for a TCP connection: no request, no protocol, code 0; the
    // bytes are the whole connection's each way.
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.starts_with('[') && line.contains("] \"- - -\" 0 - 11 21 "),
        "{line}"
    );
    assert!(
        line.trim_end()
            .ends_with(&format!("\"-\" \"-\" \"-\" \"-\" \"127.0.0.1:{up}\"")),
        "{line}"
    );
}

#[test]
fn an_access_log_filter_picks_the_connections_logged() {
    // Round robin over [dead, up] with one attempt: of 4 connections, those that meet the
    // dead host end with UF. The unfiltered log gets every connection, the one filtered on
    // UF only those, and a status filter (a TCP connection has status 0) all of them.
    let (dead, _hold) = refused_port();
    let up = echo_upstream(b"", b"");
    let (all, uf, zero) = (
        log_path("tcp_f_all"),
        log_path("tcp_f_uf"),
        log_path("tcp_f_zero"),
    );
    let logger = |path: &std::path::Path, filter: &str| {
        format!(
            "- {{name: envoy.access_loggers.file, {filter}typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: \"{}\", log_format: {{text_format_source: {{inline_string: \"%RESPONSE_FLAGS% %UPSTREAM_HOST%\\n\"}}}}}}}}",
            path.display()
        )
    };
    let lines = [
        "access_log:".to_string(),
        logger(&all, ""),
        logger(&uf, "filter: {response_flag_filter: {flags: [UF]}}, "),
        logger(
            &zero,
            "filter: {status_code_filter: {comparison: {op: EQ, value: {default_value: 0, runtime_key: k}}}}, ",
        ),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let p = start(&refs, &[dead, up]);
    let closed = echo_or_closed(p.port, 4);
    assert!((1..4).contains(&closed), "{closed} of 4 met the dead host");
    let read = |p: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    };
    assert!(
        eventually(IO_TIMEOUT, || read(&all).len() == 4),
        "{:?}",
        read(&all)
    );
    std::thread::sleep(Duration::from_millis(300));
    let failed = read(&uf);
    assert_eq!(failed.len(), closed, "{failed:?}");
    for l in &failed {
        // URX too: the one attempt allowed was used up, as Envoy flags it.
        assert_eq!(l, &format!("UF,URX 127.0.0.1:{dead}"));
    }
    assert_eq!(read(&zero), read(&all));
}

#[test]
fn a_tls_cluster_gets_the_bytes_over_tls() {
    // TLS origination: the client speaks plain bytes (here an HTTP request), the cluster's
    // UpstreamTlsContext carries them over TLS, verified against the CA.
    let pki = tls_support::Pki::new("tcp_originate");
    let cert = pki.leaf("a", "/CN=a.test", "DNS:a.test");
    let origin = tls_support::PyTls::start(&cert, None);
    let (port, admin) = (free_port(), free_port());
    let y = yaml(port, admin, &fields(&["cluster: up"]), "", &[("up", &[origin.port])]).replace(
        "    lb_policy: ROUND_ROBIN\n",
        &format!(
            "    lb_policy: ROUND_ROBIN\n    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n        sni: a.test\n        common_tls_context:\n          validation_context:\n            trusted_ca: {{filename: \"{}\"}}\n",
            pki.ca()
        ),
    );
    let _b = quiet_start(&y, admin);
    let mut c = connect(port);
    c.write_all(b"GET /close HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let got = String::from_utf8(read_to_eof(&mut c).expect("the response")).expect("text");
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    assert!(
        got.contains("secure ") && got.contains(" a.test TLSv1."),
        "{got}"
    );
    assert_eq!(stat(admin, "cluster.up.ssl.handshake"), 1);
}

#[test]
fn an_upstream_that_does_not_read_pauses_reading_the_client_until_it_does() {
    const LEN: u64 = 4 << 20;
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up = l.local_addr().expect("addr").port();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let upstream = thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        // Reads nothing until told: the kernel buffers and baton's fill up.
        wait.recv().expect("go");
        recv_pattern(&mut s)
    });
    let p = start(&[], &[up]);
    let c = connect(p.port);
    let writer = send_pattern(c.try_clone().expect("clone"), LEN);
    assert!(
        eventually(IO_TIMEOUT, || stat(
            p.admin,
            "tcp.tp.downstream_flow_control_paused_reading_total"
        ) >= 1),
        "reading the client never paused"
    );
    go.send(()).expect("go");
    writer.join().expect("client writer");
    assert_eq!(
        upstream.join().expect("upstream"),
        LEN,
        "every byte, in order"
    );
    let (paused, resumed) = (
        stat(
            p.admin,
            "tcp.tp.downstream_flow_control_paused_reading_total",
        ),
        stat(
            p.admin,
            "tcp.tp.downstream_flow_control_resumed_reading_total",
        ),
    );
    assert!(resumed >= 1 && resumed <= paused, "{paused} {resumed}");
    drop(c);
}

#[test]
fn unsupported_tcp_proxy_fields_are_refused_naming_their_path() {
    let (port, admin) = (free_port(), free_port());
    let y = yaml(
        port,
        admin,
        &fields(&[
            "cluster: up",
            "tunneling_config: {hostname: example.com:443, use_post: true}",
            "hash_policy: [{source_ip: {}}]",
        ]),
        "",
        &[("up", &[1])],
    );
    let (status, _, err) = run_baton(&["--mode", "validate", "--config-yaml", &y], IO_TIMEOUT);
    assert_eq!(status.code(), Some(1), "{err}");
    let t = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
    assert!(err.contains("2 errors:"), "{err}");
    assert!(
        err.contains(&format!(
            "{t}.tunneling_config.use_post: not supported by baton (tunneling over POST)"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{t}.hash_policy: not supported by baton (hash policies)"
        )),
        "{err}"
    );
}

/// baton terminating HTTP/1.1 CONNECT (Envoy's `terminate_http1_connect` shape): the CONNECT
/// route's cluster is `up` on `up`.
fn connect_terminator(up: u16) -> (Baton, u16) {
    let (port, admin) = (free_port(), free_port());
    let yaml = format!(
        r#"static_resources:
  listeners:
  - name: terminate
    address:
      socket_address:
        address: 127.0.0.1
        port_value: {port}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - match: {{connect_matcher: {{}}}}
                route:
                  cluster: up
                  upgrade_configs: [{{upgrade_type: CONNECT, connect_config: {{}}}}]
          http_filters:
          - name: envoy.filters.http.router
          upgrade_configs: [{{upgrade_type: CONNECT}}]
  clusters:
  - name: up
    connect_timeout: 2s
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {up}}}}}}}
admin:
  address:
    socket_address: {{address: 127.0.0.1, port_value: {admin}}}
"#
    );
    (quiet_start(&yaml, admin), port)
}

/// `tunneling_config`: each client connection is carried inside an HTTP/1.1 CONNECT to the
/// cluster, an HTTP proxy — here a second baton terminating CONNECT in front of an echo
/// service (Envoy's `encapsulate_in_http1_connect` and `terminate_http1_connect` pair).
/// Bytes cross both ways byte-exact, the server's banner first; half-close passes through.
#[test]
fn tunneling_config_carries_the_connection_inside_an_http11_connect() {
    let echo = echo_upstream(b"hello from the echo service\n", b"");
    let (_term, term_port) = connect_terminator(echo);
    let p = start(
        &["tunneling_config: {hostname: \"host.com:443\"}"],
        &[term_port],
    );
    let mut c = connect(p.port);
    let banner = b"hello from the echo service\n";
    assert_eq!(read_n(&mut c, banner.len()), banner);
    let sender = send_pattern(c.try_clone().expect("clone"), 3 << 20);
    assert_eq!(recv_pattern(&mut c), 3 << 20);
    sender.join().expect("sender");
    // One upstream connection per client connection, nothing retried.
    let mut c2 = connect(p.port);
    assert_eq!(read_n(&mut c2, banner.len()), banner);
    c2.write_all(b"ping\n").expect("write");
    assert_eq!(read_n(&mut c2, 5), b"ping\n");
    drop(c2);
    assert!(eventually(IO_TIMEOUT, || stat(
        p.admin,
        "cluster.up.upstream_cx_total"
    ) == 2));
    assert_eq!(stat(p.admin, "cluster.up.upstream_cx_connect_fail"), 0);
}

/// What goes to the proxy is exactly Envoy's CONNECT (`hostname` as target and Host); the
/// client's bytes follow only after a 2xx; bytes after the answer's head are the tunnel's.
/// A refusal (here 403) is a failed connect: the next attempt goes to the next endpoint,
/// and after the last one the client is closed with nothing written.
#[test]
fn tunneling_config_sends_envoys_connect_and_treats_a_refusal_as_a_failed_connect() {
    // A scripted proxy: records the request head, answers `reply`, then echoes.
    let proxy = |reply: &'static [u8]| {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let tx = tx.clone();
                thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
                        match s.read(&mut b) {
                            Ok(1) => head.push(b[0]),
                            _ => return,
                        }
                    }
                    let _ = tx.send(head);
                    if s.write_all(reply).is_err() {
                        return;
                    }
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (port, rx)
    };
    let (ok_port, ok_heads) = proxy(b"HTTP/1.1 200 Connection established\r\n\r\nready\n");
    let (no_port, no_heads) = proxy(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
    // Two endpoints, two attempts: round robin makes the refusing one first for one client.
    let p = start(
        &[
            "tunneling_config: {hostname: \"db.internal:5432\"}",
            "max_connect_attempts: 2",
        ],
        &[no_port, ok_port],
    );
    for _ in 0..2 {
        let mut c = connect(p.port);
        c.write_all(b"early bytes\n").expect("write");
        assert_eq!(read_n(&mut c, 6), b"ready\n");
        assert_eq!(read_n(&mut c, 12), b"early bytes\n");
    }
    let want = b"CONNECT db.internal:5432 HTTP/1.1\r\nhost: db.internal:5432\r\n\r\n".to_vec();
    let head = ok_heads.recv_timeout(IO_TIMEOUT).expect("a CONNECT");
    assert_eq!(
        String::from_utf8_lossy(&head),
        String::from_utf8_lossy(&want)
    );
    let refused = no_heads
        .recv_timeout(IO_TIMEOUT)
        .expect("a CONNECT to the other");
    assert_eq!(refused, want);
    drop(p);

    // Only the refusing proxy: the client is closed unanswered, the attempts counted.
    let (no_port, _no_heads) = proxy(b"HTTP/1.1 403 Forbidden\r\n\r\n");
    let p = start(
        &["tunneling_config: {hostname: \"db.internal:5432\"}"],
        &[no_port],
    );
    let mut c = connect(p.port);
    c.write_all(b"early bytes\n").expect("write");
    let got = read_to_eof(&mut c).unwrap_or_default();
    assert!(got.is_empty(), "{got:?}");
    assert!(eventually(IO_TIMEOUT, || {
        stat(p.admin, "cluster.up.upstream_cx_connect_attempts_exceeded") == 1
    }));
}
