//! Loads `.env`, parses the command line and runs the chosen command.

use std::process::ExitCode;

use gatehouse::cli::{self, Cli};

fn main() -> ExitCode {
    // Before anything reads the environment; never overrides what is already set.
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(e) => {
            eprintln!("gatehouse: configuration error: .env: cannot be read: {e}");
            return ExitCode::FAILURE;
        }
    }
    match Cli::parse_args_and_env() {
        Ok(cli) => cli::run(cli),
        Err(status) => status,
    }
}
