//! MQTT ingest: subscribe to the event topics, parse each message into events and dead letters,
//! store them in one transaction per batch, and only then acknowledge the messages to the broker,
//! in arrival order. Only this crate and the simulator touch rumqttc.
//!
//! Two tasks, because rumqttc's event loop must never wait on us: the *connection* task polls
//! the event loop (owning reconnects and backoff) and hands publishes over an unbounded channel;
//! the *batcher* task stores and acks. The channel is bounded in practice by the broker's
//! inflight window: it sends no more unacknowledged QoS 1 messages than that.

mod connection;

use chrono::Utc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{Instrument, error, info_span};
use vft_domain::adapter::AdapterConfig;
use vft_domain::topic::parse_status;
use vft_domain::{DeadLetterReason, EventTopic, ParsedItem, Registry, TopicKind, parse_payload};
use vft_store::{NewDeadLetter, Store};

pub use connection::BrokerAddress;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid broker URL {url:?}: {why}")]
    BrokerUrl { url: String, why: String },
    #[error("ingest task failed: {0}")]
    Task(String),
}

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub broker: BrokerAddress,
    /// Stable per replica: the broker keeps the persistent session (and unacked messages) under it.
    pub client_id: String,
    pub topic_prefix: String,
    /// MQTT shared-subscription group; replicas in one group split the stream.
    pub shared_group: Option<String>,
    pub keep_alive: Duration,
    pub batch_max_messages: usize,
    pub batch_max_wait: Duration,
    /// Payloads above this become `oversized` dead letters.
    pub max_payload_bytes: usize,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Vendors that publish their own format on their own topics, mapped to canonical events.
    pub adapters: Vec<AdapterConfig>,
}

/// Shared view of the ingest's health, for readiness and metrics.
#[derive(Debug, Default)]
pub struct IngestStatus {
    /// Connected and subscribed.
    connected: AtomicBool,
    /// Bumped on every connect and disconnect; acks for messages of an older connection are
    /// dropped (the broker redelivers those, and their packet ids may be reused).
    generation: AtomicU64,
    messages: AtomicU64,
    events_stored: AtomicU64,
    dead_letters: AtomicU64,
}

impl IngestStatus {
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }
    pub fn messages_received(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }
    pub fn events_stored(&self) -> u64 {
        self.events_stored.load(Ordering::Relaxed)
    }
    pub fn dead_letters(&self) -> u64 {
        self.dead_letters.load(Ordering::Relaxed)
    }
}

/// One received publish, waiting for its batch to commit.
struct Received {
    publish: rumqttc::Publish,
    generation: u64,
}

/// Runs ingest until `shutdown` resolves. Messages not yet committed at shutdown stay
/// unacknowledged, so the broker redelivers them to the next run.
pub async fn run(
    config: IngestConfig,
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    status: Arc<IngestStatus>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), IngestError> {
    let (client, eventloop) = connection::client(&config);
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let conn = tokio::spawn(connection::drive(
        config.clone(),
        client.clone(),
        eventloop,
        tx,
        status.clone(),
        stop_rx.clone(),
    ));
    let batcher = tokio::spawn(batcher(
        config,
        store,
        registry,
        status,
        client.clone(),
        rx,
        stop_rx,
    ));
    shutdown.await;
    let _ = stop_tx.send(true);
    let _ = client.try_disconnect();
    for task in [conn, batcher] {
        task.await.map_err(|e| IngestError::Task(e.to_string()))?;
    }
    Ok(())
}

async fn batcher(
    config: IngestConfig,
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    status: Arc<IngestStatus>,
    client: rumqttc::AsyncClient,
    mut rx: mpsc::UnboundedReceiver<Received>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut batch: Vec<Received> = Vec::with_capacity(config.batch_max_messages);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            first = rx.recv() => match first {
                Some(first) => batch.push(first),
                None => return,
            },
        }
        // Group commit: take whatever arrived while the previous batch was committing, so
        // batches grow with load and add no latency when idle. An optional linger
        // (`batch_max_wait`) trades latency for larger batches.
        let deadline = tokio::time::Instant::now() + config.batch_max_wait;
        while batch.len() < config.batch_max_messages {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) if config.batch_max_wait.is_zero() => break,
                Err(mpsc::error::TryRecvError::Empty) => tokio::select! {
                    more = rx.recv() => match more {
                        Some(m) => batch.push(m),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                },
            }
        }
        let span = info_span!(
            "ingest_batch",
            messages = batch.len(),
            events = tracing::field::Empty,
            dead_letters = tracing::field::Empty
        );
        let committed = commit(
            &config,
            store.as_ref(),
            &registry,
            &status,
            &batch,
            &mut stop,
        )
        .instrument(span)
        .await;
        if !committed {
            return;
        }
        // Acks go out in arrival order, only for messages of the current connection.
        let generation = status.generation.load(Ordering::SeqCst);
        for m in batch.drain(..) {
            if m.generation == generation && client.ack(&m.publish).await.is_err() {
                // The event loop is gone (shutdown); the broker will redeliver.
                return;
            }
        }
    }
}

