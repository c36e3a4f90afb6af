//! The `meridian` command line: GitOps for global traffic.
//!
//! Argument wiring only: [`cli`] holds one file per command. Usage errors
//! exit 1, never clap's 2, which in meridian's contract means "changes
//! pending" or "drift found".

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use meridian::exit;

fn main() -> ExitCode {
    // Usage errors exit 1 (error), never clap's default 2, which in
    // meridian's contract means "changes pending" or "drift found".
    let parsed = cli::Cli::command()
        .try_get_matches()
        .and_then(|matches| cli::Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    let cli = match parsed {
        Ok((cli, matches)) => {
            if let Err(message) = cli::check_sim_flag(&cli, &matches) {
                eprintln!("error: {message}");
                return ExitCode::from(exit::ERROR);
            }
            cli
        }
        Err(error) => {
            let _ = error.print();
            let code = match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::ERROR,
            };
            return ExitCode::from(code);
        }
    };
    cli::init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match runtime.block_on(cli::run(&cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}
