//! Vendor transition at national size: time to import a 500 000-row inventory export and to
//! reconcile Hepro → Atea over a 500 000-device fleet, through the real CLI and HTTP API.
//!
//! Run: `cargo bench -p vft-e2e --bench transition` (add `-- --rows 50000` for a quick run).
//! Prints figures; asserts only that the work happened.

#[path = "../tests/support/mod.rs"]
mod support;

use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};
use support::*;
use vft_domain::{
    DeviceId, Event, EventId, EventType, GatewayId, MunicipalityCode, RecipientRef, TechnologyKind,
    VendorId,
};

const MUNICIPALITIES: [&str; 6] = ["3320", "3322", "3324", "3326", "3328", "3330"];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ts(s: &str) -> DateTime<chrono::FixedOffset> {
    DateTime::parse_from_rfc3339(s).expect("ts")
}

fn event(vendor: &str, id: String, at: &str, n: usize, device: String, t: EventType) -> Event {
    Event {
        vendor: VendorId::parse(vendor).expect("vendor"),
        gateway: GatewayId::parse(&format!("gw-{}", n % 500)).expect("gateway"),
        id: EventId::parse(&id).expect("id"),
        ts: ts(at),
        municipality: MunicipalityCode::parse(MUNICIPALITIES[n % 6]).expect("code"),
        device: DeviceId::parse(&device).expect("device"),
        event_type: t,
        kind: (t == EventType::Installed).then_some(if n % 10 < 6 {
            TechnologyKind::SafetyAlarm
        } else {
            TechnologyKind::SmokeDetector
        }),
        battery: None,
        alarm: None,
        cause: None,
        outcome: None,
        recipient: (t == EventType::Installed)
            .then(|| RecipientRef::parse(&format!("r-{n}")).expect("recipient")),
        replaces: None,
        reason: None,
    }
}

/// The fleet by events: every unit installed on Hepro in 2024; 40 % moved to Atea in October
/// 2025 (Hepro unit removed), 10 % on both since November, half of all units reporting lately.
fn fleet(n: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(n * 3);
    for i in 0..n {
        events.push(event(
            "hepro",
            format!("hi{i}"),
            "2024-03-01T10:00:00+01:00",
            i,
            format!("H{i}"),
            EventType::Installed,
        ));
        match i % 10 {
            0..=3 => {
                events.push(event(
                    "hepro",
                    format!("hd{i}"),
                    "2025-10-10T10:00:00+02:00",
                    i,
                    format!("H{i}"),
                    EventType::Decommissioned,
                ));
                events.push(event(
                    "atea",
                    format!("ai{i}"),
                    "2025-10-10T10:00:00+02:00",
                    i,
                    format!("A{i}"),
                    EventType::Installed,
                ));
            }
            4 => events.push(event(
                "atea",
                format!("ai{i}"),
                "2025-11-02T10:00:00+01:00",
                i,
                format!("A{i}"),
                EventType::Installed,
            )),
            _ => {}
        }
        if i % 2 == 0 {
            let (vendor, device) = if i % 10 <= 3 {
                ("atea", format!("A{i}"))
            } else {
                ("hepro", format!("H{i}"))
            };
            events.push(event(
                vendor,
                format!("hb{i}"),
                "2025-12-28T10:00:00+01:00",
                i,
                device,
                EventType::Heartbeat,
            ));
        }
    }
    events
}

/// Hepro's export in the example format (config/imports/hepro.example.toml): every unit that
/// has not moved listed in service, a few listed that never report.
fn export(n: usize) -> Vec<u8> {
    let mut csv =
        String::from("Serienr;Produkt;Kommunenr;Kommune;Brukerref;Status;Installert;Merknad\r\n");
    for i in 0..n {
        let status = if i % 10 <= 3 { "Returnert" } else { "I drift" };
        let product = if i % 10 < 6 { "TA" } else { "RV" };
        csv.push_str(&format!(
            "HP-H{i};{product};{};;r-{i};{status};01.03.2024;\r\n",
            MUNICIPALITIES[i % 6]
        ));
    }
    csv.into_bytes()
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    println!("{what:<58} {:>8.2} s", started.elapsed().as_secs_f64());
    out
}

#[tokio::main]
async fn main() {
    let rows = arg("--rows", 500_000);
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let cwd = scratch.dir.path();
    println!(
        "vft vendor transition, {rows} devices and export rows, SQLite, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let store = vft_store::open(&db, &Default::default())
        .await
        .expect("store");
    let events = fleet(rows);
    let started = Instant::now();
    for chunk in events.chunks(20_000) {
        store
            .write_batch(chunk, &[], Utc::now())
            .await
            .expect("write");
    }
    println!(
        "{:<58} {:>8.2} s",
        format!("load {} events (store directly)", events.len()),
        started.elapsed().as_secs_f64()
    );

    let file = cwd.join("hepro-export.csv");
    std::fs::write(&file, export(rows)).expect("write export");
    let file = file.display().to_string();
    let import = [
        "import",
        "inventory",
        "--vendor",
        "hepro",
        "--as-of",
        "2025-12-01",
        &file,
        "--database-url",
        &db,
    ];
    let out = timed(
        &format!("vft import inventory ({rows} rows, first time)"),
        || vft_cli(&import, cwd).expect("import"),
    );
    assert!(out.contains(&rows.to_string()), "{out}");
    timed("vft import inventory (same file again: unchanged)", || {
        vft_cli(&import, cwd).expect("import")
    });

    let reconcile = [
        "reconcile",
        "--from",
        "hepro",
        "--to",
        "atea",
        "--at",
        "2025-12-31",
        "--format",
        "csv",
        "--database-url",
        &db,
    ];
    let csv = timed(
        "vft reconcile --at 2025-12-31 (CLI, CSV of every subject)",
        || vft_cli(&reconcile, cwd).expect("reconcile"),
    );
    assert!(csv.lines().count() > rows / 2, "every subject is listed");

    let (vft, _) = spawn_vft("serve", &db, cwd, None, &[], &[]);
    let token = create_token(&db, cwd, &["--role", "coordinator"]);
    let url = |path: &str| format!("{}{path}", vft.api);
    for (what, path) in [
        (
            "GET /api/v1/reconciliation (JSON, national)",
            "/api/v1/reconciliation?from=hepro&to=atea&at=2025-12-31",
        ),
        (
            "GET /api/v1/reconciliation (one municipality)",
            "/api/v1/reconciliation?from=hepro&to=atea&at=2025-12-31&municipality=3328",
        ),
        (
            "GET /api/v1/reconciliation/progress (12 month ends)",
            "/api/v1/reconciliation/progress?from=hepro&to=atea&year=2025",
        ),
    ] {
        let mut times = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let resp = reqwest::Client::new()
                .get(url(path))
                .bearer_auth(&token)
                .timeout(Duration::from_secs(600))
                .send()
                .await
                .expect("GET");
            assert_eq!(resp.status(), 200, "{path}");
            assert!(!resp.bytes().await.expect("body").is_empty());
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{what:<58} {:>8.2} s (min {:.2}, max {:.2}, 3 runs)",
            times[1], times[0], times[2]
        );
    }
    drop(vft);
}
