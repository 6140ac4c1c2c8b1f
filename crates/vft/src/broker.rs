//! The embedded MQTT broker (rumqttd), so `vft serve` works with nothing installed.
//! It keeps everything in memory: see the README on what that means on a crash.

use anyhow::Context;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct EmbeddedBroker {
    pub addr: SocketAddr,
}

/// Starts rumqttd on its own threads and returns once it accepts connections.
pub fn start(
    addr: SocketAddr,
    max_payload_bytes: usize,
    max_inflight: usize,
) -> anyhow::Result<EmbeddedBroker> {
    // rumqttd reports a failed bind only in its log, from its own thread; check first so the
    // operator gets a clear error instead of an ingest that never connects.
    std::net::TcpListener::bind(addr).with_context(|| {
        format!(
            "cannot listen on {addr} for the embedded MQTT broker (use --mqtt-addr or --mqtt-url)"
        )
    })?;
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: max_payload_bytes,
        max_inflight_count: max_inflight,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "embedded MQTT broker did not start on {addr} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(EmbeddedBroker { addr })
}
