//! End to end: the Hepro → Atea transition. Both vendors' events through a real broker (as
//! canonical events, and again in each vendor's own format through its example adapter), both
//! example inventory exports through the import API, and every class of the reconciliation
//! checked on a hand-built scenario (a recipient who moves municipality during the migration, a
//! device replaced the day it migrates), on SQLite and PostgreSQL.

mod support;

use chrono::DateTime;
use chrono_tz::Tz;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::time::Duration;
use support::*;
use vft_domain::adapter::{AdapterConfig, DeviceIdRules, TimeFormat};

const WAIT: Duration = Duration::from_secs(120);

/// How the scenario's events reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// Contract 1 events on `vft/v1/{vendor}/{gateway}/events`.
    Canonical,
    /// Each vendor's own format on its own topic, through the example adapters in
    /// `config/adapters/` (the server is configured with `adapter_files`).
    Vendor,
}

struct Server {
    vft: VftProcess,
    broker: BrokerUnderTest,
    coordinator: String,
    aal: String,
    scratch: Scratch,
    /// The adapters the server was configured with; empty for [`Format::Canonical`].
    adapters: Vec<AdapterConfig>,
}

fn example_adapter_files() -> Vec<PathBuf> {
    let dir = workspace_root().join("config/adapters");
    vec![
        dir.join("hepro.example.toml"),
        dir.join("atea.example.toml"),
    ]
}

async fn start_on(scratch: Scratch, format: Format) -> Server {
    let db = scratch.database_url();
    let mut config_args: Vec<String> = Vec::new();
    let mut adapters = Vec::new();
    if format == Format::Vendor {
        let files = example_adapter_files();
        let list: Vec<String> = files
            .iter()
            .map(|f| format!("{:?}", f.display().to_string()))
            .collect();
        let config_path = scratch.dir.path().join("vft.toml");
        std::fs::write(
            &config_path,
            format!("adapter_files = [{}]\n", list.join(", ")),
        )
        .expect("write config");
        config_args = vec!["--config".into(), config_path.display().to_string()];
        adapters = files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f).expect("example adapter");
                let adapter: AdapterConfig = toml::from_str(&text).expect("adapter toml");
                adapter.validate().expect("valid example adapter");
                adapter
            })
            .collect();
    }
    let config_args: Vec<&str> = config_args.iter().map(String::as_str).collect();
    let (vft, broker) = spawn_vft("serve", &db, scratch.dir.path(), None, &config_args, &[]);
    let token_args = |role: &[&'static str]| -> Vec<&str> {
        config_args
            .iter()
            .copied()
            .chain(role.iter().copied())
            .collect()
    };
    let coordinator = create_token(
        &db,
        scratch.dir.path(),
        &token_args(&["--role", "coordinator"]),
    );
    let aal = create_token(
        &db,
        scratch.dir.path(),
        &token_args(&["--role", "municipality", "--municipality", "3328"]),
    );
    wait_ready(&vft.api).await;
    Server {
        vft,
        broker,
        coordinator,
        aal,
        scratch,
        adapters,
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

    /// Publishes canonical `events` of `vendor`: as they are, or (when the server runs with
    /// adapters) rendered into the vendor's own format, a few events per message.
    async fn publish(&self, vendor: &str, events: &[Value]) {
        let gateway = format!("gw-{vendor}");
        let mut p = Publisher::connect(&self.broker, &gateway).await;
        if self.adapters.is_empty() {
            for e in events {
                p.publish(&format!("vft/v1/{vendor}/{gateway}/events"), e.to_string())
                    .await;
            }
        } else {
            let adapter = self
                .adapters
                .iter()
                .find(|a| a.vendor.as_str() == vendor)
                .unwrap_or_else(|| panic!("no adapter for {vendor}"));
            let topic = vendor_topic(adapter, &gateway);
            for chunk in events.chunks(3) {
                let payload = vendor_message(adapter, chunk);
                p.publish(&topic, payload).await;
            }
        }
        p.wait_all_acked(WAIT).await;
        p.disconnect().await;
    }
}

// Rendering canonical events into a vendor's format, generically, by inverting its adapter
// configuration. Nothing here knows Hepro or Atea: if an example adapter stops mapping a field
// the scenario needs (or maps it differently from what its configuration says), the vendor
// variant of the scenario fails.

