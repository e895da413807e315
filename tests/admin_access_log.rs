//! Access logs: each outcome's line checked field by field (200, 404 NR, 503 UF and UH, 504
//! UT), Envoy's default format, and logrotate (rename + SIGUSR1) losing no line.

mod admin_util;
mod common;

use std::path::PathBuf;
use std::time::Duration;

use admin_util::*;

const WAIT: Duration = Duration::from_secs(20);
const FORMAT: &str = "%START_TIME%|%REQ(:METHOD)%|%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%|%PROTOCOL%|%RESPONSE_CODE%|%RESPONSE_FLAGS%|%BYTES_RECEIVED%|%BYTES_SENT%|%DURATION%|%UPSTREAM_HOST%|%DOWNSTREAM_REMOTE_ADDRESS%|%REQ(:AUTHORITY)%|%REQ(X-MISSING?USER-AGENT)%|%RESP(CONTENT-LENGTH)%|%UPSTREAM_CLUSTER%\n";

fn is_start_time(t: &str) -> bool {
    // 2026-11-27T09:41:24.396Z
    let b = t.as_bytes();
    b.len() == 24
        && t.ends_with('Z')
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && t.chars().filter(|c| c.is_ascii_digit()).count() == 17
}

#[test]
fn lines_for_each_outcome_field_by_field() {
    let custom = tmp_file("custom");
    let default = tmp_file("default");
    let (b, _up, s) = start(vec![
        (custom.display().to_string(), Some(FORMAT.to_string())),
        (default.display().to_string(), None),
    ]);
    let p = b.port;
    assert_eq!(request(p, "POST", "/status/200", "hello", ""), 200);
    assert_eq!(request(p, "GET", "/bytes/100", "", ""), 200);
    assert_eq!(request(p, "GET", "/nothing", "", ""), 404);
    assert_eq!(request(p, "GET", "/dead", "", ""), 503);
    assert_eq!(request(p, "GET", "/empty", "", ""), 503);
    assert_eq!(request(p, "GET", "/hang", "", "X-Missing: first\r\n"), 504);
    let got = wait_file_lines(&custom, 6);
    assert_eq!(got.len(), 6, "{got:#?}");
    let rows: Vec<Vec<&str>> = got.iter().map(|l| l.split('|').collect()).collect();
    for r in &rows {
        assert_eq!(r.len(), 15, "{r:?}");
        assert!(is_start_time(r[0]), "START_TIME {:?}", r[0]);
        assert_eq!(r[3], "HTTP/1.1");
        assert!(r[8].parse::<u64>().is_ok(), "DURATION {:?}", r[8]);
        assert!(
            r[10].starts_with("127.0.0.1:"),
            "DOWNSTREAM_REMOTE_ADDRESS {:?}",
            r[10]
        );
        assert_eq!(r[11], "test.local");
    }
    let up = format!("127.0.0.1:{}", s.upstream);
    let dead = format!("127.0.0.1:{}", s.dead);
    // method, path, code, flags, rx, tx, upstream host, user agent (X-MISSING?USER-AGENT), cluster
    let pick = |r: &Vec<&str>| {
        (
            r[1].to_string(),
            r[2].to_string(),
            r[4].to_string(),
            r[5].to_string(),
            r[6].to_string(),
            r[9].to_string(),
            r[12].to_string(),
            r[14].to_string(),
        )
    };
    let s_ = |x: &str| x.to_string();
    assert_eq!(
        pick(&rows[0]),
        (
            s_("POST"),
            s_("/status/200"),
            s_("200"),
            s_("-"),
            s_("5"),
            up.clone(),
            s_("admin-test"),
            s_("svc")
        )
    );
    assert_eq!(
        rows[0][7], rows[0][13],
        "BYTES_SENT equals the upstream's content-length"
    );
    assert_eq!(
        pick(&rows[1]),
        (
            s_("GET"),
            s_("/bytes/100"),
            s_("200"),
            s_("-"),
            s_("0"),
            up.clone(),
            s_("admin-test"),
            s_("svc")
        )
    );
    assert_eq!((rows[1][7], rows[1][13]), ("100", "100"));
    assert_eq!(
        pick(&rows[2]),
        (
            s_("GET"),
            s_("/nothing"),
            s_("404"),
            s_("NR"),
            s_("0"),
            s_("-"),
            s_("admin-test"),
            s_("-")
        )
    );
    assert_eq!((rows[2][7], rows[2][13]), ("0", "-"));
    assert_eq!(
        pick(&rows[3]),
        (
            s_("GET"),
            s_("/dead"),
            s_("503"),
            s_("UF"),
            s_("0"),
            dead,
            s_("admin-test"),
            s_("dead")
        )
    );
    // "… reset reason: remote connection failure, transport failure reason: delayed connect
    // error: 111" (or "immediate" when connect() itself failed).
    assert!(
        ["152", "154"].contains(&rows[3][7]),
        "Envoy's connection-failure body: {}",
        rows[3][7]
    );
    assert_eq!(
        (rows[4][1], rows[4][2], rows[4][4], rows[4][5], rows[4][9]),
        ("GET", "/empty", "503", "UH", "-")
    );
    assert_eq!(rows[4][7], "19", "\"no healthy upstream\"");
    assert_eq!(
        pick(&rows[5]),
        (
            s_("GET"),
            s_("/hang"),
            s_("504"),
            s_("UT"),
            s_("0"),
            up,
            s_("first"),
            s_("svc")
        )
    );
    assert_eq!(rows[5][7], "24", "\"upstream request timeout\"");
    assert!(
        rows[5][8].parse::<u64>().unwrap() >= 500,
        "a 0.5 s route timeout lasted {} ms",
        rows[5][8]
    );

    // Envoy's default format, same requests.
    let d = wait_file_lines(&default, 6);
    let tail = |i: usize| {
        d[i].split_once("] ")
            .map(|x| x.1.to_string())
            .unwrap_or_default()
    };
    assert!(
        d[0].starts_with('[') && is_start_time(&d[0][1..25]),
        "{}",
        d[0]
    );
    assert!(
        tail(1).starts_with("\"GET /bytes/100 HTTP/1.1\" 200 - 0 100 "),
        "{}",
        d[1]
    );
    // Quoted fields at the end: X-FORWARDED-FOR, USER-AGENT, X-REQUEST-ID, :AUTHORITY, UPSTREAM_HOST.
    let quoted: Vec<&str> = d[1].split('"').skip(1).step_by(2).collect();
    let n = quoted.len();
    assert!(n >= 6, "{}", d[1]);
    assert_eq!(
        (quoted[n - 5], quoted[n - 4], quoted[n - 2]),
        ("-", "admin-test", "test.local"),
        "{}",
        d[1]
    );
    assert_eq!(
        quoted[n - 1],
        format!("127.0.0.1:{}", s.upstream),
        "{}",
        d[1]
    );
    // The x-request-id baton generated (the client sent none) is logged, as Envoy does.
    let id = quoted[n - 3];
    assert!(
        id.len() == 36 && id.chars().filter(|&c| c == '-').count() == 4,
        "request id field {id:?} in {}",
        d[1]
    );
    assert!(
        tail(2).starts_with("\"GET /nothing HTTP/1.1\" 404 NR 0 0 "),
        "{}",
        d[2]
    );
    assert!(
        tail(3).starts_with("\"GET /dead HTTP/1.1\" 503 UF 0 152 ")
            || tail(3).starts_with("\"GET /dead HTTP/1.1\" 503 UF 0 154 "),
        "{}",
        d[3]
    );
    assert!(
        tail(4).starts_with("\"GET /empty HTTP/1.1\" 503 UH 0 19 "),
        "{}",
        d[4]
    );
    assert!(
        tail(5).starts_with("\"GET /hang HTTP/1.1\" 504 UT 0 24 "),
        "{}",
        d[5]
    );
    let _ = std::fs::remove_file(&custom);
    let _ = std::fs::remove_file(&default);
}

