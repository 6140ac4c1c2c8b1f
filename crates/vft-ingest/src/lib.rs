//! MQTT ingest: subscribe to the event topics, parse each message into events and dead letters,
//! store them in one transaction per batch, and only then acknowledge the messages to the broker,
//! in arrival order. Only this crate and the simulator touch rumqttc.
//!
//! Two tasks, because rumqttc's event loop must never wait on us: the *connection* task polls
//! the event loop (owning reconnects and backoff), parses each publish and hands it over an
//! unbounded channel; the *batcher* stores and acks. The channel is bounded in practice by the
//! broker's inflight window: it sends no more unacknowledged QoS 1 messages than that. Behind
//! the embedded listener a *forward* task parses instead. Parsing where a message arrives lets
//! it overlap the commit of the batch before; the batcher only writes and acknowledges, on a
//! thread of its own on SQLite (`start_batcher`).

mod auth;
mod connection;
mod listener;
pub mod tls;

use chrono::Utc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, error, info_span};
use vft_domain::adapter::AdapterConfig;
use vft_domain::event::{NIN_IN_PAYLOAD, NIN_IN_TOPIC, OVERSIZED_KEEP_BYTES};
use vft_domain::nin;
use vft_domain::topic::parse_status;
use vft_domain::{
    DeadLetterReason, EventTopic, ParsedItem, PlausibleTimes, Registry, TopicKind, parse_payload_at,
};
use vft_store::{NewDeadLetter, Store};

pub use auth::Access;
pub use connection::BrokerAddress;
pub use listener::{
    Inbound, ListenerConfig, ListenerTls, RunningListener, start as start_listener,
};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid broker URL {url:?}: {why}")]
    BrokerUrl { url: String, why: String },
    #[error("ingest task failed: {0}")]
    Task(String),
    #[error("cannot listen for MQTT on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("MQTT TLS: {0}")]
    Tls(String),
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
    /// A peer replica of the shared group without a heartbeat for this long has its share of
    /// the stream stranded at the broker: readiness and metrics say so.
    pub replica_silent_after: Duration,
    /// Readiness turns unready when a received message has waited this long for its commit.
    pub max_pending: Duration,
    /// Event times outside this window (at arrival) become `implausible_time` dead letters.
    pub plausible_times: PlausibleTimes,
    /// TLS to the external broker (`mqtts://`): the client configuration from
    /// [`tls::client_config`]. Required when `broker.tls` is set.
    pub broker_tls: Option<Arc<rustls::ClientConfig>>,
}

/// Shared view of the ingest's health, for readiness and metrics.
#[derive(Debug, Default)]
pub struct IngestStatus {
    /// Connected and subscribed (external broker), or listening (embedded listener).
    connected: AtomicBool,
    /// Bumped on every connect and disconnect; acks for messages of an older connection are
    /// dropped (the broker redelivers those, and their packet ids may be reused).
    generation: AtomicU64,
    /// A commit (a batch or the idle probe) has succeeded since start.
    committed_once: AtomicBool,
    /// The latest commit attempt failed; cleared by the next one that succeeds.
    commits_failing: AtomicBool,
    /// When the oldest message of the batch being committed arrived (none when idle).
    pending_since: std::sync::Mutex<Option<Instant>>,
    /// Peer replicas of this replica's shared group that stopped beating.
    silent_peers: std::sync::Mutex<Vec<String>>,
    messages: AtomicU64,
    events_stored: AtomicU64,
    dead_letters: AtomicU64,
}

/// Why ingest is not ready, as a stable code: `/readyz` shows the code, the log the detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    Disconnected,
    NoCommitYet,
    CommitsFailing,
    CommitsStalled,
    ShareStranded,
}

