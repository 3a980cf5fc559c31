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
