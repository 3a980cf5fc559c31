//! Assembly: pool, keys and settings are built once, then shared with every
//! worker through `web::Data`.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, Next, from_fn};
use actix_web::{App, HttpMessage as _, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::auth::cookie::{CookieConfig, QueuedCookies};
use crate::auth::csrf::{CsrfKey, SiteOrigin};
use crate::auth::jwt::JwtKeys;
use crate::auth::password::PasswordHasher;
use crate::auth::revocation::RevokedSessions;
use crate::auth::session::{SessionManager, SessionPolicy};
use crate::auth::throttle::ThrottlePolicy;
use crate::client::TrustedProxies;
use crate::config::Settings;
use crate::db::{self, DbPool};
use crate::errors::{AppError, render_error_page};
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
    Revocations(String),
    #[error("start-up task failed: {0}")]
    Blocking(#[from] actix_web::error::BlockingError),
}

pub struct Application {
    port: u16,
    public_url: String,
    pool: DbPool,
    server: Server,
    sessions: web::Data<SessionManager>,
    poll_interval: Duration,
}

impl Application {
    /// Opens and migrates the database, binds the listener and builds the server.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let pool = {
            let url = settings.database_url.clone();
            web::block(move || -> Result<_, db::DbSetupError> {
                let pool = db::build_pool(&url)?;
                db::run_migrations(&pool)?;
                Ok(pool)
            })
            .await??
        };
        let hasher = {
            let cost = settings.bcrypt_cost;
            web::block(move || PasswordHasher::new(cost)).await??
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

        let cookies = CookieConfig::new(settings.cookie_secure, settings.access_token_ttl);
        let sessions = web::Data::new(SessionManager::new(
            pool.clone(),
            JwtKeys::new(
                &settings.jwt_secret,
                &settings.jwt_previous_secrets,
                settings.access_token_ttl,
            ),
            cookies.clone(),
            RevokedSessions::new(settings.access_token_ttl),
            SessionPolicy {
                refresh_reuse_grace: settings.refresh_reuse_grace,
                max_age: settings.session_max_age,
                max_age_remember: settings.session_max_age_remember,
                idle_timeout: settings.session_idle_timeout,
            },
        ));
        {
            // Revocations from before this start that still matter.
            let sessions = sessions.clone();
            let loaded = web::block(move || sessions.poll_revocations())
                .await?
                .map_err(|e| StartupError::Revocations(e.to_string()))?;
            tracing::debug!(loaded, "revoked sessions loaded");
        }

        let pool_data = web::Data::new(pool.clone());
        let session_data = sessions.clone();
        let cookies = web::Data::new(cookies);
        let csrf_key = web::Data::new(CsrfKey::derive(&settings.jwt_secret));
        let origin = web::Data::new(SiteOrigin(public_url.clone()));
        let hasher = web::Data::new(hasher);
        let limits = web::Data::new(ThrottlePolicy {
            max_failures: settings.login_max_failures,
            max_failures_per_ip: settings.login_max_failures_per_ip,
            register_max_per_hour: settings.register_max_per_hour,
        });
        let proxies = web::Data::new(TrustedProxies(settings.trusted_proxies.clone()));
        let production = settings.is_production();

        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(pool_data.clone())
                .app_data(session_data.clone())
                .app_data(cookies.clone())
                .app_data(csrf_key.clone())
                .app_data(origin.clone())
                .app_data(hasher.clone())
                .app_data(limits.clone())
                .app_data(proxies.clone())
                .app_data(
                    web::FormConfig::default()
                        .limit(MAX_BODY_BYTES)
                        .error_handler(|e, _| AppError::from_form(e.into()).into()),
                )
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .app_data(web::QueryConfig::default().error_handler(|_, _| {
                    AppError::BadRequest("The address has a malformed query string.").into()
                }))
                .wrap(from_fn(apply_queued_cookies))
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
            pool,
            server,
            sessions,
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
        self.pool.clone()
    }

    /// Serves until the server stops, polling revocations meanwhile.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let poller = tokio::spawn(poll_revocations(self.sessions, self.poll_interval));
        let result = self.server.await;
        poller.abort();
        result
    }
}

/// Keeps the revocation list current with revocations made by other
/// instances (or directly in the database).
async fn poll_revocations(sessions: web::Data<SessionManager>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let sessions = sessions.clone();
        match tokio::task::spawn_blocking(move || sessions.poll_revocations()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "polling revoked sessions failed"),
            Err(e) => tracing::warn!(error = %e, "polling revoked sessions failed"),
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

/// Adds the cookies extractors queued (see [`QueuedCookies`]), unless the
/// handler already set a cookie of the same name.
async fn apply_queued_cookies(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    let queued = res.request().extensions_mut().remove::<QueuedCookies>();
    if let Some(QueuedCookies(queued)) = queued {
        let already: Vec<String> = res
            .response()
            .cookies()
            .map(|c| c.name().to_owned())
            .collect();
        for cookie in queued {
            if !already.iter().any(|name| name == cookie.name()) {
                res.response_mut().add_cookie(&cookie)?;
            }
        }
    }
    Ok(res)
}
