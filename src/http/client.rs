//! Who is asking: the client's address and a readable name for its browser.

use std::net::IpAddr;
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};

use super::deferred::{Deferred, defer};
use super::site::Site;
use gatehouse_core::accounts::Requester;

/// Longest user agent kept (stored with sessions, shown on the account page).
const MAX_USER_AGENT: usize = 512;

/// Who is asking, taken from the request: the client's IP address and user
/// agent, as the domain's [`Requester`].
#[derive(Debug, Clone)]
pub struct ClientInfo(pub Requester);

impl Deref for ClientInfo {
    type Target = Requester;

    fn deref(&self) -> &Requester {
        &self.0
    }
}

impl ClientInfo {
    /// "Firefox on Linux", "Safari on iPhone", …
    pub fn device(&self) -> String {
        describe_device(&self.0.user_agent)
    }
}

impl FromRequest for ClientInfo {
    type Error = actix_web::Error;
    type Future = Deferred<Self, actix_web::Error>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        defer(req, |req| Ok(Self(client_info(req))))
    }
}

/// The client's address: the socket peer, unless the peer is a trusted proxy.
/// Then `X-Forwarded-For` is walked from the right (the entry our own proxy
/// wrote) past every trusted proxy; the first entry that is not one is the
/// client if it is an address. If it is junk (not an address, or a header
/// value that is not text), the client is the last trusted hop passed: entries
/// left of junk were written by whoever sent the junk and are never believed.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let site = req.app_data::<Data<Site>>();
    let Some(trusted) = site.map(|s| &s.proxies).filter(|t| t.contains(&peer)) else {
        return Some(peer);
    };
    // `None` stands for a header value that is not text: junk as a whole.
    let mut entries: Vec<Option<&str>> = Vec::new();
    for value in req.headers().get_all(header::X_FORWARDED_FOR) {
        match value.to_str() {
            Ok(text) => entries.extend(text.split(',').map(Some)),
            Err(_) => entries.push(None),
        }
    }
    let mut last_trusted_hop = peer;
    for entry in entries.into_iter().rev() {
        match entry.and_then(|e| e.trim().parse::<IpAddr>().ok()) {
            Some(ip) if trusted.contains(&ip) => last_trusted_hop = ip,
            Some(ip) => return Some(ip),
            None => break,
        }
    }
    Some(last_trusted_hop)
}

/// Who is asking, for domain calls.
pub fn client_info(req: &HttpRequest) -> Requester {
    let ip = client_ip(req).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| truncate(ua, MAX_USER_AGENT))
        .unwrap_or_default();
    Requester { ip, user_agent }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// `needle` in `hay`, found from its first byte: cheaper than a general
/// substring search for these short needles, which run on every page.
fn contains(hay: &str, needle: &str) -> bool {
    let (hay, needle) = (hay.as_bytes(), needle.as_bytes());
    needle.first().is_some_and(|&first| {
        memchr::memchr_iter(first, hay).any(|at| hay[at..].starts_with(needle))
    })
}

