use super::*;
use crate::h2::frame::{flag, ErrorCode, Frame, PREFACE};

/// The server as the layer drives it: wire bytes kept until whole frames are consumed.
struct T {
    s: Server,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    err: bool,
}

impl T {
    fn new(opts: Options) -> T {
        let mut s = Server::new(opts);
        let mut out = Vec::new();
        Transcode::start(&mut s, &mut out);
        T {
            s,
            inbuf: Vec::new(),
            out,
            err: false,
        }
    }

    fn recv(&mut self, b: &[u8]) {
        self.inbuf.extend_from_slice(b);
        self.pump();
    }

    fn pump(&mut self) {
        while !self.inbuf.is_empty() && !self.err {
            match self.s.feed(&self.inbuf, &mut self.out) {
                Ok(0) => break,
                Ok(n) => {
                    self.inbuf.drain(..n);
                }
                Err(_) => self.err = true,
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let r = self.s.read_h1(buf, &mut self.out);
        self.pump();
        match r? {
            Some(n) => Ok(n),
            None => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write(&mut self, b: &[u8]) -> usize {
        self.s.write_h1(b, &mut self.out).unwrap()
    }

    fn drain(&mut self) {
        self.s.close(&mut self.out);
    }

    fn finished(&self) -> bool {
        self.s.dead || (self.s.goaway_sent && self.s.active.is_none())
    }
}

/// A frame we sent, owned, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Settings(Vec<Setting>),
    SettingsAck,
    Headers(u32, Vec<(String, String)>, bool),
    Data(u32, Vec<u8>, bool),
    Rst(u32, ErrorCode),
    GoAway(u32, ErrorCode),
    Ping([u8; 8]),
    Window(u32, u32),
}

/// Decodes everything the server queued (and marks it sent).
fn sent(s: &mut T, dec: &mut Decoder) -> Vec<Out> {
    let bytes = std::mem::take(&mut s.out);
    let mut out = Vec::new();
    let mut at = 0;
    let mut block: Option<(u32, Vec<u8>, bool)> = None;
    while let Ok(Some((f, n))) = frame::parse(&bytes[at..], frame::MAX_FRAME_LIMIT) {
        at += n;
        match f {
            Frame::Settings { ack: true, .. } => out.push(Out::SettingsAck),
            Frame::Settings { ack: false, params } => {
                out.push(Out::Settings(frame::settings(params).collect()))
            }
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                block: b,
            } => {
                block = Some((stream, b.to_vec(), end_stream));
                if end_headers {
                    out.push(decode_block(dec, block.take().unwrap()));
                }
            }
            Frame::Continuation {
                end_headers,
                block: b,
                ..
            } => {
                if let Some(x) = block.as_mut() {
                    x.1.extend_from_slice(b);
                }
                if end_headers {
                    out.push(decode_block(dec, block.take().unwrap()));
                }
            }
            Frame::Data {
                stream,
                end_stream,
                data,
                ..
            } => out.push(Out::Data(stream, data.to_vec(), end_stream)),
            Frame::RstStream { stream, code } => out.push(Out::Rst(stream, code)),
            Frame::GoAway {
                last_stream, code, ..
            } => out.push(Out::GoAway(last_stream, code)),
            Frame::Ping { data, .. } => out.push(Out::Ping(data)),
            Frame::WindowUpdate { stream, increment } => out.push(Out::Window(stream, increment)),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(at, bytes.len(), "whole frames only");
    out
}

fn decode_block(dec: &mut Decoder, (stream, b, end): (u32, Vec<u8>, bool)) -> Out {
    let mut fields = Vec::new();
    dec.decode(&b, 1 << 20, &mut |n, v| {
        fields.push((
            String::from_utf8_lossy(n).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        ))
    })
    .unwrap();
    Out::Headers(stream, fields, end)
}

fn hello() -> Vec<u8> {
    let mut b = PREFACE.to_vec();
    frame::write_settings(&mut b, &[]);
    b
}

fn headers(stream: u32, fields: &[(&str, &str)], end_stream: bool) -> Vec<u8> {
    let mut block = Vec::new();
    let mut it = fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    Encoder::new().encode(&mut it, &mut block);
    let mut out = Vec::new();
    frame::write_headers(
        &mut out,
        stream,
        &block,
        end_stream,
        frame::DEFAULT_MAX_FRAME,
    );
    out
}

const GET: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":authority", "example.com"),
    (":path", "/a?b"),
    ("accept", "*/*"),
];

fn read_all(s: &mut T) -> String {
    let mut buf = vec![0u8; 1 << 20];
    match s.read(&mut buf) {
        Ok(0) => "EOF".into(),
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => String::new(),
        Err(e) => format!("ERR {:?}", e.kind()),
    }
}

/// A server past the preface, with its SETTINGS and our ACK read.
fn started(opts: Options) -> (T, Decoder) {
    let mut s = T::new(opts);
    let mut dec = Decoder::new(4096);
    s.recv(&hello());
    let out = sent(&mut s, &mut dec);
    assert!(
        matches!(out.first(), Some(Out::Settings(p)) if p.contains(&Setting::MaxConcurrentStreams(1)))
    );
    assert_eq!(out.last(), Some(&Out::SettingsAck));
    (s, dec)
}

#[test]
fn a_get_becomes_an_http1_request_and_its_response_frames() {
    let (mut s, mut dec) = started(Options::default());
    s.recv(&headers(1, GET, true));
    assert_eq!(
        read_all(&mut s),
        "GET /a?b HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\n\r\n"
    );
    let resp =
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\nX-A: b\r\n\r\nhello";
    assert_eq!(s.write(resp), resp.len());
    let out = sent(&mut s, &mut dec);
    assert_eq!(
        out,
        vec![
            Out::Headers(
                1,
                vec![
                    (":status".into(), "200".into()),
                    ("content-length".into(), "5".into()),
                    ("x-a".into(), "b".into())
                ],
                false
            ),
            Out::Data(1, b"hello".to_vec(), true),
        ]
    );
    assert!(!s.finished());
    // The next stream is served the same way.
    s.recv(&headers(3, GET, true));
    assert!(read_all(&mut s).starts_with("GET /a?b HTTP/1.1\r\n"));
}

#[test]
fn a_chunked_response_becomes_data_frames_ending_the_stream() {
    let (mut s, mut dec) = started(Options::default());
    s.recv(&headers(1, GET, true));
    read_all(&mut s);
    let resp =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    assert_eq!(s.write(resp), resp.len());
    let out = sent(&mut s, &mut dec);
    let data: Vec<u8> = out
        .iter()
        .filter_map(|o| match o {
            Out::Data(1, d, _) => Some(d.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(data, b"abcde");
    assert!(matches!(out.last(), Some(Out::Data(1, _, true))));
    assert!(
        matches!(&out[0], Out::Headers(1, f, false) if !f.iter().any(|(n, _)| n == "transfer-encoding"))
    );
}

#[test]
fn a_body_without_content_length_is_chunked_for_the_core() {
    let (mut s, _) = started(Options::default());
    let post = [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "h"),
        (":path", "/up"),
    ];
    s.recv(&headers(1, &post, false));
    let mut d = Vec::new();
    frame::write_data(&mut d, 1, b"hello", false);
    frame::write_data(&mut d, 1, b" world", true);
    s.recv(&d);
    assert_eq!(
        read_all(&mut s),
        "POST /up HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n\
         5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    );
}

/// A POST's pseudo-headers.
const POST: [(&str, &str); 4] = [
    (":method", "POST"),
    (":scheme", "http"),
    (":authority", "h"),
    (":path", "/"),
];

fn data_frame(stream: u32, d: &[u8], end: bool) -> Vec<u8> {
    let mut f = Vec::new();
    frame::write_data(&mut f, stream, d, end);
    f
}

#[test]
fn a_body_with_content_length_goes_as_it_is_and_must_match() {
    let (mut s, mut dec) = started(Options::default());
    let mut post = POST.to_vec();
    post.push(("content-length", "5"));
    s.recv(&headers(1, &post, false));
    s.recv(&data_frame(1, b"hello", true));
    assert_eq!(
        read_all(&mut s),
        "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\nhello"
    );
    s.write(b"HTTP/1.1 204 No Content\r\n\r\n");
    sent(&mut s, &mut dec);
    // Stream 3 sends fewer bytes than it said: reset, and the core's request fails.
    s.recv(&headers(3, &post, false));
    s.recv(&data_frame(3, b"hel", true));
    let out = sent(&mut s, &mut dec);
    assert!(out.contains(&Out::Rst(3, ErrorCode::Protocol)), "{out:?}");
    assert!(read_all(&mut s).starts_with("POST"));
    assert_eq!(read_all(&mut s), "ERR ConnectionReset");
}

#[test]
fn a_connects_end_stream_is_the_cores_eof() {
    let (mut s, mut dec) = started(Options::default());
    let connect = [(":method", "CONNECT"), (":authority", "up:443")];
    s.recv(&headers(1, &connect, false));
    s.recv(&data_frame(1, b"bytes", false));
    assert_eq!(
        read_all(&mut s),
        "CONNECT up:443 HTTP/1.1\r\nhost: up:443\r\n\r\nbytes"
    );
    assert_eq!(read_all(&mut s), "");
    s.write(b"HTTP/1.1 200 OK\r\n\r\n");
    sent(&mut s, &mut dec);
    s.recv(&data_frame(1, b"more", true));
    assert_eq!(read_all(&mut s), "more");
    assert_eq!(read_all(&mut s), "EOF", "the client's half-close");
    // The tunnel's answer still goes out.
    s.write(b"answer");
    let out = sent(&mut s, &mut dec);
    assert!(
        out.contains(&Out::Data(1, b"answer".to_vec(), false)),
        "{out:?}"
    );
}

#[test]
fn trailers_with_a_pseudo_header_are_malformed() {
    let (mut s, mut dec) = started(Options::default());
    s.recv(&headers(1, &POST, false));
    s.recv(&data_frame(1, b"hello", false));
    s.recv(&headers(1, &[(":path", "/other"), ("x-t", "1")], true));
    let out = sent(&mut s, &mut dec);
    assert!(out.contains(&Out::Rst(1, ErrorCode::Protocol)), "{out:?}");
    assert!(read_all(&mut s).starts_with("POST"));
    assert_eq!(read_all(&mut s), "ERR ConnectionReset");
}

#[test]
fn streams_opened_while_one_runs_wait_their_turn_or_are_refused() {
    let (mut s, mut dec) = started(Options::default());
    s.recv(&headers(1, GET, true));
    // Without a body: it waits. With one: refused (the client retries it).
    s.recv(&headers(
        3,
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "h"),
            (":path", "/three"),
        ],
        true,
    ));
    s.recv(&headers(5, GET, false));
    let out = sent(&mut s, &mut dec);
    assert_eq!(out, vec![Out::Rst(5, ErrorCode::RefusedStream)]);
    assert!(read_all(&mut s).starts_with("GET /a?b"));
    assert_eq!(read_all(&mut s), "");
    s.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    sent(&mut s, &mut dec);
    assert_eq!(read_all(&mut s), "GET /three HTTP/1.1\r\nhost: h\r\n\r\n");
    s.write(b"HTTP/1.1 204 No Content\r\n\r\n");
    let out = sent(&mut s, &mut dec);
    assert!(
        matches!(&out[0], Out::Headers(3, f, true) if f[0].1 == "204"),
        "{out:?}"
    );
    // The header blocks were all decoded: the next one still decodes.
    s.recv(&headers(7, GET, true));
    assert!(read_all(&mut s).starts_with("GET /a?b"));
    // A response that closes the connection refuses the waiting ones.
    s.recv(&headers(9, GET, true));
    s.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let out = sent(&mut s, &mut dec);
    assert_eq!(
        out[1..],
        [
            Out::Rst(9, ErrorCode::RefusedStream),
            Out::GoAway(7, ErrorCode::NoError)
        ]
    );
}

#[test]
fn malformed_requests_end_the_connection_or_the_stream_as_configured() {
    // (Upper-case names are the e2e test's: the encoder writes names lower case.)
    let cases: &[&[(&str, &str)]] = &[
        &[(":method", "GET"), (":scheme", "http"), (":authority", "h")],
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("connection", "close"),
        ],
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("te", "gzip"),
        ],
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("x", "a\r\nb: c"),
        ],
        &[(":method", "GET"), (":scheme", "http"), (":path", "/a b")],
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":status", "200"),
        ],
        &[
            (":method", "GET"),
            ("x", "y"),
            (":scheme", "http"),
            (":path", "/"),
        ],
        &[
            (":method", "GET"),
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
        ],
    ];
    for fields in cases {
        let (mut s, mut dec) = started(Options::default());
        s.recv(&headers(1, fields, true));
        assert_eq!(
            sent(&mut s, &mut dec),
            vec![Out::GoAway(0, ErrorCode::Protocol)],
            "{fields:?}"
        );
        assert!(s.finished());
        assert_eq!(read_all(&mut s), "EOF", "{fields:?}");
        let opts = Options {
            stream_error_on_invalid: true,
            ..Options::default()
        };
        let (mut s, mut dec) = started(opts);
        s.recv(&headers(1, fields, true));
        assert_eq!(
            sent(&mut s, &mut dec),
            vec![Out::Rst(1, ErrorCode::Protocol)]
        );
        s.recv(&headers(3, GET, true));
        assert!(read_all(&mut s).starts_with("GET"), "{fields:?}");
    }
}

