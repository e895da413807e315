use super::*;
use crate::h2::frame::ErrorCode;

fn request(message: &[u8]) -> Call {
    Call::new(&Request {
        authority: "authz",
        path: "/p.S/M",
        timeout: Duration::from_millis(250),
        metadata: &[("x-tenant".into(), "t".into())],
        message,
    })
}

/// A server's header block.
fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    let mut it = fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    hpack::Encoder::new().encode(&mut it, &mut b);
    b
}

fn headers(out: &mut Vec<u8>, fields: &[(&str, &str)], end: bool) {
    frame::write_headers(out, STREAM, &block(fields), end, frame::DEFAULT_MAX_FRAME);
}

const OK_HEAD: &[(&str, &str)] = &[(":status", "200"), ("content-type", "application/grpc")];

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut d = vec![0];
    d.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    d.extend_from_slice(msg);
    d
}

/// Feeds `wire` in pieces of `step`; the first result.
fn run(call: &mut Call, wire: &[u8], step: usize) -> Option<Result<Vec<u8>, Failure>> {
    for piece in wire.chunks(step.max(1)) {
        if let Some(r) = call.feed(piece, false) {
            return Some(r);
        }
    }
    None
}

/// The client's frames after the preface: (type, flags, stream, payload).
fn frames(wire: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut rest = wire.strip_prefix(frame::PREFACE).unwrap();
    let mut out = Vec::new();
    while rest.len() >= 9 {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
        out.push((rest[3], rest[4], stream, rest[9..9 + len].to_vec()));
        rest = &rest[9 + len..];
    }
    out
}

#[test]
fn the_request_has_grpc_headers_and_one_framed_message() {
    let mut c = request(b"hello");
    let wire = std::mem::take(c.out());
    let f = frames(&wire);
    let kinds: Vec<u8> = f.iter().map(|x| x.0).collect();
    assert_eq!(
        kinds,
        [
            frame::kind::SETTINGS,
            frame::kind::WINDOW_UPDATE,
            frame::kind::HEADERS,
            frame::kind::DATA
        ]
    );
    let mut got = Vec::new();
    hpack::Decoder::new(4096)
        .decode(&f[2].3, 1 << 16, &mut |n, v| {
            got.push(format!(
                "{}={}",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(v)
            ))
        })
        .unwrap();
    assert_eq!(
        got,
        [
            ":method=POST",
            ":scheme=http",
            ":path=/p.S/M",
            ":authority=authz",
            "content-type=application/grpc",
            "te=trailers",
            "grpc-timeout=250m",
            "x-tenant=t"
        ]
    );
    assert_eq!(f[3].1, frame::flag::END_STREAM);
    assert_eq!(f[3].3, framed(b"hello"));
}

#[test]
fn a_response_in_any_pieces_gives_its_message_and_acks_settings_and_pings() {
    let mut wire = Vec::new();
    frame::write_settings(&mut wire, &[Setting::MaxFrameSize(20_000)]);
    frame::write_ping(&mut wire, [7; 8], false);
    headers(&mut wire, OK_HEAD, false);
    let body = framed(b"answer");
    frame::write_data(&mut wire, STREAM, &body[..3], false);
    frame::write_data(&mut wire, STREAM, &body[3..], false);
    headers(&mut wire, &[("grpc-status", "0")], true);
    for step in [1, 7, wire.len()] {
        let mut c = request(b"q");
        c.out().clear();
        assert_eq!(run(&mut c, &wire, step), Some(Ok(b"answer".to_vec())));
        let sent = {
            let mut w = frame::PREFACE.to_vec();
            w.extend_from_slice(c.out());
            frames(&w)
        };
        assert!(sent
            .iter()
            .any(|f| f.0 == frame::kind::SETTINGS && f.1 == frame::flag::ACK));
        assert!(sent
            .iter()
            .any(|f| f.0 == frame::kind::PING && f.1 == frame::flag::ACK && f.3 == [7; 8]));
    }
}

