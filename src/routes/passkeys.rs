//! Passkeys' pages and the JSON calls their script makes: signing in with a
//! passkey (`/login/passkey`, also the second factor of a pending sign-in
//! and "confirm it's you"), and the account's passkeys (`/account/passkeys`:
//! add, rename, delete). The rules are the core's; these only map them.
//!
//! Each ceremony is two calls: the options (which set the ceremony's
//! cookie) and the browser's answer. Both follow the API rules (JSON, the
//! site's origin) and carry the page's CSRF token in `X-CSRF-Token`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gatehouse_core::accounts::{
    Accounts, CeremonyStarted, PasskeyAnswer, PasskeyError, PasskeyNotice, Sessions,
};
use gatehouse_core::auth::redirect::{safe_next, with_next};
use gatehouse_core::ids::PasskeyId;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::errors::AppError;
use crate::http::client::describe_device;
use crate::http::cookies;
use crate::http::csrf::{Csrf, CsrfForm, CsrfProtected, check_json_call};
use crate::http::flash::{Flash, FlashMessage};
use crate::http::layout::{format_time, page_layout, render, see_other};
use crate::http::passkey_offer::passkeys_elsewhere;
use crate::http::redirects::see_other_with;
use crate::http::{AuthUser, ClientInfo, MaybeUser, Site};
use crate::layout::Layout;
use crate::mail::{Mail, Mailer, PasskeyChange};

/// The account's passkeys (and where step-up returns to).
const PASSKEYS: &str = "/account/passkeys";
/// What a name that is empty or too long is told.
const NAME_RULE: &str = "A passkey's name must be 1 to 64 characters.";

/// `POST /login/passkey/options` body: `{}` for a sign-in that lets the
/// authenticator pick the account; `{"second_factor": true}` on the
/// second-factor page (the pending sign-in's passkeys).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OptionsBody {
    pub second_factor: bool,
}

/// `POST /login/passkey` body: the browser's assertion and where to go.
#[derive(Debug, Deserialize)]
pub struct SignInBody {
    pub credential: Value,
    #[serde(default)]
    pub next: Option<String>,
    /// "Keep me signed in" on the sign-in page.
    #[serde(default)]
    pub remember: bool,
}

/// `POST /account/passkeys` body: the browser's attestation and a name
/// (empty: named after the device).
#[derive(Debug, Deserialize)]
pub struct RegisterBody {
    pub credential: Value,
    #[serde(default)]
    pub name: String,
}

/// The options, and the ceremony's cookie.
fn started(site: &Site, ceremony: CeremonyStarted) -> HttpResponse {
    HttpResponse::Ok()
        .cookie(site.cookies.passkey(ceremony.token, ceremony.expires_in))
        .json(ceremony.options)
}

/// How a ceremony's refusal is answered (in JSON: these calls are the
/// script's). `refused` is the status of an answer that does not hold.
fn refusal(e: PasskeyError, refused: StatusCode) -> Result<HttpResponse, AppError> {
    let (status, message) = match e {
        PasskeyError::Unavailable => (
            StatusCode::NOT_FOUND,
            "Passkeys are not available at this address.",
        ),
        PasskeyError::StepUpRequired => {
            return Ok(HttpResponse::Forbidden().json(json!({
                "error": "Confirm it's you first.",
                "redirect": with_next("/confirm", PASSKEYS),
            })));
        }
        PasskeyError::Expired => (refused, "That passkey request expired. Try again."),
        PasskeyError::Refused => (refused, "That passkey was not accepted."),
        PasskeyError::AlreadyRegistered => {
            (StatusCode::CONFLICT, "That passkey is registered already.")
        }
        PasskeyError::BadName => (StatusCode::UNPROCESSABLE_ENTITY, NAME_RULE),
        PasskeyError::SessionEnded => (StatusCode::UNAUTHORIZED, "You are signed out."),
        PasskeyError::Throttled { retry_after } => {
            return Err(AppError::TooManyRequests { retry_after });
        }
        PasskeyError::Failed(e) => return Err(e.into()),
    };
    Ok(HttpResponse::build(status).json(json!({ "error": message })))
}

