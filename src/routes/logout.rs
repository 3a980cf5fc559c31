//! `/logout`: a GET shows a confirmation button; only the POST signs out.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::errors::AppError;
use crate::http::csrf::{self, Csrf};
use crate::http::flash::{Flash, FlashMessage};
use crate::http::layout::{page_layout, render, see_other};
use crate::http::redirects::to_sign_in;
use crate::http::{ClientInfo, MaybeUser, Site};
use crate::layout::Layout;
use gatehouse_core::accounts::Sessions;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogoutForm {
    pub csrf_token: String,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage {
    layout: Layout,
}

pub async fn logout_page(
    MaybeUser(user): MaybeUser,
    csrf: Csrf,
    flash: FlashMessage,
) -> Result<HttpResponse, AppError> {
    let Some(user) = user else {
        return Ok(see_other("/login"));
    };
    let page = LogoutPage {
        layout: page_layout(Some(&user), &csrf, flash),
    };
    render(StatusCode::OK, &page)
}

/// Ends the session server-side and clears the cookies. A browser that is not
/// signed in has nothing to end and is simply sent to the sign-in page; a
/// signed-in one must present its CSRF token.
pub async fn logout(
    req: HttpRequest,
    MaybeUser(user): MaybeUser,
    form: web::Form<LogoutForm>,
    client: ClientInfo,
    sessions: web::Data<Sessions>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    csrf::check_origin(&req)?;
    if let Some(user) = &user {
        csrf::check_token(&req, &form.csrf_token, Some(&user.session_id))?;
        sessions.sign_out(user, &client).await?;
    }
    Ok(to_sign_in(
        &site,
        user.is_some().then_some(Flash::SignedOut),
    ))
}
