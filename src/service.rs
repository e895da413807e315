//! Running under a supervisor: the systemd notify protocol (spoken directly: one datagram per
//! state change to `$NOTIFY_SOCKET`), the pid file, and the successor process a reload starts.
//! The proxy decides *when* (server/mod.rs); this module only does the talking and the
//! bookkeeping, so its fields are written here alone.

use std::io::Write;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// The systemd notify socket, when the process runs under a `Type=notify` unit.
pub struct Notifier {
    target: Option<(UnixDatagram, UnixAddr)>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). The variable
    /// is left in the environment: a successor started by a reload needs it too.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|v| {
            let v = v.to_string_lossy().into_owned();
            let addr = match notify_address(&v) {
                Ok(a) => a,
                Err(e) => {
                    log::warn!("NOTIFY_SOCKET={v:?}: {e}; not notifying the service manager");
                    return None;
                }
            };
            match UnixDatagram::unbound() {
                Ok(s) => Some((s, addr)),
                Err(e) => {
                    log::warn!("NOTIFY_SOCKET: {e}; not notifying the service manager");
                    None
                }
            }
        });
        Notifier { target }
    }

    /// Sends one notification (`KEY=VALUE` lines). A failure is logged, never fatal: the
    /// proxy serves the same with or without a service manager listening.
    pub fn send(&self, state: &str) {
        let Some((sock, addr)) = &self.target else {
            return;
        };
        match sock.send_to_addr(state.as_bytes(), addr) {
            Ok(_) => log::debug!("sd_notify: {}", state.replace('\n', " ")),
            Err(e) => log::warn!("sd_notify {:?}: {e}", state.replace('\n', " ")),
        }
    }
}

/// `$NOTIFY_SOCKET` as a socket address: an absolute path, or `@name` (abstract namespace).
pub fn notify_address(v: &str) -> Result<UnixAddr, String> {
    if let Some(name) = v.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        return UnixAddr::from_abstract_name(name.as_bytes()).map_err(|e| e.to_string());
    }
    if !v.starts_with('/') {
        return Err("expected an absolute path or @name".into());
    }
    UnixAddr::from_pathname(v).map_err(|e| e.to_string())
}

/// `RELOADING=1` with the `MONOTONIC_USEC` systemd 253 and later require alongside it.
pub fn reloading_message() -> String {
    let usec = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0);
    format!("RELOADING=1\nMONOTONIC_USEC={usec}")
}

/// `READY=1` naming this process as the service's main process.
pub fn ready_message() -> String {
    format!("READY=1\nMAINPID={}", std::process::id())
}

/// `--pid-file`: written atomically (temporary file, then rename) once this process serves,
/// removed when it exits, but only if it still holds our pid (a successor rewrote it
/// otherwise).
pub struct PidFile {
    path: PathBuf,
    written: bool,
}

impl PidFile {
    pub fn new(path: &Path) -> PidFile {
        PidFile {
            path: path.to_path_buf(),
            written: false,
        }
    }

    /// Writes our pid; the error names the path.
    pub fn write(&mut self) -> Result<(), String> {
        let pid = std::process::id();
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pid".into());
        let tmp = self.path.with_file_name(format!(".{name}.{pid}.tmp"));
        let r = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(format!("{pid}\n").as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("--pid-file {}: {e}", self.path.display()));
        }
        self.written = true;
        Ok(())
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if !self.written {
            return;
        }
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The arguments a successor gets: ours, plus `--parent-shutdown-time-s 0` when we were not
/// given one, so the successor tells us to drain as soon as it serves.
pub fn successor_args(argv: &[String]) -> Vec<String> {
    let mut args: Vec<String> = argv.iter().skip(1).cloned().collect();
    let has = args
        .iter()
        .any(|a| a == "--parent-shutdown-time-s" || a.starts_with("--parent-shutdown-time-s="));
    if !has {
        args.push("--parent-shutdown-time-s".into());
        args.push("0".into());
    }
    args
}

/// A successor that ended: its pid, how it ended, and whether it had taken over.
pub struct Ended {
    pub pid: u32,
    pub status: ExitStatus,
    pub took_over: bool,
}

/// The successor a reload starts: the executable recorded at start-up (after a binary
/// upgrade `/proc/self/exe` reads "... (deleted)", so it is read once, before that can
/// happen) run with our own command line.
pub struct Successors {
    exe: Option<PathBuf>,
    argv: Vec<String>,
    child: Option<Child>,
    took_over: bool,
}

impl Successors {
    pub fn new(argv: &[String]) -> Successors {
        let exe = std::env::current_exe()
            .map_err(|e| log::warn!("cannot read this process's executable path: {e}"))
            .ok();
        Successors {
            exe,
            argv: argv.to_vec(),
            child: None,
            took_over: false,
        }
    }

