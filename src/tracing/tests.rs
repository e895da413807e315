use super::*;
use crate::config::{CustomTag, Provider, Zipkin};

fn cfg(random: u32, overall: u32, client: u32) -> Tracing {
    Tracing {
        egress: false,
        client_sampling: client,
        random_sampling: random,
        overall_sampling: overall,
        max_path_tag_length: 256,
        custom_tags: Vec::new(),
        provider: Provider::Zipkin(Zipkin {
            cluster: 0,
            cluster_name: "zipkin".into(),
            endpoint: "/api/v2/spans".into(),
            hostname: "zipkin".into(),
            trace_id_128bit: false,
            shared_span_context: true,
        }),
    }
}

/// Request headers from name/value pairs.
pub(super) fn h<'a>(list: &'a [(&'a str, &'a str)]) -> Vec<httparse::Header<'a>> {
    list.iter()
        .map(|(n, v)| httparse::Header {
            name: n,
            value: v.as_bytes(),
        })
        .collect()
}

#[test]
fn the_decision_packs_envoys_trace_reason_into_the_request_id() {
    // 0x00001388 = 5000: sampled at 100%, not at 50% (5000 >= 5000).
    let fresh = b"00001388-0000-4000-8000-000000000000";
    let mut rid = *fresh;
    assert_eq!(
        decide(
            Some(&mut rid),
            false,
            false,
            &cfg(10_000, 10_000, 10_000),
            0
        ),
        Reason::Sampling
    );
    assert_eq!(rid[14], b'9');
    let mut rid = *fresh;
    assert_eq!(
        decide(Some(&mut rid), false, false, &cfg(5_000, 10_000, 10_000), 0),
        Reason::NotTraceable
    );
    assert_eq!(rid[14], b'4');
    // x-client-trace-id wins over x-envoy-force-trace, which wins over sampling.
    let mut rid = *fresh;
    assert_eq!(
        decide(Some(&mut rid), true, true, &cfg(0, 10_000, 10_000), 7),
        Reason::ClientForced
    );
    assert_eq!(rid[14], b'b');
    let mut rid = *fresh;
    assert_eq!(
        decide(Some(&mut rid), false, true, &cfg(0, 10_000, 10_000), 7),
        Reason::ServiceForced
    );
    assert_eq!(rid[14], b'a');
    // Client sampling at 0% falls through to the force header.
    let mut rid = *fresh;
    assert_eq!(
        decide(Some(&mut rid), true, true, &cfg(0, 10_000, 0), 7),
        Reason::ServiceForced
    );
    // overall_sampling below the id's value undoes any reason.
    let mut rid = *fresh;
    assert_eq!(
        decide(Some(&mut rid), false, true, &cfg(10_000, 5_000, 10_000), 0),
        Reason::NotTraceable
    );
    assert_eq!(rid[14], b'4');
    // An id already carrying a reason keeps it.
    let mut rid = *b"00001388-0000-a000-8000-000000000000";
    assert_eq!(
        decide(Some(&mut rid), false, false, &cfg(0, 10_000, 10_000), 0),
        Reason::ServiceForced
    );
    // No id, a non-hex id, a short id: nothing to pack, not traced.
    assert_eq!(
        decide(None, true, true, &cfg(10_000, 10_000, 10_000), 0),
        Reason::NotTraceable
    );
    let mut bad = *b"zzzzzzzz-0000-4000-8000-000000000000";
    assert_eq!(
        decide(Some(&mut bad), true, true, &cfg(10_000, 10_000, 10_000), 0),
        Reason::NotTraceable
    );
    assert_eq!(bad[14], b'4');
    let mut short = *b"0000abcd";
    assert_eq!(
        decide(
            Some(&mut short),
            false,
            false,
            &cfg(10_000, 10_000, 10_000),
            0
        ),
        Reason::NotTraceable
    );
}