impl NotReady {
    pub fn code(self) -> &'static str {
        match self {
            Self::Disconnected => "ingest_disconnected",
            Self::NoCommitYet => "no_commit_yet",
            Self::CommitsFailing => "commits_failing",
            Self::CommitsStalled => "commits_stalled",
            Self::ShareStranded => "replica_share_stranded",
        }
    }
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

    /// How long the oldest message not yet committed has waited (zero when none waits).
    pub fn oldest_pending(&self) -> Duration {
        self.pending_since
            .lock()
            .map(|p| p.map_or(Duration::ZERO, |t| t.elapsed()))
            .unwrap_or_default()
    }

    /// Ready means ingesting: connected, the latest commit succeeded (at least one since
    /// start, the idle probe included), and no message has waited longer than `max_wait`.
    pub fn readiness(&self, max_wait: Duration) -> Result<(), NotReady> {
        let verdict = if !self.connected() {
            Err(NotReady::Disconnected)
        } else if self.commits_failing.load(Ordering::SeqCst) {
            Err(NotReady::CommitsFailing)
        } else if !self.committed_once.load(Ordering::SeqCst) {
            Err(NotReady::NoCommitYet)
        } else if self.oldest_pending() > max_wait {
            Err(NotReady::CommitsStalled)
        } else if !self.silent_peers().is_empty() {
            Err(NotReady::ShareStranded)
        } else {
            Ok(())
        };
        metrics::gauge!("vft_ingest_ready").set(if verdict.is_ok() { 1.0 } else { 0.0 });
        metrics::gauge!("vft_ingest_oldest_pending_seconds")
            .set(self.oldest_pending().as_secs_f64());
        verdict
    }

    /// Client ids of peer replicas (same shared group) whose heartbeat stopped: the broker
    /// keeps sending them their share, which waits there until they come back.
    pub fn silent_peers(&self) -> Vec<String> {
        self.silent_peers
            .lock()
            .map(|p| p.clone())
            .unwrap_or_default()
    }

    fn commit_succeeded(&self) {
        self.committed_once.store(true, Ordering::SeqCst);
        self.commits_failing.store(false, Ordering::SeqCst);
        metrics::gauge!("vft_ingest_commits_failing").set(0.0);
    }

    fn commit_failed(&self) {
        self.commits_failing.store(true, Ordering::SeqCst);
        metrics::gauge!("vft_ingest_commits_failing").set(1.0);
    }

    fn set_pending_since(&self, since: Option<Instant>) {
        if let Ok(mut p) = self.pending_since.lock() {
            *p = since;
        }
    }
}

/// One received message, waiting for its batch to commit.
pub(crate) struct Received {
    topic: String,
    /// Parsed by the task that received the message, so that parsing the next batch overlaps
    /// the commit of this one: the batcher only writes and acknowledges.
    parsed: Parsed,
    ack: Ack,
    arrived: Instant,
}

/// What one message says: a gateway's status, or events and dead letters.
#[derive(Default)]
struct Parsed {
    status: Option<(EventTopic, bool)>,
    events: Vec<vft_domain::Event>,
    dead: Vec<NewDeadLetter>,
    /// On a topic nobody handles: the batcher notes it (it remembers which topics it logged).
    unhandled: bool,
}

impl Received {
    /// Parses a message as it arrives. `forbidden`: from the embedded listener, the sender's
    /// credential (named here) may not publish on this topic, so the message is only kept as a
    /// `forbidden_topic` dead letter.
    pub(crate) fn parse(
        config: &IngestConfig,
        registry: &Registry,
        topic: String,
        payload: &[u8],
        forbidden: Option<String>,
        ack: Ack,
    ) -> Self {
        let arrived = Instant::now();
        // Event times are judged against when the message is parsed, as it arrives.
        let parsed = parse_message(config, registry, &topic, payload, forbidden, Utc::now());
        Self {
            topic,
            parsed,
            ack,
            arrived,
        }
    }
}

