//! The command line: `gatehouse [serve]`, `migrate`, `user …` and
//! `sessions prune`, each one function over the same accounts domain the
//! pages use (one password policy, one way to revoke).

use gatehouse_core::ids::Email;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::config::{self, DatabaseSettings, Settings};
use crate::mail::{Mail, PasskeyChange, TwoFactorChange};
use crate::startup::{self, Application, StartupError};
use gatehouse_core::accounts::{Accounts, NewAccount, RegisterError, Requester};
use gatehouse_core::db::Pooler;

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
    /// Apply pending database migrations and list them (for deploy pipelines
    /// that run with MIGRATE_ON_START=false)
    Migrate(MigrateArgs),
    /// Create, list, disable or enable accounts
    User(UserArgs),
    /// Maintain sessions
    Sessions(SessionsArgs),
}

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseSettings,

    /// Whether `--database-url` was given on the command line (found after parsing).
    #[arg(skip)]
    pub database_url_on_command_line: bool,
}

impl MigrateArgs {
    /// The database to migrate, reached directly: `--database-url` from the
    /// command line, else `MIGRATION_DATABASE_URL`, else `DATABASE_URL`
    /// unless that goes through a transaction-mode pooler (which cannot hold
    /// the lock that lets instances migrate in turn).
    pub fn direct_database(self) -> Result<DatabaseSettings, String> {
        let mut database = self.database;
        if !self.database_url_on_command_line {
            match database.migration_database_url.take() {
                Some(url) => database.database_url = url,
                None if database.db_pooler == Pooler::Transaction => {
                    return Err(
                        "DB_POOLER=transaction: DATABASE_URL goes through the pooler, which cannot \
                         hold the migrations' lock; give `gatehouse migrate` a direct PostgreSQL URL \
                         with --database-url or MIGRATION_DATABASE_URL"
                            .to_owned(),
                    );
                }
                None => {}
            }
        }
        database.db_pooler = Pooler::None;
        Ok(database)
    }
}

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub action: UserAction,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an account. The password is read from standard input, or asked
    /// for without echo on a terminal; the same rules as the form apply
    Create {
        /// The account's e-mail address
        #[arg(long)]
        email: String,
        /// The name shown on its pages
        #[arg(long)]
        name: String,
    },
    /// List every account: whether its address is confirmed, whether it
    /// has two-factor sign-in, its passkeys, its state and its number of
    /// live sessions
    List,
    /// Count an account's address as confirmed (the operator vouches for
    /// it); the audit trail records it
    Verify {
        /// The account's e-mail address
        email: String,
    },
    /// Turn off two-factor sign-in for an account whose person lost both
    /// the authenticator and the recovery codes (support staff, once they
    /// know who is asking); its trusted devices are forgotten, the audit
    /// trail records it and a notice is mailed to the account
    TwoFactorReset {
        /// The account's e-mail address
        email: String,
    },
    /// Remove every passkey of an account whose person lost them (support
    /// staff, once they know who is asking); the password, and two-factor
    /// sign-in when on, still sign in; the audit trail records it and a
    /// notice is mailed to the account
    PasskeysReset {
        /// The account's e-mail address
        email: String,
    },
    /// Disable an account: it cannot sign in, and its sessions end at once
    Disable {
        /// The account's e-mail address
        email: String,
    },
    /// Let a disabled account sign in again
    Enable {
        /// The account's e-mail address
        email: String,
    },
    /// Delete an account with its sessions, history and reset links, for
    /// good; its sessions end at once. Asks for the address again unless
    /// --yes
    Delete {
        /// The account's e-mail address
        email: String,
        /// Do not ask for the address again
        #[arg(long)]
        yes: bool,
    },
    /// Print a one-time password-reset link for an account (for support
    /// staff); the audit trail records it
    ResetLink {
        /// The account's e-mail address
        email: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    pub action: SessionsAction,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Subcommand)]
pub enum SessionsAction {
    /// Delete sessions that ended longer ago than any rule looks back, and
    /// sign-in throttling rows past their window
    Prune,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub settings: Settings,
}