#[test]
fn b3_multi_headers_are_read_as_envoy_reads_them() {
    let hs = h(&[
        ("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"),
        ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ("x-b3-parentspanid", "0020000000000001"),
        ("x-b3-sampled", "1"),
    ]);
    assert_eq!(
        extract(&hs),
        Extracted::Context(Context {
            trace_hi: 0x463ac35c9f6413ad,
            trace: 0x48485a3953bb6124,
            span: 0xa2fb4a1d1a96d312,
            parent: 0x0020000000000001,
        })
    );
    assert_eq!(extract_sampled(&hs), Some(true));
    assert_eq!(extract_sampled(&h(&[("x-b3-sampled", "true")])), Some(true));
    assert_eq!(extract_sampled(&h(&[("x-b3-sampled", "0")])), Some(false));
    assert_eq!(extract_sampled(&h(&[("x-b3-sampled", "yes")])), Some(false));
    assert_eq!(extract_sampled(&h(&[])), None);
    // A trace id without a span id is no context; a bad hex digit is a broken one.
    assert_eq!(extract(&h(&[("x-b3-traceid", "1")])), Extracted::None);
    assert_eq!(
        extract(&h(&[("x-b3-traceid", "xyz"), ("x-b3-spanid", "1")])),
        Extracted::Invalid
    );
    assert_eq!(
        extract(&h(&[
            ("x-b3-traceid", "1"),
            ("x-b3-spanid", "11111111111111111")
        ])),
        Extracted::Invalid
    );
}

#[test]
fn the_single_b3_header_is_read_as_envoy_reads_it() {
    let ctx = |s: &str| extract(&h(&[("b3", s)]));
    assert_eq!(
        ctx("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"),
        Extracted::Context(Context {
            trace_hi: 0x80f198ee56343ba8,
            trace: 0x64fe8b2a57d3eff7,
            span: 0xe457b5a2e4d86bd1,
            parent: 0x05e3ac9a4f6e3b90,
        })
    );
    assert_eq!(
        ctx("64fe8b2a57d3eff7-e457b5a2e4d86bd1"),
        Extracted::Context(Context {
            trace_hi: 0,
            trace: 0x64fe8b2a57d3eff7,
            span: 0xe457b5a2e4d86bd1,
            parent: 0,
        })
    );
    assert_eq!(ctx("0"), Extracted::None);
    assert_eq!(ctx("x"), Extracted::Invalid);
    assert_eq!(
        ctx("64fe8b2a57d3eff7-e457b5a2e4d86bd1-"),
        Extracted::Invalid
    );
    assert_eq!(
        ctx("64fe8b2a57d3eff7-e457b5a2e4d86bd1-x"),
        Extracted::Invalid
    );
    assert_eq!(
        ctx("64fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3"),
        Extracted::Invalid
    );
    assert_eq!(ctx("64fe8b2a57d3eff7"), Extracted::Invalid);
    let s = |v: &str| extract_sampled(&h(&[("b3", v), ("x-b3-sampled", "1")]));
    assert_eq!(s("0"), Some(false));
    assert_eq!(s("d"), Some(true));
    assert_eq!(s("64fe8b2a57d3eff7-e457b5a2e4d86bd1-0"), Some(false));
    assert_eq!(s("64fe8b2a57d3eff7-e457b5a2e4d86bd1"), None);
}

#[test]
fn spans_start_as_envoys_zipkin_tracer_starts_them() {
    let mut n = 0u64;
    let mut rand = || {
        n += 1;
        n * 0x1111
    };
    let root = start(None, true, false, true, true, &mut rand);
    assert_eq!((root.trace, root.id, root.parent), (0x1111, 0x1111, 0));
    assert_eq!(root.trace_hi, 0x2222);
    assert_eq!(root.trace_hex().len(), 32);
    let c = Context {
        trace_hi: 0,
        trace: 7,
        span: 8,
        parent: 9,
    };
    let shared = start(Some(c), true, false, true, false, &mut rand);
    assert_eq!((shared.trace, shared.id, shared.parent), (7, 8, 9));
    let child = start(Some(c), false, true, true, false, &mut rand);
    assert_eq!((child.trace, child.parent), (7, 8));
    assert_ne!(child.id, 8);
    let unshared = start(Some(c), true, false, false, false, &mut rand);
    assert_eq!(unshared.parent, 8);
    let b3 = child.b3_headers();
    assert_eq!(b3[0], ("x-b3-traceid", "0000000000000007".to_string()));
    assert_eq!(b3[2], ("x-b3-parentspanid", "0000000000000008".to_string()));
    assert_eq!(b3[3], ("x-b3-sampled", "0".to_string()));
    assert_eq!(
        root.b3_headers().len(),
        3,
        "a root span has no parent header"
    );
}