#[test]
fn logrotate_with_sigusr1_loses_no_line() {
    let log = tmp_file("rotate");
    let rotated = PathBuf::from(format!("{}.1", log.display()));
    let _ = std::fs::remove_file(&rotated);
    let (b, _up, _s) = start(vec![(
        log.display().to_string(),
        Some("%REQ(:PATH)%\n".into()),
    )]);
    const N: usize = 40;
    for i in 1..=N / 2 {
        assert_eq!(request(b.port, "GET", &format!("/bytes/{i}"), "", ""), 200);
    }
    // logrotate: move the file away, then signal; lines still buffered or written before the
    // reopen land in the moved file, later ones in the new file.
    std::fs::rename(&log, &rotated).expect("rename access log");
    let pid = nix::unistd::Pid::from_raw(b.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("kill -USR1");
    assert!(
        eventually(WAIT, || log.exists()),
        "SIGUSR1 did not reopen {log:?}"
    );
    for i in N / 2 + 1..=N {
        assert_eq!(request(b.port, "GET", &format!("/bytes/{i}"), "", ""), 200);
    }
    let all = || {
        let mut v = file_lines(&rotated);
        v.extend(file_lines(&log));
        v
    };
    assert!(
        eventually(WAIT, || all().len() >= N),
        "{} of {N} lines",
        all().len()
    );
    let want: Vec<String> = (1..=N).map(|i| format!("/bytes/{i}")).collect();
    assert_eq!(
        all(),
        want,
        "every line once, in order, across the two files"
    );
    assert!(
        !file_lines(&log).is_empty(),
        "the reopened file gets the later lines"
    );
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&rotated);
}
