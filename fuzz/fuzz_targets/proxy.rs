//! Requests and upstream answers through the exchange core with the proxy's own environment:
//! routing, the HTTP filters, tracing, header building and the access log, with a config that
//! turns every request-path feature on.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| baton::fuzz_harness::proxy(data));