#[test]
fn ping_settings_and_preface_errors() {
    let (mut s, mut dec) = started(Options::default());
    let mut p = Vec::new();
    frame::write_ping(&mut p, *b"12345678", false);
    s.recv(&p);
    assert_eq!(sent(&mut s, &mut dec), vec![Out::Ping(*b"12345678")]);

    let mut s = T::new(Options::default());
    s.recv(b"GET / HTTP/1.1\r\n\r\n");
    let out = sent(&mut s, &mut dec);
    assert_eq!(out.last(), Some(&Out::GoAway(0, ErrorCode::Protocol)));

    // The first frame must be SETTINGS.
    let mut s = T::new(Options::default());
    let mut b = PREFACE.to_vec();
    frame::write_ping(&mut b, [0; 8], false);
    s.recv(&b);
    let out = sent(&mut s, &mut dec);
    assert_eq!(out.last(), Some(&Out::GoAway(0, ErrorCode::Protocol)));

    // The preface split anywhere is fine.
    let mut s = T::new(Options::default());
    for b in hello().iter().chain(headers(1, GET, true).iter()) {
        s.recv(&[*b]);
    }
    assert!(read_all(&mut s).starts_with("GET"));
}

#[test]
fn a_ping_flood_not_read_stops_being_taken() {
    let (mut s, _) = started(Options::default());
    let mut p = Vec::new();
    for _ in 0..20_000 {
        frame::write_ping(&mut p, [1; 8], false);
    }
    // The layer keeps what is not taken; the answers are not read (`out` grows).
    s.recv(&p);
    assert!(s.out.len() < 300 * 1024, "{}", s.out.len());
    assert!(!s.inbuf.is_empty());
}

