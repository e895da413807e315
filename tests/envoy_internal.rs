//! Envoy's internal/external request rules against the real binary: which `x-envoy-*` request
//! headers an external client loses, which ones an internal client's request honours
//! (timeouts, retries), `x-envoy-internal`, `x-envoy-external-address`, the edge's own
//! `x-request-id`, `internal_address_config`, and the `upstream_rq_retry*` counters. The
//! loopback addresses make both kinds of client: 127.0.0.1 is internal by Envoy's default
//! rule, 127.0.0.2 is not.

mod admin_util;
mod common;
mod routing_support;

use admin_util::stat;
use common::*;
use routing_support::*;

/// Control headers every test request carries.
const CONTROL: &[&str] = &[
    "x-envoy-upstream-rq-timeout-ms: 1234",
    "x-envoy-retry-on: 5xx",
    "x-envoy-max-retries: 2",
    "x-envoy-force-trace: 1",
    "x-envoy-original-url: http://x/y",
    "x-envoy-decorator-operation: op",
    "x-envoy-internal: false",
    "x-request-id: client-chosen",
];

/// GET `path` from source address `src` with `headers`; the status code.
fn get_from(src: &str, port: u16, path: &str, headers: &[&str]) -> u16 {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut args = vec!["--interface", src, "-o", "/dev/null", "-w", "%{http_code}"];
    for h in headers {
        args.push("-H");
        args.push(h);
    }
    args.push(&url);
    curl_ok(&args).trim().parse().expect("status code")
}

/// `config` with extra HCM lines and an admin listener on `admin`.
fn with_hcm(yaml: String, hcm: &[&str], admin: u16) -> String {
    let mut lines = String::from("stat_prefix: ingress_http\n");
    for l in hcm {
        lines.push_str(&format!("          {l}\n"));
    }
    format!(
        "{}admin:\n  address:\n    socket_address: {{address: 127.0.0.1, port_value: {admin}}}\n",
        yaml.replacen("stat_prefix: ingress_http\n", &lines, 1)
    )
}

/// Baton with one route `/` to cluster `svc` of `ports`, extra HCM lines and an admin
/// listener, LIVE; returns it with the admin port.
fn start(ports: &[u16], routes: &str, hcm: &[&str]) -> (Baton, u16) {
    start_route_config(ports, &single_vhost(routes), hcm)
}

/// `start` with a whole route configuration.
fn start_route_config(ports: &[u16], route_config: &str, hcm: &[&str]) -> (Baton, u16) {
    let admin = free_port();
    let yaml = with_hcm(
        config(free_port(), route_config, &[cluster("svc", ports)]),
        hcm,
        admin,
    );
    let b = Baton::start(&yaml);
    admin_util::wait_live(admin);
    (b, admin)
}

const ROUTE: &str = "  - match: {prefix: /}\n    route: {cluster: svc}\n";