fn parse_message(
    config: &IngestConfig,
    registry: &Registry,
    topic: &str,
    payload: &[u8],
    forbidden: Option<String>,
    now: chrono::DateTime<Utc>,
) -> Parsed {
    let mut parsed = Parsed::default();
    // A publish its credential may not make: kept to be seen, never read as events or a
    // gateway status (the topic names another vendor's or gateway's).
    if let Some(credential) = forbidden {
        let reason = DeadLetterReason::ForbiddenTopic { credential };
        parsed
            .dead
            .push(whole_message(config, topic, payload, &reason));
        return parsed;
    }
    // A national identity number anywhere in the topic (a vendor or gateway segment, a
    // topic nobody handles): the whole message is a dead letter under the masked topic,
    // before any part of it becomes a gateway, an event or a log line.
    if nin::find(topic) {
        let reason = DeadLetterReason::NationalIdentityNumber {
            field: NIN_IN_TOPIC.into(),
        };
        parsed
            .dead
            .push(whole_message(config, topic, payload, &reason));
        return parsed;
    }
    let times = (&config.plausible_times, now);
    let items = match &EventTopic::parse_any(&config.topic_prefix, topic) {
        Ok((t, TopicKind::Status)) => match parse_status(payload) {
            Some(online) => {
                parsed.status = Some((t.clone(), online));
                return parsed;
            }
            None => {
                // Masked before the cut; a number makes it that kind of dead letter.
                let (mut raw, found) = nin::mask_bytes(payload);
                raw.truncate(1024);
                let reason = if found > 0 {
                    DeadLetterReason::NationalIdentityNumber {
                        field: NIN_IN_PAYLOAD.into(),
                    }
                } else {
                    DeadLetterReason::InvalidStatus
                };
                vec![ParsedItem::Dead { raw, reason }]
            }
        },
        Ok((t, TopicKind::Events)) => parse_payload_at(
            Ok(t),
            payload,
            registry,
            config.max_payload_bytes,
            times.0,
            times.1,
        ),
        Err(e) => match config
            .adapters
            .iter()
            .find_map(|a| a.matches(topic).map(|gw| (a, gw)))
        {
            None => {
                parsed.unhandled = true;
                parse_payload_at(
                    Err(e),
                    payload,
                    registry,
                    config.max_payload_bytes,
                    times.0,
                    times.1,
                )
            }
            Some((adapter, gateway)) => map_with(
                adapter,
                gateway,
                payload,
                registry,
                config.max_payload_bytes,
                times,
            ),
        },
    };
    for item in items {
        match item {
            ParsedItem::Event(e) => parsed.events.push(*e),
            ParsedItem::Dead { raw, reason } => {
                metrics::counter!("vft_ingest_dead_letters_total", "reason" => reason.code())
                    .increment(1);
                parsed.dead.push(dead_letter(topic, &raw, &reason));
            }
        }
    }
    parsed
}

/// A whole message kept as one dead letter, counted: its payload masked, then cut when it is
/// oversized (masked before the cut, so the cut never keeps part of a number).
fn whole_message(
    config: &IngestConfig,
    topic: &str,
    payload: &[u8],
    reason: &DeadLetterReason,
) -> NewDeadLetter {
    metrics::counter!("vft_ingest_dead_letters_total", "reason" => reason.code()).increment(1);
    let (mut raw, _) = nin::mask_bytes(payload);
    if payload.len() > config.max_payload_bytes {
        raw.truncate(OVERSIZED_KEEP_BYTES);
    }
    dead_letter(topic, &raw, reason)
}

/// How a message is acknowledged once its batch committed.
pub(crate) enum Ack {
    /// To the external broker, on the connection it came on (`generation`).
    Broker {
        publish: rumqttc::Publish,
        generation: u64,
    },
    /// To the embedded listener, which then sends the gateway its PUBACK.
    Listener(tokio::sync::oneshot::Sender<()>),
}

