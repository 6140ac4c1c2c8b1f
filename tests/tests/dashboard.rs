//! End to end: the dashboard's page, its files and its sign-in (a person's username and
//! password for the session cookie) over real HTTP, what a municipality user's session can and
//! cannot reach, and that machine tokens do not open the dashboard. The pages themselves are
//! tested in a real browser by `browser.rs`; roles and the audit log in depth by `access.rs`.

mod support;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};
use support::*;

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn sign_in(s: &Server, body: &str) -> reqwest::Response {
    client()
        .post(format!("{}/api/session", s.vft.api))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST /api/session")
}

/// The password of every account these tests make.
const PASSWORD: &str = "et langt nok passord";

/// A personal account, made as an operator would: `vft user create … --password-stdin`.
fn account(s: &Server, username: &str, role_args: &[&str]) {
    create_user(
        &s.scratch.database_url(),
        s.scratch.dir.path(),
        username,
        role_args,
        PASSWORD,
    );
}

fn credentials(username: &str, password: &str) -> String {
    json!({ "username": username, "password": password }).to_string()
}

/// Signs in as `username` and returns the `name=value` pair of the session cookie.
async fn session(s: &Server, username: &str) -> String {
    let resp = sign_in(s, &credentials(username, PASSWORD)).await;
    assert_eq!(resp.status(), StatusCode::OK, "sign-in of {username}");
    set_cookie(resp.headers())
        .split(';')
        .next()
        .expect("name=value")
        .to_owned()
}

fn set_cookie(headers: &HeaderMap) -> String {
    headers
        .get(header::SET_COOKIE)
        .expect("a Set-Cookie header")
        .to_str()
        .expect("ASCII")
        .to_owned()
}

async fn get_with_cookie(s: &Server, path: &str, cookie: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", s.vft.api))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .expect("GET")
}

async fn json_with_cookie(s: &Server, path: &str, cookie: &str) -> Value {
    let resp = get_with_cookie(s, path, cookie).await;
    assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
    resp.json().await.expect("JSON")
}

/// The `/ui/…` files a page names in `src="…"` or `href="…"`.
fn referenced_files(html: &str) -> Vec<String> {
    let mut files = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for piece in html.split(attr).skip(1) {
            let target = piece.split('"').next().unwrap_or_default();
            if target.starts_with("/ui/") {
                files.push(target.to_owned());
            }
        }
    }
    files
}