/// A short "browser on system" description of a user agent. Heuristic by
/// design: it only labels sessions for their owner, and nothing relies on it.
pub fn describe_device(user_agent: &str) -> String {
    let ua = user_agent;
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(needle, _)| contains(ua, needle))
    .map(|(_, name)| *name);
    let system = [
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| contains(ua, needle))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(s)) => format!("A browser on {s}"),
        (None, None) if ua.is_empty() => "Unknown device".to_owned(),
        (None, None) => truncate(ua, 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn ip_of(peer: &str, forwarded: Option<&str>, trusted: &[&str]) -> String {
        let values: Vec<_> = forwarded.iter().map(|f| f.as_bytes()).collect();
        ip_of_headers(peer, &values, trusted)
    }

    fn ip_of_headers(peer: &str, forwarded: &[&[u8]], trusted: &[&str]) -> String {
        let site = Site {
            cookies: super::super::cookies::CookieConfig::new(
                false,
                std::time::Duration::from_secs(60),
            ),
            csrf: gatehouse_core::auth::csrf::CsrfKey::derive(&crate::config::Secret::new(
                "an-unguessable-test-secret-of-32-bytes!",
            )),
            origin: "http://127.0.0.1".into(),
            aliases: Vec::new(),
            production: false,
            cors_origins: Vec::new(),
            proxies: super::super::site::TrustedProxies(
                trusted.iter().map(|t| t.parse().unwrap()).collect(),
            ),
        };
        let mut req = TestRequest::default()
            .peer_addr(peer.parse().unwrap())
            .app_data(Data::new(site));
        for f in forwarded {
            let value = header::HeaderValue::from_bytes(f).unwrap();
            req = req.append_header((header::X_FORWARDED_FOR, value));
        }
        client_ip(&req.to_http_request()).unwrap().to_string()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        assert_eq!(
            ip_of("203.0.113.9:1234", Some("1.2.3.4"), &[]),
            "203.0.113.9"
        );
        assert_eq!(
            ip_of(
                "10.0.0.2:1234",
                Some("6.6.6.6, 198.51.100.7"),
                &["10.0.0.0/8"]
            ),
            "198.51.100.7"
        );
        assert_eq!(
            ip_of(
                "10.0.0.2:1234",
                Some("198.51.100.7, 10.0.0.9"),
                &["10.0.0.0/8"]
            ),
            "198.51.100.7"
        );
        assert_eq!(ip_of("10.0.0.2:1234", None, &["10.0.0.0/8"]), "10.0.0.2");
        assert_eq!(
            ip_of("10.0.0.2:1234", Some("garbage"), &["10.0.0.0/8"]),
            "10.0.0.2"
        );
    }

    #[test]
    fn a_junk_forwarded_entry_hides_only_what_lies_left_of_it() {
        let trusted = &["10.0.0.0/8"];
        assert_eq!(
            ip_of("10.0.0.2:1234", Some("garbage, 203.0.113.9"), trusted),
            "203.0.113.9"
        );
        assert_eq!(
            ip_of("10.0.0.2:1234", Some("203.0.113.9, garbage"), trusted),
            "10.0.0.2"
        );
        assert_eq!(
            ip_of(
                "10.0.0.2:1234",
                Some("203.0.113.9, garbage, 10.0.0.9"),
                trusted
            ),
            "10.0.0.9"
        );
        assert_eq!(
            ip_of("10.0.0.2:1234", Some("198.51.100.7, , 10.0.0.9"), trusted),
            "10.0.0.9"
        );
        assert_eq!(
            ip_of(
                "10.0.0.2:1234",
                Some("6.6.6.6, garbage, 198.51.100.7, 10.0.0.9"),
                trusted
            ),
            "198.51.100.7"
        );
    }

    #[test]
    fn forwarded_entries_from_separate_headers_are_read_in_order() {
        let site_trusted = &["10.0.0.0/8"];
        assert_eq!(
            ip_of_headers(
                "10.0.0.2:1234",
                &[b"garbage", b"203.0.113.9, 10.0.0.9"],
                site_trusted
            ),
            "203.0.113.9"
        );
        assert_eq!(
            ip_of_headers(
                "10.0.0.2:1234",
                &[b"203.0.113.9", b"garbage, 10.0.0.9"],
                site_trusted
            ),
            "10.0.0.9"
        );
        assert_eq!(
            ip_of_headers(
                "10.0.0.2:1234",
                &[b"203.0.113.9", b"\xff198.51.100.7", b"10.0.0.9"],
                site_trusted
            ),
            "10.0.0.9"
        );
    }

    #[test]
    fn a_chain_of_trusted_proxies_only_names_its_first_hop() {
        assert_eq!(
            ip_of("10.0.0.2:1234", Some("10.0.0.7, 10.0.0.9"), &["10.0.0.0/8"]),
            "10.0.0.7"
        );
    }

    #[test]
    fn common_browsers_are_named() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(describe_device(firefox), "Firefox on Linux");
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
        assert_eq!(describe_device(chrome), "Chrome on Windows");
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
        assert_eq!(describe_device(safari), "Safari on iPhone");
        assert_eq!(describe_device(""), "Unknown device");
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("ééé", 3), "é");
    }
}
