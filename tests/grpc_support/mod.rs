//! A real gRPC server and client (python grpcio, `peers.py` beside this file) for the tests
//! that carry gRPC through baton.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grpc_support/peers.py")
}

fn python() -> Command {
    crate::common::python3()
}

/// Spawns `cmd`, which writes the port it listens on to `portfile` (renamed into place once
/// written), and waits (bounded) for it.
fn spawn_listening(mut cmd: Command, portfile: &Path) -> (Child, u16) {
    let _ = std::fs::remove_file(portfile);
    let child = cmd.arg(portfile).spawn().expect("python3 peer");
    let end = Instant::now() + Duration::from_secs(30);
    let port = loop {
        if let Some(p) = std::fs::read_to_string(portfile)
            .ok()
            .and_then(|t| t.trim().parse::<u16>().ok())
        {
            break p;
        }
        assert!(Instant::now() < end, "{cmd:?} did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_file(portfile);
    (child, port)
}

/// The gRPC server on a free loopback port (`.1`); killed when dropped.
pub struct GrpcServer(Child, pub u16);

impl GrpcServer {
    pub fn start(tag: &str) -> GrpcServer {
        let portfile =
            std::env::temp_dir().join(format!("baton-grpc-{tag}-{}.port", std::process::id()));
        let mut cmd = python();
        cmd.arg(script()).arg("server");
        let (child, port) = spawn_listening(cmd, &portfile);
        GrpcServer(child, port)
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The client's calls through 127.0.0.1:`port`: one line per call (see `peers.py`).
pub fn calls(port: u16) -> Vec<String> {
    calls_with(port, &[])
}

/// `calls` with the client's extra arguments (`cancel`).
pub fn calls_with(port: u16, extra: &[&str]) -> Vec<String> {
    let out = python()
        .arg(script())
        .arg("client")
        .arg(port.to_string())
        .args(extra)
        .output()
        .expect("python3 gRPC client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// python h2 peers that send and check trailers (`trailers.py`): the origin on a free port
/// (`.1`), logging each request to `.2`; killed when dropped.
pub struct TrailerOrigin(Child, pub u16, pub PathBuf);

impl TrailerOrigin {
    pub fn start(tag: &str) -> TrailerOrigin {
        let dir = std::env::temp_dir();
        let id = std::process::id();
        let portfile = dir.join(format!("baton-trailers-{tag}-{id}.port"));
        let log = dir.join(format!("baton-trailers-{tag}-{id}.log"));
        let _ = std::fs::remove_file(&log);
        let mut cmd = python();
        cmd.arg(script().with_file_name("trailers.py"))
            .arg("origin")
            .arg(&log);
        let (child, port) = spawn_listening(cmd, &portfile);
        TrailerOrigin(child, port, log)
    }

    /// The requests it saw so far.
    pub fn seen(&self) -> Vec<String> {
        std::fs::read_to_string(&self.2)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TrailerOrigin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.2);
    }
}

/// The trailers client's one line for its POST through 127.0.0.1:`port`.
pub fn trailers_call(port: u16) -> String {
    let out = python()
        .arg(script().with_file_name("trailers.py"))
        .arg("client")
        .arg(port.to_string())
        .output()
        .expect("python3 h2 client");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What `calls` prints when every call got its answer.
pub const ANSWERS: [&str; 6] = [
    "unary OK - echo:hello",
    "fail INVALID_ARGUMENT no_such_thing:_widget",
    "stream5 OK - msg-0 msg-1 msg-2 msg-3 msg-4",
    "stream3 NOT_FOUND stopped_after_three",
    "stream3-got msg-0 msg-1 msg-2",
    "unary-again OK - echo:hello",
];
