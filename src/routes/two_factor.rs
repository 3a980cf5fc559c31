//! Two-factor sign-in's pages: the second factor after a right password
//! (`/login/two-factor`), "confirm it's you" (`/confirm`), and the account's
//! two-factor settings (`/account/two-factor`: enrol, recovery codes, turn
//! off) and trusted devices. The rules are the core's; these only map them.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use gatehouse_core::accounts::{
    Accounts, FEW_CODES_LEFT, SecondFactorError, Sessions, StepUpError, TwoFactorError,
    TwoFactorNotice,
};
use gatehouse_core::auth::redirect::{safe_next, with_next};
use gatehouse_core::ids::TrustedDeviceId;
use gatehouse_core::secret::Password;
use serde::Deserialize;

use crate::errors::AppError;
use crate::http::client::describe_device;
use crate::http::cookies;
use crate::http::csrf::{Csrf, CsrfForm, CsrfProtected};
use crate::http::flash::{Flash, FlashMessage};
use crate::http::layout::{format_time, page_layout, render, see_other};
use crate::http::passkey_offer::PasskeyOffer;
use crate::http::redirects::{see_other_with, to_sign_in};
use crate::http::{AuthUser, ClientInfo, MaybeUser, Site};
use crate::layout::Layout;
use crate::mail::{Mail, Mailer, TwoFactorChange};

/// Where the two-factor settings live (and step-up returns to).
const SETTINGS: &str = "/account/two-factor";
const WRONG_CODE: &str =
    "That code is not right. Enter the code your app shows now, or one of your recovery codes.";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NextQuery {
    pub next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SecondFactorForm {
    pub code: String,
    pub trust_device: Option<String>,
    pub next: Option<String>,
    pub csrf_token: String,
}

impl CsrfProtected for SecondFactorForm {
    const SIGNED_OUT_FORM: bool = true;

    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Template)]
#[template(path = "login_two_factor.html")]
pub struct SecondFactorPage {
    layout: Layout,
    next: String,
    error: Option<&'static str>,
    passkey_offer: PasskeyOffer,
}

/// The second-factor page's passkey button, when the pending sign-in's
/// account has a passkey.
async fn second_factor_passkey(
    req: &HttpRequest,
    accounts: &Accounts,
    token: &str,
) -> Result<PasskeyOffer, AppError> {
    Ok(if accounts.challenge_has_passkeys(token).await? {
        PasskeyOffer::at(req, accounts, "Use a passkey instead", true)
    } else {
        PasskeyOffer::None
    })
}

/// `GET /login/two-factor`: the code form while the sign-in waits for it.
pub async fn second_factor_form(
    req: HttpRequest,
    query: web::Query<NextQuery>,
    csrf: Csrf,
    flash: FlashMessage,
    accounts: web::Data<Accounts>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let token = cookies::read(&req, site.cookies.two_factor_name()).unwrap_or_default();
    if !accounts.challenge_is_live(token).await? {
        return Ok(sign_in_again(&site, false));
    }
    let page = SecondFactorPage {
        layout: page_layout(None, &csrf, flash),
        next: safe_next(query.next.as_deref()).into_owned(),
        error: None,
        passkey_offer: second_factor_passkey(&req, &accounts, token).await?,
    };
    render(StatusCode::OK, &page)
}

/// `POST /login/two-factor`: a right TOTP or recovery code finishes the
/// sign-in; a wrong or used one shows the form again; the fifth wrong one,
/// or a dead challenge, sends back to `/login`.
#[expect(
    clippy::too_many_arguments,
    reason = "a handler's arguments are the extractors actix fills in"
)]
pub async fn second_factor(
    req: HttpRequest,
    MaybeUser(current): MaybeUser,
    form: CsrfForm<SecondFactorForm>,
    client: ClientInfo,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    sessions: web::Data<Sessions>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref()).into_owned();
    let Some(token) = cookies::read(&req, site.cookies.two_factor_name()) else {
        return Ok(sign_in_again(&site, false));
    };
    let replacing = current.as_ref().map(|c| &c.0);
    let finished = accounts
        .finish_sign_in(
            &sessions,
            token,
            &form.code,
            form.trust_device.is_some(),
            replacing,
            &client,
        )
        .await;
    match finished {
        Ok(done) => {
            let cookies = &site.cookies;
            let mut response = HttpResponse::SeeOther();
            response.insert_header((header::LOCATION, next));
            cookies.set_session(&mut response, &done.signed_in.session);
            response
                .cookie(cookies.fresh_csrf())
                .cookie(cookies.removal(cookies.two_factor_name()));
            if let Some(trust) = done.trusted {
                response.cookie(cookies.trusted(trust.token, trust.max_age));
            }
            Ok(response.finish())
        }
        Err(SecondFactorError::Expired) => Ok(sign_in_again(&site, true)),
        Err(SecondFactorError::WrongCode) => {
            let page = SecondFactorPage {
                layout: page_layout(None, &csrf, FlashMessage::default()),
                next,
                error: Some(WRONG_CODE),
                passkey_offer: second_factor_passkey(&req, &accounts, token).await?,
            };
            render(StatusCode::UNAUTHORIZED, &page)
        }
        Err(SecondFactorError::Throttled { retry_after }) => {
            Err(AppError::TooManyRequests { retry_after })
        }
        Err(SecondFactorError::Failed(e)) => Err(e.into()),
    }
}

