//! The server's log carries events with ids, never a password, cookie or token.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn logs_carry_events_and_ids_but_no_secrets() {
    let server = RunningBinary::start(&[("RUST_LOG", "debug")]);
    let base = server.address.clone();
    let client = Client::new("log-test");
    let password = "a very private passphrase 77";
    let get = |path: &str| client.http.get(format!("{base}{path}")).send();
    let post = |path: &str, form: Vec<(&'static str, String)>| {
        client
            .http
            .post(format!("{base}{path}"))
            .header("Origin", &base)
            .form(&form)
            .send()
    };

    let csrf = csrf_of(&get("/register").await.unwrap().text().await.unwrap());
    let registered = post(
        "/register",
        vec![
            ("name", "Logged Person".into()),
            ("email", "logged@example.com".into()),
            ("password", password.into()),
            ("csrf_token", csrf),
        ],
    )
    .await
    .unwrap();
    assert_eq!(registered.status(), StatusCode::SEE_OTHER);
    let cookies: Vec<String> = registered
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            v.to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_owned()
        })
        .filter(|v| !v.is_empty())
        .collect();
    assert!(cookies.len() >= 2, "access and refresh cookies");
    let access = cookies[0].clone();
    // A token in the query string must not be logged either.
    get(&format!("/dashboard?token={access}")).await.unwrap();
    let bad = Client::new("log-test-2");
    bad.submit(
        &base,
        "/login",
        "/login",
        &[
            ("email", "logged@example.com"),
            ("password", "wrong but private 1234"),
        ],
    )
    .await;
    let csrf = csrf_of(&get("/logout").await.unwrap().text().await.unwrap());
    post("/logout", vec![("csrf_token", csrf.clone())])
        .await
        .unwrap();
    let anonymous = get("/dashboard").await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);

    let log = server.stop();
    for secret in [password, "wrong but private 1234", &access, &csrf] {
        assert!(
            !log.contains(secret),
            "the log contains a secret: {secret}\n{log}"
        );
    }
    for cookie in &cookies {
        assert!(
            !log.contains(cookie.as_str()),
            "the log contains a cookie value\n{log}"
        );
    }
    assert!(
        !log.contains("ERROR"),
        "redirects and refused forms are not errors\n{log}"
    );
    assert!(log.contains("registered"), "{log}");
    assert!(log.contains("sign_in_failed"), "{log}");
    assert!(log.contains("signed_out"), "{log}");
    let signed_out = log
        .lines()
        .find(|l| l.contains("event=\"signed_out\""))
        .unwrap();
    for field in ["user_id=", "session_id=", "request_id=", "ip=127.0.0.1"] {
        assert!(signed_out.contains(field), "{signed_out}");
    }
    let failed = log
        .lines()
        .find(|l| l.contains("event=\"sign_in_failed\""))
        .unwrap();
    assert!(failed.contains("ip=127.0.0.1"), "{failed}");
}

