//! `/dashboard`: rendered from the access token and the request alone, with no
//! database query, so the most visited page needs no shared store.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

use crate::errors::AppError;
use crate::http::csrf::Csrf;
use crate::http::flash::FlashMessage;
use crate::http::layout::{format_time, page_layout, render};
use crate::http::{AuthUser, ClientInfo};
use crate::layout::Layout;

/// The signed-in page. Plain data with public fields, so the benchmarks can
/// render it without a request.
#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub layout: Layout,
    /// The display name from the access token.
    pub name: String,
    /// When the session signed in, as [`format_time`] shows it.
    pub signed_in: String,
    /// The same instant in RFC 3339, for the `<time>` element.
    pub signed_in_iso: String,
    pub ip: String,
    /// "Firefox on Linux", from [`ClientInfo::device`].
    pub device: String,
}

pub async fn dashboard(
    user: AuthUser,
    client: ClientInfo,
    csrf: Csrf,
    flash: FlashMessage,
) -> Result<HttpResponse, AppError> {
    let signed_in = chrono::DateTime::from_timestamp(user.auth_time, 0).unwrap_or_default();
    let page = DashboardPage {
        layout: page_layout(Some(&user), &csrf, flash),
        name: user.name.clone(),
        signed_in: format_time(signed_in.naive_utc()),
        signed_in_iso: signed_in.to_rfc3339(),
        device: client.device(),
        ip: client.ip.clone(),
    };
    render(StatusCode::OK, &page)
}
