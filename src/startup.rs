//! Assembly: pool, keys and settings are built once, then shared with every
//! worker through `web::Data`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, Next, from_fn};
use actix_web::{App, HttpMessage as _, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use tracing_actix_web::TracingLogger;

use crate::auth::cookie::{CookieConfig, QueuedCookies};
use crate::auth::csrf::{CsrfKey, SiteOrigin};
use crate::auth::jwt::JwtKeys;
use crate::auth::password::PasswordHasher;
use crate::auth::revocation::RevokedSessions;
use crate::auth::session::{SessionManager, SessionPolicy};
use crate::auth::throttle::ThrottlePolicy;
use crate::client::TrustedProxies;
use crate::config::{ConfigError, Secret, Settings, check_secret};
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
    #[error("JWT_SECRET is unset (see `ensure_development_secret`)")]
    MissingSecret,
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
        let jwt_secret = settings
            .sessions
            .jwt_secret
            .clone()
            .ok_or(StartupError::MissingSecret)?;
        let pool = {
            let url = settings.database.database_url.clone();
            web::block(move || -> Result<_, db::DbSetupError> {
                let pool = db::build_pool(&url)?;
                db::run_migrations(&pool)?;
                Ok(pool)
            })
            .await??
        };
        let hasher = {
            let cost = settings.sessions.bcrypt_cost;
            web::block(move || PasswordHasher::new(cost)).await??
        };

        let listener = TcpListener::bind((settings.http.host.as_str(), settings.http.port))
            .map_err(|source| StartupError::Bind {
                addr: format!("{}:{}", settings.http.host, settings.http.port),
                source,
            })?;
        let port = listener.local_addr()?.port();
        let public_url = settings.http.public_url.clone().unwrap_or_else(|| {
            match settings.http.host.parse::<std::net::Ipv6Addr>() {
                Ok(v6) => format!("http://[{v6}]:{port}"),
                Err(_) => format!("http://{}:{port}", settings.http.host),
            }
        });

        let cookies =
            CookieConfig::new(settings.cookie_secure(), settings.sessions.access_token_ttl);
        let sessions = web::Data::new(SessionManager::new(
            pool.clone(),
            JwtKeys::new(
                &jwt_secret,
                &settings.sessions.jwt_previous_secrets,
                settings.sessions.access_token_ttl,
            ),
            cookies.clone(),
            RevokedSessions::new(settings.sessions.access_token_ttl),
            SessionPolicy {
                refresh_reuse_grace: settings.sessions.refresh_reuse_grace,
                max_age: settings.sessions.session_max_age,
                max_age_remember: settings.sessions.session_max_age_remember,
                idle_timeout: settings.sessions.session_idle_timeout,
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
        let csrf_key = web::Data::new(CsrfKey::derive(&jwt_secret));
        let origin = web::Data::new(SiteOrigin(public_url.clone()));
        let hasher = web::Data::new(hasher);
        let limits = web::Data::new(ThrottlePolicy {
            max_failures: settings.throttle.login_max_failures,
            max_failures_per_ip: settings.throttle.login_max_failures_per_ip,
            register_max_per_hour: settings.throttle.register_max_per_hour,
        });
        let proxies = web::Data::new(TrustedProxies(settings.http.trusted_proxies.clone()));
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
        if let Some(workers) = settings.http.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener)?.run();
        Ok(Self {
            port,
            public_url,
            pool,
            server,
            sessions,
            poll_interval: settings.sessions.revocation_poll_interval,
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

/// Development convenience: when `JWT_SECRET` is unset outside production, a
/// random secret kept in a git-ignored file beside the database, so restarts
/// keep browsers signed in. Returns the file's path when it was created now.
pub fn ensure_development_secret(settings: &mut Settings) -> Result<Option<PathBuf>, ConfigError> {
    if settings.sessions.jwt_secret.is_some() || settings.is_production() {
        return Ok(None);
    }
    let (secret, generated) = development_secret(&settings.database.database_url)?;
    settings.sessions.jwt_secret = Some(secret);
    Ok(generated)
}

fn development_secret(database_url: &str) -> Result<(Secret, Option<PathBuf>), ConfigError> {
    let path = secret_file_for(database_url);
    match std::fs::read_to_string(&path) {
        Ok(existing) => {
            return Ok((
                check_secret("JWT_SECRET", existing.trim().as_bytes().to_vec())?,
                None,
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ConfigError::new(
                "JWT_SECRET",
                format!("is unset and {} cannot be read: {e}", path.display()),
            ));
        }
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let encoded = URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, encoded.as_bytes()).map_err(|e| {
        ConfigError::new(
            "JWT_SECRET",
            format!("is unset and {} cannot be written: {e}", path.display()),
        )
    })?;
    Ok((Secret::new(encoded.into_bytes()), Some(path)))
}

/// `gatehouse.db` keeps its development secret in `gatehouse.db.jwt-secret`.
pub fn secret_file_for(database_url: &str) -> PathBuf {
    let db = db::sqlite_path(database_url);
    let mut name = Path::new(db)
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "gatehouse.db".into());
    name.push(".jwt-secret");
    Path::new(db).with_file_name(name)
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn development_secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("dev.db");
        let db = db.to_str().unwrap();
        let vars = HashMap::from([("DATABASE_URL".to_owned(), db.to_owned())]);
        let mut first = Settings::from_vars(&vars).unwrap();
        let mut second = first.clone();

        assert!(ensure_development_secret(&mut first).unwrap().is_some());
        assert!(ensure_development_secret(&mut second).unwrap().is_none());

        assert!(first.sessions.jwt_secret.is_some());
        assert_eq!(first.sessions.jwt_secret, second.sessions.jwt_secret);
        assert!(secret_file_for(db).exists());
    }
}
