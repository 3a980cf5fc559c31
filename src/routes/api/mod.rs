//! `/api`: the JSON API for a front end on another origin. Each handler makes
//! the same domain call as its page (sign in, refresh, sign out) on the same
//! sessions and cookies; the OpenAPI document is generated from these
//! handlers and types and served at `/api/openapi.json`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use gatehouse_core::ids::Email;
use gatehouse_core::secret::Password;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::errors::{AppError, UNCONFIRMED};
use crate::http::client::client_info;
use crate::http::{AuthUser, ClientInfo, MaybeUser, Site};
use crate::mail::{Mail, Mailer};
use gatehouse_core::accounts::{
    Accounts, Credentials, EMAIL_TAKEN, Entry, FieldErrors, INVALID_CREDENTIALS,
    MISSING_CREDENTIALS, NewAccount, Profile, RegisterError, Registered, SecondFactorError,
    Sessions, SignInError,
};

/// What `POST /api/login` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(min_length = 1)]
    pub email: String,
    #[schema(value_type = String, min_length = 1)]
    pub password: Password,
    /// Keep the session beyond the browser session.
    #[serde(default)]
    pub remember: bool,
}

/// What `POST /api/login/two-factor` takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondFactorRequest {
    /// The six-digit code from the authenticator app, or a recovery code.
    #[schema(min_length = 1)]
    pub code: String,
    /// Trust this browser for 30 days: its later sign-ins need no code.
    #[serde(default)]
    pub trust_device: bool,
}

/// What `POST /api/register` takes: the registration form's fields.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// The name shown on the account's pages.
    #[schema(min_length = 1)]
    pub name: String,
    #[schema(format = Email, min_length = 1)]
    pub email: String,
    /// At least 12 characters, at most 72 bytes, and hard to guess.
    #[schema(value_type = String, min_length = 12)]
    pub password: Password,
}

/// The body of a `POST` that needs no data: `{}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EmptyBody {}

/// An account as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
}

impl From<Profile> for User {
    fn from(p: Profile) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name,
            email: p.email.to_string(),
        }
    }
}

/// What `POST /api/login` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedInBody {
    pub user: User,
}

/// What `POST /api/login` answers for an account with two-factor on: no
/// session yet; `POST /api/login/two-factor` finishes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwoFactorRequiredBody {
    /// Always `true`.
    pub two_factor_required: bool,
}

/// What `POST /api/login` answers: signed in, or a second factor to give.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginBody {
    SignedIn(SignedInBody),
    TwoFactorRequired(TwoFactorRequiredBody),
}

/// What `POST /api/refresh` answers: when to refresh next, at the latest.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshedBody {
    /// Seconds until the new access token expires.
    pub expires_in: u64,
}

/// What `POST /api/register` answers when addresses must be confirmed.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckEmailBody {
    pub status: CheckEmail,
}

/// A registration waits for its address to be confirmed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckEmail {
    CheckEmail,
}

/// What a client can act on without reading the message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Confirm the address with the mailed link first.
    EmailUnverified,
}

/// Every API error: a message, a code for the errors a client acts on, and
/// the request id the log has it under.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    pub request_id: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse API",
        description = "Sign-in for a front end on another origin: the same sessions and cookies as the pages. Send requests with credentials (cookies); state-changing calls need Content-Type: application/json."
    ),
    paths(register, login, login_two_factor, me, refresh, logout),
    components(schemas(
        RegisterRequest,
        LoginRequest,
        SecondFactorRequest,
        TwoFactorRequiredBody,
        LoginBody,
        EmptyBody,
        User,
        SignedInBody,
        RefreshedBody,
        CheckEmailBody,
        CheckEmail,
        ErrorCode,
        ErrorBody
    ))
)]
pub struct ApiDoc;

