//! The HTTP filter chain before the router, with curl against the real binary: Envoy's CORS
//! filter (preflights answered or forwarded, the allow-origin headers on actual requests,
//! per-route policies over the virtual host's) and CSRF filter (403 `Invalid origin`), and
//! `typed_per_filter_config` enabling and disabling filters per route.

mod admin_util;
mod common;

use admin_util::{stat, wait_live};
use common::*;

const POLICY: &str = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy";
const CSRF: &str = "type.googleapis.com/envoy.extensions.filters.http.csrf.v3.CsrfPolicy";
const FILTER_CONFIG: &str = "type.googleapis.com/envoy.config.route.v3.FilterConfig";

/// The cluster `backend` at `upstream`, and the admin listener.
fn tail(upstream: u16, admin: u16) -> String {
    format!(
        r#"  clusters:
  - name: backend
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream}}}}}}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
"#
    )
}

fn yaml(listen: u16, admin: u16, upstream: u16) -> String {
    let head = common::yaml::listener_head("127.0.0.1", listen);
    let tail = tail(upstream, admin);
    format!(
        r#"{head}          route_config:
            virtual_hosts:
            - name: plain
              domains: ["plain.test"]
              routes:
              - {{match: {{prefix: "/"}}, route: {{cluster: backend}}}}
            - name: shop
              domains: ["shop.partner.test"]
              typed_per_filter_config:
                csrf:
                  "@type": {CSRF}
                  filter_enabled: {{default_value: {{numerator: 100}}}}
                  additional_origins: [{{exact: "partner.test"}}]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  csrf: {{"@type": {FILTER_CONFIG}}}
            - name: www
              domains: ["*"]
              typed_per_filter_config:
                my-cors:
                  "@type": {POLICY}
                  allow_origin_string_match: [{{exact: "https://app.test"}}, {{suffix: ".friends.test", ignore_case: true}}]
                  allow_methods: "GET,POST"
                  allow_headers: "content-type,x-custom"
                  expose_headers: "x-exposed"
                  max_age: "600"
                  allow_credentials: true
                  allow_private_network_access: true
              routes:
              - match: {{prefix: "/regex"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  my-cors:
                    "@type": {POLICY}
                    allow_origin_string_match: [{{safe_regex: {{regex: "https://[a-z]+\\.regex\\.test"}}}}]
                    allow_methods: "*"
                    allow_headers: "*"
                    allow_credentials: false
              - match: {{prefix: "/strict"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  my-cors: {{"@type": {POLICY}, forward_not_matching_preflights: false}}
              - match: {{prefix: "/off"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  my-cors:
                    "@type": {POLICY}
                    filter_enabled: {{default_value: {{numerator: 1, denominator: MILLION}}, runtime_key: cors.off}}
              - match: {{prefix: "/shadow"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  my-cors:
                    "@type": {POLICY}
                    filter_enabled: {{default_value: {{numerator: 0, denominator: TEN_THOUSAND}}}}
                    shadow_enabled: {{default_value: {{numerator: 100, denominator: HUNDRED}}}}
              - match: {{prefix: "/nocors"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  my-cors: {{"@type": {FILTER_CONFIG}, disabled: true}}
              - match: {{prefix: "/csrf-on"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  csrf: {{"@type": {FILTER_CONFIG}}}
              - match: {{prefix: "/csrf-partner"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  csrf:
                    "@type": {FILTER_CONFIG}
                    config:
                      "@type": {CSRF}
                      filter_enabled: {{default_value: {{numerator: 100}}}}
                      additional_origins: [{{exact: "partner.test"}}]
              - match: {{prefix: "/csrf-shadow"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  csrf:
                    "@type": {CSRF}
                    filter_enabled: {{default_value: {{numerator: 0}}}}
                    shadow_enabled: {{default_value: {{numerator: 100}}}}
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
          http_filters:
          - name: my-cors
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}}
          - name: csrf
            disabled: true
            typed_config:
              "@type": {CSRF}
              filter_enabled: {{default_value: {{numerator: 10000, denominator: TEN_THOUSAND}}}}
          - name: envoy.filters.http.router
{tail}"#
    )
}

struct Setup {
    _baton: Baton,
    up: Upstream,
    listen: u16,
    admin: u16,
}

fn start() -> Setup {
    let up = Upstream::start("up1");
    let (listen, admin) = (free_port(), free_port());
    let baton = Baton::start(&yaml(listen, admin, up.port()));
    wait_live(admin);
    Setup {
        _baton: baton,
        up,
        listen,
        admin,
    }
}

/// One answer as curl saw it.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `access-control-*` headers, sorted.
    fn cors(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .headers
            .iter()
            .filter(|(n, _)| n.starts_with("access-control-"))
            .cloned()
            .collect();
        v.sort();
        v
    }
}

/// `method path` with `headers` (`Name: value`) through curl.
fn send(port: u16, method: &str, path: &str, headers: &[&str]) -> Answer {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut args = vec!["-i", "-X", method, url.as_str()];
    for h in headers {
        args.push("-H");
        args.push(h);
    }
    if matches!(method, "POST" | "PUT" | "DELETE" | "PATCH") {
        args.extend(["--data-binary", "x"]);
    }
    let out = curl_ok(&args);
    let (head, body) = out.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = list
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    v.sort();
    v
}

const PREFLIGHT: &[&str] = &[
    "Origin: https://app.test",
    "Access-Control-Request-Method: POST",
];

#[test]
fn cors_preflights_are_answered_here_or_forwarded() {
    let s = start();
    // Allowed: answered here from the virtual host's policy; the upstream never sees it.
    let a = send(
        s.listen,
        "OPTIONS",
        "/api",
        &[PREFLIGHT, &["Access-Control-Request-Private-Network: true"]].concat(),
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.body, "");
    assert_eq!(
        a.cors(),
        pairs(&[
            ("access-control-allow-origin", "https://app.test"),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "GET,POST"),
            ("access-control-allow-headers", "content-type,x-custom"),
            ("access-control-max-age", "600"),
            ("access-control-allow-private-network", "true"),
            ("access-control-expose-headers", "x-exposed"),
        ])
    );
    assert_eq!(s.up.requests(), 0);
    // A suffix matcher with ignore_case.
    let a = send(
        s.listen,
        "OPTIONS",
        "/api",
        &[
            "Origin: https://A.FRIENDS.test",
            "Access-Control-Request-Method: GET",
        ],
    );
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://A.FRIENDS.test")
    );
    // Not allowed: forwarded to the upstream, which answers without CORS headers.
    let a = send(
        s.listen,
        "OPTIONS",
        "/api",
        &[
            "Origin: https://evil.test",
            "Access-Control-Request-Method: POST",
        ],
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.body, s.up.greeting());
    assert_eq!(a.cors(), vec![]);
    assert_eq!(s.up.requests(), 1);
    // forward_not_matching_preflights: false answers it here, without allow-origin; the rest
    // of the route's policy comes from the virtual host's.
    let a = send(
        s.listen,
        "OPTIONS",
        "/strict",
        &[
            "Origin: https://evil.test",
            "Access-Control-Request-Method: POST",
        ],
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.header("access-control-allow-origin"), None);
    assert_eq!(a.header("access-control-allow-methods"), Some("GET,POST"));
    assert_eq!(a.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(s.up.requests(), 1);
    // An OPTIONS without Access-Control-Request-Method is no preflight.
    let a = send(s.listen, "OPTIONS", "/api", &["Origin: https://app.test"]);
    assert_eq!(a.body, s.up.greeting());
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://app.test")
    );
    assert_eq!(s.up.requests(), 2);
    assert_eq!(stat(s.admin, "http.ingress_http.cors.origin_valid"), 3);
    assert_eq!(stat(s.admin, "http.ingress_http.cors.origin_invalid"), 2);
}

#[test]
fn cors_actual_requests_get_allow_origin_credentials_and_exposed_headers() {
    let s = start();
    let a = send(s.listen, "GET", "/api", &["Origin: https://app.test"]);
    assert_eq!(a.status, 200);
    assert_eq!(a.body, s.up.greeting());
    assert_eq!(
        a.cors(),
        pairs(&[
            ("access-control-allow-origin", "https://app.test"),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-exposed"),
        ])
    );
    let a = send(
        s.listen,
        "POST",
        "/status/201",
        &["Origin: https://evil.test"],
    );
    assert_eq!(a.status, 201);
    assert_eq!(a.cors(), vec![]);
    // No Origin: not a CORS request.
    let a = send(s.listen, "GET", "/api", &[]);
    assert_eq!(a.cors(), vec![]);
    assert_eq!(s.up.requests(), 3);
}

#[test]
fn cors_route_policies_override_the_virtual_host_and_regex_origins_match() {
    let s = start();
    // The route's regex replaces the virtual host's origins; `*` echoes what was asked;
    // allow_credentials false on the route wins over the virtual host's true.
    let a = send(
        s.listen,
        "OPTIONS",
        "/regex",
        &[
            "Origin: https://abc.regex.test",
            "Access-Control-Request-Method: PUT",
            "Access-Control-Request-Headers: x-one",
        ],
    );
    assert_eq!(a.status, 200);
    assert_eq!(
        a.cors(),
        pairs(&[
            ("access-control-allow-origin", "https://abc.regex.test"),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", "x-one"),
            ("access-control-max-age", "600"),
            ("access-control-expose-headers", "x-exposed"),
        ])
    );
    // The virtual host's exact origin no longer applies on that route.
    let a = send(s.listen, "GET", "/regex", &["Origin: https://app.test"]);
    assert_eq!(a.cors(), vec![]);
    // filter_enabled (1 in a million) off: forwarded untouched.
    for _ in 0..5 {
        let a = send(s.listen, "OPTIONS", "/off", PREFLIGHT);
        assert_eq!(a.body, s.up.greeting());
        assert_eq!(a.cors(), vec![]);
    }
    // Shadow mode: origins are counted, nothing is enforced or added.
    let before = stat(s.admin, "http.ingress_http.cors.origin_valid");
    let a = send(s.listen, "OPTIONS", "/shadow", PREFLIGHT);
    assert_eq!(a.body, s.up.greeting());
    assert_eq!(a.cors(), vec![]);
    assert_eq!(
        stat(s.admin, "http.ingress_http.cors.origin_valid"),
        before + 1
    );
    // A FilterConfig with `disabled: true` turns the filter off on its route.
    let a = send(s.listen, "OPTIONS", "/nocors", PREFLIGHT);
    assert_eq!(a.body, s.up.greeting());
    assert_eq!(a.cors(), vec![]);
}

#[test]
fn a_cors_filter_without_a_policy_passes_requests_through() {
    let s = start();
    let a = send(
        s.listen,
        "OPTIONS",
        "/api",
        &[PREFLIGHT, &["Host: plain.test"]].concat(),
    );
    assert_eq!(a.status, 200);
    assert_eq!(a.body, s.up.greeting());
    assert_eq!(a.cors(), vec![]);
    assert_eq!(s.up.requests(), 1);
    assert_eq!(stat(s.admin, "http.ingress_http.cors.origin_valid"), 0);
}

#[test]
fn csrf_refuses_a_foreign_origin_on_mutating_methods_where_enabled() {
    let s = start();
    // The filter is disabled in the chain: nothing is checked where no route enables it.
    let a = send(s.listen, "POST", "/api", &["Origin: https://evil.test"]);
    assert_eq!(a.status, 200);
    // Enabled by a FilterConfig without a config: the filter's own policy applies.
    let a = send(s.listen, "POST", "/csrf-on", &["Origin: https://evil.test"]);
    assert_eq!(a.status, 403);
    assert_eq!(a.body, "Invalid origin");
    let a = send(s.listen, "DELETE", "/csrf-on", &[]);
    assert_eq!(a.status, 403, "no source origin");
    let a = send(
        s.listen,
        "PUT",
        "/csrf-on",
        &["Host: shop.test", "Origin: http://shop.test"],
    );
    assert_eq!(a.status, 200, "same origin");
    let a = send(
        s.listen,
        "PATCH",
        "/csrf-on",
        &["Host: shop.test", "Referer: https://shop.test/cart?x=1"],
    );
    assert_eq!(a.status, 200, "the Referer stands in for a missing Origin");
    let a = send(s.listen, "GET", "/csrf-on", &["Origin: https://evil.test"]);
    assert_eq!(a.status, 200, "GET is not checked");
    // A route's policy with additional origins.
    let a = send(
        s.listen,
        "POST",
        "/csrf-partner",
        &["Origin: https://partner.test"],
    );
    assert_eq!(a.status, 200);
    let a = send(
        s.listen,
        "POST",
        "/csrf-partner",
        &["Origin: https://other.test"],
    );
    assert_eq!(a.status, 403);
    // Shadow mode counts and lets through.
    let a = send(
        s.listen,
        "POST",
        "/csrf-shadow",
        &["Origin: https://evil.test"],
    );
    assert_eq!(a.status, 200);
    assert_eq!(
        stat(s.admin, "http.ingress_http.csrf.missing_source_origin"),
        1
    );
    assert_eq!(stat(s.admin, "http.ingress_http.csrf.request_invalid"), 4);
    assert_eq!(stat(s.admin, "http.ingress_http.csrf.request_valid"), 3);
    // A route's FilterConfig without a config enables the filter; the policy is its virtual
    // host's, the most specific one there is.
    let shop = |origin: &str| {
        send(
            s.listen,
            "POST",
            "/x",
            &["Host: shop.partner.test", &format!("Origin: {origin}")],
        )
        .status
    };
    assert_eq!(shop("https://partner.test"), 200);
    assert_eq!(shop("https://evil.test"), 403);
    // The CORS filter before it still marks the refusal of an allowed origin.
    let a = send(s.listen, "POST", "/csrf-on", &["Origin: https://app.test"]);
    assert_eq!(a.status, 403);
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://app.test")
    );
}

/// The legacy `cors` fields of a virtual host and a route (Envoy reads them when no
/// `typed_per_filter_config` policy applies).
#[test]
fn legacy_cors_fields_apply_when_no_per_filter_policy_does() {
    let up = Upstream::start("up1");
    let (listen, admin) = (free_port(), free_port());
    let head = common::yaml::listener_head("127.0.0.1", listen);
    let tail = tail(up.port(), admin);
    let yaml = format!(
        r#"{head}          route_config:
            virtual_hosts:
            - name: typed
              domains: ["typed.test"]
              cors: {{allow_origin_string_match: [{{exact: "https://legacy.test"}}]}}
              typed_per_filter_config:
                envoy.filters.http.cors: {{"@type": {POLICY}, allow_origin_string_match: [{{exact: "https://typed.test"}}]}}
              routes:
              - {{match: {{prefix: "/"}}, route: {{cluster: backend}}}}
            - name: legacy
              domains: ["*"]
              cors:
                allow_origin_string_match: [{{exact: "https://legacy.test"}}]
                allow_methods: GET
              routes:
              - match: {{prefix: "/put"}}
                route: {{cluster: backend, cors: {{allow_methods: PUT}}}}
              - {{match: {{prefix: "/"}}, route: {{cluster: backend}}}}
          http_filters:
          - name: envoy.filters.http.cors
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}}
          - name: envoy.filters.http.router
{tail}"#
    );
    let _b = Baton::start(&yaml);
    wait_live(admin);
    let pre = |path: &str, host: &str, origin: &str| {
        send(
            listen,
            "OPTIONS",
            path,
            &[
                &format!("Host: {host}"),
                &format!("Origin: {origin}"),
                "Access-Control-Request-Method: GET",
            ],
        )
    };
    let a = pre("/", "x.test", "https://legacy.test");
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://legacy.test")
    );
    assert_eq!(a.header("access-control-allow-methods"), Some("GET"));
    // The route's own legacy policy over its virtual host's, field by field.
    let a = pre("/put", "x.test", "https://legacy.test");
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://legacy.test")
    );
    assert_eq!(a.header("access-control-allow-methods"), Some("PUT"));
    assert_eq!(up.requests(), 0);
    // A typed policy hides the legacy one.
    let a = pre("/", "typed.test", "https://typed.test");
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("https://typed.test")
    );
    let a = pre("/", "typed.test", "https://legacy.test");
    assert_eq!(a.cors(), vec![]);
    assert_eq!(a.body, up.greeting());
}

const RL: &str =
    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";

fn rate_limited_yaml(listen: u16, admin: u16, upstream: u16) -> String {
    let head = common::yaml::listener_head("127.0.0.1", listen);
    let tail = tail(upstream, admin);
    format!(
        r#"{head}          route_config:
            virtual_hosts:
            - name: www
              domains: ["*"]
              routes:
              - match: {{prefix: "/report"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  rl:
                    "@type": {RL}
                    stat_prefix: rl_report
                    token_bucket: {{max_tokens: 1, fill_interval: 3600s}}
                    filter_enabled: {{default_value: {{numerator: 100}}}}
                    request_headers_to_add_when_not_enforced:
                    - header: {{key: x-rl-not-enforced, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}}
              - match: {{prefix: "/unavailable"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  rl:
                    "@type": {RL}
                    stat_prefix: rl_route
                    status: {{code: ServiceUnavailable}}
                    token_bucket: {{max_tokens: 1, fill_interval: 3600s}}
                    filter_enabled: {{default_value: {{numerator: 100}}}}
                    filter_enforced: {{default_value: {{numerator: 100}}}}
              - match: {{prefix: "/refill"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  rl:
                    "@type": {RL}
                    stat_prefix: rl_refill
                    token_bucket: {{max_tokens: 2, tokens_per_fill: 2, fill_interval: 1s}}
                    filter_enabled: {{default_value: {{numerator: 100}}}}
                    filter_enforced: {{default_value: {{numerator: 100}}}}
              - match: {{prefix: "/off"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  rl: {{"@type": {FILTER_CONFIG}, disabled: true}}
              - {{match: {{prefix: "/"}}, route: {{cluster: backend}}}}
          http_filters:
          - name: rl
            typed_config:
              "@type": {RL}
              stat_prefix: rl_filter
              token_bucket: {{max_tokens: 2, tokens_per_fill: 2, fill_interval: 3600s}}
              filter_enabled: {{default_value: {{numerator: 100}}}}
              filter_enforced: {{default_value: {{numerator: 100}}}}
              response_headers_to_add:
              - append_action: OVERWRITE_IF_EXISTS_OR_ADD
                header: {{key: x-local-rate-limit, value: "true"}}
              local_rate_limit_per_downstream_connection: false
          - name: envoy.filters.http.router
{tail}"#
    )
}

#[test]
fn local_rate_limits_refuse_past_the_bucket_with_429_and_count() {
    let up = Upstream::start("up1");
    let (listen, admin) = (free_port(), free_port());
    let _b = Baton::start(&rate_limited_yaml(listen, admin, up.port()));
    wait_live(admin);
    // The filter's own bucket: two tokens, then 429 with Envoy's body and the configured
    // header (no x-envoy-ratelimited: Envoy's local filter does not set it).
    for _ in 0..2 {
        assert_eq!(send(listen, "GET", "/", &[]).status, 200);
    }
    let a = send(listen, "GET", "/", &[]);
    assert_eq!(a.status, 429);
    assert_eq!(a.body, "local_rate_limited");
    assert_eq!(a.header("x-local-rate-limit"), Some("true"));
    assert_eq!(a.header("x-envoy-ratelimited"), None);
    assert_eq!(up.requests(), 2);
    let s = |n: &str| stat(admin, &format!("rl_filter.http_local_rate_limit.{n}"));
    assert_eq!(
        (s("enabled"), s("ok"), s("rate_limited"), s("enforced")),
        (3, 2, 1, 1)
    );
    // A route's own bucket and status.
    assert_eq!(send(listen, "GET", "/unavailable", &[]).status, 200);
    let a = send(listen, "GET", "/unavailable", &[]);
    assert_eq!(a.status, 503);
    assert_eq!(a.body, "local_rate_limited");
    assert_eq!(a.header("x-local-rate-limit"), None);
    // Not enforced: let through, marked for the upstream, counted.
    assert_eq!(send(listen, "GET", "/report", &[]).status, 200);
    assert_eq!(send(listen, "GET", "/report", &[]).status, 200);
    let seen = up.seen();
    let marked: Vec<_> = seen
        .iter()
        .filter(|r| r.target == "/report")
        .map(|r| {
            r.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("x-rl-not-enforced"))
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(marked, [None, Some("127.0.0.1".to_string())]);
    let r = |n: &str| stat(admin, &format!("rl_report.http_local_rate_limit.{n}"));
    assert_eq!((r("rate_limited"), r("enforced")), (1, 0));
    // A FilterConfig disabling the filter on its route.
    for _ in 0..5 {
        assert_eq!(send(listen, "GET", "/off", &[]).status, 200);
    }
}

#[test]
fn a_local_rate_limit_bucket_refills_by_tokens_per_fill_each_interval() {
    let up = Upstream::start("up1");
    let (listen, admin) = (free_port(), free_port());
    let _b = Baton::start(&rate_limited_yaml(listen, admin, up.port()));
    wait_live(admin);
    let get = || send(listen, "GET", "/refill", &[]).status;
    // Two tokens: a 429 comes within a few requests (a fill in between only delays it).
    assert!((0..20).any(|_| get() == 429), "never limited");
    // At least one whole interval later the bucket holds tokens_per_fill (2) again.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!([get(), get()], [200, 200]);
    assert!(stat(admin, "rl_refill.http_local_rate_limit.rate_limited") >= 1);
}
