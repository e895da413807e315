//! Unit tests of the HTTP/2 frame parser and writers (RFC 9113 §4, §6).
use super::*;

/// A raw frame: header fields then payload.
fn raw(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let len = (payload.len() as u32).to_be_bytes();
    v.extend_from_slice(&[len[1], len[2], len[3], ty, flags]);
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn one(bytes: &[u8]) -> Result<Frame<'_>, ConnError> {
    match parse(bytes, DEFAULT_MAX_FRAME)? {
        Some((f, used)) => {
            assert_eq!(used, bytes.len(), "whole frame used");
            Ok(f)
        }
        None => panic!("incomplete frame"),
    }
}

fn code(bytes: &[u8]) -> ErrorCode {
    match one(bytes) {
        Err(e) => e.code,
        Ok(f) => panic!("accepted {f:?}"),
    }
}

#[test]
fn incomplete_frames_need_more() {
    let f = raw(kind::PING, 0, 0, &[1; 8]);
    for cut in 0..f.len() {
        assert_eq!(
            parse(&f[..cut], DEFAULT_MAX_FRAME),
            Ok(None),
            "cut at {cut}"
        );
    }
    // Two frames back to back: the first one's length is reported.
    let mut two = f.clone();
    two.extend_from_slice(&raw(kind::SETTINGS, flag::ACK, 0, &[]));
    let (_, used) = parse(&two, DEFAULT_MAX_FRAME).unwrap().unwrap();
    assert_eq!(used, 17);
    assert_eq!(
        parse(&two[used..], DEFAULT_MAX_FRAME).unwrap().unwrap().0,
        Frame::Settings {
            ack: true,
            params: &[]
        }
    );
}

#[test]
fn oversized_frame_fails_on_its_header_alone() {
    let mut head = raw(kind::DATA, 0, 1, &[]);
    head[0..3].copy_from_slice(&[0, 0x40, 0x01]); // 16385
    assert_eq!(
        parse(&head, DEFAULT_MAX_FRAME).unwrap_err().code,
        ErrorCode::FrameSize
    );
    // Exactly max_frame is fine; a larger advertised maximum admits more.
    let big = raw(kind::DATA, 0, 1, &[0; 16_384]);
    assert!(parse(&big, DEFAULT_MAX_FRAME).unwrap().is_some());
    let bigger = raw(kind::DATA, 0, 1, &[0; 16_385]);
    assert!(parse(&bigger, 20_000).unwrap().is_some());
}

#[test]
fn data_padding_and_flow_length() {
    let f = raw(kind::DATA, flag::END_STREAM, 3, b"hello");
    assert_eq!(
        one(&f).unwrap(),
        Frame::Data {
            stream: 3,
            end_stream: true,
            data: b"hello",
            flow_len: 5
        }
    );
    // Pad Length 2, "hi", two padding octets: flow control counts all 5.
    let f = raw(kind::DATA, flag::PADDED, 1, &[2, b'h', b'i', 0, 0]);
    assert_eq!(
        one(&f).unwrap(),
        Frame::Data {
            stream: 1,
            end_stream: false,
            data: b"hi",
            flow_len: 5
        }
    );
    // Padding exactly filling the rest is allowed (empty data)...
    let f = raw(kind::DATA, flag::PADDED, 1, &[2, 0, 0]);
    assert!(matches!(one(&f).unwrap(), Frame::Data { data: &[], .. }));
    // ...one more is PROTOCOL_ERROR (§6.1).
    let f = raw(kind::DATA, flag::PADDED, 1, &[3, 0, 0]);
    assert_eq!(code(&f), ErrorCode::Protocol);
    // PADDED without the Pad Length octet is too short.
    assert_eq!(
        code(&raw(kind::DATA, flag::PADDED, 1, &[])),
        ErrorCode::FrameSize
    );
    assert_eq!(code(&raw(kind::DATA, 0, 0, b"x")), ErrorCode::Protocol);
    // The reserved bit of the stream identifier is ignored (§4.1).
    let f = raw(kind::DATA, 0, 0x8000_0005, b"");
    assert!(matches!(one(&f).unwrap(), Frame::Data { stream: 5, .. }));
}