#[test]
fn statuses_and_broken_answers_are_failures() {
    let trailers_only = |fields: &[(&str, &str)]| {
        let mut w = Vec::new();
        headers(&mut w, fields, true);
        w
    };
    let mut unavailable = OK_HEAD.to_vec();
    unavailable.extend([("grpc-status", "14"), ("grpc-message", "down")]);
    let cases: Vec<(Vec<u8>, Failure)> = vec![
        (
            trailers_only(&unavailable),
            Failure::Status(14, "down".into()),
        ),
        (
            trailers_only(&[(":status", "503")]),
            Failure::Malformed("HTTP status other than 200"),
        ),
        (
            trailers_only(&[(":status", "200"), ("content-type", "text/plain")]),
            Failure::Malformed("not application/grpc"),
        ),
        (trailers_only(OK_HEAD), Failure::Malformed("no grpc-status")),
        (
            {
                let mut w = Vec::new();
                headers(&mut w, OK_HEAD, false);
                headers(&mut w, &[("grpc-status", "0")], true);
                w
            },
            Failure::Malformed("no response message"),
        ),
        (
            {
                let mut w = Vec::new();
                headers(&mut w, OK_HEAD, false);
                let mut m = framed(b"abc");
                m[0] = 1;
                frame::write_data(&mut w, STREAM, &m, false);
                headers(&mut w, &[("grpc-status", "0")], true);
                w
            },
            Failure::Malformed("compressed message"),
        ),
        (
            {
                let mut w = Vec::new();
                frame::write_rst(&mut w, STREAM, ErrorCode::Cancel);
                w
            },
            Failure::Broken("the stream was reset"),
        ),
        (
            {
                let mut w = Vec::new();
                frame::write_goaway(&mut w, 0, ErrorCode::NoError);
                w
            },
            Failure::Broken("GOAWAY before the call was taken"),
        ),
        (
            {
                let mut w = Vec::new();
                frame::write_data(&mut w, STREAM, b"early", false);
                w
            },
            Failure::Broken("HTTP/2 protocol error"),
        ),
        (
            b"garbage that is not HTTP/2 at all".to_vec(),
            Failure::Broken("HTTP/2 protocol error"),
        ),
    ];
    for (wire, want) in cases {
        let mut c = request(b"q");
        assert_eq!(run(&mut c, &wire, 5), Some(Err(want.clone())), "{want:?}");
    }
    let mut c = request(b"q");
    assert_eq!(
        c.feed(b"", true),
        Some(Err(Failure::Broken(
            "the connection closed before the call ended"
        )))
    );
}

#[test]
fn a_server_cannot_make_it_hold_more_than_its_window() {
    let mut c = request(b"q");
    let mut head = Vec::new();
    headers(&mut head, OK_HEAD, false);
    assert_eq!(c.feed(&head, false), None);
    let chunk = vec![0u8; 16 * 1024];
    let mut end = None;
    for _ in 0..(MAX_MESSAGE as usize / chunk.len() + 2) {
        let mut w = Vec::new();
        frame::write_data(&mut w, STREAM, &chunk, false);
        if let Some(r) = c.feed(&w, false) {
            end = Some(r);
            break;
        }
    }
    assert_eq!(
        end,
        Some(Err(Failure::Broken("flow-control window exceeded")))
    );
    // An endless header block is refused too.
    let mut c = request(b"q");
    let mut w = Vec::new();
    let b = vec![0x40u8; 16 * 1024];
    frame::write_headers(&mut w, STREAM, &b[..100], false, frame::DEFAULT_MAX_FRAME);
    // The first frame lacks END_HEADERS when more follows: make it so by hand.
    w[4] &= !frame::flag::END_HEADERS;
    let mut r = c.feed(&w, false);
    for _ in 0..8 {
        if r.is_some() {
            break;
        }
        let mut cont = Vec::new();
        cont.extend_from_slice(&[0x00, 0x40, 0x00, frame::kind::CONTINUATION, 0, 0, 0, 0, 1]);
        cont.extend_from_slice(&b);
        r = c.feed(&cont, false);
    }
    assert_eq!(r, Some(Err(Failure::Malformed("header block too large"))));
}

#[test]
fn flow_control_holds_a_large_message_until_the_window_opens() {
    let big = vec![b'x'; 100_000];
    let mut c = request(&big);
    let sent: usize = frames(c.out())
        .iter()
        .filter(|f| f.0 == frame::kind::DATA)
        .map(|f| f.3.len())
        .sum();
    assert_eq!(sent, frame::DEFAULT_WINDOW as usize);
    c.out().clear();
    let mut w = Vec::new();
    frame::write_window_update(&mut w, 0, 50_000);
    frame::write_window_update(&mut w, STREAM, 50_000);
    assert_eq!(c.feed(&w, false), None);
    let mut all = frame::PREFACE.to_vec();
    all.extend_from_slice(c.out());
    let rest: Vec<_> = frames(&all)
        .into_iter()
        .filter(|f| f.0 == frame::kind::DATA)
        .collect();
    assert_eq!(
        rest.iter().map(|f| f.3.len()).sum::<usize>(),
        big.len() + 5 - frame::DEFAULT_WINDOW as usize
    );
    assert_eq!(rest.last().unwrap().1, frame::flag::END_STREAM);
}

#[test]
fn timeouts_fit_eight_digits() {
    assert_eq!(grpc_timeout(Duration::from_micros(1500)), "2m");
    assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
    assert_eq!(grpc_timeout(Duration::from_secs(u64::MAX)), "99999999H");
}