#[test]
fn the_clients_window_bounds_what_is_taken_from_the_core() {
    let (mut s, mut dec) = started(Options::default());
    let mut set = Vec::new();
    frame::write_settings(&mut set, &[Setting::InitialWindowSize(10)]);
    s.recv(&set);
    s.recv(&headers(1, GET, true));
    read_all(&mut s);
    sent(&mut s, &mut dec);
    let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 25\r\n\r\n0123456789012345678901234";
    let n = s.write(resp);
    assert_eq!(n, resp.len() - 15);
    assert_eq!(s.write(&resp[n..]), 0);
    let mut w = Vec::new();
    frame::write_window_update(&mut w, 1, 100);
    s.recv(&w);
    assert_eq!(s.write(&resp[n..]), 15);
    let out = sent(&mut s, &mut dec);
    assert_eq!(
        out.last(),
        Some(&Out::Data(1, b"012345678901234".to_vec(), true))
    );
}

#[test]
fn connection_close_from_the_core_is_goaway_after_the_stream() {
    let (mut s, mut dec) = started(Options::default());
    s.recv(&headers(1, GET, true));
    read_all(&mut s);
    s.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    let out = sent(&mut s, &mut dec);
    assert_eq!(out.last(), Some(&Out::GoAway(1, ErrorCode::NoError)));
    assert!(s.finished());
    assert_eq!(read_all(&mut s), "EOF");
}