/// `POST /api/register`: registers as the form does: with confirmation
/// required, 202 for every address (the mail tells them apart); otherwise the
/// account is made and signed in.
#[utoipa::path(
    post,
    path = "/api/register",
    request_body(content = RegisterRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered and signed in; the session cookies are set (REGISTRATION_VERIFY=off)", body = SignedInBody),
        (status = 202, description = "Confirmation required: the same answer for every address; a link (or, for an existing account, a notice) is mailed", body = CheckEmailBody),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 403, description = "Sent from an origin that is not allowed", body = ErrorBody),
        (status = 409, description = "An account with this email already exists (REGISTRATION_VERIFY=off only)", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Missing or invalid fields, each named", body = ErrorBody),
        (status = 429, description = "Too many registrations from this address; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    )
)]
pub async fn register(
    req: HttpRequest,
    body: web::Json<serde_json::Value>,
    client: ClientInfo,
    accounts: web::Data<Accounts>,
    sessions: web::Data<Sessions>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let body: RegisterRequest = object(body.into_inner())?;
    let email = Email::new(&body.email);
    let account = NewAccount {
        name: body.name,
        email: email.clone(),
        password: body.password,
    };
    let signed_in = match accounts.sign_up(&sessions, account, &client).await {
        Ok(Registered::SignedIn(signed_in)) => signed_in,
        Ok(Registered::Pending(mail)) => {
            if let Some(mail) = mail {
                let mail = Mail::for_registration(mail, &site.origin);
                mailer.send(mail, &crate::http::request_id(&req));
            }
            return Ok(HttpResponse::Accepted().json(CheckEmailBody {
                status: CheckEmail::CheckEmail,
            }));
        }
        Err(RegisterError::Invalid(errors)) => {
            return Err(AppError::InvalidFields(field_problems(errors)));
        }
        Err(RegisterError::EmailTaken { .. }) => return Err(AppError::Conflict(EMAIL_TAKEN)),
        Err(e) => return Err(e.into()),
    };
    let mut response = HttpResponse::Created();
    site.cookies.set_session(&mut response, &signed_in.session);
    response.cookie(site.cookies.fresh_csrf());
    Ok(response.json(SignedInBody {
        user: User {
            id: signed_in.user.user_id.to_string(),
            name: signed_in.user.name,
            email: email.to_string(),
        },
    }))
}

/// The form's messages as one line, each after its field's name.
fn field_problems(errors: FieldErrors) -> String {
    [
        errors.name.map(|m| format!("name: {m}")),
        errors.email.map(|m| format!("email: {m}")),
        errors.password.map(|m| format!("password: {m}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
}

/// `POST /api/login`: signs in and sets the session cookies.
#[utoipa::path(
    post,
    path = "/api/login",
    request_body(content = LoginRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in, the session cookies set; or, for an account with two-factor on, `{\"two_factor_required\":true}` with a pending cookie and no session (finish with POST /api/login/two-factor)", body = LoginBody),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Invalid email or password", body = ErrorBody),
        (status = 403, description = "Sent from an origin that is not allowed; or the right password of an address not yet confirmed: `code` is `email_unverified`, and a fresh link is mailed", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Missing or invalid fields", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    )
)]
#[expect(
    clippy::too_many_arguments,
    reason = "a handler's arguments are the extractors actix fills in"
)]
pub async fn login(
    req: HttpRequest,
    MaybeUser(current): MaybeUser,
    body: web::Json<serde_json::Value>,
    client: ClientInfo,
    accounts: web::Data<Accounts>,
    sessions: web::Data<Sessions>,
    mailer: web::Data<Mailer>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let body: LoginRequest = object(body.into_inner())?;
    let cookies = &site.cookies;
    let credentials = Credentials {
        email: Email::new(&body.email),
        password: body.password,
        remember: body.remember,
        trusted_device: crate::http::cookies::read(&req, cookies.trusted_name()).map(str::to_owned),
    };
    let replacing = current.as_ref().map(|c| &c.0);
    let (entry, account) = match accounts
        .sign_in(&sessions, credentials, replacing, &client)
        .await
    {
        Ok(done) => done,
        Err(SignInError::InvalidCredentials) => {
            return Err(AppError::Unauthorized(INVALID_CREDENTIALS));
        }
        Err(SignInError::MissingCredentials) => {
            return Err(AppError::InvalidFields(MISSING_CREDENTIALS.to_owned()));
        }
        Err(SignInError::EmailUnverified { link }) => {
            let request_id = crate::http::request_id(&req);
            if let Some(link) = link {
                mailer.send(Mail::confirm(link, &site.origin), &request_id);
            }
            return Ok(HttpResponse::Forbidden()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(ErrorBody {
                    error: UNCONFIRMED.to_owned(),
                    code: Some(ErrorCode::EmailUnverified),
                    request_id,
                }));
        }
        Err(e) => return Err(e.into()),
    };
    let mut response = HttpResponse::Ok();
    match entry {
        Entry::SignedIn(signed_in) => {
            cookies.set_session(&mut response, &signed_in.session);
            response.cookie(cookies.fresh_csrf());
            Ok(response.json(LoginBody::SignedIn(SignedInBody {
                user: account.into(),
            })))
        }
        Entry::SecondFactor(challenge) => {
            if current.is_some() {
                cookies.set_signed_out(&mut response);
            }
            response.cookie(cookies.two_factor(challenge.token, challenge.expires_in));
            Ok(
                response.json(LoginBody::TwoFactorRequired(TwoFactorRequiredBody {
                    two_factor_required: true,
                })),
            )
        }
    }
}