#[test]
fn headers_padding_and_priority() {
    let f = raw(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        1,
        b"\x82\x86",
    );
    assert_eq!(
        one(&f).unwrap(),
        Frame::Headers {
            stream: 1,
            end_stream: true,
            end_headers: true,
            block: b"\x82\x86"
        }
    );
    // PRIORITY strips 5 octets, PADDED the pad length and padding.
    let f = raw(
        kind::HEADERS,
        flag::PRIORITY | flag::PADDED,
        1,
        &[1, 0, 0, 0, 3, 16, 0x82, 0],
    );
    assert_eq!(
        one(&f).unwrap(),
        Frame::Headers {
            stream: 1,
            end_stream: false,
            end_headers: false,
            block: b"\x82"
        }
    );
    let f = raw(kind::HEADERS, flag::PRIORITY, 1, &[0, 0, 0, 3, 16, 0x82]);
    assert!(matches!(
        one(&f).unwrap(),
        Frame::Headers { block: b"\x82", .. }
    ));
    // Priority fields that do not fit; padding longer than what is left.
    assert_eq!(
        code(&raw(kind::HEADERS, flag::PRIORITY, 1, &[0, 0, 0])),
        ErrorCode::FrameSize
    );
    assert_eq!(
        code(&raw(
            kind::HEADERS,
            flag::PRIORITY | flag::PADDED,
            1,
            &[2, 0, 0, 0, 3, 16, 0]
        )),
        ErrorCode::Protocol
    );
    assert_eq!(code(&raw(kind::HEADERS, 0, 0, b"")), ErrorCode::Protocol);
}

#[test]
fn continuation_and_push_promise() {
    let f = raw(kind::CONTINUATION, flag::END_HEADERS, 7, b"ab");
    assert_eq!(
        one(&f).unwrap(),
        Frame::Continuation {
            stream: 7,
            end_headers: true,
            block: b"ab"
        }
    );
    assert_eq!(
        code(&raw(kind::CONTINUATION, 0, 0, b"")),
        ErrorCode::Protocol
    );
    let f = raw(
        kind::PUSH_PROMISE,
        flag::END_HEADERS,
        1,
        &[0, 0, 0, 2, 0x82],
    );
    assert_eq!(one(&f).unwrap(), Frame::PushPromise { stream: 1 });
    assert_eq!(
        code(&raw(kind::PUSH_PROMISE, 0, 1, &[0, 0])),
        ErrorCode::FrameSize
    );
    assert_eq!(
        code(&raw(kind::PUSH_PROMISE, flag::PADDED, 1, &[9, 0, 0, 0, 2])),
        ErrorCode::Protocol
    );
    assert_eq!(
        code(&raw(kind::PUSH_PROMISE, 0, 0, &[0, 0, 0, 2])),
        ErrorCode::Protocol
    );
}

