//! End-to-end ingest throughput: events/second that `vft serve` stores, from the first publish
//! to the last event committed, through the embedded broker into SQLite (the defaults), and how
//! close that comes to the two ceilings measured in the same run with the same payloads:
//!
//! - *broker delivery*: Mosquitto (deploy configuration) passing the payloads from the same
//!   publishers to a plain QoS 1 subscriber (the embedded listener refuses SUBSCRIBE), from
//!   the first publish to the last message delivered;
//! - *raw store*: a fresh store on the same backend taking the same events, parsed as ingest
//!   parses them, through `write_batch` (derived state included) in batches of the size the
//!   batcher formed in the end-to-end run (its `vft_ingest_batch_messages`); the ceiling
//!   counts the `write_batch` calls only, the parse is shown beside it.
//!
//! The ratio is end to end / the lower ceiling. Beside the figures: the batches the batcher
//! formed and its time in `write_batch`, and the CPU seconds each process used (SQLite
//! threads apart), to show where the time goes.
//!
//! Run: `cargo bench -p vft-e2e --bench ingest` (add `-- --mosquitto` to also measure through
//! Mosquitto with the deploy configuration, `-- --baseline PATH` to measure another vft build
//! first in the same run, `-- --perimeter` to measure the embedded listener again with
//! gateway credentials and TLS). Prints figures; asserts only that every event arrived.

#[path = "../tests/support/mod.rs"]
mod support;

use chrono::Utc;
use std::time::{Duration, Instant};
use support::*;

struct Scenario {
    name: &'static str,
    events: usize,
    per_message: usize,
    publishers: usize,
}

impl Scenario {
    fn messages(&self) -> usize {
        self.events / self.per_message
    }

    /// The messages, in the order they are published (message `i` goes to publisher
    /// `i % publishers`): the same bytes for every measurement.
    fn payloads(&self) -> Vec<Vec<u8>> {
        (0..self.messages())
            .map(|m| {
                let batch: Vec<serde_json::Value> = (0..self.per_message)
                    .map(|i| {
                        let n = m * self.per_message + i;
                        serde_json::json!({
                            "id": format!("b{n}"), "ts": "2025-05-05T12:00:00+02:00", "municipality": "3328",
                            "device": format!("D{}", n % 5000), "type": "heartbeat", "battery": n % 101,
                        })
                    })
                    .collect();
                if self.per_message == 1 {
                    serde_json::to_vec(&batch[0])
                } else {
                    serde_json::to_vec(&batch)
                }
                .expect("json")
            })
            .collect()
    }
}

fn topic(publisher: usize) -> String {
    format!("vft/v1/hepro/gw-{publisher}/events")
}

/// CPU seconds used so far by a process (`self` or a pid), in total, by its SQLite threads
/// (sqlx runs each connection on a thread of that name) and by vft's batcher thread (which
/// builds the statements): where a run's time went.
#[derive(Clone, Copy)]
struct Cpu {
    total: f64,
    sqlite: f64,
    batcher: f64,
}

impl Cpu {
    fn of(pid: &str) -> Self {
        // (utime + stime) in clock ticks, and the thread's name, from a `stat` file.
        fn read(path: &str) -> Option<(String, f64)> {
            let stat = std::fs::read_to_string(path).ok()?;
            let (head, rest) = stat.rsplit_once(") ")?;
            let name = head.split_once(" (")?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            // USER_HZ: /proc counts in hundredths of a second on every Linux architecture
            // vft runs on.
            Some((name, ticks / 100.0))
        }
        let total = read(&format!("/proc/{pid}/stat")).map_or(0.0, |(_, s)| s);
        let threads: Vec<(String, f64)> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| read(&format!("{}/stat", t.path().display())))
            .collect();
        let named = |prefix: &str| -> f64 {
            threads
                .iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .map(|(_, s)| s)
                .sum()
        };
        Self {
            total,
            sqlite: named("sqlx-sqlite"),
            batcher: named("vft-batcher"),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            total: self.total - before.total,
            sqlite: self.sqlite - before.sqlite,
            batcher: self.batcher - before.batcher,
        }
    }
}

/// How the publishers reach the embedded listener: anonymously over plain MQTT (the
/// default), or with a gateway credential over TLS (`--perimeter`).
#[derive(Clone)]
struct Secured {
    credentials: (String, String),
    tls: std::sync::Arc<vft_ingest::tls::ClientConfig>,
    port: u16,
}

/// What one end-to-end run measured.
struct EndToEnd {
    label: String,
    events_per_s: f64,
    /// Messages per batch the batcher formed, on average (`None`: a build without the metric).
    batch_messages: Option<f64>,
}

