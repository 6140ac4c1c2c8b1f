//! End to end: after a hand edit of the events table, `vft rebuild` brings the figures vft
//! keeps back in line with the events, while vft serves; and the contact history it merges
//! keeps what retention purged unless told to discard it.

mod support;

use serde_json::json;
use support::*;

/// Runs SQL on the SQLite file as an operator's hand edit would (Python's sqlite3, which CI has).
fn hand_edit(db_file: &std::path::Path, sql: &str) {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1], timeout=30)\nc.executescript(sys.argv[2])\nc.commit()",
        ])
        .arg(db_file)
        .arg(sql)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "hand edit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_follows_a_hand_edit_of_the_events() {
    let server = Server::start(Scratch::new()).await;
    let db = server.scratch.database_url();
    let dir = server.scratch.dir.path().to_path_buf();
    let db_file = dir.join(db.trim_start_matches("sqlite://"));
    assert!(db_file.exists(), "the SQLite file {}", db_file.display());

    let mut events: Vec<_> = (1..=3)
        .map(|n| {
            json!({ "id": format!("inst-{n}"), "ts": "2025-01-10T10:00:00+01:00",
                    "municipality": "3328", "device": format!("R{n}"), "type": "installed",
                    "kind": "safety_alarm" })
        })
        .collect();
    events.push(json!({ "id": "hb-1", "ts": "2025-03-10T10:00:00+01:00",
                        "municipality": "3328", "device": "R1", "type": "heartbeat" }));
    server.publish(&events).await;
    let january =
        || async { server.get("/api/v1/rollups/devices?year=2025").await["total"][0].as_u64() };
    assert_eq!(january().await, Some(3));

    // An install entered by mistake, deleted by hand while vft runs.
    hand_edit(&db_file, "DELETE FROM events WHERE event_id = 'inst-3';");
    assert_eq!(
        january().await,
        Some(3),
        "vft keeps its service state with each batch, so a hand edit of the events alone does not show (why `vft rebuild` exists)"
    );
    let out = vft_cli(&["rebuild", "--database-url", &db], &dir).expect("vft rebuild");
    assert!(out.is_empty(), "messages go to stderr: {out}");
    assert_eq!(
        january().await,
        Some(2),
        "after `vft rebuild`, the table follows the events"
    );

    // The heartbeat's day is in the contact history; its raw event deleted by hand, a merging
    // rebuild keeps the day (as after retention), a discarding one forgets it.
    let store = vft_store::open(&db, &Default::default())
        .await
        .expect("open store");
    let at = vft_domain::month::oslo_end_of_day("2025-03-12".parse().expect("date")).expect("at");
    let reporting = || async {
        store
            .reporting_at(at, at - chrono::Duration::days(7))
            .await
            .expect("reporting")
            .iter()
            .map(|r| r.device.to_string())
            .collect::<Vec<_>>()
    };
    let with_contact = reporting().await;
    assert_eq!(with_contact, ["R1"]);
    hand_edit(&db_file, "DELETE FROM events WHERE event_id = 'hb-1';");
    vft_cli(&["rebuild", "--database-url", &db], &dir).expect("vft rebuild");
    assert_eq!(
        reporting().await,
        with_contact,
        "a merging rebuild lost a purged day"
    );
    vft_cli(
        &[
            "rebuild",
            "--discard-contact-history",
            "--database-url",
            &db,
        ],
        &dir,
    )
    .expect("vft rebuild --discard-contact-history");
    assert!(
        reporting().await.is_empty(),
        "the discarded day still counts"
    );

    // A store that is not there is named, not created.
    let err = vft_cli(
        &["rebuild", "--database-url", "sqlite://nowhere/vft.db"],
        &dir,
    )
    .expect_err("no store");
    assert!(err.contains("nowhere"), "{err}");
    assert!(!dir.join("nowhere").exists());
}
