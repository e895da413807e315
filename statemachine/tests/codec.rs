//! Frame codec: round trips, every decode error, and no panic on arbitrary bytes.

mod common;

use baton_statemachine::*;
use common::all_messages;
use proptest::prelude::*;

fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    f.push(ty);
    f.extend_from_slice(payload);
    f
}

#[test]
fn every_message_round_trips_and_frames_concatenate() {
    let mut buf = Vec::new();
    for m in all_messages() {
        encode(&m, &mut buf).unwrap();
    }
    let mut rest = &buf[..];
    for m in all_messages() {
        let (got, used) = decode(rest).unwrap().unwrap();
        assert_eq!(got, m);
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
}

#[test]
fn hello_layout_is_frozen() {
    let mut buf = Vec::new();
    let hello = Message::Hello {
        protocol_version: 7,
        binary_version: "v".into(),
        pid: 0x01020304,
    };
    encode(&hello, &mut buf).unwrap();
    assert_eq!(buf, vec![0, 0, 0, 10, 1, 0, 7, 1, 2, 3, 4, 0, 1, b'v']);
}

#[test]
fn partial_frames_ask_for_more() {
    let mut buf = Vec::new();
    encode(&Message::Listening, &mut buf).unwrap();
    encode(&all_messages()[9], &mut buf).unwrap();
    for cut in 0..5 {
        assert_eq!(decode(&buf[..cut]), Ok(None), "cut {cut}");
    }
    let (_, used) = decode(&buf).unwrap().unwrap();
    for cut in used..buf.len() {
        assert_eq!(decode(&buf[used..cut]), Ok(None));
    }
}

#[test]
fn decode_errors() {
    use CodecError::*;
    let cases: Vec<(Vec<u8>, CodecError)> = vec![
        (vec![0, 0, 0, 0], EmptyFrame),
        (vec![0, 0x10, 0, 1], Oversized { len: (1 << 20) + 1 }),
        (
            vec![0xff, 0xff, 0xff, 0xff],
            Oversized {
                len: u32::MAX as usize,
            },
        ),
        (frame(0, &[]), UnknownType(0)),
        (frame(14, &[]), UnknownType(14)),
        (frame(12, &[0, 0, 0, 1]), Truncated), // a tunnel batch without its count
        (frame(11, &[0, 0, 0, 1]), Truncated), // one moved connection, no fields
        (
            {
                let mut p = vec![0, 0, 0, 1, 0, 0, 0, 0];
                p.extend_from_slice(&[0, 0, 0, 9, 1]); // 9 pending bytes announced, 1 there
                frame(11, &p)
            },
            Truncated,
        ),
        (frame(1, &[0, 1]), Truncated),       // Hello without pid
        (frame(3, &[0, 5, b'a']), Truncated), // string longer than frame
        (frame(4, &[0xff, 0xff, 0xff, 0xff]), Truncated), // lying list count
        (frame(10, &[0, 0, 0, 2, 0, 0]), Truncated), // stats count too big
        (frame(7, &[0]), TrailingBytes { extra: 1 }),
        (frame(3, &[0, 2, 0xc3, 0x28]), InvalidUtf8),
        (frame(5, &[0, 0, 0, 0, 2, 0, 0, 0, 0]), InvalidBool(2)),
        (
            {
                let mut p = vec![0, 0, 0, 0, 1, 0, 0, 0, 254];
                p.extend(std::iter::repeat_n(0u8, 2 * 254));
                frame(5, &p)
            },
            TooManyFds { count: 254 },
        ),
    ];
    for (bytes, err) in cases {
        assert_eq!(decode(&bytes), Err(err.clone()), "{bytes:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn encode_errors_leave_the_buffer_untouched() {
    let mut buf = vec![9];
    let long = "x".repeat(70_000);
    let r = encode(&Message::Refuse { reason: long }, &mut buf);
    assert_eq!(r, Err(CodecError::StringTooLong { len: 70_000 }));
    let batch = FdBatch {
        index: 0,
        last: true,
        addresses: vec![String::new(); 254],
    };
    let r = encode(&Message::ListenerFds(batch), &mut buf);
    assert_eq!(r, Err(CodecError::TooManyFds { count: 254 }));
    let big = StatsSnapshot {
        counters: (0..40_000).map(|i| (format!("c{i:020}"), 1)).collect(),
        gauges: vec![],
    };
    let r = encode(&Message::Stats(big), &mut buf);
    assert!(matches!(r, Err(CodecError::Oversized { .. })));
    assert_eq!(buf, vec![9]);
}

fn message() -> impl Strategy<Value = Message> {
    let s = || "[a-z0-9:./]{0,12}";
    prop_oneof![
        (any::<u16>(), s(), any::<u32>()).prop_map(|(v, b, p)| Message::Hello {
            protocol_version: v,
            binary_version: b,
            pid: p
        }),
        (any::<u16>(), s(), any::<u32>(), any::<u32>()).prop_map(|(v, b, p, e)| {
            Message::HelloAck {
                protocol_version: v,
                binary_version: b,
                pid: p,
                epoch: e,
            }
        }),
        s().prop_map(|reason| Message::Refuse { reason }),
        proptest::collection::vec(s(), 0..5)
            .prop_map(|addresses| Message::RequestListeners { addresses }),
        (
            any::<u32>(),
            any::<bool>(),
            proptest::collection::vec(s(), 0..5)
        )
            .prop_map(|(index, last, addresses)| Message::ListenerFds(FdBatch {
                index,
                last,
                addresses
            })),
        any::<u32>().prop_map(|batch| Message::FdsAck { batch }),
        Just(Message::Listening),
        Just(Message::AcceptingStopped),
        Just(Message::DrainParent),
        (
            proptest::collection::vec((s(), any::<u64>()), 0..4),
            proptest::collection::vec((s(), any::<i64>()), 0..4)
        )
            .prop_map(|(counters, gauges)| Message::Stats(StatsSnapshot { counters, gauges })),
        proptest::collection::vec(
            (s(), s(), proptest::collection::vec(any::<u8>(), 0..40)),
            0..4
        )
        .prop_map(|v| Message::Connections(
            v.into_iter()
                .map(|(listener, peer, pending)| MovedConn {
                    listener,
                    peer,
                    pending
                })
                .collect()
        )),
        (
            any::<u32>(),
            (s(), s(), s(), s()),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..40),
            (any::<u8>(), any::<u64>(), any::<u64>(), any::<u16>())
        )
            .prop_map(
                |(
                    batch,
                    (listener, peer, cluster, upstream),
                    to_client,
                    to_upstream,
                    (fins, bytes, age_ms, status),
                )| {
                    Message::Tunnels {
                        batch,
                        tunnels: vec![MovedTunnel {
                            listener,
                            peer,
                            cluster,
                            upstream,
                            to_client,
                            to_upstream,
                            fins,
                            idle_ms: bytes / 3,
                            bytes_rx: bytes,
                            bytes_tx: bytes / 2,
                            status,
                            flags: status.rotate_left(3),
                            minor: fins & 1,
                            age_ms,
                        }],
                    }
                }
            ),
        any::<u32>().prop_map(|batch| Message::TunnelsAck { batch }),
    ]
}

proptest! {
    #[test]
    fn random_messages_round_trip(m in message()) {
        let mut buf = Vec::new();
        encode(&m, &mut buf).unwrap();
        prop_assert_eq!(decode(&buf), Ok(Some((m, buf.len()))));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn corrupted_frames_never_panic(m in message(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut buf = Vec::new();
        encode(&m, &mut buf).unwrap();
        let i = pos % buf.len();
        buf[i] = byte;
        let _ = decode(&buf);
    }
}
