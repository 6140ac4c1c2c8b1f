//! End to end: tenant isolation when data crosses municipalities. A scenario where devices move
//! from Flå (3320) to Ål (3328), recipients are served by both municipalities on two vendors
//! (Hepro and Atea), and alarms raised in one municipality are acknowledged by the other's
//! gateway; then every GET route of the API (the OpenAPI description's paths, and the dashboard's
//! page), with each query variant that takes a municipality and the CSV formats, asked by every
//! role: the coordinator, each municipality's token and no token. A municipality's answers must
//! hold no device, recipient, gateway, alarm or event id that belongs only to another
//! municipality, asking for another municipality is 403, and no token is 401.

mod support;

use chrono::{DateTime, Datelike, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use support::*;

const FLA: &str = "3320";
const GOL: &str = "3324";
const AAL: &str = "3328";
/// Every municipality of the default region: each gets a token.
const REGION: [&str; 6] = ["3320", "3322", "3324", "3326", "3328", "3330"];

fn tag(m: &str) -> &'static str {
    match m {
        FLA => "FLA",
        AAL => "AAL",
        GOL => "GOL",
        other => panic!("no planted data in {other}"),
    }
}

/// The planted events, and which municipalities each identifier belongs to. Every identifier
/// starts with `ZQ` and has the same length as the others of its sort, so none is part of
/// another and none occurs in vft's own text by chance.
#[derive(Default)]
struct Plant {
    /// (topic, event)
    messages: Vec<(String, Value)>,
    owners: BTreeMap<String, BTreeSet<String>>,
    /// (vendor, device) → the municipality of its latest lifecycle event (where it is now).
    devices: BTreeMap<(String, String), (DateTime<Utc>, String)>,
    next: usize,
}

impl Plant {
    fn own(&mut self, id: &str, m: &str) {
        self.owners
            .entry(id.to_owned())
            .or_default()
            .insert(m.to_owned());
    }

    /// One event of `vendor` through `m`'s gateway for that vendor; returns its id.
    fn event(
        &mut self,
        vendor: &str,
        m: &str,
        device: &str,
        ts: DateTime<Utc>,
        t: &str,
        extra: Value,
    ) -> String {
        self.next += 1;
        let id = format!("ZQE-{}-{:03}", tag(m), self.next);
        let gateway = format!("ZQG-{}-{}", tag(m), if vendor == "hepro" { 1 } else { 2 });
        let mut e = json!({
            "id": id,
            "ts": ts.to_rfc3339_opts(SecondsFormat::Secs, true),
            "municipality": m,
            "device": device,
            "type": t,
        });
        if let (Value::Object(e), Value::Object(extra)) = (&mut e, extra) {
            e.extend(extra);
        }
        self.own(&id, m);
        self.own(&gateway, m);
        if let Some(alarm) = e["alarm"].as_str() {
            self.own(alarm, m);
        }
        if t == "installed" || t == "decommissioned" {
            self.own(device, m);
            if let Some(r) = e["recipient"].as_str() {
                self.own(r, m);
            }
            let key = (vendor.to_owned(), device.to_owned());
            if self.devices.get(&key).is_none_or(|(at, _)| *at <= ts) {
                self.devices.insert(key, (ts, m.to_owned()));
            }
        }
        self.messages
            .push((format!("vft/v1/{vendor}/{gateway}/events"), e));
        id
    }

    fn install(
        &mut self,
        vendor: &str,
        m: &str,
        device: &str,
        ts: DateTime<Utc>,
        recipient: &str,
    ) -> String {
        self.event(
            vendor,
            m,
            device,
            ts,
            "installed",
            json!({"kind": "safety_alarm", "recipient": recipient}),
        )
    }

    fn heartbeat(&mut self, vendor: &str, m: &str, device: &str, ts: DateTime<Utc>) {
        self.event(vendor, m, device, ts, "heartbeat", json!({"battery": 80}));
    }

    /// An alarm's events: (municipality, type, seconds after the alarm).
    fn alarm(
        &mut self,
        vendor: &str,
        device: &str,
        alarm: &str,
        at: DateTime<Utc>,
        steps: &[(&str, &str, i64)],
    ) {
        for (m, t, secs) in steps {
            let extra = match *t {
                "alarm" => json!({"alarm": alarm, "cause": "button"}),
                "alarm_closed" => json!({"alarm": alarm, "outcome": "false_alarm"}),
                _ => json!({"alarm": alarm}),
            };
            self.event(vendor, m, device, at + Duration::seconds(*secs), t, extra);
        }
    }

