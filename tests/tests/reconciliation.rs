//! End to end: the Hepro → Atea transition. Canonical events of both vendors through a real
//! broker, both example inventory exports through the import API, and every class of the
//! reconciliation checked on a hand-built scenario (a recipient who moves municipality during
//! the migration, a device replaced the day it migrates), on SQLite and PostgreSQL.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(120);

struct Server {
    vft: VftProcess,
    broker: BrokerUnderTest,
    coordinator: String,
    aal: String,
    scratch: Scratch,
}

async fn start_on(scratch: Scratch) -> Server {
    let db = scratch.database_url();
    let port = free_port();
    let mqtt = format!("127.0.0.1:{port}");
    let vft = VftProcess::spawn(
        &[
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--mqtt-addr",
            &mqtt,
            "--database-url",
            &db,
        ],
        scratch.dir.path(),
    );
    let coordinator = create_token(&db, scratch.dir.path(), &["--role", "coordinator"]);
    let aal = create_token(
        &db,
        scratch.dir.path(),
        &["--role", "municipality", "--municipality", "3328"],
    );
    eventually("readyz", WAIT, || async {
        (get(&format!("{}/readyz", vft.api), None).await.status() == 200).then_some(())
    })
    .await;
    Server {
        vft,
        broker: BrokerUnderTest {
            port,
            credentials: None,
        },
        coordinator,
        aal,
        scratch,
    }
}

impl Server {
    async fn get(&self, path: &str) -> Value {
        get_json(&format!("{}{path}", self.vft.api), &self.coordinator).await
    }

    async fn import(&self, vendor: &str, as_of: &str, file: &str) -> Value {
        let bytes =
            std::fs::read(workspace_root().join("config/imports").join(file)).expect("read");
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/api/v1/imports/{vendor}?as_of={as_of}",
                self.vft.api
            ))
            .bearer_auth(&self.coordinator)
            .header("content-type", "text/csv")
            .body(bytes)
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), 200, "import {file}");
        resp.json().await.expect("json")
    }

    async fn publish(&self, vendor: &str, events: &[Value]) {
        let mut p = Publisher::connect(&self.broker, &format!("gw-{vendor}")).await;
        for e in events {
            p.publish(
                &format!("vft/v1/{vendor}/gw-{vendor}/events"),
                e.to_string(),
            )
            .await;
        }
        p.wait_all_acked(WAIT).await;
        p.disconnect().await;
    }
}

fn ev(id: &str, ts: &str, municipality: &str, device: &str, t: &str) -> Value {
    json!({ "id": id, "ts": ts, "municipality": municipality, "device": device, "type": t })
}

fn install(
    id: &str,
    ts: &str,
    m: &str,
    device: &str,
    kind: &str,
    recipient: Option<&str>,
) -> Value {
    let mut e = ev(id, ts, m, device, "installed");
    e["kind"] = kind.into();
    if let Some(r) = recipient {
        e["recipient"] = r.into();
    }
    e
}

fn heartbeat(device: &str, m: &str) -> Value {
    ev(
        &format!("hb-{device}"),
        "2025-12-30T10:00:00+01:00",
        m,
        device,
        "heartbeat",
    )
}

const SA: &str = "safety_alarm";
const MD: &str = "medication_support";

/// The scenario (the example exports in config/imports list the same fleet as of 1 and 15
/// December, with their own mistakes).
fn hepro_events() -> Vec<Value> {
    vec![
        // r-mig: Hepro alarm ended 1 Oct, Atea alarm since 28 Sep.
        install(
            "h1",
            "2025-01-10T10:00:00+01:00",
            "3324",
            "H1001",
            SA,
            Some("r-mig"),
        ),
        ev(
            "h1d",
            "2025-10-01T12:00:00+02:00",
            "3324",
            "H1001",
            "decommissioned",
        ),
        // r-pend: still on Hepro only.
        install(
            "h2",
            "2025-02-01T10:00:00+01:00",
            "3324",
            "H1002",
            SA,
            Some("r-pend"),
        ),
        heartbeat("H1002", "3324"),
        // r-dbl: Atea since 1 Nov, Hepro never collected: double after 30 days.
        install(
            "h3",
            "2025-03-01T10:00:00+01:00",
            "3328",
            "H1003",
            SA,
            Some("r-dbl"),
        ),
        heartbeat("H1003", "3328"),
        // r-ovl: Atea since 20 Dec, within the grace period: still pending.
        install(
            "h4",
            "2025-03-01T10:00:00+01:00",
            "3328",
            "H1004",
            SA,
            Some("r-ovl"),
        ),
        heartbeat("H1004", "3328"),
        // r-move: Hepro in Gol until 15 Nov, then Atea in Ål (moved during the migration).
        install(
            "h6",
            "2025-01-05T10:00:00+01:00",
            "3324",
            "H1006",
            SA,
            Some("r-move"),
        ),
        ev(
            "h6d",
            "2025-11-15T10:00:00+01:00",
            "3324",
            "H1006",
            "decommissioned",
        ),
        // r-rep: Hepro dispenser ended the morning Atea's was installed.
        install(
            "h7",
            "2025-01-05T10:00:00+01:00",
            "3330",
            "H1007",
            MD,
            Some("r-rep"),
        ),
        ev(
            "h7d",
            "2025-10-01T09:00:00+02:00",
            "3330",
            "H1007",
            "decommissioned",
        ),
        // No recipient, reports, but missing from Hepro's export.
        install(
            "h10",
            "2025-04-01T10:00:00+02:00",
            "3326",
            "H1010",
            "smoke_detector",
            None,
        ),
        heartbeat("H1010", "3326"),
    ]
}

