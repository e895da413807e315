//! The compressor (`envoy.filters.http.compressor`) and decompressor
//! (`envoy.filters.http.decompressor`) filters with the gzip library, through the real binary:
//! a JSON response at least `min_content_length` long comes back gzip-encoded (chunked to
//! HTTP/1.1, to the close for HTTP/1.0) to a client that accepts gzip and decodes (python's
//! gzip, curl --compressed) to the upstream's bytes; short ones, other content types, ones
//! with an ETag under `disable_on_etag_header`, `Cache-Control: no-transform`, an existing
//! Content-Encoding, HEAD, and clients without gzip get the bytes as they are. A gzip request
//! body is inflated on its way upstream; a bomb is cut at `max_inflate_ratio`; a corrupt
//! body arrives truncated, as in Envoy. The counters are Envoy's.

mod admin_util;
mod common;
mod compress_support;

use std::time::Duration;

use admin_util::{stat, wait_live};
use common::*;
use compress_support::{json_body, python_gunzip, python_gzip, JsonOrigin};

const COMPRESSOR: &str =
    "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor";
const DECOMPRESSOR: &str =
    "type.googleapis.com/envoy.extensions.filters.http.decompressor.v3.Decompressor";
const GZIP_C: &str = "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip";
const GZIP_D: &str = "type.googleapis.com/envoy.extensions.compression.gzip.decompressor.v3.Gzip";

fn filters(ratio: u32) -> String {
    format!(
        r#"          - name: envoy.filters.http.compressor
            typed_config:
              "@type": {COMPRESSOR}
              response_direction_config:
                common_config:
                  min_content_length: 100
                  content_type: [application/json, text/html]
                disable_on_etag_header: true
              compressor_library:
                name: text_optimized
                typed_config:
                  "@type": {GZIP_C}
                  memory_level: 3
                  window_bits: 10
          - name: envoy.filters.http.decompressor
            typed_config:
              "@type": {DECOMPRESSOR}
              decompressor_library:
                name: upload
                typed_config:
                  "@type": {GZIP_D}
                  window_bits: 15
                  chunk_size: 8192
                  max_inflate_ratio: {ratio}
              response_direction_config:
                common_config:
                  enabled: {{default_value: false, runtime_key: response_decompressor_enabled}}
"#
    )
}

struct Setup {
    baton: Baton,
    listen: u16,
    admin: u16,
    _origin: JsonOrigin,
}

fn setup(ratio: u32) -> Setup {
    let origin = JsonOrigin::start();
    let (listen, admin) = (free_port(), free_port());
    let yaml = common::yaml::filter_yaml(
        "127.0.0.1",
        listen,
        "          http_protocol_options: {accept_http_10: true}\n",
        &filters(ratio),
        origin.port,
        admin,
    );
    let baton = Baton::start(&yaml);
    wait_live(admin);
    Setup {
        baton,
        listen,
        admin,
        _origin: origin,
    }
}

fn get(port: u16, path: &str, headers: &str, minor: u8) -> Response {
    let mut c = RawConn::connect(port);
    c.send(format!("GET {path} HTTP/1.{minor}\r\nHost: x\r\n{headers}\r\n").as_bytes());
    c.expect_response(false)
}

/// Bodies compared without printing them.
#[track_caller]
fn same(got: &[u8], want: &[u8]) {
    let at = got.iter().zip(want).position(|(a, b)| a != b);
    assert!(
        got == want,
        "body differs: {} bytes, want {}; first difference at {at:?}",
        got.len(),
        want.len()
    );
}

const PREFIX: &str = "http.ingress_http.compressor.text_optimized.gzip.";

