//! Nothing acknowledged is ever lost: real faults (SIGKILL under a burst, a full disk, commits
//! the database refuses), counted as the gateways see them (PUBACKs) against what is stored.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use support::*;
use vft_domain::TechnologyKind;
use vft_testkit::SmallFs;

const WAIT: Duration = Duration::from_secs(120);
const MUNICIPALITIES: [&str; 6] = ["3320", "3322", "3324", "3326", "3328", "3330"];

/// Install number `n` of a test: kind and municipality rotate, all in April 2025 (Oslo).
fn install(tag: &str, n: usize) -> Value {
    json!({
        "id": format!("{tag}-{n}"),
        "ts": format!("2025-04-{:02}T{:02}:00:00+02:00", 1 + n % 28, n % 24),
        "municipality": MUNICIPALITIES[n % 6],
        "device": format!("{tag}-D{n}"),
        "type": "installed",
        "kind": TechnologyKind::ALL[n % 6].id(),
    })
}

/// `singles` one-event messages and `batches` messages of 100 events, ids tagged `tag`.
fn messages(tag: &str, singles: usize, batches: usize) -> (Vec<Message>, Vec<Message>) {
    let single = (0..singles)
        .map(|n| {
            let e = install(tag, n);
            Message {
                topic: "vft/v1/hepro/gw-single/events".into(),
                payload: e.to_string().into_bytes(),
                ids: vec![e["id"].as_str().unwrap_or_default().to_owned()],
            }
        })
        .collect();
    let batched = (0..batches)
        .map(|b| {
            let events: Vec<Value> = (0..100)
                .map(|i| install(&format!("{tag}b"), b * 100 + i))
                .collect();
            Message {
                topic: "vft/v1/hepro/gw-batch/events".into(),
                payload: serde_json::to_vec(&events).unwrap_or_default(),
                ids: events
                    .iter()
                    .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
                    .collect(),
            }
        })
        .collect();
    (single, batched)
}

/// Publishes `list` from a new connection until done or the connection dies; returns the
/// indices the server acknowledged.
fn publish_all(
    broker: &BrokerUnderTest,
    client_id: &str,
    list: std::sync::Arc<Vec<Message>>,
) -> tokio::task::JoinHandle<Vec<usize>> {
    let broker = broker.clone();
    let client_id = client_id.to_owned();
    tokio::spawn(async move {
        let mut p = Publisher::connect_with_inflight(&broker, &client_id, 100).await;
        for m in list.iter() {
            if !p.try_publish(&m.topic, m.payload.clone()).await {
                break;
            }
        }
        // Until every PUBACK came, or the connection died.
        let want = list.len();
        while p.acked().len() < want && !p.is_closed() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let acked = p.acked();
        if !p.is_closed() {
            p.disconnect().await;
        }
        acked
    })
}

fn serve_on(scratch: &Scratch, mqtt_port: u16) -> VftProcess {
    let addr = format!("127.0.0.1:{mqtt_port}");
    VftProcess::spawn(
        &[
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--database-url",
            &scratch.database_url(),
            "--mqtt-addr",
            &addr,
        ],
        scratch.dir.path(),
    )
}

