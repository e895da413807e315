//! The admin interface through a hot restart: the admin socket is handed over like the data
//! listeners, so exactly one process answers it — the parent until the child takes over, the
//! child after — and no admin request made during the switch is refused or lost.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::hot::*;
use common::*;

fn with_admin(yaml: &str, admin_port: u16) -> String {
    format!(
        "{yaml}admin:\n  address:\n    socket_address:\n      address: 127.0.0.1\n      port_value: {admin_port}\n"
    )
}

/// One `/server_info` request on its own connection: the answering process's epoch, or an
/// error describing what went wrong.
fn epoch_of_answer(port: u16) -> Result<u32, String> {
    let mut s = TcpStream::connect_timeout(&local(port), IO_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /server_info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out);
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!("answer {:?}", text.lines().next()));
    }
    text.split("\"restart_epoch\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| "no restart_epoch".to_string())
}

#[test]
fn only_the_live_process_answers_admin_and_no_request_is_lost() {
    let up1 = Upstream::start("v1");
    let up2 = Upstream::start("v2");
    let port = free_port();
    let admin = free_port();
    let dir = HotDir::new("adminmove");
    let mut v1 = hot_start(
        &with_admin(&simple_yaml(port, up1.port()), admin),
        &dir,
        &[],
    );
    assert_eq!(epoch_of_answer(admin), Ok(0));

    // A client that asks the admin interface over and over through the switch.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut answers = Vec::new();
            while !stop.load(Ordering::SeqCst) && answers.len() < 20_000 {
                answers.push(epoch_of_answer(admin));
            }
            answers
        })
    };
    thread::sleep(Duration::from_millis(200));
    let (v2, _) = hot_takeover(
        &with_admin(&simple_yaml(port, up2.port()), admin),
        &dir,
        &[],
        &v1,
    );
    // From the takeover on, only the child answers.
    thread::sleep(Duration::from_millis(100));
    for _ in 0..50 {
        assert_eq!(
            epoch_of_answer(admin),
            Ok(1),
            "the parent still answers admin"
        );
    }
    v1.sigterm();
    expect_exit_code(&mut v1, 0, Duration::from_secs(30));
    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let answers = poller.join().expect("poller");
    let failed: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    let by_child = answers.iter().filter(|a| **a == Ok(1)).count();
    eprintln!(
        "{} admin requests through the restart: {} by the parent, {by_child} by the child, {} failed",
        answers.len(),
        answers.iter().filter(|a| **a == Ok(0)).count(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "admin requests failed: {failed:?}\n{}",
        v2.log()
    );
    // Epochs only move forward: once the child answered, the parent never did again.
    let first_child = answers
        .iter()
        .position(|a| *a == Ok(1))
        .unwrap_or(answers.len());
    assert!(
        answers[first_child..].iter().all(|a| *a == Ok(1)),
        "the parent answered after the child had"
    );
    assert!(by_child > 0);
}

/// `/server_info`'s (uptime_current_epoch, uptime_all_epochs) in whole seconds.
fn uptimes(port: u16) -> (u64, u64) {
    let mut s = TcpStream::connect_timeout(&local(port), IO_TIMEOUT).expect("connect admin");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.write_all(b"GET /server_info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let field = |name: &str| -> u64 {
        out.split(&format!("\"{name}\":\""))
            .nth(1)
            .and_then(|r| r.split('s').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    (field("uptime_current_epoch"), field("uptime_all_epochs"))
}

#[test]
fn uptime_all_epochs_counts_from_the_first_epoch() {
    let up = Upstream::start("v");
    let port = free_port();
    let admin = free_port();
    let dir = HotDir::new("uptime");
    let yaml = with_admin(&simple_yaml(port, up.port()), admin);
    let mut v1 = hot_start(&yaml, &dir, &[]);
    // Let the first epoch live a little over two whole seconds.
    thread::sleep(Duration::from_millis(2200));
    let (_, first) = uptimes(admin);
    assert!(first >= 2, "epoch 0 all-epochs uptime {first}");
    let (mut v2, _) = hot_takeover(&yaml, &dir, &[], &v1);
    v1.sigterm();
    expect_exit_code(&mut v1, 0, Duration::from_secs(30));
    let (current, all) = uptimes(admin);
    assert!(
        all >= first && all > current,
        "epoch 1: current {current}s, all epochs {all}s (epoch 0 had {first}s)"
    );
    // And on through a second restart, with the first generation long gone.
    let (v3, _) = hot_takeover(&yaml, &dir, &[], &v2);
    v2.sigterm();
    expect_exit_code(&mut v2, 0, Duration::from_secs(30));
    let (current, all) = uptimes(admin);
    assert!(
        all >= first && all > current,
        "epoch 2: current {current}s, all epochs {all}s (epoch 0 had {first}s)\n{}",
        v3.log()
    );
}