#[test]
fn json_responses_are_gzipped_for_clients_that_accept_it() {
    let s = setup(1000);
    let want = json_body(5000);
    // Content-Length upstream, HTTP/1.1 client: chunked, gzip, Vary, no length.
    let r = get(
        s.listen,
        "/json/5000",
        "Accept-Encoding: gzip, deflate\r\n",
        1,
    );
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.body.len() < want.len() / 4, "{} bytes", r.body.len());
    same(&python_gunzip(&r.body), &want);
    // A chunked upstream body, and a Vary of the upstream's own extended.
    let r = get(
        s.listen,
        "/json/70000?te=chunked&vary=Origin",
        "Accept-Encoding: br;q=1.0, gzip;q=0.8\r\n",
        1,
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Origin, Accept-Encoding"));
    same(&python_gunzip(&r.body), &json_body(70000));
    // HTTP/1.0: no chunked coding, the body ends with the connection.
    let mut c = RawConn::connect(s.listen);
    c.send(b"GET /json/3000 HTTP/1.0\r\nAccept-Encoding: *\r\n\r\n");
    let r = c.expect_response(false);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("transfer-encoding"), None);
    same(&python_gunzip(&r.body), &json_body(3000));
    assert!(c.closed_within(Duration::from_secs(5)));
    // curl decodes it too, and keeps its connection for a second request.
    let url = format!("http://127.0.0.1:{}/json/20000", s.listen);
    let out = curl_ok(&["-s", "--compressed", &url, &url]);
    let mut both = json_body(20000);
    both.extend(json_body(20000));
    same(out.as_bytes(), &both);
    assert_eq!(stat(s.admin, &format!("{PREFIX}response.compressed")), 5);
    assert_eq!(stat(s.admin, &format!("{PREFIX}header_compressor_used")), 4);
    assert_eq!(stat(s.admin, &format!("{PREFIX}header_wildcard")), 1);
    let raw_in = stat(
        s.admin,
        &format!("{PREFIX}response.total_uncompressed_bytes"),
    );
    assert_eq!(raw_in, 5000 + 70000 + 3000 + 2 * 20000);
    let out_bytes = stat(s.admin, &format!("{PREFIX}response.total_compressed_bytes"));
    assert!(out_bytes > 0 && out_bytes < raw_in / 4, "{out_bytes}");
    drop(s.baton);
}

#[test]
fn responses_envoy_would_not_compress_pass_unchanged() {
    let s = setup(1000);
    let ae = "Accept-Encoding: gzip\r\n";
    // (path, request headers, Vary expected)
    let cases: &[(&str, &str, bool)] = &[
        // Shorter than min_content_length (100).
        ("/json/99", ae, false),
        // A content type not listed.
        ("/json/5000?ct=image/png", ae, false),
        // disable_on_etag_header.
        ("/json/5000?etag=%22v1%22", ae, false),
        ("/json/5000?cc=no-cache,%20no-transform", ae, false),
        ("/json/5000?ce=br", ae, false),
        // The client does not take gzip (the response could be compressed: Vary).
        ("/json/5000", "", true),
        ("/json/5000", "Accept-Encoding: br\r\n", true),
        ("/json/5000", "Accept-Encoding: gzip;q=0\r\n", true),
        (
            "/json/5000",
            "Accept-Encoding: gzip;q=0.5, identity\r\n",
            true,
        ),
    ];
    for (path, headers, vary) in cases {
        let r = get(s.listen, path, headers, 1);
        assert_eq!(r.status(), 200, "{path} {headers}");
        assert_eq!(
            r.header("content-encoding").filter(|v| *v == "gzip"),
            None,
            "{path} {headers}"
        );
        let n: usize = path
            .trim_start_matches("/json/")
            .split('?')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        same(&r.body, &json_body(n));
        assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
        assert_eq!(r.header("vary").is_some(), *vary, "{path} {headers}");
    }
    // HEAD: no body to compress; the length stays.
    let mut c = RawConn::connect(s.listen);
    c.send(b"HEAD /json/5000 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
    let r = c.expect_response(true);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("content-length"), Some("5000"));
    assert_eq!(stat(s.admin, &format!("{PREFIX}response.compressed")), 0);
    assert_eq!(
        stat(s.admin, &format!("{PREFIX}response.not_compressed")),
        10
    );
    assert_eq!(
        stat(
            s.admin,
            &format!("{PREFIX}response.content_length_too_small")
        ),
        1
    );
    assert_eq!(stat(s.admin, &format!("{PREFIX}not_compressed_etag")), 1);
    assert_eq!(stat(s.admin, &format!("{PREFIX}no_accept_header")), 1);
    assert_eq!(stat(s.admin, &format!("{PREFIX}header_identity")), 1);
    // Every request passes the request direction uncompressed.
    assert_eq!(
        stat(s.admin, &format!("{PREFIX}request.not_compressed")),
        10
    );
    drop(s.baton);
}