/// Back to the sign-in form, the pending cookie cleared.
fn sign_in_again(site: &Site, say_why: bool) -> HttpResponse {
    let cookies = &site.cookies;
    let mut response = HttpResponse::SeeOther();
    response
        .insert_header((header::LOCATION, "/login"))
        .cookie(cookies.removal(cookies.two_factor_name()));
    if say_why {
        response.cookie(cookies.flash(Flash::SignInAgain.code()));
    }
    response.finish()
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConfirmForm {
    pub password: Password,
    pub code: String,
    pub next: Option<String>,
    pub csrf_token: String,
}

impl CsrfProtected for ConfirmForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    layout: Layout,
    next: String,
    needs_code: bool,
    password_error: Option<&'static str>,
    code_error: Option<&'static str>,
    passkey_offer: PasskeyOffer,
}

/// "Confirm it's you" with a passkey, when the account has one.
async fn confirm_passkey(
    req: &HttpRequest,
    accounts: &Accounts,
    user: &AuthUser,
) -> Result<PasskeyOffer, AppError> {
    Ok(if accounts.passkey_count(&user.user_id).await? > 0 {
        PasskeyOffer::at(req, accounts, "Confirm with a passkey", false)
    } else {
        PasskeyOffer::None
    })
}

/// `GET /confirm?next=…`: "confirm it's you" before a sensitive change.
pub async fn confirm_form(
    req: HttpRequest,
    user: AuthUser,
    query: web::Query<NextQuery>,
    csrf: Csrf,
    flash: FlashMessage,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, AppError> {
    let page = ConfirmPage {
        layout: page_layout(Some(&user), &csrf, flash),
        next: safe_next(query.next.as_deref()).into_owned(),
        needs_code: accounts.has_two_factor(&user.user_id).await?,
        password_error: None,
        code_error: None,
        passkey_offer: confirm_passkey(&req, &accounts, &user).await?,
    };
    render(StatusCode::OK, &page)
}

/// `POST /confirm`: the password (and a code when two-factor is on) renew
/// the session's proof of sign-in; back to `next`.
#[expect(
    clippy::too_many_arguments,
    reason = "a handler's arguments are the extractors actix fills in"
)]
pub async fn confirm(
    req: HttpRequest,
    user: AuthUser,
    form: CsrfForm<ConfirmForm>,
    client: ClientInfo,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    sessions: web::Data<Sessions>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref()).into_owned();
    let stepped = accounts
        .step_up(&sessions, &user, form.password, &form.code, &client)
        .await;
    let (password_error, code_error) = match stepped {
        Ok(signed_in) => {
            let mut response = HttpResponse::SeeOther();
            response.insert_header((header::LOCATION, next));
            site.cookies.set_session(&mut response, &signed_in.session);
            return Ok(response.finish());
        }
        Err(StepUpError::WrongPassword) => (Some("That password is not right."), None),
        Err(StepUpError::WrongCode) => (None, Some(WRONG_CODE)),
        Err(StepUpError::Throttled { retry_after }) => {
            return Err(AppError::TooManyRequests { retry_after });
        }
        Err(StepUpError::SessionEnded) => return Ok(to_sign_in(&site, None)),
        Err(StepUpError::Failed(e)) => return Err(e.into()),
    };
    let page = ConfirmPage {
        layout: page_layout(Some(&user), &csrf, FlashMessage::default()),
        next,
        needs_code: accounts.has_two_factor(&user.user_id).await?,
        password_error,
        code_error,
        passkey_offer: confirm_passkey(&req, &accounts, &user).await?,
    };
    render(StatusCode::UNAUTHORIZED, &page)
}

/// The step-up redirect when `user`'s proof of sign-in is too old for the
/// two-factor settings.
fn step_up_first(accounts: &Accounts, user: &AuthUser) -> Option<HttpResponse> {
    accounts
        .needs_step_up(user)
        .then(|| see_other(&with_next("/confirm", SETTINGS)))
}

#[derive(Template)]
#[template(path = "two_factor.html")]
pub struct SettingsPage {
    layout: Layout,
    state: SettingsState,
    error: Option<&'static str>,
}

