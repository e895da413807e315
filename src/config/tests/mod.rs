//! Unit tests for the config layer. `doc()` is a small valid bootstrap; `edit` changes one
//! field by the same path syntax the errors use, so each test reads as "set X, expect error at X".

mod errors;
mod features;
mod fields;
mod lenient;
mod load;
mod tcp;
mod upstream;

use super::*;
use serde_yaml::Value;

pub const HCM: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
pub const VH: &str = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0]";

const BASE: &str = r#"
static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address: { address: 0.0.0.0, port_value: 10000 }
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
              - match: { prefix: "/" }
                route: { cluster: a }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: a
    connect_timeout: 0.25s
    type: STATIC
    load_assignment:
      cluster_name: a
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: 8080 }
  - name: b
    type: STRICT_DNS
    load_assignment:
      cluster_name: b
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: localhost, port_value: 8081 } } }
"#;

pub fn doc() -> Value {
    serde_yaml::from_str(BASE).unwrap()
}

/// Splits `a.b[2].c` into keys and indices.
fn steps(path: &str) -> Vec<Result<String, usize>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut it = part.split('[');
        let key = it.next().unwrap_or_default();
        if !key.is_empty() {
            out.push(Ok(key.to_string()));
        }
        for idx in it {
            out.push(Err(idx.trim_end_matches(']').parse().unwrap()));
        }
    }
    out
}

pub fn slot<'a>(mut v: &'a mut Value, path: &str) -> &'a mut Value {
    for s in steps(path) {
        v = match s {
            Ok(k) => {
                if !v.is_mapping() {
                    *v = Value::Mapping(Default::default());
                }
                let m = v.as_mapping_mut().unwrap();
                if !m.contains_key(k.as_str()) {
                    m.insert(Value::String(k.clone()), Value::Null);
                }
                m.get_mut(k.as_str()).unwrap()
            }
            Err(i) => {
                let seq = v.as_sequence_mut().unwrap();
                while seq.len() <= i {
                    seq.push(Value::Null);
                }
                &mut seq[i]
            }
        };
    }
    v
}

/// Sets `path` to the YAML value `yaml`.
pub fn set(doc: &mut Value, path: &str, yaml: &str) {
    *slot(doc, path) = serde_yaml::from_str(yaml).unwrap();
}

/// Removes the last key of `path`.
pub fn remove(doc: &mut Value, path: &str) {
    let (parent, key) = path.rsplit_once('.').unwrap();
    slot(doc, parent).as_mapping_mut().unwrap().remove(key);
}

pub fn check(doc: &Value) -> Result<Bootstrap, ConfigErrors> {
    from_document(doc)
}

/// The error (as displayed) after applying `edits` to the base document.
pub fn err_with(edits: &[(&str, &str)]) -> String {
    let mut d = doc();
    for (p, y) in edits {
        set(&mut d, p, y);
    }
    match check(&d) {
        Ok(_) => panic!("expected an error for {edits:?}"),
        Err(e) => e.to_string(),
    }
}

/// The model after applying `edits`.
pub fn ok_with(edits: &[(&str, &str)]) -> Bootstrap {
    let mut d = doc();
    for (p, y) in edits {
        set(&mut d, p, y);
    }
    check(&d).unwrap_or_else(|e| panic!("{edits:?}: {e}"))
}

/// The first route of the base document after `edits`.
pub fn route_with(edits: &[(&str, &str)]) -> Route {
    ok_with(edits).listeners[0]
        .hcm()
        .unwrap()
        .route_config
        .virtual_hosts[0]
        .routes[0]
        .clone()
}
