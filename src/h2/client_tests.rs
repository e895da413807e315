use super::*;

/// A decoded frame of ours, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Headers(u32, bool, Vec<(String, String)>),
    Data(u32, bool, Vec<u8>),
    Settings(Vec<Setting>),
    SettingsAck,
    Ping(bool, [u8; 8]),
    Rst(u32, ErrorCode),
    GoAway(u32, ErrorCode),
    Window(u32, u32),
}

/// Our wire bytes as frames (a leading preface is checked and skipped).
fn frames(mut wire: &[u8]) -> Vec<Sent> {
    if let Some(rest) = wire.strip_prefix(frame::PREFACE) {
        wire = rest;
    }
    let mut dec = Decoder::new(4096);
    let mut v = Vec::new();
    let mut pending: Option<(u32, bool, Vec<u8>)> = None;
    while !wire.is_empty() {
        let (f, n) = frame::parse(wire, frame::MAX_FRAME_LIMIT)
            .expect("our frames parse")
            .expect("whole frames");
        wire = &wire[n..];
        let mut done = |stream: u32, end: bool, block: &[u8], v: &mut Vec<Sent>| {
            let mut fields = Vec::new();
            dec.decode(block, 1 << 20, &mut |n, val| {
                fields.push((
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(val).into_owned(),
                ))
            })
            .expect("our header blocks decode");
            v.push(Sent::Headers(stream, end, fields));
        };
        match f {
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                block,
            } => {
                if end_headers {
                    done(stream, end_stream, block, &mut v);
                } else {
                    pending = Some((stream, end_stream, block.to_vec()));
                }
            }
            Frame::Continuation {
                end_headers, block, ..
            } => {
                let (s, e, mut b) = pending.take().expect("HEADERS first");
                b.extend_from_slice(block);
                if end_headers {
                    done(s, e, &b, &mut v);
                } else {
                    pending = Some((s, e, b));
                }
            }
            Frame::Data {
                stream,
                end_stream,
                data,
                ..
            } => v.push(Sent::Data(stream, end_stream, data.to_vec())),
            Frame::Settings { ack: true, .. } => v.push(Sent::SettingsAck),
            Frame::Settings { params, .. } => {
                v.push(Sent::Settings(frame::settings(params).collect()))
            }
            Frame::Ping { ack, data } => v.push(Sent::Ping(ack, data)),
            Frame::RstStream { stream, code } => v.push(Sent::Rst(stream, code)),
            Frame::GoAway {
                last_stream, code, ..
            } => v.push(Sent::GoAway(last_stream, code)),
            Frame::WindowUpdate { stream, increment } => v.push(Sent::Window(stream, increment)),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    v
}

/// A server's header block (through the encoder the client's decoder pairs with; literal
/// fields written by hand for names with capitals, which the encoder lower-cases).
fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    if fields
        .iter()
        .any(|(n, _)| n.bytes().any(|b| b.is_ascii_uppercase()))
    {
        for (n, v) in fields {
            // RFC 7541 §6.2.2, a new name, no Huffman; short strings (7-bit lengths).
            out.push(0);
            out.push(n.len() as u8);
            out.extend_from_slice(n.as_bytes());
            out.push(v.len() as u8);
            out.extend_from_slice(v.as_bytes());
        }
        return out;
    }
    let mut it = fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    Encoder::new().encode(&mut it, &mut out);
    out
}

fn headers(stream: u32, fields: &[(&str, &str)], end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_headers(
        &mut out,
        stream,
        &block(fields),
        end,
        frame::DEFAULT_MAX_FRAME,
    );
    out
}

fn data(stream: u32, d: &[u8], end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_data(&mut out, stream, d, end);
    out
}

struct T {
    c: Client,
    out: Vec<u8>,
}

impl T {
    fn new(opts: Options) -> T {
        let mut c = Client::new(opts, false);
        let mut out = Vec::new();
        c.start(&mut out);
        T { c, out }
    }

    fn plain() -> T {
        T::new(Options::default())
    }