/// Publishes `payloads` with QoS 1 from `scenario.publishers` connections (inflight 500 each)
/// and waits for every PUBACK.
async fn publish_all(
    scenario: &Scenario,
    payloads: &[Vec<u8>],
    broker: &BrokerUnderTest,
    secured: Option<&Secured>,
) {
    let mut tasks = Vec::new();
    for p in 0..scenario.publishers {
        let mine: Vec<Vec<u8>> = payloads
            .iter()
            .skip(p)
            .step_by(scenario.publishers)
            .cloned()
            .collect();
        let broker = broker.clone();
        let secured = secured.cloned();
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
            let topic = topic(p);
            for payload in mine {
                publisher.publish(&topic, payload).await;
            }
            publisher.wait_all_acked(Duration::from_secs(600)).await;
            publisher.disconnect().await;
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }
}

async fn run(scenario: &Scenario, external: Option<&BrokerUnderTest>) -> EndToEnd {
    run_with(scenario, external, false).await
}

async fn run_with(
    scenario: &Scenario,
    external: Option<&BrokerUnderTest>,
    perimeter: bool,
) -> EndToEnd {
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let (ca, cert, key) = test_ca(scratch.dir.path());
    let tls_addr = format!("127.0.0.1:{}", free_port());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut env: Vec<(&str, &str)> = if perimeter {
        vec![
            ("VFT_MQTT__ALLOW_ANONYMOUS", "false"),
            ("VFT_MQTT__TLS_CERT", cert.as_str()),
            ("VFT_MQTT__TLS_KEY", key.as_str()),
            ("VFT_MQTT__EMBEDDED_TLS_ADDR", tls_addr.as_str()),
        ]
    } else {
        Vec::new()
    };
    // A session of its own at Mosquitto: under the default client id, vft would be handed
    // what Mosquitto kept for an earlier run's vft (the broker ceiling's messages among them)
    // and count those events as this run's.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let client_id = format!(
        "vft-bench-{}",
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    if external.is_some() {
        env.push(("VFT_MQTT__CLIENT_ID", client_id.as_str()));
    }
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

    let messages = scenario.messages();
    let payloads = scenario.payloads();
    let cpu = (Cpu::of(&vft.pid().to_string()), Cpu::of("self"));
    let started = Instant::now();
    publish_all(scenario, &payloads, &broker, secured.as_ref()).await;
    let published = started.elapsed();
    let total = (messages * scenario.per_message) as u64;
    eventually("all events stored", Duration::from_secs(600), || async {
        (store.event_count().await.ok()? >= total).then_some(())
    })
    .await;
    let stored = started.elapsed();
    let cpu = (
        Cpu::of(&vft.pid().to_string()).since(cpu.0),
        Cpu::of("self").since(cpu.1),
    );
    let batcher = Batcher::read(&vft.api, messages).await;
    let label = format!(
        "{} ({})",
        scenario.name,
        match (external.is_some(), perimeter) {
            (true, _) => "mosquitto",
            (false, false) => "embedded",
            (false, true) => "embedded, credential + TLS",
        }
    );
    println!(
        "{label:<44} {:>8} events {:>7} msgs  published {:>6.2} s  stored {:>6.2} s  {:>9.0} events/s  {:>8.0} msgs/s",
        total,
        messages,
        published.as_secs_f64(),
        stored.as_secs_f64(),
        total as f64 / stored.as_secs_f64(),
        messages as f64 / stored.as_secs_f64(),
    );
    if let Some(b) = &batcher {
        println!(
            "  batcher: {} batches of {:.1} messages ({:.0} events) on average; write_batch busy {:.2} s of the {:.2} s",
            b.batches,
            b.mean_messages(),
            b.mean_messages() * scenario.per_message as f64,
            b.commit_seconds,
            stored.as_secs_f64(),
        );
    }
    println!(
        "  cpu: vft {:.2} s (its SQLite threads {:.2} s, its batcher {:.2} s), the publishers {:.2} s, in {:.2} s",
        cpu.0.total,
        cpu.0.sqlite,
        cpu.0.batcher,
        cpu.1.total,
        stored.as_secs_f64(),
    );
    drop(vft);
    EndToEnd {
        label,
        events_per_s: total as f64 / stored.as_secs_f64(),
        batch_messages: batcher.map(|b| b.mean_messages()),
    }
}

/// The batcher's own figures, from vft's `/metrics` (Prometheus summaries: `_sum` counts
/// since start, `_count` the last 40-60 s, longer than a run here).
struct Batcher {
    batches: f64,
    messages: f64,
    commit_seconds: f64,
}

