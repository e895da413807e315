//! The baton binary under test as a child process: started with an inline config and debug
//! logs captured to a file (shown when something goes wrong), signalled and killed by its own
//! PID only.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::yaml::listener_port;

/// How long a starting baton may take to accept on its listener (a debug build on 2 shared cores).
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

static NEXT_LOG: AtomicU64 = AtomicU64::new(0);

/// A unique log path under the system temp dir for this test process.
pub fn log_path(tag: &str) -> PathBuf {
    let n = NEXT_LOG.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!("baton-test-{}-{tag}-{n}.log", std::process::id()))
}

/// Runs the baton binary with `args` to completion (e.g. `--mode validate`), bounded by
/// `timeout`; returns (status, stdout, stderr). Panics if it does not exit in time.
pub fn run_baton(args: &[&str], timeout: Duration) -> (ExitStatus, String, String) {
    run_baton_cmd(&[], args, timeout)
}

/// As `run_baton`, run through `wrapper` (e.g. `setpriv --reuid=65534 ...`).
pub fn run_baton_cmd(
    wrapper: &[&str],
    args: &[&str],
    timeout: Duration,
) -> (ExitStatus, String, String) {
    let out_path = log_path("run-out");
    let err_path = log_path("run-err");
    let mut child = baton_command(wrapper)
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn baton");
    let status = wait_child(&mut child, timeout);
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    match status {
        Some(s) => (s, out, err),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "baton {args:?} did not exit within {timeout:?}\nstdout:\n{out}\nstderr:\n{err}"
            );
        }
    }
}

/// The baton binary as a command, or `wrapper... baton` when a wrapper is given.
fn baton_command(wrapper: &[&str]) -> Command {
    let bin = env!("CARGO_BIN_EXE_baton");
    match wrapper.split_first() {
        Some((prog, args)) => {
            let mut c = Command::new(prog);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A running baton serving one config.
pub struct Baton {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    exited: Option<ExitStatus>,
}

impl Baton {
    /// Starts baton with `--config-yaml YAML -l debug` and waits (bounded) until its listener
    /// accepts. Panics with the captured log if it exits or never listens.
    pub fn start(yaml: &str) -> Baton {
        Baton::start_args(yaml, &[])
    }

    /// As `start`, with extra command-line arguments.
    pub fn start_args(yaml: &str, extra: &[&str]) -> Baton {
        let mut b = Baton::spawn_args(yaml, extra);
        b.wait_listening();
        b
    }

    /// Spawns baton with `--config-yaml YAML -l debug` and `extra`, without waiting for
    /// anything (e.g. a hot-restart child, whose port already accepts through its parent).
    pub fn spawn_args(yaml: &str, extra: &[&str]) -> Baton {
        let port = listener_port(yaml).expect("config has a listener port_value");
        let mut args = vec!["--config-yaml", yaml];
        args.extend_from_slice(extra);
        Baton::spawn_with(port, &args, &[])
    }

    /// Spawns baton with `args`, then `-l debug`, and the extra environment
    /// `env`, serving on `port`; nothing is waited for. For tests that need a config file or
    /// a service manager's variables (`NOTIFY_SOCKET`).
    pub fn spawn_with(port: u16, args: &[&str], env: &[(&str, &str)]) -> Baton {
        Baton::spawn_in(None, &[], port, args, env)
    }

    /// As `start`, run in working directory `dir`: a config's relative file names (e.g. an
    /// example's `certs/…`) are found there, as in the example's own container.
    pub fn start_in(dir: &std::path::Path, yaml: &str) -> Baton {
        let port = listener_port(yaml).expect("config has a listener port_value");
        let mut b = Baton::spawn_in(Some(dir), &[], port, &["--config-yaml", yaml], &[]);
        b.wait_listening();
        b
    }

    /// As `spawn_with`, run through `wrapper` (a program that ends by exec'ing baton, so
    /// the pid is baton's), e.g. a mount namespace of the test's own.
    pub fn spawn_wrapped(wrapper: &[&str], port: u16, args: &[&str]) -> Baton {
        Baton::spawn_in(None, wrapper, port, args, &[])
    }

    fn spawn_in(
        dir: Option<&std::path::Path>,
        wrapper: &[&str],
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Baton {
        let log = log_path("baton");
        let f = File::create(&log).expect("log file");
        let mut cmd = baton_command(wrapper);
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let child = cmd
            .args(args)
            .args(["-l", "debug"])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup log"))
            .stderr(f)
            .spawn()
            .expect("spawn baton");
        Baton {
            child,
            port,
            log,
            exited: None,
        }
    }

    /// Sends `sig` to this child (by PID).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if self.exited.is_none() {
            let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
            nix::sys::signal::kill(pid, sig).expect("kill");
        }
    }

    /// Waits (bounded) until the log holds `needle` at least `n` times; false on timeout.
    /// Returns early (false) if the process exits without having logged it.
    pub fn wait_log_n(&mut self, needle: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.try_exit().is_some();
            if self.log().matches(needle).count() >= n {
                return true;
            }
            if exited || Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `wait_log_n` for one occurrence.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> bool {
        self.wait_log_n(needle, 1, timeout)
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.exited = Some(s);
            }
        }
        self.exited
    }

    /// Sends SIGKILL to this child (by PID) and reaps it.
    pub fn sigkill(&mut self) -> ExitStatus {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
        self.exited.expect("exit status after SIGKILL")
    }

    /// Waits (bounded) until the listener accepts; panics with the log if it exits first.
    pub fn wait_listening(&mut self) {
        let addr = self.addr();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.exited = Some(s);
                panic!(
                    "baton exited during start-up with {s}\n--- log ---\n{}",
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "baton did not accept on {addr} within {START_TIMEOUT:?}\n--- log ---\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything baton wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM to this child (by PID).
    pub fn sigterm(&self) {
        if self.exited.is_none() {
            let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill -TERM");
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = wait_child(&mut self.child, timeout);
        }
        self.exited
    }

    fn proc_status_kib(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        s.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} missing in /proc/PID/status"))
    }

    /// Current resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.proc_status_kib("VmRSS:")
    }

    /// Peak resident set size (high-water mark) in KiB.
    pub fn hwm_kib(&self) -> u64 {
        self.proc_status_kib("VmHWM:")
    }

    /// utime + stime in clock ticks, from /proc/PID/stat.
    pub fn cpu_ticks(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &s[s.rfind(')').expect("stat format") + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }
}

impl Drop for Baton {
    fn drop(&mut self) {
        if self.exited.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if !thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        } else {
            eprintln!("--- baton log ({}) ---\n{}", self.log.display(), self.log());
        }
    }
}
