//! End to end: gateway events over a real MQTT broker → `vft serve` → SQLite → HTTP API.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;
use vft_domain::{
    DeviceTable, EventTopic, LifecycleRecord, Municipality, MunicipalityCode, ParsedItem, Registry,
    RollupFilter, TechnologyKind, YearMonth, month_end_counts, month_end_instants, parse_payload,
};

const WAIT: Duration = Duration::from_secs(60);

fn registry() -> Registry {
    let text = std::fs::read_to_string(workspace_root().join("config/municipalities.csv"))
        .expect("municipalities");
    let list: Vec<Municipality> = vft_domain::municipality::parse_csv(&text).expect("valid csv");
    Registry::new(list).expect("unique")
}

fn ev(id: &str, ts: &str, municipality: &str, device: &str, kind: Option<&str>, t: &str) -> Value {
    let mut e =
        json!({ "id": id, "ts": ts, "municipality": municipality, "device": device, "type": t });
    if let Some(k) = kind {
        e["kind"] = k.into();
    }
    e
}

/// Door locks in Ål around the June/July boundary, where UTC and Europe/Oslo disagree:
/// June (Oslo) has L1, L3, L4; July has L1, L2a, L2b, L4. Counted by UTC month, June would
/// wrongly be L1, L2a, L2b, L4.
fn boundary_events() -> Vec<Value> {
    let lock = Some("door_lock_alarm");
    vec![
        ev(
            "b1",
            "2025-06-30T23:59:00+02:00",
            "3328",
            "L1",
            lock,
            "installed",
        ),
        ev(
            "b2a",
            "2025-06-30T22:30:00Z",
            "3328",
            "L2a",
            lock,
            "installed",
        ),
        ev(
            "b2b",
            "2025-07-01T00:10:00+02:00",
            "3328",
            "L2b",
            lock,
            "installed",
        ),
        ev(
            "b3i",
            "2025-01-15T12:00:00+01:00",
            "3328",
            "L3",
            lock,
            "installed",
        ),
        ev(
            "b3d",
            "2025-07-01T00:30:00+02:00",
            "3328",
            "L3",
            None,
            "decommissioned",
        ),
        ev(
            "b4",
            "2025-06-30T21:59:59Z",
            "3328",
            "L4",
            lock,
            "installed",
        ),
    ]
}

/// A small region: installs, removals, a move between municipalities, another vendor.
fn region_events() -> Vec<(String, Value)> {
    let hepro = |gw: &str| format!("vft/v1/hepro/{gw}/events");
    let mut out: Vec<(String, Value)> = boundary_events()
        .into_iter()
        .map(|e| (hepro("gw-aal"), e))
        .collect();
    for i in 0..12 {
        let m = ["3320", "3324", "3328"][i % 3];
        // Door locks are left to boundary_events(), whose figures are checked by hand.
        let kind = TechnologyKind::ALL[i % 5].id();
        let month = 1 + i % 12;
        out.push((
            hepro("gw-1"),
            ev(
                &format!("i{i}"),
                &format!("2025-{month:02}-10T08:00:00+01:00"),
                m,
                &format!("S{i}"),
                Some(kind),
                "installed",
            ),
        ));
        if i % 4 == 0 {
            out.push((
                hepro("gw-1"),
                ev(
                    &format!("d{i}"),
                    "2025-09-05T08:00:00+02:00",
                    m,
                    &format!("S{i}"),
                    None,
                    "decommissioned",
                ),
            ));
        }
        out.push((
            hepro("gw-1"),
            ev(
                &format!("h{i}"),
                "2025-10-01T08:00:00+02:00",
                m,
                &format!("S{i}"),
                None,
                "heartbeat",
            ),
        ));
    }
    // S1 moves from Gol to Hol in August.
    out.push((
        hepro("gw-1"),
        ev(
            "move",
            "2025-08-20T09:00:00+02:00",
            "3330",
            "S1",
            Some(TechnologyKind::ALL[1].id()),
            "installed",
        ),
    ));
    // Atea takes over a safety alarm in Ål in November.
    out.push((
        "vft/v1/atea/at-gw-9/events".into(),
        ev(
            "a1",
            "2025-11-03T10:00:00+01:00",
            "3328",
            "AT-1",
            Some("safety_alarm"),
            "installed",
        ),
    ));
    out
}

