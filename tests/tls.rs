//! TLS end to end: curl and `openssl s_client` against the real binary on loopback, with
//! certificates made by the openssl CLI. Downstream: TLS 1.2 and 1.3, SNI choosing the filter
//! chain (and so the certificate), mTLS, tls_params, stats and access-log operators, bad
//! handshakes costing only their connection. Upstream: a Python TLS origin with a test CA,
//! verification and SAN matching, client certificates, pooled TLS connections.
#![cfg(feature = "tls")]

mod common;
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use tls_support::*;

fn log_file(tag: &str) -> String {
    common::baton::log_path(tag).to_string_lossy().into_owned()
}

/// curl over HTTPS to `name` (resolved to 127.0.0.1) with the test CA and `extra` args.
/// baton with `chain` as listener_0's filter chains, cluster `backend` on `up`, and admin.
fn serve(chain: &str, up: u16) -> Baton {
    Baton::start(&bootstrap(free_port(), free_port(), "", chain, up, ""))
}

fn https(port: u16, name: &str, ca: &str, extra: &[&str]) -> std::process::Output {
    let url = format!("https://{name}:{port}/");
    let resolve = format!("{name}:{port}:127.0.0.1");
    let mut args = vec!["--cacert", ca, "--resolve", &resolve];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args)
}

