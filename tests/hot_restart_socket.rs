//! The restart socket itself (issue 4, Must show 2): what start-up does with the path (stale
//! socket, each path problem, no restart file at all), and who may talk on it (a peer of
//! another uid, malformed frames). Every problem is a clear error or a dropped peer, never a
//! silent independent start and never a disturbed running process.

mod common;

use baton_statemachine::Message;
use common::hot::*;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The unprivileged user the CI's root drops to.
const NOBODY: &str = "65534";

/// `setpriv` arguments that run a command as uid/gid 65534, or None (with the reason printed)
/// when this test cannot switch users: not root, or util-linux's setpriv missing.
fn as_nobody(test: &str) -> Option<Vec<String>> {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIPPED {test}: not running as root, cannot act as another user");
        return None;
    }
    let ok = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIPPED {test}: setpriv (util-linux) is missing; cannot drop privileges");
        return None;
    }
    Some(vec![
        "setpriv".into(),
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".into(),
    ])
}

/// A socket file at `path` that nobody listens on (its listener is closed at once).
fn stale_socket(path: &Path) {
    drop(std::os::unix::net::UnixListener::bind(path).expect("bind a unix socket"));
    assert!(path.exists());
}

/// A baton started with `--hot-restart-file PATH` that must fail: exit 1, with one error naming
/// the path and containing `cause`, and nothing listening on its port afterwards.
fn expect_path_error(wrapper: &[&str], path: &Path, cause: &str) {
    let up = Upstream::start("up");
    let port = free_port();
    let yaml = simple_yaml(port, up.port());
    let p = path.display().to_string();
    let (status, out, err) = run_baton_cmd(
        wrapper,
        &["--config-yaml", &yaml, "--hot-restart-file", &p],
        EXIT_WAIT,
    );
    println!("{p}: {}", err.trim());
    assert_eq!(status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    let line = err
        .lines()
        .find(|l| l.contains(&format!("hot restart file {p}")))
        .unwrap_or_else(|| panic!("no error naming {p}:\n{err}"));
    assert!(line.contains(cause), "{line:?} does not say {cause:?}");
    assert!(
        std::net::TcpStream::connect_timeout(&local(port), Duration::from_millis(500)).is_err(),
        "something listens on :{port} after a failed start"
    );
}

#[test]
fn stale_socket_file_is_removed_and_the_process_starts_fresh_as_epoch_0() {
    let up = Upstream::start("v1");
    let dir = HotDir::new("stale");
    stale_socket(&dir.sock());
    let mut b = hot_start(&simple_yaml(free_port(), up.port()), &dir, &[]);
    assert_eq!(serving_epoch(&b), Some(0), "{}", b.log());
    assert!(b.log().contains("stale socket"), "{}", b.log());
    assert!(get_body(b.port).contains("hello from v1 "));
    // The path is served again, mode 0600.
    let meta = std::fs::metadata(dir.sock()).expect("restart socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let mut peer = FakePeer::connect(&dir.sock());
    peer.hello();
    peer.expect("HelloAck", |m| {
        matches!(m, Message::HelloAck { epoch: 0, .. })
    });
    drop(peer);
    b.sigterm();
    expect_exit_code(&mut b, 0, EXIT_WAIT);
    // The only owner of the restart socket removes it when it exits.
    assert!(!dir.sock().exists(), "restart socket left behind");
}

#[test]
fn hello_of_another_protocol_version_is_refused_and_the_process_keeps_serving() {
    let up = Upstream::start("v1");
    let dir = HotDir::new("version");
    let mut b = hot_start(&simple_yaml(free_port(), up.port()), &dir, &[]);
    let mut peer = FakePeer::connect(&dir.sock());
    peer.send(&Message::Hello {
        protocol_version: 999,
        binary_version: "from-the-future".into(),
        pid: std::process::id(),
    });
    let (closed, got) = peer.closed_within(IO_TIMEOUT);
    assert!(closed, "peer not closed\n{}", b.log());
    let reason = got
        .iter()
        .find_map(|m| match m {
            Message::Refuse { reason } => Some(reason.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Refuse, got {got:?}"));
    assert!(
        reason.contains("protocol version mismatch") && reason.contains("999"),
        "{reason:?}"
    );
    assert!(!b.log().contains("ChildConnected"), "{}", b.log());
    assert!(get_body(b.port).contains("hello from v1 "));
    b.sigterm();
    expect_exit_code(&mut b, 0, EXIT_WAIT);
}

#[test]
fn missing_directory_is_a_clear_error() {
    let dir = HotDir::new("nodir");
    let path = dir.path.join("no-such-dir").join("restart.sock");
    expect_path_error(&[], &path, "does not exist");
}

#[test]
fn directory_without_write_permission_is_a_clear_error() {
    let Some(wrapper) = as_nobody("directory_without_write_permission") else {
        return;
    };
    let w: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    // Root's 0755 directory: uid 65534 may enter it but not create the socket.
    let dir = HotDir::new("nowrite");
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    expect_path_error(&w, &dir.sock(), "not writable");
}

#[test]
fn socket_file_of_another_user_is_a_clear_error() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIPPED socket_file_of_another_user: not running as root, cannot chown");
        return;
    }
    let dir = HotDir::new("otheruid");
    stale_socket(&dir.sock());
    let uid = nix::unistd::Uid::from_raw(65534);
    let gid = nix::unistd::Gid::from_raw(65534);
    nix::unistd::chown(&dir.sock(), Some(uid), Some(gid)).expect("chown (tests run as root)");
    expect_path_error(&[], &dir.sock(), "owned by uid 65534");
    assert!(
        dir.sock().exists(),
        "another user's socket file was removed"
    );
}

#[test]
fn non_socket_file_at_the_path_is_a_clear_error() {
    let dir = HotDir::new("regular");
    std::fs::write(dir.sock(), "not a socket").expect("write file");
    expect_path_error(&[], &dir.sock(), "not a socket");
    assert_eq!(
        std::fs::read_to_string(dir.sock()).expect("file kept"),
        "not a socket"
    );
}

#[test]
fn without_a_restart_file_a_second_process_gets_address_in_use() {
    let up = Upstream::start("v1");
    let dir = HotDir::new("busy");
    let mut b = hot_start(&simple_yaml(free_port(), up.port()), &dir, &[]);
    let yaml = simple_yaml(b.port, up.port());
    let (status, out, err) = run_baton(&["--config-yaml", &yaml], EXIT_WAIT);
    assert_eq!(status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    let want = format!("listener_0: 127.0.0.1:{}: Address already in use", b.port);
    assert!(err.contains(&want), "{err:?} does not say {want:?}");
    // The first one never noticed.
    assert!(
        !b.log().contains("connected for hot restart"),
        "{}",
        b.log()
    );
    assert!(get_body(b.port).contains("hello from v1 "));
    b.sigterm();
    expect_exit_code(&mut b, 0, EXIT_WAIT);
}

#[test]
fn peer_of_another_uid_is_rejected_and_the_process_keeps_serving() {
    let Some(wrapper) = as_nobody("peer_of_another_uid") else {
        return;
    };
    let mut s = Upgrade::start("foreign");
    // Let the other user reach the socket at all, so only SO_PEERCRED stands in the way.
    std::fs::set_permissions(s.dir.sock(), std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let sock = s.dir.sock_arg();
    // curl as uid 65534 connects to the restart socket (and talks HTTP, which does not matter).
    let out = Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .args(["curl", "-sS", "--max-time", "10", "--unix-socket", &sock])
        .arg("http://restart/")
        .output()
        .expect("run setpriv curl");
    println!(
        "foreign peer (curl as uid {NOBODY}): {}, {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    assert!(
        !out.status.success(),
        "the foreign peer got an answer: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        s.v1.wait_log("runs as uid 65534", IO_TIMEOUT),
        "no rejection logged\n{}",
        s.v1.log()
    );
    let log = s.v1.log();
    assert!(
        !log.contains("malformed frame") && !log.contains("ChildConnected"),
        "the foreign peer got past SO_PEERCRED\n{log}"
    );
    s.serves("v1");
    let _v2 = s.restart_to_v2_and_retire_v1();
}

#[test]
fn malformed_frames_drop_the_peer_and_the_process_keeps_serving() {
    let mut s = Upgrade::start("malformed");
    // (what, bytes, say Hello first, what the log names)
    let cases: [(&str, Vec<u8>, bool, &str); 6] = [
        (
            "garbage (a Hello whose fields run past the frame)",
            vec![0, 0, 0, 8, 1, 0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe],
            false,
            "Truncated",
        ),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
            "Oversized",
        ),
        (
            "oversized length prefix",
            vec![0xff, 0xff, 0xff, 0xff],
            false,
            "Oversized",
        ),
        ("unknown type", vec![0, 0, 0, 1, 0x7f], false, "UnknownType"),
        ("empty frame", vec![0, 0, 0, 0], false, "EmptyFrame"),
        (
            "unknown type mid-handover",
            vec![0, 0, 0, 1, 0x7f],
            true,
            "UnknownType",
        ),
    ];
    for (i, (what, bytes, hello, logged)) in cases.iter().enumerate() {
        let mut peer = FakePeer::connect(&s.dir.sock());
        if *hello {
            peer.hello();
            peer.expect("HelloAck", |m| matches!(m, Message::HelloAck { .. }));
        }
        peer.send_raw(bytes);
        let (closed, _) = peer.closed_within(IO_TIMEOUT);
        assert!(closed, "{what}: peer not dropped\n{}", s.v1.log());
        assert!(
            s.v1.wait_log_n("malformed frame", i + 1, IO_TIMEOUT),
            "{what}: no log line\n{}",
            s.v1.log()
        );
        let line =
            s.v1.log()
                .lines()
                .filter(|l| l.contains("malformed frame"))
                .nth(i)
                .map(String::from)
                .unwrap_or_default();
        assert!(line.contains(logged), "{what}: {line:?} lacks {logged:?}");
        println!("{what}: {line}");
        s.serves("v1");
        assert!(
            s.v1.try_exit().is_none(),
            "{what}: v1 exited\n{}",
            s.v1.log()
        );
    }
    assert!(
        s.v1.log().contains("state ChildConnected -> Serving"),
        "no rollback after the mid-handover frame\n{}",
        s.v1.log()
    );
    // Still hot-restartable.
    let _v2 = s.restart_to_v2_and_retire_v1();
}

#[test]
fn a_parent_of_another_protocol_version_is_a_clear_error_for_the_child() {
    let up = Upstream::start("v1");
    let dir = HotDir::new("fakeparent");
    // A fake parent on the path: answers the Hello with a HelloAck of version 999.
    let listener = std::os::unix::net::UnixListener::bind(dir.sock()).expect("bind");
    let fake = std::thread::spawn(move || {
        let (s, _) = listener.accept().expect("accept the child");
        let mut p = FakePeer::from_stream(s);
        p.expect("Hello", |m| matches!(m, Message::Hello { .. }));
        p.send(&Message::HelloAck {
            protocol_version: 999,
            binary_version: "from-the-future".into(),
            pid: std::process::id(),
            epoch: 7,
        });
        // Hold the link until the child leaves.
        p.closed_within(EXIT_WAIT).0
    });
    let yaml = simple_yaml(free_port(), up.port());
    let sock = dir.sock_arg();
    let (status, out, err) = run_baton(
        &["--config-yaml", &yaml, "--hot-restart-file", &sock],
        EXIT_WAIT,
    );
    println!(
        "child against a version-999 parent: {}",
        err.lines().last().unwrap_or_default()
    );
    assert_eq!(status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains("999"),
        "the error does not name the versions:\n{err}"
    );
    assert!(
        fake.join().expect("fake parent"),
        "the child never closed the link"
    );
}

/// Open descriptors of a process.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn a_peer_sending_descriptors_before_hello_costs_nothing_and_is_dropped() {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    let s = Upgrade::start("fdflood");
    let before = fd_count(s.v1.pid());
    let devnull = std::fs::File::open("/dev/null").expect("/dev/null");
    let fds: Vec<i32> = vec![devnull.as_raw_fd(); 200];
    let peer = FakePeer::connect(&s.dir.sock());
    // Messages of 200 descriptors each, without a Hello (a frame byte each, never complete).
    let mut sent = 0;
    for _ in 0..2 {
        let iov = [IoSlice::new(&[0u8])];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        match sendmsg::<()>(
            peer.stream.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::empty(),
            None,
        ) {
            Ok(_) => sent += fds.len(),
            Err(_) => break, // dropped by baton already
        }
    }
    // While the peer could still be connected, baton holds none of them.
    std::thread::sleep(Duration::from_millis(300));
    let during = fd_count(s.v1.pid());
    let mut peer = peer;
    let (closed, _) = peer.closed_within(IO_TIMEOUT);
    assert!(closed, "the peer was not dropped\n{}", s.v1.log());
    eprintln!("sent {sent} descriptors; baton held {before} fds before, {during} meanwhile");
    assert!(sent >= 200);
    assert!(
        during <= before + 2,
        "baton held descriptors: {before} -> {during}"
    );
    assert!(get_body(s.port).contains("v1"), "v1 stopped serving");
}

#[test]
fn many_peers_without_hello_cost_no_descriptors() {
    let s = Upgrade::start("peerflood");
    let before = fd_count(s.v1.pid());
    let peers: Vec<std::os::unix::net::UnixStream> = (0..500)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(s.dir.sock()).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let during = fd_count(s.v1.pid());
    eprintln!(
        "{} silent peers connected; baton held {before} fds before, {during} meanwhile",
        peers.len()
    );
    assert!(peers.len() >= 100);
    // A handful may wait for their Hello (bounded); the rest are refused and closed at once.
    assert!(
        during <= before + 16,
        "baton held descriptors: {before} -> {during}"
    );
    assert!(get_body(s.port).contains("v1"), "v1 stopped serving");
}
