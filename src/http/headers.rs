//! The security headers every response carries.
//!
//! `Cache-Control: no-store` is the default for everything but `/static`
//! (which sets its own), so no page that shows a session or carries a CSRF
//! token is ever cached. A header the handler set itself is left alone.
//!
//! The headers that only govern a rendered document (the content security
//! policy, framing, the opener policy, permissions) are not sent on
//! redirects and other bodiless answers (3xx, 204): a browser renders
//! nothing from those, and an anonymous visit to a protected page, the most
//! common redirect, is answered with a third of the bytes. The headers that
//! do matter there (caching, the referrer policy for the next hop, HSTS,
//! `nosniff`) are always sent.

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};

use super::on_response::ResponseHook;

type Headers = Vec<(HeaderName, HeaderValue)>;

/// The security headers, set where the handler did not set them. Used as
/// `OnResponse::new(SecurityHeaders::new(production))`.
pub struct SecurityHeaders {
    always: Headers,
    documents: Headers,
}

impl SecurityHeaders {
    /// The site's headers; `production` adds HSTS.
    pub fn new(production: bool) -> Self {
        let mut always = vec![
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ];
        if production {
            always.push((
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=63072000; includeSubDomains"),
            ));
        }
        let documents = vec![
            (
                header::CONTENT_SECURITY_POLICY,
                // `data:` images only: the CSS framework draws its form marks
                // as inline SVG; nothing else is allowed wider than the site.
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                     form-action 'self'; base-uri 'none'; object-src 'none'",
                ),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
            (
                HeaderName::from_static("permissions-policy"),
                HeaderValue::from_static(
                    "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
                ),
            ),
        ];
        Self { always, documents }
    }

    fn set(&self, headers: &mut header::HeaderMap, status: StatusCode) {
        let bodiless = status.is_redirection() || status == StatusCode::NO_CONTENT;
        let sets = if bodiless {
            [&self.always[..], &[]]
        } else {
            [&self.always[..], &self.documents[..]]
        };
        for (name, value) in sets.into_iter().flatten() {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

impl ResponseHook for SecurityHeaders {
    fn apply(&self, mut res: ServiceResponse) -> Result<ServiceResponse, actix_web::Error> {
        let status = res.status();
        self.set(res.headers_mut(), status);
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::on_response::OnResponse;
    use actix_web::{App, HttpResponse, test, web};

    #[actix_web::test]
    async fn pages_get_every_header_and_redirects_the_ones_that_matter_there() {
        let app = test::init_service(
            App::new()
                .wrap(OnResponse::new(SecurityHeaders::new(true)))
                .route(
                    "/page",
                    web::get().to(|| async { HttpResponse::Ok().body("page") }),
                )
                .route(
                    "/away",
                    web::get().to(|| async {
                        HttpResponse::SeeOther()
                            .insert_header((header::LOCATION, "/page"))
                            .finish()
                    }),
                )
                .route(
                    "/own",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .insert_header((header::REFERRER_POLICY, "no-referrer"))
                            .finish()
                    }),
                ),
        )
        .await;
        let get = |path: &str| test::TestRequest::get().uri(path).to_request();

        let page = test::call_service(&app, get("/page")).await;
        for name in [
            "cache-control",
            "referrer-policy",
            "x-content-type-options",
            "strict-transport-security",
            "content-security-policy",
            "x-frame-options",
            "cross-origin-opener-policy",
            "permissions-policy",
        ] {
            assert!(page.headers().contains_key(name), "the page lacks {name}");
        }

        let redirect = test::call_service(&app, get("/away")).await;
        assert_eq!(
            redirect.headers().get(header::CACHE_CONTROL).unwrap(),
            "no-store"
        );
        assert_eq!(
            redirect.headers().get(header::REFERRER_POLICY).unwrap(),
            "same-origin"
        );
        assert!(
            redirect
                .headers()
                .contains_key(header::STRICT_TRANSPORT_SECURITY)
        );
        assert!(
            !redirect
                .headers()
                .contains_key(header::CONTENT_SECURITY_POLICY)
        );

        let own = test::call_service(&app, get("/own")).await;
        assert_eq!(
            own.headers().get(header::REFERRER_POLICY).unwrap(),
            "no-referrer"
        );
    }
}
