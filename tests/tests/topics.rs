//! A message on a topic nobody handles (a misspelt `…/event`) does not vanish: on the embedded
//! listener and on Mosquitto alike it becomes a `bad_topic` dead letter, is counted in
//! `vft_ingest_unhandled_topic_messages_total`, and is logged once per topic.

mod support;

use std::time::Duration;
use support::*;

async fn misspelt_topic_is_kept_and_counted(external: Option<&BrokerUnderTest>) {
    let scratch = Scratch::new();
    let (vft, broker) = serve(&scratch, external, &[]);
    wait_ready(&vft.api).await;
    let mut p = Publisher::connect(&broker, "misspelt-gateway").await;
    let payload = serde_json::json!({
        "id": "typo-1", "ts": "2025-05-05T05:05:05+02:00", "municipality": "3320",
        "device": "TYPO-1", "type": "installed", "kind": "smoke_detector",
    })
    .to_string();
    for _ in 0..3 {
        p.publish("vft/v1/hepro/gw-typo/event", payload.clone())
            .await;
    }
    p.wait_all_acked(Duration::from_secs(60)).await;
    p.disconnect().await;
    let store = vft_store::open(&scratch.database_url(), &Default::default())
        .await
        .expect("store");
    let letter = eventually(
        "a dead letter for the misspelt topic",
        Duration::from_secs(60),
        || async {
            store
                .dead_letters(100, None)
                .await
                .ok()?
                .into_iter()
                .find(|d| d.topic == "vft/v1/hepro/gw-typo/event")
        },
    )
    .await;
    assert_eq!(letter.reason_code, "bad_topic");
    assert_eq!(store.event_count().await.expect("count"), 0);
    let metrics = eventually("the metric", Duration::from_secs(30), || async {
        let m = get(&format!("{}/metrics", vft.api), None)
            .await
            .text()
            .await
            .ok()?;
        m.contains("vft_ingest_unhandled_topic_messages_total 3")
            .then_some(m)
    })
    .await;
    assert!(metrics.contains("vft_ingest_unhandled_topic_messages_total"));
    drop(vft);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misspelt_topic_on_the_embedded_listener() {
    misspelt_topic_is_kept_and_counted(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misspelt_topic_through_mosquitto() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    misspelt_topic_is_kept_and_counted(Some(&mosquitto.broker)).await;
}
