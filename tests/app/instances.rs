//! Several real `gatehouse` processes on one PostgreSQL database: a cookie
//! from one works on the other, a revocation on one is honoured by the other
//! at once, throttling counts on both, and a rotated refresh token cannot be
//! replayed anywhere. Each test runs twice: straight to PostgreSQL
//! (`TEST_DATABASE_URL`) and through a transaction-mode pooler
//! (`TEST_DATABASE_POOLER_URL`, e.g. PgBouncer), where nothing may rely on
//! session state. All are ignored without `--include-ignored`.

use std::io::Write as _;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::*;

/// How the instances reach PostgreSQL.
#[derive(Clone, Copy)]
enum Route {
    /// Straight to it: each instance migrates at start and listens for
    /// revocations on its `DATABASE_URL`.
    Direct,
    /// Through the transaction-mode pooler (`DB_POOLER=transaction`), the
    /// database migrated first by `gatehouse migrate` over the direct URL;
    /// with `listen`, revocations also arrive over `LISTEN` on
    /// `REVOCATION_LISTEN_URL` (the direct URL), else by the poll alone.
    Pooler { listen: bool },
}

/// Each test once straight to PostgreSQL and once through the pooler.
macro_rules! on_both_routes {
    ($($test:ident),+ $(,)?) => {
        mod direct {
            $(
                #[tokio::test]
                #[ignore = "needs TEST_DATABASE_URL"]
                async fn $test() {
                    super::$test(super::Route::Direct).await;
                }
            )+
        }

        mod through_pooler {
            $(
                #[tokio::test]
                #[ignore = "needs TEST_DATABASE_URL and TEST_DATABASE_POOLER_URL"]
                async fn $test() {
                    super::$test(super::Route::Pooler { listen: true }).await;
                }
            )+
        }
    };
}

on_both_routes!(
    a_cookie_from_one_instance_works_on_the_other,
    a_sign_out_on_one_instance_is_refused_on_the_other_within_100_ms_typically,
    throttling_counts_failures_on_both_instances_together,
    thirty_guesses_at_once_on_two_instances_are_judged_at_most_five_times,
    forty_guesses_at_once_over_ten_emails_on_two_instances_are_judged_at_most_ten_times,
    twenty_right_sign_ins_at_once_on_two_instances_all_succeed,
    a_refresh_token_rotated_on_one_instance_cannot_be_replayed_on_the_other,
    two_tabs_refreshing_at_once_on_two_instances_both_stay_signed_in,
    a_revocation_or_a_password_change_on_one_instance_is_honoured_by_the_other,
    a_password_reset_on_one_instance_signs_the_account_out_on_the_other,
    an_account_deleted_on_one_instance_is_signed_out_on_the_other,
    twenty_resends_at_once_on_two_instances_mail_one_link,
);

struct Instances {
    a: RunningBinary,
    b: RunningBinary,
    _database: TestDatabase,
}

/// Two instances on a fresh PostgreSQL database, reached by `route`; fails
/// without `TEST_DATABASE_URL` (and, through the pooler, without
/// `TEST_DATABASE_POOLER_URL`).
fn two_instances(route: Route, vars: &[(&str, &str)]) -> Instances {
    let database = TestDatabase::postgres();
    let pooled;
    let mut all = match route {
        Route::Direct => vec![("DATABASE_URL", database.url.as_str())],
        Route::Pooler { listen } => {
            pooled = database.through_pooler();
            migrate(&database.url);
            let mut through = vec![
                ("DATABASE_URL", pooled.as_str()),
                ("DB_POOLER", "transaction"),
                ("MIGRATE_ON_START", "false"),
            ];
            if listen {
                through.push(("REVOCATION_LISTEN_URL", database.url.as_str()));
            }
            through
        }
    };
    all.extend_from_slice(vars);
    // Both start at once: straight to an empty database, the migration lock
    // makes one wait for the other instead of racing it.
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| RunningBinary::start(&all));
        let b = scope.spawn(|| RunningBinary::start(&all));
        (a.join().unwrap(), b.join().unwrap())
    });
    Instances {
        a,
        b,
        _database: database,
    }
}

