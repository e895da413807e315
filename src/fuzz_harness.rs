//! Harness bodies shared by the cargo-fuzz targets (`fuzz/`) and the stable corpus replay test
//! (`tests/fuzz_replay.rs`). Keeping them here means the replay on every `cargo test` runs
//! exactly what the fuzzer ran, so a fixed crash cannot come back unnoticed.
//!
//! Each function takes arbitrary bytes and panics only when an invariant is broken; an input
//! the parser rejects is a normal outcome.

use std::sync::OnceLock;

use crate::config::{PathRedirect, RouteAction};
use crate::http::codec::{self, ChunkedDecoder, Framing};
use crate::route::{self, matcher, Router};
use baton_statemachine::codec as frame;

/// A route table touching every request-derived string path of routing: exact, suffix and
/// prefix domains, case-insensitive prefixes, regex paths, header and query matchers, prefix
/// and regex rewrites, and redirects.
const ROUTES_YAML: &str = r#"
static_resources:
  listeners:
  - name: l
    address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: fuzz
          route_config:
            name: r
            virtual_hosts:
            - name: exact
              domains: ["example.com", "example.com:8080", "[::1]:80"]
              routes:
              - match: { prefix: "/API", case_sensitive: false }
                route: { cluster: a, prefix_rewrite: "/v2" }
              - match: { prefix: "/g", grpc: {} }
                route: { cluster: a }
              - match: { path: "/exact" }
                redirect: { https_redirect: true, prefix_rewrite: "/other" }
              - match: { safe_regex: { regex: "/re/[a-z]+/.*" } }
                route: { cluster: a, regex_rewrite: { pattern: { regex: "^/re/(.*)$" }, substitution: "/x/\\1" } }
              - match:
                  prefix: "/h"
                  headers: [{ name: x-a, string_match: { suffix: "é", ignore_case: true } },
                            { name: ":method", string_match: { prefix: "G" } }]
                redirect: { host_redirect: "new.example", port_redirect: 81, strip_query: true }
              - match:
                  prefix: "/q"
                  query_parameters: [{ name: v, string_match: { contains: "ab", ignore_case: true } }]
                redirect: { scheme_redirect: https, regex_rewrite: { pattern: { regex: "q" }, substitution: "Q" } }
            - name: suffix
              domains: ["*.example.org", "pre.*"]
              routes:
              - match: { prefix: "/" }
                redirect: { path_redirect: "/moved?x=1" }
            - name: any
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: a }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: a
    type: STATIC
    load_assignment:
      cluster_name: a
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } }
"#;

/// Built once: the config is fixed, only the request varies.
fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let boot = crate::config::load_str(ROUTES_YAML)
            .unwrap_or_else(|e| panic!("fuzz route config must load: {e}"));
        let l = boot
            .listeners
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("fuzz route config has a listener"));
        let hcm = l
            .hcm()
            .unwrap_or_else(|| panic!("fuzz route config has an HTTP listener"));
        Router::new(hcm.route_config.clone())
    })
}

/// Request head parsing, then everything routing reads from the parsed head.
pub fn request_head(data: &[u8]) {
    let mut slots = codec::header_slots();
    let head = match codec::parse_request(data, &mut slots) {
        Ok(Some(h)) => h,
        Ok(None) => return,
        Err(e) => {
            // Every refusal maps to a status we can answer with.
            assert!(matches!(e.status(), 400 | 431 | 501), "status {e:?}");
            let _ = e.reason();
            return;
        }
    };
    assert!(head.head_len <= data.len(), "head_len past input");
    assert!(head.minor <= 1, "minor {}", head.minor);
    // The target reaches routing and the upstream request line; it must be plain ASCII.
    assert!(
        head.path.bytes().all(|b| b.is_ascii_graphic()),
        "non-ASCII path {:?}",
        head.path
    );
    assert!(
        head.path.starts_with('/') || head.path == "*",
        "path {:?}",
        head.path
    );
    if let Some(h) = head.host {
        assert!(h.bytes().all(|b| b.is_ascii_graphic()), "host {h:?}");
    }
    if head.framing == Framing::Chunked {
        assert_eq!(head.minor, 1, "chunked on HTTP/1.0");
    }
    // The parser bounds the Connection tokens, so the gathered list sees every one: it
    // answers as the walk over the headers does (keep-alive aside: hop-by-hop anyway).
    let nominated = codec::Nominated::of(head.headers);
    for h in head.headers {
        let _ = codec::is_hop_by_hop(h.name);
        assert!(
            h.name.eq_ignore_ascii_case("keep-alive")
                || nominated.names(h.name) == codec::named_in_connection(head.headers, h.name),
            "Connection lookup of {:?}",
            h.name
        );
        let _ = codec::tokens(h.value).count();
    }

    let r = router();
    let _ = r.virtual_host(head.host);
    for name in [
        ":path",
        ":method",
        ":authority",
        "host",
        "x-a",
        "content-length",
    ] {
        let _ = matcher::header_value(&head, name);
    }
    let bare = matcher::bare_path(head.path);
    assert!(head.path.starts_with(bare));
    let Some(m) = r.route(&head) else {
        return;
    };
    let pm = &m.route.matcher.path;
    match &m.route.action {
        RouteAction::Forward(f) => {
            if let Some(p) = &f.prefix_rewrite {
                let _ = route::rewrite_prefix(pm, p, head.path);
            }
            if let Some(rr) = &f.regex_rewrite {
                let _ = route::rewrite_regex(rr, head.path);
            }
        }
        RouteAction::Redirect(rd) => {
            let loc = route::redirect_location(rd, pm, head.host, head.path, head.secure);
            if let PathRedirect::Keep = rd.path {
                assert!(!loc.is_empty());
            }
        }
        RouteAction::DirectResponse { .. } => {}
    }
}

