//! End-to-end ingest throughput: events/second that `vft serve` stores, from the first publish
//! to the last event committed, through the embedded broker into SQLite (the defaults).
//!
//! Run: `cargo bench -p vft-e2e --bench ingest` (add `-- --mosquitto` to also measure through
//! Mosquitto with the deploy configuration, `-- --baseline PATH` to measure another vft build
//! first in the same run, `-- --perimeter` to measure the embedded listener again with
//! gateway credentials and TLS). Prints figures; asserts only that every event arrived.

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

/// How the publishers reach the embedded listener: anonymously over plain MQTT (the
/// default), or with a gateway credential over TLS (`--perimeter`).
#[derive(Clone)]
struct Secured {
    credentials: (String, String),
    tls: std::sync::Arc<vft_ingest::tls::ClientConfig>,
    port: u16,
}

async fn run(scenario: &Scenario, external: Option<&BrokerUnderTest>) {
    run_with(scenario, external, false).await
}

async fn run_with(scenario: &Scenario, external: Option<&BrokerUnderTest>, perimeter: bool) {
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let (ca, cert, key) = test_ca(scratch.dir.path());
    let tls_addr = format!("127.0.0.1:{}", free_port());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let env: Vec<(&str, &str)> = if perimeter {
        vec![
            ("VFT_MQTT__ALLOW_ANONYMOUS", "false"),
            ("VFT_MQTT__TLS_CERT", cert.as_str()),
            ("VFT_MQTT__TLS_KEY", key.as_str()),
            ("VFT_MQTT__EMBEDDED_TLS_ADDR", tls_addr.as_str()),
        ]
    } else {
        Vec::new()
    };
    let (vft, broker) = serve(&scratch, external, &env);
    wait_ready(&vft.api).await;
    let secured = perimeter.then(|| {
        let out = vft_cli(
            &[
                "mqtt-credential",
                "create",
                "--database-url",
                &db,
                "--vendor",
                "hepro",
            ],
            scratch.dir.path(),
        )
        .expect("mqtt-credential create");
        let password = out.lines().last().expect("password").trim().to_owned();
        Secured {
            credentials: ("hepro".into(), password),
            tls: vft_ingest::tls::client_config(Some(&ca)).expect("TLS client configuration"),
            port: tls_addr
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port"),
        }
    });
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
        let secured = secured.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("bench-{p}");
            let mut publisher = match secured {
                None => Publisher::connect_with_inflight(&broker, &id, 500).await,
                Some(s) => {
                    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", s.port);
                    options
                        .set_keep_alive(Duration::from_secs(30))
                        .set_max_packet_size(2 << 20, 2 << 20)
                        .set_inflight(500)
                        .set_credentials(s.credentials.0, s.credentials.1)
                        .set_transport(rumqttc::Transport::tls_with_config(
                            rumqttc::TlsConfiguration::Rustls(s.tls),
                        ));
                    Publisher::from_options(options).await
                }
            };
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
            match (external.is_some(), perimeter) {
                (true, _) => "mosquitto",
                (false, false) => "embedded",
                (false, true) => "embedded, credential + TLS",
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
    if std::env::args().any(|a| a == "--perimeter") {
        for s in &scenarios {
            run_with(s, None, true).await;
        }
    }
    if with_mosquitto && let Some(m) = Mosquitto::start() {
        for s in &scenarios {
            run(s, Some(&m.broker)).await;
        }
    }
}
