//! Envoy's RBAC filter (`envoy.filters.http.rbac`) through the real binary and raw requests:
//! DENY and ALLOW policy sets over headers, paths, ports and client addresses (the direct
//! peer and the XFF client), shadow rules only counted, per-route `RBACPerRoute` replacing
//! the filter's rules or (empty) turning them off, 403 `RBAC: access denied` with Envoy's
//! `%RESPONSE_CODE_DETAILS%` and stats; over TLS, principals by client certificate.

mod admin_util;
mod common;
#[cfg(feature = "tls")]
mod tls_support;

use admin_util::{stat, wait_live};
use common::*;

const RBAC: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
const PER_ROUTE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute";

fn yaml(listen: u16, admin: u16, upstream: u16, log: &str) -> String {
    let head = common::yaml::listener_head("127.0.0.1", listen);
    let tail = common::yaml::router_backend_admin(upstream, admin);
    let access_log = common::yaml::file_access_log(
        log,
        "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS%\\n",
    );
    format!(
        r#"{head}{access_log}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/open"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  authz: {{"@type": {PER_ROUTE}}}
              - match: {{prefix: "/admin-only"}}
                route: {{cluster: backend}}
                typed_per_filter_config:
                  authz:
                    "@type": {PER_ROUTE}
                    rbac:
                      rules:
                        action: ALLOW
                        policies:
                          admins:
                            permissions: [{{any: true}}]
                            principals:
                            - header: {{name: x-role, string_match: {{exact: admin}}}}
              - match: {{prefix: "/"}}
                route: {{cluster: backend}}
          http_filters:
          - name: authz
            typed_config:
              "@type": {RBAC}
              rules_stat_prefix: main
              shadow_rules_stat_prefix: dry.
              rules:
                action: DENY
                policies:
                  "z blocked paths":
                    permissions:
                    - url_path: {{path: {{prefix: "/blocked"}}}}
                    - url_path: {{path: {{exact: "/exact"}}}}
                    - and_rules:
                        rules:
                        - header: {{name: ":method", string_match: {{exact: DELETE}}}}
                        - destination_port: {listen}
                        - not_rule: {{destination_ip: {{address_prefix: 10.0.0.0, prefix_len: 8}}}}
                    principals: [{{any: true}}]
                  "a bad clients":
                    permissions: [{{any: true}}]
                    principals:
                    - remote_ip: {{address_prefix: 10.9.0.0, prefix_len: 16}}
                    - and_ids:
                        ids:
                        - direct_remote_ip: {{address_prefix: 127.0.0.1, prefix_len: 32}}
                        - header: {{name: x-bad, present_match: true}}
              shadow_rules:
                action: ALLOW
                policies:
                  only-get:
                    permissions:
                    - or_rules:
                        rules:
                        - header: {{name: ":method", string_match: {{exact: GET}}}}
                        - header: {{name: ":method", string_match: {{exact: HEAD}}}}
                    principals: [{{any: true}}]
{tail}"#
    )
}

#[test]
fn rbac_denies_by_policy_with_envoys_answer_details_and_stats() {
    let Logged {
        up,
        baton: _b,
        listen,
        admin,
        log,
    } = logged_proxy("rbac-policies", yaml);
    wait_live(admin);
    let denied = (403, "RBAC: access denied".to_string());
    // (method, path, headers, denied?, details)
    let cases: &[(&str, &str, &str, bool, &str)] = &[
        ("GET", "/", "", false, ""),
        ("GET", "/blocked/x", "", true, "[z_blocked_paths]"),
        // The query string is not part of url_path.
        ("GET", "/exact?q=1", "", true, "[z_blocked_paths]"),
        ("GET", "/exactly", "", false, ""),
        ("DELETE", "/", "", true, "[z_blocked_paths]"),
        ("POST", "/", "", false, ""),
        // The client address from x-forwarded-for (use_remote_address false, no trusted hops).
        (
            "GET",
            "/",
            "X-Forwarded-For: 10.9.3.4\r\n",
            true,
            "[a_bad_clients]",
        ),
        ("GET", "/", "X-Forwarded-For: 10.8.3.4\r\n", false, ""),
        ("GET", "/", "X-Bad: 1\r\n", true, "[a_bad_clients]"),
        // Both policies match: the first by name decides, as in Envoy's ordered map.
        ("GET", "/blocked", "X-Bad: 1\r\n", true, "[a_bad_clients]"),
        // An empty RBACPerRoute turns the filter off on its route.
        ("GET", "/open/blocked", "X-Bad: 1\r\n", false, ""),
        // A route's RBAC replaces the filter's rules (and its shadow rules).
        ("GET", "/admin-only/blocked", "X-Role: admin\r\n", false, ""),
        ("GET", "/admin-only", "X-Role: user\r\n", true, "[none]"),
    ];
    for (method, path, headers, deny, _) in cases {
        let got = send_raw(listen, method, path, headers);
        if *deny {
            assert_eq!(got, denied, "{method} {path} {headers:?}");
        } else {
            assert_eq!(got.0, 200, "{method} {path} {headers:?}");
        }
    }
    assert_eq!(up.requests(), cases.iter().filter(|c| !c.3).count() as u64);
    let lines = log_lines(&log, cases.len());
    assert_eq!(lines.len(), cases.len(), "{lines:?}");
    for ((_, path, _, deny, policy), line) in cases.iter().zip(&lines) {
        let want = if *deny {
            format!("{path} 403 rbac_access_denied_matched_policy{policy}")
        } else {
            format!("{path} 200 via_upstream")
        };
        assert_eq!(line, &want);
    }
    // The filter's counters (a route's config counts under them); the shadow rules ran where
    // the filter's config applied: 10 requests, 2 of them neither GET nor HEAD.
    let s = |n: &str| stat(admin, &format!("http.ingress_http.rbac.main.{n}"));
    assert_eq!((s("allowed"), s("denied")), (5, 7));
    assert_eq!((s("dry.shadow_allowed"), s("dry.shadow_denied")), (8, 2));
}