/// The default configuration (embedded listener, SQLite), SIGKILLed five times under a burst
/// of single-event and 100-event messages at different moments: every event of every
/// acknowledged message is stored when vft comes back, each once, and after the gateways
/// send again what was not acknowledged, every cell of the table is right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_a_burst_loses_nothing_acknowledged_on_the_default_configuration() {
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let mut published: BTreeSet<String> = BTreeSet::new();
    let mut kinds = [0u64; 6];
    let mut kills_mid_stream = 0;
    for (round, fraction) in [0.05, 0.25, 0.5, 0.75, 0.95].into_iter().enumerate() {
        let port = free_port();
        let vft = serve_on(&scratch, port);
        wait_ready(&vft.api).await;
        let broker = BrokerUnderTest {
            port,
            credentials: None,
        };
        let (singles, batches) = messages(&format!("r{round}"), 3000, 40);
        let singles = std::sync::Arc::new(singles);
        let batches = std::sync::Arc::new(batches);
        let round_events = singles.len() + batches.len() * 100;
        for m in singles.iter().chain(batches.iter()) {
            for id in &m.ids {
                published.insert(id.clone());
            }
        }
        for n in 0..3000 {
            kinds[n % 6] += 1;
        }
        for n in 0..4000 {
            kinds[n % 6] += 1;
        }
        let before = stored_ids(&db).await.len();
        let single_task = publish_all(&broker, &format!("single-{round}"), singles.clone());
        let batch_task = publish_all(&broker, &format!("batch-{round}"), batches.clone());
        // Kill at a different point of each burst.
        let threshold = before + (round_events as f64 * fraction) as usize;
        let store = vft_store::open(&db, &Default::default())
            .await
            .expect("store");
        eventually("the burst under way", WAIT, || async {
            (store.event_count().await.ok()? as usize >= threshold).then_some(())
        })
        .await;
        vft.kill();
        let acked_singles = single_task.await.expect("publisher");
        let acked_batches = batch_task.await.expect("publisher");
        let stored = stored_ids(&db).await;
        let mut lost = 0;
        for (list, acked) in [(&singles, &acked_singles), (&batches, &acked_batches)] {
            for &i in acked {
                lost += list[i]
                    .ids
                    .iter()
                    .filter(|id| !stored.contains(*id))
                    .count();
            }
        }
        assert_eq!(
            lost, 0,
            "round {round}: acknowledged events lost at the kill"
        );
        if acked_singles.len() < singles.len() || acked_batches.len() < batches.len() {
            kills_mid_stream += 1;
        }
        // The gateways send again what was never acknowledged.
        let port = free_port();
        let vft = serve_on(&scratch, port);
        wait_ready(&vft.api).await;
        let broker = BrokerUnderTest {
            port,
            credentials: None,
        };
        let unacked = |list: &Vec<Message>, acked: &[usize]| {
            let acked: BTreeSet<usize> = acked.iter().copied().collect();
            std::sync::Arc::new(
                list.iter()
                    .enumerate()
                    .filter(|(i, _)| !acked.contains(i))
                    .map(|(_, m)| Message {
                        topic: m.topic.clone(),
                        payload: m.payload.clone(),
                        ids: m.ids.clone(),
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let again = [
            unacked(&singles, &acked_singles),
            unacked(&batches, &acked_batches),
        ];
        for (k, list) in again.into_iter().enumerate() {
            let want = list.len();
            let acked = publish_all(&broker, &format!("again-{round}-{k}"), list)
                .await
                .expect("publisher");
            assert_eq!(acked.len(), want, "a resend was not acknowledged");
        }
        assert!(vft.terminate().success());
    }
    assert!(
        kills_mid_stream >= 3,
        "the kills should land mid-stream ({kills_mid_stream} of 5 did)"
    );
    let stored = stored_ids(&db).await;
    assert_eq!(stored, published, "exactly the published events, each once");
    let store = vft_store::open(&db, &Default::default())
        .await
        .expect("store");
    assert_eq!(
        store.event_count().await.expect("count") as usize,
        published.len()
    );
    // Every cell of the table, from a fresh start.
    let vft = serve_on(&scratch, free_port());
    wait_ready(&vft.api).await;
    let token = create_token(&db, scratch.dir.path(), &["--role", "coordinator"]);
    let table = get_json(
        &format!("{}/api/v1/rollups/devices?year=2025", vft.api),
        &token,
    )
    .await;
    for (k, want) in kinds.iter().enumerate() {
        for m in 0..12 {
            let expected = if m >= 3 { *want } else { 0 };
            assert_eq!(
                table["rows"][k]["counts"][m].as_u64(),
                Some(expected),
                "row {k} month {}",
                m + 1
            );
        }
    }
}

async fn readyz(api: &str) -> (u16, Value) {
    let r = get(&format!("{api}/readyz"), None).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// SQLite on a filesystem that fills up: readiness says so (a code, no paths), nothing is
/// acknowledged that is not stored, and once space is freed ingest resumes by itself and
/// takes everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_acks_back_and_ingest_resumes_by_itself() {
    let Some(fs) = SmallFs::mount(48 * 1024 * 1024) else {
        return;
    };
    // The database gets about 8 MiB (some 8 000 installs with their service state) until the
    // filler goes.
    let filler = fs.dir.join("filler");
    std::fs::write(&filler, vec![0u8; 40 * 1024 * 1024]).expect("filler");
    let scratch = Scratch::new();
    let db = format!("sqlite://{}", fs.dir.join("vft.db").display());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let vft = VftProcess::spawn_with_env(
        &[
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--database-url",
            &db,
            "--mqtt-addr",
            &addr,
        ],
        scratch.dir.path(),
        // Retry often, so that recovery shows within the test's patience.
        &[("VFT_INGEST__BACKOFF_MAX_MS", "500")],
    );
    wait_ready(&vft.api).await;
    let broker = BrokerUnderTest {
        port,
        credentials: None,
    };
    // 30 000 events: more than fit before the filler goes, fewer than after.
    let (_, batches) = messages("full", 0, 300);
    let batches = std::sync::Arc::new(batches);
    let publishing = gateway(
        &broker,
        "filler-gateway",
        batches.clone(),
        Duration::from_secs(600),
    );
    let (status, body) = eventually("readiness 503 on a full disk", WAIT, || async {
        let (status, body) = readyz(&vft.api).await;
        (status == 503).then_some((status, body))
    })
    .await;
    assert_eq!(status, 503);
    assert_eq!(body["reason"], "commits_failing", "{body}");
    assert!(
        !body.to_string().contains('/'),
        "readiness shows no internals: {body}"
    );
    // While the disk is full: what was acknowledged is stored, and no more gets acknowledged.
    let stored = stored_ids(&db).await;
    let metrics = get(&format!("{}/metrics", vft.api), None)
        .await
        .text()
        .await
        .expect("metrics");
    assert!(
        metrics.contains("vft_ingest_ready 0"),
        "metrics show unready: {metrics}"
    );
    std::fs::remove_file(&filler).expect("free space");
    let acked = tokio::time::timeout(Duration::from_secs(300), publishing)
        .await
        .expect("every message acknowledged after space came back")
        .expect("publisher");
    assert_eq!(acked.len(), batches.len());
    let after = stored_ids(&db).await;
    for m in batches.iter() {
        for id in &m.ids {
            assert!(after.contains(id), "{id} acknowledged but not stored");
        }
    }
    assert!(stored.len() < after.len(), "the disk filled mid-stream");
    eventually("ready again", WAIT, || async {
        (readyz(&vft.api).await.0 == 200).then_some(())
    })
    .await;
    assert!(vft.terminate().success());
}

/// PostgreSQL refusing commits (a deferred constraint trigger fails at COMMIT): no PUBACK for
/// what was refused, readiness 503, and ingest resumes by itself once the database takes
/// commits again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_commits_on_postgres_hold_acks_back_until_they_go_through() {
    let Some(scratch) = Scratch::postgres().await else {
        return;
    };
    let db = scratch.database_url();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let vft = VftProcess::spawn_with_env(
        &[
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--database-url",
            &db,
            "--mqtt-addr",
            &addr,
        ],
        scratch.dir.path(),
        &[("VFT_INGEST__BACKOFF_MAX_MS", "500")],
    );
    wait_ready(&vft.api).await;
    let psql = |sql: &str| {
        let out = std::process::Command::new("psql")
            .arg(&db)
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    psql(
        "CREATE TABLE refuse_commits (on_off boolean NOT NULL);
         INSERT INTO refuse_commits VALUES (true);
         CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF (SELECT on_off FROM refuse_commits) THEN RAISE EXCEPTION 'commit refused by the test'; END IF;
           RETURN NULL;
         END $$;
         CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON events
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();",
    );
    let broker = BrokerUnderTest {
        port,
        credentials: None,
    };
    let (singles, _) = messages("pg", 200, 0);
    let singles = std::sync::Arc::new(singles);
    let mut p = Publisher::connect_with_inflight(&broker, "pg-gateway", 100).await;
    for m in singles.iter() {
        p.publish(&m.topic, m.payload.clone()).await;
    }
    let body = eventually("readiness 503 while commits are refused", WAIT, || async {
        let (status, body) = readyz(&vft.api).await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["reason"], "commits_failing", "{body}");
    assert!(
        p.acked().is_empty(),
        "acknowledged while every commit was refused"
    );
    assert!(stored_ids(&db).await.is_empty());
    psql("UPDATE refuse_commits SET on_off = false");
    p.wait_all_acked(WAIT).await;
    p.disconnect().await;
    let stored = stored_ids(&db).await;
    assert!(singles.iter().all(|m| stored.contains(&m.ids[0])));
    eventually("ready again", WAIT, || async {
        (readyz(&vft.api).await.0 == 200).then_some(())
    })
    .await;
    assert!(vft.terminate().success());
}
