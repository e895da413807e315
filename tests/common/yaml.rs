//! Envoy v3 bootstrap YAML for tests, shaped like the seed's config, so each test states only
//! what it varies (ports, discovery type, a route timeout, a domain).

use std::fmt::Write;

/// What a test varies beyond ports and clusters. `Extra::default()` gives the seed's shape.
#[derive(Debug, Clone)]
pub struct Extra {
    /// The virtual host's domains (Host matching); `*` by default.
    pub domains: Vec<String>,
    /// Extra lines under the route's `route:` (e.g. `timeout: 1s`).
    pub route: Vec<String>,
    /// Extra lines under the HttpConnectionManager `typed_config`.
    pub hcm: Vec<String>,
    /// Every cluster's connect_timeout.
    pub connect_timeout: String,
    /// Every endpoint's address (e.g. `localhost` for LOGICAL_DNS).
    pub endpoint_host: String,
    /// The listener's address.
    pub listen_host: String,
}

impl Default for Extra {
    fn default() -> Self {
        Extra {
            domains: vec!["*".into()],
            route: Vec::new(),
            hcm: Vec::new(),
            connect_timeout: "0.25s".into(),
            endpoint_host: "127.0.0.1".into(),
            listen_host: "127.0.0.1".into(),
        }
    }
}

impl Extra {
    /// The default shape with extra `route:` lines, e.g. `Extra::route(&["timeout: 1s"])`.
    pub fn route(lines: &[&str]) -> Extra {
        Extra {
            route: lines.iter().map(|s| s.to_string()).collect(),
            ..Extra::default()
        }
    }
}

/// The start of every test bootstrap: `listener_0` on `host:port` with an HTTP connection
/// manager (stat prefix `ingress_http`), ending where its own fields (route_config, access
/// logs, ...) follow at ten spaces of indentation.
pub fn listener_head(host: &str, port: u16) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address:
        protocol: TCP
        address: {host}
        port_value: {port}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
"#
    )
}

/// A connection manager's `access_log` (ten spaces deep, as `listener_head` leaves off): one
/// file log to `path` with the text format `format` (the inside of a double-quoted YAML
/// string, so `\n` ends a line).
pub fn file_access_log(path: &str, format: &str) -> String {
    format!(
        r#"          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: "{path}"
              log_format:
                text_format_source:
                  inline_string: "{format}"
"#
    )
}

/// One listener `listener_0` on `listen_port` with an HTTP connection manager whose single
/// virtual host routes prefix `/` to the first cluster; `clusters` are
/// `(name, upstream ports, discovery type)` such as `("svc", &[port], "STATIC")`.
pub fn proxy_yaml(listen_port: u16, clusters: &[(&str, &[u16], &str)], extra: &Extra) -> String {
    let first = clusters.first().map(|c| c.0).unwrap_or("none");
    let domains: Vec<String> = extra.domains.iter().map(|d| format!("{d:?}")).collect();
    let mut y = listener_head(&extra.listen_host, listen_port);
    for l in &extra.hcm {
        let _ = writeln!(y, "          {l}");
    }
    let _ = write!(
        y,
        r#"          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: [{domains}]
              routes:
              - match:
                  prefix: "/"
                route:
                  cluster: {first}
"#,
        domains = domains.join(", "),
    );
    for l in &extra.route {
        let _ = writeln!(y, "                  {l}");
    }
    y.push_str(
        r#"          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
"#,
    );
    for (name, ports, discovery) in clusters {
        let _ = write!(
            y,
            r#"  - name: {name}
    connect_timeout: {ct}
    type: {discovery}
    lb_policy: ROUND_ROBIN
    dns_lookup_family: V4_ONLY
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:{empty}
"#,
            ct = extra.connect_timeout,
            empty = if ports.is_empty() { " []" } else { "" },
        );
        for p in *ports {
            let _ = write!(
                y,
                r#"        - endpoint:
            address:
              socket_address:
                address: {host}
                port_value: {p}
"#,
                host = extra.endpoint_host,
            );
        }
    }
    y
}

/// The most common case: one STATIC cluster `backend` with one upstream.
pub fn simple_yaml(listen_port: u16, upstream_port: u16) -> String {
    proxy_yaml(
        listen_port,
        &[("backend", &[upstream_port], "STATIC")],
        &Extra::default(),
    )
}

/// The listener port of a config made by `proxy_yaml` (the first `port_value`).
pub fn listener_port(yaml: &str) -> Option<u16> {
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("port_value:"))
        .and_then(|v| v.trim().parse().ok())
}

/// What follows a connection manager's filters (six spaces deep, as `listener_head` leaves
/// them): the router as the last HTTP filter, the STATIC cluster `backend` at 127.0.0.1:
/// `upstream`, and the admin listener on `admin`.
pub fn router_backend_admin(upstream: u16, admin: u16) -> String {
    format!(
        r#"          - name: envoy.filters.http.router
  clusters:
  - name: backend
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