fn atea_events() -> Vec<Value> {
    let mut a8 = install(
        "a8",
        "2025-10-01T15:00:00+02:00",
        "3330",
        "A2008",
        MD,
        Some("r-rep"),
    );
    a8["replaces"] = "A2007".into();
    vec![
        install(
            "a1",
            "2025-09-28T10:00:00+02:00",
            "3324",
            "A2001",
            SA,
            Some("r-mig"),
        ),
        heartbeat("A2001", "3324"),
        install(
            "a3",
            "2025-11-01T10:00:00+01:00",
            "3328",
            "A2003",
            SA,
            Some("r-dbl"),
        ),
        heartbeat("A2003", "3328"),
        // Installed after Atea's export of 15 Dec: reports, unlisted.
        install(
            "a4",
            "2025-12-20T10:00:00+01:00",
            "3328",
            "A2004",
            SA,
            Some("r-ovl"),
        ),
        heartbeat("A2004", "3328"),
        // Never on Hepro; listed, but silent.
        install(
            "a5",
            "2025-06-01T10:00:00+02:00",
            "3320",
            "A2005",
            SA,
            Some("r-new"),
        ),
        install(
            "a6",
            "2025-11-15T10:00:00+01:00",
            "3328",
            "A2006",
            SA,
            Some("r-move"),
        ),
        heartbeat("A2006", "3328"),
        // Dead on arrival the day of the migration, replaced the same afternoon; Atea's
        // export still lists the dead unit.
        install(
            "a7",
            "2025-10-01T09:00:00+02:00",
            "3330",
            "A2007",
            MD,
            Some("r-rep"),
        ),
        ev(
            "a7d",
            "2025-10-01T15:00:00+02:00",
            "3330",
            "A2007",
            "decommissioned",
        ),
        a8,
        heartbeat("A2008", "3330"),
    ]
}

/// `municipality kind class: subject [devices]; …` per row.
fn lines(report: &Value) -> Vec<String> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let subjects: Vec<String> = r["subjects"]
                .as_array()
                .expect("subjects")
                .iter()
                .map(|s| {
                    let key = match &s["key"] {
                        Value::Object(k) if k.contains_key("recipient") => {
                            k["recipient"].as_str().expect("r").to_owned()
                        }
                        Value::Object(k) => format!(
                            "{}/{}",
                            k["device"][0].as_str().expect("v"),
                            k["device"][1].as_str().expect("d")
                        ),
                        other => panic!("key {other}"),
                    };
                    let devices: Vec<String> = s["devices"]
                        .as_array()
                        .expect("devices")
                        .iter()
                        .map(|d| {
                            format!(
                                "{}/{}",
                                d[0].as_str().expect("v"),
                                d[1].as_str().expect("d")
                            )
                        })
                        .collect();
                    format!("{key} [{}]", devices.join(" "))
                })
                .collect();
            assert_eq!(r["count"], subjects.len());
            format!(
                "{} {} {}: {}",
                r["municipality"].as_str().expect("m"),
                r["kind"].as_str().expect("k"),
                r["class"].as_str().expect("c"),
                subjects.join("; ")
            )
        })
        .collect()
}

