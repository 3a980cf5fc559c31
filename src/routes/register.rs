//! `/register`: create an account and sign in, or, with confirmation
//! required, keep the registration until its address is confirmed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gatehouse_core::ids::Email;
use gatehouse_core::secret::Password;
use serde::Deserialize;

use crate::errors::AppError;
use crate::http::csrf::{Csrf, CsrfForm, CsrfProtected};
use crate::http::flash::FlashMessage;
use crate::http::layout::{page_layout, render, see_other};
use crate::http::{ClientInfo, MaybeUser, Site};
use crate::layout::Layout;
use crate::mail::{Mail, Mailer};
use crate::routes::verify::check_email_redirect;
use gatehouse_core::accounts::{
    Accounts, EMAIL_TAKEN, FieldErrors, NewAccount, RegisterError, Registered, Sessions,
};

/// Every field defaults to empty, so a missing field is a validation message,
/// not a deserialisation error.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RegisterForm {
    pub name: String,
    pub email: String,
    pub password: Password,
    pub csrf_token: String,
}

impl CsrfProtected for RegisterForm {
    const SIGNED_OUT_FORM: bool = true;

    fn csrf_token(&self) -> &str {
        &self.csrf_token
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
    MaybeUser(user): MaybeUser,
    csrf: Csrf,
    flash: FlashMessage,
) -> Result<HttpResponse, AppError> {
    if user.is_some() {
        return Ok(see_other("/dashboard"));
    }
    let page = RegisterPage {
        layout: page_layout(None, &csrf, flash),
        name: String::new(),
        email: String::new(),
        errors: FieldErrors::default(),
    };
    render(StatusCode::OK, &page)
}

/// With confirmation required, every valid form lands on the same page and
/// the mail (a link, or "you already have an account") leaves off the
/// request path; otherwise the account is made and signed in at once.
#[expect(
    clippy::too_many_arguments,
    reason = "a handler's arguments are the extractors actix fills in"
)]
pub async fn register(
    req: HttpRequest,
    MaybeUser(user): MaybeUser,
    form: CsrfForm<RegisterForm>,
    client: ClientInfo,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    sessions: web::Data<Sessions>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    if user.is_some() {
        return Ok(see_other("/dashboard"));
    }
    let form = form.into_inner();
    // Shown again as typed; a taken address is shown as it was compared.
    let (name, email) = (form.name.trim().to_owned(), form.email.trim().to_owned());
    let account = NewAccount {
        name: form.name,
        email: Email::new(&form.email),
        password: form.password,
    };
    match accounts.sign_up(&sessions, account, &client).await {
        Ok(Registered::SignedIn(signed_in)) => Ok(site
            .cookies
            .signed_in_redirect(&signed_in.session, "/dashboard")),
        Ok(Registered::Pending(mail)) => {
            if let Some(mail) = mail {
                let mail = Mail::for_registration(mail, &site.origin);
                mailer.send(mail, &crate::http::request_id(&req));
            }
            Ok(check_email_redirect())
        }
        Err(RegisterError::Invalid(errors)) => rerender(&csrf, name, email, errors),
        Err(RegisterError::EmailTaken { email }) => {
            let errors = FieldErrors {
                email: Some(EMAIL_TAKEN.into()),
                ..FieldErrors::default()
            };
            rerender(&csrf, name, email.to_string(), errors)
        }
        Err(e) => Err(e.into()),
    }
}

/// The form again, with what was typed and a message per field (422).
fn rerender(
    csrf: &Csrf,
    name: String,
    email: String,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    let page = RegisterPage {
        layout: page_layout(None, csrf, FlashMessage::default()),
        name,
        email,
        errors,
    };
    render(StatusCode::UNPROCESSABLE_ENTITY, &page)
}