impl Batcher {
    /// Once the batcher has counted `messages`: its figures follow a commit by a moment, and
    /// the last commit may be seen in the database first.
    async fn read(api: &str, messages: usize) -> Option<Self> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = get(&format!("{api}/metrics"), None)
                .await
                .text()
                .await
                .ok()?;
            let value = |name: &str| {
                text.lines().find_map(|l| {
                    l.strip_prefix(name)?
                        .strip_prefix(' ')?
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
            };
            let counted = value("vft_ingest_messages_total").unwrap_or(0.0);
            if counted >= messages as f64 || Instant::now() > deadline {
                return Some(Self {
                    batches: value("vft_ingest_batch_messages_count")?,
                    messages: value("vft_ingest_batch_messages_sum")?,
                    commit_seconds: value("vft_ingest_commit_seconds_sum")?,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn mean_messages(&self) -> f64 {
        self.messages / self.batches.max(1.0)
    }
}

/// The broker-delivery ceiling: the same payloads from the same publishers through Mosquitto
/// to one plain subscriber (QoS 1, acknowledging as it reads); events/s from the first publish
/// to the last message delivered.
async fn broker_delivery(scenario: &Scenario, mosquitto: &Mosquitto) -> f64 {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let broker = &mosquitto.broker;
    let payloads = scenario.payloads();
    let messages = payloads.len();
    let mut options = MqttOptions::new(
        format!("ceiling-{}", scenario.per_message),
        "127.0.0.1",
        broker.port,
    );
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(2 << 20, 2 << 20)
        .set_clean_session(true);
    if let Some((u, p)) = &broker.credentials {
        options.set_credentials(u, p);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    client
        .subscribe("vft/v1/#", QoS::AtLeastOnce)
        .await
        .expect("queue subscribe");
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => return,
                Ok(_) => {}
                Err(e) => panic!("subscriber: {e}"),
            }
        }
    })
    .await
    .expect("SUBACK within 30 s");
    let delivered = tokio::spawn(async move {
        let mut seen = 0;
        while seen < messages {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => seen += 1,
                Ok(_) => {}
                Err(e) => panic!("subscriber after {seen} of {messages} messages: {e}"),
            }
        }
        Instant::now()
    });
    let cpu = (Cpu::of(&mosquitto.pid().to_string()), Cpu::of("self"));
    let started = Instant::now();
    publish_all(scenario, &payloads, broker, None).await;
    let published = started.elapsed();
    let last = tokio::time::timeout(Duration::from_secs(600), delivered)
        .await
        .expect("every message delivered within 600 s")
        .expect("subscriber");
    let cpu = (
        Cpu::of(&mosquitto.pid().to_string()).since(cpu.0),
        Cpu::of("self").since(cpu.1),
    );
    let _ = client.try_disconnect();
    let took = last.duration_since(started);
    let events = (messages * scenario.per_message) as f64;
    println!(
        "  ceiling, broker delivery (mosquitto → QoS 1 subscriber): published {:>6.2} s  delivered {:>6.2} s  {:>9.0} events/s  {:>8.0} msgs/s",
        published.as_secs_f64(),
        took.as_secs_f64(),
        events / took.as_secs_f64(),
        messages as f64 / took.as_secs_f64(),
    );
    println!(
        "    cpu: mosquitto {:.2} s, the publishers and the subscriber {:.2} s",
        cpu.0.total, cpu.1.total,
    );
    events / took.as_secs_f64()
}

/// The raw-store ceiling: a fresh store on the same backend (SQLite, vft's default options),
/// the payloads parsed as ingest parses them (topic, identity-number check of the topic,
/// `parse_payload_at` with the default configuration) and written with `write_batch` in
/// batches of `batch_messages` messages, one at a time as the batcher does. Events/s counts
/// the `write_batch` calls only.
async fn store_ceiling(scenario: &Scenario, batch_messages: usize) -> f64 {
    let config = vft::config::Config::default();
    let registry = config.registry().expect("the default region");
    let times = config.plausible_times();
    let prefix = &config.mqtt.topic_prefix;
    let scratch = Scratch::new();
    let store = vft_store::open(&scratch.database_url(), &config.store_options())
        .await
        .expect("store");
    let payloads = scenario.payloads();
    let topics: Vec<String> = (0..scenario.publishers).map(topic).collect();
    let batch_messages = batch_messages.max(1);
    let (mut parsing, mut writing, mut stored, mut batches) =
        (Duration::ZERO, Duration::ZERO, 0u64, 0usize);
    let cpu = Cpu::of("self");
    for (b, chunk) in payloads.chunks(batch_messages).enumerate() {
        let started = Instant::now();
        let parsed_at = Utc::now();
        let mut events = Vec::new();
        for (i, payload) in chunk.iter().enumerate() {
            let topic = &topics[(b * batch_messages + i) % scenario.publishers];
            assert!(!vft_domain::nin::find(topic));
            let (t, _) = vft_domain::EventTopic::parse_any(prefix, topic).expect("topic");
            for item in vft_domain::parse_payload_at(
                Ok(&t),
                payload,
                &registry,
                config.ingest.max_payload_bytes,
                &times,
                parsed_at,
            ) {
                match item {
                    vft_domain::ParsedItem::Event(e) => events.push(*e),
                    vft_domain::ParsedItem::Dead { reason, .. } => {
                        panic!("the bench's payloads are valid: {reason}")
                    }
                }
            }
        }
        parsing += started.elapsed();
        let started = Instant::now();
        let outcome = store
            .write_batch(&events, &[], Utc::now())
            .await
            .expect("write_batch");
        writing += started.elapsed();
        stored += outcome.events_inserted;
        batches += 1;
    }
    let cpu = Cpu::of("self").since(cpu);
    assert_eq!(stored, scenario.events as u64, "every event stored once");
    let events = stored as f64;
    println!(
        "  ceiling, raw store (write_batch, {batches} batches of {batch_messages} messages = {} events): {:>6.2} s  {:>9.0} events/s  (parsing them: {:.2} s, {:.0} events/s)",
        batch_messages * scenario.per_message,
        writing.as_secs_f64(),
        events / writing.as_secs_f64(),
        parsing.as_secs_f64(),
        events / parsing.as_secs_f64(),
    );
    println!(
        "    cpu: parsing and writing {:.2} s (the SQLite thread {:.2} s)",
        cpu.total, cpu.sqlite
    );
    events / writing.as_secs_f64()
}

/// One end-to-end figure against its ceilings, for the summary.
struct Row {
    label: String,
    end_to_end: f64,
    broker: Option<f64>,
    store: Option<f64>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        let lower = [self.broker, self.store]
            .into_iter()
            .flatten()
            .reduce(f64::min)?;
        Some(self.end_to_end / lower)
    }
}