const EXPECTED: [&str; 13] = [
    "3320 safety_alarm new: r-new [atea/A2005]",
    "3320 safety_alarm listed_silent: atea/A2005 [atea/A2005]; hepro/H1009 [hepro/H1009]",
    "3324 safety_alarm migrated: r-mig [atea/A2001 hepro/H1001]",
    "3324 safety_alarm pending: r-pend [hepro/H1002]",
    // Hepro still lists the unit it took back on 15 Nov.
    "3324 safety_alarm listed_silent: hepro/H1006 [hepro/H1006]",
    "3326 smoke_detector pending: hepro/H1010 [hepro/H1010]",
    "3326 smoke_detector reporting_unlisted: hepro/H1010 [hepro/H1010]",
    // Counted once, where the recipient lives now.
    "3328 safety_alarm migrated: r-move [atea/A2006 hepro/H1006]",
    "3328 safety_alarm pending: r-ovl [atea/A2004 hepro/H1004]",
    "3328 safety_alarm double: r-dbl [atea/A2003 hepro/H1003]",
    "3328 safety_alarm reporting_unlisted: atea/A2004 [atea/A2004]",
    // The same-day replacement: one migrated service, the replacement in service.
    "3330 medication_support migrated: r-rep [atea/A2008 hepro/H1007]",
    "3330 medication_support listed_silent: atea/A2007 [atea/A2007]",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_class_of_the_reconciliation_on_a_hand_built_scenario() {
    scenario_on(Scratch::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_class_of_the_reconciliation_on_a_hand_built_scenario_on_postgres() {
    if let Some(scratch) = Scratch::postgres().await {
        scenario_on(scratch).await
    }
}

async fn scenario_on(scratch: Scratch) {
    let s = start_on(scratch).await;
    let (hepro, atea) = (hepro_events(), atea_events());
    s.publish("hepro", &hepro).await;
    s.publish("atea", &atea).await;
    let db = s.scratch.database_url();
    let store = vft_store::open(&db, &Default::default())
        .await
        .expect("store");
    let total = (hepro.len() + atea.len()) as u64;
    eventually("events stored", WAIT, || async {
        (store.event_count().await.ok()? == total).then_some(())
    })
    .await;

    // The broken Windows-1252 example: every problem reported by line, valid rows kept.
    let h = s.import("hepro", "2025-12-01", "hepro.example.csv").await;
    assert_eq!(h["new"], true);
    assert_eq!(h["rows"], 7);
    assert_eq!(h["duplicates"], json!([9]));
    let errors: Vec<(u64, Value)> = h["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| (e["line"].as_u64().expect("line"), e["column"].clone()))
        .collect();
    assert_eq!(
        errors,
        [
            (10, json!("Produkt")),
            (11, json!("Kommunenr")),
            (12, json!("Brukerref")),
            (13, json!("Installert")),
            (14, Value::Null),
        ]
    );
    let a = s.import("atea", "2025-12-15", "atea.example.csv").await;
    assert_eq!(
        (a["new"].clone(), a["rows"].clone()),
        (json!(true), json!(7))
    );
    assert_eq!(a["errors"][0]["line"], 8, "the invalid UTF-8 line");
    assert!(
        a["errors"][0]["reason"]
            .as_str()
            .expect("reason")
            .contains("UTF-8")
    );

    // Importing the broken file again changes nothing, through the API and through the CLI.
    let history = s.get("/api/v1/imports").await;
    assert_eq!(history["imports"].as_array().expect("imports").len(), 2);
    let again = s.import("hepro", "2025-12-01", "hepro.example.csv").await;
    assert_eq!(
        (again["new"].clone(), again["import_id"].clone()),
        (json!(false), h["import_id"].clone())
    );
    let file = workspace_root().join("config/imports/hepro.example.csv");
    let cwd = s.scratch.dir.path();
    let out = vft_cli(
        &[
            "import",
            "inventory",
            "--vendor",
            "hepro",
            "--as-of",
            "2025-12-01",
            "--database-url",
            &db,
            file.to_str().expect("path"),
        ],
        cwd,
    )
    .expect("vft import");
    assert!(out.contains("line 12: Brukerref:"), "{out}");
    assert!(!out.contains("01019012480"), "{out}");
    assert!(out.contains("line 9: duplicate"), "{out}");
    assert!(
        out.contains("7 rows kept, 5 errors, 1 duplicate lines; already imported"),
        "{out}"
    );
    assert_eq!(s.get("/api/v1/imports").await, history);
    let hepro_history = s.get("/api/v1/imports?vendor=hepro").await;
    assert_eq!(hepro_history["imports"][0]["rows"], 7);
    assert_eq!(hepro_history["imports"][0]["errors"], 5);
    assert_eq!(
        hepro_history["imports"].as_array().expect("imports").len(),
        1
    );

    // Every class, exact.
    let path = "/api/v1/reconciliation?from=hepro&to=atea&at=2025-12-31";
    let report = s.get(path).await;
    assert_eq!(lines(&report), EXPECTED);
    assert_eq!(
        report["totals"],
        json!({"migrated": 3, "pending": 3, "double": 1, "new": 1, "listed_silent": 4, "reporting_unlisted": 2})
    );

    // Before the exports existed nothing is listed, so no export flags.
    let november = s
        .get("/api/v1/reconciliation?from=hepro&to=atea&at=2025-11-30")
        .await;
    assert!(
        lines(&november)
            .iter()
            .all(|l| !l.contains("listed_silent") && !l.contains("reporting_unlisted")),
        "{:?}",
        lines(&november)
    );

    // CSV: one line per subject.
    let csv = get(
        &format!("{}{path}&format=csv", s.vft.api),
        Some(&s.coordinator),
    )
    .await
    .text()
    .await
    .expect("csv");
    let csv_lines: Vec<&str> = csv.lines().collect();
    assert_eq!(csv_lines[0], "municipality,kind,class,subject,devices");
    assert_eq!(csv_lines.len(), 1 + 14);
    assert!(csv_lines.contains(&"3328,safety_alarm,migrated,r-move,atea/A2006 hepro/H1006"));

    // Ål's token: its own municipality only.
    let own = get_json(&format!("{}{path}", s.vft.api), &s.aal).await;
    let expected_aal: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|l| l.starts_with("3328 "))
        .collect();
    assert_eq!(lines(&own), expected_aal);
    let other = get(
        &format!("{}{path}&municipality=3324", s.vft.api),
        Some(&s.aal),
    )
    .await;
    assert_eq!(other.status(), 403);
    let progress = get(
        &format!(
            "{}/api/v1/reconciliation/progress?from=hepro&to=atea&year=2025&municipality=3324",
            s.vft.api
        ),
        Some(&s.aal),
    )
    .await;
    assert_eq!(progress.status(), 403);
    let forbidden = reqwest::Client::new()
        .post(format!("{}/api/v1/imports/hepro", s.vft.api))
        .bearer_auth(&s.aal)
        .body("x")
        .send()
        .await
        .expect("POST");
    assert_eq!(forbidden.status(), 403, "imports are the coordinator's");

    // Migration progress month by month.
    let progress = s
        .get("/api/v1/reconciliation/progress?from=hepro&to=atea&year=2025")
        .await;
    let month = |m: &str, muni: &str| {
        progress["progress"]
            .as_array()
            .expect("progress")
            .iter()
            .find(|p| p["month"] == m && p["municipality"] == muni)
            .map(|p| {
                (
                    p["migrated"].clone(),
                    p["pending"].clone(),
                    p["double"].clone(),
                    p["new"].clone(),
                )
            })
            .unwrap_or_else(|| panic!("no {muni} {m} in {progress}"))
    };
    assert_eq!(
        month("2025-09", "3324"),
        (json!(0), json!(3), json!(0), json!(0))
    );
    assert_eq!(
        month("2025-12", "3324"),
        (json!(1), json!(1), json!(0), json!(0))
    );
    assert_eq!(
        month("2025-12", "3328"),
        (json!(1), json!(1), json!(1), json!(0))
    );
    assert_eq!(
        month("2025-10", "3330"),
        (json!(1), json!(0), json!(0), json!(0))
    );

    // Unknown vendor format.
    let unknown = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/imports/telenor?as_of=2025-12-01",
            s.vft.api
        ))
        .bearer_auth(&s.coordinator)
        .body("a,b\n")
        .send()
        .await
        .expect("POST");
    assert_eq!(unknown.status(), 400);

    // The CLI agrees with the API.
    let cli = vft_cli(
        &[
            "reconcile",
            "--from",
            "hepro",
            "--to",
            "atea",
            "--at",
            "2025-12-31",
            "--format",
            "json",
            "--database-url",
            &db,
        ],
        cwd,
    )
    .expect("vft reconcile");
    let cli: Value = serde_json::from_str(&cli).expect("json");
    assert_eq!(cli, report);
    let table = vft_cli(
        &[
            "reconcile",
            "--from",
            "hepro",
            "--to",
            "atea",
            "--at",
            "2025-12-31",
            "--municipality",
            "3328",
            "--database-url",
            &db,
        ],
        cwd,
    )
    .expect("vft reconcile");
    assert!(table.contains("double"), "{table}");
    assert!(!table.contains("3324"), "{table}");
}
