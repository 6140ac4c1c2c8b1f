//! Two ingest replicas in one shared group on Mosquitto, one SIGKILLed mid-stream: the broker
//! keeps sending the dead replica its share, so the survivor must say so (readiness 503
//! `replica_share_stranded`, a metric) instead of looking healthy, and when the deployment
//! restarts the dead replica under its client id, its share is stored and the survivor's table
//! is right.

mod support;

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(120);

fn replica(scratch: &Scratch, broker: &BrokerUnderTest, client_id: &str) -> VftProcess {
    spawn_vft(
        "serve",
        &scratch.database_url(),
        scratch.dir.path(),
        Some(broker),
        &[],
        &[
            ("VFT_MQTT__SHARED_GROUP", "vft"),
            ("VFT_MQTT__CLIENT_ID", client_id),
            ("VFT_INGEST__REPLICA_SILENT_SECS", "3"),
            ("VFT_INGEST__BACKOFF_MAX_MS", "500"),
        ],
    )
    .0
}

async fn readiness(api: &str) -> (u16, serde_json::Value) {
    let r = get(&format!("{api}/readyz"), None).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_strands_its_share_visibly_and_gets_it_back_on_restart() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    // Replicas share a database; PostgreSQL is what production replicas use.
    let Some(scratch) = Scratch::postgres().await else {
        return;
    };
    let db = scratch.database_url();
    let survivor = replica(&scratch, &mosquitto.broker, "vft-a");
    let doomed = replica(&scratch, &mosquitto.broker, "vft-b");
    wait_ready(&survivor.api).await;
    wait_ready(&doomed.api).await;

    let total = 4000;
    let list: Vec<Message> = (0..total)
        .map(|n| {
            let e = json!({
                "id": format!("rep-{n}"),
                "ts": "2025-05-05T05:05:05+02:00",
                "municipality": "3320",
                "device": format!("REP{n}"),
                "type": "installed",
                "kind": "smoke_detector",
            });
            Message {
                topic: "vft/v1/hepro/gw-rep/events".into(),
                payload: e.to_string().into_bytes(),
                ids: vec![format!("rep-{n}")],
            }
        })
        .collect();
    let list = Arc::new(list);
    let publishing = gateway(&mosquitto.broker, "rep-gateway", list.clone(), WAIT);
    let store = vft_store::open(&db, &Default::default())
        .await
        .expect("store");
    eventually("both replicas ingesting", WAIT, || async {
        (store.event_count().await.ok()? >= 200).then_some(())
    })
    .await;
    doomed.kill();
    let acked = publishing.await.expect("gateway");
    assert_eq!(acked.len(), total, "Mosquitto acknowledged every message");

    // The survivor tells: its peer is silent and the broker holds that peer's share.
    let body = eventually("the survivor reports the stranded share", WAIT, || async {
        let (status, body) = readiness(&survivor.api).await;
        (status == 503 && body["reason"] == "replica_share_stranded").then_some(body)
    })
    .await;
    assert_eq!(body["status"], "not ready");
    let metrics = get(&format!("{}/metrics", survivor.api), None)
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains("vft_ingest_silent_peer_replicas 1"),
        "{metrics}"
    );
    let stranded = total - store.event_count().await.expect("count") as usize;
    assert!(
        stranded > 0,
        "the killed replica's share should wait at the broker"
    );
    let out = std::process::Command::new(VFT)
        .args(["replicas", "--database-url", &db])
        .env("VFT_INGEST__REPLICA_SILENT_SECS", "3")
        .current_dir(scratch.dir.path())
        .output()
        .expect("vft replicas");
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("vft-b") && l.ends_with("silent")),
        "{listed}"
    );

    // The deployment restarts it under the same client id: its share comes in.
    let back = replica(&scratch, &mosquitto.broker, "vft-b");
    eventually("every acknowledged event stored", WAIT, || async {
        (store.event_count().await.ok()? as usize >= total).then_some(())
    })
    .await;
    let stored = stored_ids(&db).await;
    assert!(list.iter().all(|m| stored.contains(&m.ids[0])));
    eventually("the survivor ready again", WAIT, || async {
        (readiness(&survivor.api).await.0 == 200).then_some(())
    })
    .await;
    let token = create_token(&db, scratch.dir.path(), &["--role", "coordinator"]);
    let table = get_json(
        &format!("{}/api/v1/rollups/devices?year=2025", survivor.api),
        &token,
    )
    .await;
    let smoke = vft_domain::TechnologyKind::ALL
        .iter()
        .position(|k| k.id() == "smoke_detector")
        .expect("smoke detectors");
    assert_eq!(table["rows"][smoke]["counts"][4], total as u64, "May");
    drop(back);
}
