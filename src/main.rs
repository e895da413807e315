//! baton: parse the command line, load the config, run. Nothing else lives here.

use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match baton::cli::utf8_args(std::env::args_os()).and_then(|a| baton::cli::parse(&a))
    {
        Ok(baton::cli::Command::Help) => {
            print!("{}", baton::cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(baton::cli::Command::Version) => {
            println!("baton {} (commit {})", baton::VERSION, baton::GIT_COMMIT);
            return ExitCode::SUCCESS;
        }
        Ok(baton::cli::Command::Run(o)) => o,
        Err(e) => {
            eprintln!("baton: {e}\n\n{}", baton::cli::USAGE);
            return ExitCode::from(1);
        }
    };
    if let Err(e) = baton::init_logging(&opts) {
        eprintln!("baton: {e}");
        return ExitCode::from(1);
    }
    let name = opts
        .config_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "--config-yaml".to_string());
    let bootstrap = match baton::load_config(&opts) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("baton: configuration '{name}': {e}");
            return ExitCode::from(1);
        }
    };
    if opts.mode == baton::cli::Mode::Validate {
        println!("configuration '{name}' OK");
        return ExitCode::SUCCESS;
    }
    match baton::server::run(*opts, bootstrap) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baton: {e}");
            ExitCode::from(1)
        }
    }
}
