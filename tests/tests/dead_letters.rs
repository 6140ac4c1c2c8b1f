//! End to end: a rejected message is marked handled from the API, or replayed once the
//! configuration that refused it is fixed (a municipality added), by the roles allowed to, and
//! each action is in the audit log.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

async fn post(api: &str, path: &str, token: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{api}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("POST");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn open_letters(api: &str, token: &str) -> Vec<Value> {
    get_json(&format!("{api}/api/v1/dead-letters?handled=false"), token).await["items"]
        .as_array()
        .expect("items")
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_messages_are_handled_or_replayed_after_the_configuration_is_fixed() {
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let cwd = scratch.dir.path().to_path_buf();
    // A region without Hol (3330): its gateway's events are refused.
    let config = cwd.join("without-hol.toml");
    let mut text = String::from("cooperations = []\n");
    for (code, name) in [
        ("3320", "Flå"),
        ("3322", "Nesbyen"),
        ("3324", "Gol"),
        ("3326", "Hemsedal"),
        ("3328", "Ål"),
    ] {
        text.push_str(&format!(
            "[[municipalities]]\ncode = \"{code}\"\nname = \"{name}\"\npopulation = 1000\n"
        ));
    }
    std::fs::write(&config, text).expect("config");
    let config_arg = config.display().to_string();
    let (vft, broker) = spawn_vft("serve", &db, &cwd, None, &["--config", &config_arg], &[]);
    let coordinator = create_token(
        &db,
        &cwd,
        &["--config", &config_arg, "--role", "coordinator"],
    );
    let operator = create_token(&db, &cwd, &["--config", &config_arg, "--role", "operator"]);
    wait_ready(&vft.api).await;
    let hol = json!({ "id": "dl-1", "ts": "2025-03-01T10:00:00+01:00", "municipality": "3330",
        "device": "HOL-1", "type": "installed", "kind": "safety_alarm" });
    let with_number = json!({ "id": "dl-2", "ts": "2025-03-01T10:00:00+01:00", "municipality": "3328",
        "device": "AAL-1", "type": "installed", "kind": "safety_alarm", "recipient": "01019012057" });
    let mut p = Publisher::connect(&broker, "dead-letters").await;
    for e in [&hol, &with_number] {
        p.publish("vft/v1/hepro/gw-1/events", e.to_string()).await;
    }
    p.wait_all_acked(Duration::from_secs(60)).await;
    p.disconnect().await;
    let letters = eventually("two dead letters", Duration::from_secs(60), || async {
        let l = open_letters(&vft.api, &coordinator).await;
        (l.len() == 2).then_some(l)
    })
    .await;
    let id_of = |code: &str| {
        letters
            .iter()
            .find(|l| l["reason_code"] == code)
            .and_then(|l| l["id"].as_i64())
            .unwrap_or_else(|| panic!("{code} in {letters:?}"))
    };
    let (unknown, number) = (
        id_of("unknown_municipality"),
        id_of("national_identity_number"),
    );

    // Still refused while the configuration lacks Hol: nothing stored, the letter stays open.
    let (status, body) = post(
        &vft.api,
        &format!("/api/v1/dead-letters/{unknown}/replay"),
        &coordinator,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "not_replayable");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("still not valid"),
        "{body}"
    );
    assert!(vft.terminate().success());

    // Hol added (the default region): the operator may not replay, the coordinator may.
    let (vft, _broker) = spawn_vft("serve", &db, &cwd, None, &[], &[]);
    wait_ready(&vft.api).await;
    let (status, _) = post(
        &vft.api,
        &format!("/api/v1/dead-letters/{unknown}/replay"),
        &operator,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = post(
        &vft.api,
        &format!("/api/v1/dead-letters/{unknown}/replay"),
        &coordinator,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["replayed"].as_bool(), body["events"].as_u64()),
        (Some(true), Some(1))
    );
    let by = body["dead_letter"]["handled_by"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(by.starts_with("token:") && by.ends_with("(test)"), "{body}");
    let device = get_json(
        &format!("{}/api/v1/devices/hepro/HOL-1", vft.api),
        &coordinator,
    )
    .await;
    assert_eq!(
        device["device"]["municipality"], "3330",
        "the event is stored"
    );
    // A second replay changes nothing.
    let (status, again) = post(
        &vft.api,
        &format!("/api/v1/dead-letters/{unknown}/replay"),
        &coordinator,
    )
    .await;
    assert_eq!(
        (status, again["events"].as_u64()),
        (StatusCode::OK, Some(1))
    );
    assert_eq!(
        again["dead_letter"]["handled_at"],
        body["dead_letter"]["handled_at"]
    );

    // The masked number's letter can never be replayed; the operator marks it handled, once.
    let (status, body) = post(
        &vft.api,
        &format!("/api/v1/dead-letters/{number}/replay"),
        &coordinator,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, marked) = post(
        &vft.api,
        &format!("/api/v1/dead-letters/{number}/handled"),
        &operator,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{marked}");
    assert_eq!(marked["replayed"], false);
    let (_, again) = post(
        &vft.api,
        &format!("/api/v1/dead-letters/{number}/handled"),
        &coordinator,
    )
    .await;
    assert_eq!(
        again["handled_by"], marked["handled_by"],
        "the first mark stays"
    );
    let (status, _) = post(&vft.api, "/api/v1/dead-letters/999999/handled", &operator).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(open_letters(&vft.api, &coordinator).await.is_empty());
    let handled = get_json(
        &format!("{}/api/v1/dead-letters?handled=true", vft.api),
        &coordinator,
    )
    .await;
    assert_eq!(handled["items"].as_array().map(Vec::len), Some(2));

    // Each action is in the audit log, with who did it.
    let changes = get_json(
        &format!("{}/api/v1/audit?action=change&limit=100", vft.api),
        &coordinator,
    )
    .await;
    let routes: Vec<(String, String)> = changes["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r["route"].as_str().unwrap_or_default().to_owned(),
                r["status"].to_string(),
            )
        })
        .collect();
    for (route, status) in [
        ("POST /api/v1/dead-letters/{id}/replay", "200"),
        ("POST /api/v1/dead-letters/{id}/replay", "422"),
        ("POST /api/v1/dead-letters/{id}/handled", "200"),
    ] {
        assert!(
            routes.iter().any(|(r, s)| r == route && s == status),
            "{route} {status} in {routes:?}"
        );
    }
}