/// How often ingest writes its heartbeat (which proves the database takes commits), at most;
/// more often when `replica_silent_after` is short.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Runs ingest from an external broker until `shutdown` resolves. Messages not yet committed
/// at shutdown stay unacknowledged, so the broker redelivers them to the next run.
pub async fn run(
    config: IngestConfig,
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    status: Arc<IngestStatus>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), IngestError> {
    if config.broker.tls && config.broker_tls.is_none() {
        return Err(IngestError::Tls(
            "mqtts:// needs a TLS client configuration (vft_ingest::tls::client_config)".into(),
        ));
    }
    let (client, eventloop) = connection::client(&config);
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let backend = store.backend();
    let batcher = start_batcher(
        backend,
        batcher(
            config.clone(),
            store,
            status.clone(),
            Some(client.clone()),
            Inlet::Unbounded(rx),
            stop_rx.clone(),
        ),
    )?;
    let conn = tokio::spawn(connection::drive(
        config,
        registry,
        client.clone(),
        eventloop,
        tx,
        status,
        stop_rx,
    ));
    shutdown.await;
    let _ = stop_tx.send(true);
    let _ = client.try_disconnect();
    conn.await.map_err(|e| IngestError::Task(e.to_string()))?;
    batcher.await.map_err(|_| batcher_died())
}

/// Runs ingest behind the embedded listener until `shutdown` resolves: a gateway's publish is
/// acknowledged (PUBACK) only after the batch holding it committed. At shutdown the listener
/// stops first, so nothing uncommitted is acknowledged; gateways send those again.
pub async fn run_embedded(
    config: IngestConfig,
    listener: RunningListener,
    mut inbound: mpsc::Receiver<Inbound>,
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    status: Arc<IngestStatus>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), IngestError> {
    // Bounded, unlike the external broker's channel: while commits fail (a full disk at
    // 03:00), gateways that time out reconnect and send their unacknowledged messages again,
    // and each copy must wait at the gateway, not pile up in vft's memory.
    let (tx, rx) = mpsc::channel(config.batch_max_messages.max(64) * 4);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    status.connected.store(true, Ordering::SeqCst);
    metrics::gauge!("vft_ingest_connected").set(1.0);
    let parse_config = config.clone();
    let forward = tokio::spawn(async move {
        while let Some(m) = inbound.recv().await {
            let received = Received::parse(
                &parse_config,
                &registry,
                m.topic,
                &m.payload,
                m.forbidden,
                Ack::Listener(m.committed),
            );
            if tx.send(received).await.is_err() {
                return;
            }
        }
    });
    let backend = store.backend();
    let batcher = start_batcher(
        backend,
        batcher(
            config,
            store,
            status.clone(),
            None,
            Inlet::Bounded(rx),
            stop_rx,
        ),
    )?;
    shutdown.await;
    listener.stop().await;
    let _ = stop_tx.send(true);
    status.connected.store(false, Ordering::SeqCst);
    forward.abort();
    batcher.await.map_err(|_| batcher_died())
}

/// The batcher ended without finishing its work: it panicked (the panic is logged).
fn batcher_died() -> IngestError {
    IngestError::Task("the batcher stopped unexpectedly".into())
}

/// The batcher's queue: unbounded behind the external broker (rumqttc's event loop must never
/// wait on us; the broker's inflight window bounds it), bounded behind the embedded listener.
enum Inlet {
    Unbounded(mpsc::UnboundedReceiver<Received>),
    Bounded(mpsc::Receiver<Received>),
}

impl Inlet {
    async fn recv(&mut self) -> Option<Received> {
        match self {
            Self::Unbounded(rx) => rx.recv().await,
            Self::Bounded(rx) => rx.recv().await,
        }
    }

    fn try_recv(&mut self) -> Result<Received, mpsc::error::TryRecvError> {
        match self {
            Self::Unbounded(rx) => rx.try_recv(),
            Self::Bounded(rx) => rx.try_recv(),
        }
    }
}

