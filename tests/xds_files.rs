//! `dynamic_resources` from files (Envoy's filesystem xDS): listeners from an LDS file and
//! clusters from a CDS file are served; a new version moved into place is applied by a hot
//! restart without dropping a connection, a file written in place is not read (Envoy reads
//! only moves), a bad new version leaves the running process serving, and errors in a file
//! name the file and the resource's path in it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::hot::{
    get_body, in_log, start_with_pid_file as start, stop_in_charge, wait_body, HotDir,
};
use common::{free_port, run_baton, Baton, RawConn, Upstream};

const WAIT: Duration = Duration::from_secs(30);

fn lds(port: u16) -> String {
    format!(
        r#"resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: listener_0
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {port} }}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: ingress_http
        http_filters:
        - name: envoy.filters.http.router
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
        route_config:
          virtual_hosts:
          - name: all
            domains: ["*"]
            routes:
            - match: {{ prefix: "/" }}
              route: {{ cluster: service }}
"#
    )
}

fn cds(upstream: u16, extra: &str) -> String {
    format!(
        r#"version_info: "1"
resources:
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: service
  type: STATIC
  {extra}
  load_assignment:
    cluster_name: service
    endpoints:
    - lb_endpoints:
      - endpoint:
          address:
            socket_address: {{ address: 127.0.0.1, port_value: {upstream} }}
"#
    )
}

/// A bootstrap whose listeners and clusters come from `lds` and `cds`.
fn bootstrap(lds: &Path, cds: &Path) -> String {
    bootstrap_watching(lds, cds, None)
}

/// As `bootstrap`, with the CDS file reloaded on any move into `watched` (Envoy's
/// `watched_directory`, for files behind a Kubernetes ConfigMap's `..data` symlink).
fn bootstrap_watching(lds: &Path, cds: &Path, watched: Option<&Path>) -> String {
    let watched = watched
        .map(|d| format!(", watched_directory: {{ path: \"{}\" }}", d.display()))
        .unwrap_or_default();
    format!(
        r#"node: {{ id: id_1, cluster: test }}
dynamic_resources:
  cds_config:
    resource_api_version: V3
    path_config_source: {{ path: "{}"{watched} }}
  lds_config:
    resource_api_version: V3
    path_config_source: {{ path: "{}" }}
"#,
        cds.display(),
        lds.display()
    )
}

/// Writes `text` beside `path` and moves it into place (how Envoy wants a new version).
fn move_into_place(path: &Path, text: &str) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, text).expect("write new version");
    std::fs::rename(&tmp, path).expect("move into place");
}

#[test]
fn a_cds_file_moved_into_place_is_applied_by_a_hot_restart_and_a_bad_one_changes_nothing() {
    let (v1, v2) = (Upstream::start("v1"), Upstream::start("v2"));
    let dir = HotDir::new("xds_files");
    let (lds_path, cds_path) = (dir.path.join("lds.yaml"), dir.path.join("cds.yaml"));
    let port = free_port();
    std::fs::write(&lds_path, lds(port)).expect("lds");
    std::fs::write(&cds_path, cds(v1.port(), "")).expect("cds");
    let (mut b, pid_file) = start(&bootstrap(&lds_path, &cds_path), port, &dir);
    assert!(get_body(port).contains("hello from v1 "));
    // A keep-alive client from before the change.
    let mut kept = RawConn::connect(port);
    kept.send(&common::get("/"));
    assert_eq!(kept.expect_response(false).status(), 200);

    move_into_place(&cds_path, &cds(v2.port(), ""));
    assert!(
        wait_body(port, "hello from v2 ", WAIT),
        "the new CDS file was not applied\n{}",
        b.log()
    );
    assert!(in_log(&b, "new cds file"), "{}", b.log());
    // The client from before still gets answers on its connection.
    kept.send(&common::get("/"));
    assert_eq!(kept.expect_response(false).status(), 200);
    drop(kept);

    // Written in place, not moved: Envoy does not read it, nor does baton.
    let reloads = |b: &Baton| b.log().matches("reloading: started successor").count();
    let before = reloads(&b);
    std::fs::write(&cds_path, cds(v1.port(), "")).expect("write in place");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(reloads(&b), before, "{}", b.log());
    assert!(get_body(port).contains("hello from v2 "));

    // A bad version moved into place: the successor refuses it, naming the file and field;
    // the process in charge goes on serving what it had.
    move_into_place(&cds_path, &cds(v1.port(), "connect_timeout: -1s"));
    assert!(
        in_log(&b, "before taking over; still serving"),
        "{}",
        b.log()
    );
    let log = b.log();
    assert!(
        log.contains(&format!(
            "{}: resources[0].connect_timeout",
            cds_path.display()
        )),
        "{log}"
    );
    assert!(get_body(port).contains("hello from v2 "));

    stop_in_charge(&mut b, &pid_file);
}

