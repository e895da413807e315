//! Hot-restart helpers: a private directory for the restart socket, starting a generation and
//! waiting for its takeover, exit checks, a hand-driven restart-socket peer (for stalls,
//! malformed frames and children that die mid-handover), and a strict load client.

use std::io::{self, IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use baton_bench::load::{Counts, Load, LoadOpts};
use baton_statemachine::{decode, encode, Message, PROTOCOL_VERSION};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use super::baton::{Baton, START_TIMEOUT};
use super::{free_port, get, local, simple_yaml, RawConn, Upstream, IO_TIMEOUT};

/// The log line of a state change into serving: a fresh start, a takeover, or a rollback.
pub const SERVING: &str = "-> Serving";
/// A child's takeover (its parent stopped accepting).
pub const TOOK_OVER: &str = "state Listening -> Serving";
/// A parent's rollback after its successor died.
pub const RESUMED: &str = "state HandedOver -> Serving";

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A fresh directory under the system temp dir, removed (with its contents) on drop.
pub struct HotDir {
    pub path: PathBuf,
}

impl HotDir {
    pub fn new(tag: &str) -> HotDir {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("baton-hr-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        HotDir { path }
    }

    /// The restart socket's path in this directory.
    pub fn sock(&self) -> PathBuf {
        self.path.join("restart.sock")
    }

    /// `sock()` as the text the command line takes.
    pub fn sock_arg(&self) -> String {
        self.sock().display().to_string()
    }
}

impl Drop for HotDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `--hot-restart-file PATH` followed by `extra`.
fn hot_args<'a>(sock: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--hot-restart-file", sock];
    v.extend_from_slice(extra);
    v
}

/// Starts the first generation (epoch 0) with a restart socket; waits until it accepts.
pub fn hot_start(yaml: &str, dir: &HotDir, extra: &[&str]) -> Baton {
    let sock = dir.sock_arg();
    let mut b = Baton::start_args(yaml, &hot_args(&sock, extra));
    assert!(
        b.wait_log("state FdsReceived -> Serving", START_TIMEOUT),
        "first generation never reached Serving\n{}",
        b.log()
    );
    b
}

/// Starts a new generation on the same restart socket without waiting.
pub fn hot_spawn(yaml: &str, dir: &HotDir, extra: &[&str]) -> Baton {
    let sock = dir.sock_arg();
    Baton::spawn_args(yaml, &hot_args(&sock, extra))
}

/// Starts a new generation and waits (bounded) until it has taken over; panics with its log
/// (and the parent's) otherwise. Returns it and the time from spawn to takeover in ms
/// (measured, never asserted).
pub fn hot_takeover(yaml: &str, dir: &HotDir, extra: &[&str], parent: &Baton) -> (Baton, u128) {
    let t0 = Instant::now();
    let mut b = hot_spawn(yaml, dir, extra);
    if !b.wait_log(TOOK_OVER, START_TIMEOUT) {
        panic!(
            "new generation did not take over (exit {:?})\n--- its log ---\n{}\n--- parent log ---\n{}",
            b.try_exit(),
            b.log(),
            parent.log()
        );
    }
    (b, t0.elapsed().as_millis())
}

/// Waits (bounded) for `b` to exit and returns its status; panics with the log otherwise.
pub fn exit_status(b: &mut Baton, timeout: Duration) -> ExitStatus {
    match b.wait_exit(timeout) {
        Some(s) => s,
        None => panic!(
            "baton pid {} still running after {timeout:?}\n{}",
            b.pid(),
            b.log()
        ),
    }
}

/// Asserts that `b` exits with `code` within `timeout`.
pub fn expect_exit_code(b: &mut Baton, code: i32, timeout: Duration) {
    let s = exit_status(b, timeout);
    assert_eq!(
        s.code(),
        Some(code),
        "exit status of pid {}\n{}",
        b.pid(),
        b.log()
    );
}

/// The epoch a process logged in its first "hot restart: pid=... epoch=N state ... -> Serving".
pub fn serving_epoch(b: &Baton) -> Option<u32> {
    b.log()
        .lines()
        .find(|l| l.contains("hot restart: pid=") && l.contains(SERVING))
        .and_then(|l| l.split("epoch=").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|e| e.parse().ok())
}

/// One `GET /` on a fresh connection; the body. Panics on anything but a complete 200.
pub fn get_body(port: u16) -> String {
    let mut c = super::RawConn::connect(port);
    c.send(&super::get("/"));
    let r = c.expect_response(false);
    assert_eq!(r.status(), 200, "GET / on :{port}: {r:?}");
    r.body_str()
}

/// Waits (bounded) until a fresh connection's `GET /` is answered with a body containing
/// `needle`; false on timeout.
pub fn wait_body(port: u16, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if get_body(port).contains(needle) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A strict load client on `port`: `connections` keep-alive workers (a short pause between
/// requests, so a debug build on 2 shared cores is not starved) and `rate` one-request
/// connections per second; every `GET /` must return a `hello from` body.
pub fn start_load(port: u16, connections: usize, rate: f64) -> Load {
    let mut o = LoadOpts::new(local(port));
    o.connections = connections;
    o.new_conn_rate = rate;
    o.expect = Some("hello from".into());
    o.timeout = IO_TIMEOUT;
    o.pause = Duration::from_millis(5);
    Load::start(&o).expect("start load threads")
}

/// Successful responses per upstream between two snapshots.
pub fn served_between(before: &Counts, after: &Counts, name: &str) -> u64 {
    let b = before.by_upstream().get(name).copied().unwrap_or(0);
    after.by_upstream().get(name).copied().unwrap_or(0) - b
}

/// One line for the test output: what the load did.
pub fn describe(c: &Counts) -> String {
    format!(
        "sent={} ok={} failed={} ({}) keepalive_conns={} oneshot_conns={} by_upstream={:?} first_failures={:?}",
        c.sent,
        c.ok,
        c.failed_total(),
        c.failed_kinds(),
        c.keepalive_conns,
        c.oneshot_conns,
        c.by_upstream(),
        c.failures.iter().take(5).collect::<Vec<_>>()
    )
}

/// A hand-driven peer on the restart socket (a fake child, or a fake parent), speaking the
/// frames of docs/hot-restart.md.
pub struct FakePeer {
    pub stream: UnixStream,
    buf: Vec<u8>,
    /// Fds received with SCM_RIGHTS so far.
    pub fds: Vec<OwnedFd>,
}

impl FakePeer {
    pub fn connect(path: &Path) -> FakePeer {
        let stream =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        FakePeer::from_stream(stream)
    }

    /// Either end of a restart connection (e.g. a fake parent's accepted child).
    pub fn from_stream(stream: UnixStream) -> FakePeer {
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        FakePeer {
            stream,
            buf: Vec::new(),
            fds: Vec::new(),
        }
    }

    pub fn send(&mut self, msg: &Message) {
        let mut bytes = Vec::new();
        encode(msg, &mut bytes).expect("encode");
        self.send_raw(&bytes);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .expect("write to restart socket");
    }

    /// The `Hello` a child of this protocol version sends.
    pub fn hello(&mut self) {
        self.send(&Message::Hello {
            protocol_version: PROTOCOL_VERSION,
            binary_version: "fake-peer".into(),
            pid: std::process::id(),
        });
    }

    /// Reads the next frame (bounded by `timeout`): `Ok(frame)`, or `Err(true)` on EOF or
    /// reset, `Err(false)` when the time ran out.
    pub fn next(&mut self, timeout: Duration) -> Result<Message, bool> {
        let deadline = Instant::now() + timeout;
        loop {
            match decode(&self.buf) {
                Ok(Some((m, used))) => {
                    self.buf.drain(..used);
                    return Ok(m);
                }
                Ok(None) => {}
                Err(e) => panic!("malformed frame from baton: {e:?}"),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(false);
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("read timeout");
            match self.read_some() {
                Ok(0) => return Err(true),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(false)
                }
                Err(_) => return Err(true),
            }
        }
    }

    /// Reads frames until one matches `want`; panics (naming what came) otherwise.
    pub fn expect(&mut self, what: &str, want: impl Fn(&Message) -> bool) -> Message {
        let mut seen = Vec::new();
        while let Ok(m) = self.next(IO_TIMEOUT) {
            if want(&m) {
                return m;
            }
            seen.push(m.name());
        }
        panic!("no {what} from baton; got {seen:?} then EOF/timeout");
    }

    fn read_some(&mut self) -> io::Result<usize> {
        let mut b = [0u8; 16 * 1024];
        let mut cmsg = nix::cmsg_space!([RawFd; 253]);
        let mut iov = [IoSliceMut::new(&mut b)];
        let r = recvmsg::<()>(
            self.stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        );
        let msg = r.map_err(|e| io::Error::from_raw_os_error(e as i32))?;
        let n = msg.bytes;
        for c in msg.cmsgs().into_iter().flatten() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the kernel just installed these fds in this process.
                self.fds.extend(
                    fds.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        self.buf.extend_from_slice(&b[..n]);
        Ok(n)
    }

    /// True when the parent closes the connection within `timeout`; also the frames that
    /// came before the EOF (e.g. a `Refuse`).
    pub fn closed_within(&mut self, timeout: Duration) -> (bool, Vec<Message>) {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Ok(m) => got.push(m),
                Err(eof) => return (eof, got),
            }
        }
    }
}

/// Environment of a fake child process (see `fake_child_main`).
const FAKE_SOCK: &str = "BATON_TEST_FAKE_CHILD_SOCK";
const FAKE_ADDRS: &str = "BATON_TEST_FAKE_CHILD_ADDRS";
/// What a fake child prints once it holds the parent's listener fds.
const HOLDING: &str = "FAKE CHILD HOLDING";

/// The body of a fake child process: the test binary re-run with `FAKE_SOCK` set. It does the
/// child's half of a handover up to `FdsTransferred` (Hello, RequestListeners, every batch
/// acknowledged), prints `HOLDING`, then holds the fds until it is killed. Without the
/// environment variable (a normal test run) it returns at once.
pub fn fake_child_main() {
    let Ok(sock) = std::env::var(FAKE_SOCK) else {
        return;
    };
    let addrs: Vec<String> = std::env::var(FAKE_ADDRS)
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let mut p = FakePeer::connect(Path::new(&sock));
    p.hello();
    p.expect("HelloAck", |m| matches!(m, Message::HelloAck { .. }));
    p.send(&Message::RequestListeners { addresses: addrs });
    loop {
        let m = p.expect("ListenerFds", |m| matches!(m, Message::ListenerFds(_)));
        let Message::ListenerFds(b) = m else {
            unreachable!("matched above")
        };
        p.send(&Message::FdsAck { batch: b.index });
        if b.last {
            break;
        }
    }
    println!("{HOLDING} {} fds", p.fds.len());
    let _ = io::stdout().flush();
    thread::sleep(Duration::from_secs(120));
}

/// A fake child process (this test binary running `entry_test`, which calls
/// `fake_child_main`), started and waited for until it holds the listener fds of `addrs`.
pub struct FakeChild {
    pub child: std::process::Child,
    out: PathBuf,
}

impl FakeChild {
    pub fn start(entry_test: &str, sock: &Path, addrs: &[String]) -> FakeChild {
        let out = super::baton::log_path("fake-child");
        let f = std::fs::File::create(&out).expect("fake child output file");
        let child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([entry_test, "--exact", "--nocapture", "--test-threads=1"])
            .env(FAKE_SOCK, sock)
            .env(FAKE_ADDRS, addrs.join(","))
            .stdin(std::process::Stdio::null())
            .stdout(f.try_clone().expect("dup"))
            .stderr(f)
            .spawn()
            .expect("spawn fake child");
        let mut c = FakeChild { child, out };
        let deadline = Instant::now() + START_TIMEOUT;
        while !c.output().contains(HOLDING) {
            if let Ok(Some(s)) = c.child.try_wait() {
                panic!("fake child exited with {s}:\n{}", c.output());
            }
            assert!(
                Instant::now() < deadline,
                "fake child stuck:\n{}",
                c.output()
            );
            thread::sleep(Duration::from_millis(20));
        }
        c
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// SIGKILL (by PID) and reap.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for FakeChild {
    fn drop(&mut self) {
        self.sigkill();
        let _ = std::fs::remove_file(&self.out);
    }
}

/// The addresses a child of a `proxy_yaml` config on `port` asks for.
pub fn child_addresses(port: u16, dir: &HotDir) -> Vec<String> {
    vec![
        format!("tcp:127.0.0.1:{port}"),
        format!("unix:{}", dir.sock().display()),
    ]
}

/// Milliseconds since midnight (UTC) of the first log line containing `needle`, from the
/// logger's `[YYYY-MM-DDTHH:MM:SS.mmmZ ...` prefix; for measuring, never for asserting.
pub fn log_ms(b: &Baton, needle: &str) -> Option<u64> {
    let log = b.log();
    let line = log.lines().find(|l| l.contains(needle))?;
    let t = line.get(12..24)?; // HH:MM:SS.mmm
    let (hms, ms) = t.split_once('.')?;
    let mut parts = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    Some(((h * 60 + m) * 60 + s) * 1000 + ms.parse::<u64>().ok()?)
}

/// A child's handover time from its logs: connected to the parent → accepting (ms).
pub fn handover_ms(child: &Baton) -> Option<u64> {
    let a = log_ms(child, "state Init -> Connecting")?;
    let b = log_ms(child, TOOK_OVER)?;
    b.checked_sub(a)
}

/// Connections a draining parent logged as handed to its successor.
pub fn handed_connections(parent: &Baton) -> u64 {
    parent
        .log()
        .lines()
        .filter_map(|l| l.split("hot restart: handed ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// How long a process may take to exit (bounded wait, never asserted as a duration).
pub const EXIT_WAIT: Duration = Duration::from_secs(30);

/// The seed's upgrade scenario: upstreams `v1` and `v2` (their bodies name them), and the first
/// generation (epoch 0) on v1's config with a restart socket in a private directory.
pub struct Upgrade {
    pub up1: Upstream,
    pub up2: Upstream,
    pub port: u16,
    pub dir: HotDir,
    pub v1: Baton,
}

impl Upgrade {
    pub fn start(tag: &str) -> Upgrade {
        let up1 = Upstream::start("v1");
        let up2 = Upstream::start("v2");
        let port = free_port();
        let dir = HotDir::new(tag);
        let v1 = hot_start(&simple_yaml(port, up1.port()), &dir, &[]);
        Upgrade {
            up1,
            up2,
            port,
            dir,
            v1,
        }
    }

    /// The v2 config: same listener, v2's upstream.
    pub fn yaml2(&self) -> String {
        simple_yaml(self.port, self.up2.port())
    }

    /// Starts v2 with `extra` flags and waits for its takeover; also the ms it took.
    pub fn takeover(&self, extra: &[&str]) -> (Baton, u128) {
        hot_takeover(&self.yaml2(), &self.dir, extra, &self.v1)
    }

    /// A new connection's `GET /` is answered by upstream `name`.
    pub fn serves(&self, name: &str) {
        let body = get_body(self.port);
        assert!(
            body.contains(&format!("hello from {name} ")),
            "expected {name}, got {body:?}\n--- v1 log ---\n{}",
            self.v1.log()
        );
    }

    /// SIGTERM to v1, which must exit 0.
    pub fn retire_v1(&mut self) {
        self.v1.sigterm();
        expect_exit_code(&mut self.v1, 0, EXIT_WAIT);
    }

    /// A full restart to v2, then v1 drains and exits 0; v2 serves throughout.
    pub fn restart_to_v2_and_retire_v1(&mut self) -> Baton {
        let (v2, _) = self.takeover(&[]);
        self.serves("v2");
        self.retire_v1();
        self.serves("v2");
        v2
    }
}

/// A keep-alive connection that has had one response from upstream `name`.
pub fn warmed_conn(port: u16, name: &str) -> RawConn {
    let mut c = RawConn::connect(port);
    next_served_by(&mut c, name, None);
    c
}

/// One more `GET /` on `c` must be answered by upstream `name`; on failure the log of `by`
/// (the process expected to answer) is shown.
pub fn next_served_by(c: &mut RawConn, name: &str, by: Option<&Baton>) {
    c.send(&get("/"));
    let r = c.expect_response(false);
    assert!(
        r.body_str().contains(&format!("hello from {name} ")),
        "expected {name}: {r:?}\n--- log ---\n{}",
        by.map(Baton::log).unwrap_or_default()
    );
}

/// How long a reload or an exit may take in `in_log` and `stop_in_charge`.
const RELOAD_WAIT: Duration = Duration::from_secs(30);

/// Waits (bounded) until the log every generation writes to holds `needle` (the first
/// generation's process may be gone by then).
pub fn in_log(b: &Baton, needle: &str) -> bool {
    let deadline = Instant::now() + RELOAD_WAIT;
    while !b.log().contains(needle) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The pid file of whoever is in charge after reloads. Dropped while the file is still
/// there (a test failed before `stop_in_charge`), it stops that process: a successor started
/// by a reload is not a child of the test, so nothing else would end it.
pub struct InCharge(PathBuf);

impl InCharge {
    pub fn new(pid_file: PathBuf) -> InCharge {
        InCharge(pid_file)
    }

    /// The pid in the file, if that process is still a baton (a pid file left by a crash
    /// may name a pid reused since).
    fn pid(&self) -> Option<nix::unistd::Pid> {
        let text = std::fs::read_to_string(&self.0).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let baton = cmdline.windows(5).any(|w| w == b"baton");
        baton.then(|| nix::unistd::Pid::from_raw(pid))
    }
}

impl std::ops::Deref for InCharge {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for InCharge {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for InCharge {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
    }
}

/// Stops whoever is in charge now, by the pid file it wrote when it took over (the first
/// generation `b` has handed over and exited).
pub fn stop_in_charge(b: &mut Baton, pid_file: &InCharge) {
    assert!(b.wait_exit(RELOAD_WAIT).is_some(), "{}", b.log());
    let pid = pid_file.pid().expect("pid file");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
        .expect("stop the process in charge");
    let deadline = Instant::now() + RELOAD_WAIT;
    while pid_file.exists() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(!pid_file.exists(), "{}", b.log());
}

/// Starts baton on `yaml` (listener `port`) with a restart socket and a pid file in `dir`
/// (the pid file names whoever is in charge after reloads: `stop_in_charge`).
pub fn start_with_pid_file(yaml: &str, port: u16, dir: &HotDir) -> (Baton, InCharge) {
    let pid_file = dir.path.join("baton.pid");
    let (pid_arg, sock) = (pid_file.display().to_string(), dir.sock_arg());
    let mut b = Baton::spawn_with(
        port,
        &[
            "--config-yaml",
            yaml,
            "--hot-restart-file",
            &sock,
            "--pid-file",
            &pid_arg,
        ],
        &[],
    );
    b.wait_listening();
    (b, InCharge::new(pid_file))
}
