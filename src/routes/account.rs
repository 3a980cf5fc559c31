//! `/account`: the address (and a change of it), active sessions (with
//! revoke buttons), password change, two-factor sign-in and trusted devices, deletion and recent activity. Unlike the dashboard, this page reads the database.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use gatehouse_core::ids::{Email, SessionId};
use gatehouse_core::secret::Password;
use serde::Deserialize;

use crate::errors::AppError;
use crate::http::client::describe_device;
use crate::http::csrf::{Csrf, CsrfForm, CsrfProtected};
use crate::http::flash::{Flash, FlashMessage};
use crate::http::layout::{format_time, page_layout, render, see_other};
use crate::http::redirects::{see_other_with, to_sign_in};
use crate::http::{AuthUser, ClientInfo, Site};
use crate::layout::Layout;
use crate::mail::{Mail, Mailer};
use gatehouse_core::accounts::{
    Accounts, DeleteAccountError, EmailChangeError, PasswordChangeError, PasswordErrors, Sessions,
};

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
pub struct DeleteForm {
    pub current_password: Password,
    pub csrf_token: String,
}

impl CsrfProtected for DeleteForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EmailForm {
    pub new_email: String,
    pub current_password: Password,
    pub csrf_token: String,
}

impl CsrfProtected for EmailForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PasswordForm {
    pub current_password: Password,
    pub new_password: Password,
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

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    layout: Layout,
    /// The account's address, and the one it is changing to.
    email: String,
    pending_email: Option<String>,
    email_form: EmailProblems,
    sessions: Vec<SessionRow>,
    events: Vec<EventRow>,
    errors: PasswordErrors,
    /// Why the account was not deleted.
    delete_error: Option<&'static str>,
    two_factor: super::two_factor::TwoFactorSummary,
    /// How many passkeys the account has; `None`: passkeys are unavailable.
    passkeys: Option<i64>,
}

