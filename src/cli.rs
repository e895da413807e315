//! Envoy-compatible command line → `Options`. Envoy's flag names where Envoy has them, so the
//! seed's `envoy -c ... --service-cluster ...` line runs with only the binary name changed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Validate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config_path: Option<PathBuf>,
    pub config_yaml: Option<String>,
    pub mode: Mode,
    pub service_cluster: String,
    pub service_node: String,
    pub hot_restart_file: Option<PathBuf>,
    /// How long a draining process keeps serving before it closes what is left (default 600 s).
    pub drain_time: Duration,
    /// When set, the new process tells its parent to drain after this long (no SIGTERM needed).
    pub parent_shutdown_time: Option<Duration>,
    /// `-l`: None means "RUST_LOG or info".
    pub log_level: Option<String>,
    /// `--log-path`: the process log goes to this file (reopened on SIGUSR1) instead of stderr.
    pub log_path: Option<PathBuf>,
    /// `--log-format`: Envoy's pattern flags; None keeps the default line format.
    pub log_format: Option<crate::logging::Pattern>,
    /// `--pid-file`: written once this process serves, removed at exit if still ours.
    pub pid_file: Option<PathBuf>,
    /// The full command line, shown by /server_info and reused by a reload's successor.
    pub argv: Vec<String>,
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Box<Options>),
    Help,
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const USAGE: &str = "\
USAGE: baton -c FILE [options]

  -c, --config-path FILE        Envoy v3 bootstrap (YAML or JSON)
      --config-yaml STRING      inline bootstrap YAML (merged over -c when both are given)
      --mode serve|validate     validate: check the config, print the result, exit
      --service-cluster NAME    shown in logs and /server_info
      --service-node NAME       shown in logs and /server_info
      --hot-restart-file PATH   Unix socket for hot restart handover (see docs/hot-restart.md)
      --drain-time-s N          seconds a draining process keeps serving (default 600)
      --parent-shutdown-time-s N  seconds after takeover before the parent is told to drain
      --drain-strategy immediate  how a drain closes connections (gradual is not supported)
      --concurrency 1           worker threads (baton runs one)
      --pid-file PATH           write the pid here once serving (removed at exit)
  -l, --log-level LEVEL         trace|debug|info|warn|error|critical|off (RUST_LOG also honoured)
      --log-path PATH           write the log to PATH instead of stderr (reopened on SIGUSR1)
      --log-format PATTERN      Envoy's log pattern flags, e.g. \"[%Y-%m-%d %T.%e][%l][%n] %v\"
      --version                 print the version and exit
  -h, --help                    print this help and exit

Signals: SIGTERM, SIGINT, SIGQUIT drain (a second SIGTERM or SIGINT stops now); SIGHUP and
SIGUSR2 reload (start a successor; needs --hot-restart-file); SIGUSR1 reopens the logs.
";

const LOG_LEVELS: &[&str] = &[
    "trace", "debug", "info", "warn", "warning", "error", "critical", "off",
];

/// Whole seconds up to `u32::MAX`, the range of Envoy's flags: a larger value used to reach the
/// restart state machine as milliseconds cut to 64 bits (`--parent-shutdown-time-s
/// 18446744073709552` became 384 ms).
fn parse_secs(flag: &str, v: &str) -> Result<Duration, CliError> {
    v.parse::<u32>()
        .map(|s| Duration::from_secs(u64::from(s)))
        .map_err(|_| {
            CliError(format!(
                "{flag}: expected whole seconds (0 to {}), got {v:?}",
                u32::MAX
            ))
        })
}

/// The process's arguments as text. `std::env::args` panics on an argument that is not
/// UTF-8 (a path with a Latin-1 byte, a stray byte in a wrapper script); this refuses it with
/// an error naming the argument instead, so a bad command line exits 1 rather than panicking.
pub fn utf8_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Result<Vec<String>, CliError> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.into_string().map_err(|a| {
                CliError(format!(
                    "argument {i} is not valid UTF-8: {:?}",
                    a.to_string_lossy()
                ))
            })
        })
        .collect()
}

