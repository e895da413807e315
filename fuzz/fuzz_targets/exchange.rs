//! The HTTP/1 exchange core: client and upstream byte streams interleaved with closes,
//! resets, connect failures and time, as the fuzzer chooses.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| baton::fuzz_harness::exchange(data));
