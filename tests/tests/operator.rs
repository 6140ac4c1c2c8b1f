//! End to end: an operator's first hour. Credentials on `vft sim`, commands that must not
//! create a database, an unreachable database failing fast and by name, and logs fit for
//! journald (plain without a terminal, JSON on a switch).

mod support;

use std::time::Duration;
use support::*;

/// `vft sim --mqtt-url mqtt://user:pass@…` logs in to a broker with a password file, and a
/// wrong password is refused with a message naming the broker and the user, not the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_logs_in_with_the_urls_credentials_and_a_wrong_password_is_named() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let scratch = Scratch::new();
    let (vft, broker) = serve(&scratch, Some(&mosquitto.broker), &[]);
    wait_ready(&vft.api).await;

    let url = broker.url();
    assert!(url.contains("vft:test-secret@"), "{url}");
    let out = vft_cli(
        &["sim", "--mqtt-url", &url, "--heartbeat-days", "90"],
        scratch.dir.path(),
    )
    .unwrap_or_else(|e| panic!("vft sim with the right password failed: {e}"));
    let events: u64 = out
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("published N events: {out}"));
    assert!(events > 1000, "{out}");
    let store = vft_store::open(&scratch.database_url(), &Default::default())
        .await
        .expect("open store");
    eventually(
        "the simulated events stored",
        Duration::from_secs(120),
        || async { (store.event_count().await.ok()? >= events).then_some(()) },
    )
    .await;

    let wrong = format!("mqtt://vft:not-the-secret@127.0.0.1:{}", broker.port);
    let err = vft_cli(&["sim", "--mqtt-url", &wrong], scratch.dir.path())
        .expect_err("a wrong password must fail");
    let port = broker.port.to_string();
    assert!(
        err.contains(&format!("127.0.0.1:{port}"))
            && err.contains("username or password")
            && err.contains("\"vft\""),
        "the error names the broker and the user: {err}"
    );
    assert!(
        !err.contains("not-the-secret"),
        "the password leaked: {err}"
    );
    drop(vft);
}
