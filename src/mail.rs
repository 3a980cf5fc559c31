//! Mail: a bounded queue and a background task that renders each message
//! (plain text and HTML, askama) and hands it to the transport `MAIL_URL`
//! names — SMTP with STARTTLS or implicit TLS, a local relay, or `.eml`
//! files. Requests only enqueue, so neither their status nor their timing
//! depends on the mail; sending retries with back-off and a mail that finally
//! fails is logged with the request id. Stopping drains the queue.

use std::path::PathBuf;
use std::time::Duration;

use askama::Template;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{FileTransport, Message, SmtpTransport, Transport as _};
use percent_encoding::percent_decode_str;
use tokio::sync::mpsc;

use gatehouse_core::accounts::{ConfirmLink, LinkPurpose, RegistrationMail};

/// Messages waiting at most; past it a new one is dropped and logged.
const QUEUE: usize = 256;
/// Pauses before each retry.
const RETRIES: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(8),
];

/// A message to send.
#[derive(Debug, Clone)]
pub enum Mail {
    /// A password-reset link.
    ResetLink {
        to: String,
        name: String,
        link: String,
        expires_in: Duration,
    },
    /// "Your password was changed."
    PasswordChanged {
        to: String,
        name: String,
        /// Where to ask for a new link.
        forgot: String,
    },
    /// A change to two-factor sign-in: on, off, new recovery codes, or
    /// turned off by support.
    TwoFactorChanged {
        to: String,
        name: String,
        change: TwoFactorChange,
        /// The account page, to check and undo.
        account: String,
    },
    /// A passkey was added or removed (or support removed them all).
    PasskeyChanged {
        to: String,
        name: String,
        change: PasskeyChange,
        /// The account's passkeys, to check and remove.
        passkeys: String,
    },
    /// "Your account was deleted."
    AccountDeleted {
        to: String,
        name: String,
        /// Where to register again.
        register: String,
    },
    /// A link confirming an address: a registration's, or (`new_address`)
    /// the one an account is changing to.
    ConfirmLink {
        to: String,
        name: String,
        link: String,
        expires_in: Duration,
        new_address: bool,
    },
    /// To a confirmed address someone registered again: "you already have
    /// an account".
    AlreadyRegistered {
        to: String,
        name: String,
        login: String,
        forgot: String,
    },
    /// To an account's address: a change to `new_email` was asked for.
    EmailChangeRequested {
        to: String,
        name: String,
        new_email: String,
        /// Where to change the password.
        account: String,
    },
    /// To an address another account asked to move to.
    AddressOffered {
        to: String,
        name: String,
        login: String,
    },
}

impl Mail {
    /// The mail carrying `link`, for the site at `origin`.
    pub fn confirm(link: ConfirmLink, origin: &str) -> Self {
        Self::ConfirmLink {
            link: link.url(origin),
            to: link.email.to_string(),
            name: link.name,
            expires_in: link.expires_in,
            new_address: link.purpose == LinkPurpose::EmailChange,
        }
    }

    /// The one mail a registration sends, for the site at `origin`.
    pub fn for_registration(mail: RegistrationMail, origin: &str) -> Self {
        match mail {
            RegistrationMail::Link(link) => Self::confirm(link, origin),
            RegistrationMail::AlreadyRegistered { email, name } => Self::AlreadyRegistered {
                to: email.to_string(),
                name,
                login: format!("{origin}/login"),
                forgot: format!("{origin}/password/forgot"),
            },
        }
    }
}

/// Why the mail settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("MAIL_URL: {0}")]
    Url(String),
    #[error("MAIL_FROM: `{0}` is not an address such as `Gatehouse <noreply@example.com>`")]
    From(String),
}

/// Where mail goes.
#[derive(Debug, Clone)]
pub enum Transport {
    Smtp(SmtpTransport),
    Files(PathBuf),
}