#[test]
fn with_a_watched_directory_any_move_into_it_reloads_the_file() {
    // Kubernetes updates a ConfigMap volume by swapping its `..data` symlink: the file's own
    // name is never moved onto, so Envoy watches the directory instead.
    let (v1, v2) = (Upstream::start("v1"), Upstream::start("v2"));
    let dir = HotDir::new("xds_watched_dir");
    let (lds_path, cds_path) = (dir.path.join("lds.yaml"), dir.path.join("cds.yaml"));
    let port = free_port();
    std::fs::write(&lds_path, lds(port)).expect("lds");
    std::fs::write(&cds_path, cds(v1.port(), "")).expect("cds");
    let yaml = bootstrap_watching(&lds_path, &cds_path, Some(&dir.path));
    let (mut b, pid_file) = start(&yaml, port, &dir);
    assert!(get_body(port).contains("hello from v1 "));
    std::fs::write(&cds_path, cds(v2.port(), "")).expect("write in place");
    move_into_place(&dir.path.join("..data"), "another entry of the directory");
    assert!(
        wait_body(port, "hello from v2 ", WAIT),
        "a move into the watched directory did not reload\n{}",
        b.log()
    );
    // The successor moves its pid file into that directory too: the CDS file's text did not
    // change, so that is no new version (else every reload would start the next one).
    let first = b.pid().to_string();
    let deadline = Instant::now() + WAIT;
    while std::fs::read_to_string(&pid_file)
        .unwrap_or_default()
        .trim()
        == first
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let log = b.log();
    assert_eq!(
        log.matches("reloading: started successor").count(),
        1,
        "{log}"
    );
    stop_in_charge(&mut b, &pid_file);
}

#[test]
fn errors_in_a_resource_file_name_the_file_and_the_path_in_it() {
    let dir = HotDir::new("xds_errors");
    let (lds_path, cds_path) = (dir.path.join("lds.yaml"), dir.path.join("cds.yaml"));
    std::fs::write(&lds_path, lds(free_port())).expect("lds");
    std::fs::write(&cds_path, cds(free_port(), "lb_policy: NOT_A_POLICY")).expect("cds");
    let validate = |yaml: &str| {
        let (status, _, err) = run_baton(&["--mode", "validate", "--config-yaml", yaml], WAIT);
        assert_eq!(status.code(), Some(1), "{err}");
        err
    };
    let err = validate(&bootstrap(&lds_path, &cds_path));
    assert!(
        err.contains(&format!("{}: resources[0].lb_policy", cds_path.display())),
        "{err}"
    );
    // A resource of the wrong type.
    std::fs::write(&cds_path, lds(free_port())).expect("cds");
    let err = validate(&bootstrap(&lds_path, &cds_path));
    assert!(
        err.contains(&format!("{}: resources[0].@type", cds_path.display())),
        "{err}"
    );
    // A missing file, and an xDS server, by their paths in the bootstrap.
    let err = validate(&bootstrap(&lds_path, &dir.path.join("absent.yaml")));
    assert!(
        err.contains("dynamic_resources.cds_config.path_config_source.path: cannot read"),
        "{err}"
    );
    let err =
        validate("dynamic_resources:\n  cds_config:\n    api_config_source: { api_type: GRPC }\n");
    assert!(
        err.contains("dynamic_resources.cds_config.api_config_source: not supported"),
        "{err}"
    );
}

#[test]
fn serving_resource_files_needs_a_hot_restart_file() {
    let dir = HotDir::new("xds_no_restart");
    let (lds_path, cds_path) = (dir.path.join("lds.yaml"), dir.path.join("cds.yaml"));
    let up = Upstream::start("v1");
    std::fs::write(&lds_path, lds(free_port())).expect("lds");
    std::fs::write(&cds_path, cds(up.port(), "")).expect("cds");
    let (status, _, err) = run_baton(&["--config-yaml", &bootstrap(&lds_path, &cds_path)], WAIT);
    assert_ne!(status.code(), Some(0), "{err}");
    assert!(err.contains("--hot-restart-file"), "{err}");
}
