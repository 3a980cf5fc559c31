//! The adapters' own settings, built once at start-up.

use actix_web::HttpRequest;
use actix_web::web::Data;

use std::net::IpAddr;

use ipnet::IpNet;

use super::cookies::CookieConfig;
use crate::errors::AppError;
use gatehouse_core::auth::csrf::CsrfKey;

/// The adapters' own settings, registered once as `web::Data<Site>`.
pub struct Site {
    pub cookies: CookieConfig,
    pub csrf: CsrfKey,
    /// The site's own origin (`PUBLIC_URL`, else the listening address), which
    /// unsafe requests must come from.
    pub origin: String,
    /// Other spellings of the same origin that also count: without
    /// `PUBLIC_URL`, the loopback names of a loopback listening address.
    pub aliases: Vec<String>,
    pub proxies: TrustedProxies,
    /// Production pages say less about why a request was refused.
    pub production: bool,
    /// Other origins whose front ends may call the JSON API (`CORS_ORIGINS`).
    pub cors_origins: Vec<String>,
}

impl Site {
    /// Whether the JSON API takes state-changing calls from `origin`: the
    /// site's own, or a listed front end's.
    pub fn api_accepts(&self, origin: &str) -> bool {
        self.accepts(origin) || self.cors_origins.iter().any(|o| o == origin)
    }

    /// Whether `origin` (lower-cased `scheme://host[:port]`) is this site's.
    pub fn accepts(&self, origin: &str) -> bool {
        origin == self.origin || self.aliases.iter().any(|alias| alias == origin)
    }

    /// The loopback spellings of `http://{host}:{port}` other than `canonical`:
    /// a browser on this machine may reach a server bound to `127.0.0.1`,
    /// `::1`, `localhost` or every interface under any of these names.
    pub fn loopback_aliases(host: &str, port: u16, canonical: &str) -> Vec<String> {
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
        if !loopback {
            return Vec::new();
        }
        ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|name| format!("http://{name}:{port}"))
            .filter(|origin| origin != canonical)
            .collect()
    }

    /// The registered `Site`; its absence is a wiring bug, answered with a 500.
    pub fn of(req: &HttpRequest) -> Result<Data<Site>, AppError> {
        req.app_data::<Data<Site>>()
            .cloned()
            .ok_or_else(|| AppError::internal("Site is not registered"))
    }
}

/// Proxies whose `X-Forwarded-For` header is believed (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_accept_every_loopback_spelling() {
        let aliases = Site::loopback_aliases("127.0.0.1", 8080, "http://127.0.0.1:8080");
        assert_eq!(aliases, ["http://localhost:8080", "http://[::1]:8080"]);
        assert_eq!(
            Site::loopback_aliases("::1", 80, "http://[::1]:80").len(),
            2
        );
        assert_eq!(
            Site::loopback_aliases("0.0.0.0", 80, "http://0.0.0.0:80").len(),
            3
        );
        assert!(Site::loopback_aliases("192.0.2.7", 8080, "http://192.0.2.7:8080").is_empty());
    }
}
