//! Soak: does the yearly table stay as fast while ingest runs for a long time? `vft serve`
//! (embedded broker, SQLite) takes a steady stream of gateway events — heartbeats, alarms,
//! installs and decommissions in the current month — while a coordinator asks for this year's
//! table back to back. Latencies are grouped per minute; the goal is a flat 99th
//! percentile (the last minute within 1.5× the first).
//!
//! Run: `cargo bench -p vft-e2e --bench soak` (10 minutes at 3 000 events/s on a fleet of
//! 20 000 devices; `-- --minutes 2 --rate 1000 --devices 5000` for a quick look). Prints
//! figures; asserts only that every published event was stored.

#[path = "../tests/support/mod.rs"]
mod support;

use chrono::{DateTime, Datelike, Duration as Days, TimeZone, Utc};
use std::time::{Duration, Instant};
use support::*;

const MUNICIPALITIES: [&str; 6] = ["3320", "3322", "3324", "3326", "3328", "3330"];
const KINDS: [&str; 3] = ["safety_alarm", "smoke_detector", "medication_support"];
/// Events per message, as a gateway batches them.
const PER_MESSAGE: usize = 10;
/// How often the publisher sends its share of the rate.
const TICK: Duration = Duration::from_millis(100);

fn flag<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} needs a number, got {v:?}"))
        })
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// The `n`th event of the live stream at `now`: mostly heartbeats of the preloaded fleet, some
/// alarms, and installs and decommissions that change this month's figures.
fn live_event(n: usize, fleet: usize, now: DateTime<Utc>) -> serde_json::Value {
    let municipality = MUNICIPALITIES[n % MUNICIPALITIES.len()];
    let device = format!("F{}", (n * 7919) % fleet);
    let id = format!("live-{n}");
    match n % 100 {
        0 => serde_json::json!({
            "id": id, "ts": ts(now), "municipality": municipality, "device": format!("NEW{n}"),
            "type": "installed", "kind": KINDS[n % KINDS.len()],
            "recipient": format!("r-new-{n}"),
        }),
        1 => serde_json::json!({
            "id": id, "ts": ts(now), "municipality": municipality, "device": device,
            "type": "decommissioned", "reason": "no_longer_needed",
        }),
        2 | 3 => serde_json::json!({
            "id": id, "ts": ts(now), "municipality": municipality, "device": device,
            "type": if n % 100 == 2 { "alarm" } else { "alarm_acknowledged" },
            "alarm": format!("A{}", n / 100), "cause": "button",
        }),
        _ => serde_json::json!({
            "id": id, "ts": ts(now), "municipality": municipality, "device": device,
            "type": "heartbeat", "battery": n % 101,
        }),
    }
}

