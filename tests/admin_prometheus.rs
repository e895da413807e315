//! `/stats/prometheus` is valid Prometheus text exposition: parsed by the reference Python
//! parser (`prometheus_client.parser`), with every /stats value present under its Envoy-style
//! name and labels.

mod admin_util;
mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use admin_util::*;

/// Parses stdin and prints one `name|labels|value` line per sample (labels sorted k=v,k=v).
const PARSE: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{fam.type}|{s.name}|{labels}|{int(s.value)}")
"#;

#[test]
fn prometheus_output_parses_with_the_reference_parser() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED: python3 is not installed; the Prometheus parser test needs it");
        return;
    }
    let (b, _up, s) = start(Vec::new());
    for _ in 0..3 {
        assert_eq!(request(b.port, "GET", "/status/200", "", ""), 200);
    }
    assert_eq!(request(b.port, "GET", "/dead", "", ""), 503);
    let text = admin_get(s.admin, "/stats/prometheus");
    let mut py = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    py.stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed parser");
    let out = py.wait_with_output().expect("parser output");
    assert!(
        out.status.success(),
        "prometheus_client could not parse the output (is it installed? `python3 -m pip install prometheus_client`; .ci/run installs it):\n{}\n--- exposition ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    let has = |line: &str| samples.iter().any(|l| l == line);
    assert!(
        has("counter|envoy_cluster_upstream_rq_total|envoy_cluster_name=svc|3"),
        "{samples:#?}"
    );
    // The parser names counter samples with `_total` (OpenMetrics style) whether or not the
    // family name has it; baton writes Envoy's names (`envoy_cluster_upstream_cx_connect_fail`).
    assert!(
        has("counter|envoy_cluster_upstream_cx_connect_fail_total|envoy_cluster_name=dead|1"),
        "{samples:#?}"
    );
    assert!(has("counter|envoy_http_downstream_rq_2xx_total|envoy_http_conn_manager_prefix=ingress_http|3"), "{samples:#?}");
    assert!(
        text.contains("# TYPE envoy_cluster_upstream_cx_connect_fail counter\n"),
        "{text}"
    );
    assert!(has("gauge|envoy_server_live||1"), "{samples:#?}");
    let lname = format!("envoy_listener_address=127.0.0.1_{}", b.port);
    assert!(
        samples
            .iter()
            .any(|l| l.contains("envoy_listener_downstream_cx_total") && l.contains(&lname)),
        "{samples:#?}"
    );
    // Every stat of /stats is one sample.
    let n = stats(s.admin).len();
    assert_eq!(samples.len(), n, "one sample per stat");
}
