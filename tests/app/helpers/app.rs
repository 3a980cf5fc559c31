//! `spawn_app()` and the `TestApp` a test talks to, in the site's language.

use std::collections::HashMap;

use gatehouse::config::Settings;
use gatehouse::startup::Application;
use gatehouse_core::clock::{Clock, ClockControl};
use gatehouse_core::db::DbPool;
use reqwest::Response;

use super::{
    Client, TestDatabase, TestUser, assert_redirects_to, extract_csrf, get_with_cookie, seed_user,
};

pub const TEST_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// Every page that needs a session (GET), and every action that does (POST).
pub const PROTECTED_PAGES: &[&str] = &[
    "/dashboard",
    "/account",
    "/account?tab=sessions",
    "/account/password",
    "/account/two-factor",
    "/confirm?next=/account",
    "/account/passkeys",
];
pub const PROTECTED_ACTIONS: &[&str] = &[
    "/account/password",
    "/account/sessions/revoke-others",
    "/account/sessions/some-session/revoke",
    "/confirm",
    "/account/two-factor/enable",
    "/account/two-factor/disable",
    "/account/two-factor/recovery-codes",
    "/account/trusted-devices/some-device/revoke",
    "/account/passkeys/some-passkey/rename",
    "/account/passkeys/some-passkey/delete",
];

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub pool: DbPool,
    pub settings: Settings,
    pub client: Client,
    pub test_user: TestUser,
    /// The app's clock: a test waits for an expiry by moving it forward.
    pub clock: ClockControl,
    /// Dropped before the directory (field order): a PostgreSQL database goes first.
    pub database: TestDatabase,
    _dir: tempfile::TempDir,
}

/// Settings for a test app: port 0, a fresh SQLite file in `dir`, bcrypt cost 4.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let vars: HashMap<String, String> = [
        ("PORT", "0".to_owned()),
        ("DATABASE_URL", dir.join("test.db").display().to_string()),
        ("JWT_SECRET", TEST_SECRET.to_owned()),
        ("BCRYPT_COST", "4".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        ("MAIL_URL", format!("file://{}", dir.join("mail").display())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut settings = Settings::from_vars(&vars).unwrap();
    settings.http.workers = Some(2);
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an app whose settings `customize` may change first.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::new(dir.path());
    spawn_app_in(dir, database, customize).await
}

/// Starts an app on a fresh SQLite file, whatever `TEST_DATABASE_URL` says
/// (for a test that runs once on each backend).
pub async fn spawn_app_on_sqlite() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::sqlite(dir.path());
    spawn_app_in(dir, database, |_| {}).await
}

/// Starts an app on a fresh PostgreSQL database (for a test marked
/// `#[ignore = "needs TEST_DATABASE_URL"]`).
pub async fn spawn_app_on_postgres() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    spawn_app_in(dir, TestDatabase::postgres(), |_| {}).await
}