/// The preloaded fleet: installed during this year before today, each with a recipient.
fn fleet_install(i: usize, year_start: DateTime<Utc>, span_secs: i64) -> serde_json::Value {
    let at = year_start + Days::seconds((i as i64 * 104_729) % span_secs.max(1));
    serde_json::json!({
        "id": format!("install-{i}"), "ts": ts(at),
        "municipality": MUNICIPALITIES[i % MUNICIPALITIES.len()], "device": format!("F{i}"),
        "type": "installed", "kind": KINDS[i % KINDS.len()], "recipient": format!("r-{i}"),
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let minutes: u64 = flag("--minutes", 10);
    let rate: usize = flag("--rate", 3000);
    let fleet: usize = flag("--devices", 20_000);
    println!(
        "vft soak: yearly table while ingesting {rate} events/s for {minutes} min over {fleet} devices, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let (vft, broker) = serve(&scratch, None, &[]);
    wait_ready(&vft.api).await;
    let token = create_token(&db, scratch.dir.path(), &["--role", "coordinator"]);
    let store = vft_store::open(&db, &Default::default())
        .await
        .expect("store");

    // The fleet, through the broker like everything else.
    let now = Utc::now();
    let year_start = chrono_tz::Europe::Oslo
        .with_ymd_and_hms(now.year(), 1, 1, 0, 0, 0)
        .single()
        .expect("new year")
        .with_timezone(&Utc);
    let span = (now - Days::days(1) - year_start).num_seconds();
    let mut publisher = Publisher::connect_with_inflight(&broker, "soak-fleet", 500).await;
    let installs: Vec<serde_json::Value> = (0..fleet)
        .map(|i| fleet_install(i, year_start, span))
        .collect();
    for chunk in installs.chunks(100) {
        publisher
            .publish(
                "vft/v1/hepro/gw-fleet/events",
                serde_json::to_vec(chunk).expect("json"),
            )
            .await;
    }
    publisher.wait_all_acked(Duration::from_secs(300)).await;
    publisher.disconnect().await;
    println!("fleet of {fleet} installed");

    // The stream, paced per tick, and the table asked for back to back, both until the end.
    let total = Duration::from_secs(minutes * 60);
    let started = Instant::now();
    let stream = {
        let broker = broker.clone();
        tokio::spawn(async move {
            let mut publisher = Publisher::connect_with_inflight(&broker, "soak-live", 1000).await;
            let per_tick = (rate as f64 * TICK.as_secs_f64()).round() as usize;
            let mut ticks = tokio::time::interval(TICK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0usize;
            while started.elapsed() < total {
                ticks.tick().await;
                let now = Utc::now();
                let events: Vec<serde_json::Value> = (n..n + per_tick)
                    .map(|i| live_event(i, fleet, now))
                    .collect();
                n += per_tick;
                for chunk in events.chunks(PER_MESSAGE) {
                    publisher
                        .publish(
                            "vft/v1/hepro/gw-live/events",
                            serde_json::to_vec(chunk).expect("json"),
                        )
                        .await;
                }
            }
            publisher.wait_all_acked(Duration::from_secs(300)).await;
            publisher.disconnect().await;
            n
        })
    };
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/rollups/devices?year={}", vft.api, now.year());
    let mut samples: Vec<(u64, f64)> = Vec::new();
    while started.elapsed() < total {
        let asked = Instant::now();
        let resp = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("GET table");
        assert_eq!(resp.status(), 200, "GET {url}");
        let _ = resp.bytes().await.expect("body");
        let ms = asked.elapsed().as_secs_f64() * 1000.0;
        samples.push((asked.duration_since(started).as_secs() / 60, ms));
    }
    let published = stream.await.expect("stream");
    let expected = (fleet + published) as u64;
    eventually("every event stored", Duration::from_secs(300), || async {
        (store.event_count().await.ok()? >= expected).then_some(())
    })
    .await;
    let elapsed = started.elapsed().as_secs_f64();

    println!(
        "stream: {published} events in {elapsed:.0} s ({:.0} events/s), all acknowledged and stored",
        published as f64 / elapsed
    );
    println!("minute  requests  p50 ms  p99 ms  max ms");
    let mut p99s = Vec::new();
    for minute in 0..minutes {
        let mut ms: Vec<f64> = samples
            .iter()
            .filter(|(m, _)| *m == minute)
            .map(|(_, ms)| *ms)
            .collect();
        ms.sort_by(f64::total_cmp);
        let p99 = percentile(&ms, 99.0);
        p99s.push(p99);
        println!(
            "{:>6}  {:>8}  {:>6.1}  {:>6.1}  {:>6.1}",
            minute + 1,
            ms.len(),
            percentile(&ms, 50.0),
            p99,
            ms.last().copied().unwrap_or(f64::NAN)
        );
    }
    if let (Some(first), Some(last)) = (p99s.first(), p99s.last()) {
        println!(
            "yearly table p99: first minute {first:.1} ms, last minute {last:.1} ms, ratio {:.2} (goal ≤ 1.5)",
            last / first
        );
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", vft.pid())).unwrap_or_default();
    if let Some(peak) = status.lines().find(|l| l.starts_with("VmHWM:")) {
        println!(
            "server peak resident memory: {}",
            peak.trim_start_matches("VmHWM:").trim()
        );
    }
}
