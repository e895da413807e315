use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::access_log::Captured;
use crate::config::{CompareOp, HeaderMatchRule};

fn rq(slots: &Slots) -> Rq {
    let peer: SocketAddr = "127.0.0.1:1000".parse().expect("addr");
    let mut r = Rq::new(Instant::now(), 0, peer, 1);
    r.cap = Some(Box::new(Captured::new(slots)));
    r
}

fn cmp(op: CompareOp, value: u64) -> Comparison {
    Comparison { op, value }
}

fn sample(numerator: u32, denominator: u32, independent: bool) -> LogFilter {
    LogFilter::Runtime(RuntimeSample {
        runtime_key: "k".into(),
        numerator,
        denominator,
        independent,
    })
}

#[test]
fn status_and_duration_compare_as_envoy_does() {
    let mut slots = Slots::default();
    let ge = Filter::compile(&LogFilter::Status(cmp(CompareOp::Ge, 400)), &mut slots);
    let mut r = rq(&slots);
    r.status = 404;
    assert!(ge.matches(&r, Instant::now()));
    r.status = 200;
    assert!(!ge.matches(&r, Instant::now()));
    // No response at all is status 0.
    r.status = 0;
    let eq0 = Filter::compile(&LogFilter::Status(cmp(CompareOp::Eq, 0)), &mut slots);
    assert!(eq0.matches(&r, Instant::now()));

    let slow = Filter::compile(&LogFilter::Duration(cmp(CompareOp::Ge, 150)), &mut slots);
    r.end = Some(r.start + Duration::from_millis(300));
    assert!(slow.matches(&r, Instant::now()));
    r.end = Some(r.start + Duration::from_millis(10));
    assert!(!slow.matches(&r, Instant::now()));
    // Before the end (a local reply being written): the time so far.
    r.end = None;
    assert!(slow.matches(&r, r.start + Duration::from_millis(200)));
    let le = Filter::compile(&LogFilter::Duration(cmp(CompareOp::Le, 5)), &mut slots);
    assert!(!le.matches(&r, r.start + Duration::from_millis(200)));
}

#[test]
fn header_flags_health_check_and_traceable() {
    let mut slots = Slots::default();
    let h = Filter::compile(
        &LogFilter::Header(HeaderMatcher {
            name: "x-debug".into(),
            rule: HeaderMatchRule::Present(true),
            invert: false,
        }),
        &mut slots,
    );
    let nr = Filter::compile(&LogFilter::ResponseFlags(vec!["NR".into()]), &mut slots);
    let any = Filter::compile(&LogFilter::ResponseFlags(vec![]), &mut slots);
    let never = Filter::compile(&LogFilter::ResponseFlags(vec!["RL".into()]), &mut slots);
    let nhc = Filter::compile(&LogFilter::NotHealthCheck, &mut slots);
    let tr = Filter::compile(&LogFilter::Traceable, &mut slots);
    let mut r = rq(&slots);
    let now = Instant::now();
    assert!(!h.matches(&r, now));
    let slot = slots.find_req("x-debug").expect("slot");
    if let Some(c) = r.cap.as_mut() {
        c.put(false, slot, [&b"1"[..]].into_iter());
    }
    assert!(h.matches(&r, now));
    assert!(!nr.matches(&r, now) && !any.matches(&r, now));
    r.flags.set(Flags::UF);
    assert!(!nr.matches(&r, now) && any.matches(&r, now));
    r.flags.set(Flags::NR);
    assert!(nr.matches(&r, now));
    assert!(!never.matches(&r, now));
    assert!(nhc.matches(&r, now));
    r.health_check = true;
    assert!(!nhc.matches(&r, now));
    assert!(!tr.matches(&r, now));
    r.health_check = false;
    assert!(!tr.matches(&r, now));
}

#[test]
fn and_or_combine() {
    let mut slots = Slots::default();
    let f = LogFilter::Or(vec![
        LogFilter::And(vec![
            LogFilter::Status(cmp(CompareOp::Ge, 500)),
            LogFilter::Status(cmp(CompareOp::Le, 503)),
        ]),
        LogFilter::Status(cmp(CompareOp::Eq, 404)),
    ]);
    let f = Filter::compile(&f, &mut slots);
    let mut r = rq(&slots);
    for (status, want) in [
        (200, false),
        (404, false),
        (500, true),
        (503, true),
        (504, false),
    ] {
        r.status = status;
        let want = want || status == 404;
        assert_eq!(f.matches(&r, Instant::now()), want, "status {status}");
    }
}