/// A matcher tree: an input's predicate, nested matchers, actions; no `on_no_match`.
fn matcher_yaml(listen: u16, admin: u16, upstream: u16, log: &str) -> String {
    let head = common::yaml::listener_head("127.0.0.1", listen);
    let tail = common::yaml::router_backend_admin(upstream, admin);
    let access_log =
        common::yaml::file_access_log(log, "%RESPONSE_CODE% %RESPONSE_CODE_DETAILS%\\n");
    let input = |ty: &str, extra: &str| {
        format!("{{name: i, typed_config: {{\"@type\": \"type.googleapis.com/{ty}\"{extra}}}}}")
    };
    let net = |n: &str| {
        input(
            &format!("envoy.extensions.matching.common_inputs.network.v3.{n}"),
            "",
        )
    };
    let header = |h: &str| {
        input(
            "envoy.type.matcher.v3.HttpRequestHeaderMatchInput",
            &format!(", header_name: {h}"),
        )
    };
    let action = |name: &str, a: &str| {
        format!("{{action: {{name: a, typed_config: {{\"@type\": type.googleapis.com/envoy.config.rbac.v3.Action, name: {name}, action: {a}}}}}}}")
    };
    let (dport, user, src, direct) = (
        net("DestinationPortInput"),
        header("x-user"),
        net("SourceIPInput"),
        net("DirectSourceIPInput"),
    );
    let (local_ok, boss, evil) = (
        action("local-ok", "ALLOW"),
        action("boss", "ALLOW"),
        action("evil", "DENY"),
    );
    format!(
        r#"{head}{access_log}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{{match: {{prefix: "/"}}, route: {{cluster: backend}}}}]
          http_filters:
          - name: authz
            typed_config:
              "@type": {RBAC}
              matcher:
                matcher_list:
                  matchers:
                  - predicate:
                      and_matcher:
                        predicate:
                        - single_predicate: {{input: {dport}, value_match: {{exact: "{listen}"}}}}
                        - single_predicate: {{input: {user}, value_match: {{prefix: "ok-"}}}}
                    on_match:
                      matcher:
                        matcher_list:
                          matchers:
                          - predicate: {{single_predicate: {{input: {src}, value_match: {{exact: 127.0.0.1}}}}}}
                            on_match: {local_ok}
                  - predicate:
                      or_matcher:
                        predicate:
                        - single_predicate: {{input: {user}, value_match: {{exact: boss}}}}
                        - single_predicate: {{input: {direct}, value_match: {{exact: 10.0.0.1}}}}
                    on_match: {boss}
                  - predicate: {{single_predicate: {{input: {user}, value_match: {{exact: evil}}}}}}
                    on_match: {evil}
{tail}"#
    )
}

#[test]
fn an_rbac_matcher_tree_decides_by_its_first_matching_action() {
    let Logged {
        up,
        baton: _b,
        listen,
        admin,
        log,
    } = logged_proxy("rbac-matcher", matcher_yaml);
    wait_live(admin);
    let cases: &[(&str, &str)] = &[
        ("X-User: ok-1\r\n", "200 via_upstream"),
        // The nested matcher finds no action (the client is the XFF address): the list goes
        // on, and with nothing else matching and no on_no_match the request is denied.
        (
            "X-User: ok-1\r\nX-Forwarded-For: 10.1.1.1\r\n",
            "403 rbac_access_denied_matched_policy[none]",
        ),
        ("X-User: boss\r\n", "200 via_upstream"),
        (
            "X-User: evil\r\n",
            "403 rbac_access_denied_matched_policy[evil]",
        ),
        ("", "403 rbac_access_denied_matched_policy[none]"),
    ];
    for (headers, _) in cases {
        send_raw(listen, "GET", "/", headers);
    }
    let lines = log_lines(&log, cases.len());
    let want: Vec<&str> = cases.iter().map(|c| c.1).collect();
    assert_eq!(lines, want);
    assert_eq!(up.requests(), 2);
    let s = |n: &str| stat(admin, &format!("http.ingress_http.rbac.{n}"));
    assert_eq!((s("allowed"), s("denied")), (2, 3));
}

