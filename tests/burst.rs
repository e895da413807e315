//! A burst of new clients, each sending one request at once: baton throttles its connects to
//! the upstream (a bounded number in flight, the rest wait for a slot or a pooled connection)
//! instead of opening one connection per request at the same instant and overflowing the
//! upstream's accept backlog. Every request must succeed. The burst stays below the cluster's
//! default `max_pending_requests` (1024, as in Envoy): all its requests wait at once, and
//! past that limit the excess would be answered 503 `UO`, as Envoy answers it.

mod common;

use common::*;
use std::thread;

const CLIENTS: usize = 1000;

#[test]
fn a_burst_of_new_clients_is_served_without_503s() {
    raise_fd_limit(16_384);
    let (b, up) = proxy_with_upstream();
    let port = b.port;
    let workers: Vec<_> = (0..8)
        .map(|_| {
            thread::spawn(move || {
                // Each worker opens its share of connections first, then sends on all of them
                // back to back, so the requests reach baton together.
                let mut conns: Vec<RawConn> =
                    (0..CLIENTS / 8).map(|_| RawConn::connect(port)).collect();
                for c in &mut conns {
                    c.send(&get("/"));
                }
                conns
                    .iter_mut()
                    .map(|c| c.expect_response(false).status())
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for w in workers {
        statuses.extend(w.join().expect("client thread panicked"));
    }
    assert_eq!(statuses.len(), CLIENTS);
    let bad: Vec<&u16> = statuses.iter().filter(|&&s| s != 200).collect();
    assert!(bad.is_empty(), "{} of {CLIENTS} failed: {bad:?}", bad.len());
    assert!(
        up.requests() >= CLIENTS as u64,
        "the upstream saw {} requests",
        up.requests()
    );
    // The burst really hit the connect limit, and the requests that waited were served.
    assert!(
        b.log().contains("waiting for a connection to"),
        "no request ever waited for a connect slot: the burst did not exercise the queue"
    );
}
