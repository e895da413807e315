//! The exchange core without sockets: every split of a request and of a response gives the
//! same bytes as the whole, and a model of client + core + upstream runs thousands of random
//! exchanges and checks each request is answered exactly once, in order, bytes intact.

use std::time::Duration;

use super::sim::{responses, Sim, UpConn};
use crate::http::codec::{header_slots, parse_request, ChunkedDecoder, Framing};

/// Complete requests in what the upstream received: (method, path, body).
fn upstream_requests(mut b: &[u8]) -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let mut slots = header_slots();
        let Ok(Some(req)) = parse_request(b, &mut slots) else {
            return out;
        };
        let (method, path, framing, n) = (
            req.method.to_string(),
            req.path.to_string(),
            req.framing,
            req.head_len,
        );
        let rest = b.get(n..).unwrap_or_default();
        let (body, used) = match framing {
            Framing::Length(l) => match rest.get(..l as usize) {
                Some(body) => (body.to_vec(), l as usize),
                None => return out,
            },
            Framing::Chunked => {
                let mut dec = ChunkedDecoder::new();
                let mut body = Vec::new();
                let Ok(used) = dec.decode(rest, usize::MAX, |d| body.extend_from_slice(d)) else {
                    return out;
                };
                if !dec.is_done() {
                    return out;
                }
                (body, used)
            }
            Framing::None | Framing::UntilClose => (Vec::new(), 0),
        };
        out.push((method, path, body));
        b = rest.get(used..).unwrap_or_default();
    }
}

/// An upstream that answers each complete request on its connection with `reply(path, body)`.
/// `answered` counts per connection: (connections seen, requests answered on the last).
fn serve(sim: &mut Sim, reply: &dyn Fn(&str, &[u8]) -> Vec<u8>, answered: &mut (u32, usize)) {
    for _ in 0..1000 {
        if sim.up != UpConn::Open {
            return;
        }
        if answered.0 != sim.connects {
            *answered = (sim.connects, 0);
        }
        let answered = &mut answered.1;
        let reqs = upstream_requests(&sim.up_got);
        let Some((_, path, body)) = reqs.get(*answered) else {
            return;
        };
        let r = reply(path, body);
        *answered += 1;
        sim.upstream(&r);
    }
}

fn echo(path: &str, body: &[u8]) -> Vec<u8> {
    let mut b = path.as_bytes().to_vec();
    b.push(b':');
    b.extend_from_slice(body);
    let mut r = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", b.len()).into_bytes();
    r.extend_from_slice(&b);
    r
}

/// What a run produced, decoded: chunk boundaries are the proxy's to choose (it re-frames
/// as bytes arrive), everything else must be identical.
type Outcome = (Vec<(u16, Vec<u8>)>, Vec<(String, String, Vec<u8>)>, u64);

/// Runs a client byte stream through the core in the given pieces, with the echo upstream.
fn run_client(pieces: &[&[u8]]) -> Outcome {
    let mut sim = Sim::new(8192);
    let mut answered = (0, 0);
    for p in pieces {
        sim.client(p);
        serve(&mut sim, &echo, &mut answered);
    }
    serve(&mut sim, &echo, &mut answered);
    (
        responses(&sim.client_got),
        upstream_requests(&sim.up_all),
        sim.env.ended,
    )
}

const REQUESTS: &[&[u8]] = &[
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n",
    b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /local HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyzGET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /d HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    b"POST /local HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbodyGET /e HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /f HTTP/1.0\r\n\r\n",
    b"GET /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
];

#[test]
fn every_split_of_a_request_gives_the_same_bytes() {
    for req in REQUESTS {
        let whole = run_client(&[req]);
        assert!(
            !whole.0.is_empty(),
            "no answer to {:?}",
            String::from_utf8_lossy(req)
        );
        if whole.0.len() > 1 || req.starts_with(b"POST /local") {
            assert!(whole.2 >= 2, "pipelined requests all ended");
        }
        for cut in 0..=req.len() {
            let (a, b) = req.split_at(cut);
            assert_eq!(
                run_client(&[a, b]),
                whole,
                "split at {cut} of {:?}",
                String::from_utf8_lossy(req)
            );
        }
        let bytes: Vec<&[u8]> = req.chunks(1).collect();
        assert_eq!(run_client(&bytes), whole, "byte by byte");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (rs, up, ended) = run_client(&[REQUESTS[3]]);
    let codes: Vec<u16> = rs.iter().map(|r| r.0).collect();
    assert_eq!(codes, [200, 200, 200, 404]);
    assert_eq!(rs[0].1, b"/1:");
    assert_eq!(rs[1].1, b"local");
    assert_eq!(rs[2].1, b"/2:xyz");
    assert_eq!(up.len(), 2);
    assert_eq!(ended, 4);
}

const RESPONSES: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nwxyz\r\n1\r\n!\r\n0\r\nTrailer: t\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
];

