//! End to end: vft serves its API and dashboard over HTTPS itself (`http_tls_cert`,
//! `http_tls_key`): a client that trusts the CA gets answers, the session cookie is Secure,
//! plain HTTP on the same port gets nothing, and vft stops cleanly.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn the_api_serves_https_with_a_secure_session_cookie() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let (ca, cert, key) = test_ca(dir);
    let config = dir.join("https.toml");
    std::fs::write(
        &config,
        format!(
            "http_tls_cert = {:?}\nhttp_tls_key = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .expect("config");
    let db = scratch.database_url();
    let config_arg = config.display().to_string();
    let (vft, _broker) = spawn_vft("serve", &db, dir, None, &["--config", &config_arg], &[]);
    let api = vft.api.clone();
    assert!(api.starts_with("https://127.0.0.1:"), "{api}");

    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&ca).expect("CA")).expect("CA pem"),
        )
        .cookie_store(true)
        .build()
        .expect("client");
    eventually("ready over HTTPS", Duration::from_secs(120), || async {
        let r = client.get(format!("{api}/readyz")).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    let health = client
        .get(format!("{api}/healthz"))
        .send()
        .await
        .expect("GET");
    assert_eq!(health.text().await.expect("body"), "ok\n");

    // A client that does not trust the CA gets no answer at all.
    let stranger = reqwest::Client::new()
        .get(format!("{api}/healthz"))
        .send()
        .await;
    assert!(stranger.is_err(), "an unknown CA is refused");
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(api.replacen("https://", "http://", 1) + "/healthz")
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.is_ok_and(|r| r.status() != StatusCode::OK),
        "plain HTTP is not served"
    );

    // Sign-in from a script on this machine (no Origin; Host is a loopback address): over
    // plain HTTP the cookie would not be Secure, over vft's own TLS it always is.
    let token = create_token(&db, dir, &["--role", "coordinator"]);
    let created = client
        .post(format!("{api}/api/v1/users"))
        .bearer_auth(&token)
        .json(&json!({ "username": "ola", "role": "coordinator", "password": "korrekt hest batteri" }))
        .send()
        .await
        .expect("POST users");
    assert_eq!(created.status(), StatusCode::CREATED);
    let signed_in = client
        .post(format!("{api}/api/session"))
        .header("content-type", "application/json")
        // A client's claim to have come over TLS changes nothing: vft knows.
        .header("x-vft-served-over-tls", "0")
        .json(&json!({ "username": "ola", "password": "korrekt hest batteri" }))
        .send()
        .await
        .expect("POST session");
    assert_eq!(signed_in.status(), StatusCode::OK);
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cookie.contains("vft_session=") && cookie.contains("Secure"),
        "{cookie}"
    );
    let session = client
        .get(format!("{api}/api/v1/session"))
        .send()
        .await
        .expect("GET session");
    assert_eq!(
        session.status(),
        StatusCode::OK,
        "the cookie works over HTTPS"
    );
    let page = client.get(format!("{api}/")).send().await.expect("GET /");
    assert_eq!(page.status(), StatusCode::OK, "the dashboard too");

    assert!(vft.terminate().success(), "a clean stop");
}

/// Over plain HTTP on loopback a script's sign-in cookie is not Secure (as `vft demo` needs),
/// and a client cannot make it so by claiming TLS: the contrast to the test above.
#[tokio::test]
async fn a_claim_of_tls_over_plain_http_changes_nothing() {
    let s = Server::start(Scratch::new()).await;
    let created = reqwest::Client::new()
        .post(format!("{}/api/v1/users", s.vft.api))
        .bearer_auth(&s.coordinator)
        .json(&json!({ "username": "ola", "role": "coordinator", "password": "korrekt hest batteri" }))
        .send()
        .await
        .expect("POST users");
    assert_eq!(created.status(), StatusCode::CREATED);
    let signed_in = reqwest::Client::new()
        .post(format!("{}/api/session", s.vft.api))
        .header("content-type", "application/json")
        .header("x-vft-served-over-tls", "1")
        .json(&json!({ "username": "ola", "password": "korrekt hest batteri" }))
        .send()
        .await
        .expect("POST session");
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cookie.contains("vft_session=") && !cookie.contains("Secure"),
        "{cookie}"
    );
}