#[tokio::test]
async fn the_page_and_every_file_it_names_are_served_under_a_self_only_policy() {
    let s = Server::start(Scratch::new()).await;
    let page = client()
        .get(format!("{}/", s.vft.api))
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    let header = |name: header::HeaderName| {
        headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} on /"))
            .to_owned()
    };
    assert!(header(header::CONTENT_TYPE).starts_with("text/html"));
    let policy = header(header::CONTENT_SECURITY_POLICY);
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(directive), "{directive} missing: {policy}");
    }
    let html = page.text().await.expect("body");
    let files = referenced_files(&html);
    assert!(
        files.iter().any(|f| f.ends_with(".js")),
        "the page loads no script: {files:?}"
    );
    for file in &files {
        let resp = client()
            .get(format!("{}{file}", s.vft.api))
            .send()
            .await
            .expect("GET file");
        assert_eq!(resp.status(), StatusCode::OK, "{file}");
        let etag = resp
            .headers()
            .get(header::ETAG)
            .expect("an ETag")
            .to_str()
            .expect("ASCII")
            .to_owned();
        assert!(
            !resp.bytes().await.expect("body").is_empty(),
            "{file} empty"
        );
        let again = client()
            .get(format!("{}{file}", s.vft.api))
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .expect("GET file again");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{file}");
    }
    let missing = client()
        .get(format!("{}/ui/no-such-file.js", s.vft.api))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let escape = client()
        .get(format!("{}/ui/..%2f..%2fCargo.toml", s.vft.api))
        .send()
        .await
        .expect("GET");
    assert_eq!(escape.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn signing_in_gives_a_strict_expiring_cookie_that_the_api_accepts_until_sign_out() {
    let s = Server::start_with_env(Scratch::new(), &[("VFT_DASHBOARD__SESSION_HOURS", "2")]).await;
    account(&s, "koordinator", &["--role", "coordinator"]);
    // Wrong password, unknown username, empty password, not JSON, a machine token: refused
    // plainly, no cookie. Wrong password and unknown username get the same answer.
    let mut wrong = Vec::new();
    for (body, status) in [
        (
            credentials("koordinator", "not the password"),
            StatusCode::UNAUTHORIZED,
        ),
        (credentials("nobody", PASSWORD), StatusCode::UNAUTHORIZED),
        (credentials("koordinator", ""), StatusCode::UNAUTHORIZED),
        ("{}".to_owned(), StatusCode::BAD_REQUEST),
        ("username=koordinator".to_owned(), StatusCode::BAD_REQUEST),
        // Machine tokens are for integrations: they do not open the dashboard.
        (
            json!({ "token": s.coordinator }).to_string(),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let resp = sign_in(&s, &body).await;
        assert_eq!(resp.status(), status, "{body}");
        assert!(resp.headers().get(header::SET_COOKIE).is_none());
        let error: Value = resp.json().await.expect("JSON error");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        if status == StatusCode::UNAUTHORIZED {
            wrong.push(error);
        }
    }
    assert!(
        wrong.windows(2).all(|w| w[0] == w[1]),
        "the answer does not say which part was wrong: {wrong:?}"
    );
    // The right password, but as a form would send it (no JSON content type): refused.
    let form = client()
        .post(format!("{}/api/session", s.vft.api))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(credentials("koordinator", PASSWORD))
        .send()
        .await
        .expect("POST");
    assert_eq!(form.status(), StatusCode::BAD_REQUEST);
    assert!(form.headers().get(header::SET_COOKIE).is_none());

    let resp = sign_in(&s, &credentials("koordinator", PASSWORD)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let set = set_cookie(resp.headers());
    let attributes: Vec<String> = set.split(';').map(|a| a.trim().to_owned()).collect();
    assert!(attributes[0].starts_with("vft_session="), "{set}");
    for wanted in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=7200"] {
        assert!(
            attributes.iter().any(|a| a == wanted),
            "{wanted} missing: {set}"
        );
    }
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["role"], "coordinator");
    assert_eq!(
        body["actor"], "user:koordinator",
        "the session is the person's"
    );
    let cookie = attributes[0].clone();

    let who = json_with_cookie(&s, "/api/v1/session", &cookie).await;
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(who["expires_at"].clone()).expect("expires_at");
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(110) && left <= chrono::Duration::hours(2),
        "{left}"
    );
    // The cookie reads what the bearer token reads.
    let path = "/api/v1/rollups/devices?year=2025";
    assert_eq!(json_with_cookie(&s, path, &cookie).await, s.get(path).await);
    assert_eq!(
        get_with_cookie(&s, path, "vft_session=forged")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let out = client()
        .delete(format!("{}/api/session", s.vft.api))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .expect("DELETE /api/session");
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(set_cookie(out.headers()).contains("Max-Age=0"));
    assert_eq!(
        get_with_cookie(&s, path, &cookie).await.status(),
        StatusCode::UNAUTHORIZED,
        "a signed-out session still works"
    );
}

#[tokio::test]
async fn a_municipality_session_reaches_its_own_municipality_only() {
    a_municipality_session_reaches_its_own_municipality_only_on(Scratch::new()).await;
}

#[tokio::test]
async fn a_municipality_session_reaches_its_own_municipality_only_on_postgres() {
    if let Some(scratch) = Scratch::postgres().await {
        a_municipality_session_reaches_its_own_municipality_only_on(scratch).await;
    }
}

async fn a_municipality_session_reaches_its_own_municipality_only_on(scratch: Scratch) {
    let s = Server::start(scratch).await;
    account(
        &s,
        "kari",
        &["--role", "municipality", "--municipality", "3328"],
    );
    let cookie = session(&s, "kari").await;
    let who = json_with_cookie(&s, "/api/v1/session", &cookie).await;
    assert_eq!(
        (
            &who["role"],
            &who["actor"],
            &who["municipality"],
            &who["municipality_name"],
            &who["municipalities"]
        ),
        (
            &json!("municipality"),
            &json!("user:kari"),
            &json!("3328"),
            &json!("Ål"),
            &json!(["3328"])
        )
    );
    assert!(who["latest_activity"].is_null(), "no data yet: {who}");
    // Data in another municipality says nothing to Ål; Ål's own does.
    let install = |id: &str, ts: &str, municipality: &str| {
        json!({ "id": id, "ts": ts, "municipality": municipality, "device": id,
                "type": "installed", "kind": "safety_alarm" })
    };
    s.publish(&[
        install("hol-1", "2025-11-03T10:00:00Z", "3330"),
        install("aal-1", "2025-06-01T08:00:00Z", "3328"),
    ])
    .await;
    s.wait_events(2).await;
    let who = json_with_cookie(&s, "/api/v1/session", &cookie).await;
    assert_eq!(who["latest_activity"], "2025-06-01T08:00:00Z");
    let region = s.get("/api/v1/session").await;
    assert_eq!(region["latest_activity"], "2025-11-03T10:00:00Z");
    let listed = json_with_cookie(&s, "/api/v1/municipalities", &cookie).await;
    assert_eq!(
        listed["municipalities"],
        json!([{ "code": "3328", "name": "Ål" }])
    );
    let everyone = s.get("/api/v1/municipalities").await;
    assert!(everyone["municipalities"].as_array().expect("list").len() > 1);
    let cooperations = json_with_cookie(&s, "/api/v1/cooperations", &cookie).await;
    for c in cooperations["cooperations"].as_array().expect("list") {
        for m in c["members"].as_array().expect("members") {
            assert_eq!(m["municipality"], "3328", "{c}");
        }
    }
    for path in [
        "/api/v1/rollups/devices?year=2025&municipality=3330",
        "/api/v1/rollups/devices/changes?month=2025-03&municipality=3330",
        "/api/v1/rollups/response-centre?year=2025&municipality=3330",
        "/api/v1/devices?municipality=3330",
        "/api/v1/dead-letters",
        "/api/v1/imports/errors",
    ] {
        assert_eq!(
            get_with_cookie(&s, path, &cookie).await.status(),
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let own = json_with_cookie(&s, "/api/v1/rollups/devices?year=2025", &cookie).await;
    let asked = json_with_cookie(
        &s,
        "/api/v1/rollups/devices?year=2025&municipality=3328",
        &cookie,
    )
    .await;
    assert_eq!(own, asked);
}

#[tokio::test]
async fn disabling_an_account_ends_its_dashboard_sessions_at_once() {
    let s = Server::start(Scratch::new()).await;
    account(
        &s,
        "kari",
        &["--role", "municipality", "--municipality", "3328"],
    );
    let cookie = session(&s, "kari").await;
    let path = "/api/v1/session";
    assert_eq!(
        get_with_cookie(&s, path, &cookie).await.status(),
        StatusCode::OK
    );
    let db = s.scratch.database_url();
    let cwd = s.scratch.dir.path();
    vft_cli(&["user", "disable", "--database-url", &db, "kari"], cwd).expect("disable");
    assert_eq!(
        get_with_cookie(&s, path, &cookie).await.status(),
        StatusCode::UNAUTHORIZED,
        "the session of a disabled account"
    );
    // A disabled account cannot sign in, and is told no more than a wrong password is.
    let refused = sign_in(&s, &credentials("kari", PASSWORD)).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let wrong = sign_in(&s, &credentials("kari", "not the password at all")).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.json::<Value>().await.expect("JSON"),
        wrong.json::<Value>().await.expect("JSON")
    );
    vft_cli(&["user", "enable", "--database-url", &db, "kari"], cwd).expect("enable");
    let again = session(&s, "kari").await;
    assert_eq!(
        get_with_cookie(&s, path, &again).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get_with_cookie(&s, path, &cookie).await.status(),
        StatusCode::UNAUTHORIZED,
        "the old session stays ended"
    );
}

#[tokio::test]
async fn a_revoked_machine_token_stops_at_once_and_others_are_untouched() {
    let s = Server::start(Scratch::new()).await;
    let path = "/api/v1/session";
    let bearer = get(&format!("{}{path}", s.vft.api), Some(&s.aal)).await;
    assert_eq!(bearer.status(), StatusCode::OK);
    let db = s.scratch.database_url();
    let cwd = s.scratch.dir.path();
    let listing = vft_cli(&["token", "list", "--database-url", &db], cwd).expect("token list");
    let aal_line = listing
        .lines()
        .find(|l| l.contains("municipality") && l.contains("3328"))
        .unwrap_or_else(|| panic!("no Ål token in {listing}"));
    assert!(
        aal_line.trim_end().ends_with("test"),
        "labelled: {aal_line}"
    );
    let id = aal_line.split_whitespace().next().expect("an id");
    assert!(
        vft_cli(&["token", "revoke", "--database-url", &db, "0000"], cwd).is_err(),
        "too short an id is refused"
    );
    vft_cli(&["token", "revoke", "--database-url", &db, id], cwd).expect("revoke");
    let bearer = get(&format!("{}{path}", s.vft.api), Some(&s.aal)).await;
    assert_eq!(bearer.status(), StatusCode::UNAUTHORIZED);
    // The coordinator's token is untouched.
    assert_eq!(s.get(path).await["role"], "coordinator");
    let again = vft_cli(&["token", "revoke", "--database-url", &db, id], cwd);
    assert!(again.is_err_and(|e| e.contains("no token")));
}

#[tokio::test]
async fn a_change_through_a_session_must_come_from_the_page_itself() {
    let s = Server::start(Scratch::new()).await;
    s.publish(&[json!({
        "id": "i-1", "ts": "2025-03-01T10:00:00Z", "municipality": "3328",
        "device": "HP-1", "type": "installed", "kind": "safety_alarm"
    })])
    .await;
    s.wait_events(1).await;
    account(&s, "koordinator", &["--role", "coordinator"]);
    let cookie = session(&s, "koordinator").await;
    let url = format!("{}/api/v1/devices/hepro/HP-1/timeout", s.vft.api);
    let put = |origin: Option<String>| {
        let mut req = client()
            .put(&url)
            .header(header::COOKIE, &cookie)
            .json(&json!({ "timeout_secs": 3600 }));
        if let Some(o) = origin {
            req = req.header(header::ORIGIN, o);
        }
        req.send()
    };
    assert_eq!(
        put(None).await.expect("PUT").status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(Some("http://elsewhere.invalid".into()))
            .await
            .expect("PUT")
            .status(),
        StatusCode::FORBIDDEN
    );
    let own = put(Some(s.vft.api.clone())).await.expect("PUT");
    assert_eq!(own.status(), StatusCode::OK);
    let device: Value = own.json().await.expect("JSON");
    assert_eq!(device["timeout_secs"], 3600, "{device}");
}

#[tokio::test]
async fn import_errors_are_listed_newest_first_with_their_reasons() {
    let s = Server::start(Scratch::new()).await;
    let post = |file: String, as_of: &str| {
        client()
            .post(format!("{}/api/v1/imports/hepro?as_of={as_of}", s.vft.api))
            .bearer_auth(&s.coordinator)
            .body(file)
            .send()
    };
    let header = "Serienr;Produkt;Kommunenr;Kommune;Brukerref;Status;Installert;Merknad\n";
    let older = format!(
        "{header}HP-1;TA;3328;Al;r1;I drift;01.03.2025;\nHP-2;TA;3328;Al;r2;I drift;31.02.2025;\n"
    );
    // Unknown product code, too few columns, a municipality outside the region.
    let newer = format!(
        "{header}HP-3;XX;3328;Al;r3;I drift;01.03.2025;\nHP-4;TA;3328\nHP-5;TA;9999;X;r5;I drift;01.03.2025;\n"
    );
    let mut reports = Vec::new();
    for (file, as_of) in [(older, "2025-04-01"), (newer, "2025-05-01")] {
        let resp = post(file, as_of).await.expect("POST import");
        assert_eq!(resp.status(), StatusCode::OK);
        let report: Value = resp.json().await.expect("JSON");
        assert!(!report["errors"].as_array().expect("errors").is_empty());
        reports.push(report);
    }
    // The OpenAPI document describes the report by hand, beside the type served.
    let openapi: Value = get(&format!("{}/api/openapi.json", s.vft.api), None)
        .await
        .json()
        .await
        .expect("openapi");
    assert_fields_match_schema(&openapi, "ImportReport", &reports[0]);
    assert_fields_match_schema(&openapi, "RowErrorView", &reports[0]["errors"][0]);
    let listed = s.get("/api/v1/imports/errors").await;
    let listed: Vec<(i64, u64, String)> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            (
                e["import_id"].as_i64().expect("id"),
                e["line"].as_u64().expect("line"),
                e["why"].as_str().expect("why").to_owned(),
            )
        })
        .collect();
    let mut expected = Vec::new();
    for report in reports.iter().rev() {
        let mut lines: Vec<(i64, u64, String)> = report["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| {
                (
                    report["import_id"].as_i64().expect("id"),
                    e["line"].as_u64().expect("line"),
                    e["reason"].as_str().expect("reason").to_owned(),
                )
            })
            .collect();
        lines.sort_by_key(|l| l.1);
        expected.extend(lines);
    }
    assert_eq!(listed, expected);
    assert!(
        listed
            .iter()
            .any(|(_, line, why)| *line == 4 && why.contains("unknown municipality 9999")),
        "{listed:?}"
    );
    let bad_limit = get(
        &format!("{}/api/v1/imports/errors?limit=0", s.vft.api),
        Some(&s.coordinator),
    )
    .await;
    assert_eq!(bad_limit.status(), StatusCode::BAD_REQUEST);
}