/// Response head parsing, as for a GET and as for a HEAD request.
pub fn response_head(data: &[u8]) {
    for is_head in [false, true] {
        let mut slots = codec::header_slots();
        match codec::parse_response(data, &mut slots, is_head) {
            Ok(Some(h)) => {
                assert!(h.head_len <= data.len(), "head_len past input");
                assert!((100..=599).contains(&h.status), "status {}", h.status);
                if is_head {
                    assert_eq!(h.framing, Framing::None, "HEAD response with a body");
                }
                if h.framing == Framing::UntilClose {
                    assert!(!h.keep_alive, "keep-alive on a close-delimited body");
                }
            }
            Ok(None) => {}
            Err(e) => {
                let _ = (e.status(), e.reason());
            }
        }
    }
}

/// What one decoding run ended with.
#[derive(Debug, PartialEq, Eq)]
enum ChunkOutcome {
    Done { consumed: usize },
    Incomplete,
    Failed(&'static str),
}

/// Feeds `pieces` of a chunked body the way a connection does: unconsumed bytes stay buffered
/// and the next read is appended. Returns the body bytes and how the run ended.
fn run_chunked(pieces: &[&[u8]], room: usize) -> (Vec<u8>, ChunkOutcome) {
    let mut dec = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut consumed = 0usize;
    for piece in pieces {
        pending.extend_from_slice(piece);
        while !pending.is_empty() {
            let mut produced = 0usize;
            let used = match dec.decode(&pending, room, |d| {
                produced += d.len();
                out.extend_from_slice(d);
            }) {
                Ok(n) => n,
                Err(e) => return (out, ChunkOutcome::Failed(e.0)),
            };
            assert!(used <= pending.len(), "used {used} > {}", pending.len());
            assert!(produced <= room, "produced {produced} > room {room}");
            assert!(produced <= used, "more data than bytes consumed");
            pending.drain(..used);
            consumed += used;
            if dec.is_done() {
                return (out, ChunkOutcome::Done { consumed });
            }
            // A decoder that is not done must make progress on non-empty input.
            assert!(used > 0, "no progress on {} bytes", pending.len());
        }
    }
    (out, ChunkOutcome::Incomplete)
}

/// Chunked body decoding. Layout: 2 bytes of `room` (per-call output limit, at least 1), one
/// byte `n`, `n` piece lengths, then the body. Whatever the split and room, the decoded bytes
/// and the outcome must equal a one-shot decode.
pub fn chunked(data: &[u8]) {
    let [r0, r1, n, rest @ ..] = data else {
        return;
    };
    let room = usize::from(u16::from_le_bytes([*r0, *r1])).max(1);
    let n = usize::from(*n).min(rest.len());
    let (lens, body) = rest.split_at(n);

    let (want, want_end) = run_chunked(&[body], usize::MAX);

    let mut pieces = Vec::new();
    let mut left = body;
    let mut k = 0;
    while !left.is_empty() {
        let len = lens
            .get(k % lens.len().max(1))
            .map_or(left.len(), |&l| usize::from(l));
        let (p, tail) = left.split_at(len.min(left.len()));
        pieces.push(p);
        left = tail;
        k += 1;
        if lens.iter().all(|&l| l == 0) {
            pieces.push(left);
            break;
        }
    }
    let (got, got_end) = run_chunked(&pieces, room);
    assert_eq!(got_end, want_end, "outcome depends on split/room");
    assert_eq!(got, want, "decoded bytes depend on split/room");
    if let ChunkOutcome::Done { consumed } = want_end {
        assert!(consumed <= body.len());
    }
}

/// Hot-restart frame decoding over a stream of frames; whatever decodes must re-encode to the
/// same bytes and decode back to the same message.
pub fn restart_frame(data: &[u8]) {
    let mut buf = data;
    loop {
        match frame::decode(buf) {
            Ok(Some((msg, used))) => {
                assert!(
                    used > 0 && used <= buf.len(),
                    "used {used} of {}",
                    buf.len()
                );
                let mut enc = Vec::new();
                if let Err(e) = frame::encode(&msg, &mut enc) {
                    panic!("decoded message does not encode: {e}");
                }
                assert_eq!(enc.as_slice(), &buf[..used], "encoding is not canonical");
                match frame::decode(&enc) {
                    Ok(Some((again, n))) => {
                        assert_eq!(again, msg, "round trip changed the message");
                        assert_eq!(n, enc.len());
                    }
                    other => panic!("re-encoded frame does not decode: {other:?}"),
                }
                buf = &buf[used..];
            }
            Ok(None) => return,
            Err(e) => {
                let _ = e.to_string();
                return;
            }
        }
    }
}

/// Config loading on arbitrary text: an error is fine, a panic is not.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = crate::config::load_str(text) {
        let _ = e.to_string();
    }
}

/// The whole exchange core, driven by an interleaved script of client bytes, upstream bytes,
/// closes, resets, connect failures and time steps (see `http::core::sim::fuzz_exchange`).
pub fn exchange(data: &[u8]) {
    crate::http::core::sim::fuzz_exchange(data);
}

