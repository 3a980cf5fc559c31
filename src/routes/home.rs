//! `/`: a signpost to the dashboard or the sign-in page.

use actix_web::HttpResponse;

use crate::http::AuthUser;
use crate::http::layout::see_other;

pub async fn home(user: Option<AuthUser>) -> HttpResponse {
    see_other(if user.is_some() {
        "/dashboard"
    } else {
        "/login"
    })
}