#[test]
fn a_span_is_zipkin_v2_json() {
    let span = Span {
        ids: Ids {
            trace_hi: 0,
            trace: 0xab,
            id: 0xcd,
            parent: 0xef,
            sampled: true,
        },
        server: true,
        name: "op \"1\"".into(),
        start_us: 1_700_000_000_000_000,
        tags: vec![
            ("http.method".into(), "GET".into()),
            ("user_agent".into(), String::new()),
        ],
        custom: vec![("http.method".into(), "custom".into())],
        reporter: 0,
        dd: None,
    };
    let end = End {
        duration_us: 1234,
        status: 503,
        flags: "UF",
        bytes_rx: 1,
        bytes_tx: 2,
        cluster: Some("svc"),
    };
    let ep = Endpoint {
        service_name: "front".into(),
        ip: Some("10.1.2.3".parse().unwrap()),
    };
    let mut out = String::new();
    json(&mut out, &span, &end, &ep, true);
    assert_eq!(
        out,
        "{\"traceId\":\"00000000000000ab\",\"parentId\":\"00000000000000ef\",\
         \"id\":\"00000000000000cd\",\"kind\":\"SERVER\",\"name\":\"op \\\"1\\\"\",\
         \"timestamp\":1700000000000000,\"duration\":1234,\
         \"localEndpoint\":{\"ipv4\":\"10.1.2.3\",\"port\":0,\"serviceName\":\"front\"},\
         \"tags\":{\"component\":\"proxy\",\"error\":\"true\",\"http.method\":\"custom\",\
         \"http.status_code\":\"503\",\"request_size\":\"1\",\"response_flags\":\"UF\",\
         \"response_size\":\"2\",\"upstream_cluster\":\"svc\",\
         \"upstream_cluster.name\":\"svc\"},\"shared\":true}"
    );
    let mut client = String::new();
    let span = Span {
        server: false,
        ..span
    };
    json(&mut client, &span, &end, &Endpoint::default(), true);
    assert!(client.contains("\"kind\":\"CLIENT\""), "{client}");
    assert!(!client.contains("shared"), "{client}");
    assert!(client.contains("\"localEndpoint\":{}"), "{client}");
}

#[test]
fn custom_tags_and_the_url_tag() {
    let mut t = cfg(0, 0, 0);
    t.custom_tags = vec![
        CustomTag {
            tag: "lit".into(),
            value: CustomTagValue::Literal("v".into()),
        },
        CustomTag {
            tag: "hdr".into(),
            value: CustomTagValue::Header {
                name: "x-a".into(),
                default: "none".into(),
            },
        },
    ];
    let got = custom_tags(&t, &|n| (n == "x-a").then(|| "1".to_string()));
    assert_eq!(
        got,
        [("lit".into(), "v".into()), ("hdr".into(), "1".into())]
    );
    let got = custom_tags(&t, &|_| None);
    assert_eq!(got[1].1, "none");
    assert_eq!(url("http", "h", "/abcdef", 3), "http://h/ab");
    assert_eq!(url("https", "h", "/é", 2), "https://h/");
    let inj = Inject {
        rid: None,
        headers: vec![("x-b3-spanid", "1".into())],
        ingress: true,
    };
    assert!(inj.replaces("X-B3-SpanId"));
    assert!(inj.replaces("x-envoy-decorator-operation"));
    assert!(!inj.replaces("x-request-id"));
    assert_eq!(inj.header("x-b3-spanid").as_deref(), Some("1"));
}
