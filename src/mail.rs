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
    /// "Your account was deleted."
    AccountDeleted {
        to: String,
        name: String,
        /// Where to register again.
        register: String,
    },
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

impl Mail {
    fn to(&self) -> &str {
        match self {
            Self::ResetLink { to, .. }
            | Self::PasswordChanged { to, .. }
            | Self::AccountDeleted { to, .. } => to,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::ResetLink { .. } => "reset_link",
            Self::PasswordChanged { .. } => "password_changed",
            Self::AccountDeleted { .. } => "account_deleted",
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
            Self::AccountDeleted { name, register, .. } => (
                "Your Gatehouse account was deleted",
                AccountDeletedText { name, register }.render(),
                AccountDeletedHtml { name, register }.render(),
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
