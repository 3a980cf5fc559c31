//! Assembly: pool, keys and settings are built once, then shared with every
//! worker through `web::Data`.

mod dev_secret;
mod revocations;

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use crate::config::{ConfigError, DatabaseSettings, Settings};
use crate::errors::AppError;
use crate::http;
use crate::http::cookies::{self, CookieConfig};
use crate::http::on_response::OnResponse;
use crate::http::site::{Site, TrustedProxies};
use crate::mail::{self, Mailer};
use crate::routes;
use crate::telemetry;
use gatehouse_core::accounts::{
    Accounts, PasskeyPolicy, ResetPolicy, SessionPolicy, Sessions, TwoFactorPolicy, VerifyPolicy,
};
use gatehouse_core::auth::csrf::CsrfKey;
use gatehouse_core::auth::jwt::JwtKeys;
use gatehouse_core::auth::password::PasswordHasher;
use gatehouse_core::auth::sealed::SealingKey;
use gatehouse_core::auth::throttle::ThrottlePolicy;
use gatehouse_core::clock::Clock;
use gatehouse_core::db::{self, DbPool};
use gatehouse_core::secret::Secret;

pub use dev_secret::{ensure_development_secret, secret_file_for};
use revocations::{listen_for_revocations, poll_revocations};

/// Largest accepted request body (forms are far smaller).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::DbSetupError),
    #[error("PORT {port} is already in use")]
    PortInUse { port: u16 },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot prepare password hashing: {0}")]
    Hashing(#[from] gatehouse_core::auth::password::HashError),
    #[error("cannot load revoked sessions: {0}")]
    Revocations(#[from] gatehouse_core::accounts::ServiceError),
    #[error("start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Mail(#[from] crate::mail::MailConfigError),
}

pub struct Application {
    mailer: Mailer,
    mail_task: tokio::task::JoinHandle<()>,
    address: std::net::SocketAddr,
    /// Where revocations made elsewhere are `LISTEN`ed for, if anywhere.
    listen_url: Option<String>,
    /// Whether other instances may share the database (PostgreSQL).
    shared_database: bool,
    port: u16,
    pool: DbPool,
    public_url: String,
    server: Server,
    sessions: web::Data<Sessions>,
    poll_interval: Duration,
}

impl Application {
    /// Opens and migrates the database, binds the listener and builds the server.
    /// In development without `JWT_SECRET`, the signing secret comes from (or
    /// is created in) a file beside the database; see [`ensure_development_secret`].
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// [`Self::build`] on `clock`: tests pass one they can move forward.
    pub async fn build_with_clock(
        mut settings: Settings,
        clock: Clock,
    ) -> Result<Self, StartupError> {
        if let Some(file) = ensure_development_secret(&mut settings)? {
            tracing::warn!(
                file = %file.display(),
                "JWT_SECRET is unset: generated a development signing secret and kept it in this file; \
                 set JWT_SECRET in production"
            );
        }
        let jwt_secret = settings
            .sessions
            .jwt_secret
            .clone()
            .ok_or_else(|| ConfigError::new("JWT_SECRET", missing_secret_reason(&settings)))?;
        let (pool, _) =
            open_database(&settings.database, settings.database.migrate_on_start).await?;
        let hasher = {
            let cost = settings.sessions.bcrypt_cost;
            tokio::task::spawn_blocking(move || PasswordHasher::new(cost)).await??
        };

        let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AddrInUse => StartupError::PortInUse {
                    port: settings.http.port,
                },
                _ => StartupError::Bind {
                    addr: format!("{}:{}", settings.http.host, settings.http.port),
                    source,
                },
            })?;
        let address = listener.local_addr()?;
        let port = address.port();
        let public_url = settings.http.public_origin(port);

        let sessions = web::Data::new(Sessions::new(
            pool.clone(),
            JwtKeys::new(
                &jwt_secret,
                &settings.sessions.jwt_previous_secrets,
                settings.sessions.access_token_ttl,
            ),
            session_policy(&settings),
            clock.clone(),
        ));
        let accounts = web::Data::new(
            Accounts::new(
                pool.clone(),
                hasher,
                session_policy(&settings),
                throttle_policy(&settings),
                reset_policy(&settings),
                verify_policy(&settings),
                clock,
            )
            .with_two_factor(two_factor_policy(&settings, &jwt_secret))
            .with_passkeys(passkey_policy(&settings, &public_url)?),
        );
        if two_factor_locked_out(&settings, &accounts).await? {
            return Err(ConfigError::new(
                "TOTP_ENCRYPTION_KEY",
                "is required in production once any account has two-factor sign-in on \
                 (its secrets cannot be read without it)",
            )
            .into());
        }
        // Revocations from before this start that still matter.
        let loaded = sessions.poll_revocations().await?;
        tracing::debug!(loaded, "revoked sessions loaded");

        let site = web::Data::new(Site {
            cookies: CookieConfig::with_same_site(
                settings.cookie_secure(),
                settings.http.cookie_samesite,
                settings.sessions.access_token_ttl,
            ),
            csrf: CsrfKey::derive(&jwt_secret),
            origin: public_url.clone(),
            aliases: match settings.http.public_url {
                Some(_) => Vec::new(),
                None => Site::loopback_aliases(&settings.http.host, port, &public_url),
            },
            proxies: TrustedProxies(settings.http.trusted_proxies.clone()),
            production: settings.is_production(),
            cors_origins: settings.http.cors_origins.clone(),
        });
        let transport = mail::Transport::from_url(settings.mail_url(), settings.is_production())?;
        if let mail::Transport::Files(dir) = &transport {
            if settings.is_production() {
                tracing::warn!(dir = %dir.display(), "MAIL_URL is file://: mail is only written to files, for another program to deliver");
            } else {
                tracing::info!(dir = %dir.display(), "mail is written as .eml files (set MAIL_URL to send it)");
            }
        }
        let (mailer, mail_task) = Mailer::start(transport, settings.mail_from())?;
        let mail_data = web::Data::new(mailer.clone());
        let production = settings.is_production();
        let cors_origins = settings.http.cors_origins.clone();
        let app_sessions = sessions.clone();

        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(accounts.clone())
                .app_data(app_sessions.clone())
                .app_data(site.clone())
                .app_data(mail_data.clone())
                .app_data(
                    web::FormConfig::default()
                        .limit(MAX_BODY_BYTES)
                        .error_handler(|e, _| AppError::from_form(e.into()).into()),
                )
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .app_data(web::QueryConfig::default().error_handler(|_, _| {
                    AppError::BadRequest("The address has a malformed query string.").into()
                }))
                // After the handler, in this order: the cookies extractors
                // queued, the error page, the security headers.
                .wrap(OnResponse::new((
                    cookies::ApplyQueued,
                    http::ErrorPages,
                    http::headers::SecurityHeaders::new(production),
                )))
                .wrap(http::HeadAsGet)
                .wrap(telemetry::RequestLog)
                .configure(|cfg| routes::configure(cfg, &cors_origins))
        })
        .client_request_timeout(Duration::from_secs(10))
        .client_disconnect_timeout(Duration::from_secs(2))
        .keep_alive(Duration::from_secs(30))
        .max_connections(10_000)
        .shutdown_timeout(10);
        if let Some(workers) = settings.http.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            mailer,
            mail_task,
            address,
            listen_url: settings.database.listen_url().map(str::to_owned),
            shared_database: settings.database.is_postgres(),
            port,
            pool,
            public_url,
            server,
            sessions,
            poll_interval: settings.sessions.revocation_poll_interval,
        })
    }

    /// The address the listener is bound to.
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The origin the site believes it is served from.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The pool, for tests and operators that look at the rows directly.
    pub fn pool(&self) -> DbPool {
        self.pool.clone()
    }

    /// Serves until the server stops, taking in revocations made elsewhere
    /// meanwhile: pushed (PostgreSQL `LISTEN`) and polled (the safety net).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let every = humantime::format_duration(self.poll_interval);
        match &self.listen_url {
            Some(url) => tracing::info!(
                listen = %db::describe(url),
                poll_every = %every,
                "revocations made elsewhere: pushed over LISTEN, and polled"
            ),
            None if self.shared_database => tracing::info!(
                poll_every = %every,
                "revocations made elsewhere: polled (no LISTEN: set REVOCATION_LISTEN_URL to a direct PostgreSQL URL to have them pushed)"
            ),
            None => {}
        }
        let listener = self
            .listen_url
            .as_deref()
            .and_then(db::notify::RevocationListener::for_url)
            .map(|listener| tokio::spawn(listen_for_revocations(self.sessions.clone(), listener)));
        let poller = tokio::spawn(poll_revocations(self.sessions, self.poll_interval));
        let result = self.server.await;
        poller.abort();
        if let Some(listener) = listener {
            listener.abort();
        }
        // Every request has finished: send what they queued, then stop.
        drop(self.mailer);
        if tokio::time::timeout(Duration::from_secs(30), self.mail_task)
            .await
            .is_err()
        {
            tracing::warn!("mail still queued at shutdown was not sent");
        }
        result
    }
}