    /// Our frames since the last call.
    fn sent(&mut self) -> Vec<Sent> {
        frames(&std::mem::take(&mut self.out))
    }

    /// Writes all of `h1` (panics if the window stops it).
    fn write(&mut self, h1: &[u8]) {
        let mut at = 0;
        while at < h1.len() {
            let n = self.c.write_h1(&h1[at..], &mut self.out).expect("write");
            assert!(n > 0, "write refused at {at}");
            at += n;
        }
    }

    /// Feeds server bytes; returns the HTTP/1 bytes they made and the last read's result.
    fn feed(&mut self, wire: &[u8]) -> (Vec<u8>, io::Result<Option<usize>>) {
        let mut h1 = Vec::new();
        let mut at = 0;
        loop {
            let mut buf = [0u8; 1000];
            let r = self.c.read_h1(&mut buf, &mut self.out);
            if let Ok(Some(n)) = r {
                if n > 0 {
                    h1.extend_from_slice(&buf[..n]);
                    continue;
                }
            }
            if at >= wire.len() || !matches!(r, Ok(None)) {
                return (h1, r);
            }
            match self.c.feed(&wire[at..], &mut self.out) {
                Ok(0) => return (h1, self.c.read_h1(&mut buf, &mut self.out)),
                Ok(n) => at += n,
                Err(e) => return (h1, Err(e)),
            }
        }
    }
}

fn settings(s: &[Setting]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_settings(&mut out, s);
    out
}