#[test]
fn external_requests_lose_control_headers_internal_ones_keep_their_effect() {
    let up = Upstream::start("up");
    let (b, _) = start(&[up.port()], ROUTE, &["use_remote_address: true"]);

    assert_eq!(get_from("127.0.0.1", b.port, "/in", CONTROL), 200);
    assert_eq!(get_from("127.0.0.2", b.port, "/out", CONTROL), 200);
    let mut per_try = CONTROL.to_vec();
    per_try.push("x-envoy-upstream-rq-per-try-timeout-ms: 700");
    assert_eq!(get_from("127.0.0.1", b.port, "/per-try", &per_try), 200);
    let mut no_per_try = CONTROL.to_vec();
    no_per_try.push("x-envoy-upstream-rq-per-try-timeout-ms: 0");
    assert_eq!(
        get_from("127.0.0.1", b.port, "/no-per-try", &no_per_try),
        200
    );

    let seen = up.seen();
    assert_eq!(seen.len(), 4);
    let (inside, outside, per_try) = (&seen[0], &seen[1], &seen[2]);
    // Internal: marked, its timeout honoured (the upstream is told 1234 ms), the router's
    // control headers consumed, the others passed on, the client's request id kept.
    assert_eq!(inside.header("x-envoy-internal"), Some("true"));
    assert_eq!(
        inside.header("x-envoy-expected-rq-timeout-ms"),
        Some("1234")
    );
    for gone in [
        "x-envoy-upstream-rq-timeout-ms",
        "x-envoy-retry-on",
        "x-envoy-max-retries",
        "x-envoy-external-address",
    ] {
        assert_eq!(inside.header(gone), None, "{gone} reached the upstream");
    }
    assert_eq!(inside.header("x-envoy-force-trace"), Some("1"));
    assert_eq!(inside.header("x-envoy-decorator-operation"), Some("op"));
    assert_eq!(inside.header("x-request-id"), Some("client-chosen"));
    // External at the edge: every control header stripped, the route's own timeout, the
    // client address named, a request id of our own.
    assert_eq!(outside.header("x-envoy-internal"), None);
    assert_eq!(
        outside.header("x-envoy-expected-rq-timeout-ms"),
        Some("15000")
    );
    for gone in [
        "x-envoy-upstream-rq-timeout-ms",
        "x-envoy-retry-on",
        "x-envoy-max-retries",
        "x-envoy-force-trace",
        "x-envoy-original-url",
        "x-envoy-decorator-operation",
    ] {
        assert_eq!(outside.header(gone), None, "{gone} reached the upstream");
    }
    assert_eq!(
        outside.header("x-envoy-external-address"),
        Some("127.0.0.2")
    );
    let id = outside.header("x-request-id").unwrap_or("");
    assert!(
        id.len() == 36 && id != "client-chosen",
        "x-request-id {id:?}"
    );
    // A per-try timeout below the route timeout is what the upstream is told.
    assert_eq!(
        per_try.header("x-envoy-expected-rq-timeout-ms"),
        Some("700")
    );
    assert_eq!(
        per_try.header("x-envoy-upstream-rq-per-try-timeout-ms"),
        None
    );
    // A per-try timeout of 0 is none (Envoy arms that timer only above 0): the route timeout
    // is what the upstream is told, not 0.
    assert_eq!(
        seen[3].header("x-envoy-expected-rq-timeout-ms"),
        Some("1234")
    );
}

#[test]
fn retry_headers_work_only_for_internal_requests_and_are_counted() {
    let bad = Fixed::start(503);
    let (b, admin) = start(&[bad.port], ROUTE, &["use_remote_address: true"]);
    let retry = ["x-envoy-retry-on: 5xx", "x-envoy-max-retries: 2"];
    assert_eq!(get_from("127.0.0.1", b.port, "/", &retry), 503);
    assert_eq!(bad.hits(), 3, "internal: one try and two retries");
    assert_eq!(get_from("127.0.0.2", b.port, "/", &retry), 503);
    assert_eq!(bad.hits(), 4, "external: the retry headers were stripped");
    // Retriable status codes from the header.
    let codes = [
        "x-envoy-retry-on: retriable-status-codes",
        "x-envoy-retriable-status-codes: 418,503",
    ];
    assert_eq!(get_from("127.0.0.1", b.port, "/", &codes), 503);
    assert_eq!(
        bad.hits(),
        6,
        "retriable-status-codes: one retry (default count 1)"
    );
    let c = |n: &str| stat(admin, &format!("cluster.svc.{n}"));
    assert_eq!(c("upstream_rq_retry"), 3);
    assert_eq!(c("upstream_rq_retry_limit_exceeded"), 2);
    assert_eq!(c("upstream_rq_retry_success"), 0);
}

#[test]
fn a_retry_that_succeeds_is_counted_as_such() {
    let bad = Fixed::start(503);
    let good = Upstream::start("good");
    let (b, admin) = start(&[bad.port, good.port()], "  - match: {prefix: /}\n    route:\n      cluster: svc\n      retry_policy: {retry_on: 5xx, num_retries: 1}\n", &[]);
    for _ in 0..4 {
        assert_eq!(fetch(b.port, "h", "/", "").status(), 200);
    }
    let c = |n: &str| stat(admin, &format!("cluster.svc.{n}"));
    let retries = c("upstream_rq_retry");
    assert!(retries >= 1, "no request met the failing host first");
    assert_eq!(retries as u64, bad.hits());
    assert_eq!(c("upstream_rq_retry_success"), retries);
    assert_eq!(c("upstream_rq_retry_limit_exceeded"), 0);
}