/// What the settings page shows.
pub enum SettingsState {
    /// No sealing key: the operator must set one.
    Unavailable,
    /// Off: the secret to add to an app.
    Enrol {
        /// As typed into an app: groups of four.
        secret: String,
        /// The QR code of the `otpauth://` address, as inline SVG.
        qr_svg: String,
    },
    On {
        codes_left: i64,
    },
}

impl SettingsPage {
    fn few_codes(&self) -> bool {
        matches!(self.state, SettingsState::On { codes_left } if codes_left <= FEW_CODES_LEFT)
    }
}

/// The settings page's state for `user`.
async fn settings_state(accounts: &Accounts, user: &AuthUser) -> Result<SettingsState, AppError> {
    let status = accounts.two_factor_status(&user.user_id).await?;
    if status.enabled {
        return Ok(SettingsState::On {
            codes_left: status.codes_left,
        });
    }
    let profile = accounts
        .profile(&user.user_id)
        .await?
        .ok_or_else(|| AppError::internal("a signed-in account has no row"))?;
    match accounts
        .begin_two_factor(&user.user_id, &profile.email)
        .await
    {
        Ok(enrolment) => Ok(SettingsState::Enrol {
            secret: group_by_four(&enrolment.secret_base32),
            qr_svg: qr_svg(&enrolment.otpauth_url)?,
        }),
        Err(TwoFactorError::Unavailable) => Ok(SettingsState::Unavailable),
        Err(TwoFactorError::Failed(e)) => Err(e.into()),
        Err(_) => Err(AppError::internal("two-factor state changed while shown")),
    }
}

/// `ABCDEFGH…` as `ABCD EFGH …`, easier to copy by eye.
fn group_by_four(text: &str) -> String {
    text.as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The QR code of `content` as an `<svg>` element to embed (no XML
/// prologue; black on white; its size set by the page's style sheet).
fn qr_svg(content: &str) -> Result<String, AppError> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::with_error_correction_level(content, qrcode::EcLevel::M)
        .map_err(|e| AppError::internal(format!("cannot make a QR code: {e}")))?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Ok(image
        .find("<svg")
        .map_or(image.as_str(), |start| &image[start..])
        .to_owned())
}

async fn settings_page(
    user: &AuthUser,
    csrf: &Csrf,
    flash: FlashMessage,
    accounts: &Accounts,
    error: Option<&'static str>,
) -> Result<SettingsPage, AppError> {
    Ok(SettingsPage {
        layout: page_layout(Some(user), csrf, flash),
        state: settings_state(accounts, user).await?,
        error,
    })
}

/// `GET /account/two-factor`, behind step-up.
pub async fn settings(
    user: AuthUser,
    csrf: Csrf,
    flash: FlashMessage,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, AppError> {
    if let Some(redirect) = step_up_first(&accounts, &user) {
        return Ok(redirect);
    }
    let page = settings_page(&user, &csrf, flash, &accounts, None).await?;
    render(StatusCode::OK, &page)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CodeForm {
    pub code: String,
    pub csrf_token: String,
}

impl CsrfProtected for CodeForm {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage {
    layout: Layout,
    codes: Vec<String>,
    just_enabled: bool,
}

/// `POST /account/two-factor/enable`: a first valid code turns it on and
/// shows the recovery codes, once.
#[expect(
    clippy::too_many_arguments,
    reason = "a handler's arguments are the extractors actix fills in"
)]
pub async fn enable(
    req: HttpRequest,
    user: AuthUser,
    form: CsrfForm<CodeForm>,
    client: ClientInfo,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    match accounts.enable_two_factor(&user, &form.code, &client).await {
        Ok((codes, notice)) => {
            mail(&req, &mailer, &site, notice, TwoFactorChange::On);
            codes_page(&user, &csrf, codes, true)
        }
        Err(TwoFactorError::WrongCode) => wrong_code(&user, &csrf, &accounts).await,
        Err(e) => settings_error(e),
    }
}

/// `POST /account/two-factor/disable`: with a current code (TOTP or
/// recovery); trusted devices end too.
#[expect(
    clippy::too_many_arguments,
    reason = "a handler's arguments are the extractors actix fills in"
)]
pub async fn disable(
    req: HttpRequest,
    user: AuthUser,
    form: CsrfForm<CodeForm>,
    client: ClientInfo,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    match accounts
        .disable_two_factor(&user, &form.code, &client)
        .await
    {
        Ok(notice) => {
            mail(&req, &mailer, &site, notice, TwoFactorChange::Off);
            Ok(see_other_with(&site, "/account", Flash::TwoFactorDisabled))
        }
        Err(TwoFactorError::WrongCode) => wrong_code(&user, &csrf, &accounts).await,
        Err(e) => settings_error(e),
    }
}

