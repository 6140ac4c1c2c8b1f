//! Mosquitto itself crashing (SIGKILL) or stopping (SIGTERM) while gateways publish, restarted
//! on the same port and persistence directory, with the deploy configuration: what the
//! gateways got a PUBACK for, against what vft stored. The gateways reconnect and send again
//! what was not acknowledged; vft reconnects by itself.
//!
//! The README ("What survives a crash") states the figures these tests hold to.

mod support;

use serde_json::json;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use support::*;

const WAIT: Duration = Duration::from_secs(120);
/// vft retries the broker often, so that it is back within the test's patience.
const VFT_ENV: &[(&str, &str)] = &[("VFT_INGEST__BACKOFF_MAX_MS", "500")];
/// Each stream takes about three seconds to publish, so that the gateways are still
/// publishing when Mosquitto goes down and come back to the restarted one.
const SINGLES: usize = 6000;
const SINGLES_PER_SECOND: usize = 2000;
const BATCHES: usize = 600;
const BATCHES_PER_SECOND: usize = 200;
const PER_BATCH: usize = 10;
/// Gateway connections publishing at once.
const GATEWAYS: usize = 2;

/// The README's bound for a SIGKILL of Mosquitto: what vft had in flight (the deploy
/// configuration's `max_inflight_messages`) plus one message per publishing connection.
fn sigkill_bound() -> usize {
    let conf = std::fs::read_to_string(workspace_root().join("deploy/mosquitto/mosquitto.conf"))
        .expect("deploy config");
    let inflight: usize = conf
        .lines()
        .find_map(|l| l.strip_prefix("max_inflight_messages "))
        .and_then(|v| v.trim().parse().ok())
        .expect("max_inflight_messages in the deploy config");
    inflight + GATEWAYS
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SIGKILL: no save on the way down.
    Kill,
    /// SIGTERM: Mosquitto saves its database and exits.
    Terminate,
}

#[derive(Clone, Copy, Debug)]
enum When {
    /// As soon as vft has stored the first event: right after it subscribed, long before a
    /// periodic (30 s) save would have come.
    Early,
    /// Half-way through the stream, after several saves.
    Late,
}

fn install(tag: &str, n: usize) -> serde_json::Value {
    let municipality = ["3320", "3322", "3324", "3326", "3328", "3330"][n % 6];
    json!({
        "id": format!("{tag}-{n}"),
        "ts": format!("2025-04-{:02}T{:02}:00:00+02:00", 1 + n % 28, n % 24),
        "municipality": municipality,
        "device": format!("{tag}-D{n}"),
        "type": "installed",
        "kind": "smoke_detector",
    })
}

/// One-event messages from one gateway and 10-event messages from another.
fn streams() -> (Arc<Vec<Message>>, Arc<Vec<Message>>) {
    let singles = (0..SINGLES)
        .map(|n| {
            let e = install("s", n);
            Message {
                topic: "vft/v1/hepro/gw-single/events".into(),
                payload: e.to_string().into_bytes(),
                ids: vec![format!("s-{n}")],
            }
        })
        .collect();
    let batches = (0..BATCHES)
        .map(|b| {
            let events: Vec<serde_json::Value> = (0..PER_BATCH)
                .map(|i| install("b", b * PER_BATCH + i))
                .collect();
            Message {
                topic: "vft/v1/hepro/gw-batch/events".into(),
                payload: serde_json::to_vec(&events).expect("json"),
                ids: (0..PER_BATCH)
                    .map(|i| format!("b-{}", b * PER_BATCH + i))
                    .collect(),
            }
        })
        .collect();
    (Arc::new(singles), Arc::new(batches))
}

/// A gateway as gateways behave, at a steady pace: publishes `list` at `per_second`; after a
/// lost connection it connects again (after a pause of one tick) and sends what was not
/// acknowledged, until everything is. Returns the acknowledged indices.
fn paced_gateway(
    broker: &BrokerUnderTest,
    client_id: &str,
    list: Arc<Vec<Message>>,
    per_second: usize,
) -> tokio::task::JoinHandle<BTreeSet<usize>> {
    let broker = broker.clone();
    let client_id = client_id.to_owned();
    tokio::spawn(async move {
        let deadline = Instant::now() + WAIT * 2;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let per_tick = (per_second / 100).max(1);
        let mut acked = BTreeSet::new();
        while acked.len() < list.len() && Instant::now() < deadline {
            let pending: Vec<usize> = (0..list.len()).filter(|i| !acked.contains(i)).collect();
            let mut p = Publisher::connect_with_inflight(&broker, &client_id, 100).await;
            'publish: for chunk in pending.chunks(per_tick) {
                tick.tick().await;
                for &i in chunk {
                    if !p.try_publish(&list[i].topic, list[i].payload.clone()).await {
                        break 'publish;
                    }
                }
            }
            while p.acked().len() < pending.len() && !p.is_closed() && Instant::now() < deadline
            {
                tick.tick().await;
            }
            acked.extend(p.acked().into_iter().map(|j| pending[j]));
            if p.is_closed() {
                tick.tick().await;
            } else {
                p.disconnect().await;
            }
        }
        acked
    })
}

/// What one fault cost: messages (and their events) acknowledged to a gateway by Mosquitto
/// and never stored by vft.
struct Loss {
    messages: usize,
    events: usize,
    acknowledged: usize,
}