impl Transport {
    /// Reads `MAIL_URL`: `smtp://` (STARTTLS required), `smtps://` (implicit
    /// TLS), `smtp+insecure://` (a local relay; refused in production) or
    /// `file://DIR`.
    pub fn from_url(url: &str, production: bool) -> Result<Self, MailConfigError> {
        let bad = |why: &str| MailConfigError::Url(why.to_owned());
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("must be smtp://, smtps://, smtp+insecure:// or file://"))?;
        if scheme == "file" {
            return Ok(Self::Files(PathBuf::from(rest)));
        }
        let (userinfo, host_port) = match rest.trim_end_matches('/').rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest.trim_end_matches('/')),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| bad("the port is not a number"))?,
                ),
            ),
            None => (host_port, None),
        };
        if host.is_empty() {
            return Err(bad("names no host"));
        }
        let builder = match scheme {
            "smtp" => SmtpTransport::starttls_relay(host)
                .map_err(|e| bad(&e.to_string()))?
                .port(port.unwrap_or(587)),
            "smtps" => SmtpTransport::relay(host)
                .map_err(|e| bad(&e.to_string()))?
                .port(port.unwrap_or(465)),
            "smtp+insecure" if production => {
                return Err(bad(
                    "smtp+insecure:// sends mail unencrypted and is refused in production",
                ));
            }
            "smtp+insecure" => SmtpTransport::builder_dangerous(host).port(port.unwrap_or(25)),
            _ => {
                return Err(bad(
                    "must be smtp://, smtps://, smtp+insecure:// or file://",
                ));
            }
        };
        let builder = match userinfo {
            Some(userinfo) => {
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
                builder.credentials(Credentials::new(decode(user), decode(pass)))
            }
            None => builder,
        };
        Ok(Self::Smtp(
            builder.timeout(Some(Duration::from_secs(20))).build(),
        ))
    }

    /// Sends one message; returns where it went (for the log). Blocking.
    fn send(&self, message: &Message) -> Result<String, String> {
        match self {
            Self::Smtp(smtp) => smtp
                .send(message)
                .map(|_| "SMTP".to_owned())
                .map_err(|e| e.to_string()),
            Self::Files(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
                let id = FileTransport::new(dir)
                    .send(message)
                    .map_err(|e| e.to_string())?;
                Ok(dir.join(format!("{id}.eml")).display().to_string())
            }
        }
    }
}

#[derive(Template)]
#[template(path = "mail/reset_link.txt")]
struct ResetLinkText<'a> {
    name: &'a str,
    link: &'a str,
    minutes: u64,
}

#[derive(Template)]
#[template(path = "mail/reset_link.html")]
struct ResetLinkHtml<'a> {
    name: &'a str,
    link: &'a str,
    minutes: u64,
}

#[derive(Template)]
#[template(path = "mail/password_changed.txt")]
struct PasswordChangedText<'a> {
    name: &'a str,
    forgot: &'a str,
}

#[derive(Template)]
#[template(path = "mail/password_changed.html")]
struct PasswordChangedHtml<'a> {
    name: &'a str,
    forgot: &'a str,
}

/// What changed in an account's passkeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasskeyChange {
    /// Its name.
    Added(String),
    Removed(String),
    /// How many support removed.
    ResetBySupport(usize),
}

impl PasskeyChange {
    fn subject(&self) -> &'static str {
        match self {
            Self::Added(_) => "A passkey was added to your Gatehouse account",
            Self::Removed(_) => "A passkey was removed from your Gatehouse account",
            Self::ResetBySupport(_) => "Support removed the passkeys of your Gatehouse account",
        }
    }

    /// The sentence that says what happened.
    fn what(&self) -> String {
        match self {
            Self::Added(passkey) => format!(
                "a passkey named \"{passkey}\" was just added to your Gatehouse account: it can now sign in to it."
            ),
            Self::Removed(passkey) => format!(
                "the passkey named \"{passkey}\" was just removed from your Gatehouse account: it can no longer sign in to it."
            ),
            Self::ResetBySupport(count) => format!(
                "support staff removed the passkeys of your Gatehouse account ({count} of them), as asked for. Your password, and two-factor sign-in when it is on, still sign you in; you can add new passkeys on your account page."
            ),
        }
    }
}