/// A topic the adapter's filter matches, with `gateway` in its gateway segment.
fn vendor_topic(adapter: &AdapterConfig, gateway: &str) -> String {
    let topic = adapter
        .topic
        .split('/')
        .enumerate()
        .map(|(i, s)| match s {
            "+" if i == adapter.gateway_segment => gateway,
            "+" => "any",
            literal => literal,
        })
        .collect::<Vec<_>>()
        .join("/");
    assert_eq!(
        adapter.matches(&topic).map(|g| g.to_string()).as_deref(),
        Some(gateway),
        "{topic} does not match {}",
        adapter.topic
    );
    topic
}

/// One vendor message carrying `events` at the adapter's `events_path`. Checks in-process that
/// the adapter maps it back to exactly `events`, so a failure names the field.
fn vendor_message(adapter: &AdapterConfig, events: &[Value]) -> String {
    let rendered: Vec<Value> = events.iter().map(|e| vendor_event(adapter, e)).collect();
    let mut message = Value::Null;
    if adapter.events_path.is_empty() {
        message = Value::Array(rendered);
    } else {
        set_path(&mut message, &adapter.events_path, Value::Array(rendered));
    }
    let text = message.to_string();
    let mapped: Vec<Value> = adapter
        .map(text.as_bytes())
        .into_iter()
        .map(|m| {
            m.unwrap_or_else(|(raw, e)| {
                panic!(
                    "{}: {e} in {}",
                    adapter.vendor,
                    String::from_utf8_lossy(&raw)
                )
            })
        })
        .collect();
    let same_instant = |events: &[Value]| -> Vec<Value> {
        events
            .iter()
            .map(|e| {
                let mut e = e.clone();
                let ts = DateTime::parse_from_rfc3339(e["ts"].as_str().expect("ts")).expect("ts");
                e["ts"] = ts.timestamp().into();
                e
            })
            .collect()
    };
    assert_eq!(
        same_instant(&mapped),
        same_instant(events),
        "{} adapter does not map {text} back to the scenario's events",
        adapter.vendor
    );
    text
}

/// One canonical event in the vendor's shape: each field written at the vendor path the adapter
/// reads it from, in the vendor's codes, time format and device-id spelling.
fn vendor_event(adapter: &AdapterConfig, event: &Value) -> Value {
    let mut out = Value::Object(Map::new());
    for (field, value) in event.as_object().expect("canonical event") {
        if let Some(constant) = adapter.constants.get(field) {
            assert_eq!(
                constant, value,
                "{}: `{field}` is the constant {constant}, cannot express {value}",
                adapter.vendor
            );
            continue;
        }
        let Some(path) = adapter.fields.get(field) else {
            panic!(
                "{}: the adapter cannot express `{field}` ({value}), which the scenario needs",
                adapter.vendor
            )
        };
        let vendor_value = match field.as_str() {
            "ts" => vendor_time(&adapter.time, value.as_str().expect("ts")),
            "device" | "replaces" => {
                vendor_device_id(&adapter.device_id, value.as_str().expect("device")).into()
            }
            _ => value.clone(),
        };
        let vendor_value = match adapter.value_maps.get(field) {
            None => vendor_value,
            Some(map) => {
                let text = vendor_value
                    .as_str()
                    .map_or_else(|| vendor_value.to_string(), str::to_owned);
                let code = map
                    .iter()
                    .find(|(_, canonical)| **canonical == text)
                    .map(|(code, _)| code.clone())
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: value_maps.{field} has no vendor code for {text:?}",
                            adapter.vendor
                        )
                    });
                Value::String(code)
            }
        };
        set_path(&mut out, path, vendor_value);
    }
    out
}

/// `ts` (RFC 3339) written the way the adapter reads it.
fn vendor_time(time: &TimeFormat, ts: &str) -> Value {
    let t = DateTime::parse_from_rfc3339(ts).expect("canonical ts");
    let zone: Option<Tz> = time
        .zone
        .as_deref()
        .map(|z| z.parse().expect("adapter time zone"));
    match (time.format.as_str(), zone) {
        ("unix_seconds", _) => t.timestamp().into(),
        ("unix_millis", _) => t.timestamp_millis().into(),
        ("rfc3339", Some(z)) => t.with_timezone(&z).to_rfc3339().into(),
        ("rfc3339", None) => t.to_rfc3339().into(),
        (pattern, Some(z)) => t.with_timezone(&z).format(pattern).to_string().into(),
        (pattern, None) => t.format(pattern).to_string().into(),
    }
}