/// `POST /login/passkey/options`: a sign-in ceremony starts.
pub async fn sign_in_options(
    req: HttpRequest,
    body: web::Json<OptionsBody>,
    client: ClientInfo,
    accounts: web::Data<Accounts>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    check_json_call(&req, true).await?;
    let begun = if body.second_factor {
        let pending = cookies::read(&req, site.cookies.two_factor_name()).unwrap_or_default();
        accounts.begin_passkey_second_factor(pending, &client).await
    } else {
        accounts.begin_passkey_sign_in(&client).await
    };
    match begun {
        Ok(ceremony) => Ok(started(&site, ceremony)),
        Err(e) => refusal(e, StatusCode::UNAUTHORIZED),
    }
}

/// `POST /login/passkey`: a passkey with user verification signs in (both
/// factors). It finishes this browser's pending sign-in, if any; when the
/// browser is signed in ("confirm it's you"), it must be that account's,
/// and it renews that session's proof of sign-in.
pub async fn sign_in(
    req: HttpRequest,
    MaybeUser(current): MaybeUser,
    body: web::Json<SignInBody>,
    client: ClientInfo,
    accounts: web::Data<Accounts>,
    sessions: web::Data<Sessions>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    check_json_call(&req, true).await?;
    let body = body.into_inner();
    let cookies = &site.cookies;
    let ceremony = cookies::read(&req, cookies.passkey_name()).unwrap_or_default();
    let pending = cookies::read(&req, cookies.two_factor_name());
    let replacing = current.as_ref().map(|c| &c.0);
    let finished = accounts
        .finish_passkey_sign_in(
            &sessions,
            PasskeyAnswer {
                ceremony,
                credential: &body.credential,
                remember: body.remember,
                pending,
            },
            replacing,
            &client,
        )
        .await;
    match finished {
        Ok(done) => {
            let next = safe_next(body.next.as_deref()).into_owned();
            let mut response = HttpResponse::Ok();
            cookies.set_session(&mut response, &done.signed_in.session);
            if !done.stepped_up {
                // A new session: tokens from before it stop matching.
                response.cookie(cookies.fresh_csrf());
            }
            response.cookie(cookies.removal(cookies.passkey_name()));
            if pending.is_some() {
                response.cookie(cookies.removal(cookies.two_factor_name()));
            }
            Ok(response.json(json!({ "redirect": next })))
        }
        Err(e) => {
            let mut answer = refusal(e, StatusCode::UNAUTHORIZED)?;
            // The ceremony was used up either way.
            let removal = cookies.removal(cookies.passkey_name());
            answer
                .add_cookie(&removal)
                .map_err(|e| AppError::internal(e.to_string()))?;
            Ok(answer)
        }
    }
}

/// A passkey as the list shows it.
pub struct PasskeyRow {
    pub id: String,
    pub name: String,
    pub created: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "passkeys.html")]
pub struct PasskeysPage {
    layout: Layout,
    available: bool,
    passkeys: Vec<PasskeyRow>,
    /// Where passkeys work, when this page was opened elsewhere.
    elsewhere: Option<String>,
    error: Option<&'static str>,
}

