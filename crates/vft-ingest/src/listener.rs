//! The embedded MQTT listener: gateways connect to vft itself, and a QoS 1 (or 2) PUBLISH is
//! acknowledged only after ingest committed it. The protocol is ntex-mqtt's; this module only
//! decides *when* the acknowledgement goes out.
//!
//! ntex runs its own single-threaded runtimes, so the listener lives on its own threads: an
//! ntex `System` thread (accept loop, server manager) and one worker thread that owns every
//! connection. Everything that crosses into the rest of vft is `Send`: the `Inbound` channel
//! (tokio mpsc), the commit handles (tokio oneshot), the client-id registry (a mutex).
//!
//! Per connection:
//! - Handshake: authenticate ([`crate::auth`]: a gateway credential, or anonymous where
//!   allowed), check that the will's topic is one the credential may publish on (else CONNACK
//!   "not authorised"), register the client id (a second connection with the same id and the
//!   same credential closes the first, without publishing its will; a client id held by another
//!   credential is refused with "identifier rejected"), CONNACK.
//! - PUBLISH on a topic the credential may not publish on: handed to ingest marked
//!   `forbidden`, which keeps it as a `forbidden_topic` dead letter and nothing else, and
//!   acknowledged after that commit (MQTT 3.1.1 has no negative PUBACK; closing the connection
//!   instead would make the client send it again forever).
//! - PUBLISH: hand an [`Inbound`] to ingest, wait for its `committed` signal, then let
//!   ntex-mqtt send the PUBACK. Up to `max_inflight` publishes of one
//!   connection wait at once; ntex-mqtt writes their acknowledgements in arrival order. A
//!   commit handle dropped unsent fails the publish, and a failed publish closes the
//!   connection without acknowledging it: the client sends it again after reconnecting.
//!   QoS 0 is handed over without waiting. QoS 2 is refused: it closes the connection.
//!   Every [`crate::auth::RECHECK_EVERY`] a publish first reads its credential again; a revoked
//!   one closes the connection (unacknowledged).
//! - Sessions: CONNACK says `session_present = true` for `clean_session = false` (the session
//!   a publish-only client has on this side is empty, so it always exists), which makes the
//!   client keep and resend its unacknowledged publishes.
//! - SUBSCRIBE: every filter is refused (return code 0x80); this listener only receives.
//! - Close without DISCONNECT (socket dropped, keep-alive expired, protocol error): the last
//!   will goes to ingest as an `Inbound`, as a broker would publish it.
//!
//! Memory: a connection holds at most `max_inflight` publishes and, past
//! `max_inflight_bytes` of payload, reads nothing more until some are acknowledged; one packet
//! is at most `max_payload_bytes` plus the topic allowance. So message data held for all
//! connections stays under `max_connections × (max_inflight_bytes + max packet)`, and the
//! Argon2id checks under `MAX_CONCURRENT_VERIFICATIONS × 19 MiB`. (Ingest holds a publish as
//! the events parsed from it until its commit, not as its payload: a small multiple of the
//! same bytes, since an event's fields are short ids kept inline.)

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ntex_io::{Filter, Io};
use ntex_mqtt::v3::codec::{ConnectAckReason, Encoded};
use ntex_mqtt::v3::{self, ProtocolMessage, ProtocolMessageAck};
use ntex_mqtt::{Control, MqttServer, MqttServiceConfig, QoS, Reason};
use ntex_service::cfg::SharedCfg;
use ntex_service::{ServiceFactory, chain_factory, fn_factory_with_config, fn_service};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, Span, debug, debug_span, warn};

use crate::IngestError;
use crate::auth::{Access, Gate, Principal, RECHECK_EVERY, Refusal};

