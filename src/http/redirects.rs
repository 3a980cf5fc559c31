//! The redirects the pages answer with once a form has done its work: on to
//! a page with a flash message, back to the sign-in page with this browser's
//! session ended, and what every door answers once someone has proved who
//! they are ([`entered`]).

use actix_web::http::header;
use actix_web::{HttpResponse, HttpResponseBuilder};
use gatehouse_core::accounts::Entry;
use gatehouse_core::auth::redirect::with_next;

use super::flash::Flash;
use super::site::Site;

/// 303 → `location`, carrying `flash` to the page there.
pub fn see_other_with(site: &Site, location: &str, flash: Flash) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .cookie(site.cookies.flash(flash.code()))
        .finish()
}

/// 303 → `/login` with this browser's session cookies cleared, and `flash`
/// there when given. Also what a form answers when its session was signed
/// out elsewhere while it was on its way (and nothing changed).
pub fn to_sign_in(site: &Site, flash: Option<Flash>) -> HttpResponse {
    let cookies = &site.cookies;
    let mut response = HttpResponse::SeeOther();
    response.insert_header((header::LOCATION, "/login"));
    cookies.set_signed_out(&mut response);
    if let Some(flash) = flash {
        response.cookie(cookies.flash(flash.code()));
    }
    response.finish()
}

/// What a door answers once a password (or a link) proved who someone is:
/// the session's cookies and `next`, or the pending cookie and the
/// second-factor page (keeping `next`). `was_signed_in`: this browser's
/// previous session just ended, so its cookies go. The caller may add more
/// cookies (a flash) before finishing it.
pub fn entered(site: &Site, entry: Entry, next: &str, was_signed_in: bool) -> HttpResponseBuilder {
    let cookies = &site.cookies;
    let mut response = HttpResponse::SeeOther();
    match entry {
        Entry::SignedIn(signed_in) => {
            response.insert_header((header::LOCATION, next));
            cookies.set_session(&mut response, &signed_in.session);
            // Tokens from before the sign-in stop matching.
            response.cookie(cookies.fresh_csrf());
        }
        Entry::SecondFactor(challenge) => {
            response.insert_header((header::LOCATION, with_next("/login/two-factor", next)));
            if was_signed_in {
                cookies.set_signed_out(&mut response);
            }
            response.cookie(cookies.two_factor(challenge.token, challenge.expires_in));
        }
    }
    response
}
