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

/// Segments a socket received, and those of them that carried data (Linux `tcp_info`:
/// `tcpi_segs_in` at byte 140, `tcpi_data_segs_in` at 152, both since Linux 4.6).
fn segments_in(s: &std::net::TcpStream) -> (u32, u32) {
    use std::os::fd::AsRawFd;
    let mut info = [0u8; 232];
    let mut len = info.len() as nix::libc::socklen_t;
    // SAFETY: the buffer is `len` bytes long and the kernel writes at most `len` bytes.
    let rc = unsafe {
        nix::libc::getsockopt(
            s.as_raw_fd(),
            nix::libc::IPPROTO_TCP,
            nix::libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    assert!(
        len >= 156,
        "tcp_info too short ({len} bytes): kernel before 4.6"
    );
    let at = |i: usize| u32::from_ne_bytes([info[i], info[i + 1], info[i + 2], info[i + 3]]);
    (at(140), at(152))
}

#[test]
fn the_fin_rides_on_the_last_bytes_of_the_answer() {
    let (b, _up) = proxy_with_upstream();
    for path in ["/delay/200", "/bytes/1024"] {
        let mut c = RawConn::connect(b.port);
        c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        let r = c.expect_response(false);
        assert_eq!(r.status(), 200);
        assert_clean_end(&mut c);
        // Segments without data: the SYN-ACK and at most one ACK of the request. A FIN of its
        // own would be one more (a packet each way per closed connection).
        let (all, data) = segments_in(&c.stream);
        assert!(
            all - data <= 2,
            "{path}: {all} segments in, {data} with data: the FIN came alone"
        );
    }
}

/// Whether the kernel still ties baton's end of the connection from `client_port` to
/// `port` to a descriptor (`/proc/net/tcp` inode not 0): baton has not closed it yet. `None`
/// when the socket is gone altogether.
fn held_open(port: u16, client_port: u16) -> Option<bool> {
    let (local, remote) = (proc_addr(port), proc_addr(client_port));
    proc_tcp().into_iter().find_map(|f| {
        (f.get(1) == Some(&local) && f.get(2) == Some(&remote))
            .then(|| f.get(9).is_some_and(|inode| inode != "0"))
    })
}

/// A closing connection whose client still has a request in flight: baton writes the last
/// answer, shuts down its side and waits `delayed_close_timeout` for the client's FIN,
/// discarding what the client sends meanwhile (no reset); with `0s` it closes the socket as
/// soon as the answer is out, as Envoy does.
#[test]
fn delayed_close_timeout_is_how_long_a_closing_connection_waits_for_the_clients_fin() {
    let send_last = |port: u16| {
        let mut c = RawConn::connect(port);
        c.send(
            b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n\
              GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        let r = c.expect_response(false);
        assert_eq!(r.status(), 200);
        assert_clean_end(&mut c);
        let client_port = c.stream.local_addr().expect("addr").port();
        (c, client_port)
    };
    // Longer than Envoy's default (1 s) and baton's former fixed wait (2 s).
    let extra = Extra {
        hcm: vec!["delayed_close_timeout: 30s".into()],
        ..Extra::default()
    };
    let (b, _up) = proxy_with_upstream_and(&extra, "STATIC");
    let (mut c, client_port) = send_last(b.port);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(held_open(b.port, client_port), Some(true));
    // Bytes now are read and dropped: the connection is not reset.
    c.send(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(held_open(b.port, client_port), Some(true));
    drop(c);

    let extra = Extra {
        hcm: vec!["delayed_close_timeout: 0s".into()],
        ..Extra::default()
    };
    let (b, _up) = proxy_with_upstream_and(&extra, "STATIC");
    let (_c, client_port) = send_last(b.port);
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    while held_open(b.port, client_port) == Some(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "baton kept the socket although delayed_close_timeout is 0s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