/// What the table must be, from the domain rules applied to the same events.
fn expected_table(events: &[(String, Value)], filter: &RollupFilter) -> Vec<[u64; 6]> {
    let registry = registry();
    let mut records = Vec::new();
    for (topic, e) in events {
        let topic = EventTopic::parse("vft/v1", topic).expect("topic");
        for item in parse_payload(Ok(&topic), e.to_string().as_bytes(), &registry, 1 << 20) {
            let ParsedItem::Event(e) = item else {
                panic!("test event rejected: {item:?}")
            };
            records.extend(LifecycleRecord::from_event(&e));
        }
    }
    month_end_counts(
        &records,
        &month_end_instants(&YearMonth::months_of_year(2025).expect("year")),
        filter,
    )
}

fn table_counts(table: &Value) -> Vec<[u64; 6]> {
    (0..12)
        .map(|m| {
            let mut c = [0u64; 6];
            for (k, slot) in c.iter_mut().enumerate() {
                *slot = table["rows"][k]["counts"][m].as_u64().expect("a count");
            }
            c
        })
        .collect()
}

/// Publishes the region out of order, in singles and batches, with duplicates and a full replay.
async fn publish_region(broker: &BrokerUnderTest, events: &[(String, Value)]) {
    let mut publisher = Publisher::connect(broker, "e2e-region").await;
    let mut shuffled: Vec<&(String, Value)> = events.iter().rev().collect();
    shuffled.rotate_left(7);
    for chunk in shuffled.chunks(5) {
        // One batch message per topic in the chunk, and the first event again on its own.
        let mut by_topic: std::collections::BTreeMap<&str, Vec<&Value>> = Default::default();
        for (t, e) in chunk {
            by_topic.entry(t.as_str()).or_default().push(e);
        }
        for (topic, batch) in by_topic {
            publisher
                .publish(topic, serde_json::to_vec(&batch).expect("json"))
                .await;
        }
        publisher.publish(&chunk[0].0, chunk[0].1.to_string()).await;
    }
    for (topic, e) in events {
        publisher.publish(topic, e.to_string()).await;
    }
    publisher.wait_all_acked(WAIT).await;
    publisher.disconnect().await;
}