/// `POST /api/login/two-factor`: finishes a sign-in that waits for its
/// second factor (the pending cookie `POST /api/login` set).
#[utoipa::path(
    post,
    path = "/api/login/two-factor",
    request_body(content = SecondFactorRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in; the session cookies are set (and the trusted-device cookie when asked for)", body = SignedInBody),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "A wrong or used code, or no sign-in waiting for one (it expires after 5 minutes or 5 wrong codes): sign in again", body = ErrorBody),
        (status = 403, description = "Sent from an origin that is not allowed", body = ErrorBody),
        (status = 413, description = "Body over 16 KiB", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Missing or invalid fields", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    )
)]
pub async fn login_two_factor(
    req: HttpRequest,
    MaybeUser(current): MaybeUser,
    body: web::Json<serde_json::Value>,
    client: ClientInfo,
    accounts: web::Data<Accounts>,
    sessions: web::Data<Sessions>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let body: SecondFactorRequest = object(body.into_inner())?;
    let cookies = &site.cookies;
    let Some(token) = crate::http::cookies::read(&req, cookies.two_factor_name()) else {
        return Err(AppError::Unauthorized(SIGN_IN_AGAIN));
    };
    let replacing = current.as_ref().map(|c| &c.0);
    let finished = accounts
        .finish_sign_in(
            &sessions,
            token,
            &body.code,
            body.trust_device,
            replacing,
            &client,
        )
        .await;
    match finished {
        Ok(done) => {
            let mut response = HttpResponse::Ok();
            cookies.set_session(&mut response, &done.signed_in.session);
            response
                .cookie(cookies.fresh_csrf())
                .cookie(cookies.removal(cookies.two_factor_name()));
            if let Some(trust) = done.trusted {
                response.cookie(cookies.trusted(trust.token, trust.max_age));
            }
            Ok(response.json(SignedInBody {
                user: done.profile.into(),
            }))
        }
        Err(SecondFactorError::Expired) => Ok(HttpResponse::Unauthorized()
            .cookie(cookies.removal(cookies.two_factor_name()))
            .json(ErrorBody {
                error: SIGN_IN_AGAIN.to_owned(),
                code: None,
                request_id: crate::http::request_id(&req),
            })),
        Err(SecondFactorError::WrongCode) => Err(AppError::Unauthorized(WRONG_CODE)),
        Err(SecondFactorError::Throttled { retry_after }) => {
            Err(AppError::TooManyRequests { retry_after })
        }
        Err(SecondFactorError::Failed(e)) => Err(e.into()),
    }
}

