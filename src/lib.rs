//! baton: an HTTP/1.1 reverse proxy that reads Envoy v3 bootstrap YAML and hands its listeners
//! (and, later, its live connections) to a new process without dropping any.

pub mod access_log;
pub mod admin;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod context;
#[doc(hidden)]
pub mod fds;
pub mod fuzz_harness;
pub mod hot_restart;
pub mod http;
pub mod observe;
pub mod reactor;
pub mod route;
pub mod server;
pub mod stats;
pub mod util;

/// The binary's version, exchanged in the hot-restart handshake.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Sets up env_logger: `-l LEVEL` wins over RUST_LOG; neither means info.
pub fn init_logging(level: Option<&str>) {
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if let Some(l) = level {
        b.parse_filters(cli::log_filter(l));
    }
    b.format_timestamp_millis();
    let _ = b.try_init();
}

/// Loads the bootstrap the options name: `-c FILE`, `--config-yaml`, or both (YAML merged over
/// the file, as Envoy does).
pub fn load_config(opts: &cli::Options) -> Result<config::Bootstrap, config::ConfigErrors> {
    config::load(opts.config_path.as_deref(), opts.config_yaml.as_deref())
}
