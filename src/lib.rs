//! baton: an HTTP/1.1 reverse proxy that reads Envoy v3 bootstrap YAML and hands its listeners
//! (and, later, its live connections) to a new process without dropping any.

pub mod access_log;
pub mod admin;
pub mod chains;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod context;
#[doc(hidden)]
pub mod fds;
pub mod fuzz_harness;
pub mod grpc;
pub mod h2;
pub mod hot_restart;
pub mod http;
pub mod logging;
pub mod observe;
pub mod overload;
pub mod proxy_protocol;
pub mod reactor;
pub mod route;
pub mod server;
pub mod service;
pub mod stats;
pub mod tls;
pub mod tracing;
pub mod util;

/// The binary's version, exchanged in the hot-restart handshake.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (build.rs), or "unknown" outside a git checkout.
pub const GIT_COMMIT: &str = env!("BATON_GIT_COMMIT");

/// Sets up the process log from the options (level, `--log-path`, `--log-format`).
pub fn init_logging(opts: &cli::Options) -> Result<(), String> {
    logging::init(
        opts.log_level.as_deref(),
        opts.log_path.as_deref(),
        opts.log_format.as_ref(),
    )
}

/// Loads the bootstrap the options name: `-c FILE`, `--config-yaml`, or both (YAML merged over
/// the file, as Envoy does).
pub fn load_config(opts: &cli::Options) -> Result<config::Bootstrap, config::ConfigErrors> {
    config::load(opts.config_path.as_deref(), opts.config_yaml.as_deref())
}
