//! Accepting is bounded per readiness event (a listener under a connection storm must not
//! starve established connections), and what is left in the accept queue after a batch is
//! taken in the next round: the edge-triggered listener raises no new event for connections
//! that were already queued. Here baton is stopped while 500 clients connect and send their
//! request, so they all sit in the backlog behind one edge; every one must be answered.

mod common;

use common::*;
use nix::sys::signal::Signal;

const CLIENTS: usize = 500;

#[test]
fn a_backlog_queued_behind_one_edge_is_all_served() {
    // Two descriptors per client (`RawConn` clones its socket).
    raise_fd_limit(4096);
    let (b, up) = proxy_with_upstream();
    let mut first = RawConn::connect(b.port);
    first.send(&get("/"));
    assert_eq!(first.expect_response(false).status(), 200);

    b.signal(Signal::SIGSTOP);
    let mut conns: Vec<RawConn> = (0..CLIENTS).map(|_| RawConn::connect(b.port)).collect();
    for c in &mut conns {
        c.send(&get("/"));
    }
    b.signal(Signal::SIGCONT);

    // A client left in the queue waits for an edge that never comes: stop at the first one
    // not answered (within the common I/O timeout) instead of waiting on every other.
    for (i, c) in conns.iter_mut().enumerate() {
        let status = match c.response(false) {
            Ok(Some(r)) => r.status(),
            _ => 0,
        };
        assert_eq!(status, 200, "client {i} of {CLIENTS} not answered");
    }
    assert!(
        up.requests() > CLIENTS as u64,
        "upstream saw {}",
        up.requests()
    );
    // The established connection is still served after the storm.
    first.send(&get("/"));
    assert_eq!(first.expect_response(false).status(), 200);
}