/// Opens the database named by the settings, off the async workers. With
/// `migrate`, pending migrations are applied (and logged); without, a
/// database with pending migrations is refused, naming them.
/// Returns the pool and the versions of the migrations it applied.
pub async fn open_database(
    database: &DatabaseSettings,
    migrate: bool,
) -> Result<(DbPool, Vec<String>), StartupError> {
    if migrate && database.db_pooler == db::Pooler::Transaction {
        return Err(ConfigError::new(
            "MIGRATE_ON_START",
            "migrations take a session-level lock, which a transaction-mode pooler \
             (DB_POOLER=transaction) cannot hold: run `gatehouse migrate` with a direct \
             URL (--database-url or MIGRATION_DATABASE_URL) and set MIGRATE_ON_START=false",
        )
        .into());
    }
    let url = database.database_url.clone();
    let options = db::PoolOptions {
        size: database.db_pool_size,
        timeout: database.db_pool_timeout,
        startup_timeout: database.db_startup_timeout,
        pooler: database.db_pooler,
    };
    tracing::info!(database = %db::describe(&url), "opening the database");
    let (pool, applied) = tokio::task::spawn_blocking(move || -> Result<_, db::DbSetupError> {
        let pool = db::build_pool(&url, options)?;
        if migrate {
            let applied = db::run_migrations(&pool)?;
            return Ok((pool, applied));
        }
        let pending = db::pending_migrations(&pool)?;
        if !pending.is_empty() {
            return Err(db::DbSetupError::Pending(pending));
        }
        Ok((pool, Vec::new()))
    })
    .await??;
    if applied.is_empty() {
        tracing::info!("database schema is up to date");
    } else {
        tracing::info!(migrations = %applied.join(", "), "migrations applied");
    }
    Ok((pool, applied))
}