/// Topic names longer than this are refused with the packet (the whole PUBLISH must fit in
/// `max_payload_bytes` plus this allowance, or the codec closes the connection).
const MAX_TOPIC_BYTES: usize = 1024;
/// MQTT's largest possible remaining length.
const MQTT_MAX_REMAINING: usize = 268_435_455;
/// How long a client may take to send CONNECT after the TCP accept.
const CONNECT_TIMEOUT: ntex_util::time::Seconds = ntex_util::time::Seconds(10);
/// How long `stop` waits for connections to close before the worker is dropped.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how the listener accepts gateways.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Port 0 picks a free port; [`RunningListener::local_addr`] has the bound address. Plain
    /// MQTT, unless `tls` is set without an address of its own: then TLS only, here.
    pub addr: SocketAddr,
    /// Serve MQTT over TLS (on `tls.addr`, or on `addr` instead of plain MQTT).
    pub tls: Option<ListenerTls>,
    /// A PUBLISH whose payload is larger closes its connection (not acknowledged, nothing
    /// handed to ingest). The codec also refuses any packet larger than this plus a small
    /// allowance for the topic before reading it, so memory stays bounded.
    pub max_payload_bytes: usize,
    /// QoS 1/2 publishes of one connection waiting for their commit at once. The listener
    /// stops reading from that connection's socket while the window is full.
    pub max_inflight: u16,
    /// Payload bytes of one connection's publishes waiting for their commit: past it, the
    /// listener reads nothing more from that connection until some are acknowledged.
    pub max_inflight_bytes: usize,
    /// Connections open at once (plain and TLS together); further clients wait in the accept
    /// backlog.
    pub max_connections: usize,
    /// Who may connect and publish what.
    pub access: Access,
}

impl Default for ListenerConfig {
    /// Loopback on a free port, anonymous, small limits: for tests.
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            max_payload_bytes: 1024 * 1024,
            max_inflight: 100,
            max_inflight_bytes: 1024 * 1024,
            max_connections: 64,
            access: Access::anonymous(),
        }
    }
}

/// The listener's TLS: PEM files of the certificate chain and its key.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// A second address for TLS beside plain MQTT on `addr`; `None`: TLS on `addr` only.
    pub addr: Option<SocketAddr>,
}

/// One application message handed to ingest.
///
/// Ingest sends `()` on `committed` after the database commit; only then does the listener
/// acknowledge the PUBLISH. If `committed` is dropped unsent, the listener does not
/// acknowledge: it closes that connection so the client sends the message again after
/// reconnecting. For QoS 0 publishes and last-will messages nobody waits on `committed`:
/// sending on it is harmless and does nothing.
#[derive(Debug)]
pub struct Inbound {
    pub topic: String,
    pub payload: bytes::Bytes,
    /// The MQTT client id of the connection the message came on.
    pub client_id: Arc<str>,
    /// A last-will message, published for a client whose connection ended without DISCONNECT.
    pub will: bool,
    /// The sender's credential may not publish on this topic (its name and scope): ingest
    /// keeps the message as a `forbidden_topic` dead letter and nothing else.
    pub forbidden: Option<String>,
    pub committed: oneshot::Sender<()>,
}

/// A started listener. Dropping it without [`RunningListener::stop`] leaves the listener running
/// until the process exits.
pub struct RunningListener {
    pub local_addr: SocketAddr,
    /// Where TLS is served (`local_addr` itself when TLS replaced plain MQTT there).
    pub tls_addr: Option<SocketAddr>,
    server: ntex_server::net::Server,
    shared: Arc<Shared>,
    thread: std::thread::JoinHandle<()>,
}

