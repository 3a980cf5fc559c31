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

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    layout: Layout,
    name: String,
    signed_in: String,
    signed_in_iso: String,
    ip: String,
    device: String,
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
