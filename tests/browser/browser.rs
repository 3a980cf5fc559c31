//! A Chromium of its own for each test, and what tests say to it.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The flags every Chromium starts with (no network chatter, no first-run
/// dialogs; `--no-sandbox` because CI runs as root).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
];

/// One chromedriver with one Chromium on a fresh profile.
pub struct Browser {
    pub client: Client,
    driver: Child,
    driver_url: String,
    profile: tempfile::TempDir,
    javascript: bool,
    name: String,
}

/// Starts a browser for test `name`. With `javascript: false`, pages run no
/// script. Fails the test when `CHROMEDRIVER` is unset: browser tests carry
/// `#[ignore = "needs CHROMEDRIVER"]` and run only with `--include-ignored`.
pub async fn browser(name: &str, javascript: bool) -> Browser {
    let driver = std::env::var_os("CHROMEDRIVER")
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "this test needs a browser: set CHROMEDRIVER (e.g. CHROMEDRIVER=/usr/bin/chromedriver)"
            )
        });
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&driver)
        // A group of its own, so that dropping the browser also ends the
        // Chromium the driver started.
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("CHROMEDRIVER={driver:?} does not start: {e}"));
    let driver_url = format!("http://127.0.0.1:{port}");
    let profile = tempfile::tempdir().unwrap();
    let client = connect(&driver_url, profile.path(), javascript).await;
    Browser {
        client,
        driver: child,
        driver_url,
        profile,
        javascript,
        name: name.to_owned(),
    }
}

async fn connect(driver_url: &str, profile: &Path, javascript: bool) -> Client {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.push("--window-size=1280,900".to_owned());
    if !javascript {
        args.push("--blink-settings=scriptEnabled=false".to_owned());
    }
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    let started = Instant::now();
    loop {
        match ClientBuilder::native()
            .capabilities(capabilities.clone())
            .connect(driver_url)
            .await
        {
            Ok(client) => return client,
            Err(e) if started.elapsed() < Duration::from_secs(15) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the browser cannot start: {e}"),
        }
    }
}

impl Browser {
    /// Ends this browser session (session cookies go with it) and starts a
    /// new one on the same profile (persistent cookies stay).
    pub async fn restart(&mut self) {
        let _ = self.client.clone().close().await;
        // The old Chromium holds the profile until it has exited (its
        // `SingletonLock` goes last); a new one started earlier cannot open it.
        let lock = self.profile.path().join("SingletonLock");
        let started = Instant::now();
        while lock.symlink_metadata().is_ok() && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.client = connect(&self.driver_url, self.profile.path(), self.javascript).await;
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// Types `value` into the field named `name`.
    pub async fn fill(&self, name: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(&format!("[name=\"{name}\"]")))
            .await
            .unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks the first element `css` matches and waits for what it starts.
    pub async fn click(&self, css: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap();
        self.then_wait(element.click()).await;
    }

    /// Runs `action` (a click, a key press) and waits for what it starts: a
    /// new document (or, without scripts, a new address), at most 3 s.
    pub async fn then_wait<T, E: std::fmt::Debug>(
        &self,
        action: impl std::future::Future<Output = Result<T, E>>,
    ) {
        let before = self.client.current_url().await.unwrap();
        if self.javascript {
            let _ = self
                .client
                .execute("window.__beforeClick = true; return true;", vec![])
                .await;
        }
        action.await.unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            if self.javascript {
                let fresh = self
                    .client
                    .execute(
                        "return window.__beforeClick === undefined && document.readyState === 'complete';",
                        vec![],
                    )
                    .await;
                if matches!(fresh, Ok(Value::Bool(true))) {
                    return;
                }
            } else if self
                .client
                .current_url()
                .await
                .is_ok_and(|now| now != before)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits up to 5 s for the page to contain `text` (a script at work).
    pub async fn wait_for_text(&self, text: &str, what: &str) {
        let started = Instant::now();
        while !self.source().await.contains(text) {
            if started.elapsed() > Duration::from_secs(5) {
                self.fail(what).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the document has loaded.
    pub async fn settle(&self) {
        let started = Instant::now();
        while self.javascript && started.elapsed() < Duration::from_secs(10) {
            let state = self
                .client
                .execute("return document.readyState", vec![])
                .await;
            if matches!(state, Ok(Value::String(s)) if s == "complete") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Saves a screenshot and the page source, and fails the test naming them.
    pub async fn fail(&self, what: &str) -> ! {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("browser-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let shot = dir.join(format!("{}.png", self.name));
        let page = dir.join(format!("{}.html", self.name));
        if let Ok(png) = self.client.screenshot().await {
            std::fs::write(&shot, png).unwrap();
        }
        std::fs::write(&page, self.client.source().await.unwrap_or_default()).unwrap();
        panic!(
            "{what} (at {}; screenshot {}, page {})",
            self.path().await,
            shot.display(),
            page.display()
        );
    }

    /// Fails (with artifacts) unless `condition` holds.
    pub async fn ensure(&self, condition: bool, what: &str) {
        if !condition {
            self.fail(what).await;
        }
    }

    /// Saves a screenshot under the artifacts folder (for looking at).
    pub async fn picture(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("browser-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, self.client.screenshot().await.unwrap()).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Serves `files` (path → content type and body) on a loopback port of its
/// own: another origin for the browser. Returns its origin.
pub async fn serve_elsewhere(files: Vec<(&'static str, &'static str, String)>) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let files = std::sync::Arc::new(files);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let files = files.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 8192];
                let n = socket.read(&mut buffer).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..n]);
                let target = request.split_whitespace().nth(1).unwrap_or("/");
                let path = target.split('?').next().unwrap_or("/");
                let found = files.iter().find(|(p, _, _)| *p == path);
                let response = match found {
                    Some((_, content_type, body)) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_owned()
                    }
                };
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    origin
}
