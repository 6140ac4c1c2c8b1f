//! End-to-end ingest throughput: events/second that `vft serve` stores, from the first publish
//! to the last event committed, through the embedded broker into SQLite (the defaults).
//!
//! Run: `cargo bench -p vft-e2e --bench ingest` (add `-- --mosquitto` to also measure through
//! Mosquitto with the deploy configuration, `-- --baseline PATH` to measure another vft build
//! first in the same run). Prints figures; asserts only that every event
//! arrived.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};
use support::*;

struct Scenario {
    name: &'static str,
    events: usize,
    per_message: usize,
    publishers: usize,
}

async fn run(scenario: &Scenario, external: Option<&BrokerUnderTest>) {
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let (vft, broker) = serve(&scratch, external, &[]);
    wait_ready(&vft.api).await;
    let store = vft_store::open(&db, &Default::default())
        .await
        .expect("store");

    let messages = scenario.events / scenario.per_message;
    let payloads: Vec<Vec<u8>> = (0..messages)
        .map(|m| {
            let batch: Vec<serde_json::Value> = (0..scenario.per_message)
                .map(|i| {
                    let n = m * scenario.per_message + i;
                    serde_json::json!({
                        "id": format!("b{n}"), "ts": "2025-05-05T12:00:00+02:00", "municipality": "3328",
                        "device": format!("D{}", n % 5000), "type": "heartbeat", "battery": n % 101,
                    })
                })
                .collect();
            if scenario.per_message == 1 { serde_json::to_vec(&batch[0]) } else { serde_json::to_vec(&batch) }.expect("json")
        })
        .collect();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..scenario.publishers {
        let mine: Vec<Vec<u8>> = payloads
            .iter()
            .skip(p)
            .step_by(scenario.publishers)
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
    let published = started.elapsed();
    let total = (messages * scenario.per_message) as u64;
    eventually("all events stored", Duration::from_secs(600), || async {
        (store.event_count().await.ok()? >= total).then_some(())
    })
    .await;
    let stored = started.elapsed();
    println!(
        "{:<44} {:>8} events {:>7} msgs  published {:>6.2} s  stored {:>6.2} s  {:>9.0} events/s  {:>8.0} msgs/s",
        format!(
            "{} ({})",
            scenario.name,
            if external.is_some() {
                "mosquitto"
            } else {
                "embedded"
            }
        ),
        total,
        messages,
        published.as_secs_f64(),
        stored.as_secs_f64(),
        total as f64 / stored.as_secs_f64(),
        messages as f64 / stored.as_secs_f64(),
    );
    drop(vft);
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; only our own flag matters.
    let with_mosquitto = std::env::args().any(|a| a == "--mosquitto");
    let scenarios = [
        Scenario {
            name: "gateway batches of 100 events",
            events: 500_000,
            per_message: 100,
            publishers: 4,
        },
        Scenario {
            name: "one event per message",
            events: 100_000,
            per_message: 1,
            publishers: 4,
        },
    ];
    println!(
        "vft ingest, end to end (publish → broker → ingest → SQLite commit → ack), {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // `--baseline PATH`: the same scenarios against another vft build first (e.g. an older
    // release), so that both are measured in one run on the same machine.
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = args
        .iter()
        .position(|a| a == "--baseline")
        .and_then(|i| args.get(i + 1))
    {
        println!("baseline: {path}");
        use_binary(std::path::Path::new(path));
        for s in &scenarios {
            run(s, None).await;
        }
        use_binary(std::path::Path::new(VFT));
        println!("this build:");
    }
    for s in &scenarios {
        run(s, None).await;
    }
    if with_mosquitto && let Some(m) = Mosquitto::start() {
        for s in &scenarios {
            run(s, Some(&m.broker)).await;
        }
    }
}