/// The `proxy` target's config: every request-path feature a peer's bytes reach is on (the
/// HTTP filters — ext_authz on `/authz…` and a gRPC one on `/gauthz…`, each check answered
/// with the exchange's response bytes (HTTP/1.1, or HTTP/2 frames) — tracing with B3 parsing, client certificate and internal-header rules, path
/// and Host normalisation, header edits with request variables, access-log filters and
/// formats, local reply mappers, retries, outlier detection). Its clusters are never
/// connected to: the in-memory driver answers for the upstream.
const PROXY_YAML: &str = r#"
static_resources:
  listeners:
  - name: fuzz
    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: fuzz
          use_remote_address: true
          add_user_agent: true
          forward_client_cert_details: FORWARD_ONLY
          via: fuzz-proxy
          normalize_path: true
          merge_slashes: true
          path_with_escaped_slashes_action: UNESCAPE_AND_FORWARD
          strip_any_host_port: true
          strip_trailing_host_dot: true
          request_timeout: 5s
          common_http_protocol_options: {max_requests_per_connection: 40, headers_with_underscores_action: DROP_HEADER}
          upgrade_configs: [{upgrade_type: websocket}, {upgrade_type: CONNECT}]
          tracing:
            random_sampling: {value: 50}
            custom_tags:
            - {tag: ua, request_header: {name: user-agent, default_value: none}}
            - {tag: lit, literal: {value: fuzz}}
            provider:
              name: envoy.tracers.zipkin
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: zipkin
                collector_endpoint: "/api/v2/spans"
                collector_endpoint_version: HTTP_JSON
          access_log:
          - name: envoy.access_loggers.file
            filter:
              or_filter:
                filters:
                - status_code_filter: {comparison: {op: GE, value: {default_value: 400, runtime_key: k}}}
                - header_filter: {header: {name: x-log, present_match: true}}
                - runtime_filter: {runtime_key: r, percent_sampled: {numerator: 10, denominator: HUNDRED}}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: /dev/null
              log_format:
                json_format: {m: "%REQ(:METHOD)%", p: "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%", s: "%RESPONSE_CODE%", f: "%RESPONSE_FLAGS%", t: "%REQ(X-B3-TRACEID)%", ua: "%REQ(USER-AGENT):10%", d: "%DURATION%"}
          local_reply_config:
            mappers:
            - filter: {status_code_filter: {comparison: {op: EQ, value: {default_value: 404, runtime_key: k}}}}
              status_code: 404
              body: {inline_string: "nope %REQ(:PATH)%"}
              headers_to_add: [{header: {key: x-mapped, value: "%PROTOCOL%"}}]
          route_config:
            request_headers_to_add: [{header: {key: x-fwd, value: "%DOWNSTREAM_REMOTE_ADDRESS% %REQ(host)%"}}]
            response_headers_to_add: [{header: {key: x-rid, value: "%REQ(x-request-id)%"}}]
            virtual_hosts:
            - name: secure
              domains: ["secure.test"]
              require_tls: EXTERNAL_ONLY
              routes:
              - match: {prefix: "/"}
                route: {cluster: up}
            - name: any
              domains: ["*"]
              retry_policy: {retry_on: "5xx,reset,connect-failure", num_retries: 1}
              typed_per_filter_config:
                envoy.filters.http.ext_authz: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, disabled: true}
                gauthz: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, disabled: true}
                envoy.filters.http.cors:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                  allow_origin_string_match: [{prefix: "https://"}, {safe_regex: {regex: "^http://[a-z]+\\.test$"}}]
                  allow_methods: "GET, POST, PUT"
                  allow_headers: "x-a, content-type"
                  expose_headers: "x-b"
                  max_age: "60"
                  allow_credentials: true
              routes:
              - match: {prefix: "/direct"}
                direct_response: {status: 200, body: {inline_string: "direct"}}
              - match: {prefix: "/redir"}
                redirect: {path_redirect: "/x", response_code: FOUND}
              - match: {safe_regex: {regex: "^/re/[a-z]+/\\d+$"}}
                route: {cluster: up, regex_rewrite: {pattern: {regex: "^/re/(.*)$"}, substitution: "/bytes/\\1"}}
              - match: {prefix: "/h", headers: [{name: x-a, string_match: {prefix: "b"}}]}
                route: {cluster: up, prefix_rewrite: "/bytes/10"}
              - match: {prefix: "/k"}
                route: {cluster: ring, hash_policy: [{header: {header_name: x-k}, terminal: true}, {cookie: {name: k}}, {query_parameter: {name: k}}, {connection_properties: {source_ip: true}}]}
              - match: {prefix: "/limited"}
                route: {cluster: up}
                decorator: {operation: limited}
                typed_per_filter_config:
                  envoy.filters.http.local_ratelimit:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                    stat_prefix: per_route
                    token_bucket: {max_tokens: 2, tokens_per_fill: 1, fill_interval: 1s}
                    filter_enabled: {runtime_key: e, default_value: {numerator: 100, denominator: HUNDRED}}
                    filter_enforced: {runtime_key: f, default_value: {numerator: 100, denominator: HUNDRED}}
              - match: {prefix: "/authz"}
                route: {cluster: up}
                typed_per_filter_config:
                  envoy.filters.http.ext_authz: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, check_settings: {}}
              - match: {prefix: "/gauthz"}
                route: {cluster: up}
                typed_per_filter_config:
                  gauthz: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, disabled: false}
              - match: {connect_matcher: {}}
                route: {cluster: up, upgrade_configs: [{upgrade_type: CONNECT, connect_config: {}}]}
              - match: {prefix: "/"}
                route: {cluster: up, timeout: 2s, host_rewrite_literal: origin}
                decorator: {operation: everything}
          http_filters:
          - name: envoy.filters.http.health_check
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck
              pass_through_mode: false
              headers: [{name: ":path", string_match: {exact: "/hc"}}]
          - name: envoy.filters.http.cors
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}
          - name: envoy.filters.http.csrf
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy
              filter_enabled: {runtime_key: c, default_value: {numerator: 100, denominator: HUNDRED}}
              additional_origins: [{exact: "trusted.test"}]
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: fuzz_rl
              token_bucket: {max_tokens: 50, tokens_per_fill: 50, fill_interval: 1s}
              filter_enabled: {runtime_key: e, default_value: {numerator: 100, denominator: HUNDRED}}
              filter_enforced: {runtime_key: f, default_value: {numerator: 100, denominator: HUNDRED}}
              response_headers_to_add: [{append_action: OVERWRITE_IF_EXISTS_OR_ADD, header: {key: x-rl, value: "true"}}]
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: DENY
                policies:
                  deny-x:
                    permissions: [{or_rules: {rules: [{header: {name: x-deny, present_match: true}}, {url_path: {path: {prefix: "/deny"}}}]}}]
                    principals: [{not_id: {remote_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}}]
              shadow_matcher:
                matcher_list:
                  matchers:
                  - predicate: {single_predicate: {input: {name: h, typed_config: {"@type": type.googleapis.com/envoy.type.matcher.v3.HttpRequestHeaderMatchInput, header_name: referer}}, value_match: {safe_regex: {regex: "https?://a\\.test/.*"}}}}
                    on_match: {action: {name: a, typed_config: {"@type": type.googleapis.com/envoy.config.rbac.v3.Action, name: ok, action: ALLOW}}}
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              headers: [{name: x-fault, present_match: true}]
              abort: {header_abort: {}, percentage: {numerator: 50}}
              delay: {header_delay: {}, percentage: {numerator: 100}}
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              failure_mode_allow: true
              failure_mode_allow_header_add: true
              http_service:
                server_uri: {uri: "http://authz", cluster: authz, timeout: 0.2s}
                path_prefix: /check
                authorization_request: {allowed_headers: {patterns: [{prefix: x-}]}, headers_to_add: [{key: x-from, value: fuzz}]}
                authorization_response:
                  allowed_upstream_headers: {patterns: [{exact: x-user}]}
                  allowed_upstream_headers_to_append: {patterns: [{safe_regex: {regex: "x-a.*"}}]}
                  allowed_client_headers: {patterns: [{suffix: -reason}]}
                  allowed_client_headers_on_success: {patterns: [{exact: x-note}]}
          - name: gauthz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              stat_prefix: g
              grpc_service:
                envoy_grpc: {cluster_name: authz}
                timeout: 0.2s
                initial_metadata: [{key: x-tenant, value: fuzz}]
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: up
    connect_timeout: 1s
    type: STATIC
    outlier_detection: {consecutive_5xx: 3, max_ejection_percent: 50}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: {idle_timeout: 30s, max_requests_per_connection: 10}
        explicit_http_config: {http_protocol_options: {header_key_format: {proper_case_words: {}}}}
    common_lb_config: {locality_weighted_lb_config: {}}
    load_assignment:
      cluster_name: up
      endpoints:
      - {locality: {zone: a}, load_balancing_weight: 2, lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}, hostname: up1}, load_balancing_weight: 3}, {endpoint: {address: {socket_address: {address: 127.0.0.3, port_value: 9}}}}]}
      - {locality: {zone: b}, priority: 1, load_balancing_weight: 1, lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.2, port_value: 9}}}}]}
  - name: ring
    connect_timeout: 1s
    type: STATIC
    lb_policy: RING_HASH
    ring_hash_lb_config: {minimum_ring_size: 64}
    load_assignment: {cluster_name: ring, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}}, {endpoint: {address: {socket_address: {address: 127.0.0.4, port_value: 9}}}}]}]}
  - name: authz
    connect_timeout: 1s
    type: STATIC
    load_assignment: {cluster_name: authz, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}}]}]}
  - name: zipkin
    connect_timeout: 1s
    type: STATIC
    load_assignment: {cluster_name: zipkin, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 9}}}}]}]}