impl std::fmt::Debug for RunningListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RunningListener {
    /// Stops accepting, closes every connection (publishes still waiting for their commit are
    /// not acknowledged) and waits for the listener's threads to end. Wills of the clients cut
    /// off are not published: they did not go away, vft did.
    pub async fn stop(self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // ntex's stop has been seen to never return when it comes right after the start (a
        // test hung on it for 15 minutes): give up on it, and on joining the thread it would
        // have ended, rather than hang a shutdown.
        if tokio::time::timeout(STOP_PATIENCE, self.server.stop(false))
            .await
            .is_err()
        {
            warn!(addr = %self.local_addr, "MQTT listener did not stop in time; leaving its thread");
            return;
        }
        // The server's future has also been seen to stay pending after a stop that came right
        // after the start, so its thread is watched rather than joined: a join in a blocking
        // task would in turn hold up the tokio runtime's shutdown.
        let deadline = tokio::time::Instant::now() + STOP_PATIENCE;
        while !self.thread.is_finished() {
            if tokio::time::Instant::now() >= deadline {
                warn!(addr = %self.local_addr, "MQTT listener thread did not end in time; leaving it");
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if self.thread.join().is_err() {
            warn!("MQTT listener thread ended abnormally");
        }
        debug!(addr = %self.local_addr, "MQTT listener stopped");
    }
}

/// How long `stop` waits for ntex to stop the server.
const STOP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds `config.addr` and starts serving MQTT 3.1.1 on it; every received application message
/// goes to `sink`.
pub async fn start(
    config: ListenerConfig,
    sink: mpsc::Sender<Inbound>,
) -> Result<RunningListener, IngestError> {
    let listen_err = |source| IngestError::Listen {
        addr: config.addr,
        source,
    };
    let tls_config = match &config.tls {
        Some(tls) => Some(crate::tls::server_config(&tls.cert_file, &tls.key_file)?),
        None => None,
    };
    let tcp = ntex_server::net::create_tcp_listener(config.addr, 1024).map_err(listen_err)?;
    let local_addr = tcp.local_addr().map_err(listen_err)?;
    // (plain listener, TLS listener)
    let (plain, tls_tcp) = match config.tls.as_ref().and_then(|t| t.addr) {
        Some(addr) => {
            let second = ntex_server::net::create_tcp_listener(addr, 1024)
                .map_err(|source| IngestError::Listen { addr, source })?;
            (Some(tcp), Some(second))
        }
        None if config.tls.is_some() => (None, Some(tcp)),
        None => (Some(tcp), None),
    };
    let tls_addr = match &tls_tcp {
        Some(t) => Some(t.local_addr().map_err(listen_err)?),
        None => None,
    };

    let shared = Arc::new(Shared {
        sink,
        max_payload_bytes: config.max_payload_bytes,
        max_inflight: usize::from(config.max_inflight),
        max_inflight_bytes: config.max_inflight_bytes,
        registry: Mutex::new(HashMap::new()),
        next_conn: AtomicU64::new(1),
        stopping: AtomicBool::new(false),
        gate: Gate::new(config.access.clone()),
    });
    let max_packet = config
        .max_payload_bytes
        .saturating_add(MAX_TOPIC_BYTES + 4)
        .min(MQTT_MAX_REMAINING);
    let mqtt_cfg = move || {
        MqttServiceConfig::new()
            // QoS 2 closes the connection: finishing it after a reconnect needs server-side session
            // state (PUBREL for a packet id of the earlier connection), which this listener keeps
            // none of. Gateways publish QoS 1.
            .set_max_qos(QoS::AtLeastOnce)
            .set_max_size(u32::try_from(max_packet).unwrap_or(u32::MAX))
            // (`set_max_receive`/`set_max_receive_size` configure ntex-mqtt's in-flight
            // middleware, which `WindowGate` replaces: `max_inflight`, `max_inflight_bytes`.
            // Payloads above ntex-mqtt's chunk size, 32 KiB, arrive as a stream of chunks.)
            .set_connect_timeout(CONNECT_TIMEOUT)
            .set_handshake_timeout(CONNECT_TIMEOUT)
    };

    let (started_tx, started_rx) = oneshot::channel();
    let thread_shared = shared.clone();
    let max_connections = config.max_connections.max(1);
    let thread = std::thread::Builder::new()
        .name("vft-mqtt".into())
        .spawn(move || {
            let runner = ntex_rt::System::build()
                .name("vft-mqtt")
                .build(ntex_net::DefaultRuntime);
            runner.block_on(async move {
                let mut built = Ok(ntex_server::net::build()
                    .name("vft-mqtt")
                    .workers(1)
                    .maxconn(max_connections)
                    .disable_signals()
                    .shutdown_timeout(ntex_util::time::Millis::from(SHUTDOWN_TIMEOUT)));
                if let Some(tcp) = plain {
                    let factory_shared = thread_shared.clone();
                    let cfg = SharedCfg::new("vft-mqtt").add(mqtt_cfg());
                    built = built.and_then(|b| {
                        b.listen("mqtt", tcp, async move |_| server(factory_shared.clone()))
                            .map(|b| b.config("mqtt", cfg))
                    });
                }
                if let (Some(tcp), Some(tls)) = (tls_tcp, tls_config) {
                    let factory_shared = thread_shared.clone();
                    let acceptor = ntex_tls::rustls::TlsAcceptor::new(tls);
                    let cfg = SharedCfg::new("vft-mqtts")
                        .add(mqtt_cfg())
                        .add(ntex_tls::TlsConfig::new().set_handshake_timeout(CONNECT_TIMEOUT));
                    built = built.and_then(|b| {
                        b.listen("mqtts", tcp, async move |_| {
                            chain_factory(acceptor.clone())
                                .map_err(|e| {
                                    ntex_mqtt::MqttError::Service(ConnError::Tls(e.to_string()))
                                })
                                .and_then(server(factory_shared.clone()))
                        })
                        .map(|b| b.config("mqtts", cfg))
                    });
                }
                let server = match built {
                    Ok(builder) => builder.run(),
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                if started_tx.send(Ok(server.clone())).is_err() {
                    server.stop(false).await;
                }
                let _ = server.await;
            });
        })
        .map_err(listen_err)?;
    let server = match started_rx.await {
        Ok(Ok(server)) => server,
        Ok(Err(e)) => return Err(listen_err(e)),
        Err(_) => {
            return Err(IngestError::Task(
                "MQTT listener thread failed to start".into(),
            ));
        }
    };
    debug!(addr = %local_addr, ?tls_addr, "MQTT listener started");
    Ok(RunningListener {
        local_addr,
        tls_addr,
        server,
        shared,
        thread,
    })
}

/// State shared by all connections (and threads).
struct Shared {
    sink: mpsc::Sender<Inbound>,
    max_payload_bytes: usize,
    max_inflight: usize,
    max_inflight_bytes: usize,
    /// Client id → the connection currently holding it.
    registry: Mutex<HashMap<Arc<str>, Registered>>,
    next_conn: AtomicU64,
    stopping: AtomicBool,
    gate: Gate,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, HashMap<Arc<str>, Registered>> {
        // A panic while holding the lock leaves the map consistent (single inserts/removes).
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Registered {
    conn: u64,
    /// The credential that holds the client id (`None`: anonymous); another may not take it.
    owner: Option<Arc<str>>,
    /// Resolving it makes the connection close itself (on its own worker thread).
    kick: oneshot::Sender<()>,
    taken_over: Arc<AtomicBool>,
}

struct Will {
    topic: String,
    payload: bytes::Bytes,
}

/// One connection's state, alive as long as the connection.
struct Conn {
    id: u64,
    client_id: Arc<str>,
    principal: Principal,
    /// When the credential is next read again (at a publish), to close revoked ones.
    recheck_at: Cell<Instant>,
    window: Window,
    /// Registered under the client id (false for empty ids, which cannot be taken over).
    registered: bool,
    will: RefCell<Option<Will>>,
    disconnected: Cell<bool>,
    taken_over: Arc<AtomicBool>,
    shared: Arc<Shared>,
    span: Span,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.registered {
            let mut registry = self.shared.registry();
            if registry
                .get(&self.client_id)
                .is_some_and(|r| r.conn == self.id)
            {
                registry.remove(&self.client_id);
            }
        }
        metrics::gauge!("vft_listener_connections").decrement(1.0);
        self.span.in_scope(|| debug!("connection closed"));
    }
}

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("ingest dropped the commit handle (not committed)")]
    NotCommitted,
    #[error("ingest is not receiving")]
    IngestGone,
    #[error("payload of {size} bytes is above the limit of {max}")]
    PayloadTooLarge { size: usize, max: usize },
    #[error("the connection's credential was revoked")]
    Revoked,
    #[error("reading the payload failed: {0}")]
    Payload(String),
    #[error("TLS handshake failed: {0}")]
    Tls(String),
}

/// The ntex-mqtt server for one worker: v3.1.1 only (a v5 CONNECT is refused). `F` is the
/// connection's filter chain: the socket itself, or TLS over it.
fn server<F: Filter>(
    shared: Arc<Shared>,
) -> impl ServiceFactory<
    Io<F>,
    SharedCfg,
    Response = (),
    Error = ntex_mqtt::MqttError<ConnError>,
    InitError = (),
> {
    let hs_shared = shared.clone();
    MqttServer::new().v3(
        v3::MqttServer::new(fn_service(async move |hs: v3::Handshake| {
            handshake(hs_shared.clone(), hs).await
        }))
        // Instead of ntex-mqtt's in-flight middleware: see `WindowGate`.
        .replace_middlewares(WindowGate)
        .protocol(fn_factory_with_config(
            async |session: v3::Session<Conn>| {
                Ok::<_, ConnError>(fn_service(async move |msg: ProtocolMessage| {
                    Ok::<_, ConnError>(protocol(&session, msg))
                }))
            },
        ))
        .control(fn_factory_with_config(
            async |session: v3::Session<Conn>| {
                Ok::<_, ConnError>(fn_service(async move |msg: Control<ConnError>| {
                    control(&session, msg).await;
                    Ok::<Option<Encoded>, ConnError>(None)
                }))
            },
        ))
        .publish(fn_factory_with_config(
            async |session: v3::Session<Conn>| Ok::<_, ConnError>(PublishService { session }),
        )),
    )
}

/// The connection's window, where ntex-mqtt checks its in-flight limits: the outermost service
/// of the connection's dispatcher, whose readiness decides whether the next packet is decoded
/// (and so whether the socket is read). ntex-mqtt 8.2's own middleware (`max_receive`,
/// `max_receive_size`) lets every PUBLISH that follows another through (its check passes
/// while "a publish is streaming", and that stays true until the next packet), so a client
/// that does not wait for acknowledgements could make vft hold any number of payloads. This
/// one is not ready while the window is full, except for the chunks of the payload being read.
/// (Not on the PUBLISH service itself: readiness is checked again for packets already decoded,
/// and a payload chunk let through before its PUBLISH reached the dispatcher breaks the
/// stream, "unexpected payload".)
#[derive(Clone, Copy, Debug)]
struct WindowGate;

impl<S> ntex_service::Middleware<S, (SharedCfg, v3::Session<Conn>)> for WindowGate {
    type Service = WindowGated<S>;

    fn create(&self, service: S, (_, session): (SharedCfg, v3::Session<Conn>)) -> Self::Service {
        WindowGated { service, session }
    }
}

struct WindowGated<S> {
    service: S,
    session: v3::Session<Conn>,
}

impl<S, R> ntex_service::Service<R> for WindowGated<S>
where
    S: ntex_service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn ready(&self, ctx: ntex_service::ServiceCtx<'_, Self>) -> Result<(), S::Error> {
        self.session.window.ready().await;
        ctx.ready(&self.service).await
    }

    async fn call(
        &self,
        req: R,
        ctx: ntex_service::ServiceCtx<'_, Self>,
    ) -> Result<S::Response, S::Error> {
        ctx.call(&self.service, req).await
    }

    ntex_service::forward_poll!(service);
    ntex_service::forward_shutdown!(service);
}

/// The PUBLISH handler (see [`publish_one`]).
struct PublishService {
    session: v3::Session<Conn>,
}

impl ntex_service::Service<v3::Publish> for PublishService {
    type Response = ();
    type Error = ConnError;

