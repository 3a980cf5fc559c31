//! `/password/…`: forgotten passwords. Asking for a link answers the same
//! page whatever the address; the mailed link puts its token in a cookie for
//! the form (never in the address bar); a good new password ends every
//! session, signs this browser in and mails a notice.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gatehouse_core::ids::Email;
use gatehouse_core::secret::Password;
use serde::Deserialize;

use crate::errors::AppError;
use crate::http::csrf::{Csrf, CsrfForm, CsrfProtected};
use crate::http::flash::{Flash, FlashMessage};
use crate::http::layout::{page_layout, render, see_other};
use crate::http::redirects::entered;
use crate::http::{ClientInfo, MaybeUser, Site, cookies};
use crate::layout::Layout;
use crate::mail::{Mail, Mailer};
use gatehouse_core::accounts::{Accounts, ResetError, Sessions};
use gatehouse_core::auth::redirect::DEFAULT_NEXT;
use gatehouse_core::auth::token::is_token_shaped;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ForgotForm {
    pub email: String,
    pub csrf_token: String,
}

impl CsrfProtected for ForgotForm {
    const SIGNED_OUT_FORM: bool = true;

    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResetForm {
    pub new_password: Password,
    pub csrf_token: String,
}

impl CsrfProtected for ResetForm {
    const SIGNED_OUT_FORM: bool = true;

    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Template)]
#[template(path = "password_forgot.html")]
pub struct ForgotPage {
    layout: Layout,
}

#[derive(Template)]
#[template(path = "password_sent.html")]
pub struct SentPage {
    layout: Layout,
    minutes: u64,
}

#[derive(Template)]
#[template(path = "password_reset.html")]
pub struct ResetPage {
    layout: Layout,
    /// The account the link resets, named on the form.
    email: Email,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "password_expired.html")]
pub struct ExpiredPage {
    layout: Layout,
}

/// `GET /password/forgot`.
pub async fn forgot_form(
    MaybeUser(user): MaybeUser,
    csrf: Csrf,
    flash: FlashMessage,
) -> Result<HttpResponse, AppError> {
    let page = ForgotPage {
        layout: page_layout(user.as_ref(), &csrf, flash),
    };
    render(StatusCode::OK, &page)
}

/// `POST /password/forgot`: the same answer for every address; a link, when
/// there is one, goes to the mail queue, off the request path.
pub async fn forgot(
    req: HttpRequest,
    form: CsrfForm<ForgotForm>,
    client: ClientInfo,
    accounts: web::Data<Accounts>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let link = accounts
        .request_password_reset(&Email::new(&form.email), &client)
        .await?;
    if let Some(link) = link {
        let mail = Mail::ResetLink {
            link: link.url(&site.origin),
            to: link.email.to_string(),
            name: link.name,
            expires_in: link.expires_in,
        };
        mailer.send(mail, &crate::http::request_id(&req));
    }
    Ok(see_other("/password/forgot/sent"))
}

/// `GET /password/forgot/sent`.
pub async fn sent(
    MaybeUser(user): MaybeUser,
    csrf: Csrf,
    flash: FlashMessage,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, AppError> {
    let page = SentPage {
        layout: page_layout(user.as_ref(), &csrf, flash),
        minutes: accounts.reset_link_lifetime().as_secs().div_ceil(60),
    };
    render(StatusCode::OK, &page)
}

/// `GET /password/reset/{token}`: the mailed link. Keeps the token in a
/// short-lived cookie and moves on to the form's address, so the token never
/// stays in the address bar, the history or a `Referer`.
///
/// Only a token of the shape the site issues is copied into the cookie:
/// anything else (`abc; Domain=…` would add attributes, a CR LF would break
/// the header) is no link of ours and gets the expired page, leaving the
/// browser's cookies as they were.
pub async fn link(
    token: web::Path<String>,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let token = token.into_inner();
    if !is_token_shaped(&token) {
        let mut response = expired_page(&csrf)?;
        response.headers_mut().insert(
            header::REFERRER_POLICY,
            header::HeaderValue::from_static("no-referrer"),
        );
        return Ok(response);
    }
    let cookie = site.cookies.reset(token, accounts.reset_link_lifetime());
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/password/reset"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .cookie(cookie)
        .finish())
}

/// `GET /password/reset`: the new-password form, for a live link.
pub async fn reset_form(
    req: HttpRequest,
    csrf: Csrf,
    flash: FlashMessage,
    accounts: web::Data<Accounts>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let token = cookies::read(&req, site.cookies.reset_name()).map(str::to_owned);
    let account = match token {
        Some(token) => accounts.reset_link_account(&token).await?,
        None => None,
    };
    let Some(email) = account else {
        return expired(&csrf, &site);
    };
    let page = ResetPage {
        layout: page_layout(None, &csrf, flash),
        email,
        error: None,
    };
    render(StatusCode::OK, &page)
}

/// `POST /password/reset`.
#[expect(
    clippy::too_many_arguments,
    reason = "a handler's arguments are the extractors actix fills in"
)]
pub async fn reset(
    req: HttpRequest,
    form: CsrfForm<ResetForm>,
    client: ClientInfo,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    sessions: web::Data<Sessions>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let Some(token) = cookies::read(&req, site.cookies.reset_name()).map(str::to_owned) else {
        return expired(&csrf, &site);
    };
    let form = form.into_inner();
    match accounts
        .reset_password(&sessions, token.clone(), form.new_password, &client)
        .await
    {
        Ok((entry, notice)) => {
            mailer.send(
                Mail::PasswordChanged {
                    to: notice.email.to_string(),
                    name: notice.name,
                    forgot: format!("{}/password/forgot", site.origin),
                },
                &crate::http::request_id(&req),
            );
            // With two-factor on, the new password leads to the second
            // factor, not to a session.
            let cookies = &site.cookies;
            let mut response = entered(&site, entry, DEFAULT_NEXT, false);
            response
                .cookie(cookies.reset_removal())
                .cookie(cookies.flash(Flash::PasswordReset.code()));
            Ok(response.finish())
        }
        Err(ResetError::InvalidLink) => expired(&csrf, &site),
        Err(ResetError::Weak(message)) => {
            let Some(email) = accounts.reset_link_account(&token).await? else {
                return expired(&csrf, &site);
            };
            let page = ResetPage {
                layout: page_layout(None, &csrf, FlashMessage::default()),
                email,
                error: Some(message),
            };
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(ResetError::Failed(e)) => Err(e.into()),
    }
}

/// The one answer for a used, expired, superseded or unknown link (400),
/// which also drops the dead token.
fn expired(csrf: &Csrf, site: &Site) -> Result<HttpResponse, AppError> {
    let mut response = expired_page(csrf)?;
    response
        .add_cookie(&site.cookies.reset_removal())
        .map_err(|e| AppError::internal(e.to_string()))?;
    Ok(response)
}

/// The expired-link page (400), cookies untouched.
fn expired_page(csrf: &Csrf) -> Result<HttpResponse, AppError> {
    let page = ExpiredPage {
        layout: page_layout(None, csrf, FlashMessage::default()),
    };
    render(StatusCode::BAD_REQUEST, &page)
}
