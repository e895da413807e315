//! Connection limits as Envoy users write them: the overload manager's
//! `envoy.resource_monitors.global_downstream_max_connections` (or the runtime's
//! `overload.global_downstream_max_connections`) and the listener's
//! `envoy.filters.network.connection_limit` filter. Past a limit a new connection is closed at
//! once and counted; connections already accepted are served as before.

mod admin_util;
mod common;

use std::time::Duration;

use admin_util::{stat, Setup};
use common::*;

const CONNECTION_LIMIT: &str = r#"      - name: envoy.filters.network.connection_limit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit
          stat_prefix: edge
          max_connections: 4
"#;

const OVERLOAD: &str = r#"overload_manager:
  refresh_interval: 0.25s
  resource_monitors:
  - name: envoy.resource_monitors.global_downstream_max_connections
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
      max_active_downstream_connections: 3
"#;

/// Baton with the admin set-up's config, edited by `edit`.
fn start(edit: impl Fn(String) -> String) -> (Baton, Upstream, Setup) {
    admin_util::start_edited(Vec::new(), edit)
}

/// A connection that completed one request (so it is surely accepted and counted).
fn served(port: u16) -> RawConn {
    let mut c = RawConn::connect(port);
    c.send(&get("/status/200"));
    assert_eq!(c.expect_response(false).status(), 200);
    c
}

/// A connection past the limit: accepted by the kernel, closed by baton without an answer.
fn refused(port: u16) {
    let mut c = RawConn::connect(port);
    let _ = c.stream.write_all(&get("/status/200"));
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "a connection past the limit was served"
    );
}

use std::io::Write;

#[test]
fn the_listener_connection_limit_filter_closes_new_connections_past_it() {
    let (_b, _up, s) = start(|y| {
        y.replacen(
            "      - name: envoy.filters.network.http_connection_manager",
            &format!(
                "{CONNECTION_LIMIT}      - name: envoy.filters.network.http_connection_manager"
            ),
            1,
        )
    });
    let mut held: Vec<RawConn> = (0..4).map(|_| served(s.listen)).collect();
    assert_eq!(stat(s.admin, "connection_limit.edge.active_connections"), 4);
    refused(s.listen);
    refused(s.listen);
    assert_eq!(
        stat(s.admin, "connection_limit.edge.limited_connections"),
        2
    );
    // The accepted ones are unaffected.
    for c in &mut held {
        c.send(&get("/status/201"));
        assert_eq!(c.expect_response(false).status(), 201);
    }
    // One leaves: room for one more.
    held.pop();
    assert!(admin_util::eventually(Duration::from_secs(5), || {
        stat(s.admin, "connection_limit.edge.active_connections") == 3
    }));
    held.push(served(s.listen));
}

#[test]
fn the_global_connection_limit_closes_new_connections_past_it() {
    let (_b, _up, s) = start(|y| format!("{y}{OVERLOAD}"));
    let mut held: Vec<RawConn> = (0..3).map(|_| served(s.listen)).collect();
    refused(s.listen);
    let scope = format!("listener.127.0.0.1_{}", s.listen);
    assert_eq!(
        stat(s.admin, &format!("{scope}.downstream_global_cx_overflow")),
        1
    );
    // The admin interface is not counted against the limit.
    assert!(admin_util::admin_get(s.admin, "/ready").contains("LIVE"));
    for c in &mut held {
        c.send(&get("/status/202"));
        assert_eq!(c.expect_response(false).status(), 202);
    }
}

/// The same limit set by the runtime key Envoy's examples use, in a static layer.
const RUNTIME: &str = r#"layered_runtime:
  layers:
  - name: static_layer_0
    static_layer:
      overload:
        global_downstream_max_connections: 2
  - name: admin_layer_0
    admin_layer: {}
"#;

#[test]
fn the_runtime_global_connection_limit_closes_new_connections_past_it() {
    let (_b, _up, s) = start(|y| format!("{y}{RUNTIME}"));
    let mut held: Vec<RawConn> = (0..2).map(|_| served(s.listen)).collect();
    refused(s.listen);
    let scope = format!("listener.127.0.0.1_{}", s.listen);
    assert_eq!(
        stat(s.admin, &format!("{scope}.downstream_global_cx_overflow")),
        1
    );
    for c in &mut held {
        c.send(&get("/status/202"));
        assert_eq!(c.expect_response(false).status(), 202);
    }
}

/// Envoy's per-listener limit, `envoy.resource_limits.listener.<name>.connection_limit`, as
/// its front-proxy example writes it (nested keys); the listener here is `listener_0`.
const LISTENER_RUNTIME: &str = r#"layered_runtime:
  layers:
  - name: static_layer_0
    static_layer:
      envoy:
        resource_limits:
          listener:
            listener_0:
              connection_limit: 2
            not_a_listener:
              connection_limit: 0
"#;

#[test]
fn the_runtime_listener_connection_limit_closes_new_connections_past_it() {
    let (_b, _up, s) = start(|y| format!("{y}{LISTENER_RUNTIME}"));
    let mut held: Vec<RawConn> = (0..2).map(|_| served(s.listen)).collect();
    refused(s.listen);
    refused(s.listen);
    let scope = format!("listener.127.0.0.1_{}", s.listen);
    assert_eq!(stat(s.admin, &format!("{scope}.downstream_cx_overflow")), 2);
    assert_eq!(
        stat(s.admin, &format!("{scope}.downstream_global_cx_overflow")),
        0
    );
    for c in &mut held {
        c.send(&get("/status/202"));
        assert_eq!(c.expect_response(false).status(), 202);
    }
    // One leaves: room for one more.
    held.pop();
    assert!(admin_util::eventually(Duration::from_secs(5), || {
        stat(s.admin, &format!("{scope}.downstream_cx_active")) == 1
    }));
    held.push(served(s.listen));
}