    async fn call(
        &self,
        publish: v3::Publish,
        _: ntex_service::ServiceCtx<'_, Self>,
    ) -> Result<(), ConnError> {
        let span = self.session.span.clone();
        publish_one(&self.session, publish).instrument(span).await
    }
}

/// One connection's publishes waiting for their commit: at most `max_count`, and no new one
/// once `max_bytes` of payload are held (the last one admitted may go over).
struct Window {
    max_count: usize,
    max_bytes: usize,
    count: Cell<usize>,
    bytes: Cell<usize>,
    /// The publish whose payload is being read (0: none): its chunks must pass whatever the
    /// window says. Only that publish clears it: the next one may start reading before the
    /// previous one's task has run again after its last chunk.
    reading: Cell<u64>,
    /// Numbers the publishes that enter.
    entered: Cell<u64>,
    /// Signalled when a publish leaves the window or starts reading its payload.
    changed: tokio::sync::Notify,
    /// `vft_listener_inflight_bytes`, looked up once per connection rather than per publish.
    inflight_bytes: metrics::Gauge,
}

impl Window {
    fn new(max_count: usize, max_bytes: usize) -> Self {
        Self {
            max_count: max_count.max(1),
            max_bytes: max_bytes.max(1),
            count: Cell::new(0),
            bytes: Cell::new(0),
            reading: Cell::new(0),
            entered: Cell::new(0),
            changed: tokio::sync::Notify::new(),
            inflight_bytes: metrics::gauge!("vft_listener_inflight_bytes"),
        }
    }

