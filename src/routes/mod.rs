//! The route table: the site map, top to bottom.

pub mod account;
pub mod dashboard;
pub mod health;
pub mod home;
pub mod layout;
pub mod login;
pub mod logout;
pub mod register;

use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::web;

use crate::errors::AppError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::home))
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
        .route("/dashboard", web::get().to(dashboard::dashboard))
        .route("/account", web::get().to(account::account))
        .route(
            "/account/password",
            web::post().to(account::change_password),
        )
        .route(
            "/account/sessions/revoke-others",
            web::post().to(account::revoke_others),
        )
        .route(
            "/account/sessions/{id}/revoke",
            web::post().to(account::revoke_session),
        )
        .service(
            web::resource("/logout")
                .route(web::get().to(logout::logout_page))
                .route(web::post().to(logout::logout)),
        )
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .service(
            web::scope("/static")
                .wrap(DefaultHeaders::new().add((header::CACHE_CONTROL, "public, max-age=3600")))
                .service(actix_files::Files::new("", "static").use_etag(true)),
        )
        .default_service(web::to(not_found));
}

async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}