async fn spawn_app_in(
    dir: tempfile::TempDir,
    database: TestDatabase,
    customize: impl FnOnce(&mut Settings),
) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        gatehouse::telemetry::init("debug");
    }
    let mut settings = test_settings(dir.path());
    settings.database.database_url = database.url.clone();
    settings.database.db_pool_size = 4;
    customize(&mut settings);
    let (clock, control) = Clock::adjustable();
    let app = Application::build_with_clock(settings.clone(), clock)
        .await
        .unwrap();
    let port = app.port();
    let pool = app.pool();
    tokio::spawn(app.run_until_stopped());

    let test_user = seed_user(
        &pool,
        "Test User",
        "user@example.com",
        "a long and secret passphrase",
    )
    .await;
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        pool,
        settings,
        client: Client::new(
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        test_user,
        clock: control,
        database,
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A second, independent client.
    pub fn new_client(&self) -> Client {
        Client::new(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        )
    }

    pub async fn get(&self, path: &str) -> Response {
        self.get_as(&self.client, path).await
    }

    pub async fn get_as(&self, client: &Client, path: &str) -> Response {
        client.http.get(self.url(path)).send().await.unwrap()
    }

    /// GETs `page` and returns the `csrf_token` of its first form.
    pub async fn csrf_token_as(&self, client: &Client, page: &str) -> String {
        let body = self.get_as(client, page).await.text().await.unwrap();
        extract_csrf(&body).unwrap_or_else(|| panic!("no csrf_token on {page}: {body}"))
    }

    pub async fn csrf_token(&self, page: &str) -> String {
        self.csrf_token_as(&self.client, page).await
    }

    /// POSTs a form as a same-origin client would (with `Origin`).
    pub async fn post_form_as(
        &self,
        client: &Client,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Response {
        client
            .http
            .post(self.url(path))
            .header("Origin", &self.address)
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.post_form_as(&self.client, path, fields).await
    }

    pub async fn register_as(
        &self,
        client: &Client,
        name: &str,
        email: &str,
        password: &str,
    ) -> Response {
        let csrf = self.csrf_token_as(client, "/register").await;
        self.post_form_as(
            client,
            "/register",
            &[
                ("name", name),
                ("email", email),
                ("password", password),
                ("csrf_token", &csrf),
            ],
        )
        .await
    }

    pub async fn register(&self, name: &str, email: &str, password: &str) -> Response {
        self.register_as(&self.client, name, email, password).await
    }

    pub async fn login_as(&self, client: &Client, email: &str, password: &str) -> Response {
        client.sign_in(&self.address, email, password, false).await
    }

    pub async fn post_login(&self, email: &str, password: &str) -> Response {
        self.login_as(&self.client, email, password).await
    }

    /// Signs the seeded user in with the default client.
    pub async fn login_test_user(&self) -> Response {
        self.login_test_user_as(&self.client, false).await
    }

    /// Signs the seeded user in on `client`, optionally with "remember me".
    pub async fn login_test_user_as(&self, client: &Client, remember: bool) -> Response {
        let user = &self.test_user;
        let response = client
            .sign_in(&self.address, &user.email, &user.password, remember)
            .await;
        assert_redirects_to(&response, "/dashboard");
        response
    }

    pub async fn get_dashboard(&self) -> Response {
        self.get("/dashboard").await
    }

    /// Posts the Sign out form with the token of the current page.
    pub async fn post_logout_as(&self, client: &Client) -> Response {
        let csrf = self.csrf_token_as(client, "/logout").await;
        self.post_form_as(client, "/logout", &[("csrf_token", &csrf)])
            .await
    }

    pub async fn post_logout(&self) -> Response {
        self.post_logout_as(&self.client).await
    }

    /// The value of cookie `name` in `client`'s jar, if set.
    pub fn cookie_in(&self, client: &Client, name: &str) -> Option<String> {
        client.cookie(&self.address, name)
    }

    pub fn access_cookie(&self) -> Option<String> {
        self.cookie_in(&self.client, "gatehouse_access")
    }

    /// Sends `GET path` with exactly this `Cookie` header and nothing else.
    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> Response {
        get_with_cookie(&self.address, path, cookie).await
    }
}

impl TestApp {
    /// `gatehouse ARGS` (with `stdin`) on the app's own database, off the
    /// async workers.
    pub async fn cli(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let url = self.settings.database.database_url.clone();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let stdin = stdin.to_owned();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            super::run_gatehouse(
                &[("DATABASE_URL", url.as_str()), ("BCRYPT_COST", "4")],
                &args,
                &stdin,
            )
        })
        .await
        .unwrap()
    }

    /// The value in `column` of `email`'s row in `gatehouse user list`.
    pub async fn listed(&self, email: &str, column: &str) -> String {
        let list = self.cli(&["user", "list"], "").await;
        assert!(list.status.success(), "{list:?}");
        let list = String::from_utf8(list.stdout).unwrap();
        let header = list.lines().next().unwrap();
        let at = header
            .find(column)
            .unwrap_or_else(|| panic!("no {column} column: {list}"));
        let row = list
            .lines()
            .find(|l| l.starts_with(email))
            .unwrap_or_else(|| panic!("{email} not listed: {list}"));
        row[at..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}