    fn has_room(&self) -> bool {
        self.count.get() < self.max_count && self.bytes.get() < self.max_bytes
    }

    /// Until the next packet may be decoded: a chunk of the payload being read, or room.
    async fn ready(&self) {
        loop {
            // Created before the check: `notify_waiters` reaches it from then on.
            let changed = self.changed.notified();
            if self.reading.get() != 0 || self.has_room() {
                return;
            }
            changed.await;
        }
    }

    /// Waits for room, then holds `size` bytes until the returned guard drops.
    async fn enter(&self, size: usize) -> InWindow<'_> {
        loop {
            let changed = self.changed.notified();
            if self.has_room() {
                break;
            }
            changed.await;
        }
        self.count.set(self.count.get() + 1);
        self.bytes.set(self.bytes.get() + size);
        self.inflight_bytes.increment(size as f64);
        let number = self.entered.get().wrapping_add(1).max(1);
        self.entered.set(number);
        InWindow {
            window: self,
            size,
            number,
        }
    }
}

struct InWindow<'a> {
    window: &'a Window,
    size: usize,
    number: u64,
}

impl InWindow<'_> {
    /// This publish's payload chunks may pass until [`InWindow::read`].
    fn reading(&self) {
        self.window.reading.set(self.number);
        self.window.changed.notify_waiters();
    }

    fn read(&self) {
        if self.window.reading.get() == self.number {
            self.window.reading.set(0);
        }
    }
}

