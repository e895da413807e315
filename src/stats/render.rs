//! Read-outs of a `Store` in the formats Envoy's admin serves: `name: value` text, JSON, and
//! Prometheus text exposition.

use std::borrow::Cow;
use std::fmt::Write;

use super::{Kind, Store};

/// Appends `s` as a JSON string literal.
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn keep(filter: Option<&regex::Regex>, name: &str) -> bool {
    filter.is_none_or(|r| r.is_match(name))
}

/// Envoy's `/stats`: one `name: value` line per stat, sorted by name.
pub fn render_text(s: &Store, filter: Option<&regex::Regex>) -> String {
    let mut out = String::new();
    for (name, _, v) in s.entries() {
        if keep(filter, name) {
            let _ = writeln!(out, "{name}: {v}");
        }
    }
    out
}

/// Envoy's `/stats?format=json`: `{"stats":[{"name":..,"value":..},...]}`.
pub fn render_json(s: &Store, filter: Option<&regex::Regex>) -> String {
    let mut out = String::from("{\"stats\":[");
    let mut first = true;
    for (name, _, v) in s.entries() {
        if !keep(filter, name) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str("{\"name\":");
        json_str(&mut out, name);
        let _ = write!(out, ",\"value\":{v}}}");
    }
    out.push_str("]}\n");
    out
}

/// One of Envoy's default tags that baton's stat names carry: the scope it is cut from, its
/// name (what DogStatsD lines show) and its Prometheus label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tag {
    pub scope: &'static str,
    pub name: &'static str,
    pub label: &'static str,
}

/// Envoy's default tags for the scopes baton has.
const TAGS: [Tag; 3] = [
    Tag {
        scope: "cluster",
        name: "envoy.cluster_name",
        label: "envoy_cluster_name",
    },
    Tag {
        scope: "http",
        name: "envoy.http_conn_manager_prefix",
        label: "envoy_http_conn_manager_prefix",
    },
    Tag {
        scope: "listener",
        name: "envoy.listener_address",
        label: "envoy_listener_address",
    },
];

/// Envoy's default tag extraction for the scopes baton has, shared by the Prometheus output
/// and the DogStatsD sink so both name a stat alike: the tag-extracted name and the tag.
/// `cluster.<name>.x` → (`cluster.x`, `envoy.cluster_name`, name),
/// `http.<prefix>.x` → (`http.x`, `envoy.http_conn_manager_prefix`, prefix),
/// `listener.<address>.x` → (`listener.x`, `envoy.listener_address`, address),
/// anything else → (the name, no tag).
pub fn tag_extracted(name: &str) -> (Cow<'_, str>, Option<(Tag, &str)>) {
    let Some((scope, rest)) = name.split_once('.') else {
        return (Cow::Borrowed(name), None);
    };
    let Some(tag) = TAGS.iter().find(|t| t.scope == scope) else {
        return (Cow::Borrowed(name), None);
    };
    // A stat of a scope inside the tagged one (`cluster.<name>.circuit_breakers.default.
    // cx_open`, `….ssl.handshake`) keeps that scope in its name, as Envoy's does; the tag
    // value is what comes before it (names may have dots: `cluster.a.b.x`).
    let inner = INNER_SCOPES
        .iter()
        .filter_map(|s| rest.find(s))
        .min()
        .and_then(|at| Some((rest.get(..at)?, rest.get(at + 1..)?)));
    match inner.or_else(|| rest.rsplit_once('.')) {
        Some((value, stat)) => (Cow::Owned(format!("{scope}.{stat}")), Some((*tag, value))),
        None => (Cow::Borrowed(name), None),
    }
}