/// What changed in an account's two-factor sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwoFactorChange {
    On,
    Off,
    CodesRegenerated,
    ResetBySupport,
}

impl TwoFactorChange {
    fn subject(self) -> &'static str {
        match self {
            Self::On => "Two-factor sign-in was turned on",
            Self::Off => "Two-factor sign-in was turned off",
            Self::CodesRegenerated => "New recovery codes were made for your Gatehouse account",
            Self::ResetBySupport => "Support turned off two-factor sign-in on your account",
        }
    }

    /// The sentence that says what happened.
    fn what(self) -> &'static str {
        match self {
            Self::On => {
                "two-factor sign-in was just turned on for your Gatehouse account: signing in now also asks for a code from your authenticator app."
            }
            Self::Off => {
                "two-factor sign-in was just turned off for your Gatehouse account: signing in now asks for your password only, and every trusted device was forgotten."
            }
            Self::CodesRegenerated => {
                "a new set of recovery codes was just made for your Gatehouse account; the previous codes no longer work."
            }
            Self::ResetBySupport => {
                "support staff turned off two-factor sign-in for your Gatehouse account, as asked for when the authenticator and the recovery codes were lost. Every trusted device was forgotten."
            }
        }
    }
}

#[derive(Template)]
#[template(path = "mail/two_factor_changed.txt")]
struct TwoFactorChangedText<'a> {
    name: &'a str,
    what: &'a str,
    account: &'a str,
}

#[derive(Template)]
#[template(path = "mail/two_factor_changed.html")]
struct TwoFactorChangedHtml<'a> {
    name: &'a str,
    what: &'a str,
    account: &'a str,
}

#[derive(Template)]
#[template(path = "mail/passkey_changed.txt")]
struct PasskeyChangedText<'a> {
    name: &'a str,
    what: &'a str,
    passkeys: &'a str,
}

#[derive(Template)]
#[template(path = "mail/passkey_changed.html")]
struct PasskeyChangedHtml<'a> {
    name: &'a str,
    what: &'a str,
    passkeys: &'a str,
}

#[derive(Template)]
#[template(path = "mail/account_deleted.txt")]
struct AccountDeletedText<'a> {
    name: &'a str,
    register: &'a str,
}

#[derive(Template)]
#[template(path = "mail/account_deleted.html")]
struct AccountDeletedHtml<'a> {
    name: &'a str,
    register: &'a str,
}

#[derive(Template)]
#[template(path = "mail/confirm_link.txt")]
struct ConfirmLinkText<'a> {
    name: &'a str,
    link: &'a str,
    lifetime: &'a str,
    new_address: bool,
}

#[derive(Template)]
#[template(path = "mail/confirm_link.html")]
struct ConfirmLinkHtml<'a> {
    name: &'a str,
    link: &'a str,
    lifetime: &'a str,
    new_address: bool,
}

#[derive(Template)]
#[template(path = "mail/already_registered.txt")]
struct AlreadyRegisteredText<'a> {
    name: &'a str,
    login: &'a str,
    forgot: &'a str,
}

#[derive(Template)]
#[template(path = "mail/already_registered.html")]
struct AlreadyRegisteredHtml<'a> {
    name: &'a str,
    login: &'a str,
    forgot: &'a str,
}

#[derive(Template)]
#[template(path = "mail/email_change_requested.txt")]
struct EmailChangeRequestedText<'a> {
    name: &'a str,
    new_email: &'a str,
    account: &'a str,
}

#[derive(Template)]
#[template(path = "mail/email_change_requested.html")]
struct EmailChangeRequestedHtml<'a> {
    name: &'a str,
    new_email: &'a str,
    account: &'a str,
}

#[derive(Template)]
#[template(path = "mail/address_offered.txt")]
struct AddressOfferedText<'a> {
    name: &'a str,
    login: &'a str,
}

