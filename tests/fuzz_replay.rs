//! Replays the committed fuzz corpora and crash regressions through the same harness bodies the
//! fuzz targets run, on the stable toolchain, so every `cargo test` re-checks what fuzzing
//! found without needing nightly or libFuzzer.

use std::fs;
use std::panic;
use std::path::Path;

type Harness = fn(&[u8]);

const TARGETS: &[(&str, Harness)] = &[
    ("request_head", baton::fuzz_harness::request_head),
    ("response_head", baton::fuzz_harness::response_head),
    ("chunked", baton::fuzz_harness::chunked),
    ("restart_frame", baton::fuzz_harness::restart_frame),
    ("config", baton::fuzz_harness::config),
    ("exchange", baton::fuzz_harness::exchange),
    ("tcp", baton::fuzz_harness::tcp),
    ("proxy", baton::fuzz_harness::proxy),
    ("proxy_protocol", baton::fuzz_harness::proxy_protocol),
    ("h2_wire", baton::fuzz_harness::h2_wire),
    ("h2_client", baton::fuzz_harness::h2_client),
    ("h2_server", baton::fuzz_harness::h2_server),
    ("grpc_call", baton::fuzz_harness::grpc_call),
];

/// Targets that also replay another target's inputs (the same script format).
const SHARED: &[(&str, &str)] = &[("tcp", "exchange")];

/// Runs `harness` on every file of `fuzz/<kind>/<target>/`; returns how many ran and which
/// files panicked (all of them are run so one failure shows every broken input).
fn replay(kind: &str, target: &str, harness: Harness, failures: &mut Vec<String>) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return 0;
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    for p in &paths {
        let data = fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
        if panic::catch_unwind(|| harness(&data)).is_err() {
            failures.push(p.display().to_string());
        }
    }
    paths.len()
}

#[test]
fn fuzz_corpora_and_regressions_replay_cleanly() {
    let mut failures = Vec::new();
    for (target, harness) in TARGETS {
        let mut corpus = replay("corpus", target, *harness, &mut failures);
        let mut regressions = replay("regressions", target, *harness, &mut failures);
        for (_, other) in SHARED.iter().filter(|(t, _)| t == target) {
            corpus += replay("corpus", other, *harness, &mut failures);
            regressions += replay("regressions", other, *harness, &mut failures);
        }
        eprintln!("{target}: {corpus} corpus + {regressions} regression inputs");
        assert!(corpus + regressions > 0, "{target}: nothing to replay");
    }
    assert!(failures.is_empty(), "inputs that panic: {failures:#?}");
}