impl Cli {
    /// The parsed command, with what clap's derive cannot record: whether
    /// `migrate --database-url` was typed on the command line (it then wins
    /// over `MIGRATION_DATABASE_URL`) or came from `DATABASE_URL`.
    fn from_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut cli = Self::from_arg_matches(matches)?;
        if let Some(Command::Migrate(args)) = &mut cli.command {
            args.database_url_on_command_line = matches
                .subcommand_matches("migrate")
                .and_then(|m| m.value_source("database_url"))
                == Some(ValueSource::CommandLine);
        }
        Ok(cli)
    }

    /// Parses the process's arguments and environment. On failure (or for
    /// `--help` and `--version`) prints what clap prints and returns the exit
    /// status: 0 for help, 2 for usage errors. A bad setting is reported by
    /// its variable (`PORT: …`).
    pub fn parse_args_and_env() -> Result<Self, ExitCode> {
        let parsed = config::ignore_blank_env(Self::command())
            .try_get_matches()
            .and_then(|matches| Self::from_matches(&matches));
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
        Some(Command::Migrate(args)) => migrate(args),
        Some(Command::User(args)) => user(args.action, &args.settings),
        Some(Command::Sessions(args)) => sessions(args.action, &args.settings),
    }
}

/// Who the audit trail says did an operator's change.
fn operator() -> Requester {
    Requester {
        ip: "local".to_owned(),
        user_agent: "gatehouse command line".to_owned(),
    }
}

/// Runs an operator's command on a runtime of its own; its errors are printed
/// once, on stderr, and end the process with status 1.
fn operate<F>(filter: &str, command: F) -> ExitCode
where
    F: std::future::Future<Output = Result<(), String>>,
{
    crate::telemetry::init(filter);
    match actix_web::rt::System::new().block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Messages name addresses and other values typed or stored by
            // someone else; only their own line breaks are kept.
            let lines: Vec<String> = message.split('\n').map(shown).collect();
            eprintln!("gatehouse: {}", lines.join("\n"));
            ExitCode::FAILURE
        }
    }
}

/// `text` as an operator's terminal should show it: printable characters
/// (letters of every script, punctuation, quotes) as they are; control
/// characters (ESC, BEL, CR, …), invisible ones (bidirectional overrides,
/// zero-width characters) and the backslash escaped the way Rust writes
/// them (`\u{1b}`, `\r`, `\\`). A name or an address from the database can
/// then neither move the cursor, nor recolour or rewrite the listing, nor
/// pass for another row.
fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // `escape_debug` also escapes quotes, which a terminal shows harmlessly.
    for piece in text.split_inclusive(['"', '\'']) {
        let body = piece.strip_suffix(['"', '\'']).unwrap_or(piece);
        out.extend(body.escape_debug());
        out.push_str(&piece[body.len()..]);
    }
    out
}

/// `gatehouse migrate`: applies pending migrations and lists them.
pub fn migrate(args: MigrateArgs) -> ExitCode {
    operate("warn", async move {
        let database = args.direct_database()?;
        let (_, applied) = startup::open_database(&database, true)
            .await
            .map_err(|e| e.to_string())?;
        if applied.is_empty() {
            println!("no pending migrations");
        }
        for version in applied {
            println!("applied {version}");
        }
        Ok(())
    })
}

async fn accounts(settings: &Settings) -> Result<Accounts, String> {
    startup::operator_accounts(settings)
        .await
        .map_err(|e: StartupError| e.to_string())
}

