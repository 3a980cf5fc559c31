//! The sign-in hot paths, under criterion: access tokens (issue, first and
//! repeated verification), the `AuthUser` extractor on a valid, an expired
//! and a forged cookie, and rendering the dashboard, the page a signed-in
//! visitor sees most.
//!
//! Every group checks once, before timing, that its input takes the path the
//! bench is named for (a valid cookie is accepted, the others refused for the
//! reason claimed), so a bench cannot quietly measure an error.
//!
//! `cargo bench --bench auth`; `-- --warm-up-time 1 --measurement-time 2` for
//! a quick look.

#![allow(
    clippy::unwrap_used,
    reason = "bench code, like tests: a failed set-up should stop the run"
)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::test::TestRequest;
use actix_web::web::Data;
use actix_web::{FromRequest as _, HttpRequest};
use askama::Template as _;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use gatehouse::config::{Secret, Settings};
use gatehouse::errors::AppError;
use gatehouse::http::cookies::CookieConfig;
use gatehouse::http::layout::format_time;
use gatehouse::http::site::{Site, TrustedProxies};
use gatehouse::http::{AuthUser, ClientInfo};
use gatehouse::layout::{Layout, NavUser};
use gatehouse::routes::dashboard::DashboardPage;
use gatehouse::startup;
use gatehouse_core::accounts::{Requester, SessionPolicy, Sessions};
use gatehouse_core::auth::csrf::CsrfKey;
use gatehouse_core::auth::jwt::{self, Claims, JwtKeys, TokenError};
use gatehouse_core::auth::token::new_token;
use gatehouse_core::clock::Clock;
use gatehouse_core::ids::{SessionId, UserId};

const SECRET: &str = "benchmark-signing-secret-0123456789abcdef";
const USER_ID: &str = "0190f1d2-7c3a-7b4e-9a61-3f2d8c4b5e6f";
const NAME: &str = "Ada Lovelace";
const AUTH_TIME: i64 = 1_767_225_600;
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

fn secret() -> Secret {
    Secret::new(SECRET)
}

/// Keys as the server builds them: `SECRET` signs, the default 10-minute ttl.
fn keys() -> JwtKeys {
    JwtKeys::new(&secret(), &[], Duration::from_secs(600))
}

