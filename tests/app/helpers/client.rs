//! `Client`: an HTTP client with its own cookie jar that never follows
//! redirects, so tests see every 303 and every `Set-Cookie`.

use std::sync::Arc;

use reqwest::cookie::Jar;

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
    /// Opens `form_page` on the site at `address`, then posts `fields` with
    /// that page's CSRF token to `action`, as a same-origin browser would.
    pub async fn submit(
        &self,
        address: &str,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
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
}