#[test]
fn a_drain_sends_goaway_and_lets_the_running_stream_finish() {
    let (mut s, mut dec) = started(Options::default());
    s.recv(&headers(1, GET, true));
    read_all(&mut s);
    s.drain();
    assert_eq!(
        sent(&mut s, &mut dec),
        vec![Out::GoAway(1, ErrorCode::NoError)]
    );
    assert!(!s.finished());
    s.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let out = sent(&mut s, &mut dec);
    assert_eq!(out.last(), Some(&Out::Data(1, b"ok".to_vec(), true)));
    assert!(s.finished());
    // A stream opened after the GOAWAY is not served.
    s.recv(&headers(3, GET, true));
    assert_eq!(read_all(&mut s), "EOF");
}

#[test]
fn a_client_reset_mid_response_makes_the_core_abandon_the_request() {
    let (mut s, mut dec) = started(Options::default());
    s.recv(&headers(1, GET, true));
    read_all(&mut s);
    s.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart");
    let mut r = Vec::new();
    frame::write_rst(&mut r, 1, ErrorCode::Cancel);
    s.recv(&r);
    assert_eq!(read_all(&mut s), "ERR ConnectionReset");
    // The core's remaining bytes are taken and dropped.
    assert_eq!(s.write(b"rest"), 4);
    let out = sent(&mut s, &mut dec);
    assert_eq!(out.last(), Some(&Out::GoAway(1, ErrorCode::NoError)));
}

