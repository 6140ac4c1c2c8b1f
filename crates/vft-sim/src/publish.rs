//! Publishing a simulation to a real MQTT broker with QoS 1.

use crate::{Message, SimError};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Incoming, MqttOptions,
    Outgoing, QoS,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Bound on TCP connect plus CONNACK, so an unreachable broker is an error, not a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on waiting for the next acknowledgement once connected.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
const KEEP_ALIVE: Duration = Duration::from_secs(30);
const INFLIGHT: u16 = 100;
const REQUEST_CHANNEL: usize = 128;
/// rumqttc refuses packets above its limit (10 KiB by default); batches are larger.
const MIN_PACKET_LIMIT: usize = 256 * 1024;

#[derive(Clone, PartialEq, Eq)]
pub struct BrokerTarget {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    /// Sent in CONNECT when set (a broker with a password file refuses anonymous clients).
    pub username: Option<String>,
    pub password: Option<String>,
}

// By hand, so a logged target never shows the password.
impl std::fmt::Debug for BrokerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishReport {
    pub messages: usize,
    pub events: usize,
    pub elapsed: Duration,
}

/// What the event-loop task reports to the publisher.
enum Report {
    Connected,
    Acked,
    /// The broker answered CONNECT with a refusal (bad credentials, not authorised, …).
    Refused(ConnectReturnCode),
    Failed(String),
    Closed,
}

/// What a refused CONNECT means for the operator, naming the user tried.
fn refusal(code: ConnectReturnCode, username: Option<&str>) -> String {
    let who = username.map_or_else(
        || "no username given; put user:password@ in the URL".to_owned(),
        |u| format!("user {u:?}"),
    );
    match code {
        ConnectReturnCode::BadUserNamePassword => {
            format!("the broker refused the username or password ({who})")
        }
        ConnectReturnCode::NotAuthorized => {
            // Mosquitto answers a wrong password this way too.
            format!(
                "the broker refused the client as not authorised: wrong username or password? ({who})"
            )
        }
        other => format!("the broker refused the connection: {other:?}"),
    }
}

