//! What the audit log costs: API reads of personal data with the audit log recording reads and
//! without (`audit.record_reads = false`), measured in one run against the same database by
//! the same release binary, alternating (on, off, on, off) so that a machine busy with
//! something else hits both sides alike.
//!
//! Each round starts `vft serve`, then `--clients` concurrent clients ask for device details
//! (`GET /api/v1/devices/{vendor}/{device}`, one record each) and inventory pages
//! (`GET /api/v1/devices?limit=100`, one record naming 100 devices and their recipients) for
//! `--secs` seconds each. Prints requests/s and latency percentiles; asserts only that every
//! request answered 200.
//!
//! Run: `cargo bench -p vft-e2e --bench audit` (`-- --devices 5000 --clients 8 --secs 10`).

#[path = "../tests/support/mod.rs"]
mod support;

use chrono::{FixedOffset, TimeZone, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::*;
use vft_domain::{
    DeviceId, Event, EventId, EventType, GatewayId, MunicipalityCode, RecipientRef, TechnologyKind,
    VendorId,
};

struct Args {
    devices: usize,
    clients: usize,
    secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        devices: 5000,
        clients: 8,
        secs: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok());
        match flag.as_str() {
            "--devices" => a.devices = value().expect("--devices N"),
            "--clients" => a.clients = value().expect("--clients N"),
            "--secs" => a.secs = value().expect("--secs N") as u64,
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

async fn load(db_url: &str, devices: usize) {
    let store = vft_store::open(
        db_url,
        &vft_store::StoreOptions {
            create_if_missing: true,
            ..Default::default()
        },
    )
    .await
    .expect("store");
    let oslo = FixedOffset::east_opt(3600).expect("offset");
    let codes = ["3328", "3330", "3324", "3326"];
    let events: Vec<Event> = (0..devices)
        .map(|i| Event {
            vendor: VendorId::parse("hepro").expect("vendor"),
            gateway: GatewayId::parse("gw-1").expect("gateway"),
            id: EventId::parse(&format!("ev-{i:07}")).expect("id"),
            ts: oslo
                .with_ymd_and_hms(2025, 1 + (i % 12) as u32, 1 + (i % 28) as u32, 10, 0, 0)
                .single()
                .expect("time"),
            municipality: MunicipalityCode::parse(codes[i % codes.len()]).expect("code"),
            device: DeviceId::parse(&format!("D{i:07}")).expect("device"),
            event_type: EventType::Installed,
            kind: Some(TechnologyKind::SafetyAlarm),
            battery: None,
            alarm: None,
            cause: None,
            outcome: None,
            recipient: Some(RecipientRef::parse(&format!("r-{i:07}")).expect("recipient")),
            replaces: None,
            reason: None,
        })
        .collect();
    for chunk in events.chunks(5000) {
        store
            .write_batch(chunk, &[], Utc::now())
            .await
            .expect("write");
    }
}

struct Round {
    requests: usize,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `clients` loops asking `path(i)` for `secs` seconds.
async fn hammer(
    api: &str,
    token: &str,
    clients: usize,
    secs: u64,
    path: fn(usize) -> String,
) -> Round {
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, client) = (stop.clone(), client.clone());
            let (api, token) = (api.to_owned(), token.to_owned());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = c * 7919;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let resp = client
                        .get(format!("{api}{}", path(i)))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(resp.status(), 200, "{}", path(i));
                    resp.bytes().await.expect("body");
                    latencies.push(t.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    Round {
        requests: all.len(),
        per_sec: all.len() as f64 / elapsed,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    }
}

fn detail(i: usize) -> String {
    format!("/api/v1/devices/hepro/D{:07}", i % DEVICES_FOR_PATHS)
}

fn page(i: usize) -> String {
    // Pages over the four municipalities' inventories, sorted by device.
    let sort = ["device", "installed", "municipality", "kind"][i % 4];
    format!("/api/v1/devices?limit=100&sort={sort}")
}

/// Device details ask among the first devices (all loaded whatever `--devices` is, ≥ 1000).
const DEVICES_FOR_PATHS: usize = 1000;

#[tokio::main]
async fn main() {
    let a = args();
    assert!(
        a.devices >= DEVICES_FOR_PATHS,
        "--devices at least {DEVICES_FOR_PATHS}"
    );
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let cwd = scratch.dir.path();
    let started = Instant::now();
    load(&db, a.devices).await;
    println!(
        "load: {} devices in {:.1} s",
        a.devices,
        started.elapsed().as_secs_f64()
    );
    let token = create_token(&db, cwd, &["--role", "coordinator", "--label", "bench"]);
    println!(
        "{} clients, {} s per measurement, SQLite, release build",
        a.clients, a.secs
    );
    println!(
        "{:<8}{:<14}{:>10}{:>12}{:>10}{:>10}",
        "round", "audit reads", "requests", "requests/s", "p50 ms", "p99 ms"
    );
    let mut sums: [[f64; 2]; 2] = [[0.0; 2]; 2];
    for round in 0..4 {
        let record = round % 2 == 0;
        let (vft, _) = spawn_vft(
            "serve",
            &db,
            cwd,
            None,
            &[],
            &[(
                "VFT_AUDIT__RECORD_READS",
                if record { "true" } else { "false" },
            )],
        );
        wait_ready(&vft.api).await;
        for (k, (what, path)) in [("detail", detail as fn(usize) -> String), ("page", page)]
            .into_iter()
            .enumerate()
        {
            let r = hammer(&vft.api, &token, a.clients, a.secs, path).await;
            sums[usize::from(!record)][k] += r.per_sec / 2.0;
            println!(
                "{:<8}{:<14}{:>10}{:>12.0}{:>10.2}{:>10.2}   {what}",
                round + 1,
                if record { "on" } else { "off" },
                r.requests,
                r.per_sec,
                r.p50_ms,
                r.p99_ms
            );
        }
        assert!(vft.terminate().success());
    }
    let store = vft_store::open(&db, &Default::default())
        .await
        .expect("store");
    let head = store.audit_head().await.expect("head");
    println!("audit records written: {}", head.seq);
    for (k, what) in ["device detail", "inventory page (100)"].iter().enumerate() {
        println!(
            "mean {what}: {:.0} requests/s with the audit log, {:.0} without ({:+.1} %)",
            sums[0][k],
            sums[1][k],
            (sums[0][k] / sums[1][k] - 1.0) * 100.0
        );
    }
}