fn https_ok(port: u16, name: &str, ca: &str, extra: &[&str]) -> String {
    let o = https(port, name, ca, extra);
    assert!(
        o.status.success(),
        "curl {name} {extra:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Three chains: `a.test` exactly, `*.b.test`, and a default without names.
fn sni_proxy(pki: &Pki, up: u16, log: &str, listener_extra: &str) -> (Baton, u16) {
    let a = pki.leaf("a", "/CN=a.test", "DNS:a.test");
    let b = pki.leaf("b", "/CN=b.test", "DNS:*.b.test");
    let d = pki.leaf("d", "/CN=default.test", "DNS:default.test");
    let h = hcm(log, "backend");
    let chains = [
        tls_chain(&h, &["server_names: [a.test]"], &a, &[]),
        tls_chain(&h, &["server_names: [\"*.b.test\"]"], &b, &[]),
        tls_chain(&h, &[], &d, &[]),
    ]
    .concat();
    let admin = free_port();
    let yaml = bootstrap(admin, free_port(), listener_extra, &chains, up, "");
    (Baton::start(&yaml), admin)
}

#[test]
fn https_tls12_tls13_and_sni_choose_the_certificate() {
    let pki = Pki::new("sni");
    let up = Upstream::start("up1");
    let log = log_file("tls-access");
    let extra = "    listener_filters:\n    - name: envoy.filters.listener.tls_inspector\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector\n";
    let (b, admin) = sni_proxy(&pki, up.port(), &log, extra);
    let ca = pki.ca();

    let out = https_ok(b.port, "a.test", &ca, &["--tlsv1.2", "--tls-max", "1.2"]);
    assert_eq!(out, up.greeting());
    assert_eq!(up.seen()[0].header("x-forwarded-proto"), Some("https"));
    let out = https_ok(b.port, "a.test", &ca, &["--tlsv1.3"]);
    assert_eq!(out, up.greeting());
    // Keep-alive over TLS: two requests on one connection.
    let url = format!("https://a.test:{}/", b.port);
    let two = https_ok(b.port, "a.test", &ca, &["--tlsv1.3", &url]);
    assert_eq!(two, format!("{}{}", up.greeting(), up.greeting()));

    for (name, want) in [
        ("a.test", "CN=a.test"),
        ("x.b.test", "CN=b.test"),
        ("deep.x.b.test", "CN=b.test"),
        ("b.test", "CN=default.test"),
        ("other.test", "CN=default.test"),
    ] {
        let (_, out) = s_client(b.port, &["-servername", name, "-CAfile", &ca]);
        assert_eq!(served_subject(&out), want, "SNI {name}: {out}");
        assert!(
            out.contains("Verify return code: 0 (ok)"),
            "SNI {name}: {out}"
        );
    }
    // No SNI at all: the chain without server_names.
    let (_, out) = s_client(b.port, &["-noservername"]);
    assert_eq!(served_subject(&out), "CN=default.test", "{out}");

    let lines = log_lines(&log, 4);
    assert_eq!(
        lines.first().map(String::as_str),
        Some("200 TLSv1.2 a.test [-]"),
        "{lines:?}"
    );
    assert_eq!(
        lines.get(1).map(String::as_str),
        Some("200 TLSv1.3 a.test [-]"),
        "{lines:?}"
    );

    let scope = format!("listener.127.0.0.1_{}", b.port);
    assert!(stat(admin, &format!("{scope}.ssl.handshake")) >= 9);
    assert!(stat(admin, &format!("{scope}.ssl.versions.TLSv1.2")) >= 1);
    assert!(stat(admin, &format!("{scope}.ssl.versions.TLSv1.3")) >= 3);
    assert!(stat(admin, &format!("{scope}.ssl.no_certificate")) >= 9);
    let ciphers: u64 = [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ]
    .iter()
    .map(|c| stat(admin, &format!("{scope}.ssl.ciphers.{c}")))
    .sum();
    assert!(ciphers >= 9, "ciphers counted: {ciphers}");
}

#[test]
fn large_bodies_stream_both_ways_over_tls() {
    let pki = Pki::new("big");
    let up = Upstream::start("up1");
    let cert = pki.leaf("s", "/CN=s.test", "DNS:s.test");
    let h = hcm(&log_file("tls-big"), "backend");
    let admin = free_port();
    let b = Baton::start(&bootstrap(
        admin,
        free_port(),
        "",
        &tls_chain(&h, &[], &cert, &[]),
        up.port(),
        "",
    ));
    let ca = pki.ca();
    // 32 MiB down, through a client that reads slowly (limited rate), so baton's writes and
    // rustls's records wait for a full socket many times.
    let n: u64 = 32 << 20;
    let url = format!("https://s.test:{}/bytes/{n}", b.port);
    let resolve = format!("s.test:{}:127.0.0.1", b.port);
    let file = pki.path("down.bin");
    let o = curl(&[
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        "--limit-rate",
        "64M",
        "-o",
        &file,
        &url,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = std::fs::read(&file).expect("download");
    assert_eq!(got.len() as u64, n);
    let mut h = pattern::Fnv::default();
    h.update(&got);
    assert_eq!(h.finish(), pattern::pattern_checksum(n));
    // Over TLS the body passes through rustls: it is copied, never spliced.
    let stats = curl_ok(&[&format!("http://127.0.0.1:{admin}/stats")]);
    assert!(
        stats
            .lines()
            .any(|l| l == "http.ingress_https.downstream_cx_splice_bytes: 0"),
        "{stats}"
    );
    // 8 MiB up.
    let body = pki.path("up.bin");
    std::fs::write(&body, pattern::block(8 << 20)).expect("body");
    let url = format!("https://s.test:{}/sink", b.port);
    let out = https_ok(
        b.port,
        "s.test",
        &ca,
        &["--data-binary", &format!("@{body}"), &url],
    );
    let mut h = pattern::Fnv::default();
    h.update(&pattern::block(8 << 20));
    assert!(
        out.contains(&format!("len={} fnv={:016x}", 8 << 20, h.finish())),
        "{out}"
    );
}

#[test]
fn bad_handshakes_cost_only_their_connection() {
    let pki = Pki::new("bad");
    let up = Upstream::start("up1");
    let log = log_file("tls-bad");
    let cert = pki.leaf("s", "/CN=s.test", "DNS:s.test");
    let h = hcm(&log, "backend");
    let mut chain = tls_chain(&h, &[], &cert, &[]);
    chain.push_str("      transport_socket_connect_timeout: 1s\n");
    let admin = free_port();
    let yaml = bootstrap(
        admin,
        free_port(),
        "    listener_filters_timeout: 1s\n",
        &chain,
        up.port(),
        "",
    );
    let b = Baton::start(&yaml);
    let ca = pki.ca();
    let scope = format!("listener.127.0.0.1_{}", b.port);

    // A stalled client (connects, sends nothing) and one stalled mid-handshake hold their
    // connections only until the timeouts.
    let mut stalled = TcpStream::connect(local(b.port)).expect("connect");
    let mut half = TcpStream::connect(local(b.port)).expect("connect");
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .expect("partial hello");
    // Garbage shaped like a handshake record, and plain HTTP on the TLS port.
    let mut garbage = TcpStream::connect(local(b.port)).expect("connect");
    garbage
        .write_all(b"\x16\x03\x01\x00\x10this is not tls!")
        .expect("garbage");
    let mut plain = TcpStream::connect(local(b.port)).expect("connect");
    plain.write_all(&get("/")).expect("plain");

    // Meanwhile real clients are served.
    assert_eq!(https_ok(b.port, "s.test", &ca, &[]), up.greeting());
    // No cipher suite in common (TLS 1.2 only, CBC suites rustls does not offer).
    let (ok, out) = s_client(
        b.port,
        &[
            "-tls1_2",
            "-cipher",
            "AES128-SHA:AES256-SHA",
            "-servername",
            "s.test",
        ],
    );
    assert!(!ok || !out.contains("Cipher is AES"), "{out}");
    assert_eq!(
        https_ok(b.port, "s.test", &ca, &["--tlsv1.2", "--tls-max", "1.2"]),
        up.greeting()
    );

    for (name, s) in [
        ("stalled", &mut stalled),
        ("half", &mut half),
        ("garbage", &mut garbage),
        ("plain", &mut plain),
    ] {
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("{name}: connection not closed: {e}"),
            }
        }
        assert!(!got.starts_with(b"HTTP/"), "{name} got an HTTP answer");
    }
    assert!(
        stat(
            admin,
            &format!("{scope}.downstream_cx_transport_socket_connect_timeout")
        ) >= 2
    );
    assert!(stat(admin, &format!("{scope}.ssl.connection_error")) >= 3);
    assert_eq!(https_ok(b.port, "s.test", &ca, &[]), up.greeting());
    assert!(b.try_exit_ok());
}

trait Alive {
    fn try_exit_ok(self) -> bool;
}

impl Alive for Baton {
    /// Still running (it did not fall over).
    fn try_exit_ok(mut self) -> bool {
        self.try_exit().is_none()
    }
}

#[test]
fn mtls_refuses_clients_without_an_accepted_certificate() {
    let pki = Pki::new("mtls");
    let up = Upstream::start("up1");
    let log = log_file("tls-mtls");
    let cert = pki.leaf("s", "/CN=s.test", "DNS:s.test");
    let good = pki.leaf(
        "c1",
        "/O=Baton Test/CN=client1",
        "URI:spiffe://test/client1",
    );
    let other = pki.leaf("c2", "/CN=client2", "URI:spiffe://test/client2");
    let ca = pki.ca();
    let h = hcm(&log, "backend");
    let validation = format!(
        "  validation_context:\n              trusted_ca: {{filename: \"{ca}\"}}\n              match_typed_subject_alt_names:\n              - san_type: URI\n                matcher: {{exact: \"spiffe://test/client1\"}}"
    );
    let chain = tls_chain(
        &h,
        &[],
        &cert,
        &[&validation, "require_client_certificate: true"],
    );
    let admin = free_port();
    let b = Baton::start(&bootstrap(admin, free_port(), "", &chain, up.port(), ""));

    for v in [
        ["--tlsv1.2", "--tls-max", "1.2"],
        ["--tlsv1.3", "--tls-max", "1.3"],
    ] {
        let o = https(b.port, "s.test", &ca, &v);
        assert!(
            !o.status.success(),
            "no client certificate must be refused ({v:?})"
        );
        let o = https(
            b.port,
            "s.test",
            &ca,
            &[&v[..], &["--cert", &other.0, "--key", &other.1]].concat(),
        );
        assert!(
            !o.status.success(),
            "a certificate with the wrong SAN must be refused"
        );
        let out = https_ok(
            b.port,
            "s.test",
            &ca,
            &[&v[..], &["--cert", &good.0, "--key", &good.1]].concat(),
        );
        assert_eq!(out, up.greeting());
    }
    let lines = log_lines(&log, 2);
    assert_eq!(
        lines.first().map(String::as_str),
        Some("200 TLSv1.2 s.test [CN=client1,O=Baton Test]"),
        "{lines:?}"
    );
    let scope = format!("listener.127.0.0.1_{}", b.port);
    assert!(stat(admin, &format!("{scope}.ssl.fail_verify_no_cert")) >= 1);
    assert!(stat(admin, &format!("{scope}.ssl.connection_error")) >= 3);
    assert_eq!(stat(admin, &format!("{scope}.ssl.handshake")), 2);
}

#[test]
fn tls_params_limit_versions_and_ciphers() {
    let pki = Pki::new("params");
    let up = Upstream::start("up1");
    let log = log_file("tls-params");
    let cert = pki.leaf("s", "/CN=s.test", "DNS:s.test");
    let ca = pki.ca();
    let h = hcm(&log, "backend");
    let chain = tls_chain(
        &h,
        &[],
        &cert,
        &[
            "  tls_params:",
            "    tls_maximum_protocol_version: TLSv1_2",
            "    cipher_suites: [ECDHE-ECDSA-AES256-GCM-SHA384]",
            "  alpn_protocols: [http/1.1]",
        ],
    );
    let admin = free_port();
    let b = Baton::start(&bootstrap(admin, free_port(), "", &chain, up.port(), ""));
    let o = https(b.port, "s.test", &ca, &["--tlsv1.3"]);
    assert!(
        !o.status.success(),
        "TLS 1.3 is above the configured maximum"
    );
    let (_, out) = s_client(b.port, &["-servername", "s.test", "-alpn", "http/1.1"]);
    assert!(out.contains("ECDHE-ECDSA-AES256-GCM-SHA384"), "{out}");
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    let (_, out) = s_client(
        b.port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    assert!(!out.contains("Cipher is ECDHE-ECDSA-AES128"), "{out}");
    assert_eq!(https_ok(b.port, "s.test", &ca, &[]), up.greeting());
    let scope = format!("listener.127.0.0.1_{}", b.port);
    assert!(
        stat(
            admin,
            &format!("{scope}.ssl.ciphers.ECDHE-ECDSA-AES256-GCM-SHA384")
        ) >= 2
    );
    assert_eq!(stat(admin, &format!("{scope}.ssl.versions.TLSv1.3")), 0);
}

#[test]
fn tls_minimum_version_refuses_older_clients() {
    let pki = Pki::new("min");
    let up = Upstream::start("up1");
    let cert = pki.leaf("s", "/CN=s.test", "DNS:s.test");
    let ca = pki.ca();
    let h = hcm(&log_file("tls-min"), "backend");
    let ctx = ["  tls_params: {tls_minimum_protocol_version: TLSv1_3}"];
    let chain = tls_chain(&h, &[], &cert, &ctx);
    let b = serve(&chain, up.port());
    let o = https(b.port, "s.test", &ca, &["--tlsv1.2", "--tls-max", "1.2"]);
    assert!(
        !o.status.success(),
        "TLS 1.2 is below the configured minimum"
    );
    assert_eq!(
        https_ok(b.port, "s.test", &ca, &["--tlsv1.3"]),
        up.greeting()
    );
}

#[test]
fn plain_and_tls_chains_share_a_listener() {
    let pki = Pki::new("mixed");
    let up = Upstream::start("up1");
    let log = log_file("tls-mixed");
    let cert = pki.leaf("s", "/CN=s.test", "DNS:s.test");
    let h = hcm(&log, "backend");
    let mut chains = tls_chain(&h, &["transport_protocol: tls"], &cert, &[]);
    chains.push_str("    - filters:\n");
    chains.push_str(&h);
    chains.push_str("      filter_chain_match: {transport_protocol: raw_buffer}\n");
    let b = Baton::start(&bootstrap(
        free_port(),
        free_port(),
        "",
        &chains,
        up.port(),
        "",
    ));
    assert_eq!(https_ok(b.port, "s.test", &pki.ca(), &[]), up.greeting());
    let plain = curl_ok(&[&format!("http://127.0.0.1:{}/", b.port)]);
    assert_eq!(plain, up.greeting());
    let lines = log_lines(&log, 2);
    assert!(lines.contains(&"200 - - [-]".to_string()), "{lines:?}");
}

fn upstream_tls(ctx: &[&str]) -> String {
    let mut y = String::from(
        "    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n",
    );
    for l in ctx {
        y.push_str(&format!("        {l}\n"));
    }
    y
}

/// An UpstreamTlsContext that verifies the server against the CA file `ca`.
fn trusting(ca: &str) -> String {
    upstream_tls(&[
        "common_tls_context:",
        "  validation_context:",
        &format!("    trusted_ca: {{filename: \"{ca}\"}}"),
    ])
}

fn plain_proxy(up: u16, cluster_extra: &str) -> (Baton, u16) {
    let log = log_file("tls-up");
    let mut chain = String::from("    - filters:\n");
    chain.push_str(&hcm(&log, "backend"));
    let admin = free_port();
    (
        Baton::start(&bootstrap(
            admin,
            free_port(),
            "",
            &chain,
            up,
            cluster_extra,
        )),
        admin,
    )
}

fn get_status(port: u16) -> (u16, String) {
    get_path(port, "/")
}

fn get_path(port: u16, path: &str) -> (u16, String) {
    get_as(port, path, None)
}

/// GET `path` (with `Host: host` when given): (status, body).
fn get_as(port: u16, path: &str, host: Option<&str>) -> (u16, String) {
    let host_header = host.map(|h| format!("Host: {h}"));
    let mut args = vec!["-s", "-o", "-", "-w", "\n%{http_code}"];
    if let Some(h) = &host_header {
        args.extend(["-H", h.as_str()]);
    }
    let url = format!("http://127.0.0.1:{port}{path}");
    args.push(&url);
    let o = curl(&args);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.parse().unwrap_or(0), body.to_string() + "\n")
}

/// The fields of the Python origin's answer: port, SNI, version, ALPN, session.
fn fields(body: &str) -> Vec<String> {
    body.split_whitespace().skip(1).map(String::from).collect()
}

#[test]
fn upstream_tls_verifies_and_reuses_connections() {
    let pki = Pki::new("up");
    let server = pki.leaf("up", "/CN=upstream.test", "DNS:upstream.test,IP:127.0.0.1");
    let origin = PyTls::start(&server, None);
    let ca = pki.ca();
    let trusted = format!("trusted_ca: {{filename: \"{ca}\"}}");

    // Verified: CA and a SAN matcher that fits; SNI sent.
    let ok = upstream_tls(&[
        "sni: upstream.test",
        "common_tls_context:",
        "  alpn_protocols: [http/1.1]",
        "  validation_context:",
        &format!("    {trusted}"),
        "    match_typed_subject_alt_names:",
        "    - {san_type: DNS, matcher: {exact: upstream.test}}",
    ]);
    let (b, admin) = plain_proxy(origin.port, &ok);
    let (s1, body1) = get_status(b.port);
    let (s2, body2) = get_status(b.port);
    assert_eq!((s1, s2), (200, 200), "{body1} {body2}");
    let f = fields(&body1);
    assert_eq!(f[1..4], ["upstream.test", "TLSv1.3", "http/1.1"], "{body1}");
    assert_eq!(body1, body2, "the pooled TLS connection is reused");
    // New connections (the origin closes after each answer) resume the TLS session.
    let (_, first) = get_path(b.port, "/close");
    let (_, second) = get_path(b.port, "/close");
    assert_ne!(fields(&first)[0], fields(&second)[0], "{first} {second}");
    assert_eq!(fields(&second)[4], "reused", "{second}");
    assert!(stat(admin, "cluster.backend.ssl.handshake") >= 2);
    assert!(stat(admin, "cluster.backend.ssl.versions.TLSv1.3") >= 2);
    assert_eq!(stat(admin, "cluster.backend.ssl.connection_error"), 0);
    drop(b);

    // tls_params, no SNI, no ALPN, no session resumption.
    let (b, _) = plain_proxy(
        origin.port,
        &upstream_tls(&[
            "max_session_keys: 0",
            "common_tls_context:",
            "  tls_params: {tls_maximum_protocol_version: TLSv1_2}",
        ]),
    );
    let (_, first) = get_path(b.port, "/close");
    let (_, second) = get_path(b.port, "/close");
    assert_eq!(fields(&first)[1..4], ["-", "TLSv1.2", "-"], "{first}");
    assert_eq!(fields(&second)[4], "new", "{second}");
    drop(b);

    // A SAN matcher that does not fit: the connect fails (503).
    let wrong = upstream_tls(&[
        "common_tls_context:",
        "  validation_context:",
        &format!("    {trusted}"),
        "    match_typed_subject_alt_names:",
        "    - {san_type: DNS, matcher: {exact: other.test}}",
    ]);
    let (b, admin) = plain_proxy(origin.port, &wrong);
    assert_eq!(get_status(b.port).0, 503);
    assert!(stat(admin, "cluster.backend.ssl.connection_error") >= 1);
    assert_eq!(stat(admin, "cluster.backend.ssl.handshake"), 0);
    drop(b);

    // Another CA: not trusted (503).
    let other = Pki::new("other");
    let (b, _) = plain_proxy(origin.port, &trusting(&other.ca()));
    assert_eq!(get_status(b.port).0, 503);
    drop(b);

    // No validation context: as in Envoy, the certificate is not verified.
    let (b, _) = plain_proxy(origin.port, &upstream_tls(&["sni: upstream.test"]));
    assert_eq!(get_status(b.port).0, 200);
}

#[test]
fn upstream_tls_without_validation_accepts_an_x509_v1_certificate() {
    // Envoy (BoringSSL) does not look at the certificate without a validation_context;
    // webpki cannot parse a v1 one, which used to fail the handshake (503 UF).
    let pki = Pki::new("v1");
    let origin = PyTls::start(&pki.leaf_v1("v1", "/CN=v1.test"), None);
    for (max, version) in [("TLSv1_2", "TLSv1.2"), ("TLSv1_3", "TLSv1.3")] {
        let ctx = upstream_tls(&[
            "sni: v1.test",
            "common_tls_context:",
            &format!("  tls_params: {{tls_maximum_protocol_version: {max}}}"),
        ]);
        let (b, admin) = plain_proxy(origin.port, &ctx);
        let (code, body) = get_status(b.port);
        assert_eq!(code, 200, "{max}: {body}");
        assert_eq!(fields(&body)[1..3], ["v1.test", version], "{body}");
        assert_eq!(stat(admin, "cluster.backend.ssl.connection_error"), 0);
    }
    // With a validation_context the certificate is verified: another CA's is refused.
    let other = Pki::new("v1-other");
    let (b, admin) = plain_proxy(origin.port, &trusting(&other.ca()));
    assert_eq!(get_status(b.port).0, 503);
    assert!(stat(admin, "cluster.backend.ssl.connection_error") >= 1);
    assert_eq!(stat(admin, "cluster.backend.ssl.handshake"), 0);
}

#[test]
fn upstream_client_certificates() {
    let pki = Pki::new("upc");
    let server = pki.leaf("up", "/CN=upstream.test", "DNS:upstream.test");
    let client = pki.leaf("cl", "/CN=baton", "DNS:baton.test");
    let origin = PyTls::start(&server, Some(&pki.ca()));
    let with_cert = upstream_tls(&[
        "sni: upstream.test",
        "common_tls_context:",
        "  tls_certificates:",
        &format!(
            "  - {{certificate_chain: {{filename: \"{}\"}}, private_key: {{filename: \"{}\"}}}}",
            client.0, client.1
        ),
        "  validation_context:",
        &format!("    trusted_ca: {{filename: \"{}\"}}", pki.ca()),
    ]);
    let (b, _) = plain_proxy(origin.port, &with_cert);
    let (code, body) = get_status(b.port);
    assert_eq!(code, 200, "{body}");
    drop(b);
    let (b, _) = plain_proxy(origin.port, &upstream_tls(&["sni: upstream.test"]));
    assert_eq!(
        get_status(b.port).0,
        503,
        "the origin requires a client certificate"
    );
}

#[test]
fn upstream_tls_by_name_alone_is_a_default_context() {
    let pki = Pki::new("upn");
    let server = pki.leaf("up", "/CN=upstream.test", "DNS:upstream.test");
    let origin = PyTls::start(&server, None);
    // As in Envoy, the TLS socket's name without a `typed_config` (or with `{}`) is an
    // UpstreamTlsContext with every field unset: TLS, the certificate not verified, no SNI.
    for ts in [
        "{name: envoy.transport_sockets.tls}",
        "{name: envoy.transport_sockets.tls, typed_config: {}}",
    ] {
        let (b, admin) = plain_proxy(origin.port, &format!("    transport_socket: {ts}\n"));
        let (code, body) = get_status(b.port);
        assert_eq!(code, 200, "{ts}: {body}");
        assert_eq!(fields(&body)[1], "-", "{ts}: no SNI: {body}");
        assert_eq!(stat(admin, "cluster.backend.ssl.handshake"), 1, "{ts}");
    }
}

fn validate(yaml: &str) -> (bool, String) {
    let (st, out, err) = run_baton(
        &["--mode", "validate", "--config-yaml", yaml],
        Duration::from_secs(30),
    );
    (st.success(), format!("{out}{err}"))
}

#[test]
fn unsupported_tls_settings_are_refused_by_name() {
    let pki = Pki::new("cfg");
    let cert = pki.leaf("s", "/CN=s.test", "DNS:s.test");
    let h = hcm("/dev/null", "backend");
    let cases: &[(&[&str], &str)] = &[
        (
            &["  alpn_protocols: [http/1.1, h2]"],
            "alpn_protocols[1]: h2 after http/1.1 is not supported by baton",
        ),
        (
            &["  alpn_protocols: [h3]"],
            "alpn_protocols[0]: protocol \"h3\" is not supported",
        ),
        (
            &["  tls_params: {cipher_suites: [AES128-SHA]}"],
            "cipher_suites[0]: cipher suite \"AES128-SHA\" is not offered",
        ),
        (
            &["  tls_params: {tls_minimum_protocol_version: TLSv1_1}"],
            "tls_minimum_protocol_version: value \"TLSv1_1\" is not supported",
        ),
        (
            &["require_client_certificate: true"],
            "require_client_certificate: needs",
        ),
        (
            &["require_sni: true"],
            "unknown or unsupported field \"require_sni\"",
        ),
    ];
    for (ctx, want) in cases {
        let chain = tls_chain(&h, &[], &cert, ctx);
        let (ok, out) = validate(&bootstrap(free_port(), free_port(), "", &chain, 1, ""));
        assert!(!ok && out.contains(want), "{ctx:?}: {out}");
        assert!(
            out.contains("filter_chains[0].transport_socket.typed_config"),
            "{out}"
        );
    }
    // Two chains with different HTTP connection managers (their access logs differ): each
    // chain has its own (tests/filter_chains.rs).
    let chains = [
        tls_chain(&h, &["server_names: [a.test]"], &cert, &[]),
        tls_chain(&hcm("/dev/stderr", "backend"), &[], &cert, &[]),
    ]
    .concat();
    let (ok, out) = validate(&bootstrap(free_port(), free_port(), "", &chains, 1, ""));
    assert!(ok, "{out}");
    // Two chains matching the same connections.
    let chains = [
        tls_chain(&h, &["server_names: [a.test]"], &cert, &[]),
        tls_chain(&h, &["server_names: [a.test, b.test]"], &cert, &[]),
    ]
    .concat();
    let (ok, out) = validate(&bootstrap(free_port(), free_port(), "", &chains, 1, ""));
    assert!(
        !ok && out.contains("matches the same connections as filter_chains[0]"),
        "{out}"
    );
    // A key that does not belong to the certificate.
    let other = pki.leaf("o", "/CN=o.test", "DNS:o.test");
    let chain = tls_chain(&h, &[], &(cert.0.clone(), other.1.clone()), &[]);
    let (ok, out) = validate(&bootstrap(free_port(), free_port(), "", &chain, 1, ""));
    assert!(
        !ok && out.contains("transport_socket.typed_config"),
        "{out}"
    );
}

#[test]
fn envoy_quick_start_upstream_tls_validates() {
    // Envoy's quick-start demo config (upstream TLS to a public host), with only the
    // addresses changed to loopback. Validated, never connected.
    let port = free_port();
    let yaml = format!(
        r#"static_resources:
  listeners:
  - name: listener_0
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
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - match:
                  prefix: "/"
                route:
                  host_rewrite_literal: www.envoyproxy.io
                  cluster: service_envoyproxy_io
  clusters:
  - name: service_envoyproxy_io
    type: LOGICAL_DNS
    # Comment out the following line to test on v6 networks
    dns_lookup_family: V4_ONLY
    load_assignment:
      cluster_name: service_envoyproxy_io
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address:
                address: localhost
                port_value: 443
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: www.envoyproxy.io
"#
    );
    let (ok, out) = validate(&yaml);
    assert!(ok, "{out}");
}

/// FORWARD_ONLY: a client's `x-forwarded-client-cert` goes upstream only over mutual TLS
/// (a client certificate was presented and verified); without one it is dropped.
#[test]
fn forward_only_passes_the_client_cert_header_only_over_mutual_tls() {
    let pki = Pki::new("xfcc");
    let up = Upstream::start("up1");
    let log = log_file("tls-xfcc");
    let cert = pki.leaf("s", "/CN=s.test", "DNS:s.test");
    let client = pki.leaf("c1", "/CN=client1", "URI:spiffe://test/client1");
    let ca = pki.ca();
    let h = hcm(&log, "backend").replace(
        "stat_prefix: ingress_https\n",
        "stat_prefix: ingress_https\n          forward_client_cert_details: FORWARD_ONLY\n",
    );
    let validation =
        format!("  validation_context:\n              trusted_ca: {{filename: \"{ca}\"}}");
    let chain = tls_chain(&h, &[], &cert, &[&validation]);
    let b = serve(&chain, up.port());
    let xfcc = "x-forwarded-client-cert: Hash=1234";
    https_ok(b.port, "s.test", &ca, &["-H", xfcc]);
    https_ok(
        b.port,
        "s.test",
        &ca,
        &["-H", xfcc, "--cert", &client.0, "--key", &client.1],
    );
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].header("x-forwarded-client-cert"),
        None,
        "no client certificate"
    );
    assert_eq!(seen[1].header("x-forwarded-client-cert"), Some("Hash=1234"));
}