impl Drop for InWindow<'_> {
    fn drop(&mut self) {
        self.read();
        let w = self.window;
        w.count.set(w.count.get().saturating_sub(1));
        w.bytes.set(w.bytes.get().saturating_sub(self.size));
        w.inflight_bytes.decrement(self.size as f64);
        w.changed.notify_waiters();
    }
}

async fn handshake(
    shared: Arc<Shared>,
    hs: v3::Handshake,
) -> Result<v3::HandshakeAck<Conn>, ConnError> {
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let peer_addr = hs
        .io()
        .query::<ntex_io::types::PeerAddr>()
        .get()
        .map(|p| p.0);
    let peer = peer_addr.map(|p| p.to_string()).unwrap_or_default();
    let connect = hs.packet();
    let span = debug_span!(
        "mqtt_connection",
        conn = id,
        peer = %peer,
        // Outside text: a client id may hold a national identity number.
        client_id = %vft_domain::nin::masked_prefix(&connect.client_id, 256)
    );
    let _enter = span.enter();
    debug!(
        clean_session = connect.clean_session,
        keep_alive = connect.keep_alive,
        will = connect.last_will.is_some(),
        "CONNECT"
    );
    if connect.client_id.is_empty() && !connect.clean_session {
        debug!("refused: empty client id needs clean_session");
        return Ok(hs.identifier_rejected());
    }
    // Not entered across an await: other connections' tasks run on this thread meanwhile.
    drop(_enter);
    let authenticated = shared
        .gate
        .authenticate(
            peer_addr.map(|p| p.ip()),
            connect.username.as_deref(),
            connect.password.as_deref(),
        )
        .instrument(span.clone())
        .await;
    let _enter = span.enter();
    let principal = match authenticated {
        Ok(p) => p,
        Err(refusal) => {
            let code = match refusal {
                Refusal::NotAuthorized => ConnectAckReason::NotAuthorized,
                Refusal::BadCredentials => ConnectAckReason::BadUserNameOrPassword,
                Refusal::Unavailable => ConnectAckReason::ServiceUnavailable,
            };
            // Outside text: a username may hold a national identity number.
            let username = connect
                .username
                .as_deref()
                .map(|u| vft_domain::nin::masked_prefix(u, 128));
            debug!(?code, ?username, "refused");
            return Ok(hs.failed(code));
        }
    };
    if let Some(will) = &connect.last_will
        && !shared.gate.may_publish(&principal, &will.topic)
    {
        // Refused at once rather than kept for a will that would be forbidden when it fires.
        debug!(
            credential = principal.describe(),
            "refused: last will on a forbidden topic"
        );
        metrics::counter!("vft_listener_forbidden_total", "what" => "will").increment(1);
        return Ok(hs.failed(ConnectAckReason::NotAuthorized));
    }
    if shared.stopping.load(Ordering::SeqCst) {
        return Ok(hs.service_unavailable());
    }
    let will = connect.last_will.as_ref().map(|w| Will {
        topic: w.topic.to_string(),
        payload: bytes::Bytes::copy_from_slice(&w.message),
    });
    let registered = !connect.client_id.is_empty();
    let clean_session = connect.clean_session;
    let client_id: Arc<str> = if registered {
        Arc::from(&*connect.client_id)
    } else {
        Arc::from(format!("anonymous-{id}"))
    };

    let taken_over = Arc::new(AtomicBool::new(false));
    if registered {
        let owner: Option<Arc<str>> = principal.username().map(Arc::from);
        let (kick_tx, kick_rx) = oneshot::channel();
        let previous = {
            let mut registry = shared.registry();
            if registry.get(&client_id).is_some_and(|r| r.owner != owner) {
                // Another credential's connection holds this client id: taking it over would
                // cut that gateway off (and, on a broker, take its session).
                drop(registry);
                debug!("refused: the client id is held by another credential");
                metrics::counter!("vft_listener_forbidden_total", "what" => "client_id")
                    .increment(1);
                return Ok(hs.identifier_rejected());
            }
            registry.insert(
                client_id.clone(),
                Registered {
                    conn: id,
                    owner,
                    kick: kick_tx,
                    taken_over: taken_over.clone(),
                },
            )
        };
        if let Some(previous) = previous {
            debug!(replaced = previous.conn, "client id taken over");
            previous.taken_over.store(true, Ordering::SeqCst);
            let _ = previous.kick.send(());
        }
        // Closes this connection when a later one takes its client id. Ends by itself when the
        // registry entry goes (the sender is dropped).
        let sink = hs.sink();
        let kick_span = span.clone();
        ntex_rt::spawn(async move {
            if kick_rx.await.is_ok() {
                kick_span.in_scope(|| debug!("closing: client id taken over"));
                sink.force_close();
            }
        });
    }

    metrics::gauge!("vft_listener_connections").increment(1.0);
    drop(_enter);
    let conn = Conn {
        id,
        client_id,
        principal,
        recheck_at: Cell::new(Instant::now() + RECHECK_EVERY),
        window: Window::new(shared.max_inflight, shared.max_inflight_bytes),
        registered,
        will: RefCell::new(will),
        disconnected: Cell::new(false),
        taken_over,
        shared,
        span,
    };
    // The session state this listener would keep for a client is always empty: it never sends
    // to clients (no subscriptions) and takes no QoS 2. So a session "exists" for every
    // persistent client id, and saying so matters: a client told `session_present = false`
    // discards its own unacknowledged publishes (rumqttc does), which would lose them.
    let session_present = !clean_session;
    Ok(hs.ack(conn, session_present))
}

