//! `/`: a signpost to the dashboard or the sign-in page.

use actix_web::HttpResponse;

use super::layout::see_other;
use crate::auth::AuthUser;

pub async fn home(user: Option<AuthUser>) -> HttpResponse {
    see_other(if user.is_some() {
        "/dashboard"
    } else {
        "/login"
    })
}
