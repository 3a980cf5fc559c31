//! `Client`: an HTTP client with its own cookie jar that never follows
//! redirects, so tests see every 303 and every `Set-Cookie`.

use std::sync::Arc;

use reqwest::Response;
use reqwest::cookie::{CookieStore as _, Jar};

/// A client: its own cookie jar, never follows redirects.
pub struct Client {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
    pub user_agent: String,
}

impl Client {
    pub fn new(user_agent: &str) -> Self {
        Self::with_headers(user_agent, reqwest::header::HeaderMap::new())
    }

    /// A client that sends `headers` with every request.
    pub fn with_headers(user_agent: &str, headers: reqwest::header::HeaderMap) -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(user_agent)
            .default_headers(headers)
            .build()
            .unwrap();
        Self {
            http,
            jar,
            user_agent: user_agent.to_owned(),
        }
    }
}

impl Client {
    /// A client whose requests claim to come from `ip` through a proxy the
    /// app trusts (`TRUSTED_PROXIES` naming 127.0.0.1).
    pub fn behind_proxy(ip: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", ip.parse().unwrap());
        Self::with_headers("proxied", headers)
    }

    /// Opens `form_page` on the site at `address`, then posts `fields` with
    /// that page's CSRF token to `action`, as a same-origin browser would.
    pub async fn submit(
        &self,
        address: &str,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Response {
        let page = self
            .http
            .get(format!("{address}{form_page}"))
            .send()
            .await
            .unwrap();
        let body = page.text().await.unwrap();
        let csrf = super::extract_csrf(&body).unwrap_or_else(|| panic!("no form on {form_page}"));
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &csrf));
        self.http
            .post(format!("{address}{action}"))
            .header("Origin", address)
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Signs in on the site at `address` through its sign-in form, with
    /// "remember me" ticked when `remember`.
    pub async fn sign_in(
        &self,
        address: &str,
        email: &str,
        password: &str,
        remember: bool,
    ) -> Response {
        let mut fields = vec![("email", email), ("password", password)];
        if remember {
            fields.push(("remember", "on"));
        }
        self.submit(address, "/login", "/login", &fields).await
    }

    /// The value of cookie `name` in this client's jar for the site at
    /// `address`, if set.
    pub fn cookie(&self, address: &str, name: &str) -> Option<String> {
        let header = self.jar.cookies(&address.parse().unwrap())?;
        header.to_str().unwrap().split("; ").find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }
}

/// Sends `GET path` to the site at `address` with exactly this `Cookie`
/// header and nothing else, never following a redirect.
pub async fn get_with_cookie(address: &str, path: &str, cookie: &str) -> Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{address}{path}"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap()
}
