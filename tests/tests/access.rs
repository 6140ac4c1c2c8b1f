//! End to end: people sign in with personal accounts, roles hold, and every read of personal
//! data and every change is in the audit log with its user; the hash chain verifies, and fails
//! once a record is edited behind vft's back. On SQLite and PostgreSQL.

mod support;

use reqwest::StatusCode;
use reqwest::header;
use serde_json::{Value, json};
use std::net::IpAddr;
use support::*;

const PASSWORD: &str = "korrekt hest batteri stift";

/// A client with its own cookie jar, connecting from `ip` (any 127.x.y.z is this machine).
fn browser_from(ip: &str) -> reqwest::Client {
    let ip: IpAddr = ip.parse().expect("address");
    reqwest::Client::builder()
        .cookie_store(true)
        .local_address(ip)
        .build()
        .expect("client")
}

async fn sign_in(
    client: &reqwest::Client,
    api: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(format!("{api}/api/session"))
        .header(header::CONTENT_TYPE, "application/json")
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("POST /api/session")
}

async fn status(client: &reqwest::Client, url: &str) -> StatusCode {
    client.get(url).send().await.expect("GET").status()
}

async fn json_of(client: &reqwest::Client, url: &str) -> Value {
    let resp = client.get(url).send().await.expect("GET");
    assert_eq!(resp.status(), StatusCode::OK, "GET {url}");
    resp.json().await.expect("JSON")
}

/// Creates an account through the API as the coordinator's machine token.
async fn create_user(s: &Server, username: &str, role: &str, municipalities: &[&str]) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/users", s.vft.api))
        .bearer_auth(&s.coordinator)
        .json(&json!({
            "username": username,
            "role": role,
            "municipalities": municipalities,
            "password": PASSWORD,
        }))
        .send()
        .await
        .expect("POST /api/v1/users");
    assert_eq!(resp.status(), StatusCode::CREATED, "create {username}");
}

fn event(id: &str, m: &str, device: &str, t: &str, extra: Value) -> Value {
    let mut e = json!({
        "id": id, "ts": "2025-03-01T10:00:00Z", "municipality": m, "device": device, "type": t,
    });
    if let (Value::Object(e), Value::Object(extra)) = (&mut e, extra) {
        e.extend(extra);
    }
    e
}

/// The audit records of `actor`, oldest first, as the auditor reads them.
async fn records_of(auditor: &reqwest::Client, api: &str, actor: &str) -> Vec<Value> {
    let url = format!(
        "{api}/api/v1/audit?limit=1000&actor={}",
        actor.replace('@', "%40").replace(':', "%3A")
    );
    let mut records = json_of(auditor, &url).await["records"]
        .as_array()
        .expect("records")
        .clone();
    records.reverse();
    records
}

fn has_record(records: &[Value], action: &str, route: &str, subjects: &[&str]) -> bool {
    records.iter().any(|r| {
        r["action"] == action
            && r["route"] == route
            && subjects.iter().all(|s| {
                r["subjects"]
                    .as_array()
                    .is_some_and(|all| all.iter().any(|x| x == s))
            })
    })
}

