//! Starting and ending sessions: the `sessions` row and the cookies that go
//! with it.

use actix_web::HttpResponse;
use actix_web::http::header;

use super::cookie::CookieConfig;
use super::csrf;
use super::jwt::JwtKeys;
use crate::client::ClientInfo;
use crate::db::models::NewSession;
use crate::errors::AppError;

/// A fresh random session id.
pub fn new_session_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The row for a session that starts now.
pub fn new_session_row<'a>(
    id: &'a str,
    user_id: &'a str,
    client: &'a ClientInfo,
    now: chrono::NaiveDateTime,
) -> NewSession<'a> {
    NewSession {
        id,
        user_id,
        created_at: now,
        last_seen_at: now,
        ip: &client.ip,
        user_agent: &client.user_agent,
    }
}

/// The 303 that completes a sign-in: a new access cookie and a new CSRF cookie
/// (tokens from before the sign-in stop matching this session).
pub fn signed_in_response(
    keys: &JwtKeys,
    cookies: &CookieConfig,
    user_id: &str,
    session_id: &str,
    name: &str,
    auth_time: i64,
    location: &str,
) -> Result<HttpResponse, AppError> {
    let token = keys.issue(user_id, session_id, name, auth_time)?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .cookie(cookies.access(token))
        .cookie(cookies.csrf(csrf::new_cookie_value()))
        .finish())
}
