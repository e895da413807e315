//! `baton --mode validate` against the real binary: the seed configs pass, and each class of
//! config error exits 1 with the field path on stderr.

use std::path::PathBuf;
use std::process::{Command, Output};

fn baton(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run baton")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The seed config with one textual replacement, written to a temp file.
fn variant(name: &str, from: &str, to: &str) -> PathBuf {
    let seed = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs/envoy.yaml"),
    )
    .expect("seed config");
    assert!(seed.contains(from), "{from:?} not in the seed config");
    let path = std::env::temp_dir().join(format!("baton-cli-{}-{name}.yaml", std::process::id()));
    std::fs::write(&path, seed.replacen(from, to, 1)).expect("write temp config");
    path
}

#[test]
fn seed_configs_validate() {
    for f in ["configs/envoy.yaml", "configs/envoy_v2.yaml"] {
        let out = baton(&["--mode", "validate", "-c", f]);
        assert_eq!(text(&out.stdout), format!("configuration '{f}' OK\n"));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
}

#[test]
fn seed_command_line_validates() {
    let out = baton(&[
        "-c",
        "configs/envoy.yaml",
        "--service-cluster",
        "initial-envoy",
        "--service-node",
        "initial-node",
        "--hot-restart-file=/tmp/envoy_restart.sock",
        "--mode",
        "validate",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn config_errors_exit_1_naming_the_field() {
    let hcm = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";
    let cases: Vec<(&str, &str, &str, String)> = vec![
        (
            "lb",
            "lb_policy: ROUND_ROBIN",
            "lb_policy: MAGLEV_X",
            "static_resources.clusters[0].lb_policy: unknown value \"MAGLEV_X\" (supported: ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV)".into(),
        ),
        (
            "port",
            "port_value: 10000",
            "port_value: 70000",
            "static_resources.listeners[0].address.socket_address.port_value: 70000 out of range".into(),
        ),
        (
            "bigport",
            "port_value: 10000",
            "port_value: 99999999999999999999",
            "static_resources.listeners[0].address.socket_address.port_value: 99999999999999999999 out of range".into(),
        ),
        (
            "cluster",
            "cluster: some_service\n",
            "cluster: nope\n",
            format!("{hcm}.route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster \"nope\""),
        ),
        (
            "field",
            "    connect_timeout: 0.25s\n",
            "    connect_timeout: 0.25s\n    outlier_detection: {monitors: []}\n",
            "static_resources.clusters[0].outlier_detection.monitors: not supported by baton (outlier detection monitors)".into(),
        ),
        (
            "type",
            "http_connection_manager.v3.HttpConnectionManager",
            "http_connection_manager.v2.HttpConnectionManager",
            format!("{hcm}.@type: \"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v2.HttpConnectionManager\" is an Envoy v2 type (removed in v3)"),
        ),
        (
            "duration",
            "connect_timeout: 0.25s",
            "connect_timeout: 250ms",
            "static_resources.clusters[0].connect_timeout: invalid duration \"250ms\"".into(),
        ),
    ];
    for (name, from, to, want) in cases {
        let path = variant(name, from, to);
        let out = baton(&["--mode", "validate", "-c", path.to_str().unwrap()]);
        let _ = std::fs::remove_file(&path);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(&want), "{name}: {stderr:?} lacks {want:?}");
        assert!(out.stdout.is_empty(), "{name}: nothing on stdout");
    }
}

#[test]
fn every_error_of_a_file_is_printed_one_per_line() {
    let path = variant(
        "several",
        "lb_policy: ROUND_ROBIN",
        "lb_policy: cluster_provided\n    hosts: []",
    );
    let out = baton(&["--mode", "validate", "-c", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "baton: configuration '{}': 2 errors:\n  \
             static_resources.clusters[0].hosts: \"hosts\" is Envoy v2 (removed in v3): use load_assignment\n  \
             static_resources.clusters[0].lb_policy: value \"CLUSTER_PROVIDED\" is not supported by baton \
             (supported: ROUND_ROBIN, LEAST_REQUEST, RING_HASH, RANDOM, MAGLEV)\n",
            path.display()
        )
    );
}

/// `--mode validate -c configs/envoy.yaml --config-yaml INLINE`.
fn validate_merged(inline: &str) -> Output {
    baton(&[
        "--mode",
        "validate",
        "-c",
        "configs/envoy.yaml",
        "--config-yaml",
        inline,
    ])
}

#[test]
fn inline_yaml_merges_over_file() {
    let out = validate_merged(
        "static_resources: {clusters: [{name: some_service, type: STRICT_DNS, dns_lookup_family: V5}]}",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("static_resources.clusters[0].dns_lookup_family: unknown value \"V5\""),
        "{}",
        text(&out.stderr)
    );
    let out = validate_merged(
        "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 9901}}}",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// A command-line argument that is not UTF-8 (here a config path with a Latin-1 byte) is
/// refused with exit 1 and a message naming it; `std::env::args` used to panic on it (exit
/// 101 and a backtrace).
#[test]
fn a_non_utf8_argument_exits_1_without_a_panic() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    for args in [
        vec![
            OsStr::new("--mode"),
            OsStr::new("validate"),
            OsStr::new("-c"),
            OsStr::from_bytes(b"/tmp/caf\xe9.yaml"),
        ],
        vec![OsStr::from_bytes(b"--\xff")],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(&args)
            .output()
            .expect("run baton");
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("is not valid UTF-8"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