#[test]
fn continuation_floods_and_window_violations_are_connection_errors() {
    let (mut s, mut dec) = started(Options::default());
    let mut block = Vec::new();
    let mut it = GET.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    Encoder::new().encode(&mut it, &mut block);
    let mut b = Vec::new();
    // HEADERS without END_HEADERS, then empty CONTINUATIONs for ever.
    let first = &block[..1];
    b.extend_from_slice(&(first.len() as u32).to_be_bytes()[1..]);
    b.extend_from_slice(&[0x1, flag::END_STREAM, 0, 0, 0, 1]);
    b.extend_from_slice(first);
    for _ in 0..100 {
        b.extend_from_slice(&[0, 0, 0, 0x9, 0, 0, 0, 0, 1]);
    }
    s.recv(&b);
    let out = sent(&mut s, &mut dec);
    assert_eq!(
        out.last(),
        Some(&Out::GoAway(0, ErrorCode::EnhanceYourCalm))
    );

    // DATA past the stream window.
    let (mut s, mut dec) = started(Options::default());
    let post = [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "h"),
        (":path", "/"),
    ];
    s.recv(&headers(1, &post, false));
    let mut d = Vec::new();
    for _ in 0..5 {
        frame::write_data(&mut d, 1, &[b'x'; 16_000], false);
    }
    s.recv(&d);
    let out = sent(&mut s, &mut dec);
    assert_eq!(out.last(), Some(&Out::GoAway(1, ErrorCode::FlowControl)));
}

#[test]
fn request_bytes_the_core_does_not_read_stop_the_reading_and_windows_follow_reads() {
    let opts = Options {
        stream_window: 1 << 20,
        conn_window: 1 << 20,
        ..Options::default()
    };
    let (mut s, mut dec) = started(opts);
    let post = [
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "h"),
        (":path", "/"),
        ("content-length", "200000"),
    ];
    s.recv(&headers(1, &post, false));
    let mut d = Vec::new();
    for _ in 0..10 {
        frame::write_data(&mut d, 1, &[b'x'; 16_000], false);
    }
    s.recv(&d);
    assert!(
        !s.inbuf.is_empty(),
        "frames wait while the core has enough to read"
    );
    assert!(
        sent(&mut s, &mut dec).is_empty(),
        "no window given back yet"
    );
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 20];
    while let Ok(n) = s.read(&mut buf) {
        total += n;
    }
    assert_eq!(
        total,
        160_000 + "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 200000\r\n\r\n".len()
    );
    assert!(s.inbuf.is_empty());
    // Under half of the large windows used: nothing to give back yet.
    assert!(sent(&mut s, &mut dec).is_empty());

    // With the default windows, what the core read is given back once half a window is.
    let (mut s, mut dec) = started(Options::default());
    s.recv(&headers(1, &post, false));
    let mut d = Vec::new();
    for _ in 0..4 {
        frame::write_data(&mut d, 1, &[b'x'; 16_000], false);
    }
    s.recv(&d);
    assert!(
        sent(&mut s, &mut dec).is_empty(),
        "nothing read yet: no window given back"
    );
    while s.read(&mut buf).is_ok() {}
    let out = sent(&mut s, &mut dec);
    assert_eq!(out, vec![Out::Window(0, 64_000), Out::Window(1, 64_000)]);
}

#[test]
fn split_cookies_are_joined_and_authority_wins_over_host() {
    let (mut s, _) = started(Options::default());
    let f = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "a.example"),
        (":path", "/"),
        ("host", "b.example"),
        ("cookie", "a=1"),
        ("cookie", "b=2"),
    ];
    s.recv(&headers(1, &f, true));
    assert_eq!(
        read_all(&mut s),
        "GET / HTTP/1.1\r\nhost: a.example\r\ncookie: a=1; b=2\r\n\r\n"
    );
}

#[test]
fn a_head_response_and_interim_heads() {
    let (mut s, mut dec) = started(Options::default());
    let head = [
        (":method", "HEAD"),
        (":scheme", "http"),
        (":authority", "h"),
        (":path", "/"),
    ];
    s.recv(&headers(1, &head, true));
    read_all(&mut s);
    s.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n");
    let out = sent(&mut s, &mut dec);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(&out[0], Out::Headers(1, f, false) if f[0].1 == "100"));
    assert!(matches!(&out[1], Out::Headers(1, f, true) if f[0].1 == "200"));
}
