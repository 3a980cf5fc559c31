//! `/login`: the sign-in form and its submission.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gatehouse_core::ids::Email;
use gatehouse_core::secret::Password;
use serde::Deserialize;

use crate::errors::AppError;
use crate::http::cookies;
use crate::http::csrf::{Csrf, CsrfForm, CsrfProtected};
use crate::http::flash::FlashMessage;
use crate::http::layout::{page_layout, render, see_other};
use crate::http::passkey_offer::PasskeyOffer;
use crate::http::redirects::entered;
use crate::http::{ClientInfo, MaybeUser, Site};
use crate::layout::Layout;
use crate::mail::{Mail, Mailer};
use crate::routes::verify::check_email_redirect;
use gatehouse_core::accounts::{
    Accounts, Credentials, INVALID_CREDENTIALS, MISSING_CREDENTIALS, Sessions, SignInError,
};
use gatehouse_core::auth::redirect::safe_next;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    pub email: String,
    pub password: Password,
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
    passkey_offer: PasskeyOffer,
}

/// The sign-in page's passkey button.
fn passkey_offer(req: &HttpRequest, accounts: &Accounts) -> PasskeyOffer {
    PasskeyOffer::at(req, accounts, "Sign in with a passkey", false)
}

pub async fn login_form(
    req: HttpRequest,
    MaybeUser(user): MaybeUser,
    query: web::Query<LoginQuery>,
    csrf: Csrf,
    flash: FlashMessage,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, AppError> {
    if user.is_some() {
        return Ok(see_other("/dashboard"));
    }
    let page = LoginPage {
        layout: page_layout(None, &csrf, flash),
        email: String::new(),
        next: safe_next(query.next.as_deref()).into_owned(),
        error: None,
        passkey_offer: passkey_offer(&req, &accounts),
    };
    render(StatusCode::OK, &page)
}

/// Signing in again ends the session this browser had. The right password
/// of an address nobody has confirmed signs nothing in: a fresh link goes
/// to it instead. For an account with two-factor on, it leads to the second
/// factor (unless this browser is one the account trusts).
#[expect(
    clippy::too_many_arguments,
    reason = "a handler's arguments are the extractors actix fills in"
)]
pub async fn login(
    req: HttpRequest,
    MaybeUser(current): MaybeUser,
    form: CsrfForm<LoginForm>,
    client: ClientInfo,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    sessions: web::Data<Sessions>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref()).into_owned();
    let credentials = Credentials {
        email: Email::new(&form.email),
        password: form.password,
        remember: form.remember.is_some(),
        trusted_device: cookies::read(&req, site.cookies.trusted_name()).map(str::to_owned),
    };
    let replacing = current.as_ref().map(|c| &c.0);
    match accounts
        .sign_in(&sessions, credentials, replacing, &client)
        .await
    {
        Ok((entry, _)) => Ok(entered(&site, entry, &next, current.is_some()).finish()),
        Err(SignInError::InvalidCredentials) => {
            let status = StatusCode::UNAUTHORIZED;
            let offer = passkey_offer(&req, &accounts);
            rerender(&csrf, offer, &form.email, next, INVALID_CREDENTIALS, status)
        }
        Err(SignInError::MissingCredentials) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            let offer = passkey_offer(&req, &accounts);
            rerender(&csrf, offer, &form.email, next, MISSING_CREDENTIALS, status)
        }
        Err(SignInError::EmailUnverified { link }) => {
            if let Some(link) = link {
                let mail = Mail::confirm(link, &site.origin);
                mailer.send(mail, &crate::http::request_id(&req));
            }
            Ok(check_email_redirect())
        }
        Err(e) => Err(e.into()),
    }
}

/// The form again with the e-mail as typed and one message.
fn rerender(
    csrf: &Csrf,
    passkey_offer: PasskeyOffer,
    email: &str,
    next: String,
    error: &'static str,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let page = LoginPage {
        layout: page_layout(None, csrf, FlashMessage::default()),
        email: email.trim().to_owned(),
        next,
        error: Some(error),
        passkey_offer,
    };
    render(status, &page)
}
