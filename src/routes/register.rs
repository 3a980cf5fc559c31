//! `/register`: create an account and sign in.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Deserialize;

use super::layout::{Layout, render, see_other};
use crate::auth::AuthUser;
use crate::auth::csrf::{Csrf, CsrfForm, CsrfProtected};
use crate::auth::password::{
    MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, PasswordHasher, strength_problem,
};
use crate::auth::session::{SessionManager, event, record_event};
use crate::auth::throttle::{self, ThrottlePolicy};
use crate::client::ClientInfo;
use crate::db::{self, DbPool, models::NewUser, users};
use crate::errors::AppError;
use crate::flash::FlashMessage;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_EMAIL_BYTES: usize = 254;

/// Every field defaults to empty, so a missing field is a validation message,
/// not a deserialisation error.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegisterForm {
    pub name: String,
    pub email: String,
    pub password: String,
    pub csrf_token: String,
}

impl CsrfProtected for RegisterForm {
    const SIGNED_OUT_FORM: bool = true;

    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Debug, Default)]
pub struct FieldErrors {
    pub name: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
}

impl FieldErrors {
    fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none() && self.password.is_none()
    }
}

#[derive(Template)]
#[template(path = "register.html")]
pub struct RegisterPage {
    layout: Layout,
    name: String,
    email: String,
    errors: FieldErrors,
}

pub async fn register_form(
    user: Option<AuthUser>,
    csrf: Csrf,
    flash: FlashMessage,
) -> Result<HttpResponse, AppError> {
    if user.is_some() {
        return Ok(see_other("/dashboard"));
    }
    let page = RegisterPage {
        layout: Layout::new(None, &csrf, flash),
        name: String::new(),
        email: String::new(),
        errors: FieldErrors::default(),
    };
    render(StatusCode::OK, &page)
}

/// A registration that passed validation.
#[derive(Debug)]
pub struct Registration {
    pub name: String,
    pub email: String,
    pub password: String,
}

/// Trims and checks the form; on failure returns the message for each field.
pub fn validate(form: RegisterForm) -> Result<Registration, (FieldErrors, String, String)> {
    let name = form.name.trim().to_owned();
    let email = normalize_email(&form.email);
    let mut errors = FieldErrors::default();

    let name_chars = name.chars().count();
    if name_chars == 0 {
        errors.name = Some("Enter your name.".into());
    } else if name_chars > MAX_NAME_CHARS {
        errors.name = Some(format!("Use at most {MAX_NAME_CHARS} characters."));
    } else if name.chars().any(char::is_control) {
        errors.name = Some("Your name cannot contain control characters.".into());
    }

    if email.is_empty() {
        errors.email = Some("Enter your email address.".into());
    } else if !is_valid_email(&email) {
        errors.email = Some("Enter a valid email address, like name@example.com.".into());
    }

    errors.password = password_problem(&form.password).or_else(|| {
        let related = [email.as_str(), name.as_str()];
        strength_problem(&form.password, &related)
    });

    if errors.is_empty() {
        Ok(Registration {
            name,
            email,
            password: form.password,
        })
    } else {
        Err((errors, name, form.email.trim().to_owned()))
    }
}

/// Length rules shared by registration and password change.
pub fn password_problem(password: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        Some(format!("Use at least {MIN_PASSWORD_CHARS} characters."))
    } else if password.len() > MAX_PASSWORD_BYTES {
        Some(format!(
            "Use at most {MAX_PASSWORD_BYTES} bytes (fewer characters if you use accents or emoji); \
             longer passwords cannot be stored without cutting them short."
        ))
    } else {
        None
    }
}

pub fn normalize_email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

fn is_valid_email(email: &str) -> bool {
    email.len() <= MAX_EMAIL_BYTES
        && email_address::EmailAddress::is_valid(email)
        && email
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domain.contains('.') && !domain.starts_with('['))
}

#[allow(clippy::too_many_arguments)]
pub async fn register(
    user: Option<AuthUser>,
    form: CsrfForm<RegisterForm>,
    client: ClientInfo,
    csrf: Csrf,
    pool: web::Data<DbPool>,
    hasher: web::Data<PasswordHasher>,
    manager: web::Data<SessionManager>,
    limits: web::Data<ThrottlePolicy>,
) -> Result<HttpResponse, AppError> {
    if user.is_some() {
        return Ok(see_other("/dashboard"));
    }
    let rerender = |errors: FieldErrors, name: String, email: String| {
        let page = RegisterPage {
            layout: Layout::new(None, &csrf, FlashMessage::default()),
            name,
            email,
            errors,
        };
        render(StatusCode::UNPROCESSABLE_ENTITY, &page)
    };
    let blocked = {
        let (pool, ip, limits) = (pool.clone(), client.ip.clone(), **limits);
        web::block(move || -> Result<_, AppError> {
            let mut conn = pool.get()?;
            Ok(throttle::registration_blocked_for(
                &mut conn,
                &limits,
                &ip,
                db::now(),
            )?)
        })
        .await??
    };
    if let Some(retry_after) = blocked {
        tracing::info!(event = "registration_throttled", ip = %client.ip);
        return Err(AppError::TooManyRequests { retry_after });
    }
    let form = form.into_inner();
    let registration = match web::block(move || validate(form)).await? {
        Ok(r) => r,
        Err((errors, name, email)) => return rerender(errors, name, email),
    };

    let password_hash = {
        let _slot = hasher.permit().await;
        let hasher = hasher.clone();
        let password = registration.password;
        web::block(move || hasher.hash(&password)).await??
    };

    let user_id = uuid::Uuid::new_v4().to_string();
    let now = db::now();
    let inserted = {
        let (pool, manager, user_id, client) = (
            pool.clone(),
            manager.clone(),
            user_id.clone(),
            client.clone(),
        );
        let (name, email) = (registration.name.clone(), registration.email.clone());
        web::block(move || -> Result<_, AppError> {
            let mut conn = pool.get()?;
            Ok(db::write_transaction(&mut conn, |conn| {
                users::insert(
                    conn,
                    &NewUser {
                        id: &user_id,
                        email: &email,
                        name: &name,
                        password_hash: &password_hash,
                        created_at: now,
                        updated_at: now,
                    },
                )?;
                let issued = manager.create(conn, &user_id, &client, false, now)?;
                let sid = Some(issued.session_id.as_str());
                record_event(conn, Some(&user_id), sid, event::REGISTERED, &client, now)?;
                Ok(issued)
            }))
        })
        .await??
    };
    let issued = match inserted {
        Ok(issued) => issued,
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            let errors = FieldErrors {
                email: Some("An account with this email already exists. Sign in instead?".into()),
                ..FieldErrors::default()
            };
            return rerender(errors, registration.name, registration.email);
        }
        Err(e) => return Err(e.into()),
    };

    tracing::info!(
        event = event::REGISTERED,
        user_id = %user_id,
        session_id = %issued.session_id,
        ip = %client.ip
    );
    let user = AuthUser {
        user_id,
        session_id: issued.session_id.clone(),
        name: registration.name,
        auth_time: now.and_utc().timestamp(),
    };
    manager.signed_in_response(&user, &issued, "/dashboard")
}