#[test]
fn fixed_size_frames() {
    assert_eq!(
        one(&raw(kind::PRIORITY, 0, 3, &[0, 0, 0, 1, 16])).unwrap(),
        Frame::Priority { stream: 3 }
    );
    assert_eq!(
        code(&raw(kind::PRIORITY, 0, 3, &[0, 0, 0, 1])),
        ErrorCode::FrameSize
    );
    assert_eq!(
        code(&raw(kind::PRIORITY, 0, 0, &[0, 0, 0, 1, 16])),
        ErrorCode::Protocol
    );

    assert_eq!(
        one(&raw(kind::RST_STREAM, 0, 3, &[0, 0, 0, 8])).unwrap(),
        Frame::RstStream {
            stream: 3,
            code: ErrorCode::Cancel
        }
    );
    assert_eq!(
        code(&raw(kind::RST_STREAM, 0, 3, &[0, 0, 0, 8, 0])),
        ErrorCode::FrameSize
    );
    assert_eq!(
        code(&raw(kind::RST_STREAM, 0, 0, &[0, 0, 0, 8])),
        ErrorCode::Protocol
    );

    assert_eq!(
        one(&raw(kind::PING, flag::ACK, 0, b"12345678")).unwrap(),
        Frame::Ping {
            ack: true,
            data: *b"12345678"
        }
    );
    assert_eq!(
        code(&raw(kind::PING, 0, 0, b"1234567")),
        ErrorCode::FrameSize
    );
    assert_eq!(
        code(&raw(kind::PING, 0, 1, b"12345678")),
        ErrorCode::Protocol
    );

    assert_eq!(
        one(&raw(kind::WINDOW_UPDATE, 0, 0, &[0x80, 0, 1, 0])).unwrap(),
        Frame::WindowUpdate {
            stream: 0,
            increment: 256
        }
    );
    assert_eq!(
        code(&raw(kind::WINDOW_UPDATE, 0, 1, &[0, 0, 0, 0])),
        ErrorCode::Protocol
    );
    assert_eq!(
        code(&raw(kind::WINDOW_UPDATE, 0, 1, &[0, 0, 1])),
        ErrorCode::FrameSize
    );

    let f = raw(kind::GOAWAY, 0, 0, &[0, 0, 0, 5, 0, 0, 0, 2, b'x']);
    assert_eq!(
        one(&f).unwrap(),
        Frame::GoAway {
            last_stream: 5,
            code: ErrorCode::Internal,
            debug: b"x"
        }
    );
    assert_eq!(
        code(&raw(kind::GOAWAY, 0, 0, &[0, 0, 0, 5, 0, 0, 0])),
        ErrorCode::FrameSize
    );
    assert_eq!(
        code(&raw(kind::GOAWAY, 0, 1, &[0, 0, 0, 5, 0, 0, 0, 0])),
        ErrorCode::Protocol
    );
}

#[test]
fn settings_rules() {
    let mut payload = Vec::new();
    for (id, v) in [
        (1u16, 4096u32),
        (2, 0),
        (3, 100),
        (4, 0x7fff_ffff),
        (5, 16_777_215),
        (6, 8192),
        (0x99, 7),
    ] {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&v.to_be_bytes());
    }
    let f = raw(kind::SETTINGS, 0, 0, &payload);
    let Frame::Settings { ack: false, params } = one(&f).unwrap() else {
        panic!("not settings");
    };
    let got: Vec<Setting> = settings(params).collect();
    assert_eq!(
        got,
        vec![
            Setting::HeaderTableSize(4096),
            Setting::EnablePush(0),
            Setting::MaxConcurrentStreams(100),
            Setting::InitialWindowSize(0x7fff_ffff),
            Setting::MaxFrameSize(16_777_215),
            Setting::MaxHeaderListSize(8192),
            Setting::Unknown(0x99, 7),
        ]
    );
    let bad = |id: u16, v: u32| {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&v.to_be_bytes());
        code(&raw(kind::SETTINGS, 0, 0, &p))
    };
    assert_eq!(bad(2, 2), ErrorCode::Protocol);
    assert_eq!(bad(4, 0x8000_0000), ErrorCode::FlowControl);
    assert_eq!(bad(5, 16_383), ErrorCode::Protocol);
    assert_eq!(bad(5, 16_777_216), ErrorCode::Protocol);
    assert_eq!(
        code(&raw(kind::SETTINGS, 0, 0, &[0; 5])),
        ErrorCode::FrameSize
    );
    assert_eq!(
        code(&raw(kind::SETTINGS, flag::ACK, 0, &[0; 6])),
        ErrorCode::FrameSize
    );
    assert_eq!(code(&raw(kind::SETTINGS, 0, 1, &[])), ErrorCode::Protocol);
}

#[test]
fn unknown_types_are_ignored() {
    assert_eq!(
        one(&raw(0xfa, 0xff, 9, b"whatever")).unwrap(),
        Frame::Unknown {
            kind: 0xfa,
            stream: 9
        }
    );
}

#[test]
fn error_codes_round_trip() {
    for v in 0..=0x10u32 {
        assert_eq!(ErrorCode::from_u32(v).to_u32(), v);
    }
    assert_eq!(ErrorCode::from_u32(0xd), ErrorCode::Http11Required);
    assert_eq!(ErrorCode::Unknown(0x77).to_string(), "UNKNOWN(0x77)");
    assert_eq!(ErrorCode::FrameSize.to_string(), "FRAME_SIZE_ERROR");
}

