//! The process log: level (`-l`, RUST_LOG), destination (`--log-path`, reopened on SIGUSR1
//! like the access logs) and Envoy's `--log-format` pattern flags.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Envoy's default `--log-format`. Without `--log-format` baton keeps env_logger's own line
/// format (`[RFC 3339 time LEVEL target] message`), which tools reading its logs expect.
pub const ENVOY_DEFAULT_FORMAT: &str = "[%Y-%m-%d %T.%e][%t][%l][%n] %v";

/// One piece of a parsed `--log-format`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Flag(char),
}

/// Flags we render (Envoy's list; `%z` is always `+00:00`: times are UTC).
const FLAGS: &str = "vjt_PnlLaAbBcCYDxmdHIMSefFprRTXz%@sg#!";

/// A parsed `--log-format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<Piece>);

impl Pattern {
    /// Parses Envoy's pattern; an unknown flag is an error naming it.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let mut out = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            let Some(f) = chars.next() else {
                return Err("--log-format: '%' at the end of the pattern".into());
            };
            if !FLAGS.contains(f) {
                return Err(format!(
                    "--log-format: unsupported flag %{f} (supported: {})",
                    FLAGS
                        .chars()
                        .map(|c| format!("%{c}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
            if f == '%' {
                text.push('%');
                continue;
            }
            if !text.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut text)));
            }
            out.push(Piece::Flag(f));
        }
        if !text.is_empty() {
            out.push(Piece::Text(text));
        }
        Ok(Pattern(out))
    }

    /// Renders one record at `now` (Unix time).
    pub fn render(&self, out: &mut String, rec: &Record<'_>, now: std::time::Duration) {
        use std::fmt::Write as _;
        const DAYS: [&str; 7] = [
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
            "Monday",
            "Tuesday",
            "Wednesday",
        ];
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let secs = now.as_secs();
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, mo, d) = crate::util::civil_from_days(days);
        let (h, mi, s) = (rem / 3600, (rem / 60) % 60, rem % 60);
        let h12 = if h % 12 == 0 { 12 } else { h % 12 };
        let ampm = if h < 12 { "AM" } else { "PM" };
        let wday = DAYS[(days.rem_euclid(7)) as usize];
        let month = MONTHS[(mo as usize).saturating_sub(1) % 12];
        let nanos = now.subsec_nanos();
        for p in &self.0 {
            let _ = match p {
                Piece::Text(t) => {
                    out.push_str(t);
                    Ok(())
                }
                Piece::Flag(f) => match f {
                    'v' => write!(out, "{}", rec.msg),
                    '_' => {
                        escape(out, rec.msg, false);
                        Ok(())
                    }
                    'j' => {
                        escape(out, rec.msg, true);
                        Ok(())
                    }
                    't' => write!(out, "{}", rec.thread),
                    'P' => write!(out, "{}", std::process::id()),
                    'n' => write!(out, "{}", rec.target),
                    'l' => write!(out, "{}", rec.level),
                    'L' => write!(
                        out,
                        "{}",
                        rec.level.chars().next().unwrap_or('?').to_ascii_uppercase()
                    ),
                    'a' => write!(out, "{}", &wday[..3]),
                    'A' => write!(out, "{wday}"),
                    'b' => write!(out, "{}", &month[..3]),
                    'B' => write!(out, "{month}"),
                    'c' => write!(
                        out,
                        "{} {} {d:2} {h:02}:{mi:02}:{s:02} {y}",
                        &wday[..3],
                        &month[..3]
                    ),
                    'C' => write!(out, "{:02}", y.rem_euclid(100)),
                    'Y' => write!(out, "{y}"),
                    'D' | 'x' => write!(out, "{mo:02}/{d:02}/{:02}", y.rem_euclid(100)),
                    'm' => write!(out, "{mo:02}"),
                    'd' => write!(out, "{d:02}"),
                    'H' => write!(out, "{h:02}"),
                    'I' => write!(out, "{h12:02}"),
                    'M' => write!(out, "{mi:02}"),
                    'S' => write!(out, "{s:02}"),
                    'e' => write!(out, "{:03}", nanos / 1_000_000),
                    'f' => write!(out, "{:06}", nanos / 1_000),
                    'F' => write!(out, "{nanos:09}"),
                    'p' => write!(out, "{ampm}"),
                    'r' => write!(out, "{h12:02}:{mi:02}:{s:02} {ampm}"),
                    'R' => write!(out, "{h:02}:{mi:02}"),
                    'T' | 'X' => write!(out, "{h:02}:{mi:02}:{s:02}"),
                    'z' => write!(out, "+00:00"),
                    '@' => write!(out, "{}:{}", rec.file, rec.line),
                    's' => write!(
                        out,
                        "{}",
                        Path::new(rec.file)
                            .file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default()
                    ),
                    'g' => write!(out, "{}", rec.file),
                    '#' => write!(out, "{}", rec.line),
                    '!' => write!(out, "{}", rec.module),
                    _ => Ok(()),
                },
            };
        }
    }
}

