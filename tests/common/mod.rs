//! Shared helpers for the end-to-end tests: the baton binary as a child process, in-process
//! origin servers on real loopback sockets, raw-socket and curl clients, and a YAML builder.
//! Each test file uses a subset, hence the dead-code allowance.
#![allow(dead_code, unused_imports)]

pub mod authz;
pub mod baton;
pub mod counting;
pub mod hot;
pub mod yaml;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use baton::{run_baton, run_baton_cmd, Baton};
pub use baton_bench::origin::SeenRequest;
pub use baton_bench::pattern;
pub use baton_bench::wire::{parse_responses, read_response, Reader, Response};
pub use yaml::{proxy_yaml, simple_yaml, Extra};

/// Bound for any single read in a test: generous for a debug build on 2 shared cores, and
/// only ever a cap on waiting, never asserted as a duration.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Lets this process (and the baton and upstream it starts) hold up to `want` descriptors,
/// within the hard limit.
pub fn raise_fd_limit(want: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = hard.min(want);
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
        }
    }
}

/// A port that was free a moment ago, never handed out before in this test process, and
/// below the kernel's ephemeral range, so no `bind(0)` or outgoing connection can be given it
/// while the test starts its server there. A port picked by `bind(0)` and released could be
/// handed by the kernel to another parallel test's upstream or client; that test's baton then
/// failed to bind, and its client talked to the other test's server instead.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // The ephemeral range's low end (32768 by default); we use the 12,000 ports below it.
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    if low > 22_000 {
        let span = 12_000;
        let base = low - span;
        // Test processes that run at the same time start at different places.
        let start = std::process::id().wrapping_mul(7919) % span;
        for _ in 0..span {
            let port = (base + (start + NEXT.fetch_add(1, Ordering::SeqCst)) % span) as u16;
            let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
            if !given.contains(&port) && TcpListener::bind(local(port)).is_ok() {
                given.push(port);
                return port;
            }
        }
    }
    // No room below the ephemeral range: whatever bind(0) gives, never twice.
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// An in-process origin server on 127.0.0.1:0 that records every request; see
/// `baton_bench::origin` for the behaviour behind each path (`/bytes/N`, `/hang`, ...).
pub struct Upstream(baton_bench::origin::Origin);

impl Upstream {
    pub fn start(name: &str) -> Upstream {
        let o = baton_bench::origin::Origin::start(local(0), name, true).expect("start upstream");
        Upstream(o)
    }

    /// The body `/` answers with.
    pub fn greeting(&self) -> String {
        format!("hello from {} ({})\n", self.0.name(), self.0.addr())
    }
}

impl std::ops::Deref for Upstream {
    type Target = baton_bench::origin::Origin;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A proxy and one upstream `up1` behind it (STATIC cluster, seed-shaped config).
pub fn proxy_with_upstream() -> (Baton, Upstream) {
    proxy_with_upstream_and(&Extra::default(), "STATIC")
}

/// As `proxy_with_upstream`, with a discovery type and the test's config variations.
pub fn proxy_with_upstream_and(extra: &Extra, discovery: &str) -> (Baton, Upstream) {
    let up = Upstream::start("up1");
    let yaml = proxy_yaml(free_port(), &[("backend", &[up.port()], discovery)], extra);
    (Baton::start(&yaml), up)
}

/// A raw client connection for byte-exact requests.
pub struct RawConn {
    pub stream: TcpStream,
    pub reader: Reader<TcpStream>,
}

/// Closes `s` with a reset (SO_LINGER 0), not a FIN.
pub fn reset_close(s: TcpStream) {
    nix::sys::socket::setsockopt(
        &s,
        nix::sys::socket::sockopt::Linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )
    .expect("SO_LINGER 0");
    drop(s);
}

impl RawConn {
    /// Reads one 200 response whose body must be the `/bytes/N` pattern of `want` bytes,
    /// checked by its checksum as it streams (never collected).
    pub fn expect_pattern(&mut self, want: u64) {
        let head = self
            .reader
            .read_response_head()
            .expect("head")
            .expect("a response");
        assert_eq!(head.status, 200);
        let framing = baton_bench::wire::response_framing(&head, false).expect("framing");
        let mut h = pattern::Fnv::default();
        let n = self
            .reader
            .read_body(framing, &mut |b| h.update(b))
            .expect("complete body");
        assert_eq!(n, want);
        assert_eq!(
            h.finish(),
            pattern::pattern_checksum(want),
            "body corrupted"
        );
    }

