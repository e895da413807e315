use super::*;
use crate::tracing::tests::h;

fn seq(vals: &[u64]) -> impl FnMut() -> u64 + '_ {
    let mut i = 0;
    move || {
        let v = vals.get(i).copied().unwrap_or(7);
        i += 1;
        v
    }
}

#[test]
fn datadog_headers_are_extracted_with_their_tags() {
    let c = extract(&h(&[
        ("x-datadog-trace-id", "123"),
        ("x-datadog-parent-id", "456"),
        ("x-datadog-sampling-priority", "2"),
        ("x-datadog-origin", "synthetics"),
        (
            "x-datadog-tags",
            "_dd.p.dm=-4,_dd.p.tid=0000000a00000000,other=x",
        ),
    ]))
    .expect("context");
    assert_eq!((c.trace_hi, c.trace, c.parent), (0xa_0000_0000, 123, 456));
    assert_eq!(c.priority, Some(2));
    assert_eq!(c.origin.as_deref(), Some("synthetics"));
    assert_eq!(
        c.tags,
        vec![
            ("_dd.p.dm".to_string(), "-4".to_string()),
            ("_dd.p.tid".to_string(), "0000000a00000000".to_string()),
        ]
    );
    // Malformed ids, a parent without a trace, a trace without parent or origin: no context
    // (Envoy starts a new trace).
    for bad in [
        &[("x-datadog-trace-id", "12x"), ("x-datadog-parent-id", "1")][..],
        &[("x-datadog-parent-id", "1")],
        &[("x-datadog-trace-id", "1")],
        &[("x-datadog-trace-id", "0"), ("x-datadog-parent-id", "1")],
        &[
            ("x-datadog-trace-id", "1"),
            ("x-datadog-parent-id", "1"),
            ("x-datadog-sampling-priority", "yes"),
        ],
        &[],
    ] {
        assert_eq!(extract(&h(bad)), None, "{bad:?}");
    }
    // An origin without a parent: this proxy is the root of the client's trace.
    let c = extract(&h(&[
        ("x-datadog-trace-id", "9"),
        ("x-datadog-origin", "rum"),
    ]))
    .expect("origin");
    assert_eq!((c.trace, c.parent), (9, 0));
    // An oversized x-datadog-tags is ignored.
    let big = format!("_dd.p.x={}", "a".repeat(600));
    let c = extract(&h(&[
        ("x-datadog-trace-id", "1"),
        ("x-datadog-parent-id", "2"),
        ("x-datadog-tags", &big),
    ]))
    .expect("context");
    assert!(c.tags.is_empty());
}

#[test]
fn w3c_headers_are_extracted_when_datadog_has_none() {
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let c = extract(&h(&[
        ("traceparent", tp),
        (
            "tracestate",
            "rojo=00f067aa0ba902b7,dd=s:2;o:rum;t.dm:-4;p:0123,congo=t61",
        ),
    ]))
    .expect("w3c");
    assert_eq!(c.trace_hi, 0x0af7_6519_16cd_43dd);
    assert_eq!(c.trace, 0x8448_eb21_1c80_319c);
    assert_eq!(c.parent, 0xb7ad_6b71_6920_3331);
    assert_eq!(c.priority, Some(2));
    assert_eq!(c.origin.as_deref(), Some("rum"));
    assert_eq!(
        c.other_state.as_deref(),
        Some("rojo=00f067aa0ba902b7,congo=t61")
    );
    assert!(c.tags.contains(&("_dd.p.dm".into(), "-4".into())));
    assert!(c
        .tags
        .contains(&("_dd.p.tid".into(), "0af7651916cd43dd".into())));
    // The flag wins over a disagreeing dd priority.
    let c = extract(&h(&[
        ("traceparent", &tp.replace("-01", "-00")),
        ("tracestate", "dd=s:2"),
    ]))
    .expect("w3c");
    assert_eq!(c.priority, Some(0));
    // Malformed traceparents are no context.
    for bad in [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
    ] {
        assert_eq!(extract(&h(&[("traceparent", bad)])), None, "{bad}");
    }
    // Datadog's headers win; W3C's other vendors ride along when the traces agree.
    let c = extract(&h(&[
        ("x-datadog-trace-id", &0x8448_eb21_1c80_319c_u64.to_string()),
        ("x-datadog-parent-id", "5"),
        ("traceparent", tp),
        ("tracestate", "rojo=1"),
    ]))
    .expect("both");
    assert_eq!((c.parent, c.priority), (5, None));
    assert_eq!(c.other_state.as_deref(), Some("rojo=1"));
}