/// PINGREQ, SUBSCRIBE, UNSUBSCRIBE and DISCONNECT (PUBREL cannot come: QoS 2 is refused).
fn protocol(conn: &Conn, msg: ProtocolMessage) -> ProtocolMessageAck {
    match msg {
        ProtocolMessage::Subscribe(sub) => {
            // Every return code starts as Failure (0x80): this listener has nothing to send.
            conn.span.in_scope(|| {
                debug!(
                    filters = sub.clone().iter_mut().count(),
                    "SUBSCRIBE refused"
                )
            });
            sub.ack()
        }
        ProtocolMessage::Disconnect(d) => {
            conn.span.in_scope(|| debug!("DISCONNECT"));
            conn.disconnected.set(true);
            conn.will.borrow_mut().take();
            d.ack()
        }
        other => other.ack(),
    }
}

/// The connection is ending; `Stop` comes once per connection, whatever the reason.
async fn control(conn: &Conn, msg: Control<ConnError>) {
    let Control::Stop(reason) = msg else {
        return;
    };
    match &reason {
        Reason::Error(e) => conn
            .span
            .in_scope(|| debug!(error = %e.get_ref(), "closing the connection")),
        Reason::Protocol(e) => conn
            .span
            .in_scope(|| debug!(error = %e.get_ref(), "protocol error, closing")),
        Reason::PeerGone(e) => conn
            .span
            .in_scope(|| debug!(error = ?e.err(), "connection lost")),
    }
    if conn.disconnected.get()
        || conn.taken_over.load(Ordering::SeqCst)
        || conn.shared.stopping.load(Ordering::SeqCst)
    {
        return;
    }
    let Some(will) = conn.will.borrow_mut().take() else {
        return;
    };
    conn.span.in_scope(|| {
        let topic = vft_domain::nin::masked_prefix(&will.topic, 256);
        debug!(%topic, "publishing the last will")
    });
    let (committed, _) = oneshot::channel();
    let inbound = Inbound {
        topic: will.topic,
        payload: will.payload,
        client_id: conn.client_id.clone(),
        will: true,
        // Checked at CONNECT.
        forbidden: None,
        committed,
    };
    if conn.shared.sink.send(inbound).await.is_err() {
        conn.span
            .in_scope(|| warn!("last will lost: ingest is not receiving"));
    }
}