/// `gatehouse user …`.
pub fn user(action: UserAction, settings: &Settings) -> ExitCode {
    operate("warn", async move {
        match action {
            UserAction::Create { email, name } => {
                let password = read_password()?;
                let accounts = accounts(settings).await?;
                let account = NewAccount {
                    name,
                    email: Email::new(&email),
                    password: password.into(),
                };
                match accounts.create_user(account, &operator()).await {
                    Ok(created) => {
                        println!("created {}", shown(created.email.as_str()));
                        Ok(())
                    }
                    Err(RegisterError::Invalid(errors)) => Err([
                        errors.name.map(|m| format!("--name: {m}")),
                        errors.email.map(|m| format!("--email: {m}")),
                        errors.password.map(|m| format!("password: {m}")),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("\n")),
                    Err(RegisterError::EmailTaken { email }) => {
                        Err(format!("--email: an account with {email} already exists"))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            UserAction::List => {
                let users = accounts(settings)
                    .await?
                    .list_users()
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "{:<40} {:<30} {:<20} {:<9} {:<11} {:<9} {:<9} SESSIONS",
                    "EMAIL", "NAME", "CREATED (UTC)", "VERIFIED", "TWO-FACTOR", "PASSKEYS", "STATE"
                );
                let yes_no = |b: bool| if b { "yes" } else { "no" };
                for u in users {
                    let state = if u.disabled { "disabled" } else { "active" };
                    let created = u.created_at.format("%Y-%m-%d %H:%M");
                    println!(
                        "{:<40} {:<30} {:<20} {:<9} {:<11} {:<9} {:<9} {}",
                        shown(u.email.as_str()),
                        shown(&u.name),
                        created,
                        yes_no(u.verified),
                        yes_no(u.two_factor),
                        u.passkeys,
                        state,
                        u.live_sessions
                    );
                }
                Ok(())
            }
            UserAction::Verify { email } => {
                let email = Email::new(&email);
                let changed = accounts(settings)
                    .await?
                    .verify_user(&email, &operator())
                    .await
                    .map_err(|e| e.to_string())?;
                if changed {
                    println!("verified {}", shown(email.as_str()));
                } else {
                    println!("{} was already verified", shown(email.as_str()));
                }
                Ok(())
            }
            UserAction::TwoFactorReset { email } => {
                let email = Email::new(&email);
                let notice = accounts(settings)
                    .await?
                    .reset_two_factor(&email, &operator())
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(notice) = notice else {
                    println!("{} has no two-factor sign-in", shown(email.as_str()));
                    return Ok(());
                };
                let origin = settings.http.public_origin(settings.http.port);
                mail_now(
                    settings,
                    Mail::TwoFactorChanged {
                        to: notice.email.to_string(),
                        name: notice.name,
                        change: TwoFactorChange::ResetBySupport,
                        account: format!("{origin}/account"),
                    },
                )
                .await?;
                println!(
                    "two-factor sign-in turned off for {}; a notice was mailed",
                    shown(email.as_str())
                );
                Ok(())
            }
            UserAction::PasskeysReset { email } => {
                let email = Email::new(&email);
                let (removed, notice) = accounts(settings)
                    .await?
                    .reset_passkeys(&email, &operator())
                    .await
                    .map_err(|e| e.to_string())?;
                if removed == 0 {
                    println!("{} has no passkeys", shown(email.as_str()));
                    return Ok(());
                }
                let origin = settings.http.public_origin(settings.http.port);
                mail_now(
                    settings,
                    Mail::PasskeyChanged {
                        to: notice.email.to_string(),
                        name: notice.name,
                        change: PasskeyChange::ResetBySupport(removed),
                        passkeys: format!("{origin}/account/passkeys"),
                    },
                )
                .await?;
                println!(
                    "{removed} passkey(s) removed from {}; a notice was mailed",
                    shown(email.as_str())
                );
                Ok(())
            }
            UserAction::Disable { email } => {
                let ended = accounts(settings)
                    .await?
                    .disable_user(&Email::new(&email), &operator())
                    .await
                    .map_err(|e| e.to_string())?;
                println!("disabled {}; {ended} session(s) ended", shown(&email));
                Ok(())
            }
            UserAction::Delete { email, yes } => {
                if !yes {
                    confirm_address(&email)?;
                }
                let deleted = accounts(settings)
                    .await?
                    .delete_user(&Email::new(&email), &operator())
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "deleted {}; {} session(s) ended",
                    shown(deleted.email.as_str()),
                    deleted.sessions_ended
                );
                Ok(())
            }
            UserAction::ResetLink { email } => {
                let link = accounts(settings)
                    .await?
                    .operator_reset_link(&Email::new(&email), &operator())
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "{}",
                    link.url(&settings.http.public_origin(settings.http.port))
                );
                eprintln!(
                    "gatehouse: a one-time link for {}, valid for {} minutes; it ends older links",
                    shown(link.email.as_str()),
                    link.expires_in.as_secs().div_ceil(60)
                );
                Ok(())
            }
            UserAction::Enable { email } => {
                accounts(settings)
                    .await?
                    .enable_user(&Email::new(&email), &operator())
                    .await
                    .map_err(|e| e.to_string())?;
                println!("enabled {}", shown(&email));
                Ok(())
            }
        }
    })
}

/// Sends one mail and waits until it is delivered (or given up on).
async fn mail_now(settings: &Settings, mail: Mail) -> Result<(), String> {
    let transport = crate::mail::Transport::from_url(settings.mail_url(), settings.is_production())
        .map_err(|e| e.to_string())?;
    let (mailer, task) =
        crate::mail::Mailer::start(transport, settings.mail_from()).map_err(|e| e.to_string())?;
    mailer.send(mail, "cli");
    drop(mailer);
    task.await.map_err(|e| e.to_string())
}

/// `gatehouse sessions prune`.
pub fn sessions(action: SessionsAction, settings: &Settings) -> ExitCode {
    operate("warn", async move {
        match action {
            SessionsAction::Prune => {
                let pruned = accounts(settings)
                    .await?
                    .prune()
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "deleted {} ended session(s), {} throttle row(s), {} old reset request(s), \
                     {} old confirmation link(s), {} unconfirmed registration(s), \
                     {} expired two-factor sign-in(s), {} expired trusted device(s) and \
                     {} unfinished passkey request(s)",
                    pruned.sessions,
                    pruned.throttle_rows,
                    pruned.reset_requests,
                    pruned.confirmations,
                    pruned.pending_registrations,
                    pruned.challenges,
                    pruned.trusted_devices,
                    pruned.passkey_ceremonies
                );
                Ok(())
            }
        }
    })
}