/// No sign-in waits for a second factor here.
const SIGN_IN_AGAIN: &str = "No sign-in is waiting for a code: sign in again";
const WRONG_CODE: &str = "Wrong or already used code";

/// `GET /api/me`: the signed-in account, or 401 (never a redirect).
#[utoipa::path(
    get,
    path = "/api/me",
    responses(
        (status = 200, description = "The signed-in account", body = User),
        (status = 401, description = "You need to log in", body = ErrorBody),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    )
)]
pub async fn me(user: AuthUser, accounts: web::Data<Accounts>) -> Result<HttpResponse, AppError> {
    let profile = accounts
        .profile(&user.user_id)
        .await?
        .ok_or(AppError::Unauthorized(crate::errors::LOGIN_REQUIRED))?;
    Ok(HttpResponse::Ok().json(User::from(profile)))
}

/// `POST /api/refresh`: trades the refresh cookie for new session cookies.
#[utoipa::path(
    post,
    path = "/api/refresh",
    request_body(
        content = EmptyBody,
        content_type = "application/json",
        description = "`{}`, or no body: the Content-Type must still be application/json"
    ),
    responses(
        (status = 200, description = "New session cookies are set", body = RefreshedBody),
        (status = 401, description = "No valid refresh token: sign in again", body = ErrorBody),
        (status = 403, description = "Sent from an origin that is not allowed", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    )
)]
pub async fn refresh(
    req: HttpRequest,
    sessions: web::Data<Sessions>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    let cookies = &site.cookies;
    let token = crate::http::cookies::read(&req, cookies.refresh_name()).map(str::to_owned);
    let renewed = match token {
        Some(token) => sessions.refresh(token, &client_info(&req)).await?,
        None => None,
    };
    let Some(renewed) = renewed else {
        return Ok(HttpResponse::Unauthorized()
            .cookie(cookies.removal(cookies.access_name()))
            .cookie(cookies.removal(cookies.refresh_name()))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(ErrorBody {
                error: crate::errors::LOGIN_REQUIRED.to_owned(),
                code: None,
                request_id: crate::http::request_id(&req),
            }));
    };
    let mut response = HttpResponse::Ok();
    cookies.set_session(&mut response, &renewed.session);
    Ok(response.json(RefreshedBody {
        expires_in: cookies.access_max_age().as_secs(),
    }))
}

/// `POST /api/logout`: ends the session and clears the cookies (204 even
/// when there was none to end).
#[utoipa::path(
    post,
    path = "/api/logout",
    request_body(
        content = EmptyBody,
        content_type = "application/json",
        description = "`{}`, or no body: the Content-Type must still be application/json"
    ),
    responses(
        (status = 204, description = "Signed out; the cookies are cleared"),
        (status = 403, description = "Sent from an origin that is not allowed", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    )
)]
pub async fn logout(
    MaybeUser(user): MaybeUser,
    client: ClientInfo,
    sessions: web::Data<Sessions>,
    site: web::Data<Site>,
) -> Result<HttpResponse, AppError> {
    if let Some(user) = &user {
        sessions.sign_out(user, &client).await?;
    }
    let mut response = HttpResponse::build(StatusCode::NO_CONTENT);
    site.cookies.set_signed_out(&mut response);
    Ok(response.finish())
}

/// `GET /api/openapi.json`: this API, described.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// A JSON body that must be an object of `T`'s fields (serde alone would also
/// take an array of the values in order); wrong or missing fields are a 422.
fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, AppError> {
    if !value.is_object() {
        return Err(AppError::InvalidFields(
            "The body must be a JSON object.".to_owned(),
        ));
    }
    serde_json::from_value(value).map_err(|e| AppError::InvalidFields(e.to_string()))
}