#[test]
fn runtime_filter_samples_by_request_id() {
    assert_eq!(
        request_id_number("0000002a-aaaa-4bbb-8ccc-dddddddddddd"),
        Some(42)
    );
    assert_eq!(request_id_number("zz00002a-aaaa"), None);
    assert_eq!(request_id_number("abc"), None);
    let mut slots = Slots::default();
    let half = Filter::compile(&sample(50, 100, false), &mut slots);
    let slot = slots.find_req("x-request-id").expect("request id captured");
    let mut r = rq(&slots);
    let now = Instant::now();
    let with_id = |r: &mut Rq, id: &str| {
        if let Some(c) = r.cap.as_mut() {
            c.reset(&slots);
            c.put(false, slot, [id.as_bytes()].into_iter());
        }
    };
    // 0x31 = 49 < 50: in; 0x32 = 50: out; 0x95 = 149 % 100 = 49: in. Same id, same answer.
    with_id(&mut r, "00000031-0000-4000-8000-000000000000");
    assert!(half.matches(&r, now) && half.matches(&r, now));
    with_id(&mut r, "00000032-0000-4000-8000-000000000000");
    assert!(!half.matches(&r, now));
    with_id(&mut r, "00000095-0000-4000-8000-000000000000");
    assert!(half.matches(&r, now));
    // Default percent (0) never passes; 100 % always does, with or without an id.
    let none = Filter::compile(&sample(0, 100, false), &mut slots);
    let all = Filter::compile(&sample(100, 100, true), &mut slots);
    assert!(!none.matches(&r, now));
    assert!(all.matches(&r, now));
    // Independent randomness ignores the id: about half of many requests pass.
    let indep = Filter::compile(&sample(5000, 10_000, true), &mut slots);
    let passed = (0..2000).filter(|_| indep.matches(&r, now)).count();
    assert!((700..1300).contains(&passed), "{passed} of 2000");
}

#[test]
fn grpc_status_from_header_or_http_status() {
    let mut slots = Slots::default();
    let unavailable = LogFilter::GrpcStatus {
        statuses: vec![14],
        exclude: false,
    };
    let f = Filter::compile(&unavailable, &mut slots);
    let not_ok = Filter::compile(
        &LogFilter::GrpcStatus {
            statuses: vec![0],
            exclude: true,
        },
        &mut slots,
    );
    let slot = slots
        .resp
        .iter()
        .position(|n| n == "grpc-status")
        .expect("slot");
    let mut r = rq(&slots);
    let now = Instant::now();
    r.status = 503;
    assert!(f.matches(&r, now), "503 is UNAVAILABLE");
    r.status = 200;
    assert!(!f.matches(&r, now));
    // 200 without grpc-status is UNKNOWN: not OK.
    assert!(not_ok.matches(&r, now));
    if let Some(c) = r.cap.as_mut() {
        c.put(true, slot, [&b"14"[..]].into_iter());
    }
    assert!(f.matches(&r, now));
    if let Some(c) = r.cap.as_mut() {
        c.reset(&slots);
        c.put(true, slot, [&b"0"[..]].into_iter());
    }
    assert!(!not_ok.matches(&r, now));
    // An invalid code matches no listed status.
    if let Some(c) = r.cap.as_mut() {
        c.reset(&slots);
        c.put(true, slot, [&b"99"[..]].into_iter());
    }
    assert!(!f.matches(&r, now));
    assert!(not_ok.matches(&r, now));
    // The trailers' status wins over the head's (Envoy's `Grpc::Common::getGrpcStatus`).
    let trailer = slots.trailer_slot("grpc-status");
    if let Some(c) = r.cap.as_mut() {
        c.reset(&slots);
        c.put(true, slot, [&b"0"[..]].into_iter());
        c.put(true, trailer, [&b"14"[..]].into_iter());
    }
    assert!(f.matches(&r, now));
}