/// `require_tls: ALL` serves requests that came over TLS (no redirect loop).
#[test]
fn require_tls_serves_requests_that_came_over_tls() {
    let pki = Pki::new("reqtls");
    let up = Upstream::start("up1");
    let cert = pki.leaf("s", "/CN=s.test", "DNS:s.test");
    let ca = pki.ca();
    let h = hcm(&log_file("tls-reqtls"), "backend").replace(
        "              domains: [\"*\"]\n",
        "              domains: [\"*\"]\n              require_tls: ALL\n",
    );
    assert!(h.contains("require_tls"));
    let chain = tls_chain(&h, &[], &cert, &[]);
    let b = serve(&chain, up.port());
    assert_eq!(https_ok(b.port, "s.test", &ca, &[]), up.greeting());
}

/// GET `/` with `Host: host`: (status, body).
fn get_host(port: u16, host: &str) -> (u16, String) {
    get_as(port, "/", Some(host))
}

#[test]
fn auto_sni_names_the_server_by_the_host_and_pools_by_name() {
    let pki = Pki::new("autosni");
    let server = pki.leaf(
        "autosni",
        "/CN=a.test",
        "DNS:a.test,DNS:b.test,IP:127.0.0.1",
    );
    let origin = PyTls::start(&server, None);
    let mut extra = trusting(&pki.ca());
    extra.push_str(
        "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: {http_protocol_options: {}}\n        upstream_http_protocol_options: {auto_sni: true, auto_san_validation: true}\n",
    );
    let (b, _admin) = plain_proxy(origin.port, &extra);
    let (s, a1) = get_host(b.port, "a.test:8443");
    assert_eq!(s, 200, "{a1}");
    assert_eq!(fields(&a1)[1], "a.test", "the Host without its port: {a1}");
    let (_, b1) = get_host(b.port, "b.test");
    assert_eq!(fields(&b1)[1], "b.test", "{b1}");
    assert_ne!(
        fields(&a1)[0],
        fields(&b1)[0],
        "another name, another connection"
    );
    let (_, a2) = get_host(b.port, "a.test");
    assert_eq!(
        fields(&a2)[..2],
        fields(&a1)[..2],
        "a.test's pooled connection is reused"
    );
    // An address names no server: no SNI, and no name to check.
    let (s, ip) = get_host(b.port, &format!("127.0.0.1:{}", origin.port));
    assert_eq!((s, fields(&ip)[1].as_str()), (200, "-"), "{ip}");
    // auto_san_validation: the certificate is not valid for c.test.
    assert_eq!(get_host(b.port, "c.test").0, 503);
}