#[test]
fn a_strong_etag_is_dropped_and_a_weak_one_kept_when_compressing() {
    let origin = JsonOrigin::start();
    let (listen, admin) = (free_port(), free_port());
    let f = format!(
        r#"          - name: envoy.filters.http.compressor
            typed_config:
              "@type": {COMPRESSOR}
              compressor_library:
                name: lib
                typed_config: {{"@type": {GZIP_C}}}
"#
    );
    let yaml = common::yaml::filter_yaml("127.0.0.1", listen, "", &f, origin.port, admin);
    let _b = Baton::start(&yaml);
    wait_live(admin);
    let r = get(
        listen,
        "/json/500?etag=%22v1%22",
        "Accept-Encoding: gzip\r\n",
        1,
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("etag"), None);
    let r = get(
        listen,
        "/json/500?etag=W/%22v1%22",
        "Accept-Encoding: gzip\r\n",
        1,
    );
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("etag"), Some("W/\"v1\""));
    same(&python_gunzip(&r.body), &json_body(500));
    // Without response_direction_config, the counters have no `response.`.
    assert_eq!(
        stat(admin, "http.ingress_http.compressor.lib.gzip.compressed"),
        2
    );
}

/// A gzip request body reaches the upstream inflated and chunked, without its
/// Content-Encoding; a second coding after gzip stays.
#[test]
fn gzip_request_bodies_are_inflated_on_their_way_upstream() {
    let s = setup(1000);
    let body = json_body(50_000);
    let gz = python_gzip(&body);
    let mut c = RawConn::connect(s.listen);
    let r = send_gzip(&mut c, &gz, "");
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("x-seen-ce"), Some("none"));
    assert_eq!(r.header("x-seen-cl"), Some("none"));
    assert_eq!(r.header("x-seen-te"), Some("chunked"));
    same(&r.body, &body);
    // Chunked from the client, a coding after gzip, on the same connection.
    let mut req = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip, br\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in gz.chunks(777) {
        req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        req.extend_from_slice(piece);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.send(&req);
    let r = c.expect_response(false);
    assert_eq!(r.header("x-seen-ce"), Some("br"));
    same(&r.body, &body);
    // Not gzip: untouched.
    let mut c = RawConn::connect(s.listen);
    c.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\nContent-Length: 5\r\n\r\nhello",
    );
    let r = c.expect_response(false);
    assert_eq!(r.header("x-seen-ce"), Some("br"));
    assert_eq!(r.header("x-seen-cl"), Some("5"));
    same(&r.body, b"hello");
    let p = "http.ingress_http.decompressor.upload.gzip.request.";
    assert_eq!(stat(s.admin, &format!("{p}decompressed")), 2);
    assert_eq!(stat(s.admin, &format!("{p}not_decompressed")), 1);
    assert_eq!(
        stat(s.admin, &format!("{p}total_uncompressed_bytes")),
        100_000
    );
    assert_eq!(
        stat(s.admin, &format!("{p}total_compressed_bytes")),
        2 * gz.len() as i64
    );
    drop(s.baton);
}

/// A gzip bomb (64 MiB of zeros in about 64 KiB) is cut at `max_inflate_ratio`: the upstream
/// gets a truncated body, baton's memory stays bounded, and a corrupt body likewise arrives
/// cut where it breaks (Envoy forwards what inflated and counts `zlib_data_error`).
#[test]
fn a_gzip_bomb_and_a_corrupt_body_are_cut_short() {
    let s = setup(20);
    let zeros = vec![0u8; 64 << 20];
    let gz = python_gzip(&zeros);
    assert!(gz.len() < 200_000);
    let rss_before = s.baton.rss_kib();
    let mut c = RawConn::connect(s.listen);
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        gz.len()
    );
    c.send(head.as_bytes());
    c.send(&gz);
    let r = c.expect_response(false);
    assert_eq!(r.status(), 200);
    assert!(
        r.body.len() < 20 * gz.len() + 65536,
        "{} bytes",
        r.body.len()
    );
    assert!(r.body.iter().all(|b| *b == 0));
    let grew = s.baton.rss_kib().saturating_sub(rss_before);
    assert!(grew < 32 * 1024, "rss grew {grew} KiB");
    // Corrupt: good gzip for the first half, garbage after.
    let body = json_body(40_000);
    let mut bad = python_gzip(&body);
    let half = bad.len() / 2;
    for b in bad.iter_mut().skip(half) {
        *b ^= 0x5a;
    }
    let r = send_gzip(&mut c, &bad, "");
    assert_eq!(r.status(), 200);
    assert!(r.body.len() < body.len());
    assert!(body.starts_with(&r.body));
    let lib = "http.ingress_http.decompressor.upload.gzip.decompressor_library.zlib_data_error";
    assert_eq!(stat(s.admin, lib), 2);
    drop(s.baton);
}