/// Publishes every message with QoS 1 (not retained) and returns once the broker has
/// acknowledged all of them, then disconnects cleanly. `progress` receives the number of
/// messages acknowledged so far. A lost connection is an error rather than a silent
/// reconnect: with a clean session, messages in flight would be dropped by the client, and
/// publishing everything again is safe because event ids make ingestion idempotent.
pub async fn publish(
    target: &BrokerTarget,
    messages: &[Message],
    progress: impl Fn(usize) + Send + Sync,
) -> Result<PublishReport, SimError> {
    let started = Instant::now();
    let total = messages.len();
    let events = messages.iter().map(|m| m.events).sum();
    if total == 0 {
        return Ok(PublishReport {
            messages: 0,
            events: 0,
            elapsed: started.elapsed(),
        });
    }
    let largest = messages
        .iter()
        .map(|m| m.payload.len() + m.topic.len() + 16)
        .max()
        .unwrap_or(0);
    let limit = largest.max(MIN_PACKET_LIMIT);

    let mut options = MqttOptions::new(target.client_id.clone(), target.host.clone(), target.port);
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_inflight(INFLIGHT)
        .set_clean_session(true)
        .set_max_packet_size(limit, limit);
    if let Some(user) = &target.username {
        options.set_credentials(user, target.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CHANNEL);
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(CONNECT_TIMEOUT.as_secs());
    eventloop.set_network_options(network);

    let (tx, mut rx) = mpsc::unbounded_channel();
    let poller = tokio::spawn(drive(eventloop, tx));
    let connect_error = |reason: String| SimError::Connect {
        host: target.host.clone(),
        port: target.port,
        reason,
    };
    // A little beyond rumqttc's own bound, in case the connect itself never returns.
    match timeout(CONNECT_TIMEOUT + Duration::from_secs(2), rx.recv()).await {
        Ok(Some(Report::Connected)) => {}
        Ok(Some(Report::Refused(code))) => {
            poller.abort();
            return Err(connect_error(refusal(code, target.username.as_deref())));
        }
        Ok(Some(Report::Failed(reason))) => {
            let bound = CONNECT_TIMEOUT.as_secs();
            return Err(connect_error(format!(
                "{reason} (each attempt is bounded to {bound} s; not retried)"
            )));
        }
        Ok(_) => {
            poller.abort();
            return Err(connect_error(
                "the MQTT event loop stopped before connecting".into(),
            ));
        }
        Err(_) => {
            poller.abort();
            return Err(connect_error(format!(
                "no CONNACK within {} s",
                CONNECT_TIMEOUT.as_secs()
            )));
        }
    }
    tracing::info!(host = %target.host, port = target.port, messages = total, events, "publishing simulation");

    let acked = AtomicUsize::new(0);
    let lost = |reason: String| SimError::ConnectionLost {
        host: target.host.clone(),
        port: target.port,
        acked: acked.load(Ordering::Relaxed),
        total,
        reason,
    };
    // Publishing awaits channel space, which only the event-loop task frees, so it runs
    // beside the acknowledgement counter rather than inside the poller.
    let publishing = async {
        for m in messages {
            client
                .publish(m.topic.clone(), QoS::AtLeastOnce, false, m.payload.clone())
                .await
                .map_err(|e| lost(format!("publish request refused: {e}")))?;
        }
        Ok::<(), SimError>(())
    };
    let counting = async {
        loop {
            let report = match timeout(STALL_TIMEOUT, rx.recv()).await {
                Ok(report) => report,
                Err(_) => {
                    return Err(SimError::Stalled {
                        host: target.host.clone(),
                        port: target.port,
                        acked: acked.load(Ordering::Relaxed),
                        total,
                        waited_secs: STALL_TIMEOUT.as_secs(),
                    });
                }
            };
            let mut next = report;
            // Drain what has already arrived so progress is reported per burst.
            loop {
                match next {
                    Some(Report::Acked) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Report::Connected) => {
                        return Err(lost(
                            "the client reconnected; messages in flight may be lost".into(),
                        ));
                    }
                    Some(Report::Failed(reason)) => return Err(lost(reason)),
                    Some(Report::Refused(code)) => {
                        return Err(lost(refusal(code, target.username.as_deref())));
                    }
                    Some(Report::Closed) | None => {
                        return Err(lost("the MQTT event loop stopped".into()));
                    }
                }
                match rx.try_recv() {
                    Ok(r) => next = Some(r),
                    Err(_) => break,
                }
            }
            let n = acked.load(Ordering::Relaxed);
            progress(n);
            if n >= total {
                return Ok(());
            }
        }
    };
    if let Err(e) = tokio::try_join!(publishing, counting) {
        poller.abort();
        return Err(e);
    }

    // Everything is acknowledged; a failed goodbye loses nothing.
    if let Err(e) = client.disconnect().await {
        tracing::warn!(error = %e, "MQTT disconnect request failed");
    }
    if timeout(Duration::from_secs(5), poller).await.is_err() {
        tracing::warn!("MQTT event loop did not stop after disconnect");
    }
    let report = PublishReport {
        messages: total,
        events,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        messages = total,
        events,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "simulation published"
    );
    Ok(report)
}

/// Owns the event loop: reports the connection, acknowledgements and the first error.
/// It never reconnects (rumqttc would retry at once, without backoff).
async fn drive(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Report>) {
    loop {
        let report = match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => Report::Connected,
            Ok(Event::Incoming(Incoming::PubAck(_))) => Report::Acked,
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                let _ = tx.send(Report::Closed);
                return;
            }
            Ok(_) => continue,
            Err(ConnectionError::ConnectionRefused(code)) => {
                let _ = tx.send(Report::Refused(code));
                return;
            }
            Err(e) => {
                let _ = tx.send(Report::Failed(e.to_string()));
                return;
            }
        };
        if tx.send(report).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publish_future_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let target = BrokerTarget {
            host: "localhost".into(),
            port: 1883,
            client_id: "sim".into(),
            username: None,
            password: None,
        };
        // Built but never polled: no network.
        let future = publish(&target, &[], |_| {});
        assert_send(&future);
    }

    #[test]
    fn debug_hides_the_password() {
        let target = BrokerTarget {
            host: "b".into(),
            port: 1883,
            client_id: "sim".into(),
            username: Some("vft".into()),
            password: Some("hunter2".into()),
        };
        let shown = format!("{target:?}");
        assert!(
            shown.contains("vft") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
