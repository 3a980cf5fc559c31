//! `/account`: active sessions (with revoke buttons), password change and
//! recent activity. Unlike the dashboard, this page reads the database.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDateTime;
use serde::Deserialize;

use super::layout::{Layout, format_time, render};
use super::register::password_problem;
use crate::auth::AuthUser;
use crate::auth::csrf::{self, Csrf, CsrfForm, CsrfProtected};
use crate::auth::password::{PasswordHasher, strength_problem};
use crate::auth::session::{SessionManager, event, record_event};
use crate::client::{ClientInfo, describe_device};
use crate::db::{self, DbPool, events, models, sessions, users};
use crate::errors::AppError;
use crate::flash::{Flash, FlashMessage};

/// How many events the activity list shows.
const RECENT_EVENTS: i64 = 20;

/// A form whose only field is the CSRF token (revoke buttons).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ActionForm {
    pub csrf_token: String,
}

impl CsrfProtected for ActionForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    pub current_password: String,
    pub new_password: String,
    pub csrf_token: String,
}

impl CsrfProtected for PasswordForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

pub struct SessionRow {
    pub id: String,
    pub device: String,
    pub ip: String,
    pub started: String,
    pub last_seen: String,
    pub current: bool,
}

pub struct EventRow {
    pub label: &'static str,
    pub when: String,
    pub ip: String,
    pub device: String,
}

#[derive(Default)]
pub struct PasswordErrors {
    pub current: Option<String>,
    pub new: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    layout: Layout,
    sessions: Vec<SessionRow>,
    events: Vec<EventRow>,
    errors: PasswordErrors,
}

pub async fn account(
    user: AuthUser,
    csrf: Csrf,
    flash: FlashMessage,
    pool: web::Data<DbPool>,
) -> Result<HttpResponse, AppError> {
    account_page(
        &user,
        &csrf,
        flash,
        &pool,
        PasswordErrors::default(),
        StatusCode::OK,
    )
    .await
}

async fn account_page(
    user: &AuthUser,
    csrf: &Csrf,
    flash: FlashMessage,
    pool: &web::Data<DbPool>,
    errors: PasswordErrors,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let (pool, user_id) = (pool.clone(), user.user_id.clone());
    let (active, recent) = web::block(move || -> Result<_, AppError> {
        let mut conn = pool.get()?;
        let active = sessions::list_active(&mut conn, &user_id, db::now())?;
        let recent = events::recent(&mut conn, &user_id, RECENT_EVENTS)?;
        Ok((active, recent))
    })
    .await??;
    let page = AccountPage {
        layout: Layout::new(Some(user), csrf, flash),
        sessions: active
            .into_iter()
            .map(|s| session_row(s, &user.session_id))
            .collect(),
        events: recent.into_iter().map(event_row).collect(),
        errors,
    };
    render(status, &page)
}

fn session_row(session: models::Session, current: &str) -> SessionRow {
    SessionRow {
        current: session.id == current,
        device: describe_device(&session.user_agent),
        ip: session.ip,
        started: format_time(session.created_at),
        last_seen: format_time(session.last_seen_at),
        id: session.id,
    }
}

fn event_row(e: models::AuthEvent) -> EventRow {
    EventRow {
        label: event_label(&e.kind),
        when: format_time(e.created_at),
        device: describe_device(&e.user_agent),
        ip: e.ip,
    }
}

fn event_label(kind: &str) -> &'static str {
    match kind {
        event::REGISTERED => "Account created",
        event::SIGNED_IN => "Signed in",
        event::SIGN_IN_FAILED => "Failed sign-in",
        event::SIGNED_OUT => "Signed out",
        event::SESSION_REVOKED => "Session revoked",
        event::PASSWORD_CHANGED => "Password changed",
        event::REFRESH_REUSE => "Stolen session token detected; session ended",
        event::SESSION_EXPIRED => "Session expired",
        _ => "Other",
    }
}

/// `POST /account/sessions/{id}/revoke`: only the owner's live sessions
/// exist here; anything else is a 404.
pub async fn revoke_session(
    user: AuthUser,
    path: web::Path<String>,
    _form: CsrfForm<ActionForm>,
    client: ClientInfo,
    pool: web::Data<DbPool>,
    manager: web::Data<SessionManager>,
) -> Result<HttpResponse, AppError> {
    let target = path.into_inner();
    let now = db::now();
    let revoked = {
        let (pool, target, user_id) = (pool.clone(), target.clone(), user.user_id.clone());
        web::block(move || -> Result<_, AppError> {
            let mut conn = pool.get()?;
            Ok(db::write_transaction(&mut conn, |conn| {
                let kind = event::SESSION_REVOKED;
                let revoked = sessions::revoke(conn, &target, &user_id, now, kind)?;
                if revoked {
                    record_event(conn, Some(&user_id), Some(&target), kind, &client, now)?;
                }
                Ok::<_, diesel::result::Error>(revoked)
            })?)
        })
        .await??
    };
    if !revoked {
        return Err(AppError::NotFound);
    }
    manager.revoked().insert([target.clone()], now);
    tracing::info!(event = event::SESSION_REVOKED, user_id = %user.user_id, session_id = %target);

    let cookies = manager.cookies();
    let mut response = HttpResponse::SeeOther();
    if target == user.session_id {
        // Revoking this very session is signing out.
        response
            .insert_header((header::LOCATION, "/login"))
            .cookie(cookies.removal(cookies.access_name()))
            .cookie(cookies.removal(cookies.refresh_name()))
            .cookie(cookies.csrf(csrf::new_cookie_value()))
            .cookie(cookies.flash(Flash::SignedOut.code()));
    } else {
        response
            .insert_header((header::LOCATION, "/account"))
            .cookie(cookies.flash(Flash::SessionRevoked.code()));
    }
    Ok(response.finish())
}