/// `POST /account/two-factor/recovery-codes`: a new set, shown once; the
/// old one is void.
#[expect(
    clippy::too_many_arguments,
    reason = "a handler's arguments are the extractors actix fills in"
)]
pub async fn regenerate(
    req: HttpRequest,
    user: AuthUser,
    _form: CsrfForm<crate::routes::account::ActionForm>,
    client: ClientInfo,
    csrf: Csrf,
    accounts: web::Data<Accounts>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    match accounts.regenerate_recovery_codes(&user, &client).await {
        Ok((codes, notice)) => {
            mail(
                &req,
                &mailer,
                &site,
                notice,
                TwoFactorChange::CodesRegenerated,
            );
            codes_page(&user, &csrf, codes, false)
        }
        Err(e) => settings_error(e),
    }
}

/// The new recovery codes, shown this once (the page is not stored).
fn codes_page(
    user: &AuthUser,
    csrf: &Csrf,
    codes: Vec<String>,
    just_enabled: bool,
) -> Result<HttpResponse, AppError> {
    let page = RecoveryCodesPage {
        layout: page_layout(Some(user), csrf, FlashMessage::default()),
        codes,
        just_enabled,
    };
    render(StatusCode::OK, &page)
}

/// A settings form's code was not right: the settings again, saying so.
async fn wrong_code(
    user: &AuthUser,
    csrf: &Csrf,
    accounts: &Accounts,
) -> Result<HttpResponse, AppError> {
    let flash = FlashMessage::default();
    let page = settings_page(user, csrf, flash, accounts, Some(WRONG_CODE)).await?;
    render(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

/// What a settings form answers for the cases that are not its own.
fn settings_error(e: TwoFactorError) -> Result<HttpResponse, AppError> {
    match e {
        // Changed meanwhile (another tab), or no key: the page says how
        // things stand now.
        TwoFactorError::WrongState | TwoFactorError::Unavailable | TwoFactorError::WrongCode => {
            Ok(see_other(SETTINGS))
        }
        TwoFactorError::StepUpRequired => Ok(see_other(&with_next("/confirm", SETTINGS))),
        TwoFactorError::Throttled { retry_after } => Err(AppError::TooManyRequests { retry_after }),
        TwoFactorError::Failed(e) => Err(e.into()),
    }
}

/// `POST /account/trusted-devices/{id}/revoke`: that browser is asked for
/// a code again at its next sign-in.
pub async fn revoke_device(
    user: AuthUser,
    path: web::Path<String>,
    _form: CsrfForm<crate::routes::account::ActionForm>,
    client: ClientInfo,
    accounts: web::Data<Accounts>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    if !accounts
        .revoke_trusted_device(
            &user,
            &TrustedDeviceId::from_stored(path.into_inner()),
            &client,
        )
        .await?
    {
        return Err(AppError::NotFound);
    }
    Ok(see_other_with(
        &site,
        "/account",
        Flash::TrustedDeviceRevoked,
    ))
}

fn mail(
    req: &HttpRequest,
    mailer: &Mailer,
    site: &Site,
    notice: TwoFactorNotice,
    change: TwoFactorChange,
) {
    let mail = Mail::TwoFactorChanged {
        to: notice.email.to_string(),
        name: notice.name,
        change,
        account: format!("{}/account", site.origin),
    };
    mailer.send(mail, &crate::http::request_id(req));
}

/// A trusted device as the account page lists it.
pub struct DeviceRow {
    pub id: String,
    pub device: String,
    pub ip: String,
    pub trusted_since: String,
    pub last_used: String,
    pub until: String,
}

/// The account page's two-factor summary.
pub struct TwoFactorSummary {
    pub enabled: bool,
    pub available: bool,
    pub codes_left: i64,
    pub few_codes: bool,
    pub devices: Vec<DeviceRow>,
}

/// The summary for `user`'s account page.
pub async fn summary(accounts: &Accounts, user: &AuthUser) -> Result<TwoFactorSummary, AppError> {
    let status = accounts.two_factor_status(&user.user_id).await?;
    Ok(TwoFactorSummary {
        enabled: status.enabled,
        available: status.available,
        codes_left: status.codes_left,
        few_codes: status.enabled && status.codes_left <= FEW_CODES_LEFT,
        devices: status
            .devices
            .into_iter()
            .map(|d| DeviceRow {
                device: describe_device(&d.user_agent),
                ip: d.ip,
                trusted_since: format_time(d.created_at),
                last_used: format_time(d.last_used_at),
                until: format_time(d.expires_at),
                id: d.id.to_string(),
            })
            .collect(),
    })
}
