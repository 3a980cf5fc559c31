//! The adapters' own settings, built once at start-up.

use actix_web::HttpRequest;
use actix_web::web::Data;

use std::net::IpAddr;

use ipnet::IpNet;

use super::cookies::CookieConfig;
use crate::auth::csrf::CsrfKey;
use crate::errors::AppError;

/// The adapters' own settings, registered once as `web::Data<Site>`.
pub struct Site {
    pub cookies: CookieConfig,
    pub csrf: CsrfKey,
    /// The site's own origin (`PUBLIC_URL`), which unsafe requests must come from.
    pub origin: String,
    pub proxies: TrustedProxies,
}

impl Site {
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