/// Starts the batcher; the receiver resolves when it has finished. On SQLite it gets a thread
/// and a runtime of its own: it builds every statement of a batch between the database's
/// replies, and as a task it waited each time behind the listener's and the parsing tasks
/// (single-event ingest 10–16 % faster, decision 0024). SQLite's connections are threads of
/// their own, so nothing of the database belongs to that runtime. A PostgreSQL connection
/// belongs to the runtime that opened it, and the pool's connections serve the API too: there
/// the batcher stays a task.
fn start_batcher(
    backend: &str,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::sync::oneshot::Receiver<()>, IngestError> {
    let (done, finished) = tokio::sync::oneshot::channel();
    if backend != "sqlite" {
        tokio::spawn(async move {
            work.await;
            let _ = done.send(());
        });
        return Ok(finished);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| IngestError::Task(format!("cannot start the batcher's runtime: {e}")))?;
    std::thread::Builder::new()
        .name("vft-batcher".into())
        .spawn(move || {
            runtime.block_on(work);
            let _ = done.send(());
        })
        .map_err(|e| IngestError::Task(format!("cannot start the batcher's thread: {e}")))?;
    Ok(finished)
}

async fn batcher(
    config: IngestConfig,
    store: Arc<dyn Store>,
    status: Arc<IngestStatus>,
    client: Option<rumqttc::AsyncClient>,
    mut rx: Inlet,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut batch: Vec<Received> = Vec::with_capacity(config.batch_max_messages);
    let mut unhandled = UnhandledTopics::default();
    // Ready only after a commit: the first heartbeat proves the database takes one before
    // any traffic; later ones run beside the batches, busy or idle.
    // Well inside the silence that makes peers call this replica dead, or a peer checking
    // at a fixed phase of the beat would find it silent every time.
    let every = HEARTBEAT_INTERVAL
        .min(config.replica_silent_after / 3)
        .max(Duration::from_millis(100));
    let mut heartbeat = tokio::time::interval(every);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            // Before the messages: under a steady stream they are always ready, and a
            // starved heartbeat would make peers think this replica dead.
            _ = heartbeat.tick() => {
                beat(&config, store.as_ref(), &status).await;
                // Keeps the readiness gauges current for scrapers that never ask /readyz.
                let _ = status.readiness(config.max_pending);
                continue;
            }
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
        status.set_pending_since(batch.iter().map(|m| m.arrived).min());
        let span = info_span!(
            "ingest_batch",
            messages = batch.len(),
            events = tracing::field::Empty,
            dead_letters = tracing::field::Empty
        );
        let committed = commit(
            &config,
            store.as_ref(),
            &status,
            &mut batch,
            &mut unhandled,
            &mut stop,
        )
        .instrument(span)
        .await;
        if !committed {
            return;
        }
        status.set_pending_since(None);
        // Acks go out in arrival order, only for messages of the current connection.
        let generation = status.generation.load(Ordering::SeqCst);
        for m in batch.drain(..) {
            match m.ack {
                Ack::Broker {
                    publish,
                    generation: g,
                } => {
                    if let Some(client) = &client
                        && g == generation
                        && client.ack(&publish).await.is_err()
                    {
                        // The event loop is gone (shutdown); the broker will redeliver.
                        return;
                    }
                }
                Ack::Listener(done) => {
                    // The gateway may have gone meanwhile; it sends the message again.
                    let _ = done.send(());
                }
            }
        }
    }
}