async fn publish_one(conn: &Conn, publish: v3::Publish) -> Result<(), ConnError> {
    let size = publish.payload_size();
    let max = conn.shared.max_payload_bytes;
    if size > max {
        return Err(ConnError::PayloadTooLarge { size, max });
    }
    // Held until this publish is acknowledged (or fails).
    let in_window = conn.window.enter(size).await;
    let topic = publish.publish_topic().to_owned();
    let qos = publish.qos();
    if conn.recheck_at.get() <= Instant::now() {
        conn.recheck_at.set(Instant::now() + RECHECK_EVERY);
        if !conn.shared.gate.still_valid(&conn.principal).await {
            return Err(ConnError::Revoked);
        }
    }
    let forbidden = (!conn.shared.gate.may_publish(&conn.principal, &topic)).then(|| {
        metrics::counter!("vft_listener_forbidden_total", "what" => "publish").increment(1);
        conn.principal.describe()
    });
    in_window.reading();
    // Chunk by chunk into a buffer of the announced size: one copy, no regrowth (joining the
    // chunks with `read_all` doubles its buffer as it goes, and then a copy is needed anyway).
    let mut body = Vec::with_capacity(size);
    while let Some(chunk) = publish
        .read()
        .await
        .map_err(|e| ConnError::Payload(e.to_string()))?
    {
        if body.len() + chunk.len() > size {
            return Err(ConnError::Payload(format!(
                "more payload than the {size} bytes announced"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    // A payload that ends early was cut off with its connection: never hand it over (the
    // gateway was not acknowledged and sends it again whole). The soak bench once stored an
    // empty payload for a 1 289-byte publish of a connection that broke under load.
    if body.len() != size {
        return Err(ConnError::Payload(format!(
            "the payload ended after {} of the {size} bytes announced",
            body.len()
        )));
    }
    let payload = bytes::Bytes::from(body);
    in_window.read();
    // Only the copy waits for the commit: the codec's buffer goes back now.
    drop(publish);
    metrics::counter!("vft_listener_publishes_total").increment(1);
    let (committed, rx) = oneshot::channel();
    let inbound = Inbound {
        topic,
        payload,
        client_id: conn.client_id.clone(),
        will: false,
        forbidden,
        committed,
    };
    conn.shared
        .sink
        .send(inbound)
        .await
        .map_err(|_| ConnError::IngestGone)?;
    if qos == QoS::AtMostOnce {
        return Ok(());
    }
    // Returning Ok makes ntex-mqtt send the PUBACK; an error closes the connection without it.
    rx.await.map_err(|_| ConnError::NotCommitted)
}
