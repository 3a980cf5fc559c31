//! What every page handler shares: the `base.html` data for a request, the
//! render helper, redirects and how times are shown.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use askama::Template;

use super::AuthUser;
use super::csrf::Csrf;
use super::flash::FlashMessage;
use crate::errors::AppError;
use crate::layout::{Layout, NavUser};

/// The `base.html` data for a page: who is signed in, the CSRF token for its
/// forms and the flash message waiting for it.
pub fn page_layout(user: Option<&AuthUser>, csrf: &Csrf, flash: FlashMessage) -> Layout {
    Layout {
        user: user.map(|u| NavUser {
            name: u.name.clone(),
        }),
        csrf_token: csrf.token(user),
        flash: flash.0,
    }
}

/// Renders a page with `status`.
pub fn render<T: Template>(status: StatusCode, page: &T) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::build(status)
        .content_type(ContentType::html())
        .body(page.render()?))
}

/// A stored time as shown on pages: "22 November 2026, 14:05 UTC".
pub fn format_time(at: chrono::NaiveDateTime) -> String {
    at.format("%-d %B %Y, %H:%M UTC").to_string()
}

/// A 303 to `location` (post/redirect/get).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}
