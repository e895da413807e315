//! The last response of a connection reaches the client whole, followed by a clean end (a
//! FIN, never a reset). A plain client that asked for the close and sent nothing more is
//! closed at once; one whose bytes may still come gets the write shutdown and the lingering
//! read (docs/architecture.md), so its unread bytes cannot reset the answer.

mod common;

use std::io::Read;

use common::*;

/// Reads what follows the response: the connection must end cleanly with nothing more.
fn assert_clean_end(c: &mut RawConn) {
    assert!(c.reader.buffered().is_empty(), "bytes after the response");
    let mut rest = Vec::new();
    match c.reader.get_mut().read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "{} bytes after the response", rest.len()),
        Err(e) => panic!("connection did not end cleanly: {e}"),
    }
}

#[test]
fn a_client_that_asks_to_close_gets_the_whole_answer_then_a_fin() {
    let (b, _up) = proxy_with_upstream();
    for size in [1024usize, 1 << 20] {
        let mut c = RawConn::connect(b.port);
        c.send(
            format!("GET /bytes/{size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let r = c.expect_response(false);
        assert_eq!(r.status(), 200);
        assert_eq!(r.body.len(), size);
        assert_clean_end(&mut c);
    }
}

#[test]
fn bytes_after_a_close_request_do_not_reset_the_answer() {
    let (b, _up) = proxy_with_upstream();
    let mut c = RawConn::connect(b.port);
    // A request pipelined behind `Connection: close` is not answered; baton lingers, so the
    // unread request does not turn its close into a reset that would cut the 1 MiB answer.
    c.send(
        b"GET /bytes/1048576 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n\
          GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let r = c.expect_response(false);
    assert_eq!((r.status(), r.body.len()), (200, 1 << 20));
    assert_clean_end(&mut c);
}
