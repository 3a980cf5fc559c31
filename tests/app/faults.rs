//! Faults: a database that stops answering, a crowd on one e-mail, a crowd
//! signing in, and a stop in the middle of a request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

/// A TCP proxy in front of PostgreSQL that a test can cut and restore.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    /// Bumped at each cut; connections opened before it close.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (accept_open, accept_generation) = (open.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if !accept_open.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let born = accept_generation.load(Ordering::SeqCst);
                let (upstream, generation) = (upstream.clone(), accept_generation.clone());
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let cut = async {
                        while generation.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = cut => {}
                    }
                });
            }
        });
        Self {
            port,
            open,
            generation,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// `url` with its host and port replaced by 127.0.0.1:`port`.
fn through_port(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, hostpath) = rest.rsplit_once('@').map_or(("", rest), |(u, h)| (u, h));
    let path = hostpath.split_once('/').map_or("", |(_, p)| p);
    let at = if userinfo.is_empty() { "" } else { "@" };
    format!("{scheme}://{userinfo}{at}127.0.0.1:{port}/{path}")
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL"]
async fn a_database_that_stops_answering_gives_503s_and_recovers_without_a_restart() {
    let database = TestDatabase::postgres();
    let upstream = database.url.split("://").nth(1).unwrap();
    let upstream = upstream.rsplit_once('@').map_or(upstream, |(_, h)| h);
    let upstream = upstream.split('/').next().unwrap().to_owned();
    let proxy = Proxy::start(upstream).await;
    let url = through_port(&database.url, proxy.port);
    let app = spawn_app_with(move |s| {
        s.database.database_url = url;
        s.database.db_pool_timeout = Duration::from_secs(1);
    })
    .await;
    app.login_test_user().await;
    let other = app.new_client();
    let csrf = app.csrf_token_as(&other, "/login").await;

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(100)).await; // the cut reaches open connections
    let started = Instant::now();
    let sign_in = app
        .post_form_as(
            &other,
            "/login",
            &[
                ("email", app.test_user.email.as_str()),
                ("password", app.test_user.password.as_str()),
                ("csrf_token", csrf.as_str()),
            ],
        )
        .await;
    let sign_in_took = started.elapsed();
    let stranger = app.new_client();
    let register_token = app.csrf_token_as(&stranger, "/register").await;
    let register = app
        .post_form_as(
            &stranger,
            "/register",
            &[
                ("name", "Half Written"),
                ("email", "half@example.com"),
                ("password", "correct horse battery staple"),
                ("csrf_token", register_token.as_str()),
            ],
        )
        .await;
    let ready = app.get("/readyz").await;
    let dashboard = app.get_dashboard().await;

    assert_eq!(sign_in.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        sign_in
            .text()
            .await
            .unwrap()
            .contains("unavailable right now")
    );
    assert!(sign_in_took <= Duration::from_secs(2), "{sign_in_took:?}");
    assert_eq!(register.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        dashboard.status(),
        StatusCode::OK,
        "the access token needs no database"
    );

    proxy.restore();
    let newcomer = app.new_client();
    let registered = app
        .register_as(
            &newcomer,
            "Back Again",
            "back@example.com",
            "correct horse battery staple",
        )
        .await;
    assert_redirects_to(&registered, "/dashboard");
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    let half_written = accounts_with_email(&app.pool, "half@example.com").await;
    assert_eq!(half_written, 0, "nothing half-written");
}

#[tokio::test]
async fn fifty_registrations_of_one_email_make_exactly_one_account() {
    let app = Arc::new(spawn_app_with(|s| s.throttle.register_max_per_hour = 1000).await);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (app, client) = (app.clone(), app.new_client());
        let token = app.csrf_token_as(&client, "/register").await;
        tasks.spawn(async move {
            let fields = [
                ("name", "Same Person"),
                ("email", "same@example.com"),
                ("password", "correct horse battery staple"),
                ("csrf_token", token.as_str()),
            ];
            app.post_form_as(&client, "/register", &fields)
                .await
                .status()
        });
    }

    let statuses: Vec<StatusCode> = tasks.join_all().await;

    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::SEE_OTHER)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY)
        .count();
    assert_eq!((created, refused), (1, 49), "{statuses:?}");
    let accounts = accounts_with_email(&app.pool, "same@example.com").await;
    assert_eq!(accounts, 1);
}

#[tokio::test]
async fn two_hundred_concurrent_sign_ins_on_sqlite_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("crowd.db").display().to_string();
    let app = Arc::new(spawn_app_with(move |s| s.database.database_url = sqlite).await);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (app, client) = (app.clone(), app.new_client());
        let token = app.csrf_token_as(&client, "/login").await;
        tasks.spawn(async move {
            let fields = [
                ("email", app.test_user.email.as_str()),
                ("password", app.test_user.password.as_str()),
                ("csrf_token", token.as_str()),
            ];
            app.post_form_as(&client, "/login", &fields).await.status()
        });
    }

    let statuses: Vec<StatusCode> = tasks.join_all().await;

    let signed_in = statuses
        .iter()
        .filter(|s| **s == StatusCode::SEE_OTHER)
        .count();
    assert_eq!(signed_in, 200, "{statuses:?}");
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    let mut server = RunningBinary::start(&[("BCRYPT_COST", "12")]);
    let client = Client::new("sigterm");
    let address = server.address.clone();
    let page = client
        .http
        .get(format!("{address}/register"))
        .send()
        .await
        .unwrap();
    let token = csrf_of(&page.text().await.unwrap());
    let in_flight = {
        let (http, address) = (client.http.clone(), address.clone());
        tokio::spawn(async move {
            let fields = [
                ("name", "Last Request"),
                ("email", "last@example.com"),
                ("password", "correct horse battery staple"),
                ("csrf_token", token.as_str()),
            ];
            let response = http
                .post(format!("{address}/register"))
                .header("Origin", &address)
                .form(&fields)
                .send()
                .await
                .unwrap();
            (response.status(), Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;

    let signalled = Instant::now();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    let (answer, answered) = in_flight.await.unwrap();

    assert_eq!(
        answer,
        StatusCode::SEE_OTHER,
        "the sign-up in bcrypt completed"
    );
    assert!(answered > signalled, "the answer came after the signal");
    assert!(status.success(), "{status:?}");
}