"#;

/// The compressor and decompressor filters, in a build that has them (a build without the
/// `compression` feature refuses them).
const COMPRESSION_FILTERS: &str = r#"          - name: envoy.filters.http.compressor
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
              response_direction_config:
                common_config: {min_content_length: 10, content_type: [text/plain, application/json]}
                disable_on_etag_header: false
              compressor_library:
                name: fuzz
                typed_config: {"@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip, window_bits: 9, memory_level: 1}
          - name: envoy.filters.http.decompressor
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.decompressor.v3.Decompressor
              decompressor_library:
                name: fuzz
                typed_config: {"@type": type.googleapis.com/envoy.extensions.compression.gzip.decompressor.v3.Gzip, max_inflate_ratio: 20}
              response_direction_config: {common_config: {enabled: {default_value: false, runtime_key: d}}}
"#;

/// `PROXY_YAML` with the compression filters before the router when they are built in.
fn proxy_yaml() -> String {
    const ROUTER: &str = "          - name: envoy.filters.http.router\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n  clusters:";
    if cfg!(feature = "compression") {
        PROXY_YAML.replacen(ROUTER, &format!("{COMPRESSION_FILTERS}{ROUTER}"), 1)
    } else {
        PROXY_YAML.to_string()
    }
}

/// Requests and upstream answers through the core with the proxy's own environment
/// (`http::inmem`): routing, the filter chain, tracing, header building and the access log run
/// as in the proxy. The input is a list of exchanges, each `[len: u16 BE][request]
/// [len: u16 BE][response]`; the first byte picks the client's address (internal or
/// external) and the tracer (bit 1: Datadog's instead of Zipkin's). A closed connection ends
/// the input.
pub fn proxy(data: &[u8]) {
    static BOOT: OnceLock<Option<crate::config::Bootstrap>> = OnceLock::new();
    static BOOT_DD: OnceLock<Option<crate::config::Bootstrap>> = OnceLock::new();
    let Some((&first, mut rest)) = data.split_first() else {
        return;
    };
    let boot = if first & 2 == 0 {
        BOOT.get_or_init(|| crate::config::load_str(&proxy_yaml()).ok())
    } else {
        BOOT_DD.get_or_init(|| crate::config::load_str(&datadog_yaml()).ok())
    };
    let Some(boot) = boot else {
        panic!("the proxy target's config must load");
    };
    let peer = if first & 1 == 0 {
        "127.0.0.1:40000"
    } else {
        "127.0.0.2:40000"
    };
    let Ok(peer) = peer.parse() else { return };
    let Ok(mut m) = crate::http::inmem::InMem::from_bootstrap(boot.clone(), peer) else {
        return;
    };
    for _ in 0..8 {
        let (Some(request), Some(response)) = (piece(&mut rest), piece(&mut rest)) else {
            return;
        };
        if m.exchange(request, response).is_err() {
            return;
        }
    }
}

/// `PROXY_YAML` with the Datadog tracer in place of Zipkin's (the same cluster).
fn datadog_yaml() -> String {
    proxy_yaml().replace(
        r#"              name: envoy.tracers.zipkin
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: zipkin
                collector_endpoint: "/api/v2/spans"
                collector_endpoint_version: HTTP_JSON"#,
        r#"              name: envoy.tracers.datadog
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.DatadogConfig
                collector_cluster: zipkin
                service_name: fuzz"#,
    )
}

/// The next `[len: u16 BE][bytes]` piece of `rest` (shorter when the input ends early).
fn piece<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, tail) = rest.split_first_chunk::<2>()?;
    let n = usize::from(u16::from_be_bytes(*len)).min(tail.len());
    let (piece, tail) = tail.split_at(n);
    *rest = tail;
    Some(piece)
}

