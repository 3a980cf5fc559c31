//! `/`: a signpost to the dashboard or the sign-in page.

use actix_web::HttpResponse;

use crate::http::MaybeUser;
use crate::http::layout::see_other;

pub async fn home(MaybeUser(user): MaybeUser) -> HttpResponse {
    see_other(if user.is_some() {
        "/dashboard"
    } else {
        "/login"
    })
}