async fn accounts_roles_and_the_audit_log(scratch: Scratch) {
    let s = Server::start(scratch).await;
    let api = s.vft.api.clone();
    s.publish(&[
        event(
            "acc-1",
            "3328",
            "ACC-AAL",
            "installed",
            json!({"kind": "safety_alarm", "recipient": "r-aal-7"}),
        ),
        event(
            "acc-2",
            "3330",
            "ACC-HOL",
            "installed",
            json!({"kind": "safety_alarm", "recipient": "r-hol-9"}),
        ),
        event(
            "acc-3",
            "3324",
            "ACC-GOL",
            "installed",
            json!({"kind": "safety_alarm", "recipient": "r-gol-1"}),
        ),
    ])
    .await;
    s.wait_events(3).await;

    create_user(
        &s,
        "kari@hallinghelse.no",
        "municipality",
        &["3330", "3328"],
    )
    .await;
    create_user(&s, "ola", "coordinator", &[]).await;
    create_user(&s, "revisor", "auditor", &[]).await;
    create_user(&s, "drift", "operator", &[]).await;

    // Shared machine tokens no longer open the dashboard.
    let token_sign_in = reqwest::Client::new()
        .post(format!("{api}/api/session"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(json!({ "token": s.coordinator }).to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(token_sign_in.status(), StatusCode::BAD_REQUEST);

    // A municipality user of two municipalities: each on request, never a third.
    let kari = browser_from("127.0.0.21");
    let resp = sign_in(&kari, &api, "Kari@Hallinghelse.no", PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let session: Value = resp.json().await.expect("session");
    assert_eq!(session["role"], "municipality");
    assert_eq!(session["municipalities"], json!(["3328", "3330"]));
    let own = json_of(&kari, &format!("{api}/api/v1/devices")).await;
    let devices: Vec<&str> = own["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| d["device"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        devices,
        vec!["ACC-AAL"],
        "the first of its municipalities by default"
    );
    let hol = json_of(&kari, &format!("{api}/api/v1/devices?municipality=3330")).await;
    assert_eq!(hol["items"][0]["device"], "ACC-HOL");
    assert_eq!(
        status(&kari, &format!("{api}/api/v1/devices?municipality=3324")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&kari, &format!("{api}/api/v1/devices/hepro/ACC-GOL")).await,
        StatusCode::NOT_FOUND
    );
    json_of(&kari, &format!("{api}/api/v1/devices/hepro/ACC-AAL")).await;
    let csv = kari
        .get(format!("{api}/api/v1/devices?municipality=3330&format=csv"))
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(
        status(&kari, &format!("{api}/api/v1/audit")).await,
        StatusCode::FORBIDDEN
    );
    // Reading a device is hers; setting its offline timeout is the coordinator's.
    let timeout = kari
        .put(format!("{api}/api/v1/devices/hepro/ACC-AAL/timeout"))
        .header(header::ORIGIN, api.as_str())
        .json(&json!({ "timeout_secs": 7200 }))
        .send()
        .await
        .expect("PUT");
    assert_eq!(timeout.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        status(&kari, &format!("{api}/api/v1/users")).await,
        StatusCode::FORBIDDEN
    );

    // The operator runs the service and sees no fleet data; the auditor only the log.
    let drift = browser_from("127.0.0.22");
    assert_eq!(
        sign_in(&drift, &api, "drift", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        status(&drift, &format!("{api}/api/v1/devices")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&drift, &format!("{api}/api/v1/rollups/devices?year=2025")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&drift, &format!("{api}/api/v1/audit")).await,
        StatusCode::FORBIDDEN
    );
    let users = json_of(&drift, &format!("{api}/api/v1/users")).await;
    assert_eq!(users["users"].as_array().map(Vec::len), Some(4));
    let revisor = browser_from("127.0.0.23");
    assert_eq!(
        sign_in(&revisor, &api, "revisor", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        status(&revisor, &format!("{api}/api/v1/devices")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&revisor, &format!("{api}/api/v1/users")).await,
        StatusCode::FORBIDDEN
    );

    // A change through the session needs the dashboard's own origin; the coordinator's is
    // recorded with the person.
    let ola = browser_from("127.0.0.24");
    assert_eq!(
        sign_in(&ola, &api, "ola", PASSWORD).await.status(),
        StatusCode::OK
    );
    let timeout = ola
        .put(format!("{api}/api/v1/devices/hepro/ACC-HOL/timeout"))
        .header(header::ORIGIN, api.as_str())
        .json(&json!({ "timeout_secs": 7200 }))
        .send()
        .await
        .expect("PUT");
    assert_eq!(
        timeout.status(),
        StatusCode::OK,
        "{:?}",
        timeout.text().await
    );
    json_of(
        &ola,
        &format!("{api}/api/v1/reconciliation?from=hepro&to=atea&at=2025-06-30"),
    )
    .await;

    // Everything above is in the log, with its person, route, municipality and subjects.
    let kari_log = records_of(&revisor, &api, "user:kari@hallinghelse.no").await;
    assert!(has_record(
        &kari_log,
        "sign_in",
        "POST /api/session",
        &["method=password"]
    ));
    let page = kari_log
        .iter()
        .find(|r| r["route"] == "GET /api/v1/devices" && r["municipality"] == "3328")
        .expect("the page read");
    assert_eq!(page["action"], "read");
    assert!(
        page["subjects"].as_array().is_some_and(
            |a| a.contains(&json!("hepro/ACC-AAL")) && a.contains(&json!("recipient=r-aal-7"))
        ),
        "{page}"
    );
    assert_eq!(page["client"], "127.0.0.21");
    assert!(
        has_record(
            &kari_log,
            "read",
            "GET /api/v1/devices",
            &["hepro/ACC-HOL", "recipient=r-hol-9"]
        ),
        "the CSV export and the second municipality"
    );
    assert!(
        has_record(
            &kari_log,
            "read",
            "GET /api/v1/devices/{vendor}/{device}",
            &["vendor=hepro", "device=ACC-AAL", "recipient=r-aal-7"]
        ),
        "{kari_log:#?}"
    );
    assert!(
        has_record(&kari_log, "denied", "GET /api/v1/devices", &[]),
        "the third municipality asked for"
    );
    assert!(has_record(&kari_log, "denied", "GET /api/v1/audit", &[]));
    assert!(
        !kari_log
            .iter()
            .any(|r| r["subjects"].to_string().contains("ACC-GOL") && r["action"] == "read"),
        "a device it could not see is not recorded as read"
    );
    let ola_log = records_of(&revisor, &api, "user:ola").await;
    assert!(has_record(
        &ola_log,
        "change",
        "PUT /api/v1/devices/{vendor}/{device}/timeout",
        &["vendor=hepro", "device=ACC-HOL"]
    ));
    assert!(has_record(
        &ola_log,
        "read",
        "GET /api/v1/reconciliation",
        &[]
    ));
    let drift_log = records_of(&revisor, &api, "user:drift").await;
    assert!(has_record(
        &drift_log,
        "read",
        "GET /api/v1/users",
        &["user=ola"]
    ));
    assert!(has_record(&drift_log, "denied", "GET /api/v1/devices", &[]));
    let all = json_of(&revisor, &format!("{api}/api/v1/audit?limit=1000")).await;
    let tokens_log: Vec<&Value> = all["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["actor"].as_str().is_some_and(|a| a.starts_with("token:")))
        .collect();
    assert!(
        tokens_log.iter().any(|r| r["route"] == "POST /api/v1/users"
            && r["action"] == "change"
            && r["subjects"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("user=kari@hallinghelse.no")))),
        "account creation by the coordinator's token"
    );
    // The auditor's own reading is recorded too; the CSV has a header and rows.
    let csv = revisor
        .get(format!("{api}/api/v1/audit?format=csv&limit=5"))
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.status(), StatusCode::OK);
    let text = csv.text().await.expect("text");
    assert!(
        text.starts_with("seq,at,actor,role,action,route,municipality,subjects,client,status,hash"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 6);
    assert!(has_record(
        &records_of(&revisor, &api, "user:revisor").await,
        "read",
        "GET /api/v1/audit",
        &[]
    ));

    // Wrong passwords lock the account (from five addresses: one alone would be throttled
    // first); the right password is then refused too, until unlocked.
    for i in 0..5 {
        let c = browser_from(&format!("127.0.1.{}", 10 + i));
        assert_eq!(
            sign_in(&c, &api, "ola", "wrong password!!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let late = browser_from("127.0.1.20");
    assert_eq!(
        sign_in(&late, &api, "ola", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED,
        "locked"
    );
    let failures = records_of(&revisor, &api, "user:ola").await;
    assert!(has_record(
        &failures,
        "sign_in_failed",
        "POST /api/session",
        &["wrong_password=5", "now_locked"]
    ));
    assert!(has_record(
        &failures,
        "sign_in_failed",
        "POST /api/session",
        &["locked"]
    ));
    let unlock = reqwest::Client::new()
        .patch(format!("{api}/api/v1/users/ola"))
        .bearer_auth(&s.coordinator)
        .json(&json!({ "unlock": true }))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(unlock.status(), StatusCode::OK);
    assert_eq!(
        sign_in(&late, &api, "ola", PASSWORD).await.status(),
        StatusCode::OK
    );
    // One client guessing is held up before the account's count matters.
    let guesser = browser_from("127.0.2.1");
    let mut codes = Vec::new();
    for _ in 0..7 {
        codes.push(
            sign_in(&guesser, &api, "nobody-here", "wrong password!!")
                .await
                .status(),
        );
    }
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2,
        "{codes:?}"
    );

    // Machine tokens: labelled, scoped, expiring, revocable.
    let created: Value = reqwest::Client::new()
        .post(format!("{api}/api/v1/tokens"))
        .bearer_auth(&s.coordinator)
        .json(&json!({ "label": "Visma", "role": "municipality", "municipalities": ["3330"], "expires_in_days": 30 }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("created");
    let secret = created["secret"].as_str().expect("secret");
    let id = created["token"]["id"].as_str().expect("id");
    let visma = get_json(&format!("{api}/api/v1/devices"), secret).await;
    assert_eq!(visma["items"][0]["device"], "ACC-HOL");
    let revoked = reqwest::Client::new()
        .delete(format!("{api}/api/v1/tokens/{id}"))
        .bearer_auth(&s.coordinator)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get(&format!("{api}/api/v1/devices"), Some(secret))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let token_reads = records_of(&revisor, &api, &format!("token:{id} (Visma)")).await;
    assert!(has_record(
        &token_reads,
        "read",
        "GET /api/v1/devices",
        &["hepro/ACC-HOL"]
    ));

    // Disabling ends the person's session at once.
    let disable = reqwest::Client::new()
        .patch(format!("{api}/api/v1/users/kari@hallinghelse.no"))
        .bearer_auth(&s.coordinator)
        .json(&json!({ "disabled": true }))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(disable.status(), StatusCode::OK);
    assert_eq!(
        status(&kari, &format!("{api}/api/v1/devices")).await,
        StatusCode::UNAUTHORIZED
    );

    // The chain verifies, and fails after a record is edited behind vft's back.
    let db = s.scratch.database_url();
    let cwd = s.scratch.dir.path();
    let verified = vft_cli(&["audit", "verify", "--database-url", &db], cwd).expect("verify");
    assert!(verified.starts_with("audit log intact:"), "{verified}");
    tamper(
        &db,
        "UPDATE audit_log SET actor = 'user:someone-else' WHERE seq = 3",
    );
    let err = vft_cli(&["audit", "verify", "--database-url", &db], cwd).expect_err("tampered");
    assert!(err.contains("record 3"), "{err}");
}

/// Edits the audit log as someone with the database's password would: the append-only
/// triggers dropped first.
fn tamper(database_url: &str, statement: &str) {
    let drop = if database_url.starts_with("sqlite:") {
        "DROP TRIGGER audit_log_append_only;"
    } else {
        "DROP TRIGGER audit_log_guard ON audit_log;"
    };
    sql(database_url, &format!("{drop} {statement}"));
}

#[tokio::test]
async fn accounts_roles_and_the_audit_log_on_sqlite() {
    accounts_roles_and_the_audit_log(Scratch::new()).await;
}

#[tokio::test]
async fn accounts_roles_and_the_audit_log_on_postgres() {
    let Some(scratch) = Scratch::postgres().await else {
        return;
    };
    accounts_roles_and_the_audit_log(scratch).await;
}

/// Runs SQL on the server's database behind vft's back (python3's sqlite3 module, or psql).
fn sql(database_url: &str, statement: &str) {
    let status = if let Some(path) = database_url.strip_prefix("sqlite://") {
        let script = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nc.executescript(sys.argv[2])\nc.commit()\n";
        std::process::Command::new("python3")
            .args(["-c", script, path, statement])
            .status()
    } else {
        std::process::Command::new("psql")
            .args([database_url, "-v", "ON_ERROR_STOP=1", "-c", statement])
            .status()
    };
    assert!(status.expect("sql").success(), "{statement}");
}

/// When the audit log cannot be written, personal data is not shown (503), figures still
/// are, and a change is done and answered; once the log takes records again, so does vft.
async fn personal_reads_fail_closed(scratch: Scratch) {
    let s = Server::start(scratch).await;
    let api = s.vft.api.clone();
    s.publish(&[event(
        "fc-1",
        "3328",
        "FC-1",
        "installed",
        json!({"kind": "safety_alarm", "recipient": "r-fc"}),
    )])
    .await;
    s.wait_events(1).await;
    let db = s.scratch.database_url();
    let devices = format!("{api}/api/v1/devices");
    assert_eq!(
        get(&devices, Some(&s.coordinator)).await.status(),
        StatusCode::OK
    );
    if db.starts_with("sqlite:") {
        sql(
            &db,
            "CREATE TRIGGER audit_refused BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        );
    } else {
        sql(
            &db,
            "CREATE FUNCTION audit_refused() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END; $$ LANGUAGE plpgsql; \
             CREATE TRIGGER audit_refused BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_refused();",
        );
    }
    let refused = get(&devices, Some(&s.coordinator)).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = refused.json().await.expect("body");
    assert_eq!(body["error"], "audit_unavailable");
    assert!(!body.to_string().contains("FC-1"), "{body}");
    let detail = get(
        &format!("{api}/api/v1/devices/hepro/FC-1"),
        Some(&s.coordinator),
    )
    .await;
    assert_eq!(detail.status(), StatusCode::SERVICE_UNAVAILABLE);
    let figures = get(
        &format!("{api}/api/v1/rollups/devices?year=2025"),
        Some(&s.coordinator),
    )
    .await;
    assert_eq!(
        figures.status(),
        StatusCode::OK,
        "figures carry no personal data"
    );
    let change = reqwest::Client::new()
        .put(format!("{api}/api/v1/devices/hepro/FC-1/timeout"))
        .bearer_auth(&s.coordinator)
        .json(&json!({ "timeout_secs": 3600 }))
        .send()
        .await
        .expect("PUT");
    assert_eq!(
        change.status(),
        StatusCode::OK,
        "a change is done and answered"
    );
    let metrics = get(&format!("{api}/metrics"), None)
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains("vft_audit_write_failures_total"),
        "counted"
    );

    sql(
        &db,
        if db.starts_with("sqlite:") {
            "DROP TRIGGER audit_refused"
        } else {
            "DROP TRIGGER audit_refused ON audit_log"
        },
    );
    let back = get(&devices, Some(&s.coordinator)).await;
    assert_eq!(
        back.status(),
        StatusCode::OK,
        "by itself, once the log takes records"
    );
    let log = get_json(
        &format!("{api}/api/v1/audit?action=read&limit=10"),
        &s.coordinator,
    )
    .await;
    let reads = log["records"].as_array().expect("records");
    assert_eq!(
        reads
            .iter()
            .filter(|r| r["route"] == "GET /api/v1/devices")
            .count(),
        2,
        "the two reads shown, not the refused ones: {log}"
    );
}

#[tokio::test]
async fn personal_reads_fail_closed_on_sqlite() {
    personal_reads_fail_closed(Scratch::new()).await;
}

#[tokio::test]
async fn personal_reads_fail_closed_on_postgres() {
    let Some(scratch) = Scratch::postgres().await else {
        return;
    };
    personal_reads_fail_closed(scratch).await;
}
