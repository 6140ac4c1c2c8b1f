//! What Mosquitto's persistence setting costs: QoS 1 messages per second through Mosquitto into
//! `vft serve` (release build, SQLite, `synchronous = full`) with the old setting (a snapshot
//! every 30 s), the shipped one (`autosave_interval 1`: a snapshot every 1-2 s) and the one
//! rejected (`autosave_on_changes true`, `autosave_interval 1`: a snapshot after every
//! main-loop round with a "change", and every PUBACK from vft and every message queued for it
//! is one), in one run on one machine. Everything else is the deploy configuration.
//!
//! Run: `cargo bench -p vft-e2e --bench broker_persistence` (about a minute). Prints figures;
//! asserts only that every event arrived.
//!
//! - *live*: vft connected, 4 publishers (inflight 500 each) send a burst; messages/s from the
//!   first publish to the last event stored.
//! - *backlog*: vft down (its session waits at Mosquitto), the publishers send a burst
//!   (messages/s until the last PUBACK: every message is queued for vft), then vft starts and
//!   drains it (messages/s from its start to the last event stored; Mosquitto may still be
//!   working through vft's acknowledgements then).
//!
//! "written" is what Mosquitto wrote to disk meanwhile (`write_bytes` of `/proc/PID/io`): its
//! snapshots.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::*;

struct Setting {
    name: &'static str,
    lines: &'static [(&'static str, &'static str)],
    /// Runs get `1/divisor` of the messages: the rejected setting is slow.
    divisor: usize,
}

const SETTINGS: [Setting; 3] = [
    Setting {
        name: "old: autosave_interval 30",
        lines: &[
            ("autosave_on_changes", "false"),
            ("autosave_interval", "30"),
        ],
        divisor: 1,
    },
    Setting {
        name: "shipped: autosave_interval 1",
        lines: &[("autosave_on_changes", "false"), ("autosave_interval", "1")],
        divisor: 1,
    },
    Setting {
        name: "rejected: autosave_on_changes true, interval 1",
        lines: &[("autosave_on_changes", "true"), ("autosave_interval", "1")],
        divisor: 5,
    },
];

const PUBLISHERS: usize = 4;

fn payloads(tag: &str, messages: usize, per_message: usize) -> Vec<Vec<u8>> {
    (0..messages)
        .map(|m| {
            let batch: Vec<serde_json::Value> = (0..per_message)
                .map(|i| {
                    let n = m * per_message + i;
                    serde_json::json!({
                        "id": format!("{tag}{n}"), "ts": "2025-05-05T12:00:00+02:00",
                        "municipality": "3328", "device": format!("D{}", n % 5000),
                        "type": "heartbeat", "battery": n % 101,
                    })
                })
                .collect();
            if per_message == 1 {
                serde_json::to_vec(&batch[0])
            } else {
                serde_json::to_vec(&batch)
            }
            .expect("json")
        })
        .collect()
}

/// Bytes Mosquitto has written to storage so far.
fn written(mosquitto: &Mosquitto) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{}/io", mosquitto.pid())).unwrap_or_default();
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Publishes `payloads` from `PUBLISHERS` connections and waits for every PUBACK.
async fn publish(broker: &BrokerUnderTest, payloads: &[Vec<u8>]) {
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let mine: Vec<Vec<u8>> = payloads
            .iter()
            .skip(p)
            .step_by(PUBLISHERS)
            .cloned()
            .collect();
        let broker = broker.clone();
        tasks.push(tokio::spawn(async move {
            let mut publisher =
                Publisher::connect_with_inflight(&broker, &format!("bench-{p}"), 500).await;
            for payload in mine {
                publisher
                    .publish(&format!("vft/v1/hepro/gw-{p}/events"), payload)
                    .await;
            }
            publisher.wait_all_acked(Duration::from_secs(600)).await;
            publisher.disconnect().await;
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
}

async fn wait_stored(database_url: &str, total: u64) {
    let store = vft_store::open(database_url, &Default::default())
        .await
        .expect("store");
    eventually("all events stored", Duration::from_secs(600), || async {
        (store.event_count().await.ok()? >= total).then_some(())
    })
    .await;
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

async fn live(setting: &Setting, messages: usize, per_message: usize, print: bool) {
    let messages = messages / setting.divisor;
    let Some(mosquitto) = Mosquitto::start_with(setting.lines) else {
        return;
    };
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let (vft, broker) = serve(&scratch, Some(&mosquitto.broker), &[]);
    wait_ready(&vft.api).await;
    let payloads = payloads("l", messages, per_message);
    let before = written(&mosquitto);
    let started = Instant::now();
    publish(&broker, &payloads).await;
    wait_stored(&db, (messages * per_message) as u64).await;
    let took = started.elapsed().as_secs_f64();
    assert!(vft.terminate().success());
    if !print {
        return;
    }
    println!(
        "  {:<34} {:<48} {:>8.0} msgs/s {:>8.0} events/s  written {:>8.1} MB",
        format!("live, {messages} msgs of {per_message} event(s)"),
        setting.name,
        messages as f64 / took,
        (messages * per_message) as f64 / took,
        mb(written(&mosquitto).saturating_sub(before)),
    );
}

async fn backlog(setting: &Setting, messages: usize) {
    let messages = messages / setting.divisor;
    let Some(mosquitto) = Mosquitto::start_with(setting.lines) else {
        return;
    };
    let scratch = Scratch::new();
    let db = scratch.database_url();
    // vft's session (and subscription) exists, then vft goes away.
    let (vft, broker) = serve(&scratch, Some(&mosquitto.broker), &[]);
    wait_ready(&vft.api).await;
    assert!(vft.terminate().success());
    let payloads = payloads("q", messages, 1);
    let before = written(&mosquitto);
    let started = Instant::now();
    publish(&broker, &payloads).await;
    let queued = started.elapsed().as_secs_f64();
    let queued_written = written(&mosquitto).saturating_sub(before);
    let started = Instant::now();
    let (vft, _) = serve(&scratch, Some(&mosquitto.broker), &[]);
    wait_stored(&db, messages as u64).await;
    let drained = started.elapsed().as_secs_f64();
    println!(
        "  {:<34} {:<48} queued {:>8.0} msgs/s (written {:>8.1} MB), drained {:>8.0} msgs/s (written {:>8.1} MB)",
        format!("backlog, {messages} msgs of 1 event"),
        setting.name,
        messages as f64 / queued,
        mb(queued_written),
        messages as f64 / drained,
        mb(written(&mosquitto).saturating_sub(before + queued_written)),
    );
    assert!(vft.terminate().success());
}

#[tokio::main]
async fn main() {
    println!(
        "Mosquitto persistence settings, QoS 1 through Mosquitto into vft, {} cores, {PUBLISHERS} publishers",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let deploy = std::fs::read_to_string(workspace_root().join("deploy/mosquitto/mosquitto.conf"))
        .expect("deploy config");
    let shipped: Vec<&str> = deploy
        .lines()
        .filter(|l| l.starts_with("autosave"))
        .collect();
    println!(
        "deploy/mosquitto/mosquitto.conf has: {}",
        shipped.join(", ")
    );
    // A first run warms the machine up (page cache, CPU frequency); not printed.
    live(&SETTINGS[0], 20_000, 1, false).await;
    // Settings alternate within each scenario, so that a drift of the machine hits them all.
    for s in &SETTINGS {
        live(s, 100_000, 1, true).await;
    }
    for s in &SETTINGS {
        live(s, 3_000, 100, true).await;
    }
    for s in &SETTINGS {
        backlog(s, 25_000).await;
    }
}