/// What a pattern needs of a log record.
pub struct Record<'a> {
    pub msg: &'a str,
    pub level: &'a str,
    pub target: &'a str,
    pub module: &'a str,
    pub file: &'a str,
    pub line: u32,
    pub thread: u64,
}

/// `%_` escapes C-style (newlines, tabs, control bytes); `%j` escapes for a JSON string.
fn escape(out: &mut String, msg: &str, json: bool) {
    for c in msg.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            '"' if json => out.push_str("\\\""),
            c if (c as u32) < 0x20 => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
}

/// Envoy's level names for `%l`.
fn level_name(l: log::Level) -> &'static str {
    match l {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    }
}

/// The `--log-path` file, shared with the logger so SIGUSR1 can reopen it (after rotation).
#[derive(Clone)]
struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.lock() {
            Ok(mut f) => f.write(buf),
            Err(_) => Ok(buf.len()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.file.lock() {
            Ok(mut f) => f.flush(),
            Err(_) => Ok(()),
        }
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

static LOG_FILE: Mutex<Option<LogFile>> = Mutex::new(None);

/// Reopens the `--log-path` file (SIGUSR1, after log rotation); nothing without one.
pub fn reopen() {
    let Ok(guard) = LOG_FILE.lock() else {
        return;
    };
    let Some(lf) = guard.as_ref() else {
        return;
    };
    match open_append(&lf.path) {
        Ok(f) => {
            if let Ok(mut cur) = lf.file.lock() {
                *cur = f;
            }
        }
        Err(e) => eprintln!("baton: reopening --log-path {}: {e}", lf.path.display()),
    }
}

/// Sets up the logger: `-l LEVEL` wins over RUST_LOG, neither means info; `--log-path` and
/// `--log-format` as Envoy. The file is opened here so a bad path fails at start-up.
pub fn init(
    level: Option<&str>,
    path: Option<&Path>,
    format: Option<&Pattern>,
) -> Result<(), String> {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if let Some(l) = level {
        b.parse_filters(crate::cli::log_filter(l));
    }
    b.format_timestamp_millis();
    if let Some(p) = path {
        let f = open_append(p).map_err(|e| format!("--log-path {}: {e}", p.display()))?;
        let lf = LogFile {
            path: p.to_path_buf(),
            file: Arc::new(Mutex::new(f)),
        };
        if let Ok(mut g) = LOG_FILE.lock() {
            *g = Some(lf.clone());
        }
        b.target(env_logger::Target::Pipe(Box::new(lf)));
    }
    if let Some(pat) = format.cloned() {
        b.format(move |buf, r| {
            let msg = r.args().to_string();
            let rec = Record {
                msg: &msg,
                level: level_name(r.level()),
                target: r.target(),
                module: r.module_path().unwrap_or(""),
                file: r.file().unwrap_or(""),
                line: r.line().unwrap_or(0),
                thread: thread_id(),
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let mut line = String::with_capacity(msg.len() + 64);
            pat.render(&mut line, &rec, now);
            writeln!(buf, "{line}")
        });
    }
    let _ = b.try_init();
    Ok(())
}

/// The kernel's id of the calling thread (what Envoy prints for `%t`).
fn thread_id() -> u64 {
    nix::unistd::gettid().as_raw() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(msg: &str) -> Record<'_> {
        Record {
            msg,
            level: "info",
            target: "baton::server",
            module: "baton::server",
            file: "src/server/mod.rs",
            line: 42,
            thread: 7,
        }
    }

    #[test]
    fn envoy_default_format_renders() {
        let p = Pattern::parse(ENVOY_DEFAULT_FORMAT).unwrap();
        let mut s = String::new();
        // 2018-03-27 15:25:06.008 UTC
        let t = std::time::Duration::new(1_522_164_306, 8_789_123);
        p.render(&mut s, &rec("hello"), t);
        assert_eq!(s, "[2018-03-27 15:25:06.008][7][info][baton::server] hello");
        let mut s = String::new();
        Pattern::parse("%a %b %d %I%p %L %f %F %s:%# %D %z %%")
            .unwrap()
            .render(&mut s, &rec("x"), t);
        assert_eq!(
            s,
            "Tue Mar 27 03PM I 008789 008789123 mod.rs:42 03/27/18 +00:00 %"
        );
    }

    #[test]
    fn escapes_and_errors() {
        let mut s = String::new();
        Pattern::parse("%_|%j").unwrap().render(
            &mut s,
            &rec("a\n\"b\""),
            std::time::Duration::ZERO,
        );
        assert_eq!(s, "a\\n\"b\"|a\\n\\\"b\\\"");
        assert!(Pattern::parse("%Q").unwrap_err().contains("%Q"));
        assert!(Pattern::parse("abc %").is_err());
    }
}