    pub fn connect(port: u16) -> RawConn {
        let stream = TcpStream::connect_timeout(&local(port), IO_TIMEOUT).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        RawConn {
            reader: Reader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    /// Reads one final response (interim 1xx recorded in `interim`).
    pub fn response(&mut self, head_request: bool) -> io::Result<Option<Response>> {
        read_response(&mut self.reader, head_request)
    }

    /// Reads one response and insists that it is there and complete.
    pub fn expect_response(&mut self, head_request: bool) -> Response {
        match self.response(head_request) {
            Ok(Some(r)) => r,
            Ok(None) => panic!("connection closed before a response"),
            Err(e) => panic!("no complete response: {e}"),
        }
    }

    /// True when the peer closes the connection (EOF or reset) within `timeout` without
    /// sending anything more.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        if !self.reader.buffered().is_empty() {
            return false;
        }
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut b = [0u8; 1];
        let r = self.reader.get_mut().read(&mut b);
        self.stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        match r {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}

/// Writes `bytes` to 127.0.0.1:`port` and reads until the peer closes or `timeout` passes.
pub fn raw_exchange(port: u16, bytes: &[u8], timeout: Duration) -> Vec<u8> {
    raw_exchange_ex(port, bytes, timeout).0
}

/// As `raw_exchange`, also telling whether the peer closed (true) or the time ran out (false).
pub fn raw_exchange_ex(port: u16, bytes: &[u8], timeout: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect_timeout(&local(port), IO_TIMEOUT).expect("connect");
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    // The peer may answer and close before it has read everything (e.g. a 400): not an error.
    let _ = s.write_all(bytes);
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, false);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return (out, true),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return (out, false)
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// One `GET`-style request (`method`, `path`, extra header lines ending in CRLF) on a fresh
/// connection to 127.0.0.1:`port`: the status (0 when none came) and the body.
pub fn send_raw(port: u16, method: &str, path: &str, headers: &str) -> (u16, String) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test.local\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let out = raw_exchange(port, req.as_bytes(), IO_TIMEOUT);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Waits (bounded) until the file at `path` has at least `n` lines; returns them.
pub fn log_lines(path: &str, n: usize) -> Vec<String> {
    let end = Instant::now() + IO_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.len() >= n || Instant::now() > end {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A baton in front of a fresh upstream, logging to a file of its own.
pub struct Logged {
    pub up: Upstream,
    pub baton: Baton,
    pub listen: u16,
    pub admin: u16,
    /// The access-log path the config was given (`tag` names it).
    pub log: String,
}

/// Starts `yaml(listen, admin, upstream, log)` on free ports against a new upstream.
pub fn logged_proxy(tag: &str, yaml: impl Fn(u16, u16, u16, &str) -> String) -> Logged {
    let up = Upstream::start("up1");
    let (listen, admin) = (free_port(), free_port());
    let log = baton::log_path(tag).to_string_lossy().into_owned();
    let baton = Baton::start(&yaml(listen, admin, up.port(), &log));
    Logged {
        up,
        baton,
        listen,
        admin,
        log,
    }
}

/// `baton --mode validate` on `yaml`: its stderr, asserting that the config was refused.
pub fn refusal(yaml: &str) -> String {
    let (status, _, err) = run_baton(&["--mode", "validate", "--config-yaml", yaml], IO_TIMEOUT);
    assert!(!status.success(), "the config loaded");
    err
}

/// Runs curl with `-sS --max-time 60` and `args`.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "60"])
        .args(args)
        .output()
        .expect("run curl (is it installed?)")
}

/// curl's stdout as text, asserting that curl itself succeeded.
pub fn curl_ok(args: &[&str]) -> String {
    let o = curl(args);
    assert!(
        o.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A simple GET request with Host, as raw bytes.
pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

/// Case-insensitive: does the recorded request carry header `name`?
pub fn has_header(r: &SeenRequest, name: &str) -> bool {
    r.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// A loopback port where connects are refused, held for as long as the returned socket lives:
/// it is bound but never listens, so no other test's `free_port` can hand it to a server (a
/// port only picked by `free_port` and left unbound can be, and then answers).
pub fn refused_port() -> (u16, std::os::fd::OwnedFd) {
    use nix::sys::socket::{
        bind, getsockname, socket, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).expect("bind 127.0.0.1:0");
    let port = getsockname::<SockaddrIn>(fd.as_raw_fd())
        .expect("getsockname")
        .port();
    (port, fd)
}

/// A listener whose accept queue is full and never drained: a connect to it neither succeeds
/// nor is refused (Linux drops the SYN), the loopback stand-in for an unreachable host. Keep
/// the returned value alive for as long as the port must stay that way.
pub fn full_backlog_listener() -> (u16, TcpListener, Vec<TcpStream>) {
    use nix::sys::socket::{
        bind, getsockname, listen, socket, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn,
    };
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    listen(&fd, Backlog::new(0).unwrap()).unwrap();
    let port = getsockname::<SockaddrIn>(fd.as_raw_fd()).unwrap().port();
    let listener = TcpListener::from(fd);
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&local(port), Duration::from_millis(300)) {
            Ok(s) => fillers.push(s),
            Err(_) => return (port, listener, fillers),
        }
    }
    panic!("could not fill the accept queue of 127.0.0.1:{port}");
}

/// Descriptors open in process `pid`: (all of them, the pipe ends among them).
pub fn fd_counts(pid: u32) -> (usize, usize) {
    let mut all = 0;
    let mut pipes = 0;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in dir.flatten() {
            all += 1;
            if std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("pipe:"))
            {
                pipes += 1;
            }
        }
    }
    (all, pipes)
}

/// `n` clients download a `/bytes/` body of `len` bytes at once through baton (`pid`, on
/// `port`): each asks and none reads until baton holds `n` more pipes (2 descriptors each)
/// than `/proc` showed before, one per splicing session; then each reads its body to the end.
/// The connections stay open (keep-alive), their pipes back in baton's idle pool. `len` must
/// be larger than the socket buffers hold, so each pipe still has bytes when it is counted.
pub fn spliced_burst(port: u16, pid: u32, n: usize, len: u64) -> Vec<RawConn> {
    let base = fd_counts(pid).1;
    let mut conns: Vec<RawConn> = (0..n).map(|_| RawConn::connect(port)).collect();
    for c in &mut conns {
        c.send(&get(&format!("/bytes/{len}")));
    }
    let deadline = Instant::now() + IO_TIMEOUT;
    while fd_counts(pid).1 < base + 2 * n {
        assert!(
            Instant::now() < deadline,
            "baton never held {n} pipes at once ({:?} descriptors, {base} pipe ends before)",
            fd_counts(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in &mut conns {
        let head = c.reader.read_response_head().expect("head").expect("head");
        assert_eq!(head.status, 200);
        c.reader.read_exact_to(len, &mut |_| {}).expect("the body");
    }
    conns
}

/// The kernel's table of IPv4 TCP sockets (`/proc/net/tcp`), one row of fields per socket:
/// [1] local and [2] remote address (as `proc_addr` writes them), [3] state (`01`:
/// established), [5] `timer:when`, [9] inode (`0`: no descriptor holds it).
pub fn proc_tcp() -> Vec<Vec<String>> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// 127.0.0.1:`port` as `/proc/net/tcp` writes it.
pub fn proc_addr(port: u16) -> String {
    format!("0100007F:{port:04X}")
}

/// `python3` without proxy settings from the environment (the tests' peers are on loopback).
pub fn python3() -> std::process::Command {
    let mut c = std::process::Command::new("python3");
    for v in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        c.env_remove(v);
    }
    c
}

/// A Python server (`script`, run with `python3 -c`) that prints its port on its first line
/// and records what it receives in a fresh file named after `name`, which it gets as its
/// first argument before `args`. Returns the child (the caller kills it by its PID), its port
/// and the file.
pub fn python_recorder(
    script: &str,
    name: &str,
    args: &[&str],
) -> (std::process::Child, u16, std::path::PathBuf) {
    use std::io::BufRead;
    let out = baton::log_path(name);
    let _ = std::fs::remove_file(&out);
    let mut child = Command::new("python3")
        .args(["-c", script, out.to_str().expect("utf-8 path")])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("port");
    let port = line.trim().parse().expect("the server's port");
    (child, port, out)
}

/// nghttpd serving `dir` (h2c, or TLS with `tls`), killed on drop.
pub struct Nghttpd(pub std::process::Child, pub u16);

impl Nghttpd {
    pub fn start(dir: &std::path::Path, tls: Option<&(String, String)>) -> Nghttpd {
        let port = free_port();
        let mut cmd = std::process::Command::new("nghttpd");
        cmd.arg("-d").arg(dir);
        match tls {
            None => {
                cmd.arg("--no-tls").arg(port.to_string());
            }
            Some((crt, key)) => {
                cmd.arg(port.to_string()).arg(key).arg(crt);
            }
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nghttpd (nghttp2-server)");
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(local(port)).is_err() {
            assert!(Instant::now() < end, "nghttpd never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nghttpd(child, port)
    }
}

impl Drop for Nghttpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