/// The unary gRPC call (`grpc::call`) of an ext_authz check, its request message sized by the
/// first byte (so flow control holds part of it), against a server that sends the rest as
/// `[u16 length][bytes]` pieces of wire (the last with EOF when the first byte is odd). Each
/// piece is also read as a `CheckResponse`, as is the call's message. Checked besides "no
/// panic": a decision's header edits carry no CR, LF or NUL, and what the call queues to send
/// per piece is bounded by what the piece can ask for.
pub fn grpc_call(data: &[u8]) {
    use crate::grpc::call::{Call, Request};
    use crate::http::ext_authz_grpc::{decide, CHECK_PATH};
    let [mode, rest @ ..] = data else {
        return;
    };
    let mut rest = rest;
    let message = vec![b'm'; usize::from(*mode) * 1024];
    let metadata = [("x-tenant".to_string(), "t".to_string())];
    let mut call = Call::new(&Request {
        authority: "authz",
        path: CHECK_PATH,
        timeout: std::time::Duration::from_millis(u64::from(*mode)),
        metadata: &metadata,
        message: &message,
    });
    call.out().clear();
    let safe = |d: &crate::http::ext_authz_grpc::Decision| {
        let all = d
            .headers
            .iter()
            .chain(&d.response_headers)
            .chain(&d.denied_headers);
        for m in all {
            assert!(!m.name.is_empty() && !m.value.contains(['\r', '\n', '\0']));
        }
    };
    while let Some(p) = piece(&mut rest) {
        if let Ok(d) = decide(p) {
            safe(&d);
        }
        let eof = rest.is_empty() && mode & 1 == 1;
        let r = call.feed(p, eof);
        // Acknowledgements (17 bytes per 9-byte frame at most) and the held message.
        assert!(call.out().len() <= 2 * p.len() + message.len() + 64);
        call.out().clear();
        match r {
            None => {}
            Some(Ok(m)) => {
                if let Ok(d) = decide(&m) {
                    safe(&d);
                }
                return;
            }
            Some(Err(_)) => return,
        }
    }
}

/// The HTTP/2 client transcoder (`h2::client`) between a fixed request (chosen by the first
/// byte, with the window, table and scheme options) and a server that sends the rest as
/// `[u16 length][bytes]` pieces of wire. Checked besides "no panic": the transcoder never
/// claims wire bytes it was not given, and the first HTTP/1 head it makes for the core
/// parses as a response head (names and values it passes on are safe in an HTTP/1 head).
pub fn h2_client(data: &[u8]) {
    use crate::h2::client::{Client, Options};
    use crate::h2::Transcode;
    let [mode, rest @ ..] = data else {
        return;
    };
    let mut rest = rest;
    const REQUESTS: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 40000\r\n\r\n",
        b"PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n9c40\r\n",
    ];
    let req = REQUESTS[usize::from(mode & 3)];
    let opts = Options {
        stream_window: if mode & 4 == 0 { 65_535 } else { 1 << 20 },
        conn_window: 65_535,
        table_size: if mode & 8 == 0 { 4096 } else { 0 },
    };
    let mut c = Client::new(opts, mode & 16 != 0);
    let mut out = Vec::new();
    c.start(&mut out);
    let body = [b'b'; 40_000];
    let mut sent_head = false;
    let mut body_left = if mode & 2 != 0 { body.len() } else { 0 };
    // The chunked request ends with a trailer section (sent as a trailers HEADERS frame).
    let mut tail: &[u8] = if mode & 3 == 3 {
        b"\r\n0\r\nx-t: 1\r\nconnection: x\r\n\r\n"
    } else {
        b""
    };
    let mut h1 = Vec::new();
    let mut wire: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded: every round consumes a piece of the input.
    while let Some(p) = piece(&mut rest) {
        if !sent_head {
            match c.write_h1(req, &mut out) {
                Ok(n) if n == req.len() => sent_head = true,
                Ok(_) | Err(_) => return,
            }
        }
        if body_left > 0 {
            match c.write_h1(&body[..body_left], &mut out) {
                Ok(n) => body_left -= n.min(body_left),
                Err(_) => return,
            }
        }
        if body_left == 0 && !tail.is_empty() {
            match c.write_h1(tail, &mut out) {
                Ok(n) => tail = tail.get(n..).unwrap_or_default(),
                Err(_) => return,
            }
        }
        out.clear();
        wire.extend_from_slice(p);
        loop {
            match c.read_h1(&mut buf, &mut out) {
                Ok(Some(n)) if n > 0 => {
                    if h1.len() < 1 << 16 {
                        h1.extend_from_slice(buf.get(..n).unwrap_or_default());
                    }
                    continue;
                }
                Ok(Some(_)) | Err(_) => break,
                Ok(None) => {}
            }
            match c.feed(&wire, &mut out) {
                Ok(0) => break,
                Ok(n) => {
                    assert!(n <= wire.len(), "consumed more than given");
                    wire.drain(..n);
                }
                Err(_) => return,
            }
        }
    }
    let mut slots = crate::http::codec::header_slots();
    if let Err(e) = crate::http::codec::parse_response(&h1, &mut slots, mode & 3 == 1) {
        panic!(
            "the transcoder made an unparsable head ({e:?}): {:?}",
            String::from_utf8_lossy(&h1)
        );
    }
}

