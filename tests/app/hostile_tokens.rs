//! Forged and hostile access tokens: each one is refused with a redirect to
//! the sign-in page and the cookie cleared; none causes a 5xx.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse::config::Secret;
use gatehouse_core::auth::jwt::kid_for;
use hmac::{Hmac, Mac as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Sha256, Sha384, Sha512};

use crate::helpers::*;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn kid() -> String {
    kid_for(&Secret::new(TEST_SECRET))
}

fn header(alg: &str) -> Value {
    json!({ "alg": alg, "typ": "JWT", "kid": kid() })
}

fn claims(user_id: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": "gatehouse", "aud": "gatehouse-web", "sub": user_id, "sid": "session-1",
        "iat": now, "nbf": now, "exp": now + 600, "auth_time": now, "name": "Test User",
    })
}

fn hs256(signing_input: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(TEST_SECRET.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A token with these header and claims, signed with HS256 and the test secret.
fn signed(header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = hs256(&input);
    format!("{input}.{}", b64(signature))
}

fn with_claim(user_id: &str, name: &str, value: Value) -> String {
    let mut c = claims(user_id);
    c[name] = value;
    signed(&header("HS256"), &c)
}

fn without_claim(user_id: &str, name: &str) -> String {
    let mut c = claims(user_id);
    c.as_object_mut().unwrap().remove(name);
    signed(&header("HS256"), &c)
}

fn with_header(user_id: &str, name: &str, value: Value) -> String {
    let mut h = header("HS256");
    h[name] = value;
    signed(&h, &claims(user_id))
}

/// Every hostile variant, named.
fn corpus(user_id: &str) -> Vec<(String, String)> {
    let valid = signed(&header("HS256"), &claims(user_id));
    let (input, signature) = valid.rsplit_once('.').unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut flipped = signature.to_owned();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    let payload_changed = {
        let mut c = claims(user_id);
        c["sub"] = json!("someone-else");
        format!(
            "{}.{}.{signature}",
            b64(header("HS256").to_string()),
            b64(c.to_string())
        )
    };
    // Signed with the right secret, under an algorithm the server does not use.
    let hmac_with = |alg: &str| {
        let h = header(alg);
        let input = format!(
            "{}.{}",
            b64(h.to_string()),
            b64(claims(user_id).to_string())
        );
        let signature = match alg {
            "HS384" => {
                let mut m = Hmac::<Sha384>::new_from_slice(TEST_SECRET.as_bytes()).unwrap();
                m.update(input.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            "HS512" => {
                let mut m = Hmac::<Sha512>::new_from_slice(TEST_SECRET.as_bytes()).unwrap();
                m.update(input.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            _ => hs256(&input),
        };
        format!("{input}.{}", b64(signature))
    };
    let unsigned = |alg: &str, with_signature: bool| {
        let h = json!({ "alg": alg, "typ": "JWT", "kid": kid() });
        let input = format!(
            "{}.{}",
            b64(h.to_string()),
            b64(claims(user_id).to_string())
        );
        if with_signature {
            format!("{input}.{}", b64(hs256(&input)))
        } else {
            format!("{input}.")
        }
    };
    let payload_of = |raw: &[u8]| {
        let input = format!("{}.{}", b64(header("HS256").to_string()), b64(raw));
        format!("{input}.{}", b64(hs256(&input)))
    };

    let mut cases = vec![
        ("flipped signature", format!("{input}.{flipped}")),
        (
            "truncated signature",
            format!("{input}.{}", &signature[..10]),
        ),
        ("empty signature", format!("{input}.")),
        ("payload changed, old signature", payload_changed),
        ("alg none", unsigned("none", false)),
        ("alg None", unsigned("None", false)),
        ("alg NONE", unsigned("NONE", false)),
        ("alg none with signature", unsigned("none", true)),
        ("HS384", hmac_with("HS384")),
        ("HS512", hmac_with("HS512")),
        ("RS256 header", hmac_with("RS256")),
        ("ES256 header", hmac_with("ES256")),
        (
            "expired by leeway + 1 s",
            with_claim(user_id, "exp", json!(now - 6)),
        ),
        (
            "nbf an hour ahead",
            with_claim(user_id, "nbf", json!(now + 3600)),
        ),
        ("iat missing", without_claim(user_id, "iat")),
        ("iss missing", without_claim(user_id, "iss")),
        ("aud missing", without_claim(user_id, "aud")),
        ("sub missing", without_claim(user_id, "sub")),
        ("sid missing", without_claim(user_id, "sid")),
        ("exp missing", without_claim(user_id, "exp")),
        ("nbf missing", without_claim(user_id, "nbf")),
        (
            "iss wrong",
            with_claim(user_id, "iss", json!("someone-else")),
        ),
        ("iss a number", with_claim(user_id, "iss", json!(7))),
        (
            "aud of another service",
            with_claim(user_id, "aud", json!("billing-api")),
        ),
        ("aud a number", with_claim(user_id, "aud", json!(7))),
        ("sub a number", with_claim(user_id, "sub", json!(7))),
        ("sid a number", with_claim(user_id, "sid", json!(7))),
        ("sid null", with_claim(user_id, "sid", Value::Null)),
        (
            "exp a string",
            with_claim(user_id, "exp", json!("tomorrow")),
        ),
        (
            "unknown kid",
            with_header(user_id, "kid", json!("0000000000000000")),
        ),
        (
            "kid path traversal",
            with_header(user_id, "kid", json!("../../../../dev/null")),
        ),
        ("kid SQL", with_header(user_id, "kid", json!("' OR 1=1--"))),
        (
            "kid 1 KiB",
            with_header(user_id, "kid", json!("k".repeat(1024))),
        ),
        (
            "jku",
            with_header(user_id, "jku", json!("https://evil.example/jwks.json")),
        ),
        (
            "x5u",
            with_header(user_id, "x5u", json!("https://evil.example/cert.pem")),
        ),
        (
            "x5c",
            with_header(user_id, "x5c", json!(["MIIBszCCAVmgAwIBAgIUE"])),
        ),
        ("crit", with_header(user_id, "crit", json!(["exp"]))),
        (
            "jwk",
            with_header(
                user_id,
                "jwk",
                json!({ "kty": "oct", "k": b64(TEST_SECRET) }),
            ),
        ),
        ("two segments", input.to_owned()),
        ("four segments", format!("{valid}.{signature}")),
        ("ten segments", [signature; 10].join(".")),
        (
            "padding",
            format!("{input}.{}", STANDARD.encode(hs256(input))),
        ),
        (
            "non-base64url characters",
            format!("{input}.{}", signature.replace(|_: char| true, "*")),
        ),
        (
            "invalid UTF-8 payload",
            payload_of(&[0xff, 0xfe, 0x7b, 0x22]),
        ),
        ("non-JSON payload", payload_of(b"not json at all")),
        ("JSON array payload", payload_of(b"[1,2,3]")),
        ("not a JWT", "hello".to_owned()),
        ("empty", String::new()),
    ];
    let padded = cases.iter().find(|(n, _)| *n == "padding").unwrap();
    assert!(padded.1.ends_with('='), "the padded variant carries `=`");
    cases.push(("16 KiB", "a".repeat(16 * 1024)));
    cases.into_iter().map(|(n, t)| (n.to_owned(), t)).collect()
}

#[tokio::test]
async fn the_forging_helpers_make_a_token_the_server_accepts() {
    let app = spawn_app().await;
    let token = signed(&header("HS256"), &claims(&app.test_user.id));

    let response = app
        .get_with_cookie("/dashboard", &format!("gatehouse_access={token}"))
        .await;

    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_hostile_token_is_refused_and_cleared() {
    let app = spawn_app().await;

    for (name, token) in corpus(&app.test_user.id) {
        let response = app
            .get_with_cookie("/dashboard", &format!("gatehouse_access={token}"))
            .await;
        let status = response.status();
        assert!(!status.is_server_error(), "{name}: {status}");
        if name == "16 KiB" && status.is_client_error() {
            continue; // refused before the extractor runs
        }
        assert_eq!(status, StatusCode::SEE_OTHER, "{name}");
        assert_eq!(
            response.headers()["location"],
            "/login?next=%2Fdashboard",
            "{name}"
        );
        if !token.is_empty() {
            assert_clears_cookie(&response, "gatehouse_access");
        }
    }
}

#[tokio::test]
async fn a_valid_token_outside_the_cookie_is_ignored() {
    let app = spawn_app().await;
    let token = signed(&header("HS256"), &claims(&app.test_user.id));
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let in_query = raw
        .get(app.url(&format!("/dashboard?token={token}")))
        .send()
        .await
        .unwrap();
    let in_header = raw
        .get(app.url("/dashboard"))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();

    assert_eq!(in_query.status(), StatusCode::SEE_OTHER);
    assert!(
        in_query.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?next=")
    );
    assert_redirects_to(&in_header, "/login?next=%2Fdashboard");
}
