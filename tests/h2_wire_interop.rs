//! The HTTP/2 wire layer (`h2::frame`, `h2::hpack`) against real peers over loopback, before
//! any transcoder uses it: as a client of nghttpd (its responses use the dynamic table and
//! Huffman codes; our request blocks open with a size update and are split over CONTINUATION
//! when large), and as a minimal server for curl (whose request blocks index into the table
//! across requests on one connection).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ::baton::h2::frame::{self, ErrorCode, Frame, Setting};
use ::baton::h2::hpack::{Decoder, Encoder};
use common::{free_port, local, IO_TIMEOUT};

type Fields = Vec<(String, String)>;

/// A frame reader over a TCP stream with our parser.
struct Wire {
    s: TcpStream,
    buf: Vec<u8>,
}

/// An owned copy of what a test needs from a frame.
#[derive(Debug)]
#[allow(dead_code)] // some fields are only read through Debug, in panic messages
enum Got {
    Headers(u32, bool, bool, Vec<u8>),
    Continuation(u32, bool, Vec<u8>),
    Data(u32, bool, Vec<u8>),
    Settings(bool),
    Ping(bool, [u8; 8]),
    GoAway(ErrorCode),
    Rst(u32, ErrorCode),
    Other,
}

impl Wire {
    fn new(s: TcpStream) -> Wire {
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        Wire { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write");
    }

    fn next(&mut self) -> Got {
        loop {
            let parsed = frame::parse(&self.buf, frame::DEFAULT_MAX_FRAME).expect("frame");
            if let Some((f, used)) = parsed {
                let got = match f {
                    Frame::Headers {
                        stream,
                        end_stream,
                        end_headers,
                        block,
                    } => Got::Headers(stream, end_stream, end_headers, block.to_vec()),
                    Frame::Continuation {
                        stream,
                        end_headers,
                        block,
                    } => Got::Continuation(stream, end_headers, block.to_vec()),
                    Frame::Data {
                        stream,
                        end_stream,
                        data,
                        ..
                    } => Got::Data(stream, end_stream, data.to_vec()),
                    Frame::Settings { ack, .. } => Got::Settings(ack),
                    Frame::Ping { ack, data } => Got::Ping(ack, data),
                    Frame::GoAway { code, .. } => Got::GoAway(code),
                    Frame::RstStream { stream, code } => Got::Rst(stream, code),
                    _ => Got::Other,
                };
                self.buf.drain(..used);
                return got;
            }
            let mut chunk = [0u8; 16_384];
            let n = self.s.read(&mut chunk).expect("read");
            assert!(n > 0, "peer closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The rest of a header block whose HEADERS frame did not end it.
    fn continuation(&mut self, stream: u32, block: &mut Vec<u8>) {
        loop {
            match self.next() {
                Got::Continuation(s, end, b) if s == stream => {
                    block.extend_from_slice(&b);
                    if end {
                        return;
                    }
                }
                Got::Settings(false) => self.send(&ack()),
                other => panic!("inside a header block: {other:?}"),
            }
        }
    }
}

fn ack() -> Vec<u8> {
    let mut v = Vec::new();
    frame::write_settings_ack(&mut v);
    v
}

fn decode(d: &mut Decoder, block: &[u8]) -> Fields {
    let mut got = Vec::new();
    d.decode(block, 1 << 20, &mut |n, v| {
        got.push((
            String::from_utf8_lossy(n).into_owned(),
            String::from_utf8_lossy(v).into_owned(),
        ))
    })
    .expect("header block decodes");
    got
}

fn value<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

struct Nghttpd(Child);

impl Drop for Nghttpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn connect_when_up(port: u16) -> TcpStream {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        match TcpStream::connect(local(port)) {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("nghttpd did not listen: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Three GETs on one connection to nghttpd (h2c): its response heads (Huffman, entries it
/// indexes on the first and references later) decode, bodies arrive whole, and a request with
/// a 40 KB header (HEADERS + 2 CONTINUATION) is taken. PING and SETTINGS are answered.
#[test]
fn client_role_against_nghttpd() {
    let dir = std::env::temp_dir().join(format!("h2wire-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(dir.join("file"), &body).expect("file");
    let port = free_port();
    let _server = Nghttpd(
        Command::new("nghttpd")
            .args(["--no-tls", "-d"])
            .arg(&dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run nghttpd (Debian nghttp2-server)"),
    );
    let mut w = Wire::new(connect_when_up(port));
    let mut out = frame::PREFACE.to_vec();
    frame::write_settings(
        &mut out,
        &[Setting::EnablePush(0), Setting::InitialWindowSize(1 << 20)],
    );
    frame::write_window_update(&mut out, 0, 1 << 20);
    frame::write_ping(&mut out, *b"baton-h2", false);
    w.send(&out);

    let mut enc = Encoder::new();
    let mut dec = Decoder::new(4096);
    let authority = format!("127.0.0.1:{port}");
    let big = "x".repeat(40_000);
    let mut pinged = false;
    for (i, stream) in [1u32, 3, 5].into_iter().enumerate() {
        let mut fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":scheme", b"http"),
            (b":path", b"/file"),
            (b":authority", authority.as_bytes()),
            (b"user-agent", b"baton-h2-wire-test"),
            (b"accept-encoding", b"gzip, deflate"),
        ];
        if i == 2 {
            fields.push((b"x-big", big.as_bytes()));
        }
        let mut block = Vec::new();
        enc.encode(&mut fields.into_iter(), &mut block);
        let mut out = Vec::new();
        frame::write_headers(&mut out, stream, &block, true, frame::DEFAULT_MAX_FRAME);
        if i == 2 {
            assert!(out.len() > 2 * frame::DEFAULT_MAX_FRAME as usize);
        }
        w.send(&out);

        let mut head = None;
        let mut got_body = Vec::new();
        loop {
            match w.next() {
                Got::Settings(false) => w.send(&ack()),
                Got::Settings(true) | Got::Other => {}
                Got::Ping(true, data) => {
                    assert_eq!(&data, b"baton-h2");
                    pinged = true;
                }
                Got::Ping(false, data) => {
                    let mut out = Vec::new();
                    frame::write_ping(&mut out, data, true);
                    w.send(&out);
                }
                Got::Headers(s, end_stream, end_headers, mut block) => {
                    assert_eq!(s, stream);
                    if !end_headers {
                        w.continuation(s, &mut block);
                    }
                    head = Some(decode(&mut dec, &block));
                    assert!(!end_stream, "a body follows");
                }
                Got::Data(s, end, data) => {
                    assert_eq!(s, stream);
                    got_body.extend_from_slice(&data);
                    // Give the windows back so nghttpd keeps sending.
                    let mut out = Vec::new();
                    if !data.is_empty() {
                        frame::write_window_update(&mut out, 0, data.len() as u32);
                        if !end {
                            frame::write_window_update(&mut out, s, data.len() as u32);
                        }
                        w.send(&out);
                    }
                    if end {
                        break;
                    }
                }
                other => panic!("stream {stream}: {other:?}"),
            }
        }
        let head = head.expect("response head");
        assert_eq!(value(&head, ":status"), Some("200"), "{head:?}");
        assert_eq!(value(&head, "content-length"), Some("100000"));
        assert!(value(&head, "server").is_some_and(|s| s.contains("nghttpd")));
        assert_eq!(got_body, body, "stream {stream}");
    }
    assert!(pinged, "PING answered");
    // nghttpd referenced its dynamic table: our decoder holds what it indexed.
    let (size, entries) = dec.table();
    assert!(size > 0 && entries.count() > 0);
    let mut out = Vec::new();
    frame::write_goaway(&mut out, 0, ErrorCode::NoError);
    w.send(&out);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A one-connection HTTP/2 server made of the wire layer only: it answers each request with a
/// body listing the decoded request fields.
/// Returns the size of each request's header block.
fn tiny_server(listener: TcpListener, requests: usize) -> Vec<usize> {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + IO_TIMEOUT;
    let s = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if Instant::now() > deadline => panic!("no client: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    };
    s.set_nonblocking(false).expect("blocking");
    let mut w = Wire::new(s);
    let mut preface = [0u8; 24];
    w.s.read_exact(&mut preface).expect("preface");
    assert_eq!(&preface[..], frame::PREFACE);
    let mut out = Vec::new();
    frame::write_settings(&mut out, &[Setting::MaxConcurrentStreams(1)]);
    w.send(&out);
    let mut dec = Decoder::new(4096);
    let mut enc = Encoder::new();
    let mut blocks = Vec::new();
    while blocks.len() < requests {
        match w.next() {
            Got::Settings(false) => w.send(&ack()),
            Got::Headers(stream, _, end_headers, mut block) => {
                if !end_headers {
                    w.continuation(stream, &mut block);
                }
                let fields = decode(&mut dec, &block);
                blocks.push(block.len());
                let mut text = String::new();
                for (n, v) in &fields {
                    text.push_str(&format!("{n}: {v}\n"));
                }
                let len = text.len().to_string();
                let head: Vec<(&[u8], &[u8])> = vec![
                    (b":status", b"200"),
                    (b"content-type", b"text/plain"),
                    (b"content-length", len.as_bytes()),
                    (b"x-served-by", b"baton h2 wire test"),
                ];
                let mut block = Vec::new();
                enc.encode(&mut head.into_iter(), &mut block);
                let mut out = Vec::new();
                frame::write_headers(&mut out, stream, &block, false, frame::DEFAULT_MAX_FRAME);
                frame::write_data(&mut out, stream, text.as_bytes(), true);
                w.send(&out);
            }
            Got::Data(..) | Got::Settings(true) | Got::Other | Got::Ping(..) => {}
            Got::GoAway(ErrorCode::NoError) => break,
            other => panic!("server got {other:?}"),
        }
    }
    // Read what the client still sends (acks, its GOAWAY) until it closes: closing with
    // unread bytes would reset the connection and could lose answers it has not read yet.
    let _ = w.s.set_read_timeout(Some(IO_TIMEOUT));
    let mut sink = [0u8; 4096];
    while matches!(w.s.read(&mut sink), Ok(n) if n > 0) {}
    blocks
}

/// Runs `client` (its command line gets the URL appended `times` times) against the tiny
/// server; returns its stdout.
fn against_tiny_server(client: &[&str], times: usize) -> (String, Vec<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = thread::spawn(move || tiny_server(listener, times));
    // Distinct URLs: nghttp fetches a repeated one once.
    let urls = (0..times).map(|i| format!("http://127.0.0.1:{port}/some/path?q={i}"));
    let (program, args) = client.split_first().expect("a client");
    let o = Command::new(program)
        .args(args)
        .args(urls)
        .output()
        .expect("run the client (curl; nghttp from Debian nghttp2-client)");
    assert!(
        o.status.success(),
        "{client:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let blocks = server.join().expect("server thread");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    for i in 0..times {
        let request = format!(
            ":method: GET\n:path: /some/path?q={i}\n:scheme: http\n:authority: 127.0.0.1:{port}\n"
        );
        assert_eq!(text.matches(&request).count(), 1, "{text}");
    }
    assert_eq!(
        text.matches("x-custom: a rather long custom header value\n")
            .count(),
        times
    );
    assert_eq!(
        text.matches("cookie: session=0123456789abcdef\n").count(),
        times
    );
    (text, blocks)
}

const HEADERS: [&str; 4] = [
    "-H",
    "x-custom: a rather long custom header value",
    "-H",
    "Cookie: session=0123456789abcdef",
];

/// curl with prior knowledge: our response head is what curl prints. (One request: curl
/// 7.88.1 fails a second request on a reused prior-knowledge connection with "Error in the
/// HTTP2 framing layer" against nghttpd too.)
#[test]
fn server_role_with_curl() {
    let mut client = vec![
        "curl",
        "-sS",
        "--max-time",
        "60",
        "--http2-prior-knowledge",
        "-i",
    ];
    client.extend(HEADERS);
    let (text, _) = against_tiny_server(&client, 1);
    assert!(text.starts_with("HTTP/2 200"), "{text}");
    assert!(text.contains("x-served-by: baton h2 wire test"));
}

/// nghttp, three requests on one connection (one at a time: we advertise one concurrent
/// stream): the later requests' blocks refer to entries the first one added (nghttp2's encoder
/// indexes) and decode to the same fields.
#[test]
fn server_role_with_nghttp_reusing_its_table() {
    let mut client = vec!["nghttp", "-t", "60"];
    client.extend(HEADERS);
    let (_, blocks) = against_tiny_server(&client, 3);
    // The custom headers and the cookie went into the table with the first request.
    assert!(blocks[1] + 40 < blocks[0], "{blocks:?}");
}
