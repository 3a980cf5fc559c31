//! The command line: `gatehouse [serve]`, each command one function over the
//! same settings.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::config::{self, Settings};
use crate::startup::Application;

/// Browser sign-in done right. Every setting can also be given in the
/// environment or in `.env`; the command line wins, then the environment.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the site (the default)
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub settings: Settings,
}

impl Cli {
    /// Parses the process's arguments and environment. On failure (or for
    /// `--help` and `--version`) prints what clap prints and returns the exit
    /// status: 0 for help, 2 for usage errors. A bad setting is reported by
    /// its variable (`PORT: …`).
    pub fn parse_args_and_env() -> Result<Self, ExitCode> {
        let parsed = config::ignore_blank_env(Self::command())
            .try_get_matches()
            .and_then(|matches| Self::from_arg_matches(&matches));
        parsed.map_err(|e| {
            if matches!(
                e.kind(),
                ErrorKind::ValueValidation | ErrorKind::InvalidValue
            ) {
                eprintln!(
                    "gatehouse: configuration error: {}",
                    config::ConfigError::from_clap(&e)
                );
            } else if let Err(io) = e.print() {
                eprintln!("gatehouse: {io}");
            }
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
        })
    }
}

/// Runs the chosen command.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        None => serve(cli.settings),
        Some(Command::Serve(args)) => serve(args.settings),
    }
}

/// Serves until stopped.
pub fn serve(settings: Settings) -> ExitCode {
    if let Err(e) = settings.check() {
        return configuration_error(&e);
    }
    crate::telemetry::init(&settings.rust_log);
    actix_web::rt::System::new().block_on(async move {
        let app = match Application::build(settings).await {
            Ok(app) => app,
            Err(e) => {
                // Once, on stderr, whatever RUST_LOG says.
                eprintln!("gatehouse: start-up failed: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(address = %app.address(), public_origin = %app.public_url(), "listening");
        match app.run_until_stopped().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "server stopped with an error");
                ExitCode::FAILURE
            }
        }
    })
}

fn configuration_error(e: &config::ConfigError) -> ExitCode {
    eprintln!("gatehouse: configuration error: {e}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::error::ErrorKind;

    use super::*;

    fn declared_variables() -> BTreeSet<String> {
        Cli::command()
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn env_example_documents_exactly_the_declared_variables() {
        let example = include_str!("../.env.example");
        let documented: BTreeSet<String> = example
            .lines()
            .map(|line| line.trim_start_matches('#').trim_start())
            .filter_map(|line| line.split_once('=').map(|(name, _)| name))
            .filter(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            })
            .map(str::to_owned)
            .collect();
        let declared = declared_variables();

        assert_eq!(declared.len(), 24, "{declared:?}");
        let undocumented: Vec<_> = declared.difference(&documented).collect();
        let undeclared: Vec<_> = documented.difference(&declared).collect();
        assert!(
            undocumented.is_empty(),
            "missing from .env.example: {undocumented:?}"
        );
        assert!(
            undeclared.is_empty(),
            "in .env.example but not declared: {undeclared:?}"
        );
    }

    #[test]
    fn both_helps_list_every_variable() {
        for args in [
            &["gatehouse", "--help"][..],
            &["gatehouse", "serve", "--help"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::DisplayHelp);
            let help = err.to_string();
            for var in declared_variables() {
                assert!(help.contains(&format!("[env: {var}]")), "{args:?}: {var}");
            }
            assert!(help.contains("[default: 8080]"), "{help}");
        }
    }

    #[test]
    fn serve_help_never_shows_the_value_of_a_set_variable() {
        // The test cannot set one of our variables without `unsafe`, so point
        // JWT_SECRET's declaration at a variable that is always set.
        let path = std::env::var("PATH").expect("PATH is set");
        let cmd = Cli::command().mut_subcommand("serve", |serve| {
            serve.mut_arg("jwt_secret", |arg| arg.env("PATH"))
        });

        let err = cmd
            .try_get_matches_from(["gatehouse", "serve", "--help"])
            .unwrap_err();

        let help = err.to_string();
        assert!(help.contains("[env: PATH]"), "{help}");
        assert!(!help.contains(&path), "{help}");
    }

    #[test]
    fn no_command_serves() {
        let cli = Cli::try_parse_from(["gatehouse"]).unwrap();
        assert!(cli.command.is_none());
        let cli = Cli::try_parse_from(["gatehouse", "serve", "--port", "0"]).unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(args.settings.http.port, 0);
    }

    #[test]
    fn an_unknown_command_is_a_usage_error() {
        let err = Cli::try_parse_from(["gatehouse", "frobnicate"]).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::InvalidSubcommand | ErrorKind::UnknownArgument
            ),
            "{:?}",
            err.kind()
        );
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn settings_before_the_command_are_refused_rather_than_ignored() {
        assert!(Cli::try_parse_from(["gatehouse", "--port", "1", "serve"]).is_err());
    }

    #[test]
    fn a_bad_value_on_the_command_line_names_its_variable() {
        let err = Cli::try_parse_from(["gatehouse", "serve", "--port", "eighty"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("<PORT>"), "{err}");
    }
}