/// Parses `argv` (including the program name at index 0).
pub fn parse(argv: &[String]) -> Result<Command, CliError> {
    let mut o = Options {
        config_path: None,
        config_yaml: None,
        mode: Mode::Serve,
        service_cluster: String::new(),
        service_node: String::new(),
        hot_restart_file: None,
        drain_time: Duration::from_secs(600),
        parent_shutdown_time: None,
        log_level: None,
        log_path: None,
        log_format: None,
        pid_file: None,
        argv: argv.to_vec(),
    };
    let mut i = 1;
    while i < argv.len() {
        let arg = argv[i].as_str();
        i += 1;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg, None),
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help),
            "--version" => return Ok(Command::Version),
            _ => {}
        }
        let takes_value = matches!(
            flag,
            "-c" | "--config-path"
                | "--config-yaml"
                | "--mode"
                | "--service-cluster"
                | "--service-node"
                | "--hot-restart-file"
                | "--drain-time-s"
                | "--parent-shutdown-time-s"
                | "-l"
                | "--log-level"
                | "--log-path"
                | "--log-format"
                | "--pid-file"
                | "--concurrency"
                | "--drain-strategy"
                | "--restart-epoch"
                | "--base-id"
        );
        if !takes_value {
            return Err(CliError(format!("unknown flag {arg:?}")));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = argv
                    .get(i)
                    .ok_or_else(|| CliError(format!("{flag} needs a value")))?;
                i += 1;
                v.clone()
            }
        };
        match flag {
            "-c" | "--config-path" => o.config_path = Some(PathBuf::from(value)),
            "--config-yaml" => o.config_yaml = Some(value),
            "--mode" => {
                o.mode = match value.as_str() {
                    "serve" => Mode::Serve,
                    "validate" => Mode::Validate,
                    other => {
                        return Err(CliError(format!(
                            "--mode: expected serve or validate, got {other:?}"
                        )))
                    }
                }
            }
            "--service-cluster" => o.service_cluster = value,
            "--service-node" => o.service_node = value,
            "--hot-restart-file" => o.hot_restart_file = Some(non_empty_path(flag, value)?),
            "--drain-time-s" => o.drain_time = parse_secs(flag, &value)?,
            "--parent-shutdown-time-s" => o.parent_shutdown_time = Some(parse_secs(flag, &value)?),
            "-l" | "--log-level" => {
                if !LOG_LEVELS.contains(&value.as_str()) {
                    return Err(CliError(format!(
                        "--log-level: expected one of {}, got {value:?}",
                        LOG_LEVELS.join("|")
                    )));
                }
                o.log_level = Some(value)
            }
            "--log-path" => o.log_path = Some(non_empty_path(flag, value)?),
            "--pid-file" => o.pid_file = Some(non_empty_path(flag, value)?),
            "--log-format" => {
                o.log_format = Some(crate::logging::Pattern::parse(&value).map_err(CliError)?)
            }
            "--concurrency" => {
                if value != "1" {
                    return Err(CliError(format!(
                        "--concurrency {value}: baton runs one event loop on one thread; \
                         only --concurrency 1 is supported (run several processes on \
                         different ports to use more cores)"
                    )));
                }
            }
            "--drain-strategy" => match value.as_str() {
                "immediate" => {}
                "gradual" => {
                    return Err(CliError(
                        "--drain-strategy gradual is not supported: baton drains immediately \
                         (every response after the drain starts carries Connection: close and \
                         idle connections close); give --drain-strategy immediate"
                            .into(),
                    ))
                }
                other => {
                    return Err(CliError(format!(
                        "--drain-strategy: expected immediate or gradual, got {other:?}"
                    )))
                }
            },
            "--restart-epoch" | "--base-id" => {
                return Err(CliError(format!(
                    "{flag}: baton has no shared-memory epochs; start every generation with \
                     the same --hot-restart-file PATH and the new process finds the running \
                     one there (or send SIGHUP to reload); see docs/hot-restart.md"
                )))
            }
            _ => return Err(CliError(format!("unknown flag {arg:?}"))),
        }
    }
    if o.config_path.is_none() && o.config_yaml.is_none() {
        return Err(CliError(
            "no configuration: give -c FILE or --config-yaml STRING".into(),
        ));
    }
    Ok(Command::Run(Box::new(o)))
}

/// A path flag's value; empty is an error naming the flag.
fn non_empty_path(flag: &str, value: String) -> Result<PathBuf, CliError> {
    if value.is_empty() {
        return Err(CliError(format!("{flag}: empty path")));
    }
    Ok(PathBuf::from(value))
}