#[derive(Template)]
#[template(path = "mail/address_offered.html")]
struct AddressOfferedHtml<'a> {
    name: &'a str,
    login: &'a str,
}

impl Mail {
    fn to(&self) -> &str {
        match self {
            Self::ResetLink { to, .. }
            | Self::PasswordChanged { to, .. }
            | Self::AccountDeleted { to, .. }
            | Self::TwoFactorChanged { to, .. }
            | Self::PasskeyChanged { to, .. }
            | Self::ConfirmLink { to, .. }
            | Self::AlreadyRegistered { to, .. }
            | Self::EmailChangeRequested { to, .. }
            | Self::AddressOffered { to, .. } => to,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::ResetLink { .. } => "reset_link",
            Self::PasswordChanged { .. } => "password_changed",
            Self::AccountDeleted { .. } => "account_deleted",
            Self::TwoFactorChanged { .. } => "two_factor_changed",
            Self::PasskeyChanged { .. } => "passkey_changed",
            Self::ConfirmLink { .. } => "confirm_link",
            Self::AlreadyRegistered { .. } => "already_registered",
            Self::EmailChangeRequested { .. } => "email_change_requested",
            Self::AddressOffered { .. } => "address_offered",
        }
    }

    /// The message, in plain text and HTML.
    fn render(&self, from: &Mailbox) -> Result<Message, String> {
        let (subject, text, html) = match self {
            Self::ResetLink {
                name,
                link,
                expires_in,
                ..
            } => {
                let minutes = expires_in.as_secs().div_ceil(60);
                (
                    "Reset your Gatehouse password",
                    ResetLinkText {
                        name,
                        link,
                        minutes,
                    }
                    .render(),
                    ResetLinkHtml {
                        name,
                        link,
                        minutes,
                    }
                    .render(),
                )
            }
            Self::PasswordChanged { name, forgot, .. } => (
                "Your Gatehouse password was changed",
                PasswordChangedText { name, forgot }.render(),
                PasswordChangedHtml { name, forgot }.render(),
            ),
            Self::TwoFactorChanged {
                name,
                change,
                account,
                ..
            } => {
                let what = change.what();
                (
                    change.subject(),
                    TwoFactorChangedText {
                        name,
                        what,
                        account,
                    }
                    .render(),
                    TwoFactorChangedHtml {
                        name,
                        what,
                        account,
                    }
                    .render(),
                )
            }
            Self::PasskeyChanged {
                name,
                change,
                passkeys,
                ..
            } => {
                let what = change.what();
                let what = what.as_str();
                (
                    change.subject(),
                    PasskeyChangedText {
                        name,
                        what,
                        passkeys,
                    }
                    .render(),
                    PasskeyChangedHtml {
                        name,
                        what,
                        passkeys,
                    }
                    .render(),
                )
            }
            Self::AccountDeleted { name, register, .. } => (
                "Your Gatehouse account was deleted",
                AccountDeletedText { name, register }.render(),
                AccountDeletedHtml { name, register }.render(),
            ),
            Self::ConfirmLink {
                name,
                link,
                expires_in,
                new_address,
                ..
            } => {
                let (lifetime, new_address) = (&lifetime_text(*expires_in), *new_address);
                (
                    if new_address {
                        "Confirm your new Gatehouse e-mail address"
                    } else {
                        "Confirm your Gatehouse e-mail address"
                    },
                    ConfirmLinkText {
                        name,
                        link,
                        lifetime,
                        new_address,
                    }
                    .render(),
                    ConfirmLinkHtml {
                        name,
                        link,
                        lifetime,
                        new_address,
                    }
                    .render(),
                )
            }
            Self::AlreadyRegistered {
                name,
                login,
                forgot,
                ..
            } => (
                "You already have a Gatehouse account",
                AlreadyRegisteredText {
                    name,
                    login,
                    forgot,
                }
                .render(),
                AlreadyRegisteredHtml {
                    name,
                    login,
                    forgot,
                }
                .render(),
            ),
            Self::EmailChangeRequested {
                name,
                new_email,
                account,
                ..
            } => (
                "Your Gatehouse e-mail address is being changed",
                EmailChangeRequestedText {
                    name,
                    new_email,
                    account,
                }
                .render(),
                EmailChangeRequestedHtml {
                    name,
                    new_email,
                    account,
                }
                .render(),
            ),
            Self::AddressOffered { name, login, .. } => (
                "Someone asked to move a Gatehouse account to your address",
                AddressOfferedText { name, login }.render(),
                AddressOfferedHtml { name, login }.render(),
            ),
        };
        let (text, html) = (
            text.map_err(|e| e.to_string())?,
            html.map_err(|e| e.to_string())?,
        );
        let to: Mailbox = self
            .to()
            .parse()
            .map_err(|e| format!("bad recipient: {e}"))?;
        Message::builder()
            .from(from.clone())
            .to(to)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| e.to_string())
    }
}