async fn rollup_scenario(vft: &VftProcess, broker: &BrokerUnderTest, scratch: &Scratch) {
    let api = vft.api.clone();
    let db = scratch.database_url();
    let coordinator = create_token(&db, scratch.dir.path(), &["--role", "coordinator"]);
    let aal = create_token(
        &db,
        scratch.dir.path(),
        &["--role", "municipality", "--municipality", "3328"],
    );
    wait_ready(&api).await;

    let events = region_events();
    publish_region(broker, &events).await;
    let expected = expected_table(&events, &RollupFilter::default());
    let url = format!("{api}/api/v1/rollups/devices?year=2025");
    let table = eventually("the table to match the events", WAIT, || async {
        let t = get_json(&url, &coordinator).await;
        (table_counts(&t) == expected).then_some(t)
    })
    .await;

    // The boundary cells, by hand: Europe/Oslo months, not UTC months.
    let locks: Vec<u64> = table_counts(&table)
        .iter()
        .map(|c| c[TechnologyKind::DoorLockAlarm.index()])
        .collect();
    assert_eq!(&locks[4..8], &[1, 3, 4, 4], "door locks May–August");
    assert_eq!(table["months"][0], "2025-01");
    assert_eq!(table["rows"][3]["label"], "Trygghetsalarm");
    let total: Vec<u64> = table["total"]
        .as_array()
        .expect("total")
        .iter()
        .map(|v| v.as_u64().expect("n"))
        .collect();
    assert_eq!(
        total,
        expected
            .iter()
            .map(|c| c.iter().sum())
            .collect::<Vec<u64>>()
    );

    // One municipality, one vendor.
    let only_aal = RollupFilter {
        municipality: Some(MunicipalityCode::parse("3328").expect("code")),
        vendor: None,
    };
    let aal_expected = expected_table(&events, &only_aal);
    let aal_table = get_json(&format!("{url}&municipality=3328"), &coordinator).await;
    assert_eq!(table_counts(&aal_table), aal_expected);
    let atea = get_json(&format!("{url}&vendor=atea"), &coordinator).await;
    assert_eq!(atea["total"][10], 1);
    assert_eq!(atea["total"][9], 0);

    // A municipality token sees its own municipality, asked for or not, and nothing else.
    assert_eq!(table_counts(&get_json(&url, &aal).await), aal_expected);
    assert_eq!(
        table_counts(&get_json(&format!("{url}&municipality=3328"), &aal).await),
        aal_expected
    );
    assert_eq!(
        get(&format!("{url}&municipality=3320"), Some(&aal))
            .await
            .status(),
        403
    );
    assert_eq!(get(&url, None).await.status(), 401);
    assert_eq!(get(&url, Some("vft_not-a-token")).await.status(), 401);

    // CSV by parameter and by Accept header.
    let csv = get(&format!("{url}&format=csv"), Some(&coordinator)).await;
    assert_eq!(csv.status(), 200);
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .expect("header")
            .starts_with("text/csv")
    );
    let body = csv.text().await.expect("body");
    let parsed = DeviceTable::from_csv(&body).expect("CSV in the table shape");
    assert_eq!(
        serde_json::to_value(&parsed).expect("json")["rows"],
        table["rows"]
    );
    let by_accept = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&coordinator)
        .header("accept", "text/csv")
        .send()
        .await
        .expect("GET");
    assert_eq!(by_accept.text().await.expect("body"), body);

    // Bad requests are clear errors; the future is null.
    for bad in [
        "year=abc",
        "year=2025&municipality=9999",
        "year=2025&vendor=Not%20A%20Vendor",
        "year=2025&format=xml",
    ] {
        let resp = get(
            &format!("{api}/api/v1/rollups/devices?{bad}"),
            Some(&coordinator),
        )
        .await;
        assert_eq!(resp.status(), 400, "{bad}");
        let err: Value = resp.json().await.expect("json error");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{bad}: {err}"
        );
    }
    let future = get_json(
        &format!("{api}/api/v1/rollups/devices?year=2099"),
        &coordinator,
    )
    .await;
    assert!(
        future["total"]
            .as_array()
            .expect("total")
            .iter()
            .all(Value::is_null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_through_the_embedded_broker() {
    let scratch = Scratch::new();
    let (vft, broker) = serve(&scratch, None, &[]);
    rollup_scenario(&vft, &broker, &scratch).await;
    // Health, readiness and metrics are served without a token.
    assert_eq!(
        get(&format!("{}/healthz", vft.api), None).await.status(),
        200
    );
    let metrics = get(&format!("{}/metrics", vft.api), None)
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains("vft_ingest_events_stored_total"),
        "{metrics}"
    );
    assert!(metrics.contains("vft_http_requests_total"), "{metrics}");
    let openapi: Value = get(&format!("{}/api/openapi.json", vft.api), None)
        .await
        .json()
        .await
        .expect("openapi");
    assert!(
        openapi["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3')),
        "{openapi}"
    );
    assert!(openapi["paths"]["/api/v1/rollups/devices"]["get"].is_object());
    assert!(vft.terminate().success(), "vft exits cleanly on SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_through_mosquitto() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let scratch = Scratch::new();
    let (vft, broker) = serve(&scratch, Some(&mosquitto.broker), &[]);
    rollup_scenario(&vft, &broker, &scratch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_input_is_a_dead_letter_and_ingest_goes_on() {
    let scratch = Scratch::new();
    let (vft, broker) = serve(&scratch, None, &[]);
    let coordinator = create_token(
        &scratch.database_url(),
        scratch.dir.path(),
        &["--role", "coordinator"],
    );
    let aal = create_token(
        &scratch.database_url(),
        scratch.dir.path(),
        &["--role", "municipality", "--municipality", "3328"],
    );
    wait_ready(&vft.api).await;

    let nin = valid_nin().expect("a synthetic identity number");
    let good = |i: usize| {
        ev(
            &format!("ok{i}"),
            "2025-03-03T10:00:00+01:00",
            "3328",
            &format!("G{i}"),
            Some("safety_alarm"),
            "installed",
        )
    };
    let topic = "vft/v1/hepro/gw-1/events";
    let mut bad: Vec<(&str, &str, Vec<u8>)> = vec![
        ("malformed_json", topic, b"{\"id\": \"x\", ".to_vec()),
        ("malformed_json", topic, vec![0xff, 0xfe, b'{']),
        (
            "unknown_municipality",
            topic,
            ev(
                "u1",
                "2025-03-03T10:00:00+01:00",
                "0301",
                "X",
                Some("tracking"),
                "installed",
            )
            .to_string()
            .into_bytes(),
        ),
        (
            "unknown_type",
            topic,
            ev(
                "u2",
                "2025-03-03T10:00:00+01:00",
                "3328",
                "X",
                None,
                "exploded",
            )
            .to_string()
            .into_bytes(),
        ),
        (
            "missing_field",
            topic,
            br#"{"id":"u3","municipality":"3328","device":"X","type":"heartbeat"}"#.to_vec(),
        ),
        (
            "bad_topic",
            "vft/v1/Not_A_Vendor/gw/events",
            good(99).to_string().into_bytes(),
        ),
    ];
    let mut with_nin = ev(
        "u4",
        "2025-03-03T10:00:00+01:00",
        "3328",
        "X",
        Some("tracking"),
        "installed",
    );
    with_nin["recipient"] = nin.clone().into();
    bad.push((
        "national_identity_number",
        topic,
        with_nin.to_string().into_bytes(),
    ));
    // The id of a valid event published earlier (ok0), with other content.
    let mut conflicting = good(0);
    conflicting["device"] = "G-OTHER".into();
    bad.push((
        "conflicting_duplicate",
        topic,
        conflicting.to_string().into_bytes(),
    ));
    let oversized = format!("[{}]", vec![good(98).to_string(); 3000].join(","));
    assert!(oversized.len() > 256 * 1024 && oversized.len() < 1024 * 1024);
    bad.push(("oversized", topic, oversized.into_bytes()));

    let mut publisher = Publisher::connect(&broker, "e2e-bad").await;
    for (i, (_, t, payload)) in bad.iter().enumerate() {
        publisher.publish(t, payload.clone()).await;
        publisher.publish(topic, good(i).to_string()).await;
    }
    publisher.wait_all_acked(WAIT).await;
    publisher.disconnect().await;

    let url = format!("{}/api/v1/dead-letters?limit=100", vft.api);
    let letters = eventually("all dead letters", WAIT, || async {
        let body = get_json(&url, &coordinator).await;
        let items = body["items"].as_array().cloned().unwrap_or_default();
        (items.len() >= bad.len()).then_some(items)
    })
    .await;
    assert_eq!(letters.len(), bad.len(), "{letters:#?}");
    let mut codes: Vec<&str> = letters
        .iter()
        .map(|d| d["reason_code"].as_str().expect("code"))
        .collect();
    let mut want: Vec<&str> = bad.iter().map(|(c, _, _)| *c).collect();
    codes.sort();
    want.sort();
    assert_eq!(codes, want);
    for d in &letters {
        assert!(d["reason"].as_str().is_some_and(|r| r.len() > 5), "{d}");
        assert!(
            !d["payload"].as_str().expect("payload").contains(&nin),
            "the identity number is never kept"
        );
    }
    let bad_topic = letters
        .iter()
        .find(|d| d["reason_code"] == "bad_topic")
        .expect("bad topic letter");
    assert_eq!(bad_topic["topic"], "vft/v1/Not_A_Vendor/gw/events");
    let conflict = letters
        .iter()
        .find(|d| d["reason_code"] == "conflicting_duplicate")
        .expect("conflicting duplicate letter");
    assert_eq!(conflict["topic"], topic);
    assert!(
        conflict["payload"]
            .as_str()
            .is_some_and(|p| p.contains("G-OTHER") && p.contains("ok0")),
        "{conflict}"
    );
    // The first arrival is kept, and no device came of the conflicting one.
    let other = get(
        &format!("{}/api/v1/devices/hepro/G-OTHER", vft.api),
        Some(&coordinator),
    )
    .await;
    assert_eq!(other.status(), 404);

    // Each valid event right after a bad one was stored: March has all of them.
    let table = eventually("the valid events", WAIT, || async {
        let t = get_json(
            &format!("{}/api/v1/rollups/devices?year=2025", vft.api),
            &coordinator,
        )
        .await;
        (t["total"][2] == bad.len() as u64).then_some(t)
    })
    .await;
    assert_eq!(table["rows"][3]["counts"][2], bad.len() as u64);
    // Dead letters are for the coordinator only.
    assert_eq!(get(&url, Some(&aal)).await.status(), 403);
}

/// A synthetic identity number with valid check digits (never a real person's: it is made here).
fn valid_nin() -> Option<String> {
    for tail in 0..1000u32 {
        let first9 = format!("010190{tail:03}");
        let d: Vec<u32> = first9.bytes().map(|b| u32::from(b - b'0')).collect();
        let check = |digits: &[u32], w: &[u32]| {
            let k = 11 - digits.iter().zip(w).map(|(a, b)| a * b).sum::<u32>() % 11;
            match k {
                11 => Some(0),
                10 => None,
                k => Some(k),
            }
        };
        let Some(k1) = check(&d, &[3, 7, 6, 1, 8, 9, 4, 5, 2]) else {
            continue;
        };
        let mut d10 = d.clone();
        d10.push(k1);
        let Some(k2) = check(&d10, &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2]) else {
            continue;
        };
        let n = format!("{first9}{k1}{k2}");
        if vft_domain::nin::is_national_identity_number(&n) {
            return Some(n);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing_acknowledged_and_stores_nothing_twice() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let scratch = Scratch::new();
    let (vft, broker) = serve(&scratch, Some(&mosquitto.broker), &[]);
    wait_ready(&vft.api).await;
    let store = vft_store::open(&scratch.database_url(), &Default::default())
        .await
        .expect("open store");

    const BEFORE: usize = 1500;
    // More than Mosquitto's default queue (1000) arrives while vft is down: the deploy config's
    // queue size is what keeps them.
    const WHILE_DOWN: usize = 2500;
    let event = |i: usize| {
        ev(
            &format!("k{i}"),
            "2025-04-04T04:04:04+02:00",
            "3324",
            &format!("K{i}"),
            Some("smoke_detector"),
            "installed",
        )
    };
    let topic = "vft/v1/hepro/gw-kill/events";
    let mut publisher = Publisher::connect(&broker, "e2e-kill").await;
    for i in 0..BEFORE {
        publisher.publish(topic, event(i).to_string()).await;
    }
    // Kill while the stream is still being stored.
    eventually("ingest under way", WAIT, || async {
        (store.event_count().await.ok()? > 0).then_some(())
    })
    .await;
    vft.kill();
    let stored_at_kill = store.event_count().await.expect("count");
    for i in BEFORE..BEFORE + WHILE_DOWN {
        publisher.publish(topic, event(i).to_string()).await;
    }
    publisher.wait_all_acked(WAIT).await;
    let acked = publisher.acked();
    publisher.disconnect().await;
    assert_eq!(acked.len(), BEFORE + WHILE_DOWN);

    let args = [
        "serve",
        "--http-addr",
        "127.0.0.1:0",
        "--database-url",
        &scratch.database_url(),
        "--mqtt-url",
        &broker.url(),
    ];
    let restarted = VftProcess::spawn(&args, scratch.dir.path());
    let total = (BEFORE + WHILE_DOWN) as u64;
    eventually(
        "every acknowledged event stored",
        Duration::from_secs(120),
        || async { (store.event_count().await.ok()? >= total).then_some(()) },
    )
    .await;
    let mut ids: Vec<String> = store
        .lifecycle_records()
        .await
        .expect("records")
        .into_iter()
        .map(|r| r.event_id.to_string())
        .collect();
    ids.sort();
    let mut want: Vec<String> = acked.iter().map(|i| format!("k{i}")).collect();
    want.sort();
    assert_eq!(ids, want, "exactly the acknowledged events, each once");
    assert_eq!(store.event_count().await.expect("count"), total);
    assert!(
        stored_at_kill < total,
        "the kill happened mid-stream ({stored_at_kill} of {total} stored)"
    );
    let coordinator = create_token(
        &scratch.database_url(),
        scratch.dir.path(),
        &["--role", "coordinator"],
    );
    let table = get_json(
        &format!("{}/api/v1/rollups/devices?year=2025", restarted.api),
        &coordinator,
    )
    .await;
    assert_eq!(
        table["rows"][4]["counts"][3], total,
        "April's smoke detectors, each counted once"
    );
    assert!(
        get_json(
            &format!("{}/api/v1/dead-letters", restarted.api),
            &coordinator
        )
        .await["items"]
            .as_array()
            .expect("items")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_the_fixture_table() {
    let scratch = Scratch::new();
    // Upkeep (offline counts, retention) every second, so it runs while the test reads.
    let (demo, _, token) = demo(&scratch, &[("VFT_CONNECTIVITY__CHECK_INTERVAL_SECS", "1")]);

    let fixture_path = workspace_root().join("../shared/fixtures/hallingdal-vft-2025.csv");
    let fixture_text = match std::fs::read_to_string(&fixture_path) {
        Ok(t) => t,
        Err(e) => {
            assert!(!in_ci(), "the shared fixture is required in CI: {e}");
            eprintln!("!!! shared fixture missing, comparing with the embedded copy");
            std::fs::read_to_string(
                workspace_root().join("crates/vft-sim/data/hallingdal-vft-2025.csv"),
            )
            .expect("embedded fixture")
        }
    };
    let fixture = DeviceTable::from_csv(&fixture_text).expect("fixture");
    let json = get_json(
        &format!("{}/api/v1/rollups/devices?year=2025", demo.api),
        &token,
    )
    .await;
    let served: DeviceTable = serde_json::from_value(json).expect("table shape");
    for kind in TechnologyKind::ALL {
        for m in 0..12 {
            assert_eq!(
                served.cell(kind, m),
                fixture.cell(kind, m),
                "{kind} in {}",
                fixture.months[m]
            );
        }
    }
    assert_eq!(served, fixture_with_contract_labels(&fixture));
    let csv = get(
        &format!("{}/api/v1/rollups/devices?year=2025&format=csv", demo.api),
        Some(&token),
    )
    .await
    .text()
    .await
    .expect("csv");
    assert_eq!(DeviceTable::from_csv(&csv).expect("csv"), served);

    // Beside the table, the vendor transition: both vendors' inventory exports of the last
    // simulated day, each with unreadable rows, imported through the import code.
    let api = |path: &str| format!("{}{path}", demo.api);
    let history = get_json(&api("/api/v1/imports"), &token).await;
    let imports = history["imports"].as_array().expect("imports");
    let mut vendors: Vec<&str> = imports
        .iter()
        .map(|i| i["vendor"].as_str().expect("vendor"))
        .collect();
    vendors.sort();
    assert_eq!(vendors, ["atea", "hepro"], "{history}");
    for i in imports {
        // 2025-12-31 in Europe/Oslo.
        assert!(
            i["as_of"]
                .as_str()
                .is_some_and(|t| t.starts_with("2025-12-30T23:00:00")),
            "{i}"
        );
        assert!(i["rows"].as_u64().expect("rows") > 300, "{i}");
        assert!(i["errors"].as_u64().expect("errors") >= 1, "{i}");
    }
    let errors = get_json(&api("/api/v1/imports/errors"), &token).await;
    let errors = errors["items"].as_array().expect("items");
    let total: u64 = imports
        .iter()
        .map(|i| i["errors"].as_u64().expect("n"))
        .sum();
    assert_eq!(errors.len() as u64, total);
    let mut columns: Vec<&str> = errors
        .iter()
        .map(|e| e["column"].as_str().expect("column"))
        .collect();
    columns.sort();
    assert_eq!(columns, ["Installert", "Produkt", "category"], "{errors:?}");

    // Reconciled at the end of that day: every class, a few doubles (both vendors' units for
    // one recipient and type), the planted export flags.
    let rec = get_json(
        &api("/api/v1/reconciliation?from=hepro&to=atea&at=2025-12-31"),
        &token,
    )
    .await;
    for class in [
        "migrated",
        "pending",
        "double",
        "new",
        "listed_silent",
        "reporting_unlisted",
    ] {
        assert!(
            rec["totals"][class].as_u64().is_some_and(|n| n > 0),
            "no {class}: {}",
            rec["totals"]
        );
    }
    let doubles: Vec<&Value> = rec["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["class"] == "double")
        .flat_map(|r| r["subjects"].as_array().expect("subjects"))
        .collect();
    assert!(doubles.len() >= 2, "{doubles:?}");
    for s in doubles {
        let devices = s["devices"].to_string();
        assert!(devices.contains("hepro") && devices.contains("atea"), "{s}");
    }
    // The OpenAPI document describes these by hand (the domain's types carry no schema).
    let openapi: Value = get(&api("/api/openapi.json"), None)
        .await
        .json()
        .await
        .expect("openapi");
    assert_fields_match_schema(&openapi, "ReconcileReport", &rec);
    let row = &rec["rows"][0];
    assert_fields_match_schema(&openapi, "ReconcileRow", row);
    assert_fields_match_schema(&openapi, "Subject", &row["subjects"][0]);

    // The deviations: one dead letter for each kind of bad message, with its reason.
    let letters = get_json(&api("/api/v1/dead-letters?limit=100"), &token).await;
    let letters = letters["items"].as_array().expect("items");
    let mut codes: Vec<&str> = letters
        .iter()
        .map(|d| d["reason_code"].as_str().expect("code"))
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            "invalid_field",
            "malformed_json",
            "national_identity_number",
            "unknown_municipality",
            "unknown_type",
        ],
        "{letters:#?}"
    );
    for d in letters {
        assert!(d["reason"].as_str().is_some_and(|r| r.len() > 10), "{d}");
    }
    let nin = letters
        .iter()
        .find(|d| d["reason_code"] == "national_identity_number")
        .expect("identity number letter");
    assert!(
        nin["payload"]
            .as_str()
            .is_some_and(|p| p.contains("***********")),
        "the number is masked: {nin}"
    );
    // The demo's year is in the past: its heartbeats are kept (no retention in the demo), so a
    // device's history shows them, also after upkeep has run since the load.
    let upkeep_runs = || async {
        let text = get(&api("/metrics"), None)
            .await
            .text()
            .await
            .expect("metrics");
        text.lines()
            .find_map(|l| l.strip_prefix("vft_maintenance_runs_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let loaded = upkeep_runs().await.unwrap_or(0.0);
    eventually(
        "two upkeep rounds after the load",
        Duration::from_secs(60),
        || async { (upkeep_runs().await? >= loaded + 2.0).then_some(()) },
    )
    .await;
    let listed = get_json(&api("/api/v1/devices?kind=safety_alarm&limit=1"), &token).await;
    let device = &listed["items"][0];
    let (vendor, id) = (
        device["vendor"].as_str().expect("vendor"),
        device["device"].as_str().expect("device"),
    );
    let shown = get_json(&api(&format!("/api/v1/devices/{vendor}/{id}")), &token).await;
    let history = shown["history"].as_array().expect("history");
    assert!(
        history.iter().any(|e| e["type"] == "heartbeat"),
        "no heartbeat in {vendor}/{id}'s history: {history:?}"
    );
    assert!(demo.terminate().success());
}

fn fixture_with_contract_labels(t: &DeviceTable) -> DeviceTable {
    let counts: Vec<Option<[u64; 6]>> = (0..t.months.len())
        .map(|m| {
            let mut c = [0; 6];
            for k in TechnologyKind::ALL {
                c[k.index()] = t.cell(k, m).expect("count");
            }
            Some(c)
        })
        .collect();
    DeviceTable::from_counts(t.year, t.months.clone(), &counts)
}

#[tokio::test]
async fn cli_print_config_and_token_errors() {
    let scratch = Scratch::new();
    let cwd = scratch.dir.path();
    let shown = vft_cli(
        &[
            "print-config",
            "--database-url",
            "postgres://vft:hunter2@db/vft",
        ],
        cwd,
    )
    .expect("print-config");
    assert!(
        shown.contains("postgres://vft:***@db/vft") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert!(shown.contains("topic_prefix = \"vft/v1\""));
    let db = scratch.database_url();
    // Only serve and demo create a database; the token commands need one.
    let err = vft_cli(&["token", "list", "--database-url", &db], cwd).expect_err("no database");
    assert!(err.contains("no database at"), "{err}");
    vft_store::open(&db, &Default::default())
        .await
        .expect("create the database");
    let err = vft_cli(
        &[
            "token",
            "create",
            "--database-url",
            &db,
            "--role",
            "municipality",
            "--municipality",
            "0301",
            "--label",
            "e2e",
        ],
        cwd,
    )
    .expect_err("unknown");
    assert!(err.contains("unknown municipality 0301"), "{err}");
    let err = vft_cli(
        &[
            "token",
            "create",
            "--database-url",
            &db,
            "--role",
            "municipality",
            "--label",
            "e2e",
        ],
        cwd,
    )
    .expect_err("missing");
    assert!(err.contains("--municipality"), "{err}");
    let a = create_token(&db, cwd, &["--role", "coordinator"]);
    let b = create_token(&db, cwd, &["--role", "coordinator"]);
    assert!(a.starts_with("vft_") && a.len() > 40 && a != b);
    let err = vft_cli(&["serve", "--database-url", "mysql://x"], cwd).expect_err("bad url");
    assert!(err.contains("unsupported database URL"), "{err}");
}