/// A distinct session id per call: tokens for the same user and session
/// issued within one second are byte-identical, and the cache would serve them.
fn next_session_id() -> SessionId {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    SessionId::from_stored(format!(
        "session-{:016}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn user_id() -> UserId {
    UserId::from_stored(USER_ID)
}

/// `JwtKeys::issue` (claims, HS256 signature, base64) and `verify` on a token
/// never seen before (header and `kid` checks, signature, claims, then the
/// insertion into the verified-token map; past its 4,096 entries one call in
/// that many also clears it, as a flood of new sessions would) and on one
/// seen before (a map lookup and the clock check), which is what every
/// request of a signed-in visitor pays.
fn access_tokens(c: &mut Criterion) {
    let keys = keys();
    let token = keys
        .issue(
            &user_id(),
            &SessionId::from_stored("session-cached"),
            NAME,
            AUTH_TIME,
        )
        .unwrap();
    let claims = keys.verify(&token).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.sid.as_str()),
        (USER_ID, "session-cached")
    );
    let fresh = keys
        .issue(&user_id(), &next_session_id(), NAME, AUTH_TIME)
        .unwrap();
    assert_ne!(fresh, token, "distinct sessions give distinct tokens");

    let mut group = c.benchmark_group("access_token");
    group.bench_function("issue", |b| {
        let (user, session) = (user_id(), SessionId::from_stored("session-1"));
        b.iter(|| keys.issue(black_box(&user), black_box(&session), NAME, AUTH_TIME));
    });
    group.bench_function("verify_cold", |b| {
        b.iter_batched(
            || {
                keys.issue(&user_id(), &next_session_id(), NAME, AUTH_TIME)
                    .unwrap()
            },
            |token| (keys.verify(&token), token),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("verify_cached", |b| {
        b.iter(|| keys.verify(black_box(&token)));
    });
    group.finish();
}

/// The `AuthUser` extractor on a GET of `/dashboard`: finding the access
/// cookie in the `Cookie` header, verifying it, the revocation list, and on
/// refusal the removal cookie and the login redirect. The valid cookie is
/// served from the verified-token map after its first request, as a
/// returning visitor's is; the expired and forged ones are verified in full
/// every time. Neither refused request carries a refresh cookie, so no
/// request reaches the database. Each iteration gets a request of its own,
/// built outside the timing: the extractor remembers its answer in the
/// request.
fn extractor(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let sessions = Data::new(runtime.block_on(sessions(&settings)));
    let site = Data::new(site(&settings));
    let (csrf_name, access_name) = (site.cookies.csrf_name(), site.cookies.access_name());

    let valid = keys()
        .issue(&user_id(), &next_session_id(), NAME, AUTH_TIME)
        .unwrap();
    let expired = expired_token();
    let forged = forge(&valid);
    // Refused for the reasons claimed, not for a wrong key or bad base64.
    assert_token_error(&expired, ErrorKind::ExpiredSignature);
    assert_token_error(&forged, ErrorKind::InvalidSignature);

    let request = |token: &str| {
        let cookies = format!("{csrf_name}={}; {access_name}={token}", new_token());
        let (sessions, site) = (sessions.clone(), site.clone());
        move || {
            TestRequest::get()
                .uri("/dashboard")
                .insert_header((header::COOKIE, cookies.as_str()))
                .insert_header((header::USER_AGENT, USER_AGENT))
                .app_data(sessions.clone())
                .app_data(site.clone())
                .to_http_request()
        }
    };
    let cases = [
        ("valid", request(&valid)),
        ("expired", request(&expired)),
        ("forged", request(&forged)),
    ];

    let mut group = c.benchmark_group("auth_user");
    for (name, new_request) in &cases {
        let outcome = runtime.block_on(authenticate(new_request())).1;
        match (*name, &outcome) {
            ("valid", Ok(user)) => assert_eq!(user.user_id.as_str(), USER_ID),
            ("expired" | "forged", Err(AppError::LoginRequired(login))) => {
                assert_eq!(login.location, "/login?next=%2Fdashboard");
                assert_eq!(login.clear.len(), 1, "the access cookie is cleared");
            }
            _ => panic!("{name}: unexpected outcome {outcome:?}"),
        }
        group.bench_function(*name, |b| {
            b.to_async(&runtime)
                .iter_batched(new_request, authenticate, BatchSize::SmallInput);
        });
    }
    group.finish();
}

/// Runs the extractor; the request comes back so that it is dropped outside
/// the timing.
async fn authenticate(req: HttpRequest) -> (HttpRequest, Result<AuthUser, AppError>) {
    let outcome = AuthUser::from_request(&req, &mut Payload::None).await;
    (req, outcome)
}

/// Rendering `dashboard.html` (with `base.html`, the CSRF and flash
/// partials, and escaping) from data as a signed-in request would give it:
/// the handler's only work besides the extractors.
fn dashboard(c: &mut Criterion) {
    let session_id = next_session_id();
    let csrf_token = CsrfKey::derive(&secret()).token(&new_token(), Some(&session_id));
    let client = ClientInfo(Requester {
        ip: "203.0.113.42".to_owned(),
        user_agent: USER_AGENT.to_owned(),
    });
    let signed_in = chrono::DateTime::from_timestamp(AUTH_TIME, 0).unwrap();
    let page = DashboardPage {
        layout: Layout {
            user: Some(NavUser {
                name: NAME.to_owned(),
            }),
            csrf_token: csrf_token.clone(),
            flash: None,
        },
        name: NAME.to_owned(),
        signed_in: format_time(signed_in.naive_utc()),
        signed_in_iso: signed_in.to_rfc3339(),
        device: client.device(),
        ip: client.ip.clone(),
    };
    let html = page.render().unwrap();
    for shown in [
        NAME,
        "1 January 2026, 00:00 UTC",
        "203.0.113.42",
        "Firefox on Linux",
    ] {
        assert!(html.contains(shown), "the page shows {shown}");
    }
    assert!(
        html.contains(&csrf_token),
        "the sign-out form carries the token"
    );

    c.bench_function("dashboard/render", |b| b.iter(|| black_box(&page).render()));
}

/// Settings as the tests use them: a SQLite file in `dir`, a known secret,
/// the lowest bcrypt cost (only the start-up dummy hash uses it here).
fn settings(dir: &std::path::Path) -> Settings {
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", dir.join("bench.db").display().to_string()),
        ("JWT_SECRET", SECRET.to_owned()),
        ("BCRYPT_COST", "4".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Settings::from_vars(&vars).unwrap()
}

/// The sessions as `Application::build` wires them, signing with `SECRET`.
/// (The policy helpers in `startup` are private, so the policy is copied from
/// the settings here.)
async fn sessions(settings: &Settings) -> Sessions {
    let (pool, _) = startup::open_database(&settings.database, true)
        .await
        .unwrap();
    let s = &settings.sessions;
    Sessions::new(
        pool,
        JwtKeys::new(&secret(), &[], s.access_token_ttl),
        SessionPolicy {
            refresh_reuse_grace: s.refresh_reuse_grace,
            max_age: s.session_max_age,
            max_age_remember: s.session_max_age_remember,
            idle_timeout: s.session_idle_timeout,
            access_token_ttl: s.access_token_ttl,
        },
        Clock::system(),
    )
}

/// The adapters' settings as `Application::build` makes them.
fn site(settings: &Settings) -> Site {
    Site {
        cookies: CookieConfig::with_same_site(
            settings.cookie_secure(),
            settings.http.cookie_samesite,
            settings.sessions.access_token_ttl,
        ),
        csrf: CsrfKey::derive(&secret()),
        origin: "http://127.0.0.1:8080".to_owned(),
        aliases: Vec::new(),
        proxies: TrustedProxies::default(),
        production: settings.is_production(),
        cors_origins: Vec::new(),
    }
}

/// A token signed with `SECRET` and our `kid`, correct in every way but its
/// `exp`, an hour gone.
fn expired_token() -> String {
    gatehouse_core::auth::hs256::install();
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: jwt::ISSUER.to_owned(),
        aud: jwt::AUDIENCE.to_owned(),
        sub: USER_ID.to_owned(),
        sid: next_session_id().to_string(),
        iat: now - 4200,
        nbf: now - 4200,
        exp: now - 3600,
        auth_time: AUTH_TIME,
        name: NAME.to_owned(),
    };
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(jwt::kid_for(&secret()));
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// `token` with the first character of its signature changed: still
/// well-formed base64url (the last character would only move padding bits),
/// so only the signature check can refuse it.
fn forge(token: &str) -> String {
    let at = token.rfind('.').unwrap() + 1;
    let replacement = if token[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    let mut forged = token.to_owned();
    forged.replace_range(at..=at, replacement);
    forged
}

/// Checks that fresh keys refuse `token` for exactly `expected`.
fn assert_token_error(token: &str, expected: ErrorKind) {
    match keys().verify(token) {
        Err(TokenError::Invalid(e)) if *e.kind() == expected => {}
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

criterion_group!(benches, access_tokens, extractor, dashboard);
criterion_main!(benches);