/// The same scripts on a TCP proxy connection (see `http::core::sim::fuzz_tcp`).
pub fn tcp(data: &[u8]) {
    crate::http::core::sim::fuzz_tcp(data);
}

/// The PROXY protocol header parser (`proxy_protocol::parse`). The first byte picks the
/// accepted versions and whether a header is optional; the rest is the connection's first
/// bytes. Whatever a shorter peek decided (anything but "more") the whole input decides too,
/// "more" always asks for more than it had, and a header never claims bytes it was not given.
pub fn proxy_protocol(data: &[u8]) {
    use crate::proxy_protocol::parse::{parse, Accept, Step, MAX_LEN};
    let [flags, rest @ ..] = data else {
        return;
    };
    let accept = Accept {
        v1: flags & 1 == 0,
        v2: flags & 2 == 0,
        optional: flags & 4 != 0,
    };
    let whole = parse(rest, accept);
    match &whole {
        Step::Found(h) => {
            assert!(h.len > 0 && h.len <= rest.len());
            assert_eq!(parse(&rest[..h.len], accept), whole);
        }
        Step::More(n) => assert!(*n > rest.len() && *n <= MAX_LEN),
        _ => {}
    }
    for k in 0..rest.len().min(300) {
        match parse(&rest[..k], accept) {
            Step::More(n) => assert!(n > k, "asked for {n} with {k}"),
            early => assert_eq!(early, whole, "decided at {k}"),
        }
    }
}

/// The HTTP/2 wire layer (`h2::frame`, `h2::hpack`). The first byte picks the limits and the
/// mode; the rest is either a stream of frames (bit 7 clear) or HPACK blocks, each
/// `[u16 length][block]`, through one decoder (bit 7 set). Checked besides "no panic": a frame
/// never claims bytes it was not given, and a shorter cut of it asks for more; what the writers
/// write parses back to the same frame; a header block (HEADERS + CONTINUATION) the decoder
/// accepts stays within the list limit, re-splits by `write_headers` into the same block, and
/// encodes and decodes back to the same fields.
pub fn h2_wire(data: &[u8]) {
    use crate::h2::frame::{self, Frame};
    use crate::h2::hpack::Decoder;
    let [mode, rest @ ..] = data else {
        return;
    };
    let max_frame = if mode & 1 == 0 {
        frame::DEFAULT_MAX_FRAME
    } else {
        frame::DEFAULT_MAX_FRAME + 1000
    };
    let table = [4096, 256, 0, 64][usize::from(mode >> 1 & 3)];
    let max_list = if mode & 8 == 0 { 16_384 } else { 200 };
    let mut decoder = Decoder::new(table);
    if mode & 0x80 != 0 {
        let mut rest = rest;
        while let [a, b, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
            let (block, tail) = tail.split_at(len);
            if !h2_block(&mut decoder, block, max_list, max_frame) {
                return;
            }
            rest = tail;
        }
        return;
    }
    let mut buf = rest;
    let mut block: Vec<u8> = Vec::new();
    let mut in_block = false;
    loop {
        let (f, used) = match frame::parse(buf, max_frame) {
            Ok(Some(found)) => found,
            Ok(None) | Err(_) => return,
        };
        assert!(used >= frame::HEAD_LEN && used <= buf.len(), "used {used}");
        for cut in [0, frame::HEAD_LEN - 1, frame::HEAD_LEN, used - 1] {
            if cut < used {
                assert_eq!(frame::parse(&buf[..cut], max_frame), Ok(None), "cut {cut}");
            }
        }
        h2_rewrite(&f);
        match f {
            Frame::Headers {
                block: b,
                end_headers,
                ..
            } => {
                block.clear();
                block.extend_from_slice(b);
                in_block = !end_headers;
                if end_headers && !h2_block(&mut decoder, &block, max_list, max_frame) {
                    return;
                }
            }
            Frame::Continuation {
                block: b,
                end_headers,
                ..
            } if in_block => {
                // Bounded as a transcoder bounds it.
                if block.len() + b.len() > 65_536 {
                    return;
                }
                block.extend_from_slice(b);
                in_block = !end_headers;
                if end_headers && !h2_block(&mut decoder, &block, max_list, max_frame) {
                    return;
                }
            }
            _ => {}
        }
        buf = &buf[used..];
    }
}