/// How long a link works, in words: whole hours when it is a whole number of
/// them, else minutes (rounded up).
pub fn lifetime_text(lifetime: Duration) -> String {
    let secs = lifetime.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs >= 3600 && secs.is_multiple_of(3600) {
        plural(secs / 3600, "hour")
    } else {
        plural(secs.div_ceil(60), "minute")
    }
}

/// The queue's sending end, shared by every request.
#[derive(Debug, Clone)]
pub struct Mailer {
    queue: mpsc::Sender<(Mail, String)>,
}

impl Mailer {
    /// Starts the background task; returns the queue and the task, which ends
    /// (after sending everything queued) once every `Mailer` is dropped.
    pub fn start(
        transport: Transport,
        from: &str,
    ) -> Result<(Self, tokio::task::JoinHandle<()>), MailConfigError> {
        let from: Mailbox = from
            .parse()
            .map_err(|_| MailConfigError::From(from.to_owned()))?;
        let (queue, mut waiting) = mpsc::channel::<(Mail, String)>(QUEUE);
        let task = tokio::spawn(async move {
            while let Some((mail, request_id)) = waiting.recv().await {
                deliver(&transport, &from, mail, &request_id).await;
            }
        });
        Ok((Self { queue }, task))
    }

    /// Queues `mail`; never waits. `request_id` goes into the log lines.
    pub fn send(&self, mail: Mail, request_id: &str) {
        let kind = mail.kind();
        if let Err(e) = self.queue.try_send((mail, request_id.to_owned())) {
            tracing::error!(kind, request_id, error = %e, "mail queue full or closed: message dropped");
        }
    }
}

async fn deliver(transport: &Transport, from: &Mailbox, mail: Mail, request_id: &str) {
    let kind = mail.kind();
    let message = match mail.render(from) {
        Ok(message) => message,
        Err(e) => {
            tracing::error!(kind, request_id, error = %e, "mail could not be written");
            return;
        }
    };
    let message = std::sync::Arc::new(message);
    let mut pauses = RETRIES.iter();
    loop {
        let (transport, message) = (transport.clone(), message.clone());
        let sent = tokio::task::spawn_blocking(move || transport.send(&message))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match (sent, pauses.next()) {
            (Ok(to), _) => {
                tracing::info!(kind, request_id, delivered_to = %to, "mail sent");
                return;
            }
            (Err(e), Some(pause)) => {
                tracing::warn!(kind, request_id, error = %e, "mail not sent yet; retrying");
                tokio::time::sleep(*pause).await;
            }
            (Err(e), None) => {
                tracing::error!(kind, request_id, error = %e, "mail could not be sent; giving up");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lifetime_reads_in_hours_or_minutes() {
        let text = |secs| lifetime_text(Duration::from_secs(secs));
        assert_eq!(text(86_400), "24 hours");
        assert_eq!(text(3600), "1 hour");
        assert_eq!(text(1800), "30 minutes");
        assert_eq!(text(5400), "90 minutes");
        assert_eq!(text(60), "1 minute");
        assert_eq!(text(61), "2 minutes");
    }
}
