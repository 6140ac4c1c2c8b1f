//! Real faults against the store: a disk that fills up under SQLite, a commit the PostgreSQL
//! server refuses, and a PostgreSQL server restarted mid-stream. Each test counts the events
//! whose `write_batch` returned `Ok` (what ingest would acknowledge) against what a fresh
//! connection finds stored afterwards: they must be equal.

use chrono::{DateTime, Duration, Utc};
use std::time::Instant;
use vft_domain::{
    DeviceId, Event, EventId, EventType, GatewayId, MunicipalityCode, TechnologyKind, VendorId,
};
use vft_store::{Store, StoreOptions};
use vft_testkit::{PgCluster, SmallFs};

/// `n` install events with ids unique across the whole test (`batch` numbers them).
fn batch(batch: usize, n: usize) -> Vec<Event> {
    let base: DateTime<Utc> = "2025-03-01T00:00:00Z".parse().expect("ts");
    (0..n)
        .map(|i| {
            let k = batch * n + i;
            Event {
                vendor: VendorId::parse("hepro").expect("vendor"),
                gateway: GatewayId::parse("gw-1").expect("gateway"),
                id: EventId::parse(&format!("evt-fault-{k:08}")).expect("id"),
                ts: (base + Duration::seconds(k as i64)).fixed_offset(),
                municipality: MunicipalityCode::parse("3328").expect("municipality"),
                device: DeviceId::parse(&format!("dev-fault-{k:08}")).expect("device"),
                event_type: EventType::Installed,
                kind: Some(TechnologyKind::SafetyAlarm),
                battery: None,
                alarm: None,
                cause: None,
                outcome: None,
                recipient: Some(
                    vft_domain::RecipientRef::parse(&format!("r-{k}")).expect("recipient"),
                ),
                replaces: None,
                reason: None,
            }
        })
        .collect()
}

/// Writes batch `n` and returns how many events it acknowledged (0 when it failed).
async fn write(store: &dyn Store, n: usize, size: usize) -> Result<u64, String> {
    store
        .write_batch(&batch(n, size), &[], Utc::now())
        .await
        .map(|o| o.events_inserted)
        .map_err(|e| e.to_string())
}