/// Ratio allowance saved up on incompressible bytes does not let one turn inflate a run of
/// zeros into many times the upstream buffer: each turn makes at most the buffer's room.
#[test]
fn inflating_is_bounded_per_turn_whatever_the_allowance() {
    let s = setup(2);
    // 12 MiB that do not compress (xorshift), then 11 MiB of zeros: within a ratio of 2 in
    // all, so the whole body is inflated, and the zeros come in a few compressed bytes.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut plain: Vec<u8> = (0..12 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    plain.extend(std::iter::repeat_n(0u8, 11 << 20));
    let gz = python_gzip(&plain);
    let before = s.baton.hwm_kib();
    let mut c = RawConn::connect(s.listen);
    let r = send_gzip(&mut c, &gz, "");
    assert_eq!(r.status(), 200);
    assert!(r.body == plain, "{} of {} bytes", r.body.len(), plain.len());
    let grew = s.baton.hwm_kib().saturating_sub(before);
    assert!(grew < 10 * 1024, "peak memory grew {grew} KiB");
    drop(s.baton);
}

#[test]
fn refused_settings_name_their_field() {
    let base = |extra: &str, lib: &str| {
        common::yaml::filter_yaml(
            "127.0.0.1",
            free_port(),
            "",
            &format!(
                r#"          - name: c
            typed_config:
              "@type": {COMPRESSOR}
{extra}              compressor_library:
                name: lib
                typed_config: {{"@type": "{lib}"}}
"#
            ),
            free_port(),
            free_port(),
        )
    };
    let p = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config";
    let e = refusal(&base(
        "",
        "type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli",
    ));
    assert!(
        e.contains(&format!("{p}.compressor_library.typed_config.@type")),
        "{e}"
    );
    assert!(e.contains("brotli"), "{e}");
    let e = refusal(&base(
        "",
        "type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd",
    ));
    assert!(e.contains("zstd"), "{e}");
    let e = refusal(&base(
        "              request_direction_config: {common_config: {min_content_length: 10}}\n",
        GZIP_C,
    ));
    assert!(e.contains(&format!("{p}.request_direction_config")), "{e}");
    // Response decompression (on by Envoy's default) is refused.
    let yaml = common::yaml::filter_yaml(
        "127.0.0.1",
        free_port(),
        "",
        &format!(
            r#"          - name: d
            typed_config:
              "@type": {DECOMPRESSOR}
              decompressor_library:
                name: lib
                typed_config: {{"@type": {GZIP_D}}}
"#
        ),
        free_port(),
        free_port(),
    );
    let e = refusal(&yaml);
    assert!(
        e.contains(&format!(
            "{p}.response_direction_config.common_config.enabled"
        )),
        "{e}"
    );
    // An `enabled` flag's runtime key cannot be set: baton's runtime refuses keys it does not
    // implement, so the flag's default_value is what holds.
    let flag = "enabled: {default_value: true, runtime_key: compressor_on}";
    let mut yaml = base(
        &format!("              response_direction_config: {{common_config: {{{flag}}}}}\n"),
        GZIP_C,
    );
    yaml.push_str("layered_runtime: {layers: [{name: s, static_layer: {compressor_on: false}}]}\n");
    let e = refusal(&yaml);
    assert!(e.contains("compressor_on"), "{e}");
}

/// One baton with a listener per filter variant (`stat_prefix` `l<i>`), all to `upstream`.
fn variants(filters: &[String], upstream: u16, admin: u16) -> (Baton, Vec<u16>) {
    let ports: Vec<u16> = filters.iter().map(|_| free_port()).collect();
    let mut y = String::from("static_resources:\n  listeners:\n");
    let last = filters.len().saturating_sub(1);
    for (i, (f, port)) in filters.iter().zip(&ports).enumerate() {
        y.push_str(&format!(
            r#"  - name: l{i}
    address:
      socket_address:
        address: 127.0.0.1
        port_value: {port}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l{i}
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
          http_filters:
{f}"#
        ));
        if i < last {
            y.push_str("          - name: envoy.filters.http.router\n");
        }
    }
    // The last listener's router, the cluster and the admin.
    y.push_str(&common::yaml::router_backend_admin(upstream, admin));
    let b = Baton::start(&y);
    wait_live(admin);
    (b, ports)
}

fn compressor(common: &str, gzip: &str, extra: &str) -> String {
    format!(
        r#"          - name: envoy.filters.http.compressor
            typed_config:
              "@type": {COMPRESSOR}
              response_direction_config:
                common_config: {{{common}}}
{extra}              compressor_library:
                name: lib
                typed_config: {{"@type": {GZIP_C}{gzip}}}
"#
    )
}