pub async fn account(
    user: AuthUser,
    csrf: Csrf,
    flash: FlashMessage,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, AppError> {
    let page = account_page(&user, &csrf, flash, &accounts, Problems::default()).await?;
    render(StatusCode::OK, &page)
}

/// What a failed form on the account page says.
#[derive(Default)]
struct Problems {
    email: EmailProblems,
    password: PasswordErrors,
    delete: Option<&'static str>,
}

/// The e-mail form as typed, and its messages.
#[derive(Default)]
pub struct EmailProblems {
    pub new_email: String,
    pub new_email_error: Option<String>,
    pub password_error: Option<String>,
}

async fn account_page(
    user: &AuthUser,
    csrf: &Csrf,
    flash: FlashMessage,
    accounts: &Accounts,
    problems: Problems,
) -> Result<AccountPage, AppError> {
    let overview = accounts.overview(&user.user_id).await?;
    let profile = accounts
        .profile(&user.user_id)
        .await?
        .ok_or_else(|| AppError::internal("a signed-in account has no row"))?;
    let pending_email = accounts.pending_email_change(&user.user_id).await?;
    Ok(AccountPage {
        layout: page_layout(Some(user), csrf, flash),
        email: profile.email.to_string(),
        pending_email: pending_email.map(|e| e.to_string()),
        email_form: problems.email,
        sessions: overview
            .sessions
            .into_iter()
            .map(|s| SessionRow {
                current: s.id == user.session_id,
                device: describe_device(&s.user_agent),
                ip: s.ip,
                started: format_time(s.started),
                last_seen: format_time(s.last_seen),
                id: s.id.to_string(),
            })
            .collect(),
        events: overview
            .events
            .into_iter()
            .map(|e| EventRow {
                label: e.label(),
                when: format_time(e.at),
                device: describe_device(&e.user_agent),
                ip: e.ip,
            })
            .collect(),
        errors: problems.password,
        delete_error: problems.delete,
        two_factor: super::two_factor::summary(accounts, user).await?,
        passkeys: if accounts.passkeys_available() {
            Some(accounts.passkey_count(&user.user_id).await?)
        } else {
            None
        },
    })
}

/// `POST /account/sessions/{id}/revoke`: only the owner's live sessions
/// exist here; anything else is a 404.
pub async fn revoke_session(
    user: AuthUser,
    path: web::Path<String>,
    _form: CsrfForm<ActionForm>,
    client: ClientInfo,
    sessions: web::Data<Sessions>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let target = SessionId::from_stored(path.into_inner());
    sessions.revoke_session(&user, &target, &client).await?;
    Ok(if target == user.session_id {
        // Revoking this very session is signing out.
        to_sign_in(&site, Some(Flash::SignedOut))
    } else {
        see_other_with(&site, "/account", Flash::SessionRevoked)
    })
}

/// `POST /account/sessions/revoke-others`.
pub async fn revoke_others(
    user: AuthUser,
    _form: CsrfForm<ActionForm>,
    client: ClientInfo,
    sessions: web::Data<Sessions>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    sessions.revoke_others(&user, &client).await?;
    Ok(see_other_with(
        &site,
        "/account",
        Flash::OtherSessionsRevoked,
    ))
}

/// `GET /account/password` and `GET /account/delete`: the addresses a failed
/// form leaves in the browser; the forms live on the account page.
pub async fn to_account_page(_user: AuthUser) -> HttpResponse {
    see_other("/account")
}

/// `POST /account/password`: the current password is required; success ends
/// every other session and re-issues this one's tokens.
pub async fn change_password(
    user: AuthUser,
    form: CsrfForm<PasswordForm>,
    client: ClientInfo,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    sessions: web::Data<Sessions>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let changed = accounts
        .change_password(
            &sessions,
            &user,
            form.current_password,
            form.new_password,
            &client,
        )
        .await;
    match changed {
        Ok(signed_in) => {
            let mut response = HttpResponse::SeeOther();
            response.insert_header((header::LOCATION, "/account"));
            site.cookies.set_session(&mut response, &signed_in.session);
            response.cookie(site.cookies.flash(Flash::PasswordChanged.code()));
            Ok(response.finish())
        }
        Err(PasswordChangeError::SessionEnded) => Ok(to_sign_in(&site, None)),
        Err(PasswordChangeError::Invalid(errors)) => {
            let flash = FlashMessage::default();
            let problems = Problems {
                password: errors,
                ..Problems::default()
            };
            let page = account_page(&user, &csrf, flash, &accounts, problems).await?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /account/email`: with the current password, a link goes to the new
/// address (or, when it is another account's, a notice to its owner: the
/// answer is the same) and a notice to the current one. The address changes
/// when the link's form is sent with the password.
#[expect(
    clippy::too_many_arguments,
    reason = "one extractor per need, as actix hands them"
)]
pub async fn change_email(
    req: actix_web::HttpRequest,
    user: AuthUser,
    form: CsrfForm<EmailForm>,
    client: ClientInfo,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let typed = form.new_email.trim().to_owned();
    let requested = accounts
        .request_email_change(
            &user,
            Email::new(&form.new_email),
            form.current_password,
            &client,
        )
        .await;
    match requested {
        Ok(mails) => {
            let request_id = crate::http::request_id(&req);
            let origin = &site.origin;
            if let Some(link) = mails.link {
                mailer.send(Mail::confirm(link, origin), &request_id);
            }
            if let Some((to, name)) = mails.address_taken {
                let login = format!("{origin}/login");
                let to = to.to_string();
                mailer.send(Mail::AddressOffered { to, name, login }, &request_id);
            }
            let (to, name, new_email) = mails.notice;
            let notice = Mail::EmailChangeRequested {
                to: to.to_string(),
                name,
                new_email: new_email.to_string(),
                account: format!("{origin}/account"),
            };
            mailer.send(notice, &request_id);
            Ok(see_other_with(&site, "/account", Flash::EmailChangeSent))
        }
        Err(EmailChangeError::Invalid {
            new_email,
            current_password,
        }) => {
            let problems = Problems {
                email: EmailProblems {
                    new_email: typed,
                    new_email_error: new_email,
                    password_error: current_password,
                },
                ..Problems::default()
            };
            let page =
                account_page(&user, &csrf, FlashMessage::default(), &accounts, problems).await?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(EmailChangeError::SessionEnded) => Ok(to_sign_in(&site, None)),
        Err(EmailChangeError::Failed(e)) => Err(e.into()),
    }
}

/// `POST /account/email/cancel`: drops the pending change of address.
pub async fn cancel_email_change(
    user: AuthUser,
    _form: CsrfForm<ActionForm>,
    accounts: web::Data<Accounts>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    accounts.cancel_email_change(&user.user_id).await?;
    Ok(see_other_with(
        &site,
        "/account",
        Flash::EmailChangeCancelled,
    ))
}

/// `POST /account/delete`: with the current password, the account and all
/// that is keyed to it are deleted, every session ends (on every instance),
/// this browser's cookies are cleared and a notice goes to the address.
#[expect(
    clippy::too_many_arguments,
    reason = "one extractor per need, as actix hands them"
)]
pub async fn delete_account(
    req: actix_web::HttpRequest,
    user: AuthUser,
    form: CsrfForm<DeleteForm>,
    client: ClientInfo,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    sessions: web::Data<Sessions>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    match accounts
        .delete_account(&sessions, &user, form.current_password, &client)
        .await
    {
        Ok(deleted) => {
            mailer.send(
                Mail::AccountDeleted {
                    to: deleted.email.to_string(),
                    name: deleted.name,
                    register: format!("{}/register", site.origin),
                },
                &crate::http::request_id(&req),
            );
            Ok(to_sign_in(&site, Some(Flash::AccountDeleted)))
        }
        Err(DeleteAccountError::SessionEnded) => Ok(to_sign_in(&site, None)),
        Err(DeleteAccountError::WrongPassword) => {
            let problems = Problems {
                delete: Some("Your current password is not correct."),
                ..Problems::default()
            };
            let page =
                account_page(&user, &csrf, FlashMessage::default(), &accounts, problems).await?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(DeleteAccountError::Failed(e)) => Err(e.into()),
    }
}