#[test]
fn the_priority_is_the_clients_else_envoys_drop_else_the_agents_rate() {
    let rates = Rates::default();
    // A root span, traced: 128-bit id starting with the time, kept by the default rate.
    let (ids, t) = start(None, true, &rates, "svc", 0x1234, &mut seq(&[42]));
    assert_eq!(
        (ids.trace_hi, ids.trace, ids.id, ids.parent),
        (0x1234 << 32, 42, 42, 0)
    );
    assert_eq!((t.priority, t.agent_rate), (AUTO_KEEP, Some(1.0)));
    assert_eq!(
        t.tags,
        vec![
            ("_dd.p.tid".to_string(), "0000123400000000".to_string()),
            ("_dd.p.dm".to_string(), "-0".to_string()),
        ]
    );
    // Not traced by Envoy: a user drop, no decision maker.
    let (_, t) = start(None, false, &rates, "svc", 0, &mut seq(&[42]));
    assert_eq!((t.priority, t.agent_rate), (USER_DROP, None));
    assert!(t.tags.iter().all(|(k, _)| k != "_dd.p.dm"));
    // The client's priority wins over Envoy's decision; the span is its child.
    let ctx = Extracted {
        trace: 9,
        parent: 3,
        priority: Some(2),
        ..Extracted::default()
    };
    let (ids, t) = start(Some(ctx), false, &rates, "svc", 0, &mut seq(&[u64::MAX]));
    assert_eq!((ids.trace, ids.id, ids.parent), (9, i64::MAX as u64, 3));
    assert_eq!(t.priority, 2);
    // The agent's rate for the service (else its default) decides by the trace id's hash.
    let rates = Rates::parse(br#"{"rate_by_service":{"service:svc,env:":0,"service:,env:":1}}"#)
        .expect("rates");
    let (_, t) = start(None, true, &rates, "svc", 0, &mut seq(&[42]));
    assert_eq!((t.priority, t.agent_rate), (AUTO_DROP, Some(0.0)));
    assert!(t.tags.contains(&("_dd.p.ksr".into(), "0".into())));
    assert!(t.tags.iter().all(|(k, _)| k != "_dd.p.dm"));
    let (_, t) = start(None, true, &rates, "other", 0, &mut seq(&[42]));
    assert_eq!(t.priority, AUTO_KEEP);
    let keys: Vec<&str> = t.tags.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["_dd.p.tid", "_dd.p.dm", "_dd.p.ksr"]);
    assert!(t.tags.contains(&("_dd.p.dm".into(), "-1".into())));
    assert!(t.tags.contains(&("_dd.p.ksr".into(), "1".into())));
}