#[test]
fn unsupported_rbac_rules_are_refused_naming_their_path() {
    let rules = |policy: &str| {
        format!(
            r#"{head}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{{match: {{prefix: "/"}}, route: {{cluster: backend}}}}]
          http_filters:
          - name: authz
            typed_config:
              "@type": {RBAC}
              rules:
                policies:
                  p:
{policy}
{tail}"#,
            head = common::yaml::listener_head("127.0.0.1", 1),
            tail = common::yaml::router_backend_admin(1, 1),
        )
    };
    let base = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.rules.policies.p";
    let cases = [
        (
            "                    permissions: [{metadata: {filter: x}}]\n                    principals: [{any: true}]",
            format!("{base}.permissions[0].metadata: not supported by baton (dynamic metadata)"),
        ),
        (
            "                    permissions: [{any: true}]\n                    principals: [{not_id: {filter_state: {key: k}}}]",
            format!("{base}.principals[0].not_id.filter_state: not supported by baton (filter state)"),
        ),
        (
            "                    permissions: [{any: true, header: {name: a, present_match: true}}]\n                    principals: [{any: true}]",
            format!("{base}.permissions[0].header: only one field may be set (also any)"),
        ),
        (
            "                    permissions: [{any: true}]\n                    principals: [{any: true}]\n                    condition: {const_expr: {bool_value: true}}",
            format!("{base}.condition: not supported by baton (CEL expressions)"),
        ),
    ];
    for (policy, want) in cases {
        let err = refusal(&rules(policy));
        assert!(
            err.contains(&want),
            "{want}
{err}"
        );
    }
}

#[cfg(feature = "tls")]
#[test]
fn rbac_principals_read_the_client_certificate_and_policies_the_sni() {
    use tls_support::*;
    let pki = Pki::new("rbac");
    let up = Upstream::start("up1");
    let cert = pki.leaf("s", "/CN=s.test", "DNS:s.test,DNS:t.test");
    let c1 = pki.leaf(
        "c1",
        "/O=Baton Test/CN=client1",
        "URI:spiffe://test/client1",
    );
    let c2 = pki.leaf("c2", "/CN=client2", "DNS:client2.test");
    let ca = pki.ca();
    let hcm = format!(
        r#"      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: tls_rbac
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{{match: {{prefix: "/"}}, route: {{cluster: backend}}}}]
          http_filters:
          - name: authz
            typed_config:
              "@type": {RBAC}
              rules:
                action: ALLOW
                policies:
                  spiffe:
                    permissions: [{{requested_server_name: {{exact: s.test}}}}]
                    principals: [{{authenticated: {{principal_name: {{exact: "spiffe://test/client1"}}}}}}]
                  by-dns:
                    permissions: [{{any: true}}]
                    principals: [{{authenticated: {{principal_name: {{suffix: ".test"}}}}}}]
          - name: envoy.filters.http.router
"#
    );
    let validation = format!("  validation_context: {{trusted_ca: {{filename: \"{ca}\"}}}}");
    let chain = tls_chain(&hcm, &[], &cert, &[&validation]);
    let admin = free_port();
    let b = Baton::start(&bootstrap(admin, free_port(), "", &chain, up.port(), ""));
    let status = |sni: &str, client: Option<&(String, String)>| {
        let url = format!("https://{sni}:{}/", b.port);
        let resolve = format!("{sni}:{}:127.0.0.1", b.port);
        let mut args = vec!["--cacert", &ca, "--resolve", &resolve];
        args.extend(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(c) = client {
            args.extend(["--cert", c.0.as_str(), "--key", c.1.as_str()]);
        }
        args.push(&url);
        curl_ok(&args)
    };
    // No certificate: no principal matches.
    assert_eq!(status("s.test", None), "403");
    // The URI SAN, under the SNI the policy names.
    assert_eq!(status("s.test", Some(&c1)), "200");
    assert_eq!(status("t.test", Some(&c1)), "403");
    // A DNS SAN.
    assert_eq!(status("t.test", Some(&c2)), "200");
    assert_eq!(up.requests(), 2);
    let s = |n: &str| stat(admin, &format!("http.tls_rbac.rbac.{n}"));
    assert_eq!((s("allowed"), s("denied")), (2, 2));
}
