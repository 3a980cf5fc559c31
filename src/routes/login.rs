//! `/login`: the sign-in form and its submission.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::layout::{Layout, render, see_other};
use super::register::normalize_email;
use crate::auth::AuthUser;
use crate::auth::csrf::{Csrf, CsrfForm, CsrfProtected};
use crate::auth::password::PasswordHasher;
use crate::auth::redirect::safe_next;
use crate::auth::session::{SessionManager, event, record_event};
use crate::auth::throttle::{self, ThrottlePolicy};
use crate::client::ClientInfo;
use crate::db::{self, DbPool, sessions, users};
use crate::errors::AppError;
use crate::flash::FlashMessage;

/// The one message for every failed sign-in, so the page never tells whether
/// an e-mail has an account.
pub const LOGIN_FAILED: &str = "Invalid email or password.";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    pub email: String,
    pub password: String,
    pub remember: Option<String>,
    pub next: Option<String>,
    pub csrf_token: String,
}

impl CsrfProtected for LoginForm {
    const SIGNED_OUT_FORM: bool = true;

    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginQuery {
    pub next: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    layout: Layout,
    email: String,
    next: String,
    error: Option<&'static str>,
}

pub async fn login_form(
    user: Option<AuthUser>,
    query: web::Query<LoginQuery>,
    csrf: Csrf,
    flash: FlashMessage,
) -> Result<HttpResponse, AppError> {
    if user.is_some() {
        return Ok(see_other("/dashboard"));
    }
    let page = LoginPage {
        layout: Layout::new(None, &csrf, flash),
        email: String::new(),
        next: safe_next(query.next.as_deref()).into_owned(),
        error: None,
    };
    render(StatusCode::OK, &page)
}

#[allow(clippy::too_many_arguments)]
pub async fn login(
    current: Option<AuthUser>,
    form: CsrfForm<LoginForm>,
    client: ClientInfo,
    csrf: Csrf,
    pool: web::Data<DbPool>,
    hasher: web::Data<PasswordHasher>,
    manager: web::Data<SessionManager>,
    limits: web::Data<ThrottlePolicy>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let remember = form.remember.is_some();
    let email = normalize_email(&form.email);
    let next = safe_next(form.next.as_deref()).into_owned();

    // Throttling first: a locked pair or IP costs no bcrypt, right password or not.
    let (blocked, user) = {
        let (pool, email, ip, limits) = (pool.clone(), email.clone(), client.ip.clone(), **limits);
        web::block(move || -> Result<_, AppError> {
            let mut conn = pool.get()?;
            let blocked = throttle::login_blocked_for(&mut conn, &limits, &email, &ip, db::now())?;
            let user = match blocked {
                Some(_) => None,
                None => users::find_by_email(&mut conn, &email)?,
            };
            Ok((blocked, user))
        })
        .await??
    };
    if let Some(retry_after) = blocked {
        tracing::info!(event = "sign_in_throttled", ip = %client.ip, retry_after = retry_after.as_secs());
        return Err(AppError::TooManyRequests { retry_after });
    }

    let password = form.password;
    let verified = {
        let _slot = hasher.permit().await;
        let hasher = hasher.clone();
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let password = password.clone();
        web::block(move || hasher.verify(&password, hash.as_deref())).await?
    };
    let user = match user {
        Some(user) if verified => user,
        found => {
            let user_id = found.map(|u| u.id);
            tracing::info!(event = event::SIGN_IN_FAILED, user_id = user_id.as_deref(), ip = %client.ip);
            let (pool, client, limits, email) =
                (pool.clone(), client.clone(), **limits, email.clone());
            web::block(move || -> Result<_, AppError> {
                let mut conn = pool.get()?;
                let now = db::now();
                Ok(db::write_transaction(&mut conn, |conn| {
                    throttle::record_login_failure(conn, &limits, &email, &client.ip, now)?;
                    // Recorded for unknown e-mails too (without a user), so both
                    // failures do the same database work.
                    let user = user_id.as_deref();
                    record_event(conn, user, None, event::SIGN_IN_FAILED, &client, now)
                })?)
            })
            .await??;
            let page = LoginPage {
                layout: Layout::new(None, &csrf, FlashMessage::default()),
                email: form.email.trim().to_owned(),
                next,
                error: Some(LOGIN_FAILED),
            };
            return render(StatusCode::UNAUTHORIZED, &page);
        }
    };

    // A raised BCRYPT_COST upgrades the stored hash at the next sign-in.
    let rehashed = if hasher.needs_rehash(&user.password_hash) {
        let _slot = hasher.permit().await;
        let hasher = hasher.clone();
        Some(web::block(move || hasher.hash(&password)).await??)
    } else {
        None
    };

    // Signing in again ends the session this browser had.
    let now = db::now();
    let issued = {
        let (pool, manager, user_id, client) = (
            pool.clone(),
            manager.clone(),
            user.id.clone(),
            client.clone(),
        );
        let (replaced, email) = (current.clone(), email.clone());
        web::block(move || -> Result<_, AppError> {
            let mut conn = pool.get()?;
            Ok(db::write_transaction(&mut conn, |conn| {
                throttle::record_login_success(conn, &email, &client.ip)?;
                if let Some(hash) = &rehashed {
                    users::update_password(conn, &user_id, hash, now)?;
                }
                if let Some(old) = &replaced {
                    sessions::revoke(conn, &old.session_id, &old.user_id, now, event::SIGNED_OUT)?;
                }
                let issued = manager.create(conn, &user_id, &client, remember, now)?;
                let sid = Some(issued.session_id.as_str());
                record_event(conn, Some(&user_id), sid, event::SIGNED_IN, &client, now)?;
                Ok::<_, diesel::result::Error>(issued)
            })?)
        })
        .await??
    };
    if let Some(old) = &current {
        manager.revoked().insert([old.session_id.clone()], now);
    }
    tracing::info!(
        event = event::SIGNED_IN,
        user_id = %user.id,
        session_id = %issued.session_id,
        replaced_session = current.as_ref().map(|c| c.session_id.as_str()),
        ip = %client.ip
    );
    let signed_in = AuthUser {
        user_id: user.id,
        session_id: issued.session_id.clone(),
        name: user.name,
        auth_time: now.and_utc().timestamp(),
    };
    manager.signed_in_response(&signed_in, &issued, &next)
}