    /// The pid of a successor that was started and has neither taken over nor exited.
    pub fn pending(&self) -> Option<u32> {
        self.child
            .as_ref()
            .filter(|_| !self.took_over)
            .map(Child::id)
    }

    /// Starts the successor; stdout and stderr are shared with us (one log stream).
    pub fn spawn(&mut self) -> Result<(u32, String), String> {
        let exe = self
            .exe
            .clone()
            .ok_or("the executable path was not readable at start-up")?;
        let args = successor_args(&self.argv);
        let mut cmd = Command::new(&exe);
        cmd.args(&args).stdin(Stdio::null());
        if let Some(a0) = self.argv.first() {
            std::os::unix::process::CommandExt::arg0(&mut cmd, a0);
        }
        let child = cmd.spawn().map_err(|e| format!("{}: {e}", exe.display()))?;
        let pid = child.id();
        self.child = Some(child);
        self.took_over = false;
        Ok((pid, format!("{} {}", exe.display(), args.join(" "))))
    }

    /// A successor took over our listeners.
    pub fn took_over(&mut self) {
        if self.child.is_some() {
            self.took_over = true;
        }
    }

    /// Reaps the successor if it has exited (called on SIGCHLD; never blocks).
    pub fn reap(&mut self) -> Option<Ended> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                let pid = child.id();
                self.child = None;
                Some(Ended {
                    pid,
                    status,
                    took_over: std::mem::take(&mut self.took_over),
                })
            }
            Ok(None) => None,
            Err(e) => {
                log::warn!("waiting for successor pid {}: {e}", child.id());
                None
            }
        }
    }
}

/// `SIGHUP`, not `1`: signal names in logs.
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// The signals that came since the last look, in the order to handle them: the stop signals
/// (SIGTERM, SIGINT, SIGQUIT) first. They are collected as a set in ascending number, so a
/// SIGTERM arriving with a SIGHUP used to start a successor (SIGHUP is 1) before the stop was
/// seen: the process stopped and the successor went on serving. Handled first, the stop makes
/// the reload in the same batch refused, as it is when the two come apart.
pub fn stop_signals_first(mut sigs: Vec<i32>) -> Vec<i32> {
    use signal_hook::consts::{SIGINT, SIGQUIT, SIGTERM};
    sigs.sort_by_key(|s| !matches!(*s, SIGTERM | SIGINT | SIGQUIT));
    sigs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_are_handled_before_a_reload_that_came_with_them() {
        use signal_hook::consts::{SIGCHLD, SIGHUP, SIGTERM, SIGUSR1, SIGUSR2};
        assert_eq!(
            stop_signals_first(vec![SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGCHLD]),
            vec![SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD]
        );
        assert_eq!(stop_signals_first(vec![SIGHUP]), vec![SIGHUP]);
    }

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn successor_is_told_to_drain_us_unless_the_operator_chose_a_delay() {
        assert_eq!(
            successor_args(&v("baton -c x --hot-restart-file s")),
            v("-c x --hot-restart-file s --parent-shutdown-time-s 0")
        );
        assert_eq!(
            successor_args(&v("baton -c x --parent-shutdown-time-s=5")),
            v("-c x --parent-shutdown-time-s=5")
        );
        assert_eq!(
            successor_args(&v("baton -c x --parent-shutdown-time-s 5")),
            v("-c x --parent-shutdown-time-s 5")
        );
    }

    #[test]
    fn notify_addresses() {
        use std::os::linux::net::SocketAddrExt;
        let a = notify_address("@systemd/notify").unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"systemd/notify"[..]));
        let p = notify_address("/run/systemd/notify").unwrap();
        assert_eq!(p.as_pathname(), Some(Path::new("/run/systemd/notify")));
        assert!(notify_address("relative").is_err());
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(1), "SIGHUP");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(12), "SIGUSR2");
        assert_eq!(signal_name(9999), "signal 9999");
    }

    #[test]
    fn pid_file_is_removed_only_while_it_holds_our_pid() {
        let dir = std::env::temp_dir().join(format!("baton-pidfile-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("baton.pid");
        let mut p = PidFile::new(&path);
        p.write().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(p);
        assert!(!path.exists());
        let mut p = PidFile::new(&path);
        p.write().unwrap();
        std::fs::write(&path, "1\n").unwrap(); // a successor took it
        drop(p);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1\n");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(PidFile::new(Path::new("/nonexistent-dir/x.pid"))
            .write()
            .is_err());
    }
}
