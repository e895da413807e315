//! `/config_dump`: the effective configuration (after validation, with every default
//! applied) in the shape of Envoy's BootstrapConfigDump, written by hand so the config model
//! needs no serialisation derives.

use std::fmt::Display;
use std::time::Duration;

use crate::cli::Options;
use crate::config::{
    Bootstrap, Cluster, ClusterSpec, HttpConnectionManager, Listener, PathMatch, RouteAction,
};
use crate::stats::json_str;

/// A JSON writer that tracks commas.
struct W {
    out: String,
    first: Vec<bool>,
}

impl W {
    fn key(&mut self, k: Option<&str>) {
        if let Some(f) = self.first.last_mut() {
            if !*f {
                self.out.push(',');
            }
            *f = false;
        }
        if let Some(k) = k {
            json_str(&mut self.out, k);
            self.out.push(':');
        }
    }
    fn open(&mut self, k: Option<&str>, c: char) {
        self.key(k);
        self.out.push(c);
        self.first.push(true);
    }
    fn close(&mut self, c: char) {
        self.first.pop();
        self.out.push(c);
    }
    fn s(&mut self, k: Option<&str>, v: &str) {
        self.key(k);
        json_str(&mut self.out, v);
    }
    fn n(&mut self, k: &str, v: impl Display) {
        self.key(Some(k));
        self.out.push_str(&v.to_string());
    }
    fn dur(&mut self, k: &str, d: Option<Duration>) {
        let v = d.map_or("0s".to_string(), |d| format!("{}s", d.as_secs_f64()));
        self.s(Some(k), &v);
    }
}

/// The dump, computed once at start-up (the config never changes in a running process).
pub fn config_dump(b: &Bootstrap, opts: &Options) -> String {
    let mut w = W {
        out: String::new(),
        first: Vec::new(),
    };
    w.open(None, '{');
    w.open(Some("configs"), '[');
    w.open(None, '{');
    w.s(
        Some("@type"),
        "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
    );
    w.open(Some("bootstrap"), '{');
    let node = b.node.clone().unwrap_or_default();
    w.open(Some("node"), '{');
    w.s(
        Some("id"),
        if opts.service_node.is_empty() {
            &node.id
        } else {
            &opts.service_node
        },
    );
    w.s(
        Some("cluster"),
        if opts.service_cluster.is_empty() {
            &node.cluster
        } else {
            &opts.service_cluster
        },
    );
    w.close('}');
    if let Some(a) = &b.admin {
        w.open(Some("admin"), '{');
        socket_address(&mut w, &a.address.ip().to_string(), a.address.port());
        if let Some(p) = &a.access_log_path {
            w.s(Some("access_log_path"), p);
        }
        w.close('}');
    }
    w.open(Some("static_resources"), '{');
    w.open(Some("listeners"), '[');
    for l in &b.listeners {
        listener(&mut w, l, &b.clusters);
    }
    w.close(']');
    w.open(Some("clusters"), '[');
    for c in &b.clusters {
        cluster(&mut w, c);
    }
    w.close(']');
    w.close('}');
    w.close('}');
    w.close('}');
    w.close(']');
    w.close('}');
    w.out.push('\n');
    w.out
}

fn socket_address(w: &mut W, host: &str, port: u16) {
    w.open(Some("address"), '{');
    w.open(Some("socket_address"), '{');
    w.s(Some("address"), host);
    w.n("port_value", port);
    w.close('}');
    w.close('}');
}

fn listener(w: &mut W, l: &Listener, clusters: &[Cluster]) {
    w.open(None, '{');
    w.s(Some("name"), &l.name);
    socket_address(w, &l.address.ip().to_string(), l.address.port());
    w.n(
        "per_connection_buffer_limit_bytes",
        l.per_connection_buffer_limit_bytes,
    );
    w.open(Some("http_connection_manager"), '{');
    hcm(w, &l.hcm, clusters);
    w.close('}');
    w.close('}');
}