/// What the frame writers make of `f` parses back to `f` (for the frames they can write).
fn h2_rewrite(f: &crate::h2::frame::Frame<'_>) {
    use crate::h2::frame::{self, Frame};
    let mut out = Vec::new();
    match *f {
        Frame::Data {
            stream,
            end_stream,
            data,
            ..
        } => frame::write_data(&mut out, stream, data, end_stream),
        Frame::Settings { ack: true, .. } => frame::write_settings_ack(&mut out),
        Frame::Settings { ack: false, params } => {
            let list: Vec<_> = frame::settings(params).collect();
            frame::write_settings(&mut out, &list);
        }
        Frame::Ping { ack, data } => frame::write_ping(&mut out, data, ack),
        Frame::RstStream { stream, code } => frame::write_rst(&mut out, stream, code),
        Frame::GoAway {
            last_stream, code, ..
        } => frame::write_goaway(&mut out, last_stream, code),
        Frame::WindowUpdate { stream, increment } => {
            frame::write_window_update(&mut out, stream, increment)
        }
        _ => return,
    }
    let Ok(Some((back, used))) = frame::parse(&out, frame::MAX_FRAME_LIMIT) else {
        panic!("written frame does not parse: {f:?}");
    };
    assert_eq!(used, out.len());
    let same = match (*f, back) {
        (
            Frame::Data {
                stream,
                end_stream,
                data,
                ..
            },
            Frame::Data {
                stream: s,
                end_stream: e,
                data: d,
                flow_len,
            },
        ) => stream == s && end_stream == e && data == d && flow_len as usize == d.len(),
        (
            Frame::GoAway {
                last_stream, code, ..
            },
            Frame::GoAway {
                last_stream: l,
                code: c,
                debug,
            },
        ) => last_stream == l && code == c && debug.is_empty(),
        (a, b) => a == b,
    };
    assert!(same, "{f:?} was written back as {back:?}");
}

/// Decodes one header block; on success checks the list bound, the re-split and the round
/// trip. Returns false when the block was refused as a connection error.
fn h2_block(
    decoder: &mut crate::h2::hpack::Decoder,
    block: &[u8],
    max_list: usize,
    max_frame: u32,
) -> bool {
    use crate::h2::frame::{self, Frame};
    use crate::h2::hpack::{Decoder, Encoder, HpackError};
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut size = 0;
    let r = decoder.decode(block, max_list, &mut |n, v| {
        size += n.len() + v.len() + 32;
        fields.push((n.to_vec(), v.to_vec()));
    });
    assert!(size <= max_list, "emitted {size} > {max_list}");
    match r {
        Ok(()) => {}
        Err(HpackError::ListTooLarge) => return true,
        Err(_) => return false,
    }
    // HEADERS + CONTINUATION carry the block unchanged.
    let mut out = Vec::new();
    frame::write_headers(&mut out, 1, block, true, max_frame);
    let mut again = Vec::new();
    let mut at = &out[..];
    while let Ok(Some((f, used))) = frame::parse(at, max_frame) {
        match f {
            Frame::Headers { block, .. } | Frame::Continuation { block, .. } => {
                again.extend_from_slice(block)
            }
            other => panic!("write_headers wrote {other:?}"),
        }
        at = &at[used..];
    }
    assert!(
        at.is_empty() && again == block,
        "write_headers changed the block"
    );
    // Encode what was decoded (lowercase names, as the transcoders give); a fresh decoder
    // gives the same fields back.
    let lower: Vec<(Vec<u8>, Vec<u8>)> = fields
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    let mut encoded = Vec::new();
    Encoder::new().encode(
        &mut lower.iter().map(|(n, v)| (&n[..], &v[..])),
        &mut encoded,
    );
    let mut back = Vec::new();
    let r = Decoder::new(0).decode(&encoded, usize::MAX, &mut |n, v| {
        back.push((n.to_vec(), v.to_vec()))
    });
    assert_eq!(r, Ok(()), "our own block refused");
    assert_eq!(back, lower, "encode/decode round trip");
    true
}