#[test]
fn auto_sni_is_refused_without_tls_and_san_validation_without_a_ca() {
    let pki = Pki::new("autosni-ca");
    let opts = |o: &str| {
        format!(
            "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: {{http_protocol_options: {{}}}}\n        upstream_http_protocol_options: {o}\n"
        )
    };
    let cases = [
        (
            opts("{auto_sni: true}"),
            "auto_sni needs a TLS transport_socket",
        ),
        (
            upstream_tls(&["sni: x.test"]) + &opts("{auto_sni: true, auto_san_validation: true}"),
            "auto_san_validation needs a validation_context",
        ),
        (
            trusting(&pki.ca()) + &opts("{auto_san_validation: true}"),
            "auto_san_validation without auto_sni",
        ),
        (
            upstream_tls(&["sni: x.test"]) + &opts("{override_auto_sni_header: x-sni}"),
            "override_auto_sni_header",
        ),
    ];
    for (extra, want) in cases {
        let mut chain = String::from("    - filters:\n");
        chain.push_str(&hcm(&log_file("autosni-refused"), "backend"));
        let yaml = bootstrap(free_port(), free_port(), "", &chain, 1, &extra);
        let path = std::env::temp_dir().join(format!("baton-autosni-{}.yaml", free_port()));
        std::fs::write(&path, yaml).unwrap();
        let p = path.display().to_string();
        let (status, _, err) =
            run_baton(&["--mode", "validate", "-c", &p], Duration::from_secs(20));
        let _ = std::fs::remove_file(&path);
        assert!(!status.success(), "{want}: accepted");
        assert!(err.contains(want), "{want}: {err}");
    }
}
