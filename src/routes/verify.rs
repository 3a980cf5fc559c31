//! Confirming an address: `/register/check-email` (where every registration
//! lands, whatever the address), `/register/resend`, and the mailed link
//! `/verify/{token}`, whose page changes nothing and whose form takes the
//! password. The token stays in the path: the site's `same-origin` referrer
//! policy keeps it from other sites (`no-referrer` would make the browser
//! send the form with `Origin: null`, which the origin check refuses), and a
//! link is worthless without the password.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gatehouse_core::ids::Email;
use gatehouse_core::secret::Password;
use serde::Deserialize;

use crate::errors::AppError;
use crate::http::csrf::{Csrf, CsrfForm, CsrfProtected};
use crate::http::flash::{Flash, FlashMessage};
use crate::http::layout::{page_layout, render, see_other};
use crate::http::redirects::{entered, see_other_with};
use crate::http::{ClientInfo, MaybeUser, Site};
use crate::layout::Layout;
use crate::mail::{Mail, Mailer};
use gatehouse_core::accounts::{Accounts, ConfirmError, LinkPurpose, Sessions};
use gatehouse_core::auth::redirect::DEFAULT_NEXT;
use gatehouse_core::auth::token::is_token_shaped;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResendForm {
    pub email: String,
    pub csrf_token: String,
}

impl CsrfProtected for ResendForm {
    const SIGNED_OUT_FORM: bool = true;

    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConfirmForm {
    pub password: Password,
    pub csrf_token: String,
}

impl CsrfProtected for ConfirmForm {
    const SIGNED_OUT_FORM: bool = true;

    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Template)]
#[template(path = "register_check_email.html")]
pub struct CheckEmailPage {
    layout: Layout,
    /// How long a link works, in words.
    lifetime: String,
}

#[derive(Template)]
#[template(path = "verify.html")]
pub struct ConfirmPage {
    layout: Layout,
    token: String,
    email: Email,
    new_address: bool,
    error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "verify_expired.html")]
pub struct ExpiredPage {
    layout: Layout,
}

/// `GET /register/check-email`: the same page after every registration.
pub async fn check_email(
    MaybeUser(user): MaybeUser,
    csrf: Csrf,
    flash: FlashMessage,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, AppError> {
    let page = CheckEmailPage {
        layout: page_layout(user.as_ref(), &csrf, flash),
        lifetime: crate::mail::lifetime_text(accounts.confirm_link_lifetime()),
    };
    render(StatusCode::OK, &page)
}

/// `POST /register/resend`: the same answer whatever the address and
/// whether a limit stopped the mail.
pub async fn resend(
    req: HttpRequest,
    form: CsrfForm<ResendForm>,
    client: ClientInfo,
    accounts: web::Data<Accounts>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let link = accounts
        .resend_confirmation(&Email::new(&form.email), &client)
        .await?;
    if let Some(link) = link {
        mailer.send(
            Mail::confirm(link, &site.origin),
            &crate::http::request_id(&req),
        );
    }
    Ok(see_other_with(
        &site,
        "/register/check-email",
        Flash::ConfirmationResent,
    ))
}

/// `GET /verify/{token}`: names the address and asks for the password.
/// Changes nothing, so a mail scanner that opens the link confirms nothing.
pub async fn link(
    token: web::Path<String>,
    csrf: Csrf,
    flash: FlashMessage,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, AppError> {
    let token = token.into_inner();
    match accounts.confirmation_link(&token).await? {
        Some(link) => confirm_page(
            &csrf,
            flash,
            token,
            link.email,
            link.purpose,
            None,
            StatusCode::OK,
        ),
        None => expired(&csrf),
    }
}

/// `POST /verify/{token}`: confirms with the password, signs this browser in
/// (ending the session it had).
#[expect(
    clippy::too_many_arguments,
    reason = "a handler's arguments are the extractors actix fills in"
)]
pub async fn confirm(
    MaybeUser(current): MaybeUser,
    token: web::Path<String>,
    form: CsrfForm<ConfirmForm>,
    client: ClientInfo,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    sessions: web::Data<Sessions>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let token = token.into_inner();
    if !is_token_shaped(&token) {
        return expired(&csrf);
    }
    let form = form.into_inner();
    match accounts
        .confirm_address(
            &sessions,
            &token,
            form.password,
            current.as_ref().map(|c| &c.0),
            &client,
        )
        .await
    {
        Ok((entry, confirmed)) => {
            let flash = if confirmed.previous_email.is_some() {
                Flash::EmailChanged
            } else {
                Flash::EmailConfirmed
            };
            // With two-factor on, the link leads to the second factor.
            let mut response = entered(&site, entry, DEFAULT_NEXT, current.is_some());
            response.cookie(site.cookies.flash(flash.code()));
            Ok(response.finish())
        }
        Err(ConfirmError::WrongPassword) => match accounts.confirmation_link(&token).await? {
            Some(link) => confirm_page(
                &csrf,
                FlashMessage::default(),
                token,
                link.email,
                link.purpose,
                Some("That is not the right password."),
                StatusCode::UNAUTHORIZED,
            ),
            None => expired(&csrf),
        },
        Err(ConfirmError::InvalidLink) => expired(&csrf),
        Err(ConfirmError::Throttled { retry_after }) => {
            Err(AppError::TooManyRequests { retry_after })
        }
        Err(ConfirmError::Failed(e)) => Err(e.into()),
    }
}

fn confirm_page(
    csrf: &Csrf,
    flash: FlashMessage,
    token: String,
    email: Email,
    purpose: LinkPurpose,
    error: Option<&'static str>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let page = ConfirmPage {
        layout: page_layout(None, csrf, flash),
        token,
        email,
        new_address: purpose == LinkPurpose::EmailChange,
        error,
    };
    render(status, &page)
}

/// The one answer for a used, expired, superseded or made-up link (400).
fn expired(csrf: &Csrf) -> Result<HttpResponse, AppError> {
    let page = ExpiredPage {
        layout: page_layout(None, csrf, FlashMessage::default()),
    };
    render(StatusCode::BAD_REQUEST, &page)
}

/// Where a registration lands with confirmation required.
pub fn check_email_redirect() -> HttpResponse {
    see_other("/register/check-email")
}
