//! The route table: the site map, top to bottom.

pub mod account;
pub mod api;
pub mod dashboard;
pub mod health;
pub mod home;
pub mod login;
pub mod logout;
pub mod passkeys;
pub mod password;
pub mod register;
pub mod two_factor;
pub mod verify;

use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{HttpResponse, web};

use crate::errors::AppError;
use crate::http::{self, answer_in_json};

/// The site map. `cors_origins` are the front ends allowed to call `/api`.
pub fn configure(cfg: &mut web::ServiceConfig, cors_origins: &[String]) {
    // Every path is a `web::resource`, so a wrong method gets 405 with `Allow`
    // (a bare `route` would fall through to the 404 default service).
    cfg.service(web::resource("/").get(home::home))
        .service(
            web::resource("/register")
                .route(web::get().to(register::register_form))
                .route(web::post().to(register::register)),
        )
        .service(
            web::resource("/login")
                .route(web::get().to(login::login_form))
                .route(web::post().to(login::login)),
        )
        .service(web::resource("/dashboard").get(dashboard::dashboard))
        .service(web::resource("/account").get(account::account))
        .service(
            // A failed form re-renders at its address; opening it again goes
            // to the account page.
            web::resource("/account/password")
                .route(web::get().to(account::to_account_page))
                .route(web::post().to(account::change_password)),
        )
        .service(
            web::resource("/account/email")
                .route(web::get().to(account::to_account_page))
                .route(web::post().to(account::change_email)),
        )
        .service(web::resource("/account/email/cancel").post(account::cancel_email_change))
        .service(
            web::resource("/account/delete")
                .route(web::get().to(account::to_account_page))
                .route(web::post().to(account::delete_account)),
        )
        .service(web::resource("/account/sessions/revoke-others").post(account::revoke_others))
        .service(web::resource("/account/sessions/{id}/revoke").post(account::revoke_session))
        .service(
            web::resource("/password/forgot")
                .route(web::get().to(password::forgot_form))
                .route(web::post().to(password::forgot)),
        )
        .service(web::resource("/password/forgot/sent").get(password::sent))
        .service(
            web::resource("/password/reset")
                .route(web::get().to(password::reset_form))
                .route(web::post().to(password::reset)),
        )
        .service(web::resource("/password/reset/{token}").get(password::link))
        // Confirming an address: below the pages every visit asks for, since
        // resources are matched in order.
        .service(web::resource("/register/check-email").get(verify::check_email))
        .service(web::resource("/register/resend").post(verify::resend))
        .service(
            web::resource("/verify/{token}")
                .route(web::get().to(verify::link))
                .route(web::post().to(verify::confirm)),
        )
        // Two-factor sign-in, step-up and the two-factor settings.
        .service(
            web::resource("/login/two-factor")
                .route(web::get().to(two_factor::second_factor_form))
                .route(web::post().to(two_factor::second_factor)),
        )
        .service(
            web::resource("/confirm")
                .route(web::get().to(two_factor::confirm_form))
                .route(web::post().to(two_factor::confirm)),
        )
        .service(web::resource("/account/two-factor").get(two_factor::settings))
        .service(web::resource("/account/two-factor/enable").post(two_factor::enable))
        .service(web::resource("/account/two-factor/disable").post(two_factor::disable))
        .service(web::resource("/account/two-factor/recovery-codes").post(two_factor::regenerate))
        .service(
            web::resource("/account/trusted-devices/{id}/revoke").post(two_factor::revoke_device),
        )
        // Passkeys: the JSON calls of the site's script (the API's rules:
        // JSON only, the site's origin; the page's CSRF token in a header)
        // and the account's list.
        .service(ceremony_post("/login/passkey/options").post(passkeys::sign_in_options))
        .service(ceremony_post("/login/passkey").post(passkeys::sign_in))
        .service(
            web::resource("/account/passkeys")
                .wrap(from_fn(http::api::guard_json_posts))
                .app_data(http::api::json_config())
                .route(web::get().to(passkeys::list))
                .route(web::post().to(passkeys::register)),
        )
        .service(ceremony_post("/account/passkeys/options").post(passkeys::register_options))
        .service(web::resource("/account/passkeys/{id}/rename").post(passkeys::rename))
        .service(web::resource("/account/passkeys/{id}/delete").post(passkeys::delete))
        .service(
            web::resource("/logout")
                .route(web::get().to(logout::logout_page))
                .route(web::post().to(logout::logout)),
        )
        .service(
            // The JSON API: every answer under it, errors included, is JSON.
            web::scope("/api")
                .app_data(http::api::json_config())
                .wrap(http::api::cors(cors_origins))
                .wrap(from_fn(http::api::no_stray_cors_headers))
                // Outermost, so even the CORS layer's own refusals are JSON.
                .wrap(from_fn(answer_in_json))
                .service(api_post("/register").post(api::register))
                .service(api_post("/login").post(api::login))
                .service(api_post("/login/two-factor").post(api::login_two_factor))
                .service(web::resource("/me").get(api::me))
                .service(api_post("/refresh").post(api::refresh))
                .service(api_post("/logout").post(api::logout))
                .service(web::resource("/openapi.json").get(api::openapi))
                .default_service(web::to(not_found)),
        )
        .service(web::resource("/favicon.ico").get(favicon))
        .service(web::resource("/healthz").get(health::healthz))
        .service(web::resource("/readyz").get(health::readyz))
        .service(
            web::scope("/static")
                .wrap(DefaultHeaders::new().add((header::CACHE_CONTROL, "public, max-age=3600")))
                .service(actix_files::Files::new("", static_dir()).use_etag(true)),
        )
        .default_service(web::to(not_found));
}

/// An API resource that changes state: its `POST`s pass the origin and
/// content-type rules before the body is read (other methods get 405).
fn api_post(
    path: &str,
) -> actix_web::Resource<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource(path).wrap(from_fn(http::api::guard_state_changes))
}

/// A passkey ceremony's JSON call: the API's rules for state changes, its
/// JSON body limits, and its errors in JSON.
fn ceremony_post(
    path: &str,
) -> actix_web::Resource<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource(path)
        .app_data(http::api::json_config())
        .wrap(from_fn(http::api::guard_state_changes))
        .wrap(from_fn(answer_in_json))
}

/// `static/` in the working directory (the project root, or beside a deployed
/// binary), else the one in the source tree this binary was built from.
fn static_dir() -> std::path::PathBuf {
    let local = std::path::Path::new("static");
    if local.is_dir() {
        local.to_path_buf()
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static")
    }
}

async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}

/// The site's icon, which browsers ask for on every first visit; built into
/// the binary from `static/favicon.ico`.
async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/x-icon")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(&include_bytes!("../../static/favicon.ico")[..])
}
