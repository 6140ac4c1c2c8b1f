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
//! - Handshake: authenticate (the hook below), register the client id (a second connection
//!   with the same id closes the first, without publishing its will), CONNACK.
//! - PUBLISH: hand an [`Inbound`] to ingest, wait for its `committed` signal, then let
//!   ntex-mqtt send the PUBACK. Up to `max_inflight` publishes of one
//!   connection wait at once; ntex-mqtt writes their acknowledgements in arrival order. A
//!   commit handle dropped unsent fails the publish, and a failed publish closes the
//!   connection without acknowledging it: the client sends it again after reconnecting.
//!   QoS 0 is handed over without waiting. QoS 2 is refused: it closes the connection.
//! - Sessions: CONNACK says `session_present = true` for `clean_session = false` (the session
//!   a publish-only client has on this side is empty, so it always exists), which makes the
//!   client keep and resend its unacknowledged publishes.
//! - SUBSCRIBE: every filter is refused (return code 0x80); this listener only receives.
//! - Close without DISCONNECT (socket dropped, keep-alive expired, protocol error): the last
//!   will goes to ingest as an `Inbound`, as a broker would publish it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ntex_mqtt::v3::codec::{ConnectAckReason, Encoded};
use ntex_mqtt::v3::{self, ProtocolMessage, ProtocolMessageAck};
use ntex_mqtt::{Control, MqttServer, MqttServiceConfig, QoS, Reason};
use ntex_service::cfg::SharedCfg;
use ntex_service::{fn_factory_with_config, fn_service};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, Span, debug, debug_span, warn};

use crate::IngestError;

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
    /// Port 0 picks a free port; [`RunningListener::local_addr`] has the bound address.
    pub addr: SocketAddr,
    /// A PUBLISH whose payload is larger closes its connection (not acknowledged, nothing
    /// handed to ingest). The codec also refuses any packet larger than this plus a small
    /// allowance for the topic before reading it, so memory stays bounded.
    pub max_payload_bytes: usize,
    /// QoS 1/2 publishes of one connection waiting for their commit at once. The listener
    /// stops reading from that connection's socket while the window is full.
    pub max_inflight: u16,
    /// Connections open at once; further clients wait in the accept backlog.
    pub max_connections: usize,
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
    pub committed: oneshot::Sender<()>,
}

/// A started listener. Dropping it without [`RunningListener::stop`] leaves the listener running
/// until the process exits.
pub struct RunningListener {
    pub local_addr: SocketAddr,
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
        self.server.stop(false).await;
        let thread = self.thread;
        let joined = tokio::task::spawn_blocking(move || thread.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            warn!("MQTT listener thread ended abnormally");
        }
        debug!(addr = %self.local_addr, "MQTT listener stopped");
    }
}

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
    let tcp = ntex_server::net::create_tcp_listener(config.addr, 1024).map_err(listen_err)?;
    let local_addr = tcp.local_addr().map_err(listen_err)?;

    let shared = Arc::new(Shared {
        sink,
        max_payload_bytes: config.max_payload_bytes,
        registry: Mutex::new(HashMap::new()),
        next_conn: AtomicU64::new(1),
        stopping: AtomicBool::new(false),
    });
    let max_packet = config
        .max_payload_bytes
        .saturating_add(MAX_TOPIC_BYTES + 4)
        .min(MQTT_MAX_REMAINING);
    let mqtt_cfg = MqttServiceConfig::new()
        // QoS 2 closes the connection: finishing it after a reconnect needs server-side session
        // state (PUBREL for a packet id of the earlier connection), which this listener keeps
        // none of. Gateways publish QoS 1.
        .set_max_qos(QoS::AtLeastOnce)
        .set_max_size(u32::try_from(max_packet).unwrap_or(u32::MAX))
        .set_max_receive(config.max_inflight.max(1))
        // The count above bounds memory (each packet is at most `max_packet`).
        .set_max_receive_size(0)
        // (Payloads above ntex-mqtt's chunk size, 32 KiB, arrive as a stream; `read_all` joins
        // them, so a slow sender holds at most one packet.)
        .set_connect_timeout(CONNECT_TIMEOUT)
        .set_handshake_timeout(CONNECT_TIMEOUT);

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
                let factory_shared = thread_shared.clone();
                let built = ntex_server::net::build()
                    .name("vft-mqtt")
                    .workers(1)
                    .maxconn(max_connections)
                    .disable_signals()
                    .shutdown_timeout(ntex_util::time::Millis::from(SHUTDOWN_TIMEOUT))
                    .listen("mqtt", tcp, async move |_| server(factory_shared.clone()))
                    .map(|b| b.config("mqtt", SharedCfg::new("vft-mqtt").add(mqtt_cfg)));
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
    debug!(addr = %local_addr, "MQTT listener started");
    Ok(RunningListener {
        local_addr,
        server,
        shared,
        thread,
    })
}

