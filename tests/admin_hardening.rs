//! The admin interface cannot be abused from a browser or held hostage by idle clients:
//! DNS-rebinding and cross-site requests from browsers are refused (tools are not affected),
//! a request followed by a half-close is answered, idle connections time out, and past the
//! connection cap the oldest connection makes room.

mod admin_util;
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use admin_util::{admin_get, stat};
use common::*;

const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

/// Sends raw bytes to the admin port; returns the whole answer (the admin closes after one).
fn raw(port: u16, req: &str, half_close: bool) -> String {
    let mut s = TcpStream::connect_timeout(&local(port), IO_TIMEOUT).expect("connect admin");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(req.as_bytes()).expect("write");
    if half_close {
        s.shutdown(Shutdown::Write).expect("shutdown");
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn browsers_cannot_rebind_or_post_cross_site() {
    let (mut b, _up, s) = admin_util::start(Vec::new());
    // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1.
    let r = raw(
        s.admin,
        &format!("GET /server_info HTTP/1.1\r\nHost: evil.example:{}\r\nUser-Agent: {UA}\r\nSec-Fetch-Site: same-origin\r\n\r\n", s.admin),
        false,
    );
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(!r.contains("command_line"), "server_info leaked: {r}");
    // A cross-site form POST to /quitquitquit.
    let r = raw(
        s.admin,
        &format!("POST /quitquitquit HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: {UA}\r\nOrigin: http://evil.example\r\nSec-Fetch-Site: cross-site\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\r\n", s.admin),
        false,
    );
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    std::thread::sleep(Duration::from_millis(300));
    assert!(b.try_exit().is_none(), "a cross-site POST stopped baton");
    // A GET through the state-changing endpoint is still refused (POST only).
    let r = raw(
        s.admin,
        "GET /quitquitquit HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        false,
    );
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    // Tools and same-origin browser pages work: curl-style by name, a browser by IP.
    assert!(admin_get(s.admin, "/ready").contains("LIVE"));
    let r = raw(
        s.admin,
        &format!(
            "GET /ready HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: {UA}\r\n\r\n",
            s.admin
        ),
        false,
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[test]
fn half_closed_requests_are_answered_and_idle_connections_end() {
    let (_b, _up, s) = admin_util::start(Vec::new());
    // `nc -N` style: the request, then FIN.
    let r = raw(
        s.admin,
        "GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        true,
    );
    assert!(
        r.starts_with("HTTP/1.1 200"),
        "half-closed request not answered: {r:?}"
    );

    // An idle connection is closed after the admin's connection timeout.
    let mut idle = TcpStream::connect_timeout(&local(s.admin), IO_TIMEOUT).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    let mut b = [0u8; 1];
    let n = idle.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "the idle connection got data");
    let took = started.elapsed();
    eprintln!("idle admin connection closed after {took:?}");
    assert!(
        took < Duration::from_secs(19),
        "idle admin connection never closed"
    );
}

#[test]
fn past_the_connection_cap_the_oldest_makes_room() {
    let (_b, _up, s) = admin_util::start(Vec::new());
    let mut held: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect_timeout(&local(s.admin), IO_TIMEOUT).expect("connect"))
        .collect();
    // An operator still gets an answer while 100 idle connections were opened.
    assert!(admin_get(s.admin, "/ready").contains("LIVE"));
    // The oldest ones were closed to make room.
    let first = &mut held[0];
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut b = [0u8; 1];
    assert_eq!(
        first.read(&mut b).unwrap_or(0),
        0,
        "oldest connection still open"
    );
    assert!(stat(s.admin, "server.panics") == 0);
    held.clear();
}

/// As Envoy does, the admin access log is opened at start even when the admin has no address:
/// a path that cannot be opened fails the start naming the field; one that can is created.
#[test]
fn admin_access_log_path_is_opened_without_an_admin_address() {
    let dir = std::env::temp_dir().join(format!("baton-admin-noaddr-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("admin.log");
    let yaml = || {
        format!(
            "{}admin:\n  access_log_path: {}\n",
            simple_yaml(free_port(), 1),
            path.display()
        )
    };
    let (status, out, err) = run_baton(&["--config-yaml", &yaml()], Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains(&format!("admin.access_log_path {}: ", path.display())),
        "{err}"
    );
    std::fs::create_dir(&dir).expect("create the log's directory");
    let mut b = Baton::start(&yaml());
    assert!(path.is_file(), "{} not created", path.display());
    b.sigterm();
    assert!(
        b.wait_exit(Duration::from_secs(30)).is_some(),
        "baton did not exit"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn admin_access_log_loggers_have_their_format_and_filter() {
    // `admin.access_log[]` (Envoy's replacement of access_log_path): a file logger with its
    // own format, and one filtered to errors.
    let all = std::env::temp_dir().join(format!("baton-admin-all-{}.log", std::process::id()));
    let errors = std::env::temp_dir().join(format!("baton-admin-err-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&all);
    let _ = std::fs::remove_file(&errors);
    let logger = |path: &std::path::Path, filter: &str| {
        format!(
            "  - name: envoy.access_loggers.file\n{filter}    typed_config:\n      \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n      path: {}\n      log_format: {{text_format: \"admin %RESPONSE_CODE% %REQ(:METHOD)% %REQ(:PATH)%\\n\"}}\n",
            path.display()
        )
    };
    let block = format!(
        "admin:\n  access_log:\n{}{}",
        logger(&all, ""),
        logger(
            &errors,
            "    filter: {status_code_filter: {comparison: {op: GE, value: {default_value: 400, runtime_key: admin.errors}}}}\n"
        )
    );
    let (_b, _up, s) = admin_util::start_edited(Vec::new(), |y| y.replacen("admin:\n", &block, 1));
    assert!(admin_get(s.admin, "/ready").contains("LIVE"));
    let (st, _) = admin_util::admin(s.admin, "GET", "/no-such-page");
    assert_eq!(st, 404);
    let lines = |p: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    };
    assert!(admin_util::eventually(Duration::from_secs(5), || lines(
        &all
    )
    .iter()
    .any(|l| l == "admin 404 GET /no-such-page")));
    assert!(
        lines(&all).iter().any(|l| l == "admin 200 GET /ready"),
        "{:?}",
        lines(&all)
    );
    assert_eq!(lines(&errors), vec!["admin 404 GET /no-such-page"]);
    let _ = std::fs::remove_file(&all);
    let _ = std::fs::remove_file(&errors);
}

#[test]
fn admin_access_log_path_gets_a_line_per_request() {
    let path = std::env::temp_dir().join(format!("baton-admin-log-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let (_b, _up, s) = admin_util::start_edited(Vec::new(), |y| {
        y.replacen(
            "admin:\n",
            &format!("admin:\n  access_log_path: {}\n", path.display()),
            1,
        )
    });
    assert!(admin_get(s.admin, "/ready").contains("LIVE"));
    let (st, _) = admin_util::admin(s.admin, "POST", "/healthcheck/fail");
    assert_eq!(st, 200);
    let lines = || -> Vec<String> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    };
    assert!(admin_util::eventually(Duration::from_secs(5), || lines()
        .iter()
        .any(|l| l.contains("\"POST /healthcheck/fail HTTP/1.1\" 200"))));
    let all = lines();
    assert!(
        all.iter()
            .any(|l| l.contains("\"GET /ready HTTP/1.1\" 200")),
        "{all:?}"
    );
    // Envoy's default format: [START_TIME] "METHOD PATH PROTOCOL" CODE FLAGS RX TX DURATION ...
    assert!(all.iter().all(|l| l.starts_with('[')), "{all:?}");
    let _ = std::fs::remove_file(&path);
}
