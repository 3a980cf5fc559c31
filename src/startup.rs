//! Assembly: pool, keys and settings are built once, then shared with every
//! worker through `web::Data`.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, from_fn};
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::accounts::{Accounts, SessionPolicy};
use crate::auth::jwt::JwtKeys;
use crate::auth::password::PasswordHasher;
use crate::auth::throttle::ThrottlePolicy;
use crate::config::Settings;
use crate::db::{self, DbPool};
use crate::errors::{AppError, render_error_page};
use crate::http::Site;
use crate::http::client::TrustedProxies;
use crate::http::cookies::{self, CookieConfig};
use crate::http::csrf::CsrfKey;
use crate::routes;
use crate::telemetry::RequestSpan;

/// Largest accepted request body (forms are far smaller).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::DbSetupError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot prepare password hashing: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
    #[error("cannot load revoked sessions: {0}")]
    Revocations(#[from] crate::accounts::Failure),
    #[error("start-up task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

pub struct Application {
    port: u16,
    public_url: String,
    server: Server,
    accounts: web::Data<Accounts>,
    poll_interval: Duration,
}

impl Application {
    /// Opens and migrates the database, binds the listener and builds the server.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let pool = {
            let url = settings.database_url.clone();
            tokio::task::spawn_blocking(move || -> Result<_, db::DbSetupError> {
                let pool = db::build_pool(&url)?;
                db::run_migrations(&pool)?;
                Ok(pool)
            })
            .await??
        };
        let hasher = {
            let cost = settings.bcrypt_cost;
            tokio::task::spawn_blocking(move || PasswordHasher::new(cost)).await??
        };

        let listener =
            TcpListener::bind((settings.host.as_str(), settings.port)).map_err(|source| {
                StartupError::Bind {
                    addr: format!("{}:{}", settings.host, settings.port),
                    source,
                }
            })?;
        let port = listener.local_addr()?.port();
        let public_url = settings.public_url.clone().unwrap_or_else(|| {
            match settings.host.parse::<std::net::Ipv6Addr>() {
                Ok(v6) => format!("http://[{v6}]:{port}"),
                Err(_) => format!("http://{}:{port}", settings.host),
            }
        });

        let accounts = web::Data::new(Accounts::new(
            pool,
            hasher,
            JwtKeys::new(
                &settings.jwt_secret,
                &settings.jwt_previous_secrets,
                settings.access_token_ttl,
            ),
            SessionPolicy {
                refresh_reuse_grace: settings.refresh_reuse_grace,
                max_age: settings.session_max_age,
                max_age_remember: settings.session_max_age_remember,
                idle_timeout: settings.session_idle_timeout,
            },
            ThrottlePolicy {
                max_failures: settings.login_max_failures,
                max_failures_per_ip: settings.login_max_failures_per_ip,
                register_max_per_hour: settings.register_max_per_hour,
            },
        ));
        // Revocations from before this start that still matter.
        let loaded = accounts.poll_revocations().await?;
        tracing::debug!(loaded, "revoked sessions loaded");

        let site = web::Data::new(Site {
            cookies: CookieConfig::new(settings.cookie_secure, settings.access_token_ttl),
            csrf: CsrfKey::derive(&settings.jwt_secret),
            origin: public_url.clone(),
            proxies: TrustedProxies(settings.trusted_proxies.clone()),
        });
        let production = settings.is_production();
        let app_accounts = accounts.clone();

        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_accounts.clone())
                .app_data(site.clone())
                .app_data(
                    web::FormConfig::default()
                        .limit(MAX_BODY_BYTES)
                        .error_handler(|e, _| AppError::from_form(e.into()).into()),
                )
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .app_data(web::QueryConfig::default().error_handler(|_, _| {
                    AppError::BadRequest("The address has a malformed query string.").into()
                }))
                .wrap(from_fn(cookies::apply_queued))
                .wrap(ErrorHandlers::new().default_handler(render_error_page))
                .wrap(security_headers(production))
                .wrap(TracingLogger::<RequestSpan>::new())
                .configure(routes::configure)
        })
        .client_request_timeout(Duration::from_secs(10))
        .client_disconnect_timeout(Duration::from_secs(2))
        .keep_alive(Duration::from_secs(30))
        .max_connections(10_000)
        .shutdown_timeout(10);
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            public_url,
            server,
            accounts,
            poll_interval: settings.revocation_poll_interval,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The origin the site believes it is served from.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub fn pool(&self) -> DbPool {
        self.accounts.pool().clone()
    }

    /// The domain this server runs on (tests call it directly).
    pub fn accounts(&self) -> web::Data<Accounts> {
        self.accounts.clone()
    }

    /// Serves until the server stops, polling revocations meanwhile.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let poller = tokio::spawn(poll_revocations(self.accounts, self.poll_interval));
        let result = self.server.await;
        poller.abort();
        result
    }
}

/// Keeps the revocation list current with revocations made by other
/// instances (or directly in the database).
async fn poll_revocations(accounts: web::Data<Accounts>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = accounts.poll_revocations().await {
            tracing::warn!(error = %e, "polling revoked sessions failed");
        }
    }
}

/// Headers on every response. `Cache-Control: no-store` is the default for
/// everything but `/static` (which sets its own), so no page that shows a
/// session or carries a CSRF token is ever cached.
fn security_headers(production: bool) -> DefaultHeaders {
    let mut headers = DefaultHeaders::new()
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
        ))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "same-origin"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
        ))
        .add((header::CACHE_CONTROL, "no-store"));
    if production {
        headers = headers.add((
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=63072000; includeSubDomains",
        ));
    }
    headers
}