/// The ceilings of one end-to-end run: the broker's (measured once per scenario) and the
/// store's in the batch size that run formed.
async fn against_ceilings(scenario: &Scenario, run: EndToEnd, broker: Option<f64>) -> Row {
    let store = match run.batch_messages {
        Some(m) => Some(store_ceiling(scenario, m.round() as usize).await),
        None => {
            println!("  ceiling, raw store: not measured (this build reports no batch sizes)");
            None
        }
    };
    let row = Row {
        label: run.label,
        end_to_end: run.events_per_s,
        broker,
        store,
    };
    match row.ratio() {
        Some(r) => println!("  ratio, end to end / lower ceiling: {r:.2}"),
        None => println!("  ratio: no ceiling measured"),
    }
    row
}

fn figure(f: Option<f64>) -> String {
    f.map_or("-".into(), |f| format!("{f:.0}"))
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; only our own flags matter.
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
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
    // The broker-delivery ceiling needs a broker that serves subscribers: Mosquitto.
    let mosquitto = Mosquitto::start();
    let mut rows = Vec::new();
    // `--baseline PATH`: the same scenarios against another vft build first (e.g. an older
    // release), so that both are measured in one run on the same machine.
    let baseline = args
        .iter()
        .position(|a| a == "--baseline")
        .and_then(|i| args.get(i + 1));
    for s in &scenarios {
        let broker = match &mosquitto {
            Some(m) => Some(broker_delivery(s, m).await),
            None => None,
        };
        if let Some(path) = baseline {
            println!("baseline: {path}");
            use_binary(std::path::Path::new(path));
            let mut row = against_ceilings(s, run(s, None).await, broker).await;
            row.label = format!("baseline: {}", row.label);
            rows.push(row);
            use_binary(std::path::Path::new(VFT));
            println!("this build:");
        }
        rows.push(against_ceilings(s, run(s, None).await, broker).await);
        if flag("--perimeter") {
            rows.push(against_ceilings(s, run_with(s, None, true).await, broker).await);
        }
        if flag("--mosquitto")
            && let Some(m) = &mosquitto
        {
            rows.push(against_ceilings(s, run(s, Some(&m.broker)).await, broker).await);
        }
    }
    println!(
        "\n{:<56} {:>11} {:>16} {:>10} {:>6}",
        "events/s", "end to end", "broker delivery", "raw store", "ratio"
    );
    for r in &rows {
        println!(
            "{:<56} {:>11.0} {:>16} {:>10} {:>6}",
            r.label,
            r.end_to_end,
            figure(r.broker),
            figure(r.store),
            r.ratio().map_or("-".into(), |r| format!("{r:.2}")),
        );
    }
}
