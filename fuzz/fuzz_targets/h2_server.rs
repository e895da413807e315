//! Fuzz target: see `baton::fuzz_harness::h2_server` (the stable replay test runs the same body).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| baton::fuzz_harness::h2_server(data));