/// The raw response to a GET with `Accept-Encoding` on a fresh connection: the chunk sizes
/// and the (still compressed) body.
fn gzipped(port: u16, path: &str, ae: &str) -> (Vec<usize>, Vec<u8>) {
    let raw = raw_exchange(
        port,
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {ae}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
        Duration::from_secs(10),
    );
    let head =
        String::from_utf8_lossy(&raw[..raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0)])
            .to_ascii_lowercase();
    if !head.contains("content-encoding: gzip") {
        return (Vec::new(), Vec::new());
    }
    compress_support::raw_chunks(&raw)
}

/// Each gzip library setting reaches zlib: a window of 2^9 bytes cannot see a 2,000-byte
/// period that 2^15 can; level 1 and 9, memory level 1 and 9, and Huffman-only coding give
/// streams of different sizes; chunk_size bounds each chunk. Then `enabled`, `choose_first`,
/// `remove_accept_encoding_header` and `min_content_length`'s default of 30.
#[test]
fn gzip_settings_reach_zlib_and_the_filter_options_hold() {
    let origin = JsonOrigin::start();
    let admin = free_port();
    let v = [
        compressor("", ", window_bits: 9", ""),
        compressor("", ", window_bits: 15", ""),
        compressor("", ", compression_level: BEST_SPEED", ""),
        compressor("", ", compression_level: COMPRESSION_LEVEL_9", ""),
        compressor("", ", memory_level: 1", ""),
        compressor("", ", memory_level: 9", ""),
        compressor("", ", compression_strategy: HUFFMAN_ONLY", ""),
        compressor("", ", window_bits: 9, chunk_size: 65536", ""),
        compressor("enabled: {default_value: false, runtime_key: k}", "", ""),
        compressor("", "", "              choose_first: true\n"),
        compressor(
            "",
            "",
            "                remove_accept_encoding_header: true\n",
        ),
    ];
    let (_b, ports) = variants(&v, origin.port, admin);
    let size = |i: usize, path: &str| {
        let (chunks, body) = gzipped(ports[i], path, "gzip");
        let n: usize = path
            .trim_start_matches("/rep/")
            .split('?')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert_eq!(python_gunzip(&body).len(), n, "listener {i} {path}");
        (body.len(), chunks.into_iter().max().unwrap_or(0))
    };
    let rep = "/rep/64000?period=2000";
    let (w9, w9_chunk) = size(0, rep);
    let (w15, _) = size(1, rep);
    assert!(w9 > 4 * w15, "window 9: {w9} bytes, window 15: {w15}");
    assert!(w9_chunk <= 4096, "{w9_chunk}");
    let (_, big_chunk) = size(7, rep);
    assert!(big_chunk > 4096, "{big_chunk}");
    let text = "/rep/64000?period=60000";
    let (l1, _) = size(2, text);
    let (l9, _) = size(3, text);
    assert_ne!(l1, l9);
    let (m1, _) = size(4, text);
    let (m9, _) = size(5, text);
    assert!(m1 > m9, "memory level 1: {m1}, 9: {m9}");
    let (huff, _) = size(6, rep);
    let (default, _) = size(1, rep);
    assert!(
        huff > 4 * default,
        "huffman only: {huff}, default: {default}"
    );
    // enabled: false: never compressed (nor Vary).
    let r = get(ports[8], "/json/5000", "Accept-Encoding: gzip\r\n", 1);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);
    // choose_first lets gzip take a tie with identity.
    let tie = "Accept-Encoding: identity, gzip\r\n";
    assert_eq!(
        get(ports[9], "/json/5000", tie, 1).header("content-encoding"),
        Some("gzip")
    );
    assert_eq!(
        get(ports[1], "/json/5000", tie, 1).header("content-encoding"),
        None
    );
    // The default min_content_length is 30.
    assert_eq!(
        get(ports[1], "/json/29", "Accept-Encoding: gzip\r\n", 1).header("content-encoding"),
        None
    );
    assert_eq!(
        get(ports[1], "/json/30", "Accept-Encoding: gzip\r\n", 1).header("content-encoding"),
        Some("gzip")
    );
    // remove_accept_encoding_header: the upstream does not see it; the response is still
    // compressed.
    let r = get(ports[10], "/echo", "Accept-Encoding: gzip\r\n", 1);
    assert_eq!(r.header("x-seen-ae"), Some("none"));
    let r = get(ports[1], "/echo", "Accept-Encoding: gzip\r\n", 1);
    assert_eq!(r.header("x-seen-ae"), Some("gzip"));
    // The library's name is in the counters.
    assert_eq!(
        stat(admin, "http.l8.compressor.lib.gzip.response.not_compressed"),
        1
    );
}