#[test]
fn without_use_remote_address_a_single_internal_xff_address_is_internal() {
    let up = Upstream::start("up");
    let (b, _) = start(&[up.port()], ROUTE, &[]);
    let t = "x-envoy-upstream-rq-timeout-ms: 2500";
    let cases: [(&str, Option<&str>, &str); 4] = [
        ("x-forwarded-for: 10.1.2.3", Some("true"), "2500"),
        ("x-forwarded-for: 203.0.113.9", None, "15000"),
        ("x-forwarded-for: 10.1.2.3, 10.0.0.1", None, "15000"),
        // No x-forwarded-for: external even from a loopback peer.
        ("x-nothing: 1", None, "15000"),
    ];
    for (xff, _, _) in &cases {
        assert_eq!(get_from("127.0.0.1", b.port, "/", &[xff, t]), 200);
    }
    let seen = up.seen();
    for (i, (xff, internal, expected)) in cases.iter().enumerate() {
        assert_eq!(seen[i].header("x-envoy-internal"), *internal, "{xff}");
        assert_eq!(
            seen[i].header("x-envoy-expected-rq-timeout-ms"),
            Some(*expected),
            "{xff}"
        );
        // Not an edge request: no external address, the client's XFF passed on unchanged.
        assert_eq!(seen[i].header("x-envoy-external-address"), None);
    }
}

#[test]
fn internal_address_config_replaces_the_default_ranges() {
    let up = Upstream::start("up");
    let (b, _) = start(
        &[up.port()],
        ROUTE,
        &[
            "use_remote_address: true",
            "internal_address_config:",
            "  cidr_ranges: [{address_prefix: 127.0.0.2, prefix_len: 32}]",
        ],
    );
    assert_eq!(get_from("127.0.0.1", b.port, "/", &[]), 200);
    assert_eq!(get_from("127.0.0.2", b.port, "/", &[]), 200);
    let seen = up.seen();
    assert_eq!(seen[0].header("x-envoy-internal"), None);
    assert_eq!(
        seen[0].header("x-envoy-external-address"),
        Some("127.0.0.1")
    );
    assert_eq!(seen[1].header("x-envoy-internal"), Some("true"));
}

#[test]
fn a_bad_cidr_range_is_refused_with_its_path() {
    let yaml = with_hcm(
        config(
            free_port(),
            &single_vhost("  - match: {prefix: /}\n    route: {cluster: svc}\n"),
            &[cluster("svc", &[1])],
        ),
        &[
            "internal_address_config:",
            "  cidr_ranges: [{address_prefix: 10.0.0.0, prefix_len: 33}]",
        ],
        free_port(),
    );
    let dir = std::env::temp_dir().join(format!("baton-cidr-{}.yaml", std::process::id()));
    std::fs::write(&dir, yaml).expect("write config");
    let (st, _, err) = run_baton(
        &["--mode", "validate", "-c", &dir.display().to_string()],
        std::time::Duration::from_secs(20),
    );
    let _ = std::fs::remove_file(&dir);
    assert!(!st.success());
    assert!(
        err.contains("internal_address_config.cidr_ranges[0].prefix_len: 33 out of range"),
        "{err}"
    );
}

#[test]
fn an_internal_request_may_ask_for_204_on_timeout() {
    let hole = BlackHole::start();
    let routes = "  - match: {prefix: /}\n    route: {cluster: svc, timeout: 1s}\n";
    let (b, _) = start(&[hole.port], routes, &["use_remote_address: true"]);
    let alt = [
        "x-envoy-upstream-rq-timeout-ms: 100",
        "x-envoy-upstream-rq-timeout-alt-response: 1",
    ];
    assert_eq!(get_from("127.0.0.1", b.port, "/", &alt), 204);
    assert_eq!(get_from("127.0.0.2", b.port, "/", &alt), 504);
}

#[test]
fn more_than_three_concurrent_retries_overflow() {
    let hole = BlackHole::start();
    let routes = "  - match: {prefix: /}\n    route:\n      cluster: svc\n      timeout: 20s\n      retry_policy: {retry_on: reset, num_retries: 1, per_try_timeout: 2s}\n";
    let (b, admin) = start(&[hole.port], routes, &[]);
    let port = b.port;
    // Six requests at once: each first try times out together; Envoy's default retry circuit
    // breaker lets three of them retry and refuses the others.
    let clients: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(move || fetch(port, "h", "/", "").status()))
        .collect();
    for c in clients {
        assert_eq!(c.join().expect("client"), 504);
    }
    let c = |n: &str| stat(admin, &format!("cluster.svc.{n}"));
    let (retried, overflow) = (c("upstream_rq_retry"), c("upstream_rq_retry_overflow"));
    assert!(
        retried <= 3 && overflow >= 1 && retried + overflow == 6,
        "retries {retried}, overflow {overflow}"
    );
    assert_eq!(c("upstream_rq_retry_limit_exceeded"), retried);
}

