//! The embedded MQTT listener against a real client (rumqttc, MQTT 3.1.1) on loopback.
//! Negative checks ("no PUBACK", "no will") watch for a bounded time; everything else polls
//! with a timeout.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio::time::timeout;
use vft_ingest::{Inbound, IngestError, ListenerConfig, RunningListener, start_listener};

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(500);

async fn listener(max_payload_bytes: usize) -> (RunningListener, mpsc::Receiver<Inbound>) {
    let (tx, rx) = mpsc::channel(1024);
    let running = start_listener(
        ListenerConfig {
            max_payload_bytes,
            ..ListenerConfig::default()
        },
        tx,
    )
    .await
    .expect("listener starts");
    (running, rx)
}

fn options(addr: SocketAddr, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(false);
    o.set_inflight(100);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

/// Polls the event loop in a task and forwards what it sees. After an error it waits a little
/// before polling again (which reconnects), like a gateway's backoff.
fn drive(
    mut eventloop: EventLoop,
) -> (
    mpsc::UnboundedReceiver<Result<Event, String>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            let res = eventloop.poll().await;
            let failed = res.is_err();
            let stop = matches!(res, Err(ConnectionError::RequestsDone));
            if tx.send(res.map_err(|e| e.to_string())).is_err() || stop {
                return;
            }
            if failed {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    (rx, task)
}

/// Waits for the next event matching `pred`, failing after `WAIT`.
async fn wait_for(
    events: &mut mpsc::UnboundedReceiver<Result<Event, String>>,
    what: &str,
    mut pred: impl FnMut(&Result<Event, String>) -> bool,
) {
    let found = timeout(WAIT, async {
        while let Some(ev) = events.recv().await {
            if pred(&ev) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(found, Ok(true)), "timed out waiting for {what}");
}

async fn recv(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    timeout(WAIT, rx.recv())
        .await
        .expect("an inbound message in time")
        .expect("listener still sending")
}

fn is_puback(ev: &Result<Event, String>) -> bool {
    matches!(ev, Ok(Event::Incoming(Packet::PubAck(_))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_qos1_publish_is_handed_over_and_acked_after_commit() {
    let n: usize = std::env::var("VFT_LISTENER_TEST_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let (running, mut rx) = listener(64 * 1024).await;

    // Fake ingest: record, then commit.
    let ingest = tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        while seen.len() < n {
            let Some(m) = rx.recv().await else { break };
            assert!(!m.will);
            assert_eq!(&*m.client_id, "gw-bulk");
            assert_eq!(m.topic, "vft/v1/acme/gw-bulk/events");
            seen.insert(String::from_utf8(m.payload.to_vec()).unwrap());
            let _ = m.committed.send(());
        }
        seen
    });

    let (client, eventloop) = AsyncClient::new(options(running.local_addr, "gw-bulk"), 200);
    let (mut events, driver) = drive(eventloop);
    let started = Instant::now();
    let publisher = tokio::spawn(async move {
        for i in 0..n {
            let payload = format!("{{\"seq\":{i}}}");
            client
                .publish(
                    "vft/v1/acme/gw-bulk/events",
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await
                .unwrap();
        }
        client
    });
    let mut acks = 0;
    wait_for(&mut events, "all PUBACKs", |ev| {
        assert!(ev.is_ok(), "connection failed: {ev:?}");
        if is_puback(ev) {
            acks += 1;
        }
        acks == n
    })
    .await;
    let elapsed = started.elapsed();
    println!(
        "{n} QoS 1 publishes acked in {elapsed:?}: {:.0} msgs/s",
        n as f64 / elapsed.as_secs_f64()
    );
    let seen = timeout(WAIT, ingest).await.unwrap().unwrap();
    assert_eq!(seen.len(), n, "every message arrived once");
    let _client = publisher.await.unwrap();
    driver.abort();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_puback_before_commit_and_redelivery_after_an_uncommitted_close() {
    let (running, mut rx) = listener(64 * 1024).await;
    let (client, eventloop) = AsyncClient::new(options(running.local_addr, "gw-held"), 20);
    let (mut events, driver) = drive(eventloop);
    for i in 0..5 {
        client
            .publish(
                "vft/v1/acme/gw-held/events",
                QoS::AtLeastOnce,
                false,
                format!("m{i}"),
            )
            .await
            .unwrap();
    }
    // Ingest receives all five but commits none.
    let mut held = Vec::new();
    let mut first = BTreeSet::new();
    for _ in 0..5 {
        let m = recv(&mut rx).await;
        first.insert(String::from_utf8(m.payload.to_vec()).unwrap());
        held.push(m.committed);
    }
    // Negative check: no PUBACK while nothing is committed.
    let quiet = timeout(QUIET, async {
        while let Some(ev) = events.recv().await {
            assert!(!is_puback(&ev), "PUBACK before commit: {ev:?}");
        }
    })
    .await;
    assert!(quiet.is_err(), "event loop ended early");

    // The commit failed: the listener closes the connection without acknowledging.
    drop(held);
    wait_for(&mut events, "the connection to close", |ev| {
        assert!(!is_puback(ev), "PUBACK for an uncommitted message: {ev:?}");
        ev.is_err()
    })
    .await;

    // The client reconnects (clean_session=false) and sends the same messages again.
    let mut again = BTreeSet::new();
    while again.len() < 5 {
        let m = recv(&mut rx).await;
        again.insert(String::from_utf8(m.payload.to_vec()).unwrap());
        let _ = m.committed.send(());
    }
    assert_eq!(first, again);
    let mut acks = 0;
    wait_for(&mut events, "PUBACKs after the commit", |ev| {
        if is_puback(ev) {
            acks += 1;
        }
        acks == 5
    })
    .await;
    driver.abort();
    running.stop().await;
}

fn with_will(mut o: MqttOptions, gateway: &str) -> MqttOptions {
    o.set_last_will(LastWill::new(
        format!("vft/v1/acme/{gateway}/status"),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_will_on_abrupt_disconnect_only() {
    let (running, mut rx) = listener(64 * 1024).await;

    // Abrupt: the socket goes away without DISCONNECT (the event loop is dropped).
    let opts = with_will(options(running.local_addr, "gw-abrupt"), "gw-abrupt");
    let (client, eventloop) = AsyncClient::new(opts, 10);
    let (mut events, driver) = drive(eventloop);
    wait_for(&mut events, "CONNACK", |ev| {
        matches!(ev, Ok(Event::Incoming(Packet::ConnAck(_))))
    })
    .await;
    driver.abort();
    drop(client);
    let will = recv(&mut rx).await;
    assert!(will.will);
    assert_eq!(will.topic, "vft/v1/acme/gw-abrupt/status");
    assert_eq!(&will.payload[..], b"offline");
    assert_eq!(&*will.client_id, "gw-abrupt");

    // Clean: DISCONNECT first, then the socket closes.
    let opts = with_will(options(running.local_addr, "gw-clean"), "gw-clean");
    let (client, eventloop) = AsyncClient::new(opts, 10);
    let (mut events, driver) = drive(eventloop);
    wait_for(&mut events, "CONNACK", |ev| {
        matches!(ev, Ok(Event::Incoming(Packet::ConnAck(_))))
    })
    .await;
    client.disconnect().await.unwrap();
    wait_for(&mut events, "DISCONNECT sent", |ev| {
        matches!(ev, Ok(Event::Outgoing(Outgoing::Disconnect)))
    })
    .await;
    wait_for(&mut events, "the event loop to end", |ev| ev.is_err()).await;
    driver.abort();
    // Negative check: no will arrives.
    let none = timeout(QUIET, rx.recv()).await;
    assert!(
        none.is_err(),
        "unexpected message after a clean disconnect: {none:?}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_is_refused() {
    let (running, _rx) = listener(64 * 1024).await;
    let (client, eventloop) = AsyncClient::new(options(running.local_addr, "gw-sub"), 10);
    let (mut events, driver) = drive(eventloop);
    client.subscribe("vft/#", QoS::AtLeastOnce).await.unwrap();
    wait_for(&mut events, "SUBACK", |ev| match ev {
        Ok(Event::Incoming(Packet::SubAck(ack))) => {
            assert_eq!(ack.return_codes, vec![SubscribeReasonCode::Failure]);
            true
        }
        _ => false,
    })
    .await;
    driver.abort();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_payload_closes_the_connection_and_the_listener_keeps_serving() {
    let (running, mut rx) = listener(1024).await;
    // Just above the limit (passes the codec's allowance, refused by the size check), and far
    // above it (refused by the codec before the payload is read).
    for (id, size) in [("gw-big1", 1025), ("gw-big2", 512 * 1024)] {
        let (client, eventloop) = AsyncClient::new(options(running.local_addr, id), 10);
        let (mut events, driver) = drive(eventloop);
        client
            .publish(
                "vft/v1/acme/gw/events",
                QoS::AtLeastOnce,
                false,
                vec![b'x'; size],
            )
            .await
            .unwrap();
        wait_for(&mut events, "the connection to close", |ev| {
            assert!(!is_puback(ev), "oversized publish acknowledged");
            ev.is_err()
        })
        .await;
        driver.abort();
    }
    // Another client is served normally.
    let (client, eventloop) = AsyncClient::new(options(running.local_addr, "gw-small"), 10);
    let (mut events, driver) = drive(eventloop);
    client
        .publish(
            "vft/v1/acme/gw-small/events",
            QoS::AtLeastOnce,
            false,
            vec![b'y'; 1024],
        )
        .await
        .unwrap();
    let m = recv(&mut rx).await;
    assert_eq!(
        &*m.client_id, "gw-small",
        "no oversized message was handed over"
    );
    assert_eq!(m.payload.len(), 1024);
    let _ = m.committed.send(());
    wait_for(&mut events, "PUBACK", is_puback).await;
    driver.abort();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_client_id_replaces_the_first_connection_without_its_will() {
    let (running, mut rx) = listener(64 * 1024).await;
    let mut first_opts = with_will(options(running.local_addr, "gw-twice"), "gw-twice");
    first_opts.set_keep_alive(Duration::from_secs(60));
    let (_first, eventloop) = AsyncClient::new(first_opts, 10);
    let (mut first_events, first_driver) = drive(eventloop);
    wait_for(&mut first_events, "first CONNACK", |ev| {
        matches!(ev, Ok(Event::Incoming(Packet::ConnAck(_))))
    })
    .await;

    let (second, eventloop) = AsyncClient::new(options(running.local_addr, "gw-twice"), 10);
    let (mut second_events, second_driver) = drive(eventloop);
    wait_for(&mut second_events, "second CONNACK", |ev| {
        matches!(ev, Ok(Event::Incoming(Packet::ConnAck(_))))
    })
    .await;
    wait_for(&mut first_events, "the first connection to close", |ev| {
        ev.is_err()
    })
    .await;
    // Stop the first client before it reconnects and takes the id back.
    first_driver.abort();

    second
        .publish(
            "vft/v1/acme/gw-twice/events",
            QoS::AtLeastOnce,
            false,
            "after",
        )
        .await
        .unwrap();
    let m = recv(&mut rx).await;
    assert!(!m.will, "the replaced connection's will was published");
    assert_eq!(&m.payload[..], b"after");
    let _ = m.committed.send(());
    wait_for(&mut second_events, "PUBACK", |ev| {
        assert!(ev.is_ok(), "second connection failed: {ev:?}");
        is_puback(ev)
    })
    .await;
    second_driver.abort();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_failure_names_the_address() {
    let (running, _rx) = listener(1024).await;
    let (tx, _rx2) = mpsc::channel(1);
    let err = start_listener(
        ListenerConfig {
            addr: running.local_addr,
            max_payload_bytes: 1024,
            max_inflight: 10,
            ..ListenerConfig::default()
        },
        tx,
    )
    .await
    .expect_err("the port is taken");
    assert!(matches!(err, IngestError::Listen { .. }));
    assert!(
        err.to_string().contains(&running.local_addr.to_string()),
        "{err}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payload_within_the_limit_arrives_whole() {
    let (running, mut rx) = listener(256 * 1024).await;
    let (client, eventloop) = AsyncClient::new(options(running.local_addr, "gw-large"), 10);
    let (mut events, driver) = drive(eventloop);
    let payload: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    client
        .publish(
            "vft/v1/acme/gw-large/events",
            QoS::AtLeastOnce,
            false,
            payload.clone(),
        )
        .await
        .unwrap();
    let m = recv(&mut rx).await;
    assert_eq!(&m.payload[..], &payload[..]);
    let _ = m.committed.send(());
    wait_for(&mut events, "PUBACK", is_puback).await;
    driver.abort();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_is_handed_over_without_waiting_and_qos2_closes_the_connection() {
    let (running, mut rx) = listener(1024).await;
    let (client, eventloop) = AsyncClient::new(options(running.local_addr, "gw-qos"), 10);
    let (mut events, driver) = drive(eventloop);
    client
        .publish("vft/v1/acme/gw-qos/events", QoS::AtMostOnce, false, "q0")
        .await
        .unwrap();
    let m = recv(&mut rx).await;
    assert_eq!(&m.payload[..], b"q0");
    drop(m); // never committed: nothing waits for QoS 0
    client
        .publish("vft/v1/acme/gw-qos/events", QoS::AtLeastOnce, false, "q1")
        .await
        .unwrap();
    let m = recv(&mut rx).await;
    assert_eq!(&m.payload[..], b"q1");
    let _ = m.committed.send(());
    wait_for(&mut events, "PUBACK", |ev| {
        assert!(ev.is_ok(), "connection failed: {ev:?}");
        is_puback(ev)
    })
    .await;
    client
        .publish("vft/v1/acme/gw-qos/events", QoS::ExactlyOnce, false, "q2")
        .await
        .unwrap();
    wait_for(&mut events, "the connection to close", |ev| {
        assert!(
            !matches!(ev, Ok(Event::Incoming(Packet::PubRec(_)))),
            "QoS 2 accepted"
        );
        ev.is_err()
    })
    .await;
    driver.abort();
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_connections_without_acking_uncommitted() {
    let (running, mut rx) = listener(1024).await;
    let (client, eventloop) = AsyncClient::new(options(running.local_addr, "gw-stop"), 10);
    let (mut events, driver) = drive(eventloop);
    client
        .publish(
            "vft/v1/acme/gw-stop/events",
            QoS::AtLeastOnce,
            false,
            "pending",
        )
        .await
        .unwrap();
    let held = recv(&mut rx).await;
    timeout(WAIT, running.stop()).await.expect("stop in time");
    wait_for(&mut events, "the connection to close", |ev| {
        assert!(!is_puback(ev), "PUBACK for an uncommitted message");
        ev.is_err()
    })
    .await;
    // Committing after the stop acknowledges nothing (the connection is gone).
    let _ = held.committed.send(());
    driver.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_gets_its_puback_after_the_commit() {
    if std::process::Command::new("mosquitto_pub")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("mosquitto_pub not installed; skipped");
        return;
    }
    let (running, mut rx) = listener(1024).await;
    let port = running.local_addr.port().to_string();
    let mut child = tokio::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-q", "1", "-i", "gw-mosq"])
        .args(["-t", "vft/v1/acme/gw-mosq/events", "-m", "hello"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let m = recv(&mut rx).await;
    assert_eq!(&m.payload[..], b"hello");
    // Not committed yet: mosquitto_pub waits for its PUBACK.
    assert!(
        timeout(QUIET, child.wait()).await.is_err(),
        "exited before the commit"
    );
    let _ = m.committed.send(());
    let status = timeout(WAIT, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");

    // MQTT 5 is not served: the client is refused, the listener carries on.
    let status = timeout(
        WAIT,
        tokio::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv5", "-q", "1"])
            .args(["-t", "vft/v1/acme/gw-mosq/events", "-m", "v5"])
            .kill_on_drop(true)
            .status(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!status.success());
    running.stop().await;
}

/// A client that does not wait for acknowledgements gets no more than its window handed over
/// (and so held in memory) until some are committed: `max_inflight` publishes, or
/// `max_inflight_bytes` of payload. (ntex-mqtt 8.2's own limits let every publish that follows
/// another through; the listener keeps its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_gets_no_more_than_its_window_until_commits() {
    for (max_inflight, max_inflight_bytes, payload, expected) in [
        (4u16, 1 << 20, 100usize, 4usize),
        (100, 100 * 1024, 40 * 1024, 3),
    ] {
        let (tx, mut rx) = mpsc::channel(1024);
        let running = start_listener(
            ListenerConfig {
                max_inflight,
                max_inflight_bytes,
                ..ListenerConfig::default()
            },
            tx,
        )
        .await
        .expect("listener starts");
        let mut o = options(running.local_addr, "gw-greedy");
        o.set_inflight(50);
        let (client, eventloop) = AsyncClient::new(o, 100);
        let (_events, driver) = drive(eventloop);
        for i in 0..30 {
            client
                .publish(
                    "vft/v1/acme/gw-greedy/events",
                    QoS::AtLeastOnce,
                    false,
                    vec![b'x'.saturating_add(i); payload],
                )
                .await
                .expect("queue");
        }
        let mut held = Vec::new();
        for _ in 0..expected {
            held.push(recv(&mut rx).await);
        }
        assert!(
            timeout(QUIET * 2, rx.recv()).await.is_err(),
            "more than the window ({expected}) was handed over"
        );
        // One commit lets one more in.
        let first = held.remove(0);
        let _ = first.committed.send(());
        held.push(recv(&mut rx).await);
        assert!(timeout(QUIET, rx.recv()).await.is_err());
        driver.abort();
        drop(held);
        running.stop().await;
    }
}

/// MQTT's remaining length: seven bits a byte, the high bit saying more follow.
fn remaining_length(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return out;
        }
    }
}

/// A connection that dies in the middle of a PUBLISH's payload hands nothing over: the
/// gateway was not acknowledged and sends the whole message again, so a cut copy would only
/// become a false dead letter (seen in the soak bench: an empty payload, 1 289 bytes
/// announced). Small and chunked payloads alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_cut_off_by_a_closed_connection_is_not_handed_over() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (running, mut rx) = listener(256 * 1024).await;
    let cuts = [
        (1_289usize, 0usize),
        (1_289, 400),
        (100 * 1024, 0),
        (100 * 1024, 30_000),
    ];
    for (n, (announced, sent)) in cuts.into_iter().enumerate() {
        let mut tcp = tokio::net::TcpStream::connect(running.local_addr)
            .await
            .expect("connect");
        let client_id = format!("gw-cut-{n}");
        let mut connect = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c];
        connect.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
        connect.extend_from_slice(client_id.as_bytes());
        let mut packet = vec![0x10];
        packet.extend(remaining_length(connect.len()));
        packet.extend(connect);
        tcp.write_all(&packet).await.expect("CONNECT");
        let mut connack = [0u8; 4];
        timeout(WAIT, tcp.read_exact(&mut connack))
            .await
            .expect("CONNACK in time")
            .expect("CONNACK");
        assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "accepted");
        let topic = b"vft/v1/acme/gw-cut/events";
        let mut publish = vec![0x32];
        publish.extend(remaining_length(2 + topic.len() + 2 + announced));
        publish.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        publish.extend_from_slice(topic);
        publish.extend_from_slice(&7u16.to_be_bytes());
        // Part of the payload, then the connection is gone.
        publish.extend(std::iter::repeat_n(b'[', sent));
        tcp.write_all(&publish).await.expect("partial PUBLISH");
        tcp.shutdown().await.expect("close");
        let mut rest = Vec::new();
        let _ = timeout(WAIT, tcp.read_to_end(&mut rest)).await;
        drop(tcp);
    }
    // A whole message after them arrives, and it is the first thing ingest is handed.
    let (client, eventloop) = AsyncClient::new(options(running.local_addr, "gw-whole"), 10);
    let (mut events, driver) = drive(eventloop);
    client
        .publish(
            "vft/v1/acme/gw-whole/events",
            QoS::AtLeastOnce,
            false,
            b"[]".to_vec(),
        )
        .await
        .unwrap();
    let m = recv(&mut rx).await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("vft/v1/acme/gw-whole/events", &b"[]"[..]),
        "a cut payload was handed over"
    );
    let _ = m.committed.send(());
    wait_for(&mut events, "PUBACK", is_puback).await;
    driver.abort();
    running.stop().await;
}

/// Publishes that wait for a full window when their connection dies are handed over whole or
/// not at all, once the window frees (the soak bench stored an empty payload from a gateway
/// whose connection broke while vft was slow to commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_waiting_for_the_window_of_a_dead_connection_are_whole_or_nothing() {
    let (tx, mut rx) = mpsc::channel(1024);
    let running = start_listener(
        ListenerConfig {
            max_inflight: 2,
            ..ListenerConfig::default()
        },
        tx,
    )
    .await
    .expect("listener starts");
    let mut o = options(running.local_addr, "gw-dying");
    o.set_inflight(50);
    let (client, eventloop) = AsyncClient::new(o, 100);
    let (_events, driver) = drive(eventloop);
    let payloads: Vec<Vec<u8>> = (0..6u8).map(|i| vec![b'a' + i; 1_289]).collect();
    for p in &payloads {
        client
            .publish(
                "vft/v1/acme/gw-dying/events",
                QoS::AtLeastOnce,
                false,
                p.clone(),
            )
            .await
            .expect("queue");
    }
    let held = [recv(&mut rx).await, recv(&mut rx).await];
    // The gateway goes away with the rest in flight; then the two commits free the window.
    driver.abort();
    drop(client);
    let _ = timeout(QUIET, std::future::pending::<()>()).await;
    for m in held {
        let _ = m.committed.send(());
    }
    while let Ok(Some(m)) = timeout(QUIET * 2, rx.recv()).await {
        assert!(
            payloads.contains(&m.payload.to_vec()),
            "a payload of {} bytes was handed over, not one that was sent",
            m.payload.len()
        );
    }
    running.stop().await;
}
