//! `spawn_app()` and the `TestApp` a test talks to.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse::config::Settings;
use gatehouse::db::{self, DbPool};
use gatehouse::startup::Application;
use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::{Response, StatusCode, Url};

/// A user that exists in every fresh app.
pub struct TestUser {
    pub id: String,
    pub name: String,
    pub email: String,
    pub password: String,
}

pub const TEST_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// A browser: its own cookie jar, never follows redirects.
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    pub user_agent: String,
}

impl Browser {
    pub fn new(user_agent: &str) -> Self {
        Self::with_headers(user_agent, reqwest::header::HeaderMap::new())
    }

    /// A browser that sends `headers` with every request.
    pub fn with_headers(user_agent: &str, headers: reqwest::header::HeaderMap) -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(user_agent)
            .default_headers(headers)
            .build()
            .unwrap();
        Self {
            client,
            jar,
            user_agent: user_agent.to_owned(),
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub pool: DbPool,
    pub settings: Settings,
    pub browser: Browser,
    pub test_user: TestUser,
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
    if std::env::var_os("TEST_LOG").is_some() {
        gatehouse::telemetry::init("debug");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    customize(&mut settings);
    let app = Application::build(settings.clone()).await.unwrap();
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
        browser: Browser::new(
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        test_user,
        _dir: dir,
    }
}

/// Inserts a user directly (bcrypt cost 4).
pub async fn seed_user(pool: &DbPool, name: &str, email: &str, password: &str) -> TestUser {
    let pool = pool.clone();
    let user = TestUser {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.to_owned(),
        email: email.to_owned(),
        password: password.to_owned(),
    };
    let (id, name, email, password) = (
        user.id.clone(),
        user.name.clone(),
        user.email.clone(),
        user.password.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let hash = bcrypt::hash(&password, 4).unwrap();
        let now = db::now();
        let mut conn = pool.get().unwrap();
        db::users::insert(
            &mut conn,
            &db::models::NewUser {
                id: &id,
                email: &email,
                name: &name,
                password_hash: &hash,
                created_at: now,
                updated_at: now,
            },
        )
        .unwrap();
    })
    .await
    .unwrap();
    user
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A second, independent browser.
    pub fn new_browser(&self) -> Browser {
        Browser::new(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
        )
    }

    pub async fn get(&self, path: &str) -> Response {
        self.get_as(&self.browser, path).await
    }

    pub async fn get_as(&self, browser: &Browser, path: &str) -> Response {
        browser.client.get(self.url(path)).send().await.unwrap()
    }

    /// GETs `page` and returns the `csrf_token` of its first form.
    pub async fn csrf_token_as(&self, browser: &Browser, page: &str) -> String {
        let body = self.get_as(browser, page).await.text().await.unwrap();
        extract_csrf(&body).unwrap_or_else(|| panic!("no csrf_token on {page}: {body}"))
    }

    pub async fn csrf_token(&self, page: &str) -> String {
        self.csrf_token_as(&self.browser, page).await
    }

    /// POSTs a form as a same-origin browser would (with `Origin`).
    pub async fn post_form_as(
        &self,
        browser: &Browser,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Response {
        browser
            .client
            .post(self.url(path))
            .header("Origin", &self.address)
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.post_form_as(&self.browser, path, fields).await
    }

    pub async fn register_as(
        &self,
        browser: &Browser,
        name: &str,
        email: &str,
        password: &str,
    ) -> Response {
        let csrf = self.csrf_token_as(browser, "/register").await;
        self.post_form_as(
            browser,
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
        self.register_as(&self.browser, name, email, password).await
    }

    pub async fn login_as(&self, browser: &Browser, email: &str, password: &str) -> Response {
        let csrf = self.csrf_token_as(browser, "/login").await;
        self.post_form_as(
            browser,
            "/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf_token", &csrf),
            ],
        )
        .await
    }

    pub async fn post_login(&self, email: &str, password: &str) -> Response {
        self.login_as(&self.browser, email, password).await
    }

    /// Signs the seeded user in with the default browser.
    pub async fn login_test_user(&self) -> Response {
        let response = self
            .post_login(&self.test_user.email, &self.test_user.password)
            .await;
        assert_redirects_to(&response, "/dashboard");
        response
    }

    pub async fn get_dashboard(&self) -> Response {
        self.get("/dashboard").await
    }

    /// Posts the Sign out form with the token of the current page.
    pub async fn post_logout_as(&self, browser: &Browser) -> Response {
        let csrf = self.csrf_token_as(browser, "/logout").await;
        self.post_form_as(browser, "/logout", &[("csrf_token", &csrf)])
            .await
    }

    pub async fn post_logout(&self) -> Response {
        self.post_logout_as(&self.browser).await
    }

    /// The value of cookie `name` in `browser`'s jar, if set.
    pub fn cookie_in(&self, browser: &Browser, name: &str) -> Option<String> {
        let url: Url = self.address.parse().unwrap();
        let header = browser.jar.cookies(&url)?;
        header.to_str().unwrap().split("; ").find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }

    pub fn access_cookie(&self) -> Option<String> {
        self.cookie_in(&self.browser, "gatehouse_access")
    }

    /// Sends `GET path` with exactly this `Cookie` header and nothing else.
    pub async fn get_with_cookie(&self, path: &str, cookie: &str) -> Response {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(self.url(path))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap()
    }
}

pub fn extract_csrf(html: &str) -> Option<String> {
    let marker = r#"name="csrf_token" value=""#;
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

#[track_caller]
pub fn assert_redirects_to(response: &Response, location: &str) {
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "expected a 303 to {location}"
    );
    assert_eq!(
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some(location)
    );
}

/// The `Set-Cookie` header that sets or clears cookie `name`, if any.
pub fn set_cookie<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

#[track_caller]
pub fn assert_clears_cookie(response: &Response, name: &str) {
    let cookie = set_cookie(response, name).unwrap_or_else(|| panic!("{name} is not cleared"));
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
}