#[test]
fn skip_xff_append_preserve_external_request_id_and_via() {
    let up = Upstream::start("up");
    let (b, _) = start(
        &[up.port()],
        ROUTE,
        &[
            "use_remote_address: true",
            "skip_xff_append: true",
            "preserve_external_request_id: true",
            "via: edge-proxy",
        ],
    );
    let client = [
        "x-request-id: client-chosen",
        "x-forwarded-for: 203.0.113.9",
        "via: 1.1 first",
    ];
    assert_eq!(get_from("127.0.0.2", b.port, "/ext", &client), 200);
    let seen = up.seen();
    let r = &seen[0];
    // At the edge, but the client's id is kept and its address is not appended; it is
    // still named in x-envoy-external-address.
    assert_eq!(r.header("x-request-id"), Some("client-chosen"));
    assert_eq!(r.header("x-forwarded-for"), Some("203.0.113.9"));
    assert_eq!(r.header("x-envoy-external-address"), Some("127.0.0.2"));
    let via: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("via"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(via, ["1.1 first", "edge-proxy"]);
    // The answer carries it too, proxied or local.
    let url = format!("http://127.0.0.1:{}/ext", b.port);
    let head = curl_ok(&["-s", "-D", "-", "-o", "/dev/null", &url]);
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nvia: edge-proxy\r\n"),
        "{head}"
    );
    // The connection manager's own replies too (here: a refused path, and a 431).
    let mut c = RawConn::connect(b.port);
    c.send(b"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.expect_response(false);
    assert_eq!((r.status(), r.header("via")), (400, Some("edge-proxy")));
    let many: String = (0..120).map(|i| format!("h{i}: v\r\n")).collect();
    let mut c = RawConn::connect(b.port);
    c.send(format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes());
    let r = c.expect_response(false);
    assert_eq!((r.status(), r.header("via")), (431, Some("edge-proxy")));
}

#[test]
fn a_via_value_that_would_break_the_header_is_refused() {
    let yaml = with_hcm(
        config(free_port(), &single_vhost(ROUTE), &[cluster("svc", &[1])]),
        &["via: \"a\\r\\nx-injected: 1\""],
        free_port(),
    );
    let file = common::baton::log_path("via.yaml");
    std::fs::write(&file, yaml).expect("write config");
    let (st, _, err) = run_baton(
        &["--mode", "validate", "-c", &file.display().to_string()],
        std::time::Duration::from_secs(10),
    );
    assert!(!st.success());
    assert!(
        err.contains("typed_config.via: must not contain CR, LF or NUL"),
        "{err}"
    );
}

#[test]
fn strip_matching_host_port_and_strip_any_host_port() {
    let up = Upstream::start("up");
    let (b, _) = start(&[up.port()], ROUTE, &["strip_matching_host_port: true"]);
    let port = b.port;
    for host in [
        format!("example.com:{port}"),
        "example.com:9999".to_string(),
        format!("[::1]:{port}"),
    ] {
        let h = format!("Host: {host}");
        assert_eq!(get_from("127.0.0.1", port, "/", &[h.as_str()]), 200);
    }
    let hosts: Vec<String> = up
        .seen()
        .iter()
        .map(|r| r.header("host").unwrap_or_default().to_string())
        .collect();
    assert_eq!(hosts, ["example.com", "example.com:9999", "[::1]"]);
    drop(b);
    let up = Upstream::start("up");
    let (b, _) = start(&[up.port()], ROUTE, &["strip_any_host_port: true"]);
    assert_eq!(
        get_from("127.0.0.1", b.port, "/", &["Host: example.com:9999"]),
        200
    );
    assert_eq!(up.seen()[0].header("host"), Some("example.com"));
}

/// `forward_client_cert_details` over plaintext: by default (SANITIZE) and with FORWARD_ONLY
/// (no client certificate here) a client's `x-forwarded-client-cert` never reaches the
/// upstream; ALWAYS_FORWARD_ONLY passes it on as sent.
#[test]
fn a_clients_forwarded_client_cert_is_dropped_unless_configured_otherwise() {
    let xfcc = "x-forwarded-client-cert: By=spiffe://spoof;Hash=00;Subject=\"CN=admin\"";
    for (line, kept) in [
        ("", false),
        ("forward_client_cert_details: FORWARD_ONLY", false),
        ("forward_client_cert_details: ALWAYS_FORWARD_ONLY", true),
    ] {
        let up = Upstream::start("up");
        let hcm: Vec<&str> = [line].into_iter().filter(|l| !l.is_empty()).collect();
        let (b, _) = start(&[up.port()], ROUTE, &hcm);
        assert_eq!(get_from("127.0.0.1", b.port, "/", &[xfcc]), 200);
        let seen = up.seen();
        let got = seen[0].header("x-forwarded-client-cert");
        assert_eq!(got.is_some(), kept, "{line:?}: {got:?}");
        if kept {
            assert_eq!(got, xfcc.split_once(": ").map(|(_, v)| v));
        }
    }
}

#[test]
fn forward_client_cert_details_that_write_certificate_details_are_refused() {
    for mode in ["APPEND_FORWARD", "SANITIZE_SET"] {
        let yaml = with_hcm(
            config(free_port(), &single_vhost(ROUTE), &[cluster("svc", &[1])]),
            &[&format!("forward_client_cert_details: {mode}")],
            free_port(),
        );
        let (status, _, err) =
            run_baton(&["--mode", "validate", "--config-yaml", &yaml], IO_TIMEOUT);
        assert!(!status.success(), "{mode} must be refused");
        assert!(
            err.contains("typed_config.forward_client_cert_details"),
            "{mode}: {err}"
        );
    }
}

/// The status, `location` and body of a GET from `src` with extra header lines.
fn answer_from(src: &str, port: u16, host: &str, path: &str, headers: &[&str]) -> String {
    let url = format!("http://127.0.0.1:{port}{path}");
    let host = format!("host: {host}");
    let mut args = vec!["--interface", src, "-s", "-H", &host];
    for h in headers {
        args.push("-H");
        args.push(h);
    }
    args.extend_from_slice(&["-w", " %{http_code} %{redirect_url}", &url]);
    curl_ok(&args).trim().to_string()
}

/// A virtual host's `require_tls`: a request that did not come over TLS — by its
/// `x-forwarded-proto` as the connection manager leaves it — is redirected (301, empty body)
/// to `https://` + Host + path before routing; EXTERNAL_ONLY spares internal requests.
#[test]
fn require_tls_redirects_plaintext_requests_to_https() {
    let up = Upstream::start("up");
    let vhost = |need: &str| {
        format!(
            "name: rc\nvirtual_hosts:\n- name: vh\n  domains: ['*']\n  require_tls: {need}\n  routes:\n{ROUTE}"
        )
    };
    let serve = |need: &str, hcm: &[&str]| {
        let admin = free_port();
        let yaml = with_hcm(
            config(free_port(), &vhost(need), &[cluster("svc", &[up.port()])]),
            hcm,
            admin,
        );
        let b = Baton::start(&yaml);
        admin_util::wait_live(admin);
        b
    };
    let greeting = up.greeting();
    // ALL, the client's x-forwarded-proto trusted (no use_remote_address).
    let b = serve("ALL", &[]);
    assert_eq!(
        answer_from("127.0.0.1", b.port, "shop.test:8080", "/a/b?c=1", &[]),
        "301 https://shop.test:8080/a/b?c=1"
    );
    assert_eq!(
        answer_from(
            "127.0.0.1",
            b.port,
            "shop.test",
            "/",
            &["x-forwarded-proto: https"]
        ),
        format!("{greeting} 200")
    );
    // At the edge the client's claim is replaced by the connection's scheme.
    let b = serve("ALL", &["use_remote_address: true"]);
    assert_eq!(
        answer_from(
            "127.0.0.1",
            b.port,
            "shop.test",
            "/x",
            &["x-forwarded-proto: https"]
        ),
        "301 https://shop.test/x"
    );
    // EXTERNAL_ONLY: 127.0.0.1 is internal, 127.0.0.2 is not.
    let b = serve("EXTERNAL_ONLY", &["use_remote_address: true"]);
    assert_eq!(
        answer_from("127.0.0.1", b.port, "shop.test", "/", &[]),
        format!("{greeting} 200")
    );
    assert_eq!(
        answer_from("127.0.0.2", b.port, "shop.test", "/", &[]),
        "301 https://shop.test/"
    );
    assert_eq!(
        up.requests(),
        2,
        "redirected requests never reach the upstream"
    );
}

/// `add_user_agent`: the upstream learns this proxy's service cluster and node
/// (`--service-cluster`, `--service-node`); a client's user-agent is kept, a missing one is
/// the service cluster; a caller's own cluster header is replaced. Off by default.
#[test]
fn add_user_agent_names_the_service_cluster_and_node_upstream() {
    for on in [true, false] {
        let up = Upstream::start("up");
        let admin = free_port();
        let hcm: &[&str] = if on { &["add_user_agent: true"] } else { &[] };
        let yaml = with_hcm(
            config(
                free_port(),
                &single_vhost(ROUTE),
                &[cluster("svc", &[up.port()])],
            ),
            hcm,
            admin,
        );
        let b = Baton::start_args(
            &yaml,
            &["--service-cluster", "front", "--service-node", "n1"],
        );
        admin_util::wait_live(admin);
        assert_eq!(get_from("127.0.0.1", b.port, "/", &["User-Agent:"]), 200);
        let client = [
            "User-Agent: mine",
            "x-envoy-downstream-service-cluster: spoof",
        ];
        assert_eq!(get_from("127.0.0.1", b.port, "/", &client), 200);
        let seen = up.seen();
        let (bare, named) = (&seen[0], &seen[1]);
        let header =
            |r: &baton_bench::origin::SeenRequest, n: &str| r.header(n).map(str::to_string);
        if on {
            assert_eq!(header(bare, "user-agent").as_deref(), Some("front"));
            assert_eq!(header(named, "user-agent").as_deref(), Some("mine"));
            for r in [bare, named] {
                assert_eq!(
                    header(r, "x-envoy-downstream-service-cluster").as_deref(),
                    Some("front")
                );
                assert_eq!(
                    header(r, "x-envoy-downstream-service-node").as_deref(),
                    Some("n1")
                );
            }
        } else {
            assert_eq!(header(bare, "user-agent"), None);
            assert_eq!(header(bare, "x-envoy-downstream-service-node"), None);
            // An internal caller's header passes as sent.
            assert_eq!(
                header(named, "x-envoy-downstream-service-cluster").as_deref(),
                Some("spoof")
            );
        }
    }
}

/// A request `require_tls` redirects never reaches its route's filter configs (Envoy's
/// SSL-redirect route has none): a plaintext CORS preflight gets the 301, not a CORS answer.
#[test]
fn require_tls_redirects_a_cors_preflight_before_the_filters_see_the_route() {
    let up = Upstream::start("up");
    let rc = format!(
        "name: rc\nvirtual_hosts:\n- name: vh\n  domains: ['*']\n  require_tls: ALL\n  typed_per_filter_config:\n    envoy.filters.http.cors:\n      \"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy\n      allow_origin_string_match: [{{exact: \"https://app.test\"}}]\n      allow_methods: POST\n  routes:\n{ROUTE}"
    );
    let yaml = config(free_port(), &rc, &[cluster("svc", &[up.port()])]).replacen(
        "          - name: envoy.filters.http.router\n",
        "          - name: envoy.filters.http.cors\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}\n          - name: envoy.filters.http.router\n",
        1,
    );
    assert!(yaml.contains("envoy.filters.http.cors\n"));
    let b = Baton::start(&yaml);
    let url = format!("http://127.0.0.1:{}/x", b.port);
    let out = curl_ok(&[
        "-s",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-X",
        "OPTIONS",
        "-H",
        "Host: shop.test",
        "-H",
        "Origin: https://app.test",
        "-H",
        "Access-Control-Request-Method: POST",
        &url,
    ])
    .to_ascii_lowercase();
    assert!(out.starts_with("http/1.1 301"), "{out}");
    assert!(out.contains("location: https://shop.test/x\r\n"), "{out}");
    assert!(!out.contains("access-control-allow-origin"), "{out}");
    assert_eq!(up.requests(), 0);
}

/// `scheme_header_transformation.scheme_to_overwrite`: every request's scheme is the
/// configured one, as Envoy's connection manager sets `:scheme` and `x-forwarded-proto`: the
/// upstream sees it whatever the client claimed, `require_tls` takes a plaintext request
/// overwritten to `https` as secure, and the access log's `:scheme` and
/// `x-forwarded-proto` say it. Values other than http/https are refused.
#[test]
fn scheme_to_overwrite_is_every_requests_scheme() {
    let up = Upstream::start("up");
    let greeting = up.greeting();
    let vhost = format!(
        "name: rc\nvirtual_hosts:\n- name: vh\n  domains: ['*']\n  require_tls: ALL\n  routes:\n{ROUTE}"
    );
    let log = common::baton::log_path("scheme-overwrite.log");
    let _ = std::fs::remove_file(&log);
    let logger = common::yaml::file_access_log(
        &log.display().to_string(),
        "%REQ(:SCHEME)% %REQ(X-FORWARDED-PROTO)%\\n",
    );
    let (b, _) = start_route_config(
        &[up.port()],
        &vhost,
        &[
            "scheme_header_transformation: {scheme_to_overwrite: https}",
            logger.trim_start(),
        ],
    );
    // Plain HTTP, the client claiming http: still https, so require_tls lets it through.
    assert_eq!(
        answer_from(
            "127.0.0.1",
            b.port,
            "shop.test",
            "/a",
            &["x-forwarded-proto: http"]
        ),
        format!("{greeting} 200")
    );
    assert_eq!(
        answer_from("127.0.0.1", b.port, "shop.test", "/b", &[]),
        format!("{greeting} 200")
    );
    let seen = up.seen();
    let protos: Vec<_> = seen.iter().map(|r| r.header("x-forwarded-proto")).collect();
    assert_eq!(protos, [Some("https"), Some("https")]);
    let lines = log_lines(&log.display().to_string(), 2);
    assert_eq!(lines, ["https https", "https https"]);
    drop(b);

    // `http` overwrites a client's https claim the same way (and require_tls redirects).
    let (b, _) = start_route_config(
        &[up.port()],
        &vhost,
        &["scheme_header_transformation: {scheme_to_overwrite: http}"],
    );
    assert_eq!(
        answer_from(
            "127.0.0.1",
            b.port,
            "shop.test",
            "/c",
            &["x-forwarded-proto: https"]
        ),
        "301 https://shop.test/c"
    );
    drop(b);

    // Without it, a trusted x-forwarded-proto of http or https is the request's `:scheme`
    // (Envoy's connection manager sets `:scheme` from it); at the edge it is replaced first.
    let scheme_routes = "name: rc\nvirtual_hosts:\n- name: vh\n  domains: ['*']\n  routes:\n  - match: {prefix: /, headers: [{name: ':scheme', string_match: {exact: https}}]}\n    route: {cluster: svc}\n  - match: {prefix: /}\n    direct_response: {status: 418}\n";
    for (hcm, claim, want) in [
        (&[][..], Some("x-forwarded-proto: https"), 200),
        (&[][..], Some("x-forwarded-proto: HTTPS"), 200),
        (&[][..], Some("x-forwarded-proto: http"), 418),
        (&[][..], None, 418),
        (
            &["use_remote_address: true"][..],
            Some("x-forwarded-proto: https"),
            418,
        ),
    ] {
        let (b, _) = start_route_config(&[up.port()], scheme_routes, hcm);
        let headers: Vec<&str> = claim.into_iter().collect();
        assert_eq!(
            get_from("127.0.0.1", b.port, "/s", &headers),
            want,
            "{hcm:?} {claim:?}"
        );
    }

    // Only http and https may overwrite; match_upstream is accepted (baton's HTTP/2 client
    // always sends the upstream transport's scheme, which is what it asks for).
    for (field, refusal) in [
        (
            "{scheme_to_overwrite: ftp}",
            Some("scheme_header_transformation.scheme_to_overwrite: \"ftp\" is not a valid value"),
        ),
        ("{match_upstream: true}", None),
    ] {
        let yaml = with_hcm(
            config(free_port(), &single_vhost(ROUTE), &[cluster("svc", &[1])]),
            &[&format!("scheme_header_transformation: {field}")],
            free_port(),
        );
        let file = common::baton::log_path("scheme-bad.yaml");
        std::fs::write(&file, yaml).expect("write config");
        let (st, _, err) = run_baton(
            &["--mode", "validate", "-c", &file.display().to_string()],
            std::time::Duration::from_secs(10),
        );
        match refusal {
            Some(message) => {
                assert!(!st.success(), "{field} accepted");
                assert!(err.contains(message), "{err}");
            }
            None => assert!(st.success(), "{field}: {err}"),
        }
    }
}
