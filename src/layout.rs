//! What `base.html` shows on every page: the navigation's user, the CSRF
//! token its forms carry and the flash message. Plain data, so the error
//! page can be rendered from anywhere.

/// The signed-in user as the navigation shows them.
pub struct NavUser {
    pub name: String,
}

/// Data for `base.html`.
pub struct Layout {
    pub user: Option<NavUser>,
    /// For the nav's Sign out form and the page's own forms.
    pub csrf_token: String,
    pub flash: Option<&'static str>,
}

impl Layout {
    /// For pages rendered without request context (error pages).
    pub fn bare() -> Self {
        Self {
            user: None,
            csrf_token: String::new(),
            flash: None,
        }
    }
}
