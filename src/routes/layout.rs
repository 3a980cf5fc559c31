//! What every page shares (`base.html`): navigation, CSRF token, flash message;
//! and the error page.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use askama::Template;

use crate::auth::AuthUser;
use crate::auth::csrf::Csrf;
use crate::errors::AppError;
use crate::flash::FlashMessage;

pub struct NavUser {
    pub name: String,
}

/// Data for `base.html`.
pub struct Layout {
    pub user: Option<NavUser>,
    /// For the nav's Sign out form and the page's own forms.
    pub csrf_token: String,
    pub flash: Option<&'static str>,
}

impl Layout {
    pub fn new(user: Option<&AuthUser>, csrf: &Csrf, flash: FlashMessage) -> Self {
        Self {
            user: user.map(|u| NavUser {
                name: u.name.clone(),
            }),
            csrf_token: csrf.token(user),
            flash: flash.0,
        }
    }

    /// For pages rendered without request context (error pages).
    pub fn bare() -> Self {
        Self {
            user: None,
            csrf_token: String::new(),
            flash: None,
        }
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

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    layout: Layout,
    status: u16,
    title: &'static str,
    message: &'static str,
    request_id: String,
    retry_minutes: Option<u64>,
}

impl ErrorPage {
    pub fn new(
        status: StatusCode,
        message: &'static str,
        request_id: String,
        retry_minutes: Option<u64>,
    ) -> Self {
        Self {
            layout: Layout::bare(),
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message,
            request_id,
            retry_minutes,
        }
    }
}
