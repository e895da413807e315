//! Self-checks of the test tools, run against the in-process origin directly (no baton), so
//! that when an end-to-end test fails the proxy is to blame, not the harness.

mod common;

use common::*;
use std::io;
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn origin_answers_every_documented_path() {
    let up = Upstream::start("self");
    let mut c = RawConn::connect(up.port());
    c.send(&get("/"));
    assert_eq!(c.expect_response(false).body_str(), up.greeting());
    c.send(&get("/bytes/70000"));
    assert_eq!(c.expect_response(false).body.len(), 70_000);
    c.send(&get("/chunked/70000"));
    let r = c.expect_response(false);
    assert_eq!(
        (r.header("transfer-encoding"), r.body.len()),
        (Some("chunked"), 70_000)
    );
    c.send(&get("/status/418"));
    assert_eq!(c.expect_response(false).status(), 418);
    c.send(b"HEAD /head-ok HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        c.expect_response(true).header("content-length"),
        Some("1234")
    );
    c.send(&get("/204"));
    assert_eq!(c.expect_response(false).status(), 204);
    c.send(&get("/304"));
    assert_eq!(c.expect_response(false).status(), 304);
    c.send(b"POST /100 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    let r = c.expect_response(false);
    assert_eq!(
        (r.interim.clone(), r.body_str()),
        (vec![100], "continued len=3\n".into())
    );
    c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(c.expect_response(false).body_str(), "abc");
    c.send(&get("/headers"));
    assert_eq!(
        c.expect_response(false).body_str(),
        "GET /headers HTTP/1.1\r\nHost: test\r\n"
    );
    c.send(&get("/eof/1000"));
    assert_eq!(c.expect_response(false).body.len(), 1000);
    assert!(c.closed_within(IO_TIMEOUT));
    assert_eq!(up.connections(), 1);
    assert_eq!(up.seen().len(), 11);
    assert_eq!(up.seen()[7].body_len, 3);
}

#[test]
fn pipelined_and_truncated_responses_are_told_apart() {
    let up = Upstream::start("self");
    let mut reqs = get("/delay/50");
    reqs.extend(get("/"));
    reqs.extend(get("/close"));
    let (bytes, closed) = raw_exchange_ex(up.port(), &reqs, IO_TIMEOUT);
    assert!(closed);
    let rs = parse_responses(&bytes, &[]);
    let bodies: Vec<String> = rs.iter().map(|r| r.body_str()).collect();
    assert_eq!(
        bodies,
        vec!["delay 50\n".to_string(), up.greeting(), "closing\n".into()]
    );

    let mut c = RawConn::connect(up.port());
    c.send(&get("/reset-after-head"));
    let e = c
        .response(false)
        .expect_err("a 10-of-1000-byte body must not look complete");
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn origin_is_strict_too() {
    let up = Upstream::start("self");
    let (bytes, closed) = raw_exchange_ex(
        up.port(),
        b"POST /sink HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        IO_TIMEOUT,
    );
    assert!(closed);
    assert_eq!(parse_responses(&bytes, &[])[0].status(), 400);
}

#[test]
fn hang_never_answers_and_full_backlog_never_connects() {
    let up = Upstream::start("self");
    let (bytes, closed) = raw_exchange_ex(up.port(), &get("/hang"), Duration::from_millis(300));
    assert!(bytes.is_empty() && !closed);
    let (port, _l, _f) = full_backlog_listener();
    assert!(TcpStream::connect_timeout(&local(port), Duration::from_millis(300)).is_err());
}

#[test]
fn yaml_builder_produces_the_seed_shape() {
    let y = proxy_yaml(
        10000,
        &[("a", &[8080, 8081], "STATIC"), ("b", &[], "LOGICAL_DNS")],
        &Extra::route(&["timeout: 1s"]),
    );
    let v: serde_yaml::Value = serde_yaml::from_str(&y).expect("valid YAML");
    let l = &v["static_resources"]["listeners"][0];
    assert_eq!(l["address"]["socket_address"]["port_value"], 10000);
    let hcm = &l["filter_chains"][0]["filters"][0]["typed_config"];
    let route = &hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"];
    assert_eq!(route["cluster"], "a");
    assert_eq!(route["timeout"], "1s");
    let c = &v["static_resources"]["clusters"];
    let eps = &c[0]["load_assignment"]["endpoints"][0]["lb_endpoints"];
    assert_eq!(
        eps[1]["endpoint"]["address"]["socket_address"]["port_value"],
        8081
    );
    assert_eq!(
        c[1]["load_assignment"]["endpoints"][0]["lb_endpoints"]
            .as_sequence()
            .map(|s| s.len()),
        Some(0)
    );
    assert_eq!(yaml::listener_port(&y), Some(10000));
}

#[test]
fn every_config_shape_the_tests_use_validates() {
    let dns = Extra {
        endpoint_host: "localhost".into(),
        ..Extra::default()
    };
    let domains = Extra {
        domains: vec!["only.example.com".into()],
        ..Extra::default()
    };
    let shapes = [
        simple_yaml(10000, 8080),
        proxy_yaml(10000, &[("empty", &[], "STATIC")], &Extra::default()),
        proxy_yaml(
            10000,
            &[("svc", &[8080, 8081], "STATIC")],
            &Extra::default(),
        ),
        proxy_yaml(10000, &[("svc", &[8080], "LOGICAL_DNS")], &dns),
        proxy_yaml(10000, &[("svc", &[8080], "STRICT_DNS")], &dns),
        proxy_yaml(
            10000,
            &[("svc", &[8080], "STATIC")],
            &Extra::route(&["timeout: 1s"]),
        ),
        proxy_yaml(10000, &[("svc", &[8080], "STATIC")], &domains),
    ];
    for y in &shapes {
        let (status, out, err) = run_baton(
            &["--mode", "validate", "--config-yaml", y],
            Duration::from_secs(20),
        );
        assert!(status.success(), "{y}\nstdout: {out}\nstderr: {err}");
    }
}