/// The HTTP/2 server transcoder (`h2::server`) as the byte-stream layer drives it, with a
/// core that answers every request head it reads. The first byte picks the options (bit 0:
/// `stream_error_on_invalid_http_messaging`; bits 1-2: the canned answer: a length body, a
/// chunked one, none, or `Connection: close`); the rest is client bytes, fed in pieces whose
/// sizes come from the input. Checked besides "no panic": the HTTP/1 bytes it makes start
/// with a request head the core's own parser accepts, and what it buffers stays bounded.
pub fn h2_server(data: &[u8]) {
    use crate::h2::server::{Options, Server};
    use crate::h2::Transcode;
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let opts = Options {
        stream_error_on_invalid: first & 1 == 1,
        ..Options::default()
    };
    let answer: &[u8] = match (first >> 1) & 3 {
        0 => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
        1 => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\nte: x\r\n\r\n",
        2 => b"HTTP/1.1 204 No Content\r\n\r\n",
        _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
    };
    let mut s = Server::new(opts);
    let mut out = Vec::new();
    s.start(&mut out);
    let mut wire = crate::h2::frame::PREFACE.to_vec();
    crate::h2::frame::write_settings(&mut wire, &[]);
    wire.extend_from_slice(rest);
    let mut inbuf: Vec<u8> = Vec::new();
    let mut h1: Vec<u8> = Vec::new();
    let mut at = 0;
    let mut step = 1;
    while at < wire.len() {
        let n = (usize::from(wire[at]) % 64 + 1) * step;
        step = if step > 64 { 1 } else { step * 2 };
        let end = (at + n).min(wire.len());
        inbuf.extend_from_slice(&wire[at..end]);
        at = end;
        match s.feed(&inbuf, &mut out) {
            Ok(used) => {
                inbuf.drain(..used.min(inbuf.len()));
            }
            Err(_) => return,
        }
        assert!(inbuf.len() <= 64 * 1024 + 16_393, "wire bytes pile up");
        if s.take_reset() {
            // The client reset the running stream: the driver ends that exchange.
            h1.clear();
        }
        let mut buf = [0u8; 4096];
        loop {
            match s.read_h1(&mut buf, &mut out) {
                Ok(Some(0)) | Ok(None) | Err(_) => break,
                Ok(Some(k)) => h1.extend_from_slice(&buf[..k]),
            }
        }
        // Every head it makes is one the core parses; each gets the canned answer.
        while !h1.is_empty() {
            let mut slots = crate::http::codec::header_slots();
            match crate::http::codec::parse_request(&h1, &mut slots) {
                Ok(Some(_)) => {
                    // The body (if any) goes with the head: the answer does not wait for it.
                    h1.clear();
                    let _ = s.write_h1(answer, &mut out);
                }
                Ok(None) => break,
                Err(e) => panic!("the transcoder made a head the core refuses: {e:?}"),
            }
        }
        out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::inmem::InMem;

    #[test]
    fn the_proxy_target_reaches_the_datadog_tracer() {
        let yaml = datadog_yaml();
        assert!(yaml.contains("envoy.tracers.datadog") && !yaml.contains("tracers.zipkin"));
        let boot = crate::config::load_str(&yaml).expect("loads");
        let traced = boot.listeners.iter().any(|l| {
            l.terminals.iter().any(|t| {
                t.hcm()
                    .and_then(|h| h.tracing.as_deref())
                    .is_some_and(|t| matches!(t.provider, crate::config::Provider::Datadog(_)))
            })
        });
        assert!(traced);
        // A Datadog and a W3C context through the target (bit 1 of the first byte).
        let req =
            b"GET / HTTP/1.1\r\nHost: a\r\nx-datadog-trace-id: 1\r\nx-datadog-parent-id: 2\r\n\
                    traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";
        let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        let mut input = vec![2u8];
        for p in [&req[..], &resp[..]] {
            input.extend_from_slice(&(p.len() as u16).to_be_bytes());
            input.extend_from_slice(p);
        }
        proxy(&input);
    }

    /// The proxy target reaches the fault filter's delay: a request with `x-fault` and
    /// `x-envoy-fault-delay-request` is held (time jumps past it), then served.
    #[test]
    fn the_proxy_target_reaches_a_fault_delay() {
        let Ok(peer) = "127.0.0.1:40000".parse() else {
            panic!("address");
        };
        let mut m = InMem::new(PROXY_YAML, peer).expect("config loads");
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        let req =
            b"GET /d HTTP/1.1\r\nHost: a\r\nx-fault: 1\r\nx-envoy-fault-delay-request: 250\r\n\r\n";
        let (up, client) = m.exchange(req, ok).expect("delayed, then served");
        assert!(up > 0 && client > 0, "{up} {client}");
        let stats = &m.ctx().stats.store;
        assert_eq!(stats.get("http.fuzz.fault.delays_injected"), Some(1));
        assert_eq!(stats.get("http.fuzz.fault.active_faults"), Some(0));
    }

    /// The proxy target reaches ext_authz: `/authz…` is checked (its answer is the exchange's
    /// response bytes), other paths are not.
    #[test]
    fn the_proxy_target_reaches_ext_authz_on_its_route() {
        let Ok(peer) = "127.0.0.1:40000".parse() else {
            panic!("address");
        };
        let mut m = InMem::new(PROXY_YAML, peer).expect("config loads");
        let ok = b"HTTP/1.1 200 OK\r\nx-user: u\r\ncontent-length: 0\r\n\r\n";
        let deny = b"HTTP/1.1 403 F\r\ncontent-length: 2\r\n\r\nno";
        let get = |p: &str| format!("GET {p} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes();
        m.exchange(&get("/authz/a"), ok).expect("allowed");
        m.exchange(&get("/authz/b"), deny).expect("denied");
        m.exchange(&get("/other"), ok).expect("not checked");
        // The gRPC filter: an HTTP/1.1 answer is no gRPC response (an error, 403); HTTP/2
        // frames of an OK call are a CheckResponse.
        m.exchange(&get("/gauthz/a"), ok).expect("refused");
        let mut grpc = Vec::new();
        let mut block = Vec::new();
        let mut head = [
            (&b":status"[..], &b"200"[..]),
            (b"content-type", b"application/grpc"),
        ]
        .into_iter();
        crate::h2::hpack::Encoder::new().encode(&mut head, &mut block);
        crate::h2::frame::write_headers(&mut grpc, 1, &block, false, 16_384);
        // A CheckResponse with an empty status (OK), framed.
        crate::h2::frame::write_data(&mut grpc, 1, &[0, 0, 0, 0, 2, 0x0a, 0], false);
        block.clear();
        let mut trailers = [(&b"grpc-status"[..], &b"0"[..])].into_iter();
        crate::h2::hpack::Encoder::new().encode(&mut trailers, &mut block);
        crate::h2::frame::write_headers(&mut grpc, 1, &block, true, 16_384);
        // Allowed, the request then goes up and gets the same bytes (no HTTP/1.1: a 502).
        let _ = m.exchange(&get("/gauthz/b"), &grpc);
        let stats = &m.ctx().stats.store;
        let n = |c: &str| stats.get(&format!("http.fuzz.ext_authz.{c}"));
        assert_eq!(
            (n("ok"), n("denied"), n("error")),
            (Some(1), Some(1), Some(0))
        );
        assert_eq!((n("g.ok"), n("g.error")), (Some(1), Some(1)));
    }
}
