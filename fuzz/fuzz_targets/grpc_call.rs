//! Fuzz target: see `baton::fuzz_harness::grpc_call` (the stable replay test runs the same body).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| baton::fuzz_harness::grpc_call(data));
