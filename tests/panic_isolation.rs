//! The last line of defence: a panic while handling one connection closes that connection
//! (and its upstream), is logged with the connection id and counted in `server.panics`, and
//! every other connection goes on being served. The panic comes from a fault-injection hook
//! that exists only in debug (test) builds: a request for the path named by
//! `BATON_TEST_PANIC_PATH` panics inside the exchange core.

mod admin_util;
mod common;

use admin_util::stat;
use common::*;

#[test]
fn a_panic_costs_one_connection_and_the_process_keeps_serving() {
    // This test binary runs this one test: setting the variable cannot race another test.
    std::env::set_var("BATON_TEST_PANIC_PATH", "/status/599");
    let (mut b, _up, s) = admin_util::start(Vec::new());

    // A keep-alive connection in the middle of its life, before and after the panic.
    let mut bystander = RawConn::connect(s.listen);
    bystander.send(&get("/status/200"));
    assert_eq!(bystander.expect_response(false).status(), 200);

    for i in 0..3 {
        let mut victim = RawConn::connect(s.listen);
        victim.send(&get("/status/599"));
        assert!(
            victim.closed_within(std::time::Duration::from_secs(5)),
            "the panicking connection is closed (round {i})"
        );
        assert!(b.try_exit().is_none(), "baton exited after a panic");
        bystander.send(&get("/status/201"));
        assert_eq!(bystander.expect_response(false).status(), 201);
        let mut fresh = RawConn::connect(s.listen);
        fresh.send(&get("/status/202"));
        assert_eq!(fresh.expect_response(false).status(), 202);
    }
    assert_eq!(stat(s.admin, "server.panics"), 3);
    // The panicked requests' records were ended: nothing is left counted as active.
    let active: Vec<(String, i64)> = admin_util::stats(s.admin)
        .into_iter()
        .filter(|(k, _)| k.ends_with("downstream_rq_active"))
        .collect();
    assert!(!active.is_empty(), "no downstream_rq_active gauge");
    assert!(
        active.iter().all(|(_, v)| *v == 0),
        "requests still active: {active:?}"
    );
    assert!(
        b.wait_log("panic while handling it; connection closed", IO_TIMEOUT),
        "the panic is logged with the connection: {}",
        b.log()
    );
}
