//! A small SMTP server inside the tests: it accepts every message over a
//! real SMTP conversation and keeps it for the test to read.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

/// The messages received so far, each as sent (headers and body).
#[derive(Clone, Default)]
pub struct Inbox {
    messages: Arc<Mutex<Vec<String>>>,
}

impl Inbox {
    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits up to 5 s for at least `count` messages.
    pub async fn wait_for(&self, count: usize) -> Vec<String> {
        let started = Instant::now();
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{} of {count} mails arrived",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits up to 5 s until a message to each of `recipients` has arrived;
    /// returns every message so far.
    pub async fn wait_for_mail_to(&self, recipients: &[&str]) -> Vec<String> {
        let started = Instant::now();
        loop {
            let messages = self.messages();
            let to = |who: &str| format!("To: {who}");
            if recipients
                .iter()
                .all(|who| messages.iter().any(|m| m.contains(&to(who))))
            {
                return messages;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no mail to each of {recipients:?} among {messages:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits up to 5 s for a message that `find` takes a link from (such as
    /// [`reset_link`] or [`confirm_link`]); returns the first such link.
    pub async fn wait_for_link(&self, find: fn(&str) -> Option<String>) -> String {
        let started = Instant::now();
        loop {
            let messages = self.messages();
            if let Some(link) = messages.iter().find_map(|m| find(m)) {
                return link;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no such link among {messages:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts the server on a free loopback port; returns its `MAIL_URL` and inbox.
pub async fn start_smtp() -> (String, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = Inbox::default();
    let kept = inbox.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 test SMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 test\r\n",
                        "DATA" => {
                            let _ = write.write_all(b"354 go on\r\n").await;
                            let mut message = String::new();
                            while let Ok(Some(body)) = lines.next_line().await {
                                if body == "." {
                                    break;
                                }
                                message.push_str(body.strip_prefix('.').unwrap_or(&body));
                                message.push('\n');
                            }
                            kept.messages.lock().unwrap().push(message);
                            b"250 kept\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"250 ok\r\n",
                    };
                    let _ = write.write_all(answer).await;
                }
            });
        }
    });
    (format!("smtp+insecure://127.0.0.1:{port}"), inbox)
}

/// The first password-reset link in a message (quoted-printable decoded).
pub fn reset_link(message: &str) -> Option<String> {
    link_under(message, "/password/reset/")
}

/// The first address-confirmation link in a message (quoted-printable decoded).
pub fn confirm_link(message: &str) -> Option<String> {
    link_under(message, "/verify/")
}

/// The first link in a message whose path starts with `prefix` and goes on
/// with a token.
fn link_under(message: &str, prefix: &str) -> Option<String> {
    let joined = message.replace("=\n", "");
    let at = joined.find(prefix)?;
    let start = joined[..at].rfind("http://")?;
    let token: String = joined[at + prefix.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    Some(format!("{}{prefix}{token}", &joined[start..at]))
}
