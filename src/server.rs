//! Server start-up (in progress).
use crate::cli::Options;
use crate::config::Bootstrap;

/// Runs the proxy until it exits.
pub fn run(_opts: Options, _b: Bootstrap) -> Result<(), String> {
    Err("serving is not implemented yet".into())
}