fn fields(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn preface_settings_and_connection_window() {
    let mut t = T::new(Options {
        stream_window: 65_535,
        conn_window: 1 << 20,
        table_size: 1024,
    });
    assert!(t.out.starts_with(frame::PREFACE));
    assert_eq!(
        t.sent(),
        vec![
            Sent::Settings(vec![
                Setting::EnablePush(0),
                Setting::InitialWindowSize(65_535),
                Setting::HeaderTableSize(1024),
            ]),
            Sent::Window(0, (1 << 20) - 65_535),
        ]
    );
}

#[test]
fn get_becomes_headers_and_the_response_http1() {
    let mut t = T::plain();
    t.sent();
    t.write(b"GET /a?b HTTP/1.1\r\nHost: example.com:8080\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\nX-A: b\r\nTE: trailers\r\nKeep-Alive: 5\r\n\r\n");
    assert_eq!(
        t.sent(),
        vec![Sent::Headers(
            1,
            true,
            fields(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", "example.com:8080"),
                (":path", "/a?b"),
                ("x-a", "b"),
                ("te", "trailers"),
            ])
        )]
    );
    let mut wire = settings(&[Setting::MaxConcurrentStreams(100)]);
    wire.extend(headers(
        1,
        &[(":status", "200"), ("content-length", "5"), ("x-b", "c")],
        false,
    ));
    wire.extend(data(1, b"hel", false));
    wire.extend(data(1, b"lo", true));
    let (h1, end) = t.feed(&wire);
    assert_eq!(
        String::from_utf8_lossy(&h1),
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-b: c\r\n\r\nhello"
    );
    assert!(matches!(end, Ok(None)));
    assert_eq!(t.sent(), vec![Sent::SettingsAck]);
    assert!(t.c.reusable());
    // The next request goes on stream 3.
    t.write(b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(matches!(t.sent().first(), Some(Sent::Headers(3, true, _))));
}

#[test]
fn a_response_without_length_is_chunked_with_trailers() {
    let mut t = T::plain();
    t.write(b"POST /rpc HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
    let s = t.sent();
    assert_eq!(s.len(), 4, "{s:?}");
    assert!(matches!(&s[2], Sent::Headers(1, false, _)));
    assert_eq!(s[3], Sent::Data(1, true, b"abc".to_vec()));
    let mut wire = headers(
        1,
        &[(":status", "200"), ("content-type", "application/grpc")],
        false,
    );
    wire.extend(data(1, b"xyz", false));
    wire.extend(headers(
        1,
        &[("grpc-status", "0"), ("grpc-message", "ok")],
        true,
    ));
    let (h1, _) = t.feed(&wire);
    assert_eq!(
        String::from_utf8_lossy(&h1),
        "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n"
    );
    assert!(t.c.reusable());
}

#[test]
fn head_204_304_and_informational_heads_have_no_body() {
    let mut t = T::plain();
    t.write(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
    let (h1, _) = t.feed(&headers(
        1,
        &[(":status", "200"), ("content-length", "10")],
        true,
    ));
    assert_eq!(h1, b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n");
    t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let (h1, _) = t.feed(&headers(3, &[(":status", "204")], true));
    assert_eq!(h1, b"HTTP/1.1 204 No Content\r\n\r\n");
    t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut wire = headers(5, &[(":status", "103"), ("link", "</a>")], false);
    wire.extend(headers(5, &[(":status", "304"), ("etag", "x")], false));
    wire.extend(data(5, b"", true));
    let (h1, _) = t.feed(&wire);
    assert_eq!(
        String::from_utf8_lossy(&h1),
        "HTTP/1.1 103 Unknown\r\nlink: </a>\r\n\r\nHTTP/1.1 304 Not Modified\r\netag: x\r\n\r\n"
    );
    // A 200 that ends at once without a length gets content-length: 0.
    t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let (h1, _) = t.feed(&headers(7, &[(":status", "200")], true));
    assert_eq!(h1, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
}

#[test]
fn the_peers_window_bounds_the_request_body() {
    let mut t = T::plain();
    let _ = t.feed(&settings(&[Setting::InitialWindowSize(10)]));
    t.sent();
    let h1 = b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 25\r\n\r\n0123456789abcdefghijklmno";
    let n = t.c.write_h1(h1, &mut t.out).expect("write");
    assert_eq!(n, h1.len() - 15);
    assert_eq!(t.c.write_h1(&h1[n..], &mut t.out).ok(), Some(0));
    assert!(t.c.write_blocked());
    let s = t.sent();
    assert_eq!(
        s.last(),
        Some(&Sent::Data(1, false, b"0123456789".to_vec()))
    );
    let mut wu = Vec::new();
    frame::write_window_update(&mut wu, 1, 100);
    let _ = t.feed(&wu);
    assert!(!t.c.write_blocked());
    t.write(&h1[n..]);
    assert_eq!(
        t.sent(),
        vec![Sent::Data(1, true, b"abcdefghijklmno".to_vec())]
    );
    // The connection window binds too.
    let mut t = T::plain();
    t.write(b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 70000\r\n\r\n");
    let body = vec![b'x'; 70_000];
    let n = t.c.write_h1(&body, &mut t.out).expect("write");
    assert_eq!(n, 65_535);
    let data_frames = t
        .sent()
        .iter()
        .filter(|f| matches!(f, Sent::Data(..)))
        .count();
    assert_eq!(data_frames, 4, "16 KiB frames");
}

#[test]
fn a_chunked_request_body_is_decoded_into_data() {
    let mut t = T::plain();
    t.write(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    t.write(b"2;x=y\r\nde\r\n0\r\nTrailer-A: 1\r\n\r\n");
    let s = t.sent();
    let Some(Sent::Headers(1, false, f)) = s.get(2) else {
        panic!("{s:?}")
    };
    assert!(!f.iter().any(|(n, _)| n == "transfer-encoding"));
    assert_eq!(
        &s[3..],
        &[
            Sent::Data(1, false, b"abc".to_vec()),
            Sent::Data(1, true, b"de".to_vec()),
        ]
    );
    // The last chunk alone ends the stream with an empty DATA.
    let mut t = T::plain();
    t.write(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n");
    t.sent();
    t.write(b"0\r\n\r\n");
    assert_eq!(t.sent(), vec![Sent::Data(1, true, Vec::new())]);
}

#[test]
fn a_reset_stream_fails_the_read_and_goaway_ends_reuse() {
    let mut t = T::plain();
    t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut rst = Vec::new();
    frame::write_rst(&mut rst, 1, ErrorCode::Internal);
    let (_, end) = t.feed(&rst);
    assert_eq!(
        end.err().map(|e| e.kind()),
        Some(io::ErrorKind::ConnectionReset)
    );
    // REFUSED_STREAM: not processed, EOF (the core retries it elsewhere).
    let mut t = T::plain();
    t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut rst = Vec::new();
    frame::write_rst(&mut rst, 1, ErrorCode::RefusedStream);
    let (_, end) = t.feed(&rst);
    assert_eq!(end.ok(), Some(Some(0)));
    assert!(!t.c.reusable());
    // GOAWAY that leaves the stream unprocessed: EOF before the response.
    let mut t = T::plain();
    t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut ga = Vec::new();
    frame::write_goaway(&mut ga, 0, ErrorCode::NoError);
    let (h1, end) = t.feed(&ga);
    assert!(h1.is_empty());
    assert_eq!(end.ok(), Some(Some(0)));
    assert!(!t.c.reusable());
    // GOAWAY covering the stream: it completes, with connection: close for the core.
    let mut t = T::plain();
    t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut wire = Vec::new();
    frame::write_goaway(&mut wire, 1, ErrorCode::NoError);
    wire.extend(headers(
        1,
        &[(":status", "200"), ("content-length", "0")],
        true,
    ));
    let (h1, _) = t.feed(&wire);
    assert_eq!(
        h1,
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    assert!(!t.c.reusable());
    let e =
        t.c.write_h1(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", &mut t.out);
    assert!(e.is_err());
}

#[test]
fn our_window_updates_follow_what_was_received() {
    let mut t = T::new(Options {
        stream_window: 65_535,
        conn_window: 65_535,
        table_size: 4096,
    });
    t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    t.sent();
    let mut wire = headers(1, &[(":status", "200")], false);
    for _ in 0..3 {
        wire.extend(data(1, &[b'z'; 16_000], false));
    }
    let (h1, _) = t.feed(&wire);
    assert!(h1.len() > 48_000);
    let s = t.sent();
    assert!(s.contains(&Sent::Window(0, 48_000)), "{s:?}");
    assert!(s.contains(&Sent::Window(1, 48_000)), "{s:?}");
    // More than the window: a flow-control error.
    let mut t = T::new(Options {
        stream_window: 65_535,
        conn_window: 65_535,
        table_size: 4096,
    });
    t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut wire = headers(1, &[(":status", "200")], false);
    let mut big = Vec::new();
    frame::write_data(&mut big, 1, &vec![0u8; 70_000], false);
    wire.extend(big);
    let (_, end) = t.feed(&wire);
    assert!(
        end.is_err()
            || t.sent()
                .iter()
                .any(|f| matches!(f, Sent::Rst(..) | Sent::GoAway(..)))
    );
}

#[test]
fn malformed_responses_reset_the_stream() {
    for bad in [
        vec![(":status", "200"), ("X-Upper", "1")],
        vec![("x-a", "1"), (":status", "200")],
        vec![(":status", "200"), ("connection", "close")],
        vec![(":status", "200"), ("x-a", "a\r\nb")],
        vec![(":status", "200"), ("x-a", "bell\u{7}")],
        vec![(":status", "2000")],
        vec![(":status", "200"), ("content-length", "x")],
        vec![(":status", "200"), ("content-length", "+2")],
        vec![(":status", "200"), (":status", "404")],
        vec![("x-a", "1")],
    ] {
        let mut t = T::plain();
        t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        t.sent();
        let (h1, end) = t.feed(&headers(1, &bad, false));
        assert!(h1.is_empty(), "{bad:?}");
        assert!(end.is_err(), "{bad:?}");
        assert_eq!(t.sent(), vec![Sent::Rst(1, ErrorCode::Protocol)], "{bad:?}");
    }
    // END_STREAM on a head whose content-length is not 0: no body can follow (found by
    // the hostile-input hunt: the head went to the client, which waited for the timeout).
    let mut t = T::plain();
    t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    t.sent();
    let (h1, end) = t.feed(&headers(
        1,
        &[(":status", "200"), ("content-length", "5")],
        true,
    ));
    assert!(h1.is_empty(), "{:?}", String::from_utf8_lossy(&h1));
    assert!(end.is_err());
    assert_eq!(t.sent(), vec![Sent::Rst(1, ErrorCode::Protocol)]);
    // ... which HEAD, 204 and 304 may do.
    let mut t = T::plain();
    t.write(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
    let (h1, _) = t.feed(&headers(
        1,
        &[(":status", "200"), ("content-length", "5")],
        true,
    ));
    assert!(h1.starts_with(b"HTTP/1.1 200 OK\r\n"), "{h1:?}");
    // Trailers carry no pseudo-header (RFC 9113 §8.1).
    let mut t = T::plain();
    t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    t.sent();
    let mut wire = headers(1, &[(":status", "200")], false);
    wire.extend(data(1, b"abc", false));
    wire.extend(headers(1, &[(":status", "200"), ("x-t", "1")], true));
    let (h1, end) = t.feed(&wire);
    assert!(!String::from_utf8_lossy(&h1).contains("0\r\n"), "{h1:?}");
    assert!(end.is_err());
    // A content-length the body does not match.
    let mut t = T::plain();
    t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut wire = headers(1, &[(":status", "200"), ("content-length", "2")], false);
    wire.extend(data(1, b"abc", true));
    let (_, end) = t.feed(&wire);
    assert!(end.is_err());
}

#[test]
fn connection_errors_send_goaway() {
    let mut push = Vec::new();
    // PUSH_PROMISE: type 5 on stream 1, promised stream 2, empty block.
    push.extend_from_slice(&[0, 0, 4, 5, 4, 0, 0, 0, 1, 0, 0, 0, 2]);
    let mut idle = Vec::new();
    frame::write_data(&mut idle, 9, b"x", false);
    let mut cont = Vec::new();
    cont.extend(headers(1, &[(":status", "200")], false));
    cont[4] &= !frame::flag::END_HEADERS;
    cont.extend(data(1, b"x", false));
    for wire in [push, idle, cont] {
        let mut t = T::plain();
        t.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        t.sent();
        let (_, end) = t.feed(&wire);
        assert!(end.is_err());
        assert!(matches!(
            t.sent().last(),
            Some(Sent::GoAway(0, ErrorCode::Protocol))
        ));
        assert!(!t.c.reusable());
    }
}

#[test]
fn ping_is_answered_and_idle_frames_are_consumed() {
    let mut t = T::plain();
    t.sent();
    let mut wire = Vec::new();
    frame::write_ping(&mut wire, *b"12345678", false);
    frame::write_window_update(&mut wire, 0, 1000);
    wire.extend(settings(&[]));
    let (h1, end) = t.feed(&wire);
    assert!(h1.is_empty());
    assert!(matches!(end, Ok(None)));
    assert_eq!(
        t.sent(),
        vec![Sent::Ping(true, *b"12345678"), Sent::SettingsAck]
    );
    assert!(t.c.reusable());
    t.c.peer_eof();
    let mut b = [0u8; 4];
    assert_eq!(t.c.read_h1(&mut b, &mut t.out).ok(), Some(Some(0)));
    assert!(!t.c.reusable());
}

#[test]
fn upgrades_and_connect_are_refused() {
    for req in [
        &b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"[..],
        b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    ] {
        let mut t = T::plain();
        let e = t.c.write_h1(req, &mut t.out).err().map(|e| e.kind());
        assert_eq!(e, Some(io::ErrorKind::Unsupported));
    }
}

#[test]
fn a_head_in_pieces_and_https_scheme() {
    let mut c = Client::new(Options::default(), true);
    let mut out = Vec::new();
    c.start(&mut out);
    out.clear();
    let h1 = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    for b in h1 {
        assert_eq!(c.write_h1(&[*b], &mut out).ok(), Some(1));
    }
    let s = frames(&out);
    let Some(Sent::Headers(1, true, f)) = s.first() else {
        panic!("{s:?}")
    };
    assert!(f.contains(&(":scheme".to_string(), "https".to_string())));
}
