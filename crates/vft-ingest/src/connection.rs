//! The MQTT connection: options, subscription, reconnect with capped exponential backoff
//! (rumqttc's `poll()` reconnects immediately on the next call, so the backoff is ours).

use crate::{Ack, IngestConfig, IngestError, IngestStatus, Received};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use vft_domain::Registry;

/// Largest packet the client accepts. Far above `max_payload_bytes` on purpose: a payload
/// rumqttc refused would drop the connection and come back on every redelivery, forever; one
/// it accepts becomes an `oversized` dead letter. The broker's own limit should sit below this.
const MAX_INCOMING_PACKET: usize = 64 * 1024 * 1024;

/// Where the broker is: `mqtt://[user[:password]@]host[:port]` (port 1883), or
/// `mqtts://…` for MQTT over TLS (port 8883; the broker's certificate is verified against
/// `mqtt.ca_file` or the system's roots, and must name `host`).
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: bool,
}

impl std::fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerAddress")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .finish()
    }
}

impl BrokerAddress {
    pub fn parse(url: &str) -> Result<Self, IngestError> {
        let err = |why: &str| IngestError::BrokerUrl {
            url: vft_store::redact_url(url),
            why: why.to_owned(),
        };
        let (rest, tls) = match url.strip_prefix("mqtts://") {
            Some(rest) => (rest, true),
            None => (
                url.strip_prefix("mqtt://")
                    .or_else(|| url.strip_prefix("tcp://"))
                    .ok_or_else(|| err("expected mqtt://host:port or mqtts://host:port (TLS)"))?,
                false,
            ),
        };
        let rest = rest.trim_end_matches('/');
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (Some(user.to_owned()), Some(pass.to_owned())),
                None => (Some(u.to_owned()), None),
            },
            None => (None, None),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (
                h.trim_start_matches('[').trim_end_matches(']').to_owned(),
                p.parse().map_err(|_| err("bad port"))?,
            ),
            _ => (hostport.to_owned(), if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err(err("missing host"));
        }
        Ok(Self {
            host,
            port,
            username,
            password,
            tls,
        })
    }
}

pub(crate) fn client(config: &IngestConfig) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(&config.client_id, &config.broker.host, config.broker.port);
    options
        .set_keep_alive(config.keep_alive)
        // Persistent session: unacknowledged messages wait at the broker while we are down.
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_INCOMING_PACKET, 64 * 1024)
        .set_request_channel_capacity(config.batch_max_messages.max(64) * 4);
    if let Some(user) = &config.broker.username {
        options.set_credentials(user, config.broker.password.clone().unwrap_or_default());
    }
    if config.broker.tls {
        // `run` refuses a TLS broker without a client configuration, so this is always set.
        if let Some(tls) = &config.broker_tls {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls.clone()),
            ));
        }
    }
    let (client, mut eventloop) = AsyncClient::new(options, config.batch_max_messages.max(64) * 4);
    let mut network = eventloop.network_options();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(10);
    eventloop.set_network_options(network);
    (client, eventloop)
}

pub(crate) async fn drive(
    config: IngestConfig,
    registry: Arc<Registry>,
    client: AsyncClient,
    mut eventloop: EventLoop,
    tx: mpsc::UnboundedSender<Received>,
    status: Arc<IngestStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let group = config.shared_group.as_deref();
    // Everything under the prefix, not just `…/events` and `…/status`: a message on a topic
    // nobody handles (a misspelt `…/event`) must show up as a dead letter and a metric, not
    // vanish at the broker for want of a subscriber.
    let mut filters: Vec<String> = vec![match group {
        Some(g) => format!("$share/{g}/{}/#", config.topic_prefix),
        None => format!("{}/#", config.topic_prefix),
    }];
    // Vendor adapters' own topics, in the same shared group when there is one.
    filters.extend(config.adapters.iter().map(|a| match group {
        Some(g) => format!("$share/{g}/{}", a.topic),
        None => a.topic.clone(),
    }));
    let filter = filters.join(" ");
    let mut backoff = config.backoff_initial;
    loop {
        let polled = tokio::select! {
            biased;
            _ = stop.changed() => return,
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                status.generation.fetch_add(1, Ordering::SeqCst);
                backoff = config.backoff_initial;
                info!(session_present = ack.session_present, broker = %config.broker.host, port = config.broker.port, %filter, "connected to the broker");
                // try_subscribe: awaiting the request channel from inside the poll loop could
                // deadlock (the loop that drains it is this one).
                let topics = filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(topics) {
                    warn!(error = %e, "could not queue the subscription");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    warn!(%filter, "the broker refused the subscription");
                } else {
                    debug!(%filter, "subscribed");
                    // Ready only once subscribed: a message published before this may find no subscriber.
                    status.connected.store(true, Ordering::SeqCst);
                    metrics::gauge!("vft_ingest_connected").set(1.0);
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                // No topic here: a topic may hold an identity number until the batch masks it.
                debug!(
                    pkid = publish.pkid,
                    bytes = publish.payload.len(),
                    "message received"
                );
                let generation = status.generation.load(Ordering::SeqCst);
                // A cheap handle: the publish itself is kept for its acknowledgement.
                let payload = publish.payload.clone();
                if tx
                    .send(Received::parse(
                        &config,
                        &registry,
                        publish.topic.clone(),
                        &payload,
                        None,
                        Ack::Broker {
                            publish,
                            generation,
                        },
                    ))
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                status.generation.fetch_add(1, Ordering::SeqCst);
                status.connected.store(false, Ordering::SeqCst);
                metrics::gauge!("vft_ingest_connected").set(0.0);
                metrics::counter!("vft_ingest_connection_errors_total").increment(1);
                warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "broker connection lost");
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(config.backoff_max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_urls() {
        let a = BrokerAddress::parse("mqtt://127.0.0.1:1884").expect("valid");
        assert_eq!((a.host.as_str(), a.port), ("127.0.0.1", 1884));
        let b = BrokerAddress::parse("mqtt://vft:secret@broker.local").expect("valid");
        assert_eq!(
            (b.host.as_str(), b.port, b.username.as_deref()),
            ("broker.local", 1883, Some("vft"))
        );
        assert!(!format!("{b:?}").contains("secret"));
        let c = BrokerAddress::parse("mqtt://[::1]:1883").expect("valid");
        assert_eq!(c.host, "::1");
        assert!(!c.tls);
        let d = BrokerAddress::parse("mqtts://vft:pw@broker.example").expect("valid");
        assert_eq!(
            (d.host.as_str(), d.port, d.tls),
            ("broker.example", 8883, true)
        );
        let e = BrokerAddress::parse("mqtts://broker.example:18883").expect("valid");
        assert_eq!((e.port, e.tls), (18883, true));
        for bad in [
            "http://x:1",
            "mqtt://",
            "mqtt://h:port",
            "ssl://h:8883",
            "mqtts://",
        ] {
            assert!(BrokerAddress::parse(bad).is_err(), "{bad}");
        }
    }
}