fn hcm(w: &mut W, h: &HttpConnectionManager, clusters: &[Cluster]) {
    let name = |i: usize| clusters.get(i).map_or("?", |c| c.name.as_str());
    w.s(Some("stat_prefix"), &h.stat_prefix);
    w.s(
        Some("codec_type"),
        &format!("{:?}", h.codec_type).to_uppercase(),
    );
    w.dur("idle_timeout", h.idle_timeout);
    w.dur("request_headers_timeout", h.request_headers_timeout);
    w.dur("stream_idle_timeout", h.stream_idle_timeout);
    w.n("max_request_headers_kb", h.max_request_headers_kb);
    w.s(Some("server_name"), &h.server_name);
    w.n("use_remote_address", h.use_remote_address);
    w.n("xff_num_trusted_hops", h.xff_num_trusted_hops);
    w.n("generate_request_id", h.generate_request_id);
    w.n("normalize_path", h.normalize_path);
    w.n("merge_slashes", h.merge_slashes);
    w.open(Some("access_log"), '[');
    for a in &h.access_log {
        w.open(None, '{');
        w.s(Some("path"), &a.path);
        w.s(Some("format"), &a.format);
        w.close('}');
    }
    w.close(']');
    let rc = &h.route_config;
    w.open(Some("route_config"), '{');
    w.s(Some("name"), &rc.name);
    w.open(Some("virtual_hosts"), '[');
    for vh in &rc.virtual_hosts {
        w.open(None, '{');
        w.s(Some("name"), &vh.name);
        w.open(Some("domains"), '[');
        for d in &vh.domains {
            w.s(None, d);
        }
        w.close(']');
        w.open(Some("routes"), '[');
        for r in &vh.routes {
            w.open(None, '{');
            if !r.name.is_empty() {
                w.s(Some("name"), &r.name);
            }
            w.open(Some("match"), '{');
            match &r.matcher.path {
                PathMatch::Prefix(p) => w.s(Some("prefix"), p),
                PathMatch::Path(p) => w.s(Some("path"), p),
                PathMatch::SafeRegex(re) => w.s(Some("safe_regex"), re.pattern()),
                PathMatch::Connect => {
                    w.open(Some("connect_matcher"), '{');
                    w.close('}');
                }
            }
            w.n("case_sensitive", r.matcher.case_sensitive);
            w.n("header_matchers", r.matcher.headers.len());
            w.n("query_parameter_matchers", r.matcher.query_parameters.len());
            w.close('}');
            match &r.action {
                RouteAction::Forward(f) => {
                    w.open(Some("route"), '{');
                    match &f.cluster {
                        ClusterSpec::Single(c) => w.s(Some("cluster"), name(*c)),
                        ClusterSpec::Weighted(list) => {
                            w.open(Some("weighted_clusters"), '[');
                            for (c, wt) in list {
                                w.open(None, '{');
                                w.s(Some("name"), name(*c));
                                w.n("weight", wt);
                                w.close('}');
                            }
                            w.close(']');
                        }
                    }
                    if let Some(p) = &f.prefix_rewrite {
                        w.s(Some("prefix_rewrite"), p);
                    }
                    w.dur("timeout", f.timeout);
                    if let Some(rp) = &f.retry_policy {
                        w.n("num_retries", rp.num_retries);
                    }
                    w.close('}');
                }
                RouteAction::DirectResponse { status, body } => {
                    w.open(Some("direct_response"), '{');
                    w.n("status", status);
                    if let Some(b) = body {
                        w.s(Some("body"), b);
                    }
                    w.close('}');
                }
                RouteAction::Redirect(rd) => {
                    w.open(Some("redirect"), '{');
                    w.n("response_code", rd.response_code);
                    if let Some(h) = &rd.host {
                        w.s(Some("host_redirect"), h);
                    }
                    w.close('}');
                }
            }
            w.close('}');
        }
        w.close(']');
        w.close('}');
    }
    w.close(']');
    w.close('}');
}

fn cluster(w: &mut W, c: &Cluster) {
    w.open(None, '{');
    w.s(Some("name"), &c.name);
    w.s(Some("type"), &shout(&format!("{:?}", c.discovery)));
    w.s(Some("lb_policy"), &shout(&format!("{:?}", c.lb_policy)));
    w.s(
        Some("dns_lookup_family"),
        &shout(&format!("{:?}", c.dns_lookup_family)),
    );
    w.dur("connect_timeout", Some(c.connect_timeout));
    w.dur("dns_refresh_rate", Some(c.dns_refresh_rate));
    w.n(
        "per_connection_buffer_limit_bytes",
        c.per_connection_buffer_limit_bytes,
    );
    w.open(Some("load_assignment"), '{');
    w.s(Some("cluster_name"), &c.load_assignment_cluster_name);
    w.open(Some("endpoints"), '[');
    w.open(None, '{');
    w.open(Some("lb_endpoints"), '[');
    for e in &c.endpoints {
        w.open(None, '{');
        w.open(Some("endpoint"), '{');
        socket_address(w, &e.host, e.port);
        w.close('}');
        w.n("load_balancing_weight", e.weight);
        w.close('}');
    }
    w.close(']');
    w.close('}');
    w.close(']');
    w.close('}');
    w.close('}');
}

/// `LogicalDns` → `LOGICAL_DNS`, `V4Only` → `V4_ONLY`: Envoy's enum spelling.
fn shout(s: &str) -> String {
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::shout;

    #[test]
    fn enum_spelling() {
        assert_eq!(shout("LogicalDns"), "LOGICAL_DNS");
        assert_eq!(shout("RoundRobin"), "ROUND_ROBIN");
        assert_eq!(shout("V4Only"), "V4_ONLY");
        assert_eq!(shout("Static"), "STATIC");
    }
}
