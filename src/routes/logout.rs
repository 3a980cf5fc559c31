//! `/logout`: a GET shows a confirmation button; only the POST signs out.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::layout::{Layout, render, see_other};
use crate::auth::AuthUser;
use crate::auth::csrf::{self, Csrf};
use crate::auth::session::{SessionManager, event, record_event};
use crate::client::ClientInfo;
use crate::db::{self, DbPool, sessions};
use crate::errors::AppError;
use crate::flash::{Flash, FlashMessage};

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
    user: Option<AuthUser>,
    csrf: Csrf,
    flash: FlashMessage,
) -> Result<HttpResponse, AppError> {
    let Some(user) = user else {
        return Ok(see_other("/login"));
    };
    let page = LogoutPage {
        layout: Layout::new(Some(&user), &csrf, flash),
    };
    render(StatusCode::OK, &page)
}

/// Ends the session server-side and clears the cookies. A browser that is not
/// signed in has nothing to end and is simply sent to the sign-in page; a
/// signed-in one must present its CSRF token.
pub async fn logout(
    req: HttpRequest,
    user: Option<AuthUser>,
    form: web::Form<LogoutForm>,
    client: ClientInfo,
    pool: web::Data<DbPool>,
    manager: web::Data<SessionManager>,
) -> Result<HttpResponse, AppError> {
    csrf::check_origin(&req)?;
    if let Some(user) = &user {
        csrf::check_token(&req, &form.csrf_token, Some(user), false)?;
        let now = db::now();
        let ip = client.ip.clone();
        let (pool, session_id, user_id) =
            (pool.clone(), user.session_id.clone(), user.user_id.clone());
        web::block(move || -> Result<_, AppError> {
            let mut conn = pool.get()?;
            Ok(db::write_transaction(&mut conn, |conn| {
                sessions::revoke(conn, &session_id, &user_id, now, event::SIGNED_OUT)?;
                let sid = Some(session_id.as_str());
                record_event(conn, Some(&user_id), sid, event::SIGNED_OUT, &client, now)
            })?)
        })
        .await??;
        manager.revoked().insert([user.session_id.clone()], now);
        tracing::info!(event = event::SIGNED_OUT, user_id = %user.user_id, session_id = %user.session_id, ip = %ip);
    }
    let cookies = manager.cookies();
    let mut response = HttpResponse::SeeOther();
    response
        .insert_header((header::LOCATION, "/login"))
        .cookie(cookies.removal(cookies.access_name()))
        .cookie(cookies.removal(cookies.refresh_name()))
        .cookie(cookies.csrf(csrf::new_cookie_value()));
    if user.is_some() {
        response.cookie(cookies.flash(Flash::SignedOut.code()));
    }
    Ok(response.finish())
}