#[test]
fn agent_rates_are_read_and_bad_answers_ignored() {
    let r = Rates::parse(
        br#"{ "rate_by_service" : { "service:a,env:prod" : 0.25 , "service:,env:": 1e-1 } }"#,
    )
    .expect("rates");
    assert_eq!(
        r.0,
        vec![
            ("service:a,env:prod".to_string(), 0.25),
            ("service:,env:".to_string(), 0.1),
        ]
    );
    assert_eq!(
        Rates::parse(br#"{"rate_by_service":{}}"#),
        Some(Rates(vec![]))
    );
    for bad in [
        &b"OK"[..],
        br#"{}"#,
        br#"{"rate_by_service":{"a":2}}"#,
        br#"{"rate_by_service":{"a":"x"}}"#,
        br#"{"rate_by_service":{"a":0.5"#,
        b"\xff",
    ] {
        assert_eq!(Rates::parse(bad), None);
    }
    assert_eq!(format_rate(0.1), "0.1");
    assert_eq!(format_rate(0.123_456_789), "0.123457");
    assert_eq!(format_rate(1.0), "1");
}

#[test]
fn both_styles_are_injected() {
    let ids = Ids {
        trace_hi: 0x0af7_6519_16cd_43dd,
        trace: 0x8448_eb21_1c80_319c,
        id: 0x00f0_67aa_0ba9_02b7,
        parent: 5,
        sampled: true,
    };
    let t = Trace {
        priority: 1,
        agent_rate: Some(1.0),
        origin: Some("a=b;c".into()),
        tags: vec![
            ("_dd.p.tid".into(), "0af7651916cd43dd".into()),
            ("_dd.p.dm".into(), "-0".into()),
        ],
        other_state: Some("rojo=1".into()),
    };
    let got = headers(&ids, &t);
    let want: Vec<(&str, String)> = vec![
        ("x-datadog-trace-id", 0x8448_eb21_1c80_319c_u64.to_string()),
        ("x-datadog-parent-id", 0x00f0_67aa_0ba9_02b7_u64.to_string()),
        ("x-datadog-sampling-priority", "1".into()),
        ("x-datadog-origin", "a=b;c".into()),
        (
            "x-datadog-tags",
            "_dd.p.tid=0af7651916cd43dd,_dd.p.dm=-0".into(),
        ),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01".into(),
        ),
        (
            "tracestate",
            "dd=s:1;p:00f067aa0ba902b7;o:a~b_c;t.dm:-0,rojo=1".into(),
        ),
    ];
    assert_eq!(got, want);
    // A dropped trace: flag 00; the dd entry is cut at whole fields to 256 bytes.
    let t = Trace {
        priority: -1,
        tags: (0..40)
            .map(|i| (format!("_dd.p.k{i}"), "v".into()))
            .collect(),
        ..Trace::default()
    };
    let got = headers(&ids, &t);
    let tp = &got.iter().find(|h| h.0 == "traceparent").expect("tp").1;
    assert!(tp.ends_with("-00"));
    let ts = &got.iter().find(|h| h.0 == "tracestate").expect("ts").1;
    assert!(ts.len() <= 256 && ts.starts_with("dd=s:-1;p:") && !ts.ends_with(';'));
}

#[test]
fn a_span_is_one_msgpack_trace_chunk_with_twelve_fields() {
    let span = Span {
        ids: Ids {
            trace_hi: 0,
            trace: 300,
            id: 7,
            parent: 0,
            sampled: true,
        },
        server: true,
        name: "res".into(),
        start_us: 2,
        tags: vec![("http.method".into(), "GET".into())],
        custom: vec![("team".into(), String::new())],
        reporter: 0,
        dd: Some(Box::new(Trace {
            priority: 1,
            agent_rate: Some(0.5),
            tags: vec![("_dd.p.dm".into(), "-1".into())],
            ..Trace::default()
        })),
    };
    let end = End {
        duration_us: 3,
        status: 503,
        flags: "UF",
        bytes_rx: 0,
        bytes_tx: 1,
        cluster: None,
    };
    let p = Process {
        runtime_id: "rid".into(),
        pid: 9,
    };
    let mut out = Vec::new();
    encode(&mut out, &span, &end, "svc", &p);
    // [ {service, name, resource, trace_id, span_id, parent_id, start, duration, error, …} ]
    let mut want = vec![0x91, 0x8c];
    let s = |w: &mut Vec<u8>, v: &str| msgpack::str(w, v);
    s(&mut want, "service");
    s(&mut want, "svc");
    s(&mut want, "name");
    s(&mut want, "envoy.proxy");
    s(&mut want, "resource");
    s(&mut want, "res");
    s(&mut want, "trace_id");
    want.extend_from_slice(&[0xcd, 0x01, 0x2c]);
    s(&mut want, "span_id");
    want.push(7);
    s(&mut want, "parent_id");
    want.push(0);
    s(&mut want, "start");
    msgpack::uint(&mut want, 2000);
    s(&mut want, "duration");
    msgpack::uint(&mut want, 3000);
    s(&mut want, "error");
    want.push(1);
    s(&mut want, "meta");
    assert_eq!(out.get(..want.len()), Some(&want[..]));
    let rest = &out[want.len()..];
    // Meta: Envoy's tags (an empty custom tag kept; no `error`), the trace's, the process's.
    let text = String::from_utf8_lossy(rest);
    for k in [
        "_dd.p.dm",
        "component",
        "http.method",
        "http.status_code",
        "language",
        "response_flags",
        "runtime-id",
        "team",
        "_sampling_priority_v1",
        "_dd.agent_psr",
        "process_id",
        "type",
        "web",
    ] {
        assert!(text.contains(k), "{k} in {text}");
    }
    assert!(!text.contains("error"));
}
