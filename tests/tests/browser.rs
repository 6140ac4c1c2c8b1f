//! The dashboard in a real headless Chromium: loads the demo region into a fresh vft and runs
//! the Playwright tests in `tests/browser/*.test.mjs` against it (password sign-in, every cell
//! of the table against the API, language, devices, CSV download, a municipality's limits, what
//! each role sees, the audit log page, that no request leaves the vft server, the reasons for
//! removals, the vendors' service level page, the downloads' names and Excel variants, and the
//! actions of each role: uploading a vendor export, publishing a month, a device's timeout,
//! handling and replaying rejected messages, accounts and machine tokens).
//!
//! The people are accounts: the demo's coordinator (`koordinator`, the password it printed)
//! and accounts made here with `vft user create … --password-stdin` (a municipality user of
//! Ål, one of Hol and Gol, an operator and an auditor). Machine tokens are only for the tests'
//! own reads of the API, to compare the pages with.
//!
//! Needs Node.js, `npm ci` in tests/browser and Debian's chromium; `.ci/run` installs them.
//! Without them the test is skipped loudly on a workstation and fails in CI.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Longest the browser tests may run before they count as hung.
const BROWSER_TESTS_TIMEOUT: Duration = Duration::from_secs(600);

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// What is missing to run the browser tests, if anything.
fn missing_parts(browser_dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node {
        missing.push("node (Node.js 20)".to_owned());
    }
    if !browser_dir.join("node_modules/playwright-core").is_dir() {
        missing.push("tests/browser/node_modules (run `npm ci` in tests/browser)".to_owned());
    }
    if !chromium().is_file() {
        missing.push(format!(
            "{} (apt-get install chromium)",
            chromium().display()
        ));
    }
    missing
}

fn browser_test_files(browser_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(browser_dir)
        .expect("tests/browser")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".test.mjs"))
        })
        .collect();
    files.sort();
    files
}

/// Publishes January 2025, then a late install dated inside it, so the page has a published
/// month and a correction to show; and an install from a clock running ahead, a rejected
/// message that can be taken in again a minute later.
async fn publish_a_month_and_correct_it(api: &str, token: &str, mqtt_port: u16) {
    let resp = reqwest::Client::new()
        .post(format!("{api}/api/v1/months/2025-01/publish"))
        .bearer_auth(token)
        .send()
        .await
        .expect("publish");
    assert!(resp.status().is_success(), "publish: {}", resp.status());
    let broker = BrokerUnderTest {
        port: mqtt_port,
        credentials: None,
    };
    let mut gateway = Publisher::connect(&broker, "late-gateway").await;
    let late = serde_json::json!({
        "id": "late-install-1", "ts": "2025-01-15T10:00:00+01:00", "municipality": "3328",
        "device": "HP-LATE-1", "type": "installed", "kind": "safety_alarm"
    });
    gateway
        .publish("vft/v1/hepro/hepro-3328-late/events", late.to_string())
        .await;
    // A gateway whose clock runs ahead: an install dated a day and a minute from now is
    // refused (`implausible_time`) and becomes valid a minute later, so the dashboard's
    // "Prøv på nytt" can take it in (tests/browser/workday.test.mjs finds it by its id).
    let ahead = chrono::Utc::now() + chrono::Duration::seconds(24 * 3600 + 60);
    let early = serde_json::json!({
        "id": "browser-replay-1", "ts": ahead.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "municipality": "3328", "device": "HP-REPLAY-1", "type": "installed", "kind": "safety_alarm"
    });
    gateway
        .publish("vft/v1/hepro/hepro-3328-late/events", early.to_string())
        .await;
    gateway.wait_all_acked(Duration::from_secs(60)).await;
    gateway.disconnect().await;
    eventually(
        "the correction of January",
        Duration::from_secs(60),
        || async {
            let table = get_json(&format!("{api}/api/v1/rollups/devices?year=2025"), token).await;
            (table["corrections"].as_array()?.len() == 1).then_some(())
        },
    )
    .await;
}

#[test]
fn the_dashboard_in_headless_chromium() {
    let root = workspace_root();
    let browser_dir = root.join("tests/browser");
    let missing = missing_parts(&browser_dir);
    if !missing.is_empty() {
        let message = format!(
            "browser tests need {}; .ci/run installs them",
            missing.join(", ")
        );
        assert!(!in_ci(), "{message}");
        eprintln!("\n!!!!!!!! SKIPPED: {message} !!!!!!!!\n");
        return;
    }
    let files = browser_test_files(&browser_dir);
    assert!(!files.is_empty(), "no tests/browser/*.test.mjs");

    let scratch = Scratch::new();
    let db = scratch.database_url();
    // Notification rules are evaluated every 2 s, so Varsler shows incidents without waiting.
    let (demo, mqtt_port, coordinator) = demo(&scratch, &[("VFT_NOTIFY__INTERVAL_SECS", "2")]);
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(publish_a_month_and_correct_it(
            &demo.api,
            &coordinator,
            mqtt_port,
        ));
    let cwd = scratch.dir.path();
    let aal = create_token(
        &db,
        cwd,
        &["--role", "municipality", "--municipality", "3328"],
    );
    // The people, as the tests see them: VFT_<WHO>_USER and VFT_<WHO>_PASSWORD.
    let (coordinator_user, coordinator_password) = demo_account(&demo);
    let mut people = vec![
        ("VFT_COORDINATOR_USER".to_owned(), coordinator_user),
        ("VFT_COORDINATOR_PASSWORD".to_owned(), coordinator_password),
    ];
    let accounts: [(&str, &str, &[&str]); 4] = [
        (
            "MUNICIPALITY",
            "kari.aal",
            &["--role", "municipality", "--municipality", "3328"],
        ),
        (
            "SEVERAL",
            "per.holgol",
            &["--role", "municipality", "--municipality", "3330,3324"],
        ),
        ("OPERATOR", "drift", &["--role", "operator"]),
        (
            "AUDITOR",
            "revisor",
            &["--role", "auditor", "--name", "Rita Revisor"],
        ),
    ];
    for (who, username, role_args) in accounts {
        let password = format!("{}-passord-i-nettleseren", who.to_lowercase());
        create_user(&db, cwd, username, role_args, &password);
        people.push((format!("VFT_{who}_USER"), username.to_owned()));
        people.push((format!("VFT_{who}_PASSWORD"), password));
    }

    let mut node = Command::new("node")
        // One file at a time: every page signs in from 127.0.0.1, and one test makes the
        // sign-in throttle hold that address back for a few seconds.
        .args(["--test", "--test-concurrency=1"])
        .args(&files)
        .current_dir(&browser_dir)
        .env("VFT_URL", &demo.api)
        .env("VFT_COORDINATOR_TOKEN", &coordinator)
        .env("VFT_MUNICIPALITY_TOKEN", &aal)
        .env("VFT_MUNICIPALITY", "3328")
        .env("VFT_OTHER_MUNICIPALITY", "3330")
        .env("VFT_SEVERAL_MUNICIPALITIES", "3330,3324")
        .envs(people)
        .env("CHROMIUM", chromium())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let deadline = Instant::now() + BROWSER_TESTS_TIMEOUT;
    let status = loop {
        if let Some(status) = node.try_wait().expect("wait for node") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = node.kill();
            panic!("the browser tests did not finish within {BROWSER_TESTS_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "browser tests failed: {status}");
    assert!(demo.terminate().success());
}