/// Writes until one write succeeds again, or panics after `secs`.
async fn write_until_ok(store: &dyn Store, n: usize, size: usize, secs: u64) -> u64 {
    let deadline = Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        match write(store, n, size).await {
            Ok(stored) => return stored,
            Err(e) => assert!(
                Instant::now() < deadline,
                "writes did not resume within {secs} s: {e}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sqlite_disk_full_never_reports_an_uncommitted_batch_as_stored() {
    let Some(fs) = SmallFs::mount(10 * 1024 * 1024) else {
        return;
    };
    // Room to free later, as an operator would: more than the write-ahead log can hold, since
    // SQLite must copy the log into the database file (a checkpoint) before reusing it.
    let filler = fs.dir.join("filler");
    std::fs::write(&filler, vec![0u8; 6 * 1024 * 1024]).expect("filler");
    let url = format!("sqlite://{}", fs.dir.join("vft.db").display());
    let store = vft_store::open(&url, &StoreOptions::default())
        .await
        .expect("open");
    let size = 200;
    let mut acknowledged = 0u64;
    let mut failures = 0;
    let mut next = 0;
    // Fill the disk, then go on writing into the full disk for a while: before the writer
    // connection was reset after a failed COMMIT, these later writes reported success.
    while failures < 20 {
        match write(store.as_ref(), next, size).await {
            Ok(stored) => acknowledged += stored,
            Err(_) => failures += 1,
        }
        next += 1;
        assert!(next < 5_000, "the filesystem never filled up");
    }
    std::fs::remove_file(&filler).expect("free space");
    // Resumes by itself once space is back.
    for _ in 0..5 {
        acknowledged += write_until_ok(store.as_ref(), next, size, 30).await;
        next += 1;
    }
    drop(store);
    let fresh = vft_store::open(&url, &StoreOptions::default())
        .await
        .expect("reopen");
    assert_eq!(
        fresh.event_count().await.expect("count"),
        acknowledged,
        "events reported stored vs events found by a fresh connection"
    );
    assert!(acknowledged > 0);
}

#[tokio::test]
async fn postgres_commit_refused_by_the_server_is_not_reported_as_stored() {
    let Some(cluster) = tokio::task::spawn_blocking(PgCluster::start)
        .await
        .expect("start")
    else {
        return;
    };
    cluster.psql("postgres", "CREATE DATABASE vft");
    let url = cluster.database_url("vft");
    let store = vft_store::open(&url, &StoreOptions::default())
        .await
        .expect("open");
    // A deferred constraint trigger fails at COMMIT, after every statement succeeded.
    cluster.psql(
        "vft",
        "CREATE TABLE refuse_commits (on_off boolean NOT NULL);
         INSERT INTO refuse_commits VALUES (false);
         CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF (SELECT on_off FROM refuse_commits) THEN RAISE EXCEPTION 'commit refused by the test'; END IF;
           RETURN NULL;
         END $$;
         CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON events
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();",
    );
    let size = 100;
    let mut acknowledged = 0u64;
    let mut next = 0;
    for _ in 0..3 {
        acknowledged += write(store.as_ref(), next, size).await.expect("write");
        next += 1;
    }
    cluster.psql("vft", "UPDATE refuse_commits SET on_off = true");
    for _ in 0..10 {
        let refused = write(store.as_ref(), next, size).await;
        assert!(
            refused.is_err(),
            "a refused commit was reported as stored: {refused:?}"
        );
        next += 1;
    }
    cluster.psql("vft", "UPDATE refuse_commits SET on_off = false");
    for _ in 0..3 {
        acknowledged += write_until_ok(store.as_ref(), next, size, 30).await;
        next += 1;
    }
    let fresh = vft_store::open(&url, &StoreOptions::default())
        .await
        .expect("reopen");
    assert_eq!(fresh.event_count().await.expect("count"), acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_stream_loses_nothing_reported_stored() {
    let Some(cluster) = tokio::task::spawn_blocking(PgCluster::start)
        .await
        .expect("start")
    else {
        return;
    };
    cluster.psql("postgres", "CREATE DATABASE vft");
    let url = cluster.database_url("vft");
    let store = vft_store::open(&url, &StoreOptions::default())
        .await
        .expect("open");
    let size = 100;
    let mut acknowledged = 0u64;
    let mut next = 0;
    for mode in ["fast", "immediate"] {
        // A writer keeps writing while the server goes away and comes back.
        let writer = {
            let store = store.clone();
            let first = next;
            tokio::spawn(async move {
                let mut acknowledged = 0;
                let mut failures = 0;
                let mut n = first;
                // Until the server has been down (failures) and up again (then 20 more).
                let mut after_recovery = 0;
                while after_recovery < 20 {
                    match write(store.as_ref(), n, size).await {
                        Ok(stored) => {
                            acknowledged += stored;
                            if failures > 0 {
                                after_recovery += 1;
                            }
                        }
                        Err(_) => {
                            failures += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    }
                    n += 1;
                    assert!(n - first < 100_000, "the restart never showed as a failure");
                }
                (acknowledged, n)
            })
        };
        // Let some writes through first (poll the store, do not sleep blindly).
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while store.event_count().await.expect("count") < acknowledged + 500 {
            assert!(Instant::now() < deadline, "no writes before the restart");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let c = &cluster;
        tokio::task::block_in_place(|| {
            c.stop(mode);
            c.start_again().expect("restart");
        });
        let (stored, n) = tokio::time::timeout(std::time::Duration::from_secs(120), writer)
            .await
            .expect("writes resumed within 2 minutes")
            .expect("writer");
        acknowledged += stored;
        next = n;
    }
    let _ = next;
    let fresh = vft_store::open(&url, &StoreOptions::default())
        .await
        .expect("reopen");
    assert_eq!(fresh.event_count().await.expect("count"), acknowledged);
}
