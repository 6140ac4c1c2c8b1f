//! End to end: `vft backup` copies a live SQLite store while ingest writes to it, and the copy,
//! served by another vft, answers the yearly table exactly as the original does.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_ingest_serves_the_same_table() {
    let server = Server::start(Scratch::new()).await;
    let db = server.scratch.database_url();
    let dir = server.scratch.dir.path().to_path_buf();

    // The simulated region: installs, removals, replacements, the vendor migration.
    let mqtt = format!("127.0.0.1:{}", server.broker.port);
    let out = vft_cli(
        &["sim", "--mqtt-addr", &mqtt, "--heartbeat-days", "30"],
        &dir,
    )
    .expect("vft sim");
    let region: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("published N events: {out}"));
    server.wait_events(region).await;
    let store = vft_store::open(&db, &Default::default())
        .await
        .expect("open store");
    let loaded = store.event_count().await.expect("count");

    // Then a stream of heartbeats (today, so retention keeps them; they move no month end)
    // that is still being written while the backup runs.
    const MESSAGES: usize = 1000;
    const PER_MESSAGE: usize = 100;
    let now = chrono::Utc::now().to_rfc3339();
    let broker = server.broker.clone();
    let streaming = tokio::spawn(async move {
        let mut p = Publisher::connect(&broker, "backup-heartbeats").await;
        for m in 0..MESSAGES {
            let batch: Vec<_> = (0..PER_MESSAGE)
                .map(|i| {
                    let n = m * PER_MESSAGE + i;
                    json!({ "id": format!("hb-{n}"), "ts": now, "municipality": "3328",
                            "device": format!("HB-{}", n % 500), "type": "heartbeat" })
                })
                .collect();
            p.publish("vft/v1/hepro/gw-backup/events", json!(batch).to_string())
                .await;
        }
        p.wait_all_acked(Duration::from_secs(300)).await;
        p.disconnect().await;
    });
    let total = loaded + (MESSAGES * PER_MESSAGE) as u64;
    let before = eventually("ingest under way", Duration::from_secs(60), || async {
        let n = store.event_count().await.ok()?;
        (n > loaded).then_some(n)
    })
    .await;
    assert!(
        before < total,
        "the heartbeats were all stored before the backup began; nothing ran beside it"
    );

    let copy = dir.join("backup").join("vft-copy.db");
    std::fs::create_dir_all(copy.parent().expect("parent")).expect("backup dir");
    let copy_arg = copy.to_str().expect("utf-8 path").to_owned();
    let (db_arg, cwd) = (db.clone(), dir.clone());
    let started = Instant::now();
    let backup = tokio::task::spawn_blocking(move || {
        vft_cli(&["backup", &copy_arg, "--database-url", &db_arg], &cwd)
    })
    .await
    .expect("backup thread");
    let took = started.elapsed();
    backup.unwrap_or_else(|e| panic!("vft backup failed: {e}"));
    let after = store.event_count().await.expect("count");
    eprintln!(
        "backup of a {} MB store took {took:?}; events stored: {before} before, {after} after, {total} at the end",
        std::fs::metadata(dir.join("vft.db"))
            .map(|m| m.len() / 1_000_000)
            .unwrap_or(0),
    );
    streaming.await.expect("heartbeats published");
    server.wait_events(total).await;

    let entries: Vec<_> = std::fs::read_dir(copy.parent().expect("parent"))
        .expect("read backup dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(entries, [copy.file_name().expect("name")], "no leftovers");
    let copied = vft_store::open(&format!("sqlite://{}", copy.display()), &Default::default())
        .await
        .expect("the copy opens")
        .event_count()
        .await
        .expect("count");
    assert!(
        (loaded..=total).contains(&copied),
        "the copy holds a state of one commit: {loaded} ≤ {copied} ≤ {total}"
    );

    // An existing file is never overwritten.
    let len = std::fs::metadata(&copy).expect("copy").len();
    let err = vft_cli(
        &[
            "backup",
            copy.to_str().expect("utf-8"),
            "--database-url",
            &db,
        ],
        &dir,
    )
    .expect_err("backing up onto an existing file must fail");
    assert!(
        err.contains(&copy.display().to_string()) && err.contains("exists"),
        "{err}"
    );
    assert_eq!(std::fs::metadata(&copy).expect("copy").len(), len);

    // The copy, served by another vft, answers the table as the original does (the
    // coordinator's token is in the copy too).
    let (copy_vft, _) = spawn_vft(
        "serve",
        &format!("sqlite://{}", copy.display()),
        &dir,
        None,
        &[],
        &[],
    );
    for query in [
        "/api/v1/rollups/devices?year=2025",
        "/api/v1/rollups/devices?year=2025&municipality=3328",
    ] {
        let original = server.get(query).await;
        let restored = get_json(&format!("{}{query}", copy_vft.api), &server.coordinator).await;
        assert_eq!(original, restored, "{query}");
    }
    assert!(
        server.get("/api/v1/rollups/devices?year=2025").await["rows"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty()),
        "the table has rows"
    );
}

/// PostgreSQL is backed up with its own tools; `vft backup` says so and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_postgresql_points_to_pg_dump() {
    let Some(scratch) = Scratch::postgres().await else {
        return;
    };
    let db = scratch.database_url();
    // A migrated database, as `vft serve` leaves it.
    vft_store::open(&db, &Default::default())
        .await
        .expect("open store");
    let err = vft_cli(
        &["backup", "copy.db", "--database-url", &db],
        scratch.dir.path(),
    )
    .expect_err("PostgreSQL backup is refused");
    assert!(err.contains("pg_dump"), "{err}");
    assert!(!scratch.dir.path().join("copy.db").exists());
}