/// Runs one GET against an upstream that sends `pieces`, then closes.
fn run_upstream(pieces: &[&[u8]]) -> Vec<(u16, Vec<u8>)> {
    let mut sim = Sim::new(8192);
    sim.client(b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n");
    for p in pieces {
        sim.upstream(p);
    }
    sim.upstream_fin();
    responses(&sim.client_got)
}

#[test]
fn every_split_of_a_response_gives_the_same_bytes() {
    for resp in RESPONSES {
        let whole = run_upstream(&[resp]);
        assert_eq!(whole.len(), 1, "{:?}", String::from_utf8_lossy(resp));
        for cut in 0..=resp.len() {
            let (a, b) = resp.split_at(cut);
            assert_eq!(run_upstream(&[a, b]), whole, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = resp.chunks(1).collect();
        assert_eq!(run_upstream(&bytes), whole, "byte by byte");
    }
}

#[test]
fn a_head_arriving_byte_by_byte_is_parsed_once() {
    let mut head = b"GET /slow HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..60 {
        head.extend_from_slice(format!("X-H{i}: {}\r\n", "v".repeat(200)).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let mut sim = Sim::new(64 * 1024);
    for b in head.chunks(1) {
        sim.client(b);
    }
    assert_eq!(upstream_requests(&sim.up_all).len(), 1);
    assert_eq!(sim.env.begun, 1);
}

/// A response head of `n` headers with values of `len` bytes, after an interim 100 when
/// `interim`, then a 2-byte body.
fn long_response_head(interim: bool, n: usize, len: usize) -> Vec<u8> {
    let mut r = Vec::new();
    if interim {
        r.extend_from_slice(b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n");
    }
    r.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n");
    for i in 0..n {
        r.extend_from_slice(format!("X-H{i}: {}\r\n", "v".repeat(len)).as_bytes());
    }
    r.extend_from_slice(b"\r\nok");
    r
}

/// Response heads parsed on this thread while `f` runs.
fn head_parses(f: impl FnOnce()) -> usize {
    let parses = || super::exchange::HEAD_PARSES.with(std::cell::Cell::get);
    let before = parses();
    f();
    parses() - before
}

/// A response head trickled a byte at a time (a 54 KiB one, past one read buffer) is
/// searched for its end in the new bytes only and parsed again only once that end is there,
/// as request heads are: the same response as the head in one piece, for an interim 100 and
/// its final head alike, with a few parse attempts per head instead of one per byte.
#[test]
fn a_response_head_arriving_byte_by_byte_is_parsed_once_its_end_is_there() {
    for (interim, heads) in [(false, 1), (true, 2)] {
        let resp = long_response_head(interim, 60, 900);
        // Sent whole, the head still takes two reads (one buffer's worth, then the rest).
        let mut whole = Vec::new();
        let parses = head_parses(|| whole = run_upstream(&[&resp]));
        assert!(
            parses <= 2 * heads,
            "{parses} parse attempts for {heads} heads"
        );
        assert_eq!(whole, vec![(200, b"ok".to_vec())]);
        // Trickled, a head is parsed at its first byte (the first look) and at its last.
        let bytes: Vec<&[u8]> = resp.chunks(1).collect();
        let mut trickled = Vec::new();
        let parses = head_parses(|| trickled = run_upstream(&bytes));
        assert!(
            parses <= 2 * heads,
            "{parses} parse attempts for {heads} heads"
        );
        assert_eq!(trickled, whole, "interim: {interim}");
    }
    // Split anywhere in either head, or in the terminator itself: the same response.
    let resp = long_response_head(true, 3, 10);
    let whole = run_upstream(&[&resp]);
    for cut in 1..resp.len() {
        let (a, b) = resp.split_at(cut);
        let pieces: Vec<&[u8]> = [a.chunks(7).collect::<Vec<_>>(), vec![b]].concat();
        assert_eq!(run_upstream(&pieces), whole, "split at {cut}");
    }
}

/// An upstream that closes inside a response head ends the exchange at once, with no timer
/// set: 502 when the bytes it sent after the first read are malformed, 503 when they are only
/// incomplete (both: before the head, no byte of a response reached the client).
#[test]
fn an_upstream_closing_inside_a_response_head_is_answered_at_once() {
    for (later, status) in [(&b"X\0: y\r\n"[..], 502), (&b"X-A: y\r\n"[..], 503)] {
        let mut sim = Sim::new(8192);
        sim.client(b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n");
        sim.upstream(b"HTTP/1.1 200 OK\r\n");
        sim.upstream(later);
        assert!(responses(&sim.client_got).is_empty(), "answered early");
        sim.upstream_fin();
        let got = responses(&sim.client_got);
        assert_eq!(
            got.iter().map(|r| r.0).collect::<Vec<_>>(),
            [status],
            "after {:?}",
            String::from_utf8_lossy(later)
        );
    }
}

#[test]
fn local_replies_to_a_client_that_never_reads_stop_at_the_high_mark() {
    let mut sim = Sim::new(8192);
    sim.client_reads = false;
    let req = b"GET /local HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..20_000 {
        sim.client(req);
    }
    assert!(sim.conn.cout.len() <= super::OUT_HIGH + 1024);
    assert!(sim.conn.cin.len() <= 8193);
    // Reading resumes it: everything is answered in the end.
    sim.client_reads = true;
    sim.run();
    assert_eq!(responses(&sim.client_got).len(), 20_000);
}

#[test]
fn a_non_idempotent_request_is_not_replayed_after_a_stale_pooled_connection() {
    for (method, replays) in [("POST", 0), ("PATCH", 0), ("GET", 1), ("DELETE", 1)] {
        let mut sim = Sim::new(8192);
        sim.auto_attach = false;
        sim.client(
            format!("{method} /s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").as_bytes(),
        );
        // A pooled connection that the upstream closed as we reused it.
        sim.up = UpConn::Open;
        sim.conn.up_attached(&mut sim.env, true, None, sim.now);
        sim.run();
        sim.upstream_reset();
        let asked_again = u32::from(sim.up == UpConn::Wanted);
        assert_eq!(asked_again, replays, "{method}");
        if replays == 0 {
            let rs = responses(&sim.client_got);
            assert_eq!(rs.first().map(|r| r.0), Some(503), "{method}");
        }
    }
}

#[test]
fn a_local_reply_then_a_bad_body_gets_no_second_response() {
    let mut sim = Sim::new(8192);
    sim.client(b"POST /missing HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    let codes: Vec<u16> = responses(&sim.client_got).iter().map(|r| r.0).collect();
    assert_eq!(codes, [404]);
    let mut sim = Sim::new(8192);
    sim.client(b"POST /missing HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab");
    sim.advance(Duration::from_secs(31));
    let codes: Vec<u16> = responses(&sim.client_got).iter().map(|r| r.0).collect();
    assert_eq!(codes, [404]);
}

#[test]
fn retries_follow_the_policy_and_the_budget() {
    let mut sim = Sim::new(8192);
    sim.client(b"GET /retry HTTP/1.1\r\nHost: x\r\n\r\n");
    sim.upstream(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        sim.up,
        UpConn::None,
        "the failed attempt's connection is closed"
    );
    sim.advance(Duration::from_millis(300)); // back-off
    sim.upstream(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n");
    sim.advance(Duration::from_millis(300));
    // Third attempt: retries exhausted, so its 503 goes to the client.
    sim.upstream(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(sim.connects, 3);
    let codes: Vec<u16> = responses(&sim.client_got).iter().map(|r| r.0).collect();
    assert_eq!(codes, [503]);
}

/// Envoy's circuit-breaker overflow: 503 `UO`, its body and `x-envoy-overloaded`, at once,
/// never retried; the keep-alive connection goes on.
fn expect_overflow(sim: &Sim) {
    let text = String::from_utf8_lossy(&sim.client_got).into_owned();
    let codes: Vec<u16> = responses(&sim.client_got).iter().map(|r| r.0).collect();
    assert_eq!(codes, [503], "{text}");
    assert!(text.contains("\r\nx-envoy-overloaded: true\r\n"), "{text}");
    assert!(
        text.ends_with(
            "upstream connect error or disconnect/reset before headers. reset reason: overflow"
        ),
        "{text}"
    );
    assert_eq!(sim.env.overflows, 1);
    assert_eq!(sim.env.statuses, [503]);
    assert!(sim.closed.is_none());
}

#[test]
fn a_full_pending_breaker_answers_503_overflow_without_connecting() {
    let mut sim = Sim::new(8192);
    sim.env.max[super::Resource::Pending as usize] = Some(0);
    // A retry policy does not retry an overflow.
    sim.client(b"GET /retry HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_overflow(&sim);
    assert_eq!(sim.up, UpConn::None, "no connection was asked for");
    assert_eq!(sim.env.held, [0; 4]);
}

#[test]
fn a_full_request_breaker_answers_503_overflow_and_pools_the_connection() {
    let mut sim = Sim::new(8192);
    sim.env.max[super::Resource::Request as usize] = Some(0);
    sim.client(b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_overflow(&sim);
    assert_eq!(sim.connects, 1);
    assert_eq!(sim.pooled, 1, "the unused connection goes back to the pool");
    assert!(sim.up_all.is_empty(), "nothing was sent upstream");
    assert_eq!(sim.env.held, [0; 4]);
    // With room again, the next request on the connection is served.
    sim.env.max = [None; 4];
    sim.client(b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n");
    sim.upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(sim.env.statuses, [503, 200]);
    assert_eq!(sim.env.held, [0; 4]);
}

#[test]
fn a_request_holds_pending_until_connected_then_an_active_slot() {
    let mut sim = Sim::new(8192);
    sim.auto_attach = false;
    sim.client(b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n");
    let (pending, active) = (
        super::Resource::Pending as usize,
        super::Resource::Request as usize,
    );
    assert_eq!((sim.env.held[pending], sim.env.held[active]), (1, 0));
    sim.attach();
    assert_eq!((sim.env.held[pending], sim.env.held[active]), (0, 1));
    sim.upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    assert_eq!(sim.env.held, [0; 4]);
    // A failed connect gives the pending slot back too.
    sim.client(b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(sim.env.held[pending], 1);
    sim.connect_refused();
    assert_eq!(sim.env.held, [0; 4]);
    assert_eq!(sim.env.statuses, [200, 503]);
}

#[test]
fn a_head_too_slow_gets_408_and_an_idle_connection_just_closes() {
    let mut sim = Sim::new(8192);
    sim.client(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-A: ");
    sim.advance(Duration::from_secs(11));
    let rs = responses(&sim.client_got);
    assert_eq!(rs.iter().map(|r| r.0).collect::<Vec<_>>(), [408]);
    assert!(sim.shut_down);
    let mut sim = Sim::new(8192);
    sim.advance(Duration::from_secs(61));
    assert!(sim.client_got.is_empty());
    assert_eq!(sim.closed, Some(super::Close::Graceful));
}

#[test]
fn the_http2_preface_is_answered_as_the_codec_type_says() {
    use crate::config::CodecType;
    // The client preface and an empty SETTINGS frame, as an h2c prior-knowledge client opens.
    const H2: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    // AUTO: the connection goes to the HTTP/2 transcoder with the preface; not a request.
    let mut sim = Sim::new(8192);
    sim.client(H2);
    assert!(sim.client_got.is_empty(), "{:?}", sim.client_got);
    assert_eq!(sim.env.http2_prefaces, 1);
    assert_eq!((sim.env.begun, sim.env.ended), (0, 0));
    assert!(!sim.shut_down);
    let (pre, _) = sim.conn.take_h2().expect("switch to HTTP/2");
    assert_eq!(pre, H2);
    assert!(sim.conn.take_h2().is_none(), "once");
    // The transcoder's HTTP/1 requests are served as any.
    sim.client(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    assert_eq!(sim.connects, 1);
    // HTTP2: whatever comes first goes to the transcoder (it judges the preface).
    let mut sim = Sim::with_codec(8192, CodecType::Http2);
    sim.client(b"GET / HTTP/1.1\r\n");
    assert_eq!(
        sim.conn.take_h2().map(|(p, _)| p),
        Some(b"GET / HTTP/1.1\r\n".to_vec())
    );
    // HTTP1: no HTTP/2 path, as in Envoy's HTTP/1 codec: `PRI * HTTP/2.0` is a malformed
    // request line, answered 400 and closed, whole or a byte at a time.
    for split in [H2.len(), 1] {
        let mut sim = Sim::with_codec(8192, CodecType::Http1);
        for part in H2.chunks(split) {
            sim.client(part);
        }
        let got = String::from_utf8_lossy(&sim.client_got).into_owned();
        assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got}");
        assert!(got.contains("connection: close"), "{got}");
        assert_eq!(responses(&sim.client_got).len(), 1, "{got}");
        assert_eq!(sim.env.statuses, [400]);
        assert_eq!(sim.env.http2_prefaces, 0);
        assert_eq!(sim.connects, 0);
        assert!(sim.shut_down);
    }
}

#[test]
fn an_early_response_ends_the_connection_after_it() {
    let mut sim = Sim::new(8192);
    sim.client(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc");
    sim.upstream(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n");
    let rs = responses(&sim.client_got);
    assert_eq!(rs.iter().map(|r| r.0).collect::<Vec<_>>(), [413]);
    assert!(String::from_utf8_lossy(&sim.client_got).contains("connection: close"));
    assert!(
        sim.shut_down,
        "the connection closes after the early response"
    );
    assert_eq!(sim.env.begun, sim.env.ended);
}

#[test]
fn fuzz_corpus_shapes_do_not_panic() {
    super::sim::fuzz_exchange(
        b"\x00\x20GET / HTTP/1.1\r\nHost: a\r\n\r\n\x04\x00\x02\x10HTTP/1.1 200 OK\r",
    );
    super::sim::fuzz_exchange(&[0, 3, b'G', 0xc3, 0xa9, 7, 255, 6, 0, 9, 0]);
}

/// A deterministic generator for the model test.
struct Rng(crate::util::Rng);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| b'a' + (self.below(26) as u8)).collect()
    }
}

/// What the model expects for one request: status and body.
#[derive(Debug, Clone)]
enum Expect {
    Answer(u16, Vec<u8>),
}

#[test]
fn model_thousands_of_random_exchanges() {
    let mut rng = Rng(crate::util::Rng::with_seed(0x9e37_79b9_7f4a_7c15));
    let (mut total, mut earlies, mut resets) = (0, 0, 0);
    for round in 0..2000 {
        let mut client = Vec::new();
        let mut expect = Vec::new();
        let mut plans = Vec::new();
        // For each upstream-bound request: its index in `expect` and where it ends in `client`.
        let mut up_reqs: Vec<(usize, usize)> = Vec::new();
        let n = 1 + rng.below(8) as usize;
        for i in 0..n {
            let kind = rng.below(10);
            let path = match kind {
                0 => format!("/local/{i}"),
                1 => format!("/missing/{i}"),
                _ => format!("/up/{round}/{i}"),
            };
            let len = rng.below(3000) as usize;
            let body = rng.bytes(len);
            let method = if body.is_empty() && rng.below(2) == 0 {
                "GET"
            } else {
                "POST"
            };
            let chunked = method == "POST" && rng.below(2) == 0;
            let expect_100 = method == "POST" && rng.below(4) == 0;
            let mut h = format!("{method} {path} HTTP/1.1\r\nHost: m\r\n");
            if expect_100 {
                h.push_str("Expect: 100-continue\r\n");
            }
            if chunked {
                h.push_str("Transfer-Encoding: chunked\r\n\r\n");
                let mut b = h.into_bytes();
                for c in body.chunks(1 + rng.below(700) as usize) {
                    b.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    b.extend_from_slice(c);
                    b.extend_from_slice(b"\r\n");
                }
                b.extend_from_slice(b"0\r\n\r\n");
                client.extend_from_slice(&b);
            } else {
                if method == "POST" {
                    h.push_str(&format!("Content-Length: {}\r\n", body.len()));
                }
                h.push_str("\r\n");
                client.extend_from_slice(h.as_bytes());
                client.extend_from_slice(&body);
            }
            // The upstream's behaviour for this request, in upstream order; 10 is an early
            // response (sent as soon as the head arrives, before the body is all there).
            let plan = rng.below(11);
            if kind > 1 {
                plans.push(plan);
                up_reqs.push((expect.len(), client.len()));
            }
            let exp = match (kind, plan) {
                (0, _) => Expect::Answer(200, b"local".to_vec()),
                (1, _) => Expect::Answer(404, Vec::new()),
                (_, 0) => Expect::Answer(
                    503,
                    super::super::local::upstream_failure(false, "connection termination", None)
                        .into_bytes(),
                ),
                _ => {
                    let mut e = path.as_bytes().to_vec();
                    e.push(b':');
                    e.extend_from_slice(&body);
                    Expect::Answer(200, e)
                }
            };
            expect.push(exp);
            // A local reply to `Expect: 100-continue` with a body we will not read closes the
            // connection (the client may never send that body).
            if kind <= 1 && expect_100 {
                break;
            }
        }
        let mut sim = Sim::new(8192);
        // The client writes in random pieces; the upstream answers each whole request in
        // random pieces with a random framing, or resets before answering.
        let mut sent = 0;
        let mut answered_total = 0usize;
        let mut answered = 0usize;
        let mut seen = 0;
        let mut early_end = None;
        for _ in 0..10_000 {
            let mut moved = false;
            if sent < client.len() {
                moved = true;
                let k = (1 + rng.below(1500) as usize).min(client.len() - sent);
                sim.client(&client[sent..sent + k]);
                sent += k;
            }
            if sim.up == UpConn::Open {
                if seen != sim.connects {
                    (seen, answered) = (sim.connects, 0);
                }
                let plan = plans.get(answered_total).copied().unwrap_or(1);
                let (idx, end) = up_reqs.get(answered_total).copied().unwrap_or((0, 0));
                let mut slots = header_slots();
                let head_in = matches!(parse_request(&sim.up_got, &mut slots), Ok(Some(_)));
                if plan == 10 && answered == 0 && head_in && sent < end {
                    // Truly early: the client has not even sent the whole body yet. The
                    // connection ends after this response; later requests get no answer.
                    sim.upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nearly");
                    early_end = Some(idx);
                    break;
                }
                let reqs = upstream_requests(&sim.up_got);
                if let Some((_, path, body)) = reqs.get(answered) {
                    moved = true;
                    answered += 1;
                    answered_total += 1;
                    if plan == 0 {
                        sim.upstream_reset();
                    } else {
                        let mut b = path.as_bytes().to_vec();
                        b.push(b':');
                        b.extend_from_slice(body);
                        let resp = frame_response(&mut rng, plan, &b);
                        let mut at = 0;
                        while at < resp.len() {
                            let k = (1 + rng.below(900) as usize).min(resp.len() - at);
                            sim.upstream(&resp[at..at + k]);
                            at += k;
                        }
                        if plan == 9 {
                            sim.upstream_fin();
                        }
                    }
                }
            }
            if !moved {
                break;
            }
        }
        let got = responses(&sim.client_got);
        let mut want: Vec<(u16, Vec<u8>)> = expect
            .iter()
            .map(|Expect::Answer(c, b)| (*c, b.clone()))
            .collect();
        resets += plans
            .iter()
            .take(answered_total)
            .filter(|&&p| p == 0)
            .count();
        if let Some(i) = early_end {
            earlies += 1;
            want.truncate(i);
            want.push((200, b"early".to_vec()));
            assert!(
                sim.shut_down || sim.closed.is_some(),
                "round {round}: closes after early"
            );
        }
        let brief = |v: &[(u16, Vec<u8>)]| -> Vec<(u16, usize)> {
            v.iter().map(|r| (r.0, r.1.len())).collect()
        };
        assert_eq!(
            got.len(),
            want.len(),
            "round {round}: got {:?} want {:?} plans {plans:?} closed {:?} up {:?}",
            brief(&got),
            brief(&want),
            sim.closed,
            sim.up
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.0, w.0, "round {round} request {i} status");
            assert_eq!(g.1, w.1, "round {round} request {i} body");
        }
        assert_eq!(sim.env.begun, sim.env.ended, "round {round}");
        assert_eq!(sim.env.active, 0, "round {round}");
        assert_eq!(
            sim.env.held, [0; 4],
            "round {round}: breaker resources held"
        );
        total += want.len();
    }
    assert!(total > 5000, "ran {total} exchanges");
    assert!(
        earlies > 50 && resets > 200,
        "{earlies} early responses, {resets} resets"
    );
}

/// The upstream's response with a framing chosen by `plan`: length, chunked, or (plan 9)
/// delimited by its close.
fn frame_response(rng: &mut Rng, plan: u64, body: &[u8]) -> Vec<u8> {
    match plan {
        1..=4 => {
            let mut r =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            r.extend_from_slice(body);
            r
        }
        9 => {
            let mut r = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
            r.extend_from_slice(body);
            r
        }
        _ => {
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for c in body.chunks(1 + rng.below(500) as usize) {
                r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                r.extend_from_slice(c);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            r
        }
    }
}

/// The listener's buffer limit bounds the unread request bytes and the response bytes waiting
/// for the client; the cluster's bounds the request bytes waiting for the upstream. Past them
/// the core stops reading, so the peers' bytes stay with the peers.
#[test]
fn buffers_are_bounded_by_the_listener_and_cluster_limits() {
    const LISTENER: usize = 32 * 1024;
    const CLUSTER: usize = 64 * 1024; // TestEnv's Forward::buffer_limit
    const BIG: usize = 1 << 20;
    let mut sim = Sim::with_buffer_limit(8192, LISTENER);
    sim.up_reads = false;
    sim.client(format!("POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: {BIG}\r\n\r\n").as_bytes());
    sim.client(&vec![b'q'; BIG]);
    let queued = sim.conn.up().map_or(0, |u| u.tx.len());
    assert!(
        queued > 0 && queued <= CLUSTER + 8192,
        "{queued} queued upstream"
    );
    assert!(
        sim.conn.client_in().len() <= LISTENER,
        "{} unread",
        sim.conn.client_in().len()
    );
    assert!(sim.client_pending.len() >= BIG - CLUSTER - LISTENER - 8192);
    // Now the upstream reads: the body goes through, then a large response meets a client
    // that does not read.
    sim.up_reads = true;
    sim.client_reads = false;
    sim.run();
    assert!(sim.client_pending.is_empty());
    sim.upstream(format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").as_bytes());
    sim.upstream(&vec![b'r'; BIG]);
    let waiting = sim.conn.client_out().len();
    assert!(
        waiting > 0 && waiting <= LISTENER + 1024,
        "{waiting} waiting for the client"
    );
    assert!(sim.up_pending.len() >= BIG - LISTENER - 2 * crate::http::buf::CHUNK);
    // A client that reads again gets every byte.
    sim.client_reads = true;
    sim.run();
    assert_eq!(responses(&sim.client_got), vec![(200, vec![b'r'; BIG])]);
}

// ---- tunnels (upgrades and CONNECT) ----

const WS_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
const WS_101: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: a\r\n\r\n";

/// The bytes after the first response head in `b`.
fn after_head(b: &[u8]) -> &[u8] {
    let at = b
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(b.len(), |i| i + 4);
    b.get(at..).unwrap_or_default()
}

/// A WebSocket handshake answered with 101: the tunnel is open, both directions empty.
fn open_ws() -> Sim {
    let mut sim = Sim::new(8192);
    sim.client(WS_REQUEST);
    let up = String::from_utf8_lossy(&sim.up_got).to_ascii_lowercase();
    assert!(up.contains("upgrade: websocket\r\n"), "{up}");
    assert!(up.contains("connection: upgrade\r\n"), "{up}");
    sim.upstream(WS_101);
    let head = String::from_utf8_lossy(&sim.client_got).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 101 switching protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("upgrade: websocket\r\n"), "{head}");
    assert!(head.contains("connection: upgrade\r\n"), "{head}");
    assert!(head.contains("sec-websocket-accept: a\r\n"), "{head}");
    assert!(!head.contains("content-length") && !head.contains("transfer-encoding"));
    assert_eq!(sim.env.tunnels_open, 1);
    sim
}

#[test]
fn a_101_opens_a_pipe_and_half_closes_pass_through_in_order() {
    let mut sim = open_ws();
    let upstream_head_len = sim.up_got.len();
    // Bytes of any shape, both ways, arriving in any split.
    let frames: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for piece in frames.chunks(777) {
        sim.client(piece);
    }
    assert_eq!(sim.up_got.get(upstream_head_len..), Some(&frames[..]));
    let before = sim.client_got.len();
    for piece in frames.chunks(1001) {
        sim.upstream(piece);
    }
    assert_eq!(sim.client_got.get(before..), Some(&frames[..]));
    // The client's FIN goes upstream; the upstream still talks, then closes.
    sim.client_close();
    assert!(sim.up_shut, "client FIN not passed upstream");
    assert!(sim.closed.is_none());
    sim.upstream(b"late words");
    assert!(sim.client_got.ends_with(b"late words"));
    sim.upstream_fin();
    assert!(sim.shut_down, "upstream FIN not passed to the client");
    assert_eq!(sim.closed, Some(super::Close::Graceful));
    assert_eq!(sim.env.ended, 1);
    assert_eq!((sim.env.tunnels, sim.env.tunnels_open), (1, 0));
    assert_eq!(sim.env.active, 0);
}

#[test]
fn the_upstreams_fin_first_then_the_clients() {
    let mut sim = open_ws();
    sim.upstream(b"bye");
    sim.upstream_fin();
    assert!(sim.shut_down && !sim.up_shut);
    assert!(sim.client_got.ends_with(b"bye"));
    // The client may still send; it reaches the upstream.
    sim.client(b"last");
    assert!(sim.up_got.ends_with(b"last"));
    sim.client_close();
    assert!(sim.up_shut);
    assert_eq!(sim.closed, Some(super::Close::Graceful));
    assert_eq!(sim.env.tunnels_open, 0);
}

#[test]
fn a_reset_on_either_side_resets_the_tunnel() {
    let mut sim = open_ws();
    sim.upstream_reset();
    assert_eq!(sim.closed, Some(super::Close::Reset));
    assert_eq!((sim.env.ended, sim.env.tunnels_open), (1, 0));
    // The client side: the driver sees the error and aborts the connection.
    let mut sim = open_ws();
    sim.conn.abort(&mut sim.env, sim.now);
    assert_eq!(
        (sim.env.ended, sim.env.tunnels_open, sim.env.active),
        (1, 0, 0)
    );
}

#[test]
fn tunnel_buffers_stay_bounded_both_ways() {
    let mut sim = open_ws();
    sim.client_reads = false;
    sim.up_reads = false;
    let block = vec![b'z'; 4096];
    for _ in 0..200 {
        sim.upstream(&block);
        sim.client(&block);
    }
    // Each side's reader stopped: the rest waits with its sender.
    assert!(sim.conn.cout.len() <= super::OUT_HIGH + crate::http::buf::CHUNK);
    assert!(!sim.up_pending.is_empty() && !sim.client_pending.is_empty());
    let up_tx = sim.conn.up().map_or(0, |u| u.tx.len());
    assert!(up_tx + sim.conn.cin.len() <= super::OUT_HIGH + crate::http::buf::CHUNK);
    // Reading again drains everything, in order.
    sim.client_reads = true;
    sim.up_reads = true;
    sim.run();
    assert!(sim.up_pending.is_empty() && sim.client_pending.is_empty());
    assert_eq!(after_head(&sim.client_got).len(), 200 * 4096);
}

#[test]
fn an_idle_tunnel_is_reset_after_the_stream_idle_timeout() {
    let mut sim = open_ws();
    sim.advance(Duration::from_secs(20));
    sim.client(b"ping");
    sim.advance(Duration::from_secs(20));
    assert!(sim.closed.is_none(), "activity moves the idle deadline");
    sim.advance(Duration::from_secs(11));
    assert_eq!(sim.closed, Some(super::Close::Reset));
    assert_eq!(sim.env.tunnels_open, 0);
}

#[test]
fn a_refused_upgrade_is_a_normal_response_and_the_connection_goes_on() {
    let mut sim = Sim::new(8192);
    sim.client(WS_REQUEST);
    sim.upstream(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n\r\nno");
    sim.client(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    sim.upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let codes: Vec<u16> = responses(&sim.client_got).iter().map(|r| r.0).collect();
    assert_eq!(codes, [426, 200]);
    assert_eq!(sim.env.tunnels, 0);
    // An upgrade the route does not allow: 403, and no upstream request.
    let mut sim = Sim::new(8192);
    sim.client(
        b"GET /noupgrade HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert_eq!(responses(&sim.client_got)[0].0, 403);
    assert_eq!(sim.connects, 0);
    // A 101 nobody asked for is a protocol error (502), not a tunnel.
    let mut sim = Sim::new(8192);
    sim.client(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    sim.upstream(WS_101);
    assert_eq!(responses(&sim.client_got)[0].0, 502);
    assert_eq!(sim.env.tunnels, 0);
}

#[test]
fn a_terminated_connect_answers_200_on_connect_and_pipes_raw_bytes() {
    let mut sim = Sim::new(8192);
    sim.auto_attach = false;
    sim.client(b"CONNECT db.test:5432 HTTP/1.1\r\nHost: db.test:5432\r\n\r\n");
    assert_eq!((sim.connects, sim.fresh_connects), (1, 1));
    assert!(
        sim.client_got.is_empty(),
        "no answer before the upstream is connected"
    );
    sim.attach();
    assert_eq!(sim.client_got, b"HTTP/1.1 200 OK\r\nserver: baton\r\n\r\n");
    assert!(
        sim.up_got.is_empty(),
        "nothing of the CONNECT goes upstream"
    );
    sim.client(b"\x00\x01raw");
    sim.upstream(b"\xffreply");
    assert_eq!(sim.up_got, b"\x00\x01raw");
    assert!(sim.client_got.ends_with(b"\xffreply"));
    sim.client_close();
    sim.upstream_fin();
    assert_eq!(sim.closed, Some(super::Close::Graceful));
    // A refused connect is Envoy's 503.
    let mut sim = Sim::new(8192);
    sim.auto_attach = false;
    sim.client(b"CONNECT db.test:5432 HTTP/1.1\r\nHost: db.test:5432\r\n\r\n");
    sim.connect_refused();
    assert_eq!(responses(&sim.client_got)[0].0, 503);
    assert_eq!(sim.env.tunnels, 0);
}

#[test]
fn every_split_of_a_handshake_and_its_data_gives_the_same_bytes() {
    let mut client = WS_REQUEST.to_vec();
    client.extend_from_slice(b"early client bytes");
    let mut upstream = WS_101.to_vec();
    upstream.extend_from_slice(b"early upstream bytes");
    let run = |c: &[&[u8]], u: &[&[u8]]| {
        let mut sim = Sim::new(8192);
        for p in c {
            sim.client(p);
        }
        for p in u {
            sim.upstream(p);
        }
        (sim.client_got, sim.up_got)
    };
    let whole = run(&[&client], &[&upstream]);
    assert!(whole.0.ends_with(b"early upstream bytes"));
    assert!(whole.1.ends_with(b"early client bytes"));
    for cut in 0..=client.len() {
        let (a, b) = client.split_at(cut);
        assert_eq!(run(&[a, b], &[&upstream]), whole, "client split at {cut}");
    }
    for cut in 0..=upstream.len() {
        let (a, b) = upstream.split_at(cut);
        assert_eq!(run(&[&client], &[a, b]), whole, "upstream split at {cut}");
    }
}

#[test]
fn a_tunnel_handed_over_mid_stream_delivers_every_byte_once_in_order() {
    use super::sim::TestEnv;
    let mut sim = open_ws();
    let up_head = sim.up_got.len();
    let down_head = sim.client_got.len();
    let up_stream: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let down_stream: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let (mut up_at, mut down_at) = (0, 0);
    // Peers that stall now and then, so every buffer holds bytes when the tunnel moves.
    for round in 0..40 {
        sim.client_reads = round % 3 != 0;
        sim.up_reads = round % 4 != 1;
        let n = 7_500;
        sim.client(&up_stream[up_at..up_at + n]);
        sim.upstream(&down_stream[down_at..down_at + n]);
        up_at += n;
        down_at += n;
        // Every fifth round: a handover to a new process; every seventh: one rolled back
        // (resumed by this process itself).
        if round % 5 == 4 {
            assert!(sim.hand_over(Some(TestEnv::new())));
        } else if round % 7 == 6 {
            assert!(sim.hand_over(None));
        }
    }
    // A FIN each way, with bytes still buffered, then one more handover.
    sim.client_reads = false;
    sim.up_reads = false;
    sim.client_close();
    sim.upstream_fin();
    assert!(sim.hand_over(Some(TestEnv::new())));
    sim.client_reads = true;
    sim.up_reads = true;
    sim.run();
    assert_eq!(sim.up_got.get(up_head..), Some(&up_stream[..]));
    assert_eq!(sim.client_got.get(down_head..), Some(&down_stream[..]));
    assert!(sim.up_shut && sim.shut_down);
    assert_eq!(sim.closed, Some(super::Close::Graceful));
    // The record ended once, in the process that had the tunnel last.
    assert_eq!(
        (sim.env.begun, sim.env.ended, sim.env.tunnels_open),
        (1, 1, 0)
    );
    assert_eq!(sim.env.active, 0);
    // Nothing but an open tunnel can be taken.
    let mut idle = Sim::new(8192);
    assert!(!idle.hand_over(None));
}

/// A response for the splice tests: `/len/N` gets an N-byte Content-Length body, `/chunked/N`
/// a chunked one, `/close/N` one delimited by the upstream's close; the bytes follow a pattern
/// that depends on the offset, so a byte out of place shows.
fn patterned_response(path: &str) -> (Vec<u8>, bool) {
    let mut parts = path.trim_start_matches('/').split('/');
    let kind = parts.next().unwrap_or_default();
    let n: usize = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let mut r = match kind {
        "chunked" | "bigchunked" => {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
        }
        "close" => b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec(),
        _ => format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n").into_bytes(),
    };
    if kind == "chunked" || kind == "bigchunked" {
        // Short chunks are copied; long ones have their payload announced and spliced.
        let size = if kind == "chunked" { 7000 } else { 50_000 };
        for c in body.chunks(size) {
            r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            r.extend_from_slice(c);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\n\r\n");
    } else {
        r.extend_from_slice(&body);
    }
    (r, kind == "close")
}

/// Runs pipelined requests for `paths` through the core, the upstream answering each in
/// pieces of random size (seeded); `cut` truncates the upstream's answer to the last request
/// to that many bytes and closes. Returns the simulation when done.
fn run_bodies(paths: &[&str], splice: bool, seed: u64, cut: Option<usize>) -> Sim {
    let mut rng = Rng(crate::util::Rng::with_seed(seed));
    let mut sim = Sim::new(8192);
    sim.splice = splice;
    let mut client = Vec::new();
    for p in paths {
        let method = if p.starts_with("/head") {
            "HEAD"
        } else {
            "GET"
        };
        client.extend_from_slice(format!("{method} {p} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    sim.client(&client);
    let (mut answered, mut total) = ((0, 0usize), 0);
    for _ in 0..100 {
        if sim.up != UpConn::Open {
            break;
        }
        if answered.0 != sim.connects {
            answered = (sim.connects, 0);
        }
        let reqs = upstream_requests(&sim.up_got);
        let Some((method, path, _)) = reqs.get(answered.1) else {
            break;
        };
        answered.1 += 1;
        total += 1;
        let (mut r, close) = patterned_response(path.trim_start_matches("/head"));
        if method == "HEAD" {
            let end = r.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
            r.truncate(end);
        }
        let last = total == paths.len();
        if let (true, Some(c)) = (last, cut) {
            r.truncate(c);
        }
        let mut at = 0;
        while at < r.len() {
            let k = (1 + rng.below(40_000) as usize).min(r.len() - at);
            sim.upstream(&r[at..at + k]);
            at += k;
        }
        if close || (last && cut.is_some()) {
            sim.upstream_fin();
        }
    }
    sim
}

/// A driver that splices body bytes past the core's buffers gives the client exactly the
/// bytes a copying driver gives, for every framing, body size and split, and the records
/// count the same bytes sent.
#[test]
fn splicing_gives_the_same_client_bytes_as_copying() {
    let sets: &[&[&str]] = &[
        &["/len/1000000"],
        &[
            "/len/20000",
            "/len/16384",
            "/len/16385",
            "/len/5",
            "/len/300000",
        ],
        &[
            "/len/100000",
            "/chunked/100000",
            "/len/70000",
            "/head/len/90000",
            "/len/0",
        ],
        &[
            "/len/65536",
            "/local",
            "/len/200000",
            "/missing",
            "/close/50000",
        ],
        &["/head/len/1000000", "/len/40000"],
        &[
            "/bigchunked/300000",
            "/chunked/30000",
            "/bigchunked/16384",
            "/bigchunked/70001",
            "/len/20000",
        ],
    ];
    let mut spliced = 0;
    for (i, paths) in sets.iter().enumerate() {
        for seed in 0..8u64 {
            let copy = run_bodies(paths, false, seed, None);
            let splice = run_bodies(paths, true, seed, None);
            assert_eq!(copy.spliced, 0);
            if paths.iter().any(|p| p.starts_with("/bigchunked")) {
                // Where a long chunk is announced depends on when our buffer runs empty,
                // which splicing changes: the framing may differ, the bodies may not.
                assert!(
                    responses(&copy.client_got) == responses(&splice.client_got),
                    "set {i} seed {seed}: decoded responses differ"
                );
            } else {
                assert!(
                    copy.client_got == splice.client_got,
                    "set {i} seed {seed}: client bytes differ ({} vs {} bytes)",
                    copy.client_got.len(),
                    splice.client_got.len()
                );
            }
            if !paths.iter().any(|p| p.starts_with("/head")) {
                let got = responses(&splice.client_got);
                assert_eq!(got.len(), paths.len(), "set {i} seed {seed}");
            }
            assert_eq!(
                splice.env.bytes_tx, copy.env.bytes_tx,
                "set {i} seed {seed}"
            );
            assert_eq!(splice.env.ended, paths.len() as u64, "set {i} seed {seed}");
            assert_eq!(splice.pooled, copy.pooled, "set {i} seed {seed}");
            spliced += splice.spliced;
        }
    }
    // Most of the large bodies went past the buffers.
    assert!(spliced > 8 * 1_700_000, "spliced {spliced}");
}

/// An upstream that closes mid-body: the spliced run truncates and resets like the copying
/// one, and counts only the bytes that went out.
#[test]
fn a_body_cut_short_while_splicing_resets_the_client() {
    for cut in [30_000, 100_000, 500_000] {
        let copy = run_bodies(&["/len/20000", "/len/1000000"], false, 3, Some(cut));
        let splice = run_bodies(&["/len/20000", "/len/1000000"], true, 3, Some(cut));
        assert!(copy.client_got == splice.client_got, "cut {cut}");
        assert_eq!(splice.closed, Some(super::Close::Reset), "cut {cut}");
        assert_eq!(splice.env.bytes_tx, copy.env.bytes_tx, "cut {cut}");
        assert!(splice.spliced > 0, "cut {cut}");
        // The whole first response and the truncated second: never a complete-looking one.
        assert_eq!(responses(&splice.client_got).len(), 1, "cut {cut}");
    }
}

/// The same with long chunks: an upstream cut inside an announced chunk resets the client
/// (its size line promised bytes that never came), spliced or copied alike.
#[test]
fn a_chunked_body_cut_inside_an_announced_chunk_resets_the_client() {
    for cut in [30_000, 120_000, 260_000] {
        let paths = ["/len/20000", "/bigchunked/300000"];
        let copy = run_bodies(&paths, false, 5, Some(cut));
        let splice = run_bodies(&paths, true, 5, Some(cut));
        assert_eq!(copy.closed, Some(super::Close::Reset), "cut {cut}");
        assert_eq!(splice.closed, Some(super::Close::Reset), "cut {cut}");
        assert_eq!(splice.env.bytes_tx, copy.env.bytes_tx, "cut {cut}");
        assert!(splice.spliced > 0, "cut {cut}");
        assert_eq!(responses(&splice.client_got).len(), 1, "cut {cut}");
        assert_eq!(responses(&copy.client_got).len(), 1, "cut {cut}");
    }
}

/// What `splice_budget` grants: only a Content-Length body relayed with its length, with
/// `SPLICE_MIN` or more to go, nothing buffered for it on either side.
#[test]
fn the_splice_budget_is_the_rest_of_a_long_length_body_with_empty_buffers() {
    let mut sim = Sim::new(8192);
    sim.client_reads = false;
    sim.client(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(sim.conn.splice_budget(), 0, "no response yet");
    sim.upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789");
    // The head and 10 body bytes wait for the client: nothing may overtake them.
    assert_eq!(sim.conn.splice_budget(), 0);
    assert_eq!(sim.conn.splice_after_flush(), 99_990);
    sim.client_reads = true;
    sim.run();
    assert_eq!(sim.conn.splice_budget(), 99_990);
    sim.conn.spliced(90_000, sim.now);
    // 9,990 left: below the threshold, the rest is copied.
    assert_eq!(sim.conn.splice_budget(), 0);
    assert_eq!(sim.conn.splice_after_flush(), 0);
    sim.upstream(&[b'x'; 9_990]);
    assert_eq!(sim.env.ended, 1);
    assert_eq!(sim.env.bytes_tx, 100_000);

    // Bodies whose framing gives no long rest (a chunked head with no chunk yet, a short
    // body) and HEAD responses are copied.
    for (req, resp) in [
        (
            "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
        (
            "GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 16383\r\n\r\n",
        ),
        (
            "HEAD /d HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
        ),
    ] {
        let mut sim = Sim::new(8192);
        sim.client(req.as_bytes());
        sim.upstream(resp.as_bytes());
        assert_eq!(sim.conn.splice_budget(), 0, "{req}");
    }
}

/// Chunked to chunked: once the buffered bytes are relayed, a long chunk's rest is announced
/// with its own size line and granted whole; after the splice its CRLF goes out first, and
/// the client's bytes still decode to the upstream's body.
#[test]
fn a_long_chunk_is_announced_then_spliced_then_closed_by_its_crlf() {
    let mut sim = Sim::new(8192);
    sim.client(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    sim.upstream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    assert_eq!(sim.conn.splice_budget(), 0, "no long chunk yet");
    // 100 bytes of a 0x10000-byte chunk arrive with its size line: they are copied, then
    // the rest (65,436 = 0xff9c) is announced.
    let mut r = b"10000\r\n".to_vec();
    r.extend_from_slice(&[b'a'; 100]);
    sim.upstream(&r);
    assert_eq!(sim.conn.splice_budget(), 65_436);
    let text = String::from_utf8_lossy(&sim.client_got).into_owned();
    assert!(
        text.contains("\r\n64\r\n"),
        "the 100 copied bytes as a chunk: {text}"
    );
    assert!(text.ends_with("\r\nff9c\r\n"), "{text}");
    sim.conn.spliced(60_000, sim.now);
    assert_eq!(
        sim.conn.splice_budget(),
        0,
        "5,436 left: below the threshold"
    );
    // The rest comes by copy, raw (no second size line), with the CRLF after it.
    let mut rest = vec![b'a'; 5_436];
    rest.extend_from_slice(b"\r\n0\r\n\r\n");
    sim.upstream(&rest);
    assert_eq!(sim.env.ended, 1);
    assert_eq!(sim.env.bytes_tx, 5 + 65_536);
    // What the client got, with the 60,000 spliced bytes put where the pipe put them.
    let at = sim
        .client_got
        .windows(6)
        .position(|w| w == b"ff9c\r\n")
        .expect("size line")
        + 6;
    let mut wire = sim.client_got[..at].to_vec();
    wire.extend_from_slice(&[b'a'; 60_000]);
    wire.extend_from_slice(&sim.client_got[at..]);
    let got = responses(&wire);
    assert_eq!(got.len(), 1);
    let mut want = b"hello".to_vec();
    want.extend_from_slice(&[b'a'; 65_536]);
    assert!(got[0].1 == want, "decoded body differs");

    // A chunk spliced to its end: its CRLF is due before the next size line or the last chunk.
    let mut sim = Sim::new(8192);
    sim.client(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    sim.upstream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8000\r\n");
    assert_eq!(sim.conn.splice_budget(), 0x8000);
    sim.conn.spliced(0x8000, sim.now);
    assert_eq!(sim.conn.splice_budget(), 0, "the CRLF first");
    sim.upstream(b"\r\n3\r\nxyz\r\n0\r\n\r\n");
    assert_eq!(sim.env.ended, 1);
    let text = String::from_utf8_lossy(&sim.client_got).into_owned();
    assert!(
        text.ends_with("8000\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"),
        "{text}"
    );
}

/// A connection whose client sent `requests` and whose first response, a Content-Length
/// body of `len`, went whole into the driver's pipe, `unsent` of it not yet at the client.
fn spliced_into_the_pipe(requests: &[u8], len: usize, unsent: usize) -> Sim {
    let mut sim = Sim::new(8192);
    sim.client(requests);
    sim.upstream(format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").as_bytes());
    assert_eq!(sim.conn.splice_budget(), len);
    sim.conn.spliced(len, sim.now);
    sim.conn.set_unsent_spliced(unsent);
    sim
}

/// Spliced bytes still in the driver's pipe are output not yet written: a client that
/// half-closed after its request is not closed (nor a draining connection handed over) until
/// they are out; then the usual shutdown follows.
#[test]
fn bytes_left_in_the_pipe_hold_the_close_until_they_are_out() {
    // The whole body went into the pipe; the client has not taken 60,000 of it yet.
    let mut sim = spliced_into_the_pipe(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 100_000, 60_000);
    sim.client_close();
    assert_eq!(sim.env.ended, 1);
    assert_eq!(
        sim.closed, None,
        "closed with 60,000 bytes still in the pipe"
    );
    assert!(
        !sim.conn.wants_shutdown(),
        "shut down before the pipe was empty"
    );
    sim.conn.set_unsent_spliced(0);
    sim.run();
    assert!(
        sim.shut_down || sim.closed.is_some(),
        "no close once the pipe is empty"
    );
}

/// A full enlarged pipe (256 KiB the client has not taken) is backpressure like a full out
/// buffer: a pipelined request waits, unparsed and unread, until the pipe has drained.
#[test]
fn a_full_pipe_holds_pipelined_requests_until_it_drains() {
    let two = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut sim = spliced_into_the_pipe(two, 300_000, 256 * 1024);
    sim.run();
    assert_eq!(sim.env.ended, 1, "the first exchange is done");
    assert!(
        !String::from_utf8_lossy(&sim.up_all).contains("GET /b"),
        "a pipelined request went upstream while 256 KiB waited in the pipe"
    );
    assert_eq!(
        sim.conn.client_read_room(),
        0,
        "reading on behind a full pipe"
    );
    sim.conn.set_unsent_spliced(0);
    sim.run();
    assert!(
        String::from_utf8_lossy(&sim.up_all).contains("GET /b"),
        "the pipelined request never went upstream once the pipe drained"
    );
}

/// Spliced bytes are stream activity (the stream idle timeout counts from them) and count
/// towards the bytes sent as they move.
#[test]
fn spliced_bytes_are_activity_and_bytes_sent() {
    let mut sim = Sim::new(8192);
    sim.client(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    sim.upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
    let mut sent = 0u64;
    for _ in 0..5 {
        sim.now += Duration::from_secs(1);
        let n = sim.conn.splice_budget().min(65_536);
        assert!(n > 0, "still splicing");
        sim.conn.spliced(n, sim.now);
        sent += n as u64;
        let super::State::Exchange(ex) = &sim.conn.state else {
            panic!("the exchange ended early");
        };
        assert_eq!(ex.last_activity, sim.now);
        assert_eq!(ex.rq.bytes_tx, sent);
    }
    // More than the budget is never counted.
    let rest = sim.conn.splice_budget();
    sim.conn.spliced(rest + 1000, sim.now);
    sim.run();
    assert_eq!(sim.env.ended, 1);
    assert_eq!(sim.env.bytes_tx, 1_000_000);
    assert_eq!(sim.pooled, 1);
}

fn sim_with(f: impl FnOnce(&mut super::Limits)) -> Sim {
    let mut lim = Sim::limits(8192, 1 << 20);
    f(&mut lim);
    Sim::with_limits(lim)
}

const GET_A: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const OK_1: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na";

fn closes(sim: &Sim) -> usize {
    String::from_utf8_lossy(&sim.client_got)
        .matches("connection: close")
        .count()
}

#[test]
fn the_last_request_a_connection_may_serve_is_answered_with_connection_close() {
    let mut sim = sim_with(|l| l.max_requests = Some(2));
    sim.client(GET_A);
    sim.upstream(OK_1);
    assert_eq!(closes(&sim), 0);
    assert_eq!(sim.closed, None);
    sim.client(GET_A);
    sim.upstream(OK_1);
    assert_eq!(responses(&sim.client_got).len(), 2);
    assert_eq!(closes(&sim), 1, "the second response is the last");
    assert!(sim.shut_down, "and the connection ends after it");
}

#[test]
fn an_answer_still_being_written_is_timed_by_the_stream_idle_timeout_not_the_idle_one() {
    // The client reads nothing (an HTTP/2 client's closed window, or a slow reader): the
    // response sits in our output, a stream in progress; the connection's idle timeout
    // (shorter here) must not cut it, the stream idle timeout does.
    let mut sim = sim_with(|l| {
        l.idle_timeout = Some(Duration::from_secs(3));
        l.stream_idle_timeout = Some(Duration::from_secs(8));
    });
    sim.client_reads = false;
    sim.client(GET_A);
    sim.upstream(OK_1);
    sim.advance(Duration::from_secs(4));
    assert_eq!(
        sim.closed, None,
        "cut at the idle timeout with the answer unsent"
    );
    sim.advance(Duration::from_secs(5));
    assert!(sim.closed.is_some(), "the stream idle timeout ends it");
    // With nothing left to write, the idle timeout applies as before.
    let mut sim = sim_with(|l| {
        l.idle_timeout = Some(Duration::from_secs(3));
        l.stream_idle_timeout = Some(Duration::from_secs(8));
    });
    sim.client(GET_A);
    sim.upstream(OK_1);
    sim.advance(Duration::from_secs(4));
    assert_eq!(sim.closed, Some(super::Close::Graceful));
}

#[test]
fn a_connection_past_its_max_duration_closes_once_idle_or_after_its_response() {
    // Idle when the duration ends: closed then, not at the idle timeout.
    let mut sim = sim_with(|l| l.max_connection_duration = Some(Duration::from_secs(5)));
    sim.client(GET_A);
    sim.upstream(OK_1);
    sim.advance(Duration::from_secs(4));
    assert_eq!(sim.closed, None);
    sim.advance(Duration::from_secs(2));
    assert!(
        sim.shut_down,
        "our FIN, then a short linger for a request crossing it"
    );
    assert_eq!(closes(&sim), 0);
    sim.advance(Duration::from_secs(5));
    assert_eq!(sim.closed, Some(super::Close::Graceful));
    // Busy when it ends: the response in progress says Connection: close.
    let mut sim = sim_with(|l| l.max_connection_duration = Some(Duration::from_secs(5)));
    sim.client(GET_A);
    sim.advance(Duration::from_secs(6));
    assert_eq!(sim.closed, None, "the request in progress is answered");
    sim.upstream(OK_1);
    assert_eq!(responses(&sim.client_got).len(), 1);
    assert_eq!(closes(&sim), 1);
    assert!(sim.shut_down);
}

#[test]
fn header_names_with_underscores_are_refused_or_dropped_when_configured() {
    let req = b"GET /a HTTP/1.1\r\nHost: x\r\nx_user: evil\r\nx-user: good\r\n\r\n";
    let mut sim = sim_with(|l| l.underscores = crate::config::Underscores::RejectRequest);
    sim.client(req);
    let codes: Vec<u16> = responses(&sim.client_got).iter().map(|r| r.0).collect();
    assert_eq!(codes, [400]);
    assert_eq!(sim.connects, 0);
    assert!(sim.shut_down);
    let mut sim = sim_with(|l| l.underscores = crate::config::Underscores::DropHeader);
    sim.client(req);
    sim.upstream(OK_1);
    let up = String::from_utf8_lossy(&sim.up_got).to_ascii_lowercase();
    assert!(!up.contains("x_user"), "{up}");
    assert!(up.contains("x-user: good"), "{up}");
    assert_eq!(responses(&sim.client_got).len(), 1);
    let mut sim = sim_with(|_| {});
    sim.client(req);
    assert!(String::from_utf8_lossy(&sim.up_got).contains("x_user: evil"));
}

#[test]
fn more_headers_than_max_headers_count_is_431() {
    let mut sim = sim_with(|l| l.max_headers = 3);
    sim.client(b"GET /a HTTP/1.1\r\nHost: x\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n");
    let codes: Vec<u16> = responses(&sim.client_got).iter().map(|r| r.0).collect();
    assert_eq!(codes, [431]);
    let mut sim = sim_with(|l| l.max_headers = 3);
    sim.client(b"GET /a HTTP/1.1\r\nHost: x\r\na: 1\r\nb: 2\r\n\r\n");
    assert_eq!(sim.connects, 1);
}

#[test]
fn a_request_not_in_by_request_timeout_gets_408_and_the_connection_closes() {
    let slow = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab";
    let mut sim = sim_with(|l| l.request_timeout = Some(Duration::from_secs(5)));
    sim.client(slow);
    sim.advance(Duration::from_secs(3));
    sim.client(b"cd");
    assert!(sim.client_got.is_empty());
    sim.advance(Duration::from_secs(3));
    let rs = responses(&sim.client_got);
    assert_eq!(rs.iter().map(|r| r.0).collect::<Vec<_>>(), [408]);
    assert_eq!(rs[0].1, b"request timeout");
    assert!(sim.shut_down);
    // In time: no timeout, however long the upstream then takes (the route's business).
    let mut sim = sim_with(|l| l.request_timeout = Some(Duration::from_secs(5)));
    sim.client(slow);
    sim.client(b"cdefghij");
    sim.advance(Duration::from_secs(8));
    sim.upstream(OK_1);
    let codes: Vec<u16> = responses(&sim.client_got).iter().map(|r| r.0).collect();
    assert_eq!(codes, [200]);
    // While its connection is pending the body is not read (it waits in the socket): the
    // timeout waits too, as Envoy, which would have buffered it, would not fire.
    let mut sim = sim_with(|l| l.request_timeout = Some(Duration::from_secs(5)));
    sim.auto_attach = false;
    sim.client(slow);
    sim.advance(Duration::from_secs(6));
    assert!(sim.client_got.is_empty());
    sim.client(b"cdefghij");
    sim.attach();
    sim.upstream(OK_1);
    let codes: Vec<u16> = responses(&sim.client_got).iter().map(|r| r.0).collect();
    assert_eq!(codes, [200]);
    // An answer that started before the request was in disarms it.
    let mut sim = sim_with(|l| l.request_timeout = Some(Duration::from_secs(5)));
    sim.client(slow);
    sim.upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na");
    sim.advance(Duration::from_secs(6));
    assert!(!String::from_utf8_lossy(&sim.client_got).contains("408"));
}

// ---- TCP proxy connections ----

fn tcp_sim(max_connect_attempts: u32, idle: Option<u64>, max_duration: Option<u64>) -> Sim {
    Sim::tcp(
        super::TcpLimits {
            max_connect_attempts,
            idle_timeout: idle.map(Duration::from_secs),
            max_duration: max_duration.map(Duration::from_secs),
            tunnel: false,
        },
        1 << 20,
    )
}

#[test]
fn a_tcp_proxy_connects_at_once_and_reads_the_client_only_once_connected() {
    let mut sim = tcp_sim(1, Some(3600), None);
    sim.auto_attach = false;
    // The client speaks first; nothing is read before the upstream is there.
    sim.client(b"client first");
    assert_eq!((sim.connects, sim.fresh_connects), (1, 1));
    assert_eq!(sim.up, UpConn::Wanted);
    assert_eq!(sim.client_pending, b"client first");
    assert!(sim.client_got.is_empty());
    sim.attach();
    assert_eq!(sim.up_got, b"client first");
    assert_eq!(sim.env.tunnels_open, 1);
    // Server speaks (a banner), bytes both ways in any split; nothing is added or answered.
    sim.upstream(b"220 banner\r\n");
    assert_eq!(sim.client_got, b"220 banner\r\n");
    let data: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 256) as u8).collect();
    for piece in data.chunks(999) {
        sim.client(piece);
        sim.upstream(piece);
    }
    assert_eq!(sim.up_got.get(12..), Some(&data[..]));
    assert_eq!(sim.client_got.get(12..), Some(&data[..]));
    // Half-close each way, then the end: one record, nothing leaked, never pooled.
    sim.client_close();
    assert!(sim.up_shut && sim.closed.is_none());
    sim.upstream(b"after your FIN");
    sim.upstream_fin();
    assert!(sim.client_got.ends_with(b"after your FIN") && sim.shut_down);
    assert_eq!(sim.closed, Some(super::Close::Graceful));
    assert_eq!((sim.env.begun, sim.env.ended, sim.env.active), (1, 1, 0));
    assert_eq!((sim.env.tunnels_open, sim.pooled), (0, 0));
    assert_eq!(sim.env.statuses, [0]);
    assert!(sim.env.flags[0].is_empty());
}

/// `tunneling_config`: the CONNECT goes first, the client's bytes wait for the proxy's 2xx,
/// and what follows the answer's head is the tunnel's; a refusal, a close or a silent proxy
/// is a failed connect (the next attempt, then the client closed unanswered).
#[test]
fn a_tunnelling_tcp_proxy_opens_its_tunnel_on_the_connects_2xx() {
    use crate::access_log::Flags;
    let tunnel = |attempts| {
        let t = super::TcpLimits {
            max_connect_attempts: attempts,
            idle_timeout: Some(Duration::from_secs(3600)),
            max_duration: None,
            tunnel: true,
        };
        let mut sim = Sim::tcp(t, 1 << 20);
        sim.auto_attach = false;
        sim
    };
    const CONNECT: &[u8] = b"CONNECT tunnel:443 HTTP/1.1\r\nHost: tunnel:443\r\n\r\n";
    let mut sim = tunnel(1);
    sim.client(b"client first");
    sim.attach();
    assert_eq!(sim.up_got, CONNECT, "only the CONNECT before the answer");
    assert_eq!(sim.env.tunnels_open, 0);
    sim.upstream(b"HTTP/1.1 200 Connection established\r\n");
    assert_eq!(sim.up_got, CONNECT);
    sim.upstream(b"\r\nbanner");
    assert_eq!(sim.env.tunnels_open, 1);
    assert_eq!(
        sim.client_got, b"banner",
        "the answer's head is not the client's"
    );
    assert_eq!(sim.up_got.get(CONNECT.len()..), Some(&b"client first"[..]));
    sim.client(b" more");
    sim.upstream(b" back");
    assert_eq!(sim.client_got, b"banner back");
    assert!(sim.up_got.ends_with(b"client first more"));
    sim.client_close();
    sim.upstream_fin();
    assert_eq!(sim.closed, Some(super::Close::Graceful));
    assert!(sim.env.flags[0].is_empty());

    // Interim answers before the 2xx are skipped (split across reads too).
    let mut sim = tunnel(1);
    sim.client(b"x");
    sim.attach();
    sim.upstream(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n");
    sim.upstream(b"\r\nHTTP/1.1 200 OK\r\n\r\nhi");
    assert_eq!(sim.env.tunnels_open, 1);
    assert_eq!(sim.client_got, b"hi");

    // Refused by the proxy, then a second host that accepts: the tunnel opens there.
    let mut sim = tunnel(2);
    sim.client(b"x");
    sim.attach();
    sim.upstream(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
    assert_eq!(sim.connects, 2);
    assert!(sim.client_got.is_empty());
    sim.attach();
    sim.upstream(b"HTTP/1.1 200 OK\r\n\r\n");
    assert_eq!(sim.env.tunnels_open, 1);
    assert!(sim.up_got.ends_with(b"\r\n\r\nx"));

    // A refusal, a garbled answer, a close before the answer, no answer in time: the
    // client is closed with nothing written, UF.
    for how in 0..4 {
        let mut sim = tunnel(1);
        sim.client(b"x");
        sim.attach();
        match how {
            0 => sim.upstream(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"),
            1 => sim.upstream(b"\x00\x01garbage\r\n\r\n"),
            2 => sim.upstream_fin(),
            _ => sim.advance(Duration::from_secs(1)),
        }
        assert_eq!(sim.closed, Some(super::Close::Graceful), "case {how}");
        assert!(sim.client_got.is_empty(), "case {how}");
        assert_eq!(sim.env.tunnels_open, 0);
        assert!(sim.env.flags[0].has(Flags::UF), "case {how}");
    }
}

#[test]
fn tcp_connect_failures_are_retried_then_the_client_is_closed_unanswered() {
    use crate::access_log::Flags;
    for attempts in [1u32, 3] {
        let mut sim = tcp_sim(attempts, Some(3600), None);
        sim.auto_attach = false;
        sim.client(b"hello");
        for i in 1..=attempts {
            assert_eq!(sim.connects, i);
            assert!(sim.closed.is_none());
            sim.connect_refused();
        }
        assert_eq!(sim.connects, attempts, "no attempt past the maximum");
        assert_eq!(sim.closed, Some(super::Close::Graceful));
        assert!(
            sim.client_got.is_empty(),
            "nothing is written to the client"
        );
        let f = sim.env.flags[0];
        assert!(f.has(Flags::UF) && f.has(Flags::URX), "{f:?}");
        assert_eq!(sim.env.tcp_stats, [super::TcpStat::AttemptsExceeded(0)]);
        assert_eq!((sim.env.ended, sim.env.active), (1, 0));
    }
    // A second attempt that connects carries the connection on.
    let mut sim = tcp_sim(2, Some(3600), None);
    sim.auto_attach = false;
    sim.client(b"hello");
    sim.connect_refused();
    sim.attach();
    assert_eq!(sim.up_got, b"hello");
    assert!(sim.env.tcp_stats.is_empty());
}

#[test]
fn the_connect_timeout_covers_a_tcp_connect_and_counts_as_a_failed_attempt() {
    let mut sim = tcp_sim(2, Some(3600), None);
    sim.auto_attach = false;
    sim.run();
    assert_eq!(sim.connects, 1);
    // TestEnv's connect timeout is 250 ms.
    sim.advance(Duration::from_millis(260));
    assert_eq!(sim.connects, 2);
    sim.advance(Duration::from_millis(260));
    assert_eq!(sim.closed, Some(super::Close::Graceful));
    assert_eq!(sim.env.tcp_stats, [super::TcpStat::AttemptsExceeded(0)]);
}

#[test]
fn a_tcp_proxy_without_a_host_closes_the_client_at_once() {
    let mut sim = tcp_sim(3, Some(3600), None);
    sim.env.tcp_no_host = true;
    sim.client(b"hello");
    assert_eq!(sim.connects, 0);
    assert_eq!(sim.closed, Some(super::Close::Graceful));
    assert!(sim.env.flags[0].has(crate::access_log::Flags::UH));
    assert_eq!((sim.env.begun, sim.env.ended), (1, 1));
}

#[test]
fn a_tcp_proxy_closes_both_sides_after_its_idle_timeout() {
    let mut sim = tcp_sim(1, Some(10), None);
    sim.run();
    sim.advance(Duration::from_secs(6));
    sim.client(b"ping");
    sim.advance(Duration::from_secs(6));
    sim.upstream(b"pong");
    sim.advance(Duration::from_secs(6));
    assert!(
        sim.closed.is_none(),
        "activity either way moves the idle deadline"
    );
    sim.advance(Duration::from_secs(5));
    // Closed, not reset (Envoy's TCP proxy closes both connections), and counted.
    assert_eq!(sim.closed, Some(super::Close::Graceful));
    assert_eq!(sim.up, UpConn::None);
    assert_eq!(sim.env.tcp_stats, [super::TcpStat::IdleTimeout]);
    assert!(sim.env.flags[0].is_empty());
    // Disabled (0s): an hour of silence changes nothing.
    let mut sim = tcp_sim(1, None, None);
    sim.run();
    sim.advance(Duration::from_secs(3600));
    assert!(sim.closed.is_none());
}

#[test]
fn a_tcp_proxy_connection_ends_at_its_maximum_duration_even_when_busy() {
    let mut sim = tcp_sim(1, Some(10), Some(30));
    sim.run();
    for _ in 0..5 {
        sim.advance(Duration::from_secs(5));
        sim.client(b"busy");
    }
    assert!(sim.closed.is_none());
    // Its age survives a handover: the deadline is the connection's, not the process's.
    assert!(sim.hand_over(Some(super::sim::TestEnv::new())));
    sim.advance(Duration::from_secs(6));
    assert_eq!(sim.closed, Some(super::Close::Graceful));
    assert!(sim.env.flags[0].has(crate::access_log::Flags::DT));
    assert_eq!(sim.env.tcp_stats, [super::TcpStat::MaxDuration]);
}

#[test]
fn a_tcp_proxy_counts_when_backpressure_stops_and_restarts_reading_the_client() {
    use super::TcpStat::{FlowPaused, FlowResumed};
    let mut sim = tcp_sim(1, Some(3600), None);
    sim.run();
    sim.up_reads = false;
    let block = vec![b'x'; 16 * 1024];
    for _ in 0..10 {
        sim.client(&block);
    }
    assert!(!sim.client_pending.is_empty(), "reading stopped");
    assert_eq!(sim.env.tcp_stats, [FlowPaused]);
    sim.up_reads = true;
    sim.run();
    assert!(sim.client_pending.is_empty());
    assert_eq!(sim.up_got.len(), 10 * block.len());
    // Each stop is followed by its restart (the backlog can fill the buffers again on the
    // way: each time counts).
    let s = &sim.env.tcp_stats;
    assert!(!s.is_empty() && s.len() % 2 == 0, "{s:?}");
    for pair in s.chunks(2) {
        assert_eq!(pair, [FlowPaused, FlowResumed]);
    }
}

#[test]
fn random_scripts_on_tcp_proxy_connections_keep_the_invariants() {
    // Client and upstream bytes, closes, resets, refused connects, time and handovers in
    // random order, on every combination of settings: memory stays bounded, every record
    // ends exactly once, nothing leaks (`check_invariants`).
    let mut rng = crate::util::Rng::with_seed(0x7c15_9e37);
    for _ in 0..20_000 {
        let len = rng.below(300) as usize;
        let script: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        super::sim::fuzz_tcp(&script);
    }
}

#[test]
fn a_tcp_proxy_connection_a_circuit_breaker_refuses_is_closed_unanswered() {
    for r in [super::Resource::Pending, super::Resource::Request] {
        let mut sim = tcp_sim(1, None, None);
        sim.auto_attach = false;
        sim.env.max[r as usize] = Some(0);
        sim.client(b"hello");
        sim.attach();
        assert!(
            sim.client_got.is_empty(),
            "{r:?}: {:?}",
            String::from_utf8_lossy(&sim.client_got)
        );
        assert!(sim.closed.is_some(), "{r:?}");
        assert_eq!(sim.env.held, [0; 4], "{r:?}");
        assert!(
            sim.env
                .flags
                .last()
                .is_some_and(|f| f.has(crate::access_log::Flags::UO)),
            "{r:?}"
        );
    }
}

/// A shadow (`request_mirror_policies`) is the upstream request itself, head and body, however
/// the request arrives; one per request; none for a body past the buffer limit (counted).
#[test]
fn a_shadow_carries_the_whole_request_however_it_arrives() {
    let reqs: [&[u8]; 3] = [
        b"POST /mirror HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789",
        b"POST /mirror HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"GET /mirror HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    for req in reqs {
        for cut in 0..=req.len() {
            let mut sim = Sim::new(8192);
            let mut answered = (0, 0);
            let (a, b) = req.split_at(cut);
            sim.client(a);
            serve(&mut sim, &echo, &mut answered);
            sim.client(b);
            serve(&mut sim, &echo, &mut answered);
            let what = format!("split at {cut} of {:?}", String::from_utf8_lossy(req));
            assert_eq!(responses(&sim.client_got).len(), 1, "{what}");
            assert_eq!(sim.env.shadows.len(), 1, "{what}");
            let (head, body) = &sim.env.shadows[0];
            let mut shadow = head.clone();
            shadow.extend_from_slice(body);
            assert_eq!(shadow, sim.up_all, "{what}");
        }
    }
    let mut sim = Sim::with_buffer_limit(8192, 16 * 1024);
    let mut answered = (0, 0);
    sim.client(b"POST /mirror HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
    for _ in 0..100 {
        sim.client(&[b'z'; 1000]);
        serve(&mut sim, &echo, &mut answered);
    }
    assert_eq!(responses(&sim.client_got).len(), 1);
    assert!(
        sim.env.shadows.is_empty(),
        "a body past the limit has no shadow"
    );
    assert_eq!(sim.env.abandoned, 1);
}

/// `proxy_100_continue`: no 100 of our own; the upstream's first 100 is relayed, a second is
/// not; without it, ours at once and the upstream's dropped.
#[test]
fn proxy_100_continue_relays_the_upstreams_first_100() {
    let req: &[u8] =
        b"PUT /d HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    for proxy in [true, false] {
        let mut sim = Sim::with_limits(crate::http::core::Limits {
            proxy_100_continue: proxy,
            ..Sim::limits(8192, 1 << 20)
        });
        sim.client(req);
        let own = sim.client_got.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(own, !proxy, "proxy {proxy}");
        sim.upstream(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n");
        sim.client(b"body");
        sim.upstream(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
        let text = String::from_utf8_lossy(&sim.client_got).into_owned();
        assert_eq!(text.matches("100 Continue").count(), 1, "{text}");
        assert!(text.contains("201 Created"), "{text}");
    }
}

/// A request a circuit breaker refuses (503 overflow) sends no shadow, with or without a body.
#[test]
fn a_request_the_breakers_refuse_is_not_shadowed() {
    let reqs: [&[u8]; 2] = [
        b"GET /mirror HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /mirror HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab",
    ];
    for r in [super::Resource::Pending, super::Resource::Request] {
        for req in reqs {
            let mut sim = Sim::new(8192);
            sim.env.max[r as usize] = Some(0);
            let mut answered = (0, 0);
            sim.client(req);
            serve(&mut sim, &echo, &mut answered);
            let codes: Vec<u16> = responses(&sim.client_got).iter().map(|x| x.0).collect();
            assert_eq!(codes, [503], "{r:?} {}", String::from_utf8_lossy(req));
            assert!(
                sim.env.shadows.is_empty(),
                "{r:?} {}",
                String::from_utf8_lossy(req)
            );
        }
    }
}

#[test]
fn a_request_paused_on_its_check_reads_no_body_and_chooses_no_upstream() {
    let mut sim = Sim::new(8192);
    sim.auto_attach = false;
    let body = vec![b'x'; 200_000];
    let mut req = b"POST /authz/a HTTP/1.1\r\nHost: h\r\nContent-Length: 200000\r\n\r\n".to_vec();
    req.extend_from_slice(&body);
    sim.client(&req);
    assert!(sim.conn.checking());
    assert_eq!(sim.checks.len(), 1, "one check is sent");
    assert_eq!(sim.connects, 0, "no upstream while paused");
    // Nothing past what came with the head is read: the body waits in the client's socket.
    assert!(sim.conn.cin.len() <= 64 * 1024, "{}", sim.conn.cin.len());
    assert!(!sim.client_pending.is_empty());
    sim.answer_check(Some(200));
    assert!(!sim.conn.checking());
    assert_eq!(sim.connects, 1, "allowed: the request goes upstream");
    sim.attach();
    let got = upstream_requests(&sim.up_all);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, body, "the whole body goes up once allowed");
    sim.upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    assert_eq!(responses(&sim.client_got), vec![(200, b"ok".to_vec())]);
}

#[test]
fn a_denied_or_timed_out_check_is_answered_without_an_upstream() {
    for denied in [true, false] {
        let mut sim = Sim::new(8192);
        sim.client(b"GET /authz HTTP/1.1\r\nHost: h\r\n\r\nGET /local HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(sim.conn.checking());
        if denied {
            sim.answer_check(Some(403));
        } else {
            sim.advance(Duration::from_millis(199));
            assert!(sim.conn.checking());
            sim.advance(Duration::from_millis(2));
        }
        assert_eq!(sim.connects, 0);
        let got: Vec<u16> = responses(&sim.client_got).iter().map(|r| r.0).collect();
        assert_eq!(got, [403, 200], "the pipelined request follows");
        assert_eq!(sim.env.verdicts.len(), 1);
        assert_eq!(sim.env.verdicts[0].is_none(), !denied);
        assert!(sim.env.flags[0].has(crate::access_log::Flags::UAEX));
    }
}

#[test]
fn a_client_leaving_a_paused_request_ends_its_record() {
    let mut sim = Sim::new(8192);
    sim.client(b"GET /authz HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(sim.conn.checking());
    sim.conn.abort(&mut sim.env, sim.now);
    assert_eq!((sim.env.begun, sim.env.ended), (1, 1));
}

#[test]
fn a_delayed_request_waits_on_the_clock_then_goes_upstream() {
    let mut sim = Sim::new(8192);
    sim.auto_attach = false;
    sim.client(b"GET /delay HTTP/1.1\r\nHost: h\r\n\r\nGET /local HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(sim.conn.paused());
    assert!(!sim.conn.checking(), "a delay is no check");
    assert!(sim.checks.is_empty(), "nothing is sent for a delay");
    assert_eq!(
        sim.conn.deadline(),
        Some(sim.now + Duration::from_millis(300))
    );
    sim.advance(Duration::from_millis(299));
    assert!(sim.conn.paused());
    assert_eq!(sim.connects, 0, "no upstream while delayed");
    sim.advance(Duration::from_millis(2));
    assert!(!sim.conn.paused());
    assert_eq!(
        sim.connects, 1,
        "the delay is over: the request goes upstream"
    );
    sim.attach();
    sim.upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    let got: Vec<u16> = responses(&sim.client_got).iter().map(|r| r.0).collect();
    assert_eq!(got, [200, 200], "the pipelined request follows");
}

#[test]
fn a_client_leaving_a_delayed_request_ends_its_record_without_an_upstream() {
    let mut sim = Sim::new(8192);
    sim.client(b"GET /delay HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(sim.conn.paused());
    sim.conn.abort(&mut sim.env, sim.now);
    assert_eq!((sim.env.begun, sim.env.ended), (1, 1));
    assert!(sim.env.flags[0].has(crate::access_log::Flags::DC));
    assert_eq!(sim.connects, 0);
}

#[test]
fn a_delay_outlasting_the_stream_idle_timeout_is_answered_stream_timeout() {
    for (req, status) in [
        (&b"GET /delay-idle HTTP/1.1\r\nHost: h\r\n\r\n"[..], 504),
        (
            &b"POST /delay-idle HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabcde"[..],
            408,
        ),
    ] {
        let mut sim = Sim::new(8192);
        sim.client(req);
        assert!(sim.conn.paused());
        assert_eq!(
            sim.conn.deadline(),
            Some(sim.now + Duration::from_millis(100))
        );
        sim.advance(Duration::from_millis(101));
        assert!(!sim.conn.paused());
        assert_eq!(sim.connects, 0);
        let got: Vec<u16> = responses(&sim.client_got).iter().map(|r| r.0).collect();
        assert_eq!(got, [status]);
        assert!(sim.env.flags[0].has(crate::access_log::Flags::SI));
        assert_eq!((sim.env.begun, sim.env.ended), (1, 1));
    }
}

#[test]
fn an_http2_stream_reset_is_503_remote_reset_with_ur() {
    let mut sim = Sim::new(8192);
    sim.client(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(sim.up, UpConn::Open);
    sim.upstream_fails(super::Failure::RemoteReset);
    let rs = responses(&sim.client_got);
    assert_eq!(rs.first().map(|r| r.0), Some(503));
    assert_eq!(
        rs.first()
            .map(|r| String::from_utf8_lossy(&r.1).into_owned()),
        Some(
            "upstream connect error or disconnect/reset before headers. reset reason: remote reset"
                .to_string()
        )
    );
    assert!(sim.env.flags[0].has(crate::access_log::Flags::UR));
    assert!(!sim.env.flags[0].has(crate::access_log::Flags::UC));
    // A malformed HTTP/2 response is the protocol error: 502 UPE.
    let mut sim = Sim::new(8192);
    sim.client(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n");
    sim.upstream_fails(super::Failure::Protocol);
    assert_eq!(responses(&sim.client_got).first().map(|r| r.0), Some(502));
    assert!(sim.env.flags[0].has(crate::access_log::Flags::UPE));
}