/// `GET /account/passkeys` (behind step-up): the list, with rename and
/// delete forms, and "Add a passkey".
pub async fn list(
    req: HttpRequest,
    user: AuthUser,
    csrf: Csrf,
    flash: FlashMessage,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, AppError> {
    if accounts.needs_step_up(&user) {
        return Ok(see_other(&with_next("/confirm", PASSKEYS)));
    }
    let page = passkeys_page(&req, &user, &csrf, flash, &accounts, None).await?;
    render(StatusCode::OK, &page)
}

async fn passkeys_page(
    req: &HttpRequest,
    user: &AuthUser,
    csrf: &Csrf,
    flash: FlashMessage,
    accounts: &Accounts,
    error: Option<&'static str>,
) -> Result<PasskeysPage, AppError> {
    let passkeys = accounts
        .passkeys_of(&user.user_id)
        .await?
        .into_iter()
        .map(|p| PasskeyRow {
            id: p.id.to_string(),
            name: p.name,
            created: format_time(p.created_at),
            last_used: p
                .last_used_at
                .map_or_else(|| "never".to_owned(), format_time),
        })
        .collect();
    Ok(PasskeysPage {
        layout: page_layout(Some(user), csrf, flash),
        available: accounts.passkeys_available(),
        passkeys,
        elsewhere: passkeys_elsewhere(req, accounts),
        error,
    })
}

/// `POST /account/passkeys/options` (behind step-up): creation options.
pub async fn register_options(
    req: HttpRequest,
    user: AuthUser,
    accounts: web::Data<Accounts>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    check_json_call(&req, false).await?;
    match accounts.begin_passkey_registration(&user).await {
        Ok(ceremony) => Ok(started(&site, ceremony)),
        Err(e) => refusal(e, StatusCode::BAD_REQUEST),
    }
}

/// `POST /account/passkeys`: the attestation stores the passkey (201).
pub async fn register(
    req: HttpRequest,
    user: AuthUser,
    body: web::Json<RegisterBody>,
    client: ClientInfo,
    accounts: web::Data<Accounts>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    check_json_call(&req, false).await?;
    let body = body.into_inner();
    let cookies = &site.cookies;
    let ceremony = cookies::read(&req, cookies.passkey_name()).unwrap_or_default();
    let device = format!("Passkey on {}", describe_device(&client.user_agent));
    let added = accounts
        .finish_passkey_registration(
            &user,
            ceremony,
            &body.credential,
            &body.name,
            &device,
            &client,
        )
        .await;
    let removal = cookies.removal(cookies.passkey_name());
    match added {
        Ok((passkey, notice)) => {
            let change = PasskeyChange::Added(passkey.name.clone());
            mail(&req, &mailer, &site, notice, change);
            // The list the script reloads says it was added.
            Ok(HttpResponse::Created()
                .cookie(removal)
                .cookie(cookies.flash(Flash::PasskeyAdded.code()))
                .json(json!({ "id": passkey.id.as_str(), "name": passkey.name })))
        }
        Err(e) => {
            let mut answer = refusal(e, StatusCode::BAD_REQUEST)?;
            answer
                .add_cookie(&removal)
                .map_err(|e| AppError::internal(e.to_string()))?;
            Ok(answer)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RenameForm {
    pub name: String,
    pub csrf_token: String,
}

impl CsrfProtected for RenameForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

/// `POST /account/passkeys/{id}/rename`.
pub async fn rename(
    req: HttpRequest,
    user: AuthUser,
    path: web::Path<String>,
    form: CsrfForm<RenameForm>,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    match accounts
        .rename_passkey(
            &user,
            &PasskeyId::from_stored(path.into_inner()),
            &form.name,
        )
        .await
    {
        Ok(true) => Ok(see_other_with(&site, PASSKEYS, Flash::PasskeyRenamed)),
        Ok(false) => Err(AppError::NotFound),
        Err(PasskeyError::BadName) => {
            let flash = FlashMessage::default();
            let page = passkeys_page(&req, &user, &csrf, flash, &accounts, Some(NAME_RULE)).await?;
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => page_refusal(e),
    }
}

/// `POST /account/passkeys/{id}/delete`: the password (and two-factor,
/// when on) still sign in.
#[expect(
    clippy::too_many_arguments,
    reason = "a handler's arguments are the extractors actix fills in"
)]
pub async fn delete(
    req: HttpRequest,
    user: AuthUser,
    path: web::Path<String>,
    _form: CsrfForm<crate::routes::account::ActionForm>,
    client: ClientInfo,
    accounts: web::Data<Accounts>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    match accounts
        .delete_passkey(&user, &PasskeyId::from_stored(path.into_inner()), &client)
        .await
    {
        Ok(Some(notice)) => {
            let change = PasskeyChange::Removed(notice.passkey.clone());
            mail(&req, &mailer, &site, notice, change);
            Ok(see_other_with(&site, PASSKEYS, Flash::PasskeyRemoved))
        }
        Ok(None) => Err(AppError::NotFound),
        Err(e) => page_refusal(e),
    }
}

/// What a list form answers for the cases that are not its own.
fn page_refusal(e: PasskeyError) -> Result<HttpResponse, AppError> {
    match e {
        PasskeyError::StepUpRequired => Ok(see_other(&with_next("/confirm", PASSKEYS))),
        PasskeyError::Throttled { retry_after } => Err(AppError::TooManyRequests { retry_after }),
        PasskeyError::Failed(e) => Err(e.into()),
        _ => Ok(see_other(PASSKEYS)),
    }
}

fn mail(
    req: &HttpRequest,
    mailer: &Mailer,
    site: &Site,
    notice: PasskeyNotice,
    change: PasskeyChange,
) {
    let mail = Mail::PasskeyChanged {
        to: notice.email.to_string(),
        name: notice.name,
        change,
        passkeys: format!("{}{PASSKEYS}", site.origin),
    };
    mailer.send(mail, &crate::http::request_id(req));
}