/// The accounts domain for an operator's command: the database as it is (a
/// database with pending migrations is refused, naming them), the configured
/// bcrypt cost and policies. Operator commands issue no tokens, so they build
/// no [`Sessions`] and need no `JWT_SECRET`.
pub async fn operator_accounts(settings: &Settings) -> Result<Accounts, StartupError> {
    let (pool, _) = open_database(&settings.database, false).await?;
    let cost = settings.sessions.bcrypt_cost;
    let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(cost)).await??;
    Ok(Accounts::new(
        pool,
        hasher,
        session_policy(settings),
        throttle_policy(settings),
        reset_policy(settings),
        verify_policy(settings),
        Clock::system(),
    ))
}

/// Two-factor settings. Without `TOTP_ENCRYPTION_KEY`, production offers no
/// enrolment; development derives a key from the signing secret, so every
/// instance sharing that secret reads the same secrets.
fn two_factor_policy(settings: &Settings, jwt_secret: &Secret) -> TwoFactorPolicy {
    let key = match settings.totp_key() {
        Some(key) => Some(key),
        None if settings.is_production() => None,
        None => {
            tracing::warn!(
                "TOTP_ENCRYPTION_KEY is unset: two-factor secrets are sealed with a key derived \
                 from the JWT signing secret; set TOTP_ENCRYPTION_KEY in production"
            );
            Some(SealingKey::derived_from(jwt_secret))
        }
    };
    TwoFactorPolicy {
        key,
        step_up_max_age: settings.sessions.step_up_max_age,
        ..TwoFactorPolicy::default()
    }
}

/// The passkeys' relying party, from the site's origin (and
/// `WEBAUTHN_RP_ID`); start-up refuses an id the origin cannot use.
fn passkey_policy(settings: &Settings, public_url: &str) -> Result<PasskeyPolicy, ConfigError> {
    let rp_id = settings
        .http
        .webauthn_rp_id
        .as_deref()
        .filter(|id| !id.is_empty());
    PasskeyPolicy::for_origin(public_url, rp_id).map_err(|reason| {
        let var = if rp_id.is_some() {
            "WEBAUTHN_RP_ID"
        } else {
            "PUBLIC_URL"
        };
        ConfigError::new(var, reason)
    })
}

/// Whether production runs without a sealing key while accounts need one.
async fn two_factor_locked_out(
    settings: &Settings,
    accounts: &Accounts,
) -> Result<bool, StartupError> {
    if !settings.is_production() || settings.totp_key().is_some() {
        return Ok(false);
    }
    Ok(accounts.any_two_factor().await?)
}

fn session_policy(settings: &Settings) -> SessionPolicy {
    SessionPolicy {
        refresh_reuse_grace: settings.sessions.refresh_reuse_grace,
        max_age: settings.sessions.session_max_age,
        max_age_remember: settings.sessions.session_max_age_remember,
        idle_timeout: settings.sessions.session_idle_timeout,
        access_token_ttl: settings.sessions.access_token_ttl,
    }
}

fn reset_policy(settings: &Settings) -> ResetPolicy {
    ResetPolicy {
        ttl: settings.mail.password_reset_ttl,
        max_per_account_per_hour: settings.throttle.password_reset_max_per_hour,
        max_per_ip_per_hour: settings.throttle.password_reset_max_per_ip,
    }
}

fn verify_policy(settings: &Settings) -> VerifyPolicy {
    VerifyPolicy::new(settings.verify_mode(), settings.mail.verify_ttl)
}

fn throttle_policy(settings: &Settings) -> ThrottlePolicy {
    ThrottlePolicy {
        max_failures: settings.throttle.login_max_failures,
        max_failures_per_ip: settings.throttle.login_max_failures_per_ip,
        register_max_per_hour: settings.throttle.register_max_per_hour,
    }
}

/// Why serving needs a `JWT_SECRET` that was not given.
fn missing_secret_reason(settings: &Settings) -> &'static str {
    if settings.database.is_postgres() {
        "is required with a PostgreSQL DATABASE_URL: every instance sharing the database must \
         sign with the same key (the development secret file serves SQLite only)"
    } else {
        "is required in production"
    }
}