/// State shared by all connections (and threads).
struct Shared {
    sink: mpsc::Sender<Inbound>,
    max_payload_bytes: usize,
    /// Client id → the connection currently holding it.
    registry: Mutex<HashMap<Arc<str>, Registered>>,
    next_conn: AtomicU64,
    stopping: AtomicBool,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, HashMap<Arc<str>, Registered>> {
        // A panic while holding the lock leaves the map consistent (single inserts/removes).
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Registered {
    conn: u64,
    /// Resolving it makes the connection close itself (on its own worker thread).
    kick: oneshot::Sender<()>,
    taken_over: Arc<AtomicBool>,
}

/// Who is connected. Later: the authenticated principal (user, vendor) and its permissions.
#[derive(Debug)]
struct Principal {
    client_id: Arc<str>,
    #[allow(dead_code)]
    username: Option<String>,
}

struct Will {
    topic: String,
    payload: bytes::Bytes,
}

/// One connection's state, alive as long as the connection.
struct Conn {
    id: u64,
    principal: Principal,
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
                .get(&self.principal.client_id)
                .is_some_and(|r| r.conn == self.id)
            {
                registry.remove(&self.principal.client_id);
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
    #[error("not allowed to publish to {0:?}")]
    Forbidden(String),
    #[error("reading the payload failed: {0}")]
    Payload(String),
}

/// The ntex-mqtt server for one worker: v3.1.1 only (a v5 CONNECT is refused).
fn server(
    shared: Arc<Shared>,
) -> impl ntex_service::ServiceFactory<
    ntex_io::Io,
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
            async |session: v3::Session<Conn>| {
                Ok::<_, ConnError>(fn_service(async move |publish: v3::Publish| {
                    let span = session.span.clone();
                    publish_one(&session, publish).instrument(span).await
                }))
            },
        )),
    )
}

/// Decides who may connect.
// authentication: see issue "Nothing exposed". Check username/password here (or the TLS client
// certificate, via `io.query::<ntex_tls::PeerCert>()` once rustls is in the filter chain), map it
// to a principal, and refuse with `BadUserNameOrPassword` / `NotAuthorized`.
fn authenticate(connect: &v3::codec::Connect) -> Result<Principal, ConnectAckReason> {
    Ok(Principal {
        client_id: Arc::from(&*connect.client_id),
        username: connect.username.as_ref().map(|u| u.to_string()),
    })
}

/// Decides what a principal may publish.
// authentication: see issue "Nothing exposed". Per-vendor topic permissions go here
// (`vft/v1/{vendor}/...` must match the principal's vendor).
fn may_publish(_principal: &Principal, _topic: &str) -> bool {
    true
}

async fn handshake(
    shared: Arc<Shared>,
    hs: v3::Handshake,
) -> Result<v3::HandshakeAck<Conn>, ConnError> {
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let peer = hs
        .io()
        .query::<ntex_io::types::PeerAddr>()
        .get()
        .map(|p| p.0.to_string())
        .unwrap_or_default();
    let connect = hs.packet();
    let span = debug_span!(
        "mqtt_connection",
        conn = id,
        peer = %peer,
        client_id = %connect.client_id
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
    let mut principal = match authenticate(connect) {
        Ok(p) => p,
        Err(code) => {
            debug!(?code, "refused");
            return Ok(hs.failed(code));
        }
    };
    if shared.stopping.load(Ordering::SeqCst) {
        return Ok(hs.service_unavailable());
    }
    let will = connect.last_will.as_ref().map(|w| Will {
        topic: w.topic.to_string(),
        payload: bytes::Bytes::copy_from_slice(&w.message),
    });
    let registered = !connect.client_id.is_empty();
    let clean_session = connect.clean_session;
    if !registered {
        principal.client_id = Arc::from(format!("anonymous-{id}"));
    }

    let taken_over = Arc::new(AtomicBool::new(false));
    if registered {
        let (kick_tx, kick_rx) = oneshot::channel();
        let previous = shared.registry().insert(
            principal.client_id.clone(),
            Registered {
                conn: id,
                kick: kick_tx,
                taken_over: taken_over.clone(),
            },
        );
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
        principal,
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
    conn.span
        .in_scope(|| debug!(topic = %will.topic, "publishing the last will"));
    let (committed, _) = oneshot::channel();
    let inbound = Inbound {
        topic: will.topic,
        payload: will.payload,
        client_id: conn.principal.client_id.clone(),
        will: true,
        committed,
    };
    if conn.shared.sink.send(inbound).await.is_err() {
        conn.span
            .in_scope(|| warn!("last will lost: ingest is not receiving"));
    }
}

async fn publish_one(conn: &Conn, publish: v3::Publish) -> Result<(), ConnError> {
    let topic = publish.publish_topic().to_owned();
    let qos = publish.qos();
    if !may_publish(&conn.principal, &topic) {
        return Err(ConnError::Forbidden(topic));
    }
    let size = publish.payload_size();
    let max = conn.shared.max_payload_bytes;
    if size > max {
        return Err(ConnError::PayloadTooLarge { size, max });
    }
    let payload = publish
        .read_all()
        .await
        .map_err(|e| ConnError::Payload(e.to_string()))?;
    metrics::counter!("vft_listener_publishes_total").increment(1);
    let (committed, rx) = oneshot::channel();
    let inbound = Inbound {
        topic,
        payload: bytes::Bytes::copy_from_slice(&payload),
        client_id: conn.principal.client_id.clone(),
        will: false,
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