/// A device id the way a vendor might write it, so that the adapter's rules (trim, uppercase,
/// strip prefix, remove characters) bring it back to `id`: the scenario's ids are already in
/// normalised form, and this undoes each rule the adapter declares.
fn vendor_device_id(rules: &DeviceIdRules, id: &str) -> String {
    assert_eq!(
        rules.apply(id),
        id,
        "scenario device id {id:?} is not in the adapter's normalised form"
    );
    let mut s = id.to_owned();
    if let (Some(c), Some((at, _))) = (
        rules.remove.as_deref().and_then(|r| r.chars().next()),
        s.char_indices().nth(1),
    ) {
        s.insert(at, c);
    }
    if let Some(prefix) = &rules.strip_prefix {
        s = format!("{prefix}{}{s}", if rules.trim { " " } else { "" });
    }
    if rules.uppercase {
        s = s.to_lowercase();
    }
    if rules.trim {
        s = format!(" {s} ");
    }
    if rules.apply(&s) == id {
        s
    } else {
        id.to_owned()
    }
}

/// Writes `value` at a dotted path, creating objects (and arrays for numeric segments).
fn set_path(target: &mut Value, path: &str, value: Value) {
    let segments: Vec<&str> = path.split('.').collect();
    let mut current = target;
    for (i, seg) in segments.iter().enumerate() {
        let next_is_index = segments
            .get(i + 1)
            .is_some_and(|s| s.parse::<usize>().is_ok());
        let fresh = || {
            if next_is_index { json!([]) } else { json!({}) }
        };
        if current.is_null() {
            *current = if seg.parse::<usize>().is_ok() {
                json!([])
            } else {
                json!({})
            };
        }
        current = match current {
            Value::Array(items) => {
                let index: usize = seg.parse().expect("array index");
                while items.len() <= index {
                    items.push(fresh());
                }
                &mut items[index]
            }
            Value::Object(fields) => fields.entry((*seg).to_owned()).or_insert_with(fresh),
            other => panic!("{path}: `{seg}` would go through {other}"),
        };
    }
    *current = value;
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
    scenario_on(Scratch::new(), Format::Canonical).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_class_of_the_reconciliation_on_a_hand_built_scenario_on_postgres() {
    if let Some(scratch) = Scratch::postgres().await {
        scenario_on(scratch, Format::Canonical).await;
    }
}

/// The same scenario with every event sent in its vendor's own format through the example
/// adapters (`config/adapters/{hepro,atea}.example.toml`) instead of as canonical events. The
/// example adapters map every canonical field the scenario uses (id, ts, municipality, device,
/// type, kind, recipient, replaces), so nothing is left out. Both variants run side by side and
/// must give the same reconciliation, progress, CSV and municipality view, exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_class_of_the_reconciliation_with_both_vendors_in_their_own_formats() {
    let (canonical, vendor) = tokio::join!(
        scenario_on(Scratch::new(), Format::Canonical),
        scenario_on(Scratch::new(), Format::Vendor),
    );
    assert_eq!(vendor.report, canonical.report);
    assert_eq!(vendor.november, canonical.november);
    assert_eq!(vendor.progress, canonical.progress);
    assert_eq!(vendor.csv, canonical.csv);
    assert_eq!(vendor.own, canonical.own);
}

/// What a scenario run answered, for comparing the two formats.
struct Answers {
    report: Value,
    november: Value,
    progress: Value,
    csv: String,
    own: Value,
}