/// The new account's password: from a hidden prompt on a terminal, else the
/// first line of standard input.
fn read_password() -> Result<String, String> {
    use std::io::{BufRead as _, IsTerminal as _};
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        rpassword::prompt_password("Password for the new account: ")
            .map_err(|e| format!("cannot read the password: {e}"))?
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        return Err("no password given (on standard input, or at the prompt)".to_owned());
    }
    Ok(password)
}

/// Asks for `email` again (a line of standard input, after a prompt on a
/// terminal) and refuses unless it names the same address.
fn confirm_address(email: &str) -> Result<(), String> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!(
            "This deletes {} for good. Type the address again to confirm: ",
            shown(email)
        );
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the confirmation: {e}"))?;
    if Email::new(line.trim()) != Email::new(email) {
        return Err(format!(
            "not deleted: the address typed does not match {} (or pass --yes)",
            shown(email)
        ));
    }
    Ok(())
}

/// Serves until stopped.
pub fn serve(settings: Settings) -> ExitCode {
    let problems = settings.problems();
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("gatehouse: configuration error: {problem}");
        }
        return ExitCode::FAILURE;
    }
    // Held until `serve` returns: dropping it writes the last lines.
    let _log = crate::telemetry::init_buffered(&settings.rust_log);
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

        // The settings were found at all, so equal sets are not two empty ones.
        assert!(declared.contains("DATABASE_URL"), "{declared:?}");
        let undocumented: Vec<_> = declared.difference(&documented).collect();
        let undeclared: Vec<_> = documented.difference(&declared).collect();
        assert!(
            undocumented.is_empty() && undeclared.is_empty(),
            "declared but missing from .env.example: {undocumented:?}; \
             in .env.example but not declared: {undeclared:?}"
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

    fn migrate_args(args: &[&str]) -> MigrateArgs {
        let matches = Cli::command().try_get_matches_from(args).unwrap();
        let Some(Command::Migrate(migrate)) = Cli::from_matches(&matches).unwrap().command else {
            panic!("migrate expected")
        };
        migrate
    }

    #[test]
    fn migrate_through_a_transaction_pooler_needs_a_direct_url() {
        let pooled = "postgres://app@127.0.0.1:6432/gatehouse";
        let direct = "postgres://app@127.0.0.1:5432/gatehouse";
        let base = ["gatehouse", "migrate", "--db-pooler", "transaction"];

        let mut args = base.to_vec();
        args.extend(["--database-url", direct]);
        let database = migrate_args(&args).direct_database().unwrap();
        assert_eq!(database.database_url, direct);
        assert_eq!(database.db_pooler, Pooler::None);

        let mut args = base.to_vec();
        args.extend(["--migration-database-url", direct]);
        let mut migrate = migrate_args(&args);
        migrate.database.database_url = pooled.to_owned();
        let database = migrate.direct_database().unwrap();
        assert_eq!(database.database_url, direct);

        let mut migrate = migrate_args(&base);
        migrate.database.database_url = pooled.to_owned();
        let refused = migrate.direct_database().unwrap_err();
        assert!(refused.contains("MIGRATION_DATABASE_URL"), "{refused}");
        assert!(refused.contains("--database-url"), "{refused}");
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
    fn printed_values_keep_printable_text_and_escape_the_rest() {
        assert_eq!(
            shown("Zoë \"Zed\" O'Hara, 日本"),
            "Zoë \"Zed\" O'Hara, 日本"
        );
        assert_eq!(shown("Eve\u{1b}[2J\u{7}\rroot"), r"Eve\u{1b}[2J\u{7}\rroot");
        assert_eq!(shown("a\tb\nc"), r"a\tb\nc");
        assert_eq!(shown("admin\u{202e}moc"), r"admin\u{202e}moc");
        assert_eq!(shown(r"not\u{1b}"), r"not\\u{1b}");
        assert_eq!(shown("'\""), "'\"");
        assert_eq!(shown(""), "");
    }

    #[test]
    fn a_bad_value_on_the_command_line_names_its_variable() {
        let err = Cli::try_parse_from(["gatehouse", "serve", "--port", "eighty"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("<PORT>"), "{err}");
    }
}