/// Maps Envoy's level names to `log` filter names.
pub fn log_filter(level: &str) -> &'static str {
    match level {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "critical" => "error",
        _ => "off",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn second_counts_past_u32_are_refused() {
        for flag in ["--drain-time-s", "--parent-shutdown-time-s"] {
            let ok = parse(&args(&format!("baton -c x {flag} 4294967295")));
            assert!(ok.is_ok(), "{flag}: {ok:?}");
            for v in ["4294967296", "18446744073709552", "-1"] {
                let Err(CliError(e)) = parse(&args(&format!("baton -c x {flag} {v}"))) else {
                    panic!("{flag} {v} accepted")
                };
                assert!(e.contains("expected whole seconds"), "{e}");
            }
        }
    }

    #[test]
    fn non_utf8_arguments_are_refused_by_position() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let ok = utf8_args([OsString::from("baton"), OsString::from("-c")]);
        assert_eq!(ok, Ok(vec!["baton".to_string(), "-c".to_string()]));
        let bad = utf8_args([
            OsString::from("baton"),
            OsString::from_vec(b"a\xffb".to_vec()),
        ]);
        let Err(CliError(e)) = bad else {
            panic!("accepted a non-UTF-8 argument")
        };
        assert!(e.starts_with("argument 1 is not valid UTF-8"), "{e}");
    }

    #[test]
    fn seed_command_line_parses() {
        let cmd = parse(&args("baton -c configs/envoy.yaml --service-cluster initial-envoy --service-node initial-node --hot-restart-file=/tmp/envoy_restart.sock")).unwrap();
        let Command::Run(o) = cmd else {
            panic!("expected Run")
        };
        assert_eq!(o.config_path, Some(PathBuf::from("configs/envoy.yaml")));
        assert_eq!(o.service_cluster, "initial-envoy");
        assert_eq!(o.service_node, "initial-node");
        assert_eq!(
            o.hot_restart_file,
            Some(PathBuf::from("/tmp/envoy_restart.sock"))
        );
        assert_eq!(o.drain_time, Duration::from_secs(600));
        assert_eq!(o.mode, Mode::Serve);
    }

    #[test]
    fn unknown_flag_and_missing_value_are_errors() {
        assert!(parse(&args("baton -c x --bogus")).is_err());
        assert!(parse(&args("baton -c")).is_err());
        assert!(parse(&args("baton --mode fly -c x")).is_err());
        assert!(parse(&args("baton")).is_err());
        assert!(parse(&args("baton -c x -l loud")).is_err());
    }

    #[test]
    fn help_version_and_numbers() {
        assert_eq!(parse(&args("baton --help")).unwrap(), Command::Help);
        assert_eq!(parse(&args("baton --version")).unwrap(), Command::Version);
        let Command::Run(o) = parse(&args(
            "baton --config-yaml x --drain-time-s 3 --parent-shutdown-time-s=7 --mode validate",
        ))
        .unwrap() else {
            panic!("expected Run")
        };
        assert_eq!(o.drain_time, Duration::from_secs(3));
        assert_eq!(o.parent_shutdown_time, Some(Duration::from_secs(7)));
        assert_eq!(o.mode, Mode::Validate);
        assert!(parse(&args("baton -c x --drain-time-s soon")).is_err());
    }

    #[test]
    fn envoy_flags_are_accepted_or_explained() {
        let Command::Run(o) = parse(&args(
            "baton -c x --concurrency 1 --drain-strategy immediate --log-path /tmp/l --pid-file /tmp/p --log-format [%l]%v",
        ))
        .unwrap() else {
            panic!("expected Run")
        };
        assert_eq!(o.log_path, Some(PathBuf::from("/tmp/l")));
        assert_eq!(o.pid_file, Some(PathBuf::from("/tmp/p")));
        assert!(o.log_format.is_some());
        let err = |s: &str| parse(&args(s)).unwrap_err().0;
        assert!(err("baton -c x --concurrency 4").contains("only --concurrency 1"));
        assert!(err("baton -c x --drain-strategy gradual").contains("immediate"));
        assert!(err("baton -c x --drain-strategy soon").contains("expected"));
        assert!(err("baton -c x --restart-epoch 1").contains("--hot-restart-file"));
        assert!(err("baton -c x --base-id 0").contains("--hot-restart-file"));
        assert!(err("baton -c x --log-format %Q").contains("%Q"));
        assert!(err("baton -c x --pid-file=").contains("empty"));
    }
}