fn decompressor(lib: &str, request: &str) -> String {
    format!(
        r#"          - name: envoy.filters.http.decompressor
            typed_config:
              "@type": {DECOMPRESSOR}
              decompressor_library:
                name: up
                typed_config: {{"@type": {GZIP_D}, max_inflate_ratio: 1000{lib}}}
              request_direction_config: {{common_config: {{{request}}}}}
              response_direction_config:
                common_config: {{enabled: {{default_value: false, runtime_key: k}}}}
"#
    )
}

fn post_gzip(port: u16, gz: &[u8], extra: &str) -> Response {
    send_gzip(&mut RawConn::connect(port), gz, extra)
}

/// POSTs `gz` to `/echo` with `Content-Encoding: gzip` and a Content-Length on `c`.
fn send_gzip(c: &mut RawConn, gz: &[u8], extra: &str) -> Response {
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n{extra}Content-Length: {}\r\n\r\n",
            gz.len()
        )
        .as_bytes(),
    );
    c.send(gz);
    c.expect_response(false)
}

/// chunk_size bounds each upstream chunk; `enabled: false` and
/// `Cache-Control: no-transform` leave the body alone, unless `ignore_no_transform_header`.
#[test]
fn decompressor_settings_hold() {
    let origin = JsonOrigin::start();
    let admin = free_port();
    let v = [
        decompressor(", window_bits: 9", ""),
        decompressor("", ""),
        decompressor(", chunk_size: 65536", ""),
        decompressor("", "enabled: {default_value: false, runtime_key: k}"),
        decompressor("", "ignore_no_transform_header: true"),
    ];
    let (_b, ports) = variants(&v, origin.port, admin);
    let body = compress_support::json_body(200_000);
    let rep = {
        // Long-distance repeats: python's gzip uses a 32 KiB window.
        let block: Vec<u8> = (0..20_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        block.repeat(10)
    };
    let gz = python_gzip(&rep);
    // zlib-rs keeps a 32 KiB window for every inflate stream, so a stream made with a larger
    // window than window_bits still inflates (Envoy's zlib would cut it): see docs/config.md.
    let r = post_gzip(ports[0], &gz, "");
    same(&r.body, &rep);
    let r = post_gzip(ports[1], &gz, "");
    same(&r.body, &rep);
    assert!(
        r.header("x-seen-max-chunk")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            <= 4096
    );
    let gz = python_gzip(&body);
    let r = post_gzip(ports[2], &gz, "");
    same(&r.body, &body);
    let max: u64 = r
        .header("x-seen-max-chunk")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(max > 4096, "{max}");
    let r = post_gzip(ports[3], &gz, "");
    assert_eq!(r.header("x-seen-ce"), Some("gzip"));
    same(&r.body, &gz);
    let nt = "Cache-Control: no-transform\r\n";
    let r = post_gzip(ports[1], &gz, nt);
    same(&r.body, &gz);
    let r = post_gzip(ports[4], &gz, nt);
    same(&r.body, &body);
}

/// The deflate state (here window_bits 15, memory_level 9: about 400 KiB) lives only while its
/// response is compressed: 150 keep-alive connections that each received a compressed
/// response and stay open hold none of it.
#[test]
fn idle_connections_keep_no_compressor_state() {
    let origin = JsonOrigin::start();
    let admin = free_port();
    let v = [compressor("", ", window_bits: 15, memory_level: 9", "")];
    let (b, ports) = variants(&v, origin.port, admin);
    // Warm up: buffers and pools reach their working size.
    for _ in 0..5 {
        get(ports[0], "/json/20000", "Accept-Encoding: gzip\r\n", 1);
    }
    let before = b.rss_kib();
    let mut open = Vec::new();
    for _ in 0..150 {
        let mut c = RawConn::connect(ports[0]);
        c.send(b"GET /json/20000 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
        let r = c.expect_response(false);
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        open.push(c);
    }
    let grew = b.rss_kib().saturating_sub(before);
    // 150 deflaters kept would be about 60 MiB.
    assert!(
        grew < 20 * 1024,
        "RSS grew {grew} KiB for 150 idle connections"
    );
    drop(open);
}