/// A stat's Prometheus metric name and label: `envoy_` + its tag-extracted name with every
/// character Prometheus does not allow as `_` (`envoy_cluster_upstream_rq_total`).
pub fn prometheus_name(name: &str) -> (String, Option<(&'static str, &str)>) {
    let (stat, tag) = tag_extracted(name);
    (
        sanitize(&format!("envoy_{stat}")),
        tag.map(|(t, v)| (t.label, v)),
    )
}

/// Scopes that stats of a tagged scope may sit in, with their dots.
const INNER_SCOPES: [&str; 2] = [".circuit_breakers.", ".ssl."];

fn sanitize(n: &str) -> String {
    n.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// One Prometheus sample: metric name, kind, label, value.
type Row<'a> = (String, Kind, Option<(&'static str, &'a str)>, i128);

/// Prometheus text exposition (version 0.0.4): one `# TYPE` line per metric family, then its
/// samples, families sorted by name.
pub fn render_prometheus(s: &Store) -> String {
    let mut rows: Vec<Row<'_>> = s
        .entries()
        .into_iter()
        .map(|(name, kind, v)| {
            let (m, tag) = prometheus_name(name);
            (m, kind, tag, v)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
    let mut out = String::new();
    let mut last: Option<&str> = None;
    for (m, kind, tag, v) in &rows {
        if last != Some(m.as_str()) {
            let t = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# TYPE {m} {t}");
            last = Some(m.as_str());
        }
        out.push_str(m);
        if let Some((label, value)) = tag {
            let _ = write!(out, "{{{label}=\"");
            label_value(&mut out, value);
            out.push_str("\"}");
        }
        let _ = writeln!(out, " {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Import;

    #[test]
    fn formats() {
        let mut s = Store::default();
        let c = s.counter("cluster.a.b.upstream_rq_total");
        s.add(c, 3);
        s.counter("cluster.z.upstream_rq_total");
        s.gauge(
            "cluster.a.b.circuit_breakers.default.cx_open",
            Import::Never,
        );
        s.counter("cluster.z.ssl.versions.TLSv1.3");
        s.gauge("server.live", Import::Never);
        s.counter("listener.0.0.0.0_10000.downstream_cx_total");
        let t = render_text(&s, None);
        assert_eq!(
            t,
            "cluster.a.b.circuit_breakers.default.cx_open: 0\n\
             cluster.a.b.upstream_rq_total: 3\ncluster.z.ssl.versions.TLSv1.3: 0\n\
             cluster.z.upstream_rq_total: 0\n\
             listener.0.0.0.0_10000.downstream_cx_total: 0\nserver.live: 0\n"
        );
        let r = regex::Regex::new("live").unwrap();
        assert_eq!(render_text(&s, Some(&r)), "server.live: 0\n");
        assert_eq!(
            render_json(&s, Some(&r)),
            "{\"stats\":[{\"name\":\"server.live\",\"value\":0}]}\n"
        );
        let p = render_prometheus(&s);
        assert!(p.contains(
            "# TYPE envoy_cluster_upstream_rq_total counter\n\
             envoy_cluster_upstream_rq_total{envoy_cluster_name=\"a.b\"} 3\n\
             envoy_cluster_upstream_rq_total{envoy_cluster_name=\"z\"} 0\n"
        ));
        assert!(p.contains(
            "envoy_listener_downstream_cx_total{envoy_listener_address=\"0.0.0.0_10000\"} 0\n"
        ));
        assert!(p.contains(
            "# TYPE envoy_cluster_circuit_breakers_default_cx_open gauge\n\
             envoy_cluster_circuit_breakers_default_cx_open{envoy_cluster_name=\"a.b\"} 0\n"
        ));
        assert!(p.contains("envoy_cluster_ssl_versions_TLSv1_3{envoy_cluster_name=\"z\"} 0\n"));
        assert!(p.contains("# TYPE envoy_server_live gauge\nenvoy_server_live 0\n"));
        let mut j = String::new();
        json_str(&mut j, "a\"b\\\n\u{1}");
        assert_eq!(j, "\"a\\\"b\\\\\\n\\u0001\"");
    }
}