#[test]
fn writers_parse_back() {
    let mut out = Vec::new();
    write_data(&mut out, 1, b"body", true);
    write_settings(
        &mut out,
        &[
            Setting::MaxConcurrentStreams(1),
            Setting::InitialWindowSize(1 << 20),
        ],
    );
    write_settings_ack(&mut out);
    write_ping(&mut out, *b"pingpong", true);
    write_rst(&mut out, 3, ErrorCode::RefusedStream);
    write_goaway(&mut out, 5, ErrorCode::NoError);
    write_window_update(&mut out, 0, 1000);
    write_data(&mut out, 1, b"", false);
    let mut frames = Vec::new();
    let mut at = 0;
    while let Some((f, used)) = parse(&out[at..], DEFAULT_MAX_FRAME).unwrap() {
        frames.push(f);
        at += used;
    }
    assert_eq!(at, out.len());
    let Frame::Settings { params, .. } = frames[1] else {
        panic!("settings");
    };
    assert_eq!(
        settings(params).collect::<Vec<_>>(),
        vec![
            Setting::MaxConcurrentStreams(1),
            Setting::InitialWindowSize(1 << 20)
        ]
    );
    assert_eq!(
        frames,
        vec![
            Frame::Data {
                stream: 1,
                end_stream: true,
                data: b"body",
                flow_len: 4
            },
            frames[1],
            Frame::Settings {
                ack: true,
                params: &[]
            },
            Frame::Ping {
                ack: true,
                data: *b"pingpong"
            },
            Frame::RstStream {
                stream: 3,
                code: ErrorCode::RefusedStream
            },
            Frame::GoAway {
                last_stream: 5,
                code: ErrorCode::NoError,
                debug: &[]
            },
            Frame::WindowUpdate {
                stream: 0,
                increment: 1000
            },
            Frame::Data {
                stream: 1,
                end_stream: false,
                data: b"",
                flow_len: 0
            },
        ]
    );
}

#[test]
fn write_headers_splits_into_continuation() {
    let block: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
    let mut out = Vec::new();
    // A max_frame below the protocol minimum is clamped to 16384.
    write_headers(&mut out, 5, &block, true, 100);
    let mut at = 0;
    let mut got = Vec::new();
    let mut kinds = Vec::new();
    while let Some((f, used)) = parse(&out[at..], DEFAULT_MAX_FRAME).unwrap() {
        at += used;
        match f {
            Frame::Headers {
                stream: 5,
                end_stream,
                end_headers,
                block,
            } => {
                kinds.push(("H", end_stream, end_headers, block.len()));
                got.extend_from_slice(block);
            }
            Frame::Continuation {
                stream: 5,
                end_headers,
                block,
            } => {
                kinds.push(("C", false, end_headers, block.len()));
                got.extend_from_slice(block);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, block);
    assert_eq!(
        kinds,
        vec![
            ("H", true, false, 16_384),
            ("C", false, false, 16_384),
            ("C", false, true, 40_000 - 32_768)
        ]
    );
    // A small block is one HEADERS with END_HEADERS; an empty one too.
    for b in [&b"\x82"[..], b""] {
        let mut out = Vec::new();
        write_headers(&mut out, 1, b, false, DEFAULT_MAX_FRAME);
        assert_eq!(
            one(&out).unwrap(),
            Frame::Headers {
                stream: 1,
                end_stream: false,
                end_headers: true,
                block: b
            }
        );
    }
}

/// Arbitrary bytes never panic the parser, and a frame it accepts never claims more bytes
/// than it was given (a cheap stand-in for the fuzz target in every `cargo test`).
#[test]
fn arbitrary_bytes_do_not_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 40) as usize;
        let mut buf = Vec::with_capacity(len);
        let mut s = seed;
        for _ in 0..len {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            buf.push((s >> 56) as u8);
        }
        // Small lengths so payloads are usually complete.
        if buf.len() > 3 {
            buf[0] = 0;
            buf[1] = 0;
            buf[2] %= 32;
            buf[3] %= 11;
        }
        if let Ok(Some((_, used))) = parse(&buf, DEFAULT_MAX_FRAME) {
            assert!(used <= buf.len());
        }
    }
}