#[tokio::test]
async fn each_request_gets_one_access_line_without_query_strings_or_secret_segments() {
    let server = RunningBinary::start(&[("RUST_LOG", "debug")]);
    let base = server.address.clone();
    let client = Client::new("access-log-test");

    // The mailed reset link: its token is a secret path segment (shaped
    // like the site's tokens, so it is taken as a link).
    let link = client
        .http
        .get(format!(
            "{base}/password/reset/SECRETRESETTOKEN{}?q=QUERYSECRET",
            "A".repeat(27)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(link.status(), StatusCode::SEE_OTHER);
    // A confirmation link: its token stays in the path, and out of the log.
    let confirm = client
        .http
        .get(format!(
            "{base}/verify/SECRETCONFIRMTOKEN{}",
            "A".repeat(25)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), StatusCode::BAD_REQUEST);
    let missing = client
        .http
        .get(format!("{base}/nothing-here?q=QUERYSECRET"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let page = missing.text().await.unwrap();
    let reference = page
        .split("request-id\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    let login = client
        .http
        .get(format!("{base}/login?next=%2Faccount&token=QUERYTOKEN"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let refused = client
        .http
        .post(format!("{base}/login"))
        .header("Origin", "http://evil.example")
        .form(&[("email", "x@example.com"), ("password", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused_page = refused.text().await.unwrap();
    let refused_reference = refused_page
        .split("request-id\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    let log = server.stop();

    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("received=http://evil.example"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains(&format!("expected={base}")), "{log}");
    assert!(warnings[0].contains(&refused_reference), "{log}");

    assert!(!log.contains("SECRETRESETTOKEN"), "{log}");
    assert!(!log.contains("SECRETCONFIRMTOKEN"), "{log}");
    assert!(log.contains("path=/verify/…"), "{log}");
    assert!(
        !log.contains("QUERYSECRET") && !log.contains("QUERYTOKEN"),
        "{log}"
    );
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" request ") || l.ends_with(" request"))
        .filter(|l| l.contains("duration_ms="))
        .collect();
    let reset = access
        .iter()
        .filter(|l| l.contains("path=/password/reset/…"))
        .collect::<Vec<_>>();
    assert_eq!(reset.len(), 1, "{log}");
    assert!(
        reset[0].contains("method=GET") && reset[0].contains("status=303"),
        "{log}"
    );
    let missing_line = access
        .iter()
        .find(|l| l.contains("path=/nothing-here "))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(missing_line.contains("status=404"), "{log}");
    assert!(
        missing_line.contains(&format!("request_id={reference}")),
        "the page's reference {reference} is in the access line: {log}"
    );
    let login_lines = access
        .iter()
        .filter(|l| l.contains("method=GET path=/login "))
        .count();
    assert_eq!(login_lines, 1, "{log}");
    // Start-up says what it opened, what it changed and where it listens.
    for said in [
        "SQLite file",
        "migrations applied",
        "listening",
        "public_origin=http://",
    ] {
        assert!(log.contains(said), "start-up does not log {said:?}: {log}");
    }
}

/// The `key=value` fields of a log line: words split at spaces, a value that
/// opens with `"` running to its closing (unescaped) quote.
fn fields(line: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find(|c: char| c != ' ') {
        rest = &rest[start..];
        let (word, after) = match rest.find(['=', ' ']) {
            Some(eq) if rest.as_bytes()[eq] == b'=' && rest[eq + 1..].starts_with('"') => {
                let value = &rest[eq + 2..];
                let mut escaped = false;
                let close = value
                    .char_indices()
                    .find(|&(_, c)| {
                        let end = c == '"' && !escaped;
                        escaped = c == '\\' && !escaped;
                        end
                    })
                    .map_or(value.len(), |(i, _)| i + 1);
                rest.split_at(eq + 2 + close)
            }
            _ => rest.split_at(rest.find(' ').unwrap_or(rest.len())),
        };
        if let Some((key, value)) = word.split_once('=') {
            fields.push((key.to_owned(), value.to_owned()));
        }
        rest = after;
    }
    fields
}

#[tokio::test]
async fn a_forged_origin_cannot_add_fields_to_the_log_line() {
    let server = RunningBinary::start(&[]);
    let base = server.address.clone();
    let forged = "http://x expected=http://127.0.0.1:1 user_id=forged";
    let http = reqwest::Client::new();

    let form = http
        .post(format!("{base}/login"))
        .header("Origin", forged)
        .form(&[("email", "x@example.com"), ("password", "y")])
        .send()
        .await
        .unwrap();
    let api = http
        .post(format!("{base}/api/login"))
        .header("Origin", forged)
        .header("Content-Type", "application/json")
        .body(r#"{"email":"x@example.com","password":"y"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::FORBIDDEN);
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    let log = server.stop();

    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("refused"))
        .collect();
    assert_eq!(refusals.len(), 2, "{log}");
    for line in refusals {
        let fields = fields(line);
        assert!(
            fields.iter().all(|(key, _)| key != "user_id"),
            "a forged field: {line}"
        );
        let expected: Vec<&String> = fields
            .iter()
            .filter(|(key, _)| key == "expected")
            .map(|(_, value)| value)
            .collect();
        assert_eq!(expected, [&base], "{line}");
        let received = fields.iter().find(|(key, _)| key == "received");
        assert!(
            received.is_some_and(|(_, value)| value.contains("user_id=forged")),
            "the whole origin stays one value: {line}"
        );
    }
}