async fn scenario_on(scratch: Scratch, format: Format) -> Answers {
    let s = start_on(scratch, format).await;
    let (hepro, atea) = (hepro_events(), atea_events());
    s.publish("hepro", &hepro).await;
    s.publish("atea", &atea).await;
    let db = s.scratch.database_url();
    let store = vft_store::open(&db, &Default::default())
        .await
        .expect("store");
    let total = (hepro.len() + atea.len()) as u64;
    eventually("events stored", WAIT, || async {
        let dead = store.dead_letters(10, None).await.ok()?;
        assert!(
            dead.is_empty(),
            "{format:?}: dead letters {:?}",
            dead.iter()
                .map(|d| (&d.topic, &d.reason_code, &d.reason))
                .collect::<Vec<_>>()
        );
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

    let answer = get(&format!("{}{path}", s.vft.api), Some(&s.coordinator)).await;
    assert_eq!(
        answer.headers()["content-type"],
        "application/json",
        "the reconciliation answers JSON as JSON"
    );
    assert_eq!(answer.json::<Value>().await.expect("json"), report);

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

    // Ål's token: its own municipality only, made of its own devices. r-move's Hepro unit
    // was Gol's, so in Ål's own data r-move is a new service (the region counts it migrated,
    // in Ål); the rest of Ål's rows are the region's.
    let own = get_json(&format!("{}{path}", s.vft.api), &s.aal).await;
    let expected_aal = [
        "3328 safety_alarm pending: r-ovl [atea/A2004 hepro/H1004]",
        "3328 safety_alarm double: r-dbl [atea/A2003 hepro/H1003]",
        "3328 safety_alarm new: r-move [atea/A2006]",
        "3328 safety_alarm reporting_unlisted: atea/A2004 [atea/A2004]",
    ];
    assert_eq!(lines(&own), expected_aal);
    // The coordinator asking for Ål gets the region's rows placed in Ål.
    let region_aal: Vec<&str> = EXPECTED
        .iter()
        .copied()
        .filter(|l| l.starts_with("3328 "))
        .collect();
    assert_eq!(
        lines(&s.get(&format!("{path}&municipality=3328")).await),
        region_aal
    );
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
    Answers {
        report,
        november,
        progress,
        csv,
        own,
    }
}

/// `vft reconcile` on the two vendors' exports alone, before any gateway reports: the lists
/// already show who is on both (issue 12), as a vendor known only by its exports is taken at
/// its word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_exports_alone_show_who_is_on_both() {
    let s = start_on(Scratch::new(), Format::Canonical).await;
    let post = |vendor: &'static str, as_of: &'static str, body: String| {
        reqwest::Client::new()
            .post(format!(
                "{}/api/v1/imports/{vendor}?as_of={as_of}",
                s.vft.api
            ))
            .bearer_auth(&s.coordinator)
            .body(body)
            .send()
    };
    let hepro = |rows: &[(&str, &str, &str)]| {
        let mut f =
            "Serienr;Produkt;Kommunenr;Kommune;Brukerref;Status;Installert;Merknad\n".to_owned();
        for (serial, recipient, status) in rows {
            f.push_str(&format!(
                "{serial};TA;3328;Al;{recipient};{status};01.03.2025;\n"
            ));
        }
        f
    };
    let atea = |rows: &[(&str, &str)]| {
        let mut f = "serial,category,municipality_no,client_ref,state,installed_on\n".to_owned();
        for (serial, recipient) in rows {
            f.push_str(&format!(
                "{serial},alarm,3328,{recipient},active,2025-10-01\n"
            ));
        }
        f
    };
    let imports = [
        // 1 November: r-dbl on both already; r-mig only on Hepro.
        (
            "hepro",
            "2025-11-01",
            hepro(&[
                ("HP-1", "r-dbl", "I drift"),
                ("HP-4", "r-mig", "I drift"),
                ("HP-3", "r-pend", "I drift"),
            ]),
        ),
        ("atea", "2025-11-01", atea(&[("A1", "r-dbl")])),
        // 31 December: r-mig taken back by Hepro and on Atea, r-ovl on both since lately,
        // r-new only on Atea.
        (
            "hepro",
            "2025-12-31",
            hepro(&[
                ("HP-1", "r-dbl", "I drift"),
                ("HP-2", "r-ovl", "I drift"),
                ("HP-3", "r-pend", "I drift"),
                ("HP-4", "r-mig", "Levert tilbake"),
            ]),
        ),
        (
            "atea",
            "2025-12-31",
            atea(&[
                ("A1", "r-dbl"),
                ("A2", "r-ovl"),
                ("A4", "r-mig"),
                ("A5", "r-new"),
            ]),
        ),
    ];
    for (vendor, as_of, body) in imports {
        let resp = post(vendor, as_of, body).await.expect("import");
        assert_eq!(
            resp.status(),
            200,
            "{vendor} {as_of}: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    let db = s.scratch.database_url();
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
        s.scratch.dir.path(),
    )
    .expect("vft reconcile");
    let report: Value = serde_json::from_str(&cli).expect("json");
    let classes: Vec<String> = lines(&report)
        .into_iter()
        .filter(|l| !l.contains("listed_silent") && !l.contains("reporting_unlisted"))
        .map(|l| {
            // "3328 safety_alarm double: r-dbl [atea/A1 hepro/…]" → "double: r-dbl"
            let (head, rest) = l.split_once(": ").expect("line");
            let class = head.rsplit(' ').next().expect("class");
            let subjects: Vec<&str> = rest
                .split("; ")
                .map(|s| s.split(' ').next().unwrap_or_default())
                .collect();
            format!("{class}: {}", subjects.join(", "))
        })
        .collect();
    assert_eq!(
        classes,
        [
            "migrated: r-mig",
            "pending: r-ovl, r-pend",
            "double: r-dbl",
            "new: r-new"
        ],
        "{:#?}",
        lines(&report)
    );
    // Every unit is listed without ever having reported: flagged, not hidden.
    assert!(lines(&report).iter().any(|l| l.contains("listed_silent")));
}