/// `POST /account/sessions/revoke-others`.
pub async fn revoke_others(
    user: AuthUser,
    _form: CsrfForm<ActionForm>,
    client: ClientInfo,
    pool: web::Data<DbPool>,
    manager: web::Data<SessionManager>,
) -> Result<HttpResponse, AppError> {
    let now = db::now();
    let ended = end_other_sessions(&pool, &user, client, now, event::SESSION_REVOKED, None).await?;
    manager.revoked().insert(ended.iter().cloned(), now);
    tracing::info!(event = event::SESSION_REVOKED, user_id = %user.user_id, count = ended.len());
    let cookies = manager.cookies();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/account"))
        .cookie(cookies.flash(Flash::OtherSessionsRevoked.code()))
        .finish())
}

/// Revokes every session of `user` but the current one, records one event, and
/// (when given) stores a new password hash, all in one transaction.
async fn end_other_sessions(
    pool: &web::Data<DbPool>,
    user: &AuthUser,
    client: ClientInfo,
    now: NaiveDateTime,
    kind: &'static str,
    new_password_hash: Option<String>,
) -> Result<Vec<String>, AppError> {
    let (pool, user_id, keep) = (pool.clone(), user.user_id.clone(), user.session_id.clone());
    web::block(move || -> Result<_, AppError> {
        let mut conn = pool.get()?;
        Ok(db::write_transaction(&mut conn, |conn| {
            if let Some(hash) = &new_password_hash {
                users::update_password(conn, &user_id, hash, now)?;
            }
            let ended = sessions::revoke_all_except(conn, &user_id, &keep, now, kind)?;
            record_event(conn, Some(&user_id), Some(&keep), kind, &client, now)?;
            Ok::<_, diesel::result::Error>(ended)
        })?)
    })
    .await?
}

/// `POST /account/password`: the current password is required; success ends
/// every other session and re-issues this one's tokens.
#[allow(clippy::too_many_arguments)]
pub async fn change_password(
    user: AuthUser,
    form: CsrfForm<PasswordForm>,
    client: ClientInfo,
    csrf: Csrf,
    pool: web::Data<DbPool>,
    hasher: web::Data<PasswordHasher>,
    manager: web::Data<SessionManager>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let stored = {
        let (pool, user_id) = (pool.clone(), user.user_id.clone());
        web::block(move || -> Result<_, AppError> {
            let mut conn = pool.get()?;
            Ok(users::find(&mut conn, &user_id)?)
        })
        .await??
        .ok_or_else(|| AppError::internal("signed-in user has no users row"))?
    };
    let current_ok = {
        let _slot = hasher.permit().await;
        let (hasher, hash, password) = (
            hasher.clone(),
            stored.password_hash.clone(),
            form.current_password.clone(),
        );
        web::block(move || hasher.verify(&password, Some(&hash))).await?
    };
    let mut errors = PasswordErrors::default();
    if !current_ok {
        errors.current = Some("Your current password is not correct.".into());
    }
    errors.new = {
        let (new_password, email, name) = (
            form.new_password.clone(),
            stored.email.clone(),
            stored.name.clone(),
        );
        web::block(move || {
            password_problem(&new_password)
                .or_else(|| strength_problem(&new_password, &[email.as_str(), name.as_str()]))
        })
        .await?
    };
    if errors.current.is_some() || errors.new.is_some() {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return account_page(&user, &csrf, FlashMessage::default(), &pool, errors, status).await;
    }

    let new_hash = {
        let _slot = hasher.permit().await;
        let (hasher, password) = (hasher.clone(), form.new_password);
        web::block(move || hasher.hash(&password)).await??
    };
    let now = db::now();
    let kind = event::PASSWORD_CHANGED;
    let ended = end_other_sessions(&pool, &user, client, now, kind, Some(new_hash)).await?;
    manager.revoked().insert(ended.iter().cloned(), now);
    let issued = {
        let (pool, manager, session_id) = (pool.clone(), manager.clone(), user.session_id.clone());
        web::block(move || -> Result<_, AppError> {
            let mut conn = pool.get()?;
            Ok(manager.reissue(&mut conn, &session_id, now)?)
        })
        .await??
        .ok_or_else(|| AppError::internal("current session vanished during password change"))?
    };
    tracing::info!(event = kind, user_id = %user.user_id, session_id = %user.session_id, ended = ended.len());

    let mut response = HttpResponse::SeeOther();
    response.insert_header((header::LOCATION, "/account"));
    manager.set_cookies(&mut response, &user, &issued)?;
    response.cookie(manager.cookies().flash(Flash::PasswordChanged.code()));
    Ok(response.finish())
}