/// `gatehouse migrate --database-url direct_url`, as an operator runs it
/// before starting instances behind the pooler.
fn migrate(direct_url: &str) {
    let output = run_gatehouse(&[], &["migrate", "--database-url", direct_url], "");
    assert!(
        output.status.success(),
        "gatehouse migrate: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn register(client: &Client, address: &str, email: &str) {
    let fields = [
        ("name", "Ada Lovelace"),
        ("email", email),
        ("password", "correct horse battery staple"),
    ];
    let response = client
        .submit(address, "/register", "/register", &fields)
        .await;
    assert_redirects_to(&response, "/dashboard");
}

/// Signs in the account `register` made, on the site at `address`.
async fn sign_in_ada(client: &Client, address: &str) {
    let signed_in = client
        .sign_in(
            address,
            "ada@example.com",
            "correct horse battery staple",
            false,
        )
        .await;
    assert_redirects_to(&signed_in, "/dashboard");
}

async fn a_cookie_from_one_instance_works_on_the_other(route: Route) {
    let pair = two_instances(route, &[]);
    let client = Client::new("instances");

    register(&client, &pair.a.address, "ada@example.com").await;
    let on_b = client
        .http
        .get(format!("{}/dashboard", pair.b.address))
        .send()
        .await
        .unwrap();

    assert_eq!(on_b.status(), StatusCode::OK);
    assert!(on_b.text().await.unwrap().contains("Ada Lovelace"));
}

async fn a_sign_out_on_one_instance_is_refused_on_the_other_within_100_ms_typically(route: Route) {
    let pair = two_instances(route, &[]);

    let delays = sign_out_delays(&pair, 50, Duration::from_secs(2)).await;

    let (median, max) = (delays[delays.len() / 2], delays[delays.len() - 1]);
    assert!(median <= Duration::from_millis(100), "median {median:?}");
    assert!(max <= Duration::from_secs(2), "max {max:?}");
}

#[tokio::test]
#[ignore = "needs TEST_DATABASE_URL and TEST_DATABASE_POOLER_URL"]
async fn through_the_pooler_without_listen_a_sign_out_reaches_the_other_instance_by_the_poll() {
    let poll = Duration::from_secs(1);
    let pair = two_instances(
        Route::Pooler { listen: false },
        &[("REVOCATION_POLL_INTERVAL", "1s")],
    );
    let started = Instant::now();
    while !pair
        .b
        .log()
        .contains("revocations made elsewhere: polled (no LISTEN")
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no start-up line saying revocations are polled only: {}",
            pair.b.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let delays = sign_out_delays(&pair, 5, poll + Duration::from_millis(250)).await;

    // Polled, not pushed: some sign-out waits for the next poll.
    assert!(
        delays[delays.len() - 1] > Duration::from_millis(100),
        "{delays:?}"
    );

    // A deleted account's sessions, whose rows are gone, reach it too.
    let phone = Client::new("phone");
    sign_in_ada(&phone, &pair.b.address).await;
    let phone_cookie = format!(
        "gatehouse_access={}",
        phone.cookie(&pair.b.address, "gatehouse_access").unwrap()
    );
    let laptop = Client::new("laptop");
    sign_in_ada(&laptop, &pair.a.address).await;
    let deleted = laptop
        .submit(
            &pair.a.address,
            "/account",
            "/account/delete",
            &[("current_password", "correct horse battery staple")],
        )
        .await;
    assert_redirects_to(&deleted, "/login");
    let started = Instant::now();
    refused_within_2s(&pair.b.address, &phone_cookie).await;
    assert!(started.elapsed() <= poll + Duration::from_millis(250));
}

/// Signs Ada in on A `rounds` times; each time checks that B accepts her
/// access cookie, signs out on A and measures how long B goes on accepting
/// it, failing past `bound`. Returns the delays, sorted.
async fn sign_out_delays(pair: &Instances, rounds: usize, bound: Duration) -> Vec<Duration> {
    let client = Client::new("instances");
    register(&client, &pair.a.address, "ada@example.com").await;
    client
        .submit(&pair.a.address, "/logout", "/logout", &[])
        .await;
    let mut delays = Vec::new();

    for _ in 0..rounds {
        sign_in_ada(&client, &pair.a.address).await;
        let access = client.cookie(&pair.a.address, "gatehouse_access").unwrap();
        let old = format!("gatehouse_access={access}");
        assert_eq!(
            get_with_cookie(&pair.b.address, "/dashboard", &old)
                .await
                .status(),
            StatusCode::OK
        );
        let signed_out = client
            .submit(&pair.a.address, "/logout", "/logout", &[])
            .await;
        assert_redirects_to(&signed_out, "/login");
        let started = Instant::now();
        while get_with_cookie(&pair.b.address, "/dashboard", &old)
            .await
            .status()
            == StatusCode::OK
        {
            assert!(
                started.elapsed() < bound,
                "B still accepts the cookie after {bound:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        delays.push(started.elapsed());
    }

    delays.sort();
    let _ = writeln!(
        std::io::stderr(),
        "cross-instance revocation over {} sign-outs: median {:?}, max {:?}",
        delays.len(),
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    delays
}

async fn throttling_counts_failures_on_both_instances_together(route: Route) {
    let pair = two_instances(route, &[("LOGIN_MAX_FAILURES", "3")]);
    let client = Client::new("instances");
    register(&client, &pair.a.address, "ada@example.com").await;
    let attacker = Client::new("attacker");

    for address in [&pair.a.address, &pair.a.address, &pair.b.address] {
        let failed = attacker
            .sign_in(address, "ada@example.com", "not the password", false)
            .await;
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = attacker
        .sign_in(
            &pair.b.address,
            "ada@example.com",
            "correct horse battery staple",
            false,
        )
        .await;

    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
}

async fn thirty_guesses_at_once_on_two_instances_are_judged_at_most_five_times(route: Route) {
    // Cost 8: each check takes long enough for the guesses to overlap.
    let pair = two_instances(route, &[("LOGIN_MAX_FAILURES", "5"), ("BCRYPT_COST", "8")]);
    let client = Client::new("instances");
    register(&client, &pair.a.address, "ada@example.com").await;
    let addresses = [pair.a.address.as_str(), pair.b.address.as_str()];

    let statuses = sign_ins_at_once(
        &addresses,
        30,
        |_| "ada@example.com".to_owned(),
        |i| format!("wrong guess number {i}"),
    )
    .await;
    let right = Client::new("owner")
        .sign_in(
            &pair.b.address,
            "ada@example.com",
            "correct horse battery staple",
            false,
        )
        .await;

    eprintln!(
        "30 guesses at once on two instances, limit 5: {} judged",
        judged(&statuses)
    );
    assert!(judged(&statuses) <= 5, "{statuses:?}");
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
}

async fn forty_guesses_at_once_over_ten_emails_on_two_instances_are_judged_at_most_ten_times(
    route: Route,
) {
    let pair = two_instances(
        route,
        &[("LOGIN_MAX_FAILURES_PER_IP", "10"), ("BCRYPT_COST", "8")],
    );
    let addresses = [pair.a.address.as_str(), pair.b.address.as_str()];

    let statuses = sign_ins_at_once(
        &addresses,
        40,
        |i| format!("someone{}@example.com", i % 10),
        |_| "a wrong password".to_owned(),
    )
    .await;

    eprintln!(
        "40 guesses at once over 10 e-mails on two instances, IP cap 10: {} judged",
        judged(&statuses)
    );
    assert!(judged(&statuses) <= 10, "{statuses:?}");
}

async fn twenty_right_sign_ins_at_once_on_two_instances_all_succeed(route: Route) {
    let pair = two_instances(route, &[("BCRYPT_COST", "8")]);
    let client = Client::new("instances");
    register(&client, &pair.a.address, "ada@example.com").await;
    let addresses = [pair.a.address.as_str(), pair.b.address.as_str()];

    let statuses = sign_ins_at_once(
        &addresses,
        20,
        |_| "ada@example.com".to_owned(),
        |_| "correct horse battery staple".to_owned(),
    )
    .await;

    assert!(
        statuses.iter().all(|s| *s == StatusCode::SEE_OTHER),
        "{statuses:?}"
    );
}

async fn a_refresh_token_rotated_on_one_instance_cannot_be_replayed_on_the_other(route: Route) {
    let pair = two_instances(route, &[("REFRESH_REUSE_GRACE", "0s")]);
    let client = Client::new("instances");
    register(&client, &pair.a.address, "ada@example.com").await;
    let first = client.cookie(&pair.a.address, "gatehouse_refresh").unwrap();

    let rotated = get_with_cookie(
        &pair.b.address,
        "/dashboard",
        &format!("gatehouse_refresh={first}"),
    )
    .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let second = set_cookie(&rotated, "gatehouse_refresh")
        .unwrap()
        .to_owned();
    let second = second.split(';').next().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let replayed = get_with_cookie(
        &pair.a.address,
        "/dashboard",
        &format!("gatehouse_refresh={first}"),
    )
    .await;
    let after_replay = get_with_cookie(&pair.b.address, "/dashboard", &second).await;

    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        after_replay.status(),
        StatusCode::SEE_OTHER,
        "the replay ended the session"
    );
}

async fn two_tabs_refreshing_at_once_on_two_instances_both_stay_signed_in(route: Route) {
    let pair = two_instances(route, &[]);
    let client = Client::new("instances");
    register(&client, &pair.a.address, "ada@example.com").await;
    let refresh = format!(
        "gatehouse_refresh={}",
        client.cookie(&pair.a.address, "gatehouse_refresh").unwrap()
    );

    let (on_a, on_b) = tokio::join!(
        get_with_cookie(&pair.a.address, "/dashboard", &refresh),
        get_with_cookie(&pair.b.address, "/dashboard", &refresh)
    );

    assert_eq!(on_a.status(), StatusCode::OK);
    assert_eq!(on_b.status(), StatusCode::OK);
    let rotated: Vec<String> = [&on_a, &on_b]
        .iter()
        .filter_map(|r| set_cookie(r, "gatehouse_refresh"))
        .map(|c| c.split(';').next().unwrap().to_owned())
        .collect();
    assert_eq!(rotated.len(), 1, "exactly one tab rotates: {rotated:?}");
    let next = get_with_cookie(&pair.a.address, "/dashboard", &rotated[0]).await;
    assert_eq!(
        next.status(),
        StatusCode::OK,
        "the newest token keeps working"
    );
}

/// Waits until instance `address` refuses `cookie` on `/dashboard`; panics
/// after 2 s.
async fn refused_within_2s(address: &str, cookie: &str) {
    let started = Instant::now();
    while get_with_cookie(address, "/dashboard", cookie)
        .await
        .status()
        == StatusCode::OK
    {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still accepted after 2 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn a_revocation_or_a_password_change_on_one_instance_is_honoured_by_the_other(route: Route) {
    let pair = two_instances(route, &[]);
    let (laptop, phone, tablet) = (
        Client::new("laptop"),
        Client::new("phone"),
        Client::new("tablet"),
    );
    register(&laptop, &pair.a.address, "ada@example.com").await;
    for other in [&phone, &tablet] {
        sign_in_ada(other, &pair.a.address).await;
    }
    let phone_cookie = format!(
        "gatehouse_access={}",
        phone.cookie(&pair.a.address, "gatehouse_access").unwrap()
    );
    let tablet_cookie = format!(
        "gatehouse_access={}",
        tablet.cookie(&pair.a.address, "gatehouse_access").unwrap()
    );

    // The laptop signs out every other session on A; B refuses them.
    let revoked = laptop
        .submit(
            &pair.a.address,
            "/account",
            "/account/sessions/revoke-others",
            &[],
        )
        .await;
    assert_redirects_to(&revoked, "/account");
    refused_within_2s(&pair.b.address, &phone_cookie).await;
    refused_within_2s(&pair.b.address, &tablet_cookie).await;

    // A password change on A ends a new session on B too.
    sign_in_ada(&phone, &pair.a.address).await;
    let phone_cookie = format!(
        "gatehouse_access={}",
        phone.cookie(&pair.a.address, "gatehouse_access").unwrap()
    );
    assert_eq!(
        get_with_cookie(&pair.b.address, "/dashboard", &phone_cookie)
            .await
            .status(),
        StatusCode::OK
    );
    let changed = laptop
        .submit(
            &pair.a.address,
            "/account",
            "/account/password",
            &[
                ("current_password", "correct horse battery staple"),
                ("new_password", "an entirely different passphrase"),
            ],
        )
        .await;
    assert_redirects_to(&changed, "/account");
    refused_within_2s(&pair.b.address, &phone_cookie).await;
}

async fn a_password_reset_on_one_instance_signs_the_account_out_on_the_other(route: Route) {
    let (mail_url, inbox) = start_smtp().await;
    let pair = two_instances(route, &[("MAIL_URL", &mail_url)]);
    let phone = Client::new("phone");
    register(&phone, &pair.a.address, "ada@example.com").await;
    let phone_cookie = format!(
        "gatehouse_access={}",
        phone.cookie(&pair.a.address, "gatehouse_access").unwrap()
    );
    let forgetful = Client::new("forgetful");

    let asked = forgetful
        .submit(
            &pair.b.address,
            "/password/forgot",
            "/password/forgot",
            &[("email", "ada@example.com")],
        )
        .await;
    assert_redirects_to(&asked, "/password/forgot/sent");
    let link = reset_link(&inbox.wait_for(1).await[0]).unwrap();
    assert!(link.starts_with(&pair.b.address), "{link}");
    assert_redirects_to(
        &forgetful.http.get(&link).send().await.unwrap(),
        "/password/reset",
    );
    let reset = forgetful
        .submit(
            &pair.b.address,
            "/password/reset",
            "/password/reset",
            &[("new_password", "an entirely different passphrase")],
        )
        .await;

    assert_redirects_to(&reset, "/dashboard");
    refused_within_2s(&pair.a.address, &phone_cookie).await;
}

async fn an_account_deleted_on_one_instance_is_signed_out_on_the_other(route: Route) {
    let pair = two_instances(route, &[]);
    let laptop = Client::new("laptop");
    register(&laptop, &pair.a.address, "ada@example.com").await;
    let phone = Client::new("phone");
    sign_in_ada(&phone, &pair.b.address).await;
    let phone_cookie = format!(
        "gatehouse_access={}",
        phone.cookie(&pair.b.address, "gatehouse_access").unwrap()
    );

    let deleted = laptop
        .submit(
            &pair.a.address,
            "/account",
            "/account/delete",
            &[("current_password", "correct horse battery staple")],
        )
        .await;

    assert_redirects_to(&deleted, "/login");
    refused_within_2s(&pair.b.address, &phone_cookie).await;
    register(&Client::new("again"), &pair.b.address, "ada@example.com").await;
}

async fn twenty_resends_at_once_on_two_instances_mail_one_link(route: Route) {
    let (mail_url, inbox) = start_smtp().await;
    let pair = two_instances(
        route,
        &[("MAIL_URL", &mail_url), ("REGISTRATION_VERIFY", "required")],
    );
    let registered = Client::new("instances")
        .submit(
            &pair.a.address,
            "/register",
            "/register",
            &[
                ("name", "Ada Lovelace"),
                ("email", "ada@example.com"),
                ("password", "correct horse battery staple"),
            ],
        )
        .await;
    assert_redirects_to(&registered, "/register/check-email");
    // The registration's own mail, counted apart from the resends.
    inbox.wait_for(1).await;
    let mut ready = Vec::new();
    for i in 0..20 {
        let address = [&pair.a.address, &pair.b.address][i % 2].clone();
        let client = Client::new("resender");
        let page = client
            .http
            .get(format!("{address}/register/check-email"))
            .send()
            .await
            .unwrap();
        let csrf = csrf_of(&page.text().await.unwrap());
        ready.push((address, client, csrf));
    }

    let mut set = tokio::task::JoinSet::new();
    for (address, client, csrf) in ready {
        set.spawn(async move {
            client
                .http
                .post(format!("{address}/register/resend"))
                .header("Origin", &address)
                .form(&[("email", "ada@example.com"), ("csrf_token", csrf.as_str())])
                .send()
                .await
                .unwrap()
        });
    }
    let answers = set.join_all().await;

    for answer in &answers {
        assert_redirects_to(answer, "/register/check-email");
    }
    let mails = inbox.wait_for(2).await;
    assert!(confirm_link(&mails[1]).is_some(), "{}", mails[1]);
    // Each instance sends its mails one at a time, in the order they were
    // queued (before each answer): once a registration mailed after the
    // resends has arrived from each instance, every resend mail either queued
    // has arrived too.
    let last = ["last-a@example.com", "last-b@example.com"];
    for (address, email) in [&pair.a.address, &pair.b.address].into_iter().zip(last) {
        let registered = Client::new("last")
            .submit(
                address,
                "/register",
                "/register",
                &[
                    ("name", "Last"),
                    ("email", email),
                    ("password", "correct horse battery staple"),
                ],
            )
            .await;
        assert_redirects_to(&registered, "/register/check-email");
    }
    let mails = inbox.wait_for_mail_to(&last).await;
    let to_ada = mails.iter().filter(|m| m.contains("To: ada@example.com"));
    assert_eq!(to_ada.count(), 2, "{mails:#?}");
    assert_eq!(mails.len(), 4, "{mails:#?}");
}
