//! Runtime disk layers: the keys under `symlink_root/subdirectory` are read at load (a file per
//! key), a new tree swapped in by moving a symlink onto `symlink_root` is applied by a hot
//! restart, and a tree with a key baton does not implement is refused naming the file.

mod common;

use std::path::Path;
use std::time::Duration;

use common::hot::{in_log, start_with_pid_file, stop_in_charge, HotDir};
use common::{free_port, run_baton, RawConn, Upstream};

const WAIT: Duration = Duration::from_secs(30);

/// A listener with a fault filter that aborts nothing unless the runtime says so, and a disk
/// layer at `root` (`symlink_root`) with subdirectory `envoy`.
fn yaml(port: u16, upstream: u16, root: &Path) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: service }}
          http_filters:
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              abort:
                http_status: 503
                percentage: {{ numerator: 0, denominator: HUNDRED }}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: service
    type: STATIC
    load_assignment:
      cluster_name: service
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {upstream} }}
layered_runtime:
  layers:
  - name: disk_layer_0
    disk_layer:
      symlink_root: {}
      subdirectory: envoy
"#,
        root.display()
    )
}

/// A runtime tree `dir/envoy/…` with `keys` (dotted key → value).
fn tree(dir: &Path, keys: &[(&str, &str)]) {
    for (k, v) in keys {
        let mut p = dir.join("envoy");
        for part in k.split('.') {
            p.push(part);
        }
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, format!("{v}\n")).expect("write key");
    }
}

/// Points the symlink `root` at `target` atomically, as Envoy's docs say to swap a tree.
fn swap(root: &Path, target: &Path) {
    let tmp = root.with_extension("swap");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).expect("symlink");
    std::fs::rename(&tmp, root).expect("move the symlink into place");
}

fn status(port: u16) -> u16 {
    let mut c = RawConn::connect(port);
    c.send(&common::get("/"));
    c.expect_response(false).status()
}

#[test]
fn a_runtime_tree_sets_the_fault_filter_and_a_swapped_tree_is_applied_by_a_hot_restart() {
    let up = Upstream::start("service");
    let dir = HotDir::new("runtime_disk");
    let (v1, v2, root) = (
        dir.path.join("v1"),
        dir.path.join("v2"),
        dir.path.join("current"),
    );
    tree(
        &v1,
        &[
            ("fault.http.abort.abort_percent", "100"),
            ("fault.http.abort.http_status", "418"),
        ],
    );
    tree(&v2, &[("fault.http.abort.abort_percent", "0")]);
    std::os::unix::fs::symlink(&v1, &root).expect("symlink");
    let port = free_port();
    let config = yaml(port, up.port(), &root);
    let (mut b, pid_file) = start_with_pid_file(&config, port, &dir);
    // The runtime's percent (100) and status (418) replace the configured 0 % and 503.
    assert_eq!(status(port), 418, "{}", b.log());
    swap(&root, &v2);
    let deadline = std::time::Instant::now() + WAIT;
    while status(port) != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        status(port),
        200,
        "the new tree was not applied\n{}",
        b.log()
    );
    assert!(in_log(&b, "new runtime file"), "{}", b.log());
    stop_in_charge(&mut b, &pid_file);
}

#[test]
fn a_runtime_key_baton_does_not_implement_is_refused_naming_its_file() {
    let dir = HotDir::new("runtime_disk_refused");
    let v1 = dir.path.join("v1");
    tree(&v1, &[("upstream.use_http2", "1")]);
    let root = dir.path.join("current");
    std::os::unix::fs::symlink(&v1, &root).expect("symlink");
    let config = yaml(free_port(), free_port(), &root);
    let (s, _, err) = run_baton(&["--mode", "validate", "--config-yaml", &config], WAIT);
    assert_eq!(s.code(), Some(1), "{err}");
    let file = root.join("envoy/upstream/use_http2");
    assert!(
        err.contains(&format!(
            "{}: runtime key \"upstream.use_http2\"",
            file.display()
        )),
        "{err}"
    );
    // A layer whose directory does not exist is empty, as in Envoy: the config loads.
    let config = yaml(free_port(), free_port(), &dir.path.join("absent"));
    let (s, _, err) = run_baton(&["--mode", "validate", "--config-yaml", &config], WAIT);
    assert_eq!(s.code(), Some(0), "{err}");
}