    /// Identifiers none of whose owners is `m` (`None`: every identifier): what `m`'s answers
    /// must not hold.
    /// What belongs to none of `ms`.
    fn foreign_to_all(&self, ms: &[&str]) -> Vec<&str> {
        self.owners
            .iter()
            .filter(|(_, owners)| !ms.iter().any(|m| owners.contains(*m)))
            .map(|(id, _)| id.as_str())
            .collect()
    }

    fn foreign_to(&self, m: Option<&str>) -> Vec<&str> {
        self.owners
            .iter()
            .filter(|(_, owners)| m.is_none_or(|m| !owners.contains(m)))
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

/// The scenario, in the year before this one (every event in the past, whatever the date).
struct Scenario {
    plant: Plant,
    year: i32,
    /// When the moved device was first installed (in Flå) and installed in Ål.
    moved_first_installed: (DateTime<Utc>, DateTime<Utc>),
    /// Ål's own events of the moved device, oldest first.
    moved_events_in_aal: Vec<String>,
}

fn scenario(now: DateTime<Utc>) -> Scenario {
    let year = now.year() - 1;
    let t = |month: u32, day: u32, h: u32, min: u32, s: u32| -> DateTime<Utc> {
        format!("{year}-{month:02}-{day:02}T{h:02}:{min:02}:{s:02}Z")
            .parse()
            .expect("time")
    };
    // Within `silent_after` (7 days) of any reconciliation of today: reporting.
    let recent = now - Duration::hours(3);
    let mut p = Plant::default();

    // Recipients served by both municipalities, on the two vendors.
    // ZQR-SHR-01: Hepro in Flå since January, Atea in Ål since May (on both past the grace).
    p.install("hepro", FLA, "ZQD-FLA-11", t(1, 5, 9, 0, 0), "ZQR-SHR-01");
    p.install("atea", AAL, "ZQD-AAL-11", t(5, 1, 9, 0, 0), "ZQR-SHR-01");
    // ZQR-SHR-02: Atea in Flå, Hepro in Ål.
    p.install("atea", FLA, "ZQD-FLA-12", t(1, 5, 9, 0, 0), "ZQR-SHR-02");
    p.install("hepro", AAL, "ZQD-AAL-12", t(1, 5, 9, 0, 0), "ZQR-SHR-02");
    // ZQR-SHR-03: Hepro in Flå until June, Atea in Ål since July.
    p.install("hepro", FLA, "ZQD-FLA-13", t(1, 5, 9, 0, 0), "ZQR-SHR-03");
    p.event(
        "hepro",
        FLA,
        "ZQD-FLA-13",
        t(6, 1, 9, 0, 0),
        "decommissioned",
        json!({}),
    );
    p.install("atea", AAL, "ZQD-AAL-13", t(7, 1, 9, 0, 0), "ZQR-SHR-03");

    // Moved devices. ZQD-MOV-01: installed in Flå, then installed in Ål (no decommission in
    // between), and silent since it left Flå.
    let first = t(1, 10, 10, 17, 23);
    let moved_in = t(4, 1, 9, 41, 7);
    p.install("hepro", FLA, "ZQD-MOV-01", first, "ZQR-FLA-01");
    p.heartbeat("hepro", FLA, "ZQD-MOV-01", t(2, 1, 10, 0, 0));
    let in_aal = p.install("hepro", AAL, "ZQD-MOV-01", moved_in, "ZQR-AAL-01");
    // ZQD-MOV-02: Atea in Flå, taken back, installed in Ål; reports there.
    p.install("atea", FLA, "ZQD-MOV-02", t(2, 1, 9, 0, 0), "ZQR-FLA-02");
    p.event(
        "atea",
        FLA,
        "ZQD-MOV-02",
        t(3, 1, 9, 0, 0),
        "decommissioned",
        json!({}),
    );
    p.install("atea", AAL, "ZQD-MOV-02", t(3, 15, 9, 0, 0), "ZQR-AAL-02");

    // Each municipality's own devices.
    p.install("hepro", FLA, "ZQD-FLA-21", t(1, 2, 9, 0, 0), "ZQR-FLA-21");
    p.install("atea", AAL, "ZQD-AAL-21", t(1, 2, 9, 0, 0), "ZQR-AAL-21");
    p.install("hepro", GOL, "ZQD-GOL-21", t(1, 2, 9, 0, 0), "ZQR-GOL-21");

    // Alarms across municipalities, in March. X1: raised in Flå, acknowledged after 30 s by
    // Ål's gateway, closed in Flå. X2: raised in Ål, acknowledged after 45 s by Flå's gateway.
    // F3 and A3: each municipality's own, answered in 20 s and 100 s.
    let (ack, closed) = ("alarm_acknowledged", "alarm_closed");
    p.alarm(
        "hepro",
        "ZQD-FLA-21",
        "ZQA-X1",
        t(3, 10, 10, 0, 0),
        &[(FLA, "alarm", 0), (AAL, ack, 30), (FLA, closed, 300)],
    );
    p.alarm(
        "atea",
        "ZQD-AAL-21",
        "ZQA-X2",
        t(3, 12, 12, 0, 0),
        &[(AAL, "alarm", 0), (FLA, ack, 45), (AAL, closed, 600)],
    );
    p.alarm(
        "hepro",
        "ZQD-FLA-21",
        "ZQA-F3",
        t(3, 14, 8, 0, 0),
        &[(FLA, "alarm", 0), (FLA, ack, 20), (FLA, closed, 200)],
    );
    p.alarm(
        "atea",
        "ZQD-AAL-21",
        "ZQA-A3",
        t(3, 16, 8, 0, 0),
        &[(AAL, "alarm", 0), (AAL, ack, 100), (AAL, closed, 400)],
    );
    // Doses.
    p.event(
        "hepro",
        FLA,
        "ZQD-FLA-21",
        t(4, 2, 8, 0, 0),
        "dose_taken",
        json!({}),
    );
    p.event(
        "atea",
        AAL,
        "ZQD-AAL-21",
        t(4, 2, 8, 0, 0),
        "dose_missed",
        json!({}),
    );

    // Recent contact: the devices in service report (the moved ZQD-MOV-01 does not).
    for (vendor, m, device) in [
        ("hepro", FLA, "ZQD-FLA-11"),
        ("atea", FLA, "ZQD-FLA-12"),
        ("hepro", FLA, "ZQD-FLA-21"),
        ("atea", AAL, "ZQD-AAL-11"),
        ("hepro", AAL, "ZQD-AAL-12"),
        ("atea", AAL, "ZQD-AAL-13"),
        ("atea", AAL, "ZQD-AAL-21"),
        ("atea", AAL, "ZQD-MOV-02"),
        ("hepro", GOL, "ZQD-GOL-21"),
    ] {
        p.heartbeat(vendor, m, device, recent);
    }
    // The exports list a unit of each municipality that never reported (listed_silent).
    for (m, id) in [
        (FLA, "ZQD-FLA-31"),
        (FLA, "ZQR-FLA-31"),
        (AAL, "ZQD-AAL-31"),
        (AAL, "ZQR-AAL-31"),
    ] {
        p.own(id, m);
    }
    let moved_events_in_aal = vec![in_aal];
    Scenario {
        plant: p,
        year,
        moved_first_installed: (first, moved_in),
        moved_events_in_aal,
    }
}

/// The vendors' inventory exports (the example formats built into vft), as of 1 October.
fn exports(year: i32) -> [(&'static str, String, Vec<u8>); 2] {
    let hepro = format!(
        "Serienr;Produkt;Kommunenr;Kommune;Brukerref;Status;Installert;Merknad\n\
         ZQD-AAL-31;TA;3328;Al;ZQR-AAL-31;I drift;01.03.{year};\n\
         ZQD-FLA-21;TA;3320;Fla;ZQR-FLA-21;I drift;02.01.{year};\n"
    );
    let atea = format!(
        "serial,category,municipality_no,client_ref,state,installed_on,site\n\
         ZQD-FLA-31,alarm,3320,ZQR-FLA-31,active,{year}-02-01,Fla\n\
         ZQD-AAL-21,alarm,3328,ZQR-AAL-21,active,{year}-01-02,Al\n"
    );
    [
        ("hepro", format!("{year}-10-01"), hepro.into_bytes()),
        ("atea", format!("{year}-10-01"), atea.into_bytes()),
    ]
}

/// Who asks.
#[derive(Clone)]
struct Role {
    name: String,
    /// `coordinator`, `municipality`, `operator`, `auditor`, or `none` (no token).
    kind: &'static str,
    /// A municipality role's municipality it acts for by default (the first of its own).
    municipality: Option<String>,
    /// A municipality role's other municipalities.
    also: Vec<String>,
    token: Option<String>,
}

impl Role {
    fn may_see(&self, m: &str) -> bool {
        self.municipality.as_deref() == Some(m) || self.also.iter().any(|a| a == m)
    }
}

/// One request of the sweep and what it must get.
struct Probe {
    path: String,
    /// Query string, without `?`.
    query: String,
    /// The municipality the query asks for, if any.
    asks_for: Option<String>,
}

impl Probe {
    fn url(&self, api: &str) -> String {
        if self.query.is_empty() {
            format!("{api}{}", self.path)
        } else {
            format!("{api}{}?{}", self.path, self.query)
        }
    }
}

/// The GET routes of the OpenAPI description, and the router's routes it does not describe.
async fn get_routes(api: &str) -> BTreeMap<String, Vec<String>> {
    let doc: Value = get(&format!("{api}/api/openapi.json"), None)
        .await
        .json()
        .await
        .expect("openapi");
    let mut routes = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let Some(op) = item.get("get") else {
            continue;
        };
        let params = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        routes.insert(path.clone(), params);
    }
    // Served by the router, not described: the description itself and the dashboard.
    for extra in ["/api/openapi.json", "/", "/ui/index.html"] {
        routes.entry(extra.to_owned()).or_default();
    }
    routes
}

/// Every request of the sweep for one route: its required parameters and some filters, each
/// with every municipality of the region where the route takes one, and as CSV where it has a
/// format; a device route for every planted device (and one only an export lists).
fn probes(
    path: &str,
    params: &[String],
    year: i32,
    cooperations: &[String],
    devices: &[(String, String)],
) -> Vec<Probe> {
    let has = |p: &str| params.iter().any(|x| x == p);
    let mut bases: Vec<String> = match path {
        "/api/v1/rollups/devices/changes" | "/api/v1/rollups/vendor-service" => [3, 4, 6, 7]
            .iter()
            .map(|m| format!("month={year}-{m:02}"))
            .collect(),
        "/api/v1/reconciliation" => vec![
            "from=hepro&to=atea".into(),
            format!("from=hepro&to=atea&at={year}-06-30"),
            format!("from=hepro&to=atea&at={year}-12-31"),
        ],
        "/api/v1/reconciliation/progress" => vec![format!("from=hepro&to=atea&year={year}")],
        "/api/v1/devices" => vec![
            String::new(),
            "sort=installed".into(),
            "in_service=false".into(),
            "q=ZQD".into(),
            "vendor=atea".into(),
            format!("installed_after={year}-03-01"),
        ],
        "/api/v1/imports" => vec![String::new(), "vendor=hepro".into()],
        _ => vec![String::new()],
    };
    if has("year") && path != "/api/v1/reconciliation/progress" {
        let with_year: Vec<String> = bases
            .iter()
            .map(|b| join(b, &format!("year={year}")))
            .collect();
        bases.extend(with_year);
    }
    if has("vendor") && path.starts_with("/api/v1/rollups") {
        bases.push(join(&bases[bases.len() - 1], "vendor=hepro"));
    }
    if has("kind") && path == "/api/v1/rollups/response-centre" {
        bases.push(format!("year={year}&kind=safety_alarm"));
    }
    if has("cooperation") {
        let last = bases[bases.len() - 1].clone();
        bases.extend(
            cooperations
                .iter()
                .map(|c| join(&last, &format!("cooperation={c}"))),
        );
    }
    let mut queries: Vec<(String, Option<String>)> =
        bases.iter().map(|b| (b.clone(), None)).collect();
    if has("municipality") {
        for b in &bases {
            for m in REGION {
                queries.push((join(b, &format!("municipality={m}")), Some(m.to_owned())));
            }
        }
    }
    if has("format") {
        let csv: Vec<(String, Option<String>)> = queries
            .iter()
            .map(|(q, m)| (join(q, "format=csv"), m.clone()))
            .collect();
        queries.extend(csv);
    }
    let paths: Vec<String> = if path.contains("{vendor}") {
        devices
            .iter()
            .map(|(v, d)| path.replace("{vendor}", v).replace("{device}", d))
            .collect()
    } else {
        vec![path.to_owned()]
    };
    paths
        .iter()
        .flat_map(|p| {
            queries.iter().map(move |(q, m)| Probe {
                path: p.clone(),
                query: q.clone(),
                asks_for: m.clone(),
            })
        })
        .collect()
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else {
        format!("{a}&{b}")
    }
}

/// `municipality class: subject [devices]` per subject of a reconciliation.
fn subjects(report: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for r in report["rows"].as_array().expect("rows") {
        for s in r["subjects"].as_array().expect("subjects") {
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
            out.push(format!(
                "{} {}: {key} [{}]",
                r["municipality"].as_str().expect("m"),
                r["class"].as_str().expect("c"),
                devices.join(" ")
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_municipality_sees_another_municipalitys_data() {
    sweep_on(Scratch::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_municipality_sees_another_municipalitys_data_on_postgres() {
    if let Some(scratch) = Scratch::postgres().await {
        sweep_on(scratch).await;
    }
}

async fn sweep_on(scratch: Scratch) {
    let s = Server::start(scratch).await;
    let api = s.vft.api.clone();
    let now = Utc::now();
    let sc = scenario(now);
    let year = sc.year;

    // Publish per gateway, as gateways do, and wait until everything is stored.
    let mut by_topic: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for (topic, e) in &sc.plant.messages {
        by_topic.entry(topic).or_default().push(e);
    }
    for (i, (topic, events)) in by_topic.iter().enumerate() {
        let mut p = Publisher::connect(&s.broker, &format!("tenant-{i}")).await;
        for e in events {
            p.publish(topic, e.to_string()).await;
        }
        p.wait_all_acked(std::time::Duration::from_secs(120)).await;
        p.disconnect().await;
    }
    s.wait_events(sc.plant.messages.len() as u64).await;
    let store = vft_store::open(&s.scratch.database_url(), &Default::default())
        .await
        .expect("store");
    let dead = store.dead_letters(10, None).await.expect("dead letters");
    assert!(
        dead.is_empty(),
        "dead letters: {:?}",
        dead.iter().map(|d| &d.reason).collect::<Vec<_>>()
    );
    let http = reqwest::Client::new();
    for (vendor, as_of, body) in exports(year) {
        let resp = http
            .post(format!("{api}/api/v1/imports/{vendor}?as_of={as_of}"))
            .bearer_auth(&s.coordinator)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await
            .expect("import");
        assert_eq!(resp.status(), 200, "import {vendor}");
        let report: Value = resp.json().await.expect("json");
        assert_eq!(report["errors"], json!([]), "{vendor}: {report}");
    }

    // Tokens: the coordinator, every municipality of the region, a user of two
    // municipalities, the operator, the auditor, and none.
    let db = s.scratch.database_url();
    let cwd = s.scratch.dir.path();
    let token_for = |args: &[&str]| Some(create_token(&db, cwd, args));
    let mut roles = vec![
        Role {
            name: "coordinator".into(),
            kind: "coordinator",
            municipality: None,
            also: Vec::new(),
            token: Some(s.coordinator.clone()),
        },
        Role {
            name: "no token".into(),
            kind: "none",
            municipality: None,
            also: Vec::new(),
            token: None,
        },
        Role {
            name: "operator".into(),
            kind: "operator",
            municipality: None,
            also: Vec::new(),
            token: token_for(&["--role", "operator"]),
        },
        Role {
            name: "auditor".into(),
            kind: "auditor",
            municipality: None,
            also: Vec::new(),
            token: token_for(&["--role", "auditor"]),
        },
        Role {
            name: "municipality 3328+3330".into(),
            kind: "municipality",
            municipality: Some(AAL.into()),
            also: vec!["3330".into()],
            token: token_for(&["--role", "municipality", "--municipality", "3330,3328"]),
        },
    ];
    for m in REGION {
        let token = if m == AAL {
            s.aal.clone()
        } else {
            create_token(
                &db,
                s.scratch.dir.path(),
                &["--role", "municipality", "--municipality", m],
            )
        };
        roles.push(Role {
            name: format!("municipality {m}"),
            kind: "municipality",
            also: Vec::new(),
            municipality: Some(m.to_owned()),
            token: Some(token),
        });
    }
    let token_of = |m: &str| {
        roles
            .iter()
            .find(|r| r.municipality.as_deref() == Some(m) && r.also.is_empty())
            .and_then(|r| r.token.clone())
            .expect("token")
    };
    let (fla, aal) = (token_of(FLA), token_of(AAL));
    let as_ = |token: String, path: String| {
        let url = format!("{api}{path}");
        async move { get_json(&url, &token).await }
    };

    // The three measured leaks, checked by what they showed.
    // 1. Reconciliation: the region counts ZQR-SHR-01 once, in Ål, on both vendors past the
    //    grace period (double), with Flå's Hepro unit beside Ål's Atea unit. Ål's own has only
    //    its Atea unit (new), Flå's only its Hepro unit (pending).
    let recon = "/api/v1/reconciliation?from=hepro&to=atea";
    let region = subjects(&s.get(recon).await);
    for line in [
        "3328 double: ZQR-SHR-01 [atea/ZQD-AAL-11 hepro/ZQD-FLA-11]",
        "3320 double: ZQR-SHR-02 [atea/ZQD-FLA-12 hepro/ZQD-AAL-12]",
        "3328 migrated: ZQR-SHR-03 [atea/ZQD-AAL-13 hepro/ZQD-FLA-13]",
    ] {
        assert!(region.contains(&line.to_owned()), "{line} in {region:#?}");
    }
    let own_aal = subjects(&as_(aal.clone(), recon.to_owned()).await);
    for line in [
        "3328 new: ZQR-SHR-01 [atea/ZQD-AAL-11]",
        "3328 pending: ZQR-SHR-02 [hepro/ZQD-AAL-12]",
        "3328 new: ZQR-SHR-03 [atea/ZQD-AAL-13]",
        "3328 pending: ZQR-AAL-01 [hepro/ZQD-MOV-01]",
        "3328 listed_silent: hepro/ZQD-AAL-31 [hepro/ZQD-AAL-31]",
    ] {
        assert!(own_aal.contains(&line.to_owned()), "{line} in {own_aal:#?}");
    }
    assert!(
        own_aal.iter().all(|l| !l.contains(" double: ")),
        "{own_aal:#?}"
    );
    let own_fla = subjects(&as_(fla.clone(), recon.to_owned()).await);
    for line in [
        "3320 pending: ZQR-SHR-01 [hepro/ZQD-FLA-11]",
        "3320 new: ZQR-SHR-02 [atea/ZQD-FLA-12]",
        "3320 listed_silent: atea/ZQD-FLA-31 [atea/ZQD-FLA-31]",
    ] {
        assert!(own_fla.contains(&line.to_owned()), "{line} in {own_fla:#?}");
    }
    // The coordinator asking for Ål gets the region's rows placed there, as before.
    let region_aal = subjects(&s.get(&format!("{recon}&municipality=3328")).await);
    let placed: Vec<&String> = region.iter().filter(|l| l.starts_with("3328 ")).collect();
    assert_eq!(region_aal.iter().collect::<Vec<_>>(), placed);

    // 2. The moved device: the region shows its first install (in Flå); Ål its first install in
    //    Ål, and of its history only Ål's events.
    let (first, moved_in) = sc.moved_first_installed;
    let rfc = |t: DateTime<Utc>| -> Value { serde_json::to_value(t).expect("time") };
    let find = |page: &Value| {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|d| d["device"] == "ZQD-MOV-01")
            .cloned()
            .expect("ZQD-MOV-01 listed")
    };
    let in_region = find(&s.get("/api/v1/devices?q=MOV-01").await);
    assert_eq!(in_region["first_installed"], rfc(first));
    let in_aal = find(&as_(aal.clone(), "/api/v1/devices?q=MOV-01".to_owned()).await);
    assert_eq!(in_aal["first_installed"], rfc(moved_in));
    assert_eq!(
        (in_aal["recipient"].clone(), in_aal["gateway"].clone()),
        (json!("ZQR-AAL-01"), json!("ZQG-AAL-1"))
    );
    assert_eq!(
        (in_aal["connectivity"].clone(), in_aal["battery"].clone()),
        (json!("never_seen"), Value::Null),
        "its contact and battery were Flå's"
    );
    let detail = as_(aal.clone(), "/api/v1/devices/hepro/ZQD-MOV-01".to_owned()).await;
    assert_eq!(detail["device"]["first_installed"], rfc(moved_in));
    let history: Vec<&str> = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(history, sc.moved_events_in_aal);
    let early = format!("installed_before={year}-02-01");
    let early_aal = as_(aal.clone(), format!("/api/v1/devices?{early}")).await;
    assert!(
        early_aal["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|d| d["device"] != "ZQD-MOV-01"),
        "filters see Ål's first install too"
    );

    // 3. Response centre, March: X1 (raised in Flå, answered by Ål's gateway) is unanswered
    //    in Flå's figures and an answer without a trigger in Ål's; X2 the other way round.
    let march = |body: &Value| body["months"][2].clone();
    let figures = |m: &Value| {
        (
            m["triggered"].as_u64().expect("triggered"),
            m["acknowledged"].as_u64().expect("acknowledged"),
            m["never_acknowledged"].as_u64().expect("never"),
            m["response"]["max_ms"].as_u64().expect("max"),
        )
    };
    let rc = format!("/api/v1/rollups/response-centre?year={year}");
    assert_eq!(figures(&march(&s.get(&rc).await)), (4, 4, 0, 100_000));
    assert_eq!(
        figures(&march(&s.get(&format!("{rc}&municipality=3320")).await)),
        (2, 2, 0, 30_000),
        "the coordinator's Flå: the region's alarms raised in Flå"
    );
    for _ in 0..2 {
        // Twice: the second answer comes from the kept month.
        assert_eq!(
            figures(&march(&as_(fla.clone(), rc.clone()).await)),
            (2, 2, 1, 20_000)
        );
        assert_eq!(
            figures(&march(&as_(aal.clone(), rc.clone()).await)),
            (2, 2, 1, 100_000)
        );
    }

    // The sweep: every GET route × every role.
    let routes = get_routes(&api).await;
    let cooperations: Vec<String> = s.get("/api/v1/cooperations").await["cooperations"]
        .as_array()
        .expect("cooperations")
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    let mut devices: Vec<(String, String)> = sc.plant.devices.keys().cloned().collect();
    devices.push(("atea".into(), "ZQD-FLA-31".into()));
    let current: BTreeMap<(String, String), String> = sc
        .plant
        .devices
        .iter()
        .map(|(k, (_, m))| (k.clone(), m.clone()))
        .collect();
    let mut sweep = Sweep {
        plant: &sc.plant,
        current,
        requests: 0,
        leaks: Vec::new(),
        wrong: Vec::new(),
    };
    let mut probes_per_route = BTreeMap::new();
    for (route, params) in &routes {
        let list = probes(route, params, year, &cooperations, &devices);
        probes_per_route.insert(route.clone(), list.len());
        for probe in &list {
            for role in &roles {
                let url = probe.url(&api);
                let (status, body) = fetch(&http, &url, role).await;
                sweep.check(role, route, probe, &url[api.len()..], status, &body);
                // The inventory also in pages of two, following next_cursor to the end.
                if route != "/api/v1/devices" || probe.query.contains("format=csv") || status != 200
                {
                    continue;
                }
                let paged = join(&probe.query, "limit=2");
                let mut url = format!("{api}{}?{paged}", probe.path);
                for _ in 0..50 {
                    let (status, body) = fetch(&http, &url, role).await;
                    sweep.check(role, route, probe, &url[api.len()..], status, &body);
                    let next = serde_json::from_str::<Value>(&body)
                        .ok()
                        .and_then(|v| v["next_cursor"].as_str().map(str::to_owned));
                    let Some(cursor) = next else {
                        break;
                    };
                    url = format!(
                        "{api}{}?{}",
                        probe.path,
                        join(&paged, &format!("cursor={cursor}"))
                    );
                }
            }
        }
    }

    // The coordinator sees the planted data (so the search above had something to find).
    let csv = get(
        &format!("{api}/api/v1/devices?format=csv"),
        Some(&s.coordinator),
    )
    .await
    .text()
    .await
    .expect("csv");
    for (_, d) in sc.plant.devices.keys() {
        assert!(
            csv.contains(d.as_str()),
            "{d} in the coordinator's inventory"
        );
    }
    let variants: usize = probes_per_route.values().sum();
    println!(
        "tenant isolation sweep: {} GET routes, {variants} route variants × {} roles = {} requests \
         (with inventory paging); {} leaks, {} wrong statuses",
        routes.len(),
        roles.len(),
        sweep.requests,
        sweep.leaks.len(),
        sweep.wrong.len()
    );
    for (route, n) in &probes_per_route {
        println!("  {route}: {n} variants");
    }
    assert!(
        sweep.wrong.is_empty(),
        "{} wrong statuses:\n{}",
        sweep.wrong.len(),
        sweep.wrong.join("\n")
    );
    assert_eq!(sweep.leaks.len(), 0, "leaks:\n{}", sweep.leaks.join("\n"));
}

async fn fetch(http: &reqwest::Client, url: &str, role: &Role) -> (u16, String) {
    let mut req = http.get(url);
    if let Some(t) = &role.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// GET routes only a coordinator may use.
const COORDINATOR_ONLY: [&str; 6] = [
    "/api/v1/dead-letters",
    "/api/v1/imports/errors",
    "/api/v1/mqtt-credentials",
    "/api/v1/users",
    "/api/v1/tokens",
    "/api/v1/audit",
];

/// The routes an operator may read (it runs the service, sees no fleet data).
const OPERATOR_ROUTES: [&str; 5] = [
    "/api/v1/session",
    "/api/v1/dead-letters",
    "/api/v1/mqtt-credentials",
    "/api/v1/users",
    "/api/v1/tokens",
];

/// The routes an auditor may read.
const AUDITOR_ROUTES: [&str; 2] = ["/api/v1/session", "/api/v1/audit"];

/// What the sweep found.
struct Sweep<'a> {
    plant: &'a Plant,
    /// (vendor, device) → its municipality now.
    current: BTreeMap<(String, String), String>,
    requests: usize,
    leaks: Vec<String>,
    wrong: Vec<String>,
}

impl Sweep<'_> {
    /// The status `role` must get, where the sweep knows it.
    fn expected(&self, role: &Role, route: &str, probe: &Probe) -> Option<u16> {
        let api_route = route.starts_with("/api/v1/");
        let device = probe
            .path
            .strip_prefix("/api/v1/devices/")
            .and_then(|k| k.split_once('/'))
            .map(|(v, d)| (v.to_owned(), d.to_owned()));
        let only = |allowed: &[&str]| {
            api_route.then_some(if allowed.contains(&route) { 200 } else { 403 })
        };
        match role.kind {
            "none" => api_route.then_some(401),
            "operator" => only(&OPERATOR_ROUTES),
            "auditor" => only(&AUDITOR_ROUTES),
            "municipality" if probe.asks_for.as_ref().is_some_and(|m| !role.may_see(m)) => {
                Some(403)
            }
            "municipality" if COORDINATOR_ONLY.contains(&route) => Some(403),
            _ => match device {
                // Another municipality's device is invisible: 404, as if it did not exist. A
                // municipality role acts for the first of its own unless the probe asks.
                Some(k) => Some(match self.current.get(&k) {
                    Some(m) if role.municipality.as_ref().is_none_or(|own| own == m) => 200,
                    _ => 404,
                }),
                None => api_route.then_some(200),
            },
        }
    }

    /// Checks one answer: its status, and that it holds nothing `role` may not see (a
    /// municipality: what belongs only to others; no token: anything planted). The request's
    /// own words (a 404 naming the device asked for) are not a leak.
    fn check(
        &mut self,
        role: &Role,
        route: &str,
        probe: &Probe,
        url: &str,
        status: u16,
        body: &str,
    ) {
        self.requests += 1;
        let what = format!("{} GET {url}", role.name);
        if let Some(e) = self.expected(role, route, probe)
            && e != status
        {
            let body: String = body.chars().take(200).collect();
            self.wrong
                .push(format!("{what}: {status}, expected {e}: {body}"));
        }
        if role.token.is_none() && !route.starts_with("/api/v1/") && status == 401 {
            self.wrong.push(format!("{what}: 401 on a public route"));
        }
        let hidden = match role.kind {
            "coordinator" => Vec::new(),
            // Dead letters are the region's (a dead letter may name no municipality), and the
            // audit log names whoever was read: both by design.
            "operator" if OPERATOR_ROUTES.contains(&route) => Vec::new(),
            "auditor" if AUDITOR_ROUTES.contains(&route) => Vec::new(),
            "municipality" => {
                let mut own: Vec<&str> = role.also.iter().map(String::as_str).collect();
                own.extend(role.municipality.as_deref());
                self.plant.foreign_to_all(&own)
            }
            _ => self.plant.foreign_to(None),
        };
        for id in hidden {
            if body.contains(id) && !url.contains(id) {
                self.leaks.push(format!("{what}: {id}"));
            }
        }
    }
}
