//! End to end: response-centre figures, published months and corrections, change attribution,
//! cooperations, recipients, and the municipality scoping of every figure endpoint.

mod support;

use serde_json::{Value, json};
use support::*;

async fn start() -> Server {
    Server::start(Scratch::new()).await
}

fn ev(id: &str, ts: &str, municipality: &str, device: &str, t: &str) -> Value {
    json!({ "id": id, "ts": ts, "municipality": municipality, "device": device, "type": t })
}

fn alarm(id: &str, ts: &str, alarm: &str, t: &str) -> Value {
    let mut e = ev(id, ts, "3328", "SA1", t);
    e["alarm"] = alarm.into();
    match t {
        "alarm" => e["cause"] = "fall".into(),
        "alarm_closed" => {
            e["outcome"] = match alarm {
                "A1" => "false_alarm",
                "A2" => "help_dispatched",
                "A4" => "resolved_remotely",
                _ => "no_contact",
            }
            .into()
        }
        _ => {}
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_centre_figures_match_a_hand_computed_example() {
    response_centre_figures_match_a_hand_computed_example_on(Scratch::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_centre_figures_match_a_hand_computed_example_on_postgres() {
    if let Some(scratch) = Scratch::postgres().await {
        response_centre_figures_match_a_hand_computed_example_on(scratch).await
    }
}

async fn response_centre_figures_match_a_hand_computed_example_on(scratch: Scratch) {
    let s = Server::start(scratch).await;
    let mut install = ev(
        "i1",
        "2025-01-01T08:00:00+01:00",
        "3328",
        "SA1",
        "installed",
    );
    install["kind"] = "safety_alarm".into();
    let events = vec![
        install,
        // A1: answered in 30 s, closed as a false alarm.
        alarm("a1", "2025-01-10T10:00:00+01:00", "A1", "alarm"),
        alarm("a1r", "2025-01-10T10:00:02+01:00", "A1", "alarm_received"),
        alarm(
            "a1a",
            "2025-01-10T10:00:30+01:00",
            "A1",
            "alarm_acknowledged",
        ),
        alarm("a1c", "2025-01-10T10:05:00+01:00", "A1", "alarm_closed"),
        // A2: answered in 90 s: within 180 s, not within 60 s.
        alarm("a2", "2025-01-15T12:00:00+01:00", "A2", "alarm"),
        alarm(
            "a2a",
            "2025-01-15T12:01:30+01:00",
            "A2",
            "alarm_acknowledged",
        ),
        alarm("a2c", "2025-01-15T12:20:00+01:00", "A2", "alarm_closed"),
        // A3: never acknowledged.
        alarm("a3", "2025-01-20T08:00:00+01:00", "A3", "alarm"),
        // A4: triggered 30 s before February, answered 40 s into it: January, 70 s.
        alarm("a4", "2025-01-31T23:59:30+01:00", "A4", "alarm"),
        alarm(
            "a4a",
            "2025-02-01T00:00:40+01:00",
            "A4",
            "alarm_acknowledged",
        ),
        alarm("a4c", "2025-02-01T00:03:00+01:00", "A4", "alarm_closed"),
        // B1: February, 45 s.
        alarm("b1", "2025-02-03T09:00:00+01:00", "B1", "alarm"),
        alarm(
            "b1a",
            "2025-02-03T09:00:45+01:00",
            "B1",
            "alarm_acknowledged",
        ),
        alarm("b1c", "2025-02-03T09:10:00+01:00", "B1", "alarm_closed"),
    ];
    // Out of order: the response centre's events before the alarms they belong to.
    let mut shuffled = events.clone();
    shuffled.reverse();
    s.publish(&shuffled).await;
    s.wait_events(events.len() as u64).await;

    let body = s.get("/api/v1/rollups/response-centre?year=2025").await;
    let jan = &body["months"][0];
    assert_eq!(jan["month"], "2025-01");
    assert_eq!(
        (jan["triggered"].as_u64(), jan["received"].as_u64()),
        (Some(4), Some(1))
    );
    assert_eq!(
        (jan["acknowledged"].as_u64(), jan["closed"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(jan["never_acknowledged"], 1);
    // The never-acknowledged alarm by name, for the region and for Ål's own user.
    for token in [&s.coordinator, &s.aal] {
        let list = get_json(
            &format!(
                "{}/api/v1/rollups/response-centre/unanswered?month=2025-01",
                s.vft.api
            ),
            token,
        )
        .await;
        let alarms = list["alarms"].as_array().expect("alarms");
        assert_eq!(alarms.len(), 1, "{list}");
        assert_eq!(
            (
                &alarms[0]["alarm"],
                &alarms[0]["device"],
                &alarms[0]["triggered"]
            ),
            (&json!("A3"), &json!("SA1"), &json!("2025-01-20T07:00:00Z"))
        );
    }
    let feb_list = s
        .get("/api/v1/rollups/response-centre/unanswered?month=2025-02")
        .await;
    assert_eq!(feb_list["alarms"], json!([]));
    let other = get(
        &format!(
            "{}/api/v1/rollups/response-centre/unanswered?month=2025-01&municipality=3330",
            s.vft.api
        ),
        Some(&s.aal),
    )
    .await;
    assert_eq!(other.status(), 403, "Ål may not list Hol's alarms");
    // Response times 30 s, 70 s, 90 s: nearest-rank median is the 2nd, 90th percentile the 3rd.
    assert_eq!(
        jan["response"],
        json!({ "median_ms": 70_000, "p90_ms": 90_000, "max_ms": 90_000 })
    );
    // Within 60 s: A1 of 4 alarms; within 180 s: A1, A2, A4 of 4 (A3 never answered counts against).
    assert_eq!(
        (
            jan["share_within_60s"].as_f64(),
            jan["share_within_180s"].as_f64()
        ),
        (Some(0.25), Some(0.75))
    );
    assert_eq!(
        (jan["meets_60s"].as_bool(), jan["meets_180s"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(jan["outcomes"]["false_alarm"], 1);
    assert_eq!(jan["outcomes"]["help_dispatched"], 1);
    assert_eq!(jan["outcomes"]["resolved_remotely"], 1);
    assert_eq!(jan["outcomes"]["no_contact"], 0);
    let feb = &body["months"][1];
    assert_eq!(
        (
            feb["triggered"].as_u64(),
            feb["never_acknowledged"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(feb["response"]["median_ms"], 45_000);
    assert_eq!(
        (feb["meets_60s"].as_bool(), feb["meets_180s"].as_bool()),
        (Some(true), Some(true))
    );
    assert!(
        body["months"][2]["share_within_60s"].is_null(),
        "no alarms, no share"
    );
    assert_eq!(body["standard"]["within_60s"], 0.975);
    // By technology type: all of them are safety alarms.
    let safety = s
        .get("/api/v1/rollups/response-centre?year=2025&kind=safety_alarm")
        .await;
    assert_eq!(safety["months"], body["months"]);
    let smoke = s
        .get("/api/v1/rollups/response-centre?year=2025&kind=smoke_detector")
        .await;
    assert_eq!(smoke["months"][0]["triggered"], 0);

    // Past months are kept once computed, and still follow late events: A3 is answered late,
    // in February. It stays a January alarm, so January changes and February does not.
    s.publish(&[alarm(
        "a3a",
        "2025-02-02T08:00:00+01:00",
        "A3",
        "alarm_acknowledged",
    )])
    .await;
    s.wait_events(events.len() as u64 + 1).await;
    let after = s.get("/api/v1/rollups/response-centre?year=2025").await;
    assert_eq!(
        (
            after["months"][0]["acknowledged"].as_u64(),
            after["months"][0]["never_acknowledged"].as_u64()
        ),
        (Some(4), Some(0))
    );
    assert_eq!(after["months"][1], body["months"][1], "February unchanged");
    // The figures by type are never kept: the same numbers, computed afresh.
    let fresh = s
        .get("/api/v1/rollups/response-centre?year=2025&kind=safety_alarm")
        .await;
    assert_eq!(after["months"], fresh["months"]);
    let aal = s
        .get("/api/v1/rollups/response-centre?year=2025&municipality=3328")
        .await;
    assert_eq!(aal["months"], fresh["months"], "all alarms are Ål's");
}

fn installed(id: &str, ts: &str, m: &str, device: &str, kind: &str) -> Value {
    let mut e = ev(id, ts, m, device, "installed");
    e["kind"] = kind.into();
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_changes_an_open_month_and_shows_as_a_correction_on_a_closed_one() {
    a_late_event_changes_an_open_month_and_shows_as_a_correction_on_a_closed_one_on(Scratch::new())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_changes_an_open_month_and_shows_as_a_correction_on_a_closed_one_on_postgres()
{
    if let Some(scratch) = Scratch::postgres().await {
        a_late_event_changes_an_open_month_and_shows_as_a_correction_on_a_closed_one_on(scratch)
            .await
    }
}

async fn a_late_event_changes_an_open_month_and_shows_as_a_correction_on_a_closed_one_on(
    scratch: Scratch,
) {
    let s = Server::start(scratch).await;
    s.publish(&[
        installed("p1", "2025-03-05T10:00:00+01:00", "3324", "G1", "tracking"),
        installed("p2", "2025-03-06T10:00:00+01:00", "3324", "G2", "tracking"),
    ])
    .await;
    s.wait_events(2).await;
    let url = format!("{}/api/v1/months/2025-03/publish", s.vft.api);
    let client = reqwest::Client::new();
    let resp = client
        .post(&url)
        .bearer_auth(&s.aal)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 403, "only the coordinator closes a month");
    let resp = client
        .post(&url)
        .bearer_auth(&s.coordinator)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 201);
    assert_eq!(
        client
            .post(&url)
            .bearer_auth(&s.coordinator)
            .send()
            .await
            .expect("POST")
            .status(),
        409
    );
    let future = client
        .post(format!("{}/api/v1/months/2099-01/publish", s.vft.api))
        .bearer_auth(&s.coordinator)
        .send()
        .await
        .expect("POST");
    assert_eq!(future.status(), 400);

    // A late install in March (closed) and one in April (open).
    s.publish(&[
        installed(
            "late1",
            "2025-03-20T10:00:00+01:00",
            "3324",
            "G3",
            "tracking",
        ),
        installed(
            "late2",
            "2025-04-20T10:00:00+02:00",
            "3324",
            "G4",
            "tracking",
        ),
    ])
    .await;
    s.wait_events(4).await;
    let table = s.get("/api/v1/rollups/devices?year=2025").await;
    let tracking = &table["rows"][2];
    assert_eq!(tracking["kind"], "tracking");
    assert_eq!(tracking["counts"][2], 2, "March stays as published");
    assert_eq!(tracking["counts"][3], 4, "April (open) follows the events");
    assert_eq!(table["published"][2], true);
    assert_eq!(table["published"][3], false);
    assert_eq!(
        table["corrections"],
        json!([{ "month": "2025-03", "kind": "tracking", "published": 2, "current": 3, "difference": 1 }])
    );
    let months = s.get("/api/v1/months?year=2025").await;
    assert_eq!(months["items"][0]["month"], "2025-03");
    // Who published it: the coordinator's token, as the audit log names it.
    let by = months["items"][0]["published_by"]
        .as_str()
        .unwrap_or_default();
    assert!(
        by.starts_with("token:") && by.ends_with("(test)"),
        "{months}"
    );
}

/// Runs `vft sim` against the server's broker: the simulated region, with installs, removals,
/// replacements and the Hepro → Atea migration.
async fn load_simulated_region(s: &Server) {
    let mqtt = format!("127.0.0.1:{}", s.broker.port);
    let out = vft_cli(
        &["sim", "--mqtt-addr", &mqtt, "--heartbeat-days", "30"],
        s.scratch.dir.path(),
    )
    .expect("vft sim");
    let events: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("published N events");
    s.wait_events(events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribution_adds_up_cooperations_count_members_and_municipality_tokens_see_only_themselves()
 {
    let s = start().await;
    load_simulated_region(&s).await;
    let table = s.get("/api/v1/rollups/devices?year=2025").await;
    let dec_2024 = s.get("/api/v1/rollups/devices?year=2024").await;

    // Every month: each row's lines add up to the row's change, which is the table's change.
    let mut causes = std::collections::BTreeSet::new();
    let mut reasons = std::collections::BTreeSet::new();
    for m in 0..12 {
        let month = format!("2025-{:02}", m + 1);
        let changes = s
            .get(&format!("/api/v1/rollups/devices/changes?month={month}"))
            .await;
        for (k, row) in changes["rows"].as_array().expect("rows").iter().enumerate() {
            let lines = row["lines"].as_array().expect("lines");
            let sum: i64 = lines
                .iter()
                .map(|l| l["delta"].as_i64().expect("delta"))
                .sum();
            assert_eq!(
                sum,
                row["delta"].as_i64().expect("delta"),
                "{month} {}",
                row["kind"]
            );
            let before = if m == 0 {
                &dec_2024["rows"][k]["counts"][11]
            } else {
                &table["rows"][k]["counts"][m - 1]
            };
            assert_eq!(row["before"], *before, "{month} {}", row["kind"]);
            assert_eq!(
                row["after"], table["rows"][k]["counts"][m],
                "{month} {}",
                row["kind"]
            );
            for l in lines {
                causes.insert(l["cause"].as_str().expect("cause").to_owned());
                assert!(l["device_count"].as_u64().expect("count") > 0);
                // Removals are split by why they left; nothing else carries a reason.
                if l["cause"] == "decommissioned" {
                    let reason = l["reason"]
                        .as_str()
                        .expect("a decommissioned line's reason");
                    reasons.insert(reason.to_owned());
                    assert_eq!(
                        l["delta"].as_i64(),
                        l["device_count"].as_i64().map(|n| -n),
                        "{month}: {l}"
                    );
                } else {
                    assert!(l.get("reason").is_none(), "{month}: {l}");
                }
            }
            let decommissioned: Vec<&str> = lines
                .iter()
                .filter(|l| l["cause"] == "decommissioned")
                .map(|l| l["reason"].as_str().unwrap_or_default())
                .collect();
            let mut unique = decommissioned.clone();
            unique.dedup();
            assert_eq!(unique, decommissioned, "{month}: one line per reason");
        }
    }
    // The simulated region gives most removals a reason and a few none.
    for reason in [
        "deceased",
        "moved_to_institution",
        "no_longer_needed",
        "not_given",
    ] {
        assert!(reasons.contains(reason), "{reason} among {reasons:?}");
    }
    for cause in [
        "installed",
        "decommissioned",
        "replaced",
        "vendor_migration",
    ] {
        assert!(
            causes.contains(cause),
            "the simulated year has {cause} lines: {causes:?}"
        );
    }

    // Cooperations: Nesbyen (3322) left Hallinghelse on 2025-07-01 but stays in e-health.
    let nesbyen = s
        .get("/api/v1/rollups/devices?year=2025&municipality=3322")
        .await;
    let hallinghelse = s
        .get("/api/v1/rollups/devices?year=2025&cooperation=hallinghelse")
        .await;
    let ehealth = s
        .get("/api/v1/rollups/devices?year=2025&cooperation=ehealth")
        .await;
    for m in 0..12 {
        let total = table["total"][m].as_u64().expect("n");
        let nes = nesbyen["total"][m].as_u64().expect("n");
        assert_eq!(ehealth["total"][m].as_u64(), Some(total));
        let expected = if m < 6 { total } else { total - nes };
        assert_eq!(
            hallinghelse["total"][m].as_u64(),
            Some(expected),
            "month {}",
            m + 1
        );
    }
    assert!(nesbyen["total"][6].as_u64().expect("n") > 0);
    // July under Hallinghelse: the lines still add up, and Nesbyen's devices leave as a
    // municipality leaving, not as removals.
    let july = s
        .get("/api/v1/rollups/devices/changes?month=2025-07&cooperation=hallinghelse")
        .await;
    let mut left = 0;
    for (k, row) in july["rows"].as_array().expect("rows").iter().enumerate() {
        let lines = row["lines"].as_array().expect("lines");
        let sum: i64 = lines
            .iter()
            .map(|l| l["delta"].as_i64().expect("delta"))
            .sum();
        let before = hallinghelse["rows"][k]["counts"][5].as_i64().expect("n");
        let after = hallinghelse["rows"][k]["counts"][6].as_i64().expect("n");
        assert_eq!(sum, after - before, "July {}", row["kind"]);
        left -= lines
            .iter()
            .filter(|l| l["cause"] == "municipality_left")
            .map(|l| l["delta"].as_i64().expect("delta"))
            .sum::<i64>();
    }
    assert!(
        left > 0 && left <= nesbyen["total"][5].as_i64().expect("n"),
        "{left} of Nesbyen's devices left with it"
    );

    // Recipients beside devices: never more recipients than devices.
    for (k, row) in table["recipients"]["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .enumerate()
    {
        for m in 0..12 {
            let recipients = row["counts"][m].as_u64().expect("n");
            assert!(
                recipients > 0 && recipients <= table["rows"][k]["counts"][m].as_u64().expect("n")
            );
        }
    }

    // A municipality token: every figure endpoint answers for Ål exactly what the coordinator
    // gets when asking for Ål, and refuses another municipality.
    for path in [
        "/api/v1/rollups/devices?year=2025",
        "/api/v1/rollups/devices/changes?month=2025-11",
        "/api/v1/rollups/response-centre?year=2025",
        "/api/v1/rollups/medication?year=2025",
        "/api/v1/devices?limit=1000",
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let own = get_json(&format!("{}{path}", s.vft.api), &s.aal).await;
        let asked = get_json(
            &format!("{}{path}{sep}municipality=3328", s.vft.api),
            &s.coordinator,
        )
        .await;
        let region = get_json(&format!("{}{path}", s.vft.api), &s.coordinator).await;
        assert_eq!(own, asked, "{path}");
        assert_ne!(own, region, "{path}: the region is more than Ål");
        let other = get(
            &format!("{}{path}{sep}municipality=3324", s.vft.api),
            Some(&s.aal),
        )
        .await;
        assert_eq!(other.status(), 403, "{path}");
    }
    let devices = get_json(&format!("{}/api/v1/devices?limit=1000", s.vft.api), &s.aal).await;
    assert!(
        devices["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|d| d["municipality"] == "3328")
    );
    let medication = s.get("/api/v1/rollups/medication?year=2025").await;
    assert!(medication["months"][0]["taken"].as_u64().expect("n") > 0);

    // Ended months' attributions (all were asked above) follow a late
    // install: March gains it as an installed line, April starts from it.
    let tracking = 2;
    let march = s.get("/api/v1/rollups/devices/changes?month=2025-03").await;
    let april = s.get("/api/v1/rollups/devices/changes?month=2025-04").await;
    s.publish(&[installed(
        "late-install",
        "2025-03-15T10:00:00+01:00",
        "3328",
        "LATE-1",
        "tracking",
    )])
    .await;
    let before = table["rows"][tracking]["counts"][2].as_u64().expect("n");
    eventually(
        "the late install in March",
        std::time::Duration::from_secs(60),
        || async {
            let t = s.get("/api/v1/rollups/devices?year=2025").await;
            (t["rows"][tracking]["counts"][2].as_u64()? == before + 1).then_some(())
        },
    )
    .await;
    let march_after = s.get("/api/v1/rollups/devices/changes?month=2025-03").await;
    let (was, now) = (&march["rows"][tracking], &march_after["rows"][tracking]);
    assert_eq!(now["after"].as_i64(), was["after"].as_i64().map(|n| n + 1));
    assert_eq!(now["delta"].as_i64(), was["delta"].as_i64().map(|n| n + 1));
    let installed_line = now["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["cause"] == "installed")
        .expect("an installed line");
    assert!(
        installed_line["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .any(|d| d["device"] == "LATE-1"),
        "{installed_line}"
    );
    let april_after = s.get("/api/v1/rollups/devices/changes?month=2025-04").await;
    assert_eq!(
        april_after["rows"][tracking]["before"].as_i64(),
        april["rows"][tracking]["before"].as_i64().map(|n| n + 1)
    );
    // February ended before the event: its attribution stands.
    let february = s.get("/api/v1/rollups/devices/changes?month=2025-02").await;
    let table_after = s.get("/api/v1/rollups/devices?year=2025").await;
    assert_eq!(
        february["rows"][tracking]["after"],
        table_after["rows"][tracking]["counts"][1]
    );
}

/// Removals split by why they left, by hand: four safety alarms leave Ål in March 2025 (two
/// recipients died, one unit broke, one left without a reason given), one is installed, and a
/// unit removed as broken on 3 March and put back on 20 March is not a removal at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_are_explained_by_their_reasons() {
    let s = start().await;
    let installed = |id: &str, device: &str, ts: &str| {
        let mut e = ev(id, ts, "3328", device, "installed");
        e["kind"] = "safety_alarm".into();
        e
    };
    let gone = |id: &str, device: &str, ts: &str, reason: Option<&str>| {
        let mut e = ev(id, ts, "3328", device, "decommissioned");
        if let Some(r) = reason {
            e["reason"] = r.into();
        }
        e
    };
    let mut events: Vec<Value> = ["R1", "R2", "R3", "R4", "R5"]
        .iter()
        .enumerate()
        .map(|(i, d)| installed(&format!("in-{i}"), d, "2025-02-10T10:00:00+01:00"))
        .collect();
    events.extend([
        gone("out-1", "R1", "2025-03-04T10:00:00+01:00", Some("deceased")),
        gone("out-2", "R2", "2025-03-11T10:00:00+01:00", Some("deceased")),
        gone("out-3", "R3", "2025-03-31T23:30:00+02:00", Some("broken")),
        gone("out-4", "R4", "2025-03-15T10:00:00+01:00", None),
        gone("out-5", "R5", "2025-03-03T10:00:00+01:00", Some("broken")),
        installed("back-5", "R5", "2025-03-20T10:00:00+01:00"),
        installed("in-new", "R6", "2025-03-25T10:00:00+01:00"),
        // A reason on anything but a removal is refused (a dead letter, not an event).
        {
            let mut e = installed("bad", "R7", "2025-03-26T10:00:00+01:00");
            e["reason"] = "lost".into();
            e
        },
    ]);
    s.publish(&events).await;
    s.wait_events(events.len() as u64 - 1).await;
    let march = s.get("/api/v1/rollups/devices/changes?month=2025-03").await;
    let row = march["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["kind"] == "safety_alarm")
        .expect("safety alarms");
    let lines: Vec<(String, Option<String>, i64, Vec<String>)> = row["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["cause"].as_str().expect("cause").to_owned(),
                l["reason"].as_str().map(str::to_owned),
                l["delta"].as_i64().expect("delta"),
                l["devices"]
                    .as_array()
                    .expect("devices")
                    .iter()
                    .map(|d| d["device"].as_str().expect("device").to_owned())
                    .collect(),
            )
        })
        .collect();
    let line = |cause: &str, reason: Option<&str>, delta: i64, devices: &[&str]| {
        (
            cause.to_owned(),
            reason.map(str::to_owned),
            delta,
            devices.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        lines,
        vec![
            line("installed", None, 1, &["R6"]),
            line("decommissioned", Some("deceased"), -2, &["R1", "R2"]),
            line("decommissioned", Some("broken"), -1, &["R3"]),
            line("decommissioned", Some("not_given"), -1, &["R4"]),
        ],
        "{row}"
    );
    assert_eq!(
        (row["before"].as_i64(), row["after"].as_i64()),
        (Some(5), Some(2))
    );
    assert_eq!(row["delta"], -3);
    assert_eq!(
        lines.iter().map(|l| l.2).sum::<i64>(),
        -3,
        "the lines add up"
    );
    // The device's history shows why it left.
    let history = s.get("/api/v1/devices/hepro/R1").await;
    let removal = history["history"]
        .as_array()
        .expect("history")
        .iter()
        .find(|e| e["type"] == "decommissioned")
        .expect("the removal");
    assert_eq!(removal["reason"], "deceased");
    let dead = s.get("/api/v1/dead-letters").await;
    assert!(
        dead["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|d| d["reason"].as_str().is_some_and(|r| r.contains("reason"))),
        "{dead}"
    );
}

/// CSV for Norwegian spreadsheets on a switch (`format=excel`): the same cells as the plain
/// CSV, with semicolons, CRLF and a byte-order mark; downloads are named by scope and date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_downloads_for_norwegian_spreadsheets() {
    let s = start().await;
    let mut e = ev(
        "x-1",
        "2025-03-01T10:00:00+01:00",
        "3328",
        "SX1",
        "installed",
    );
    e["kind"] = "safety_alarm".into();
    e["recipient"] = "r-x".into();
    s.publish(&[e]).await;
    s.wait_events(1).await;
    let fetch = |query: &str| {
        let url = format!(
            "{}/api/v1/rollups/devices?year=2025&municipality=3328{query}",
            s.vft.api
        );
        let token = s.coordinator.clone();
        async move {
            let resp = get(&url, Some(&token)).await;
            assert_eq!(resp.status(), 200, "{url}");
            let name = resp
                .headers()
                .get("content-disposition")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (name, resp.bytes().await.expect("body").to_vec())
        }
    };
    let (plain_name, plain) = fetch("&format=csv").await;
    let (excel_name, excel) = fetch("&format=excel").await;
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Oslo)
        .format("%Y-%m-%d")
        .to_string();
    assert!(
        plain_name.contains(&format!("vft-tabell-2025-3328-{today}.csv")),
        "{plain_name}"
    );
    assert!(
        excel_name.contains(&format!("vft-tabell-2025-3328-{today}-excel.csv")),
        "{excel_name}"
    );
    assert!(
        excel.starts_with("\u{feff}".as_bytes()),
        "a byte-order mark"
    );
    assert!(!plain.starts_with("\u{feff}".as_bytes()));
    let text = String::from_utf8(excel[3..].to_vec()).expect("UTF-8");
    assert!(text.contains("\r\n") && text.contains(';'), "{text}");
    let cells = |body: &[u8], sep: u8| -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .delimiter(sep)
            .has_headers(false)
            .from_reader(body)
            .records()
            .map(|r| r.expect("row").iter().map(str::to_owned).collect())
            .collect()
    };
    assert_eq!(
        cells(&excel[3..], b';'),
        cells(&plain, b','),
        "the same cells"
    );
    let devices = get(
        &format!(
            "{}/api/v1/devices?municipality=3328&format=excel",
            s.vft.api
        ),
        Some(&s.coordinator),
    )
    .await;
    let name = devices
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        name.contains(&format!("vft-enheter-3328-{today}-excel.csv")),
        "{name}"
    );
    let bad = get(
        &format!("{}/api/v1/rollups/devices?year=2025&format=xls", s.vft.api),
        Some(&s.coordinator),
    )
    .await;
    assert_eq!(bad.status(), 400);
}

/// The vendors' service level against a hand-computed example: a Hepro unit silent across the
/// May → June boundary (and one fault), an Atea unit installed and removed within June with
/// two alarms (answered after 45 s and 200 s); both with a 24-hour timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_service_level_matches_a_hand_computed_example() {
    let s = start().await;
    let on = |vendor: &str, id: &str, ts: &str, device: &str, t: &str| {
        let mut e = ev(id, ts, "3328", device, t);
        e["vendor_topic"] = vendor.into();
        e
    };
    let mut hepro: Vec<Value> = Vec::new();
    let mut install = on("hepro", "h-in", "2025-01-10T10:00:00Z", "H1", "installed");
    install["kind"] = "safety_alarm".into();
    hepro.push(install);
    // Daily from the first instant of May (2025-04-30T22:00Z) to 2025-05-20T22:00Z.
    let may_start = chrono::DateTime::parse_from_rfc3339("2025-04-30T22:00:00Z").expect("ts");
    for d in 0..=20 {
        let ts = (may_start + chrono::Duration::days(d)).to_rfc3339();
        hepro.push(on("hepro", &format!("h-hb-{d}"), &ts, "H1", "heartbeat"));
    }
    // Then nothing until a fault report on 2025-06-05T22:00Z.
    hepro.push(on(
        "hepro",
        "h-fault",
        "2025-06-05T22:00:00Z",
        "H1",
        "fault",
    ));
    let mut atea: Vec<Value> = Vec::new();
    let mut a_in = on("atea", "a-in", "2025-06-01T08:00:00Z", "A1", "installed");
    a_in["kind"] = "safety_alarm".into();
    atea.push(a_in);
    atea.push(on(
        "atea",
        "a-hb-1",
        "2025-06-02T08:00:00Z",
        "A1",
        "heartbeat",
    ));
    for (n, ack) in [(1, "2025-06-10T08:00:45Z"), (2, "2025-06-10T08:03:20Z")] {
        let mut trig = on(
            "atea",
            &format!("a-al-{n}"),
            "2025-06-10T08:00:00Z",
            "A1",
            "alarm",
        );
        trig["alarm"] = format!("AL-{n}").into();
        trig["cause"] = "button".into();
        atea.push(trig);
        let mut answered = on(
            "atea",
            &format!("a-ack-{n}"),
            ack,
            "A1",
            "alarm_acknowledged",
        );
        answered["alarm"] = format!("AL-{n}").into();
        atea.push(answered);
    }
    atea.push(on(
        "atea",
        "a-out",
        "2025-06-16T08:00:00Z",
        "A1",
        "decommissioned",
    ));
    let mut p = Publisher::connect(&s.broker, "service-level").await;
    for (vendor, events) in [("hepro", &hepro), ("atea", &atea)] {
        for e in events {
            let mut e = e.clone();
            e.as_object_mut().expect("object").remove("vendor_topic");
            p.publish(&format!("vft/v1/{vendor}/gw-1/events"), e.to_string())
                .await;
        }
    }
    p.wait_all_acked(std::time::Duration::from_secs(120)).await;
    p.disconnect().await;
    s.wait_events((hepro.len() + atea.len()) as u64).await;
    for (vendor, device) in [("hepro", "H1"), ("atea", "A1")] {
        let resp = reqwest::Client::new()
            .put(format!(
                "{}/api/v1/devices/{vendor}/{device}/timeout",
                s.vft.api
            ))
            .bearer_auth(&s.coordinator)
            .json(&json!({ "timeout_secs": 86_400 }))
            .send()
            .await
            .expect("PUT timeout");
        assert_eq!(resp.status(), 200);
    }

    let june = s.get("/api/v1/rollups/vendor-service?month=2025-06").await;
    let row = |view: &Value, vendor: &str| {
        view["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["vendor"] == vendor)
            .cloned()
            .unwrap_or_else(|| panic!("{vendor} in {view}"))
    };
    let close = |v: &Value, expected: f64| {
        let got = v.as_f64().expect("a number");
        assert!((got - expected).abs() < 0.006, "{got} ≠ {expected}");
    };
    // Hepro: 720 h in June; silent from the month's first instant to the fault (120 h), then
    // from a day after it to the month's end (576 h).
    let h = row(&june, "hepro");
    assert_eq!(
        (h["devices"].as_u64(), h["faults"].as_u64()),
        (Some(1), Some(1))
    );
    close(&h["hours_in_service"], 720.0);
    close(&h["hours_without_contact"], 120.0 + 576.0);
    close(&h["availability"], 1.0 - 696.0 / 720.0);
    assert_eq!(h["alarms"], 0);
    // Atea: in service 06-01T08 to 06-16T08 (360 h); silent 06-03T08 to 06-10T08 (168 h), and
    // from a day after the last answer (06-10T08:03:20) to the removal (120 h − 200 s).
    let a = row(&june, "atea");
    let silent = 168.0 + 120.0 - 200.0 / 3600.0;
    assert_eq!(
        (a["devices"].as_u64(), a["faults"].as_u64()),
        (Some(1), Some(0))
    );
    close(&a["hours_in_service"], 360.0);
    close(&a["hours_without_contact"], silent);
    close(&a["availability"], 1.0 - silent / 360.0);
    assert_eq!(a["alarms"], 2);
    close(&a["share_within_60s"], 0.5);
    close(&a["share_within_180s"], 0.5);
    // May: the same Hepro unit, silent from a day after 05-20T22 to the end of May.
    let may = s.get("/api/v1/rollups/vendor-service?month=2025-05").await;
    let h = row(&may, "hepro");
    close(&h["hours_in_service"], 744.0);
    close(&h["hours_without_contact"], 240.0);
    assert!(
        may["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["vendor"] != "atea"),
        "nothing of Atea's in May: {may}"
    );
    // Another municipality sees neither; the CSV has the same numbers.
    let hol = s
        .get("/api/v1/rollups/vendor-service?month=2025-06&municipality=3330")
        .await;
    assert_eq!(hol["rows"], json!([]), "{hol}");
    // A municipality the region does not have is a clear error, not an empty table.
    let unknown = get(
        &format!(
            "{}/api/v1/rollups/vendor-service?month=2025-06&municipality=9999",
            s.vft.api
        ),
        Some(&s.coordinator),
    )
    .await;
    assert_eq!(unknown.status(), 400);
    let why = unknown.text().await.expect("body");
    assert!(why.contains("unknown municipality 9999"), "{why}");
    let csv = get(
        &format!(
            "{}/api/v1/rollups/vendor-service?month=2025-06&format=csv",
            s.vft.api
        ),
        Some(&s.coordinator),
    )
    .await
    .text()
    .await
    .expect("csv");
    assert!(
        csv.starts_with("month,vendor,devices,hours_in_service"),
        "{csv}"
    );
    assert!(csv.contains("2025-06,hepro,1,720,696,"), "{csv}");
}