/// The heartbeat: this replica's row rewritten (readiness: commits go through), and the
/// peers of its shared group checked for silence (a stranded share).
async fn beat(config: &IngestConfig, store: &dyn Store, status: &IngestStatus) {
    let now = Utc::now();
    match store
        .replica_heartbeat(&config.client_id, config.shared_group.as_deref(), now)
        .await
    {
        Ok(()) => status.commit_succeeded(),
        Err(e) => {
            if !status.commits_failing.load(Ordering::SeqCst) {
                error!(error = %e, "the database does not take commits");
            }
            status.commit_failed();
            return;
        }
    }
    let Some(group) = config.shared_group.as_deref() else {
        return;
    };
    let silent_after =
        chrono::Duration::from_std(config.replica_silent_after).unwrap_or(chrono::Duration::MAX);
    match store.replicas().await {
        Ok(replicas) => {
            let silent: Vec<String> = replicas
                .into_iter()
                .filter(|r| {
                    r.shared_group.as_deref() == Some(group)
                        && r.client_id != config.client_id
                        && now - r.seen_at > silent_after
                })
                .map(|r| r.client_id)
                .collect();
            metrics::gauge!("vft_ingest_silent_peer_replicas").set(silent.len() as f64);
            let before = status.silent_peers();
            if silent != before {
                if silent.is_empty() {
                    tracing::info!("every peer replica of the shared group beats again");
                } else {
                    tracing::warn!(group, peers = ?silent, "peer replica(s) silent: the broker holds their share of the stream until they come back under the same client id (`vft replicas forget ID` for one retired for good)");
                }
            }
            if let Ok(mut p) = status.silent_peers.lock() {
                *p = silent;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the replicas' heartbeats"),
    }
}

/// Topics nobody handles (a misspelt `…/event`, another application's messages): counted, and
/// logged once per topic so that a chatty device cannot flood the log.
#[derive(Default)]
struct UnhandledTopics {
    logged: std::collections::HashSet<String>,
}

impl UnhandledTopics {
    /// Distinct topics remembered (and so logged) at most; past it, only the metric counts.
    const MAX_REMEMBERED: usize = 10_000;

    fn note(&mut self, topic: &str) {
        metrics::counter!("vft_ingest_unhandled_topic_messages_total").increment(1);
        if self.logged.len() < Self::MAX_REMEMBERED && self.logged.insert(topic.to_owned()) {
            // Masked before the cut, so the cut never keeps part of a number.
            let shown = nin::masked_prefix(topic, 256);
            tracing::warn!(topic = %shown, "message on a topic nobody handles (kept as a dead letter; logged once per topic)");
        }
    }
}

/// Stores a batch of parsed messages, retrying the store with backoff until it succeeds or ingest
/// stops. Returns false when stopped before committing.
async fn commit(
    config: &IngestConfig,
    store: &dyn Store,
    status: &IngestStatus,
    batch: &mut [Received],
    unhandled: &mut UnhandledTopics,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut events = Vec::new();
    // The message each event came in, for a conflicting duplicate's dead letter.
    let mut event_messages = Vec::new();
    let mut dead = Vec::new();
    let mut statuses = Vec::new();
    for (message_index, m) in batch.iter_mut().enumerate() {
        if m.parsed.unhandled {
            unhandled.note(&m.topic);
        }
        statuses.extend(m.parsed.status.take());
        event_messages.extend(std::iter::repeat_n(message_index, m.parsed.events.len()));
        events.append(&mut m.parsed.events);
        dead.append(&mut m.parsed.dead);
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
                status.commit_succeeded();
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
                debug!(
                    messages = batch.len(),
                    events_inserted = outcome.events_inserted,
                    dead_letters = outcome.dead_letters_inserted,
                    "batch committed"
                );
                return true;
            }
            Err(e) => {
                status.commit_failed();
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
    dead_letter(
        &message.topic,
        event.to_json().to_string().as_bytes(),
        &reason,
    )
}

/// A dead letter as stored and logged: its topic, bytes and reason masked whoever built them
/// (`nin`), the topic bounded after masking so a cut never keeps part of a number.
fn dead_letter(topic: &str, raw: &[u8], reason: &DeadLetterReason) -> NewDeadLetter {
    NewDeadLetter {
        topic: nin::masked_prefix(topic, 1024),
        payload: nin::mask_bytes(raw).0,
        reason_code: reason.code().to_owned(),
        // Display masks what the reason echoes.
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
    (times, now): (&PlausibleTimes, chrono::DateTime<Utc>),
) -> Vec<ParsedItem> {
    let topic = EventTopic {
        vendor: adapter.vendor.clone(),
        gateway,
    };
    if payload.len() > max_payload_bytes {
        // The canonical size check (and its dead letter) applies to vendor payloads too.
        return parse_payload_at(Ok(&topic), payload, registry, max_payload_bytes, times, now);
    }
    adapter
        .map(payload)
        .into_iter()
        .flat_map(|mapped| match mapped {
            Ok(canonical) => parse_payload_at(
                Ok(&topic),
                canonical.to_string().as_bytes(),
                registry,
                max_payload_bytes,
                times,
                now,
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