/// Publishes the two streams through Mosquitto into vft, hits Mosquitto with `fault` at
/// `when`, restarts it, lets the gateways and vft come back, and counts the loss. `None` only
/// outside CI without Mosquitto (said loudly).
async fn fault_under_traffic(fault: Fault, when: When) -> Option<Loss> {
    let label = format!("{fault:?} {when:?}");
    let mut mosquitto = Mosquitto::start()?;
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let (vft, broker) = spawn_vft(
        "serve",
        &db,
        scratch.dir.path(),
        Some(&mosquitto.broker),
        &[],
        VFT_ENV,
    );
    wait_ready(&vft.api).await;
    // The shipped configuration saves vft's session and subscription as soon as it subscribed,
    // before any traffic.
    let saved = mosquitto.persistence_file();
    eventually(
        "Mosquitto saved vft's subscription",
        Duration::from_secs(10),
        || async { saved.is_file().then_some(()) },
    )
    .await;

    let (singles, batches) = streams();
    let total_events = SINGLES + BATCHES * PER_BATCH;
    let single_gw = paced_gateway(&broker, "gw-single", singles.clone(), SINGLES_PER_SECOND);
    let batch_gw = paced_gateway(&broker, "gw-batch", batches.clone(), BATCHES_PER_SECOND);
    let store = vft_store::open(&db, &Default::default())
        .await
        .expect("store");
    match when {
        When::Early => {
            eventually("traffic flowing", WAIT, || async {
                (store.event_count().await.ok()? >= 1).then_some(())
            })
            .await;
        }
        When::Late => {
            // Saves replace the file; count the versions seen while the stream goes on.
            let versions: Mutex<BTreeSet<SystemTime>> = Mutex::new(BTreeSet::new());
            eventually("half the stream stored, several saves", WAIT, || async {
                if let Ok(modified) = std::fs::metadata(&saved).and_then(|m| m.modified())
                    && let Ok(mut v) = versions.lock()
                {
                    v.insert(modified);
                }
                let stored = store.event_count().await.ok()? as usize;
                let saves = versions.lock().ok()?.len();
                (stored >= total_events / 2 && saves >= 3).then_some(())
            })
            .await;
        }
    }
    assert!(
        !single_gw.is_finished() && !batch_gw.is_finished(),
        "{label}: the fault should land while the gateways publish"
    );
    match fault {
        Fault::Kill => mosquitto.kill(),
        Fault::Terminate => {
            let status = tokio::task::block_in_place(|| mosquitto.terminate());
            assert!(status.success(), "{label}: Mosquitto's exit: {status}");
        }
    }
    let stored_at_fault = store.event_count().await.expect("count") as usize;
    assert!(
        stored_at_fault < total_events,
        "{label}: the fault should land mid-stream"
    );
    tokio::task::block_in_place(|| mosquitto.restart());

    let acked_singles = single_gw.await.expect("gateway");
    let acked_batches = batch_gw.await.expect("gateway");
    assert_eq!(
        (acked_singles.len(), acked_batches.len()),
        (SINGLES, BATCHES),
        "{label}: the gateways got every message through in the end"
    );
    // vft is back to ingesting by itself.
    wait_ready(&vft.api).await;
    // Everything Mosquitto holds for vft is delivered before a message published after it (and
    // after vft subscribed again): once that one is stored, vft has stored all it will.
    let mut last = Publisher::connect(&broker, "gw-last").await;
    last.publish(
        "vft/v1/hepro/gw-last/events",
        install("last", 0).to_string(),
    )
    .await;
    last.wait_all_acked(WAIT).await;
    last.disconnect().await;
    eventually("vft caught up", WAIT, || async {
        stored_ids(&db)
            .await
            .contains("last-0")
            .then_some(())
    })
    .await;

    let stored = stored_ids(&db).await;
    let mut loss = Loss {
        messages: 0,
        events: 0,
        acknowledged: SINGLES + BATCHES,
    };
    for (list, acked) in [(&singles, &acked_singles), (&batches, &acked_batches)] {
        for &i in acked {
            let missing = list[i].ids.iter().filter(|id| !stored.contains(*id)).count();
            loss.messages += usize::from(missing > 0);
            loss.events += missing;
        }
    }
    eprintln!(
        "broker_faults {label}: lost {} of {} acknowledged messages ({} of {total_events} events); {stored_at_fault} events stored at the fault",
        loss.messages, loss.acknowledged, loss.events
    );
    assert!(vft.terminate().success());
    Some(loss)
}

/// SIGKILL right after vft subscribed, long before a periodic save: the subscription was
/// saved already, so the restarted Mosquitto queues the gateways' messages for vft instead of
/// acknowledging them to nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_killed_right_after_vft_subscribed_loses_at_most_the_stated_bound() {
    let Some(loss) = fault_under_traffic(Fault::Kill, When::Early).await else {
        return;
    };
    assert!(
        loss.messages <= sigkill_bound(),
        "lost {} acknowledged messages, more than the README's bound {}",
        loss.messages,
        sigkill_bound()
    );
}

/// SIGKILL mid-stream after several saves: what was acknowledged since the last save and not
/// yet committed by vft is lost, within the README's bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_killed_mid_stream_loses_at_most_the_stated_bound() {
    let Some(loss) = fault_under_traffic(Fault::Kill, When::Late).await else {
        return;
    };
    assert!(
        loss.messages <= sigkill_bound(),
        "lost {} acknowledged messages, more than the README's bound {}",
        loss.messages,
        sigkill_bound()
    );
}

/// SIGTERM right after vft subscribed: Mosquitto saves on the way out; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_stopped_right_after_vft_subscribed_loses_nothing() {
    let Some(loss) = fault_under_traffic(Fault::Terminate, When::Early).await else {
        return;
    };
    assert_eq!(loss.messages, 0, "acknowledged messages lost");
}

/// SIGTERM mid-stream: Mosquitto saves on the way out; nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_stopped_mid_stream_loses_nothing() {
    let Some(loss) = fault_under_traffic(Fault::Terminate, When::Late).await else {
        return;
    };
    assert_eq!(loss.messages, 0, "acknowledged messages lost");
}