/// Parses and stores a batch, retrying the store with backoff until it succeeds or ingest
/// stops. Returns false when stopped before committing.
async fn commit(
    config: &IngestConfig,
    store: &dyn Store,
    registry: &Registry,
    status: &IngestStatus,
    batch: &[Received],
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut events = Vec::new();
    // The message each event came in, for a conflicting duplicate's dead letter.
    let mut event_messages = Vec::new();
    let mut dead = Vec::new();
    let mut statuses = Vec::new();
    for (message_index, m) in batch.iter().enumerate() {
        let topic = EventTopic::parse_any(&config.topic_prefix, &m.publish.topic);
        let items = match &topic {
            Ok((t, TopicKind::Status)) => match parse_status(&m.publish.payload) {
                Some(online) => {
                    statuses.push((t.clone(), online));
                    continue;
                }
                None => vec![ParsedItem::Dead {
                    raw: m.publish.payload.iter().take(1024).copied().collect(),
                    reason: DeadLetterReason::InvalidStatus,
                }],
            },
            Ok((t, TopicKind::Events)) => parse_payload(
                Ok(t),
                &m.publish.payload,
                registry,
                config.max_payload_bytes,
            ),
            Err(e) => match config
                .adapters
                .iter()
                .find_map(|a| a.matches(&m.publish.topic).map(|gw| (a, gw)))
            {
                Some((adapter, gateway)) => map_with(
                    adapter,
                    gateway,
                    &m.publish.payload,
                    registry,
                    config.max_payload_bytes,
                ),
                None => parse_payload(
                    Err(e),
                    &m.publish.payload,
                    registry,
                    config.max_payload_bytes,
                ),
            },
        };
        for item in items {
            match item {
                ParsedItem::Event(e) => {
                    events.push(*e);
                    event_messages.push(message_index);
                }
                ParsedItem::Dead { raw, reason } => {
                    metrics::counter!("vft_ingest_dead_letters_total", "reason" => reason.code())
                        .increment(1);
                    dead.push(NewDeadLetter {
                        topic: m.publish.topic.chars().take(1024).collect(),
                        payload: raw,
                        reason_code: reason.code().to_owned(),
                        reason: reason.to_string(),
                    });
                }
            }
        }
    }
    let span = tracing::Span::current();
    span.record("events", events.len());
    span.record("dead_letters", dead.len());
    let mut backoff = config.backoff_initial;
    loop {
        let started = Instant::now();
        let now = Utc::now();
        let written = async {
            // Gateway statuses in arrival order (a will and a rebirth may share a batch).
            for (t, online) in &statuses {
                store
                    .set_gateway_status(&t.vendor, t.gateway.as_str(), *online, now)
                    .await?;
            }
            let mut outcome = store.write_batch(&events, &dead, now).await?;
            // A conflicting duplicate is reported before the message is acknowledged; after
            // a crash in between, the redelivered message is compared again.
            if !outcome.conflicting.is_empty() {
                let conflicts: Vec<NewDeadLetter> = outcome
                    .conflicting
                    .iter()
                    .map(|&i| conflict_dead_letter(&events[i], &batch[event_messages[i]]))
                    .collect();
                for d in &conflicts {
                    metrics::counter!("vft_ingest_dead_letters_total", "reason" => "conflicting_duplicate")
                        .increment(1);
                    tracing::warn!(topic = %d.topic, reason = %d.reason, "conflicting duplicate");
                }
                outcome.dead_letters_inserted += store
                    .write_batch(&[], &conflicts, now)
                    .await?
                    .dead_letters_inserted;
            }
            Ok::<_, vft_store::StoreError>(outcome)
        };
        match written.await {
            Ok(outcome) => {
                metrics::histogram!("vft_ingest_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::histogram!("vft_ingest_batch_messages").record(batch.len() as f64);
                metrics::counter!("vft_ingest_messages_total").increment(batch.len() as u64);
                metrics::counter!("vft_ingest_events_stored_total")
                    .increment(outcome.events_inserted);
                metrics::counter!("vft_ingest_events_duplicate_total")
                    .increment(outcome.events_duplicate);
                status
                    .messages
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                status
                    .events_stored
                    .fetch_add(outcome.events_inserted, Ordering::Relaxed);
                status
                    .dead_letters
                    .fetch_add(outcome.dead_letters_inserted, Ordering::Relaxed);
                return true;
            }
            Err(e) => {
                metrics::counter!("vft_ingest_store_errors_total").increment(1);
                error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "storing a batch failed; messages stay unacknowledged");
                tokio::select! {
                    _ = stop.changed() => return false,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(config.backoff_max);
            }
        }
    }
}

/// The dead letter of an event whose id was kept before with other content: the event as
/// vft read it (canonical JSON), under the topic it came on.
fn conflict_dead_letter(event: &vft_domain::Event, message: &Received) -> NewDeadLetter {
    let reason = DeadLetterReason::ConflictingDuplicate {
        id: event.id.to_string(),
    };
    NewDeadLetter {
        topic: message.publish.topic.chars().take(1024).collect(),
        payload: event.to_json().to_string().into_bytes(),
        reason_code: reason.code().to_owned(),
        reason: reason.to_string(),
    }
}

/// A vendor's message through its adapter: each mapped element goes through the canonical
/// parser, so every rule of the contract (known municipality, no identity numbers, …) applies.
fn map_with(
    adapter: &AdapterConfig,
    gateway: vft_domain::GatewayId,
    payload: &[u8],
    registry: &Registry,
    max_payload_bytes: usize,
) -> Vec<ParsedItem> {
    let topic = EventTopic {
        vendor: adapter.vendor.clone(),
        gateway,
    };
    if payload.len() > max_payload_bytes {
        // The canonical size check (and its dead letter) applies to vendor payloads too.
        return parse_payload(Ok(&topic), payload, registry, max_payload_bytes);
    }
    adapter
        .map(payload)
        .into_iter()
        .flat_map(|mapped| match mapped {
            Ok(canonical) => parse_payload(
                Ok(&topic),
                canonical.to_string().as_bytes(),
                registry,
                max_payload_bytes,
            ),
            Err((raw, e)) => vec![ParsedItem::Dead {
                raw,
                reason: DeadLetterReason::Mapping {
                    vendor: adapter.vendor.to_string(),
                    why: e.to_string(),
                },
            }],
        })
        .collect()
}
