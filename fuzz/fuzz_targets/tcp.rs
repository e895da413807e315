//! A TCP proxy connection in the exchange core: the exchange target's scripts (client and
//! upstream bytes, closes, resets, connect failures, time, handovers), with the first byte
//! choosing the proxy's settings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| baton::fuzz_harness::tcp(data));
