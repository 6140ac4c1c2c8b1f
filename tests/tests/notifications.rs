//! Notifications end to end: rules made through the API, conditions made by real MQTT events,
//! notices delivered to a real SMTP server (aiosmtpd, read back with Python's e-mail parser)
//! and a real HTTP receiver (Python's http.server), counted before and after a restart.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(90);
const SECRET: &str = "webhook-signing-secret";

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have_aiosmtpd() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// aiosmtpd on a free loopback port, storing what it receives in `maildir`.
async fn smtp_server(maildir: &Path) -> Option<(Killed, u16)> {
    if !have_aiosmtpd() {
        assert!(
            !in_ci(),
            "aiosmtpd is missing: .ci/run installs it (pip install aiosmtpd)"
        );
        eprintln!(
            "\n*** SKIPPED: python3 -m aiosmtpd is not installed (pip install aiosmtpd) ***\n"
        );
        return None;
    }
    let port = free_port();
    let child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start aiosmtpd");
    let child = Killed(child);
    eventually("aiosmtpd listening", WAIT, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    Some((child, port))
}

/// The webhook receiver, answering 503 to its first `fail_first` calls.
fn webhook_receiver(log: &Path, fail_first: u32) -> (Killed, u16) {
    let mut child = Command::new("python3")
        .arg(workspace_root().join("tests/notify/webhook_receiver.py"))
        .arg(log)
        .arg(fail_first.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the webhook receiver");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("the receiver's port");
    let port = line
        .trim()
        .trim_start_matches("listening ")
        .parse()
        .unwrap_or_else(|_| panic!("receiver said {line:?}"));
    (Killed(child), port)
}

/// The e-mails aiosmtpd stored, decoded by Python's e-mail package.
fn emails(maildir: &Path) -> Vec<Value> {
    if !maildir.join("new").exists() {
        return Vec::new();
    }
    let out = Command::new("python3")
        .arg(workspace_root().join("tests/notify/read_maildir.py"))
        .arg(maildir)
        .output()
        .expect("read the maildir");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).expect("JSON list")
}

/// Each webhook call: its headers and parsed body.
fn webhook_calls(log: &Path) -> Vec<(Value, Value)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let call: Value = serde_json::from_str(l).expect("JSON line");
            let body = call["body"].as_str().expect("body").to_owned();
            let headers: BTreeMap<String, String> = call["headers"]
                .as_object()
                .expect("headers")
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        v.as_str().unwrap_or_default().into(),
                    )
                })
                .collect();
            // Signed with the configured secret over the exact body.
            assert_eq!(
                headers.get("x-vft-signature").map(String::as_str),
                Some(vft_notify::signature(SECRET, body.as_bytes()).as_str()),
                "a webhook call is signed"
            );
            (
                serde_json::to_value(&headers).expect("headers"),
                serde_json::from_str(&body).expect("JSON body"),
            )
        })
        .collect()
}

fn now_utc() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ev(id: &str, t: chrono::DateTime<chrono::Utc>, device: &str, kind: &str) -> Value {
    json!({ "id": id, "ts": ts(t), "municipality": "3328", "device": device, "type": kind })
}

async fn post(api: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{api}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn rounds(api: &str) -> u64 {
    let text = get(&format!("{api}/metrics"), None)
        .await
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("vft_notify_rounds_total"))
        .and_then(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn env<'a>(smtp: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("VFT_NOTIFY__SMTP_URL", smtp),
        ("VFT_NOTIFY__INTERVAL_SECS", "1"),
        ("VFT_NOTIFY__WEBHOOK_SECRET", SECRET),
        ("VFT_NOTIFY__FROM", "vft <vft@region.test.no>"),
        ("VFT_CONNECTIVITY__TIMEOUTS__SAFETY_ALARM", "3600"),
    ];
    env.extend_from_slice(extra);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_condition_is_told_once_by_email_and_webhook_then_resolved_and_never_again_after_a_restart()
 {
    let dir = tempfile::tempdir().expect("scratch");
    // aiosmtpd's Mailbox makes the maildir's folders only when it makes the maildir.
    let maildir = dir.path().join("maildir");
    let Some((_smtp, smtp_port)) = smtp_server(&maildir).await else {
        return;
    };
    let hook_log: PathBuf = dir.path().join("webhook.jsonl");
    // The receiver refuses its first call: that notice is retried, not lost or doubled.
    let (_hook, hook_port) = webhook_receiver(&hook_log, 1);
    let smtp = format!("smtp://127.0.0.1:{smtp_port}");
    let s = Server::start_with_env(Scratch::new(), &env(&smtp, &[])).await;
    let api = s.vft.api.clone();
    let webhook = format!("http://127.0.0.1:{hook_port}/hook");

    // The coordinator's region rules, one per condition.
    for (kind, threshold) in [
        ("device_offline", Some(3600)),
        ("battery_low", Some(20)),
        ("alarm_unanswered", Some(60)),
        ("month_below_standard", None),
    ] {
        let (status, body) = post(
            &api,
            "/api/v1/notification-rules",
            &s.coordinator,
            json!({"kind": kind, "threshold": threshold, "emails": ["vakt@region.test.no"], "webhook": webhook}),
        )
        .await;
        assert_eq!(status, 201, "{kind}: {body}");
    }

    // The conditions, by real events. Every install names a recipient, which no notice may carry.
    let now = now_utc();
    let hour = chrono::Duration::hours(1);
    let last_month = vft_domain::YearMonth::containing(
        vft_domain::YearMonth::containing(now).start() - chrono::Duration::seconds(1),
    );
    let mid_last_month = last_month.start() + chrono::Duration::days(14);
    let install = |id: &str, device: &str, recipient: &str| {
        let mut e = ev(id, now - hour * 72, device, "installed");
        e["kind"] = "safety_alarm".into();
        e["recipient"] = recipient.into();
        e
    };
    let mut battery_low = ev(
        "b-low",
        now - chrono::Duration::minutes(1),
        "BATT",
        "heartbeat",
    );
    battery_low["battery"] = 10.into();
    let alarm = |id: &str, t, alarm: &str, kind: &str| {
        let mut e = ev(id, t, "ALARMED", kind);
        e["alarm"] = alarm.into();
        if kind == "alarm" {
            e["cause"] = "fall".into();
        }
        e
    };
    s.publish(&[
        install("i-silent", "SILENT", "mottaker-silent"),
        install("i-batt", "BATT", "mottaker-batt"),
        install("i-alarmed", "ALARMED", "mottaker-alarmed"),
        ev("h-silent", now - hour * 2, "SILENT", "heartbeat"),
        battery_low,
        ev("h-alarmed", now, "ALARMED", "heartbeat"),
        alarm(
            "a-now",
            now - chrono::Duration::minutes(5),
            "AL-NOW",
            "alarm",
        ),
        // Last month: one alarm, answered after 90 s, so 0 % within 60 s.
        alarm("m-0", mid_last_month, "M-0", "alarm"),
        alarm(
            "m-0a",
            mid_last_month + chrono::Duration::seconds(90),
            "M-0",
            "alarm_acknowledged",
        ),
    ])
    .await;

    let expect_subjects = [
        "device:hepro/SILENT",
        "device:hepro/BATT",
        "alarm:hepro/AL-NOW",
        &format!("month:{:04}-{:02}", last_month.year(), last_month.month()),
    ];
    let opened = eventually(
        "four incidents told by e-mail and webhook",
        WAIT,
        || async {
            let incidents =
                get_json(&format!("{api}/api/v1/incidents?open=true"), &s.coordinator).await;
            let items = incidents["items"].as_array()?.clone();
            let delivered = items.iter().all(|i| {
                i["notices"]
                    .as_array()
                    .is_some_and(|n| n.len() == 2 && n.iter().all(|n| !n["delivered_at"].is_null()))
            });
            (items.len() == 4 && delivered).then_some(items)
        },
    )
    .await;
    let mut subjects: Vec<&str> = opened
        .iter()
        .filter_map(|i| i["subject"].as_str())
        .collect();
    subjects.sort_unstable();
    let mut want = expect_subjects.to_vec();
    want.sort_unstable();
    assert_eq!(subjects, want);
    let retried = opened
        .iter()
        .flat_map(|i| i["notices"].as_array().cloned().unwrap_or_default())
        .filter(|n| n["attempts"] == 2)
        .count();
    assert_eq!(retried, 1, "the refused webhook call was retried once");

    // The conditions end.
    let mut battery_ok = ev("b-ok", now_utc(), "BATT", "heartbeat");
    battery_ok["battery"] = 90.into();
    let mut fixes = vec![
        ev("h-silent-2", now_utc(), "SILENT", "heartbeat"),
        battery_ok,
        alarm("a-now-ack", now_utc(), "AL-NOW", "alarm_acknowledged"),
    ];
    // 39 more alarms answered in 10 s: 39 of 40 within 60 s is 97.5 %, all within 180 s.
    for i in 1..40 {
        let t = mid_last_month + chrono::Duration::minutes(i);
        fixes.push(alarm(&format!("m-{i}"), t, &format!("M-{i}"), "alarm"));
        fixes.push(alarm(
            &format!("m-{i}a"),
            t + chrono::Duration::seconds(10),
            &format!("M-{i}"),
            "alarm_acknowledged",
        ));
    }
    s.publish(&fixes).await;

    eventually("four incidents resolved and told", WAIT, || async {
        let incidents = get_json(&format!("{api}/api/v1/incidents"), &s.coordinator).await;
        let items = incidents["items"].as_array()?.clone();
        let done = items.iter().all(|i| {
            !i["resolved_at"].is_null()
                && i["notices"]
                    .as_array()
                    .is_some_and(|n| n.len() == 4 && n.iter().all(|n| !n["delivered_at"].is_null()))
        });
        (items.len() == 4 && done).then_some(())
    })
    .await;

    let check = |mails: &[Value], calls: &[(Value, Value)]| {
        // One e-mail and one webhook notice per incident and event, no more.
        assert_eq!(mails.len(), 8, "{mails:#?}");
        assert_eq!(calls.len(), 8);
        for subject in expect_subjects {
            for event in ["opened", "resolved"] {
                let hooks = calls
                    .iter()
                    .filter(|(_, b)| {
                        b["notices"][0]["subject"] == subject && b["notices"][0]["event"] == event
                    })
                    .count();
                assert_eq!(hooks, 1, "{subject} {event}: one webhook call");
            }
        }
        let opened = mails
            .iter()
            .filter(|m| {
                m["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains("Ny hendelse"))
            })
            .count();
        let resolved = mails
            .iter()
            .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains("Løst")))
            .count();
        assert_eq!((opened, resolved), (4, 4));
        for m in mails {
            assert_eq!(m["to"], "vakt@region.test.no");
            assert!(
                m["message_id"].as_str().is_some_and(
                    |id| id.starts_with("<vft-notice-") && id.ends_with("@region.test.no>")
                ),
                "{m}"
            );
        }
        // No notice names a service recipient.
        let everything = format!("{mails:?}{calls:?}");
        assert!(
            !everything.contains("mottaker-"),
            "a recipient reached a notice"
        );
    };
    let mails = emails(&maildir);
    let calls = webhook_calls(&hook_log);
    check(&mails, &calls);
    let battery_mail = mails
        .iter()
        .find(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("Ny hendelse: Lavt batteri"))
        })
        .expect("the battery e-mail");
    assert!(
        battery_mail["body"]
            .as_str()
            .is_some_and(|b| b.contains("hepro/BATT") && b.contains("10 %") && b.contains("Ål")),
        "{battery_mail}"
    );

    // A restart: several rounds later, nothing was told again.
    let Server { vft, scratch, .. } = s;
    vft.terminate();
    let (vft, _broker) = serve(&scratch, None, &env(&smtp, &[]));
    wait_ready(&vft.api).await;
    eventually("three rounds after the restart", WAIT, || async {
        (rounds(&vft.api).await >= 3).then_some(())
    })
    .await;
    check(&emails(&maildir), &webhook_calls(&hook_log));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_municipality_manages_and_sees_its_own_rules_and_a_digest_comes_once_a_day() {
    let dir = tempfile::tempdir().expect("scratch");
    // aiosmtpd's Mailbox makes the maildir's folders only when it makes the maildir.
    let maildir = dir.path().join("maildir");
    let Some((_smtp, smtp_port)) = smtp_server(&maildir).await else {
        return;
    };
    let smtp = format!("smtp://127.0.0.1:{smtp_port}");
    // Digests at midnight: the first round with something to send sends today's.
    let s = Server::start_with_env(
        Scratch::new(),
        &env(&smtp, &[("VFT_NOTIFY__DIGEST_HOUR", "0")]),
    )
    .await;
    let api = s.vft.api.clone();

    // Ål (3328) may watch Ål, not the region or Hol (3330).
    let rule = |municipality: Option<&str>| json!({"municipality": municipality, "kind": "battery_low", "threshold": 20, "emails": ["helse@aal.test.no"], "digest": true});
    let (status, own) = post(&api, "/api/v1/notification-rules", &s.aal, rule(None)).await;
    assert_eq!(status, 201, "{own}");
    assert_eq!(own["municipality"], "3328");
    let (status, _) = post(
        &api,
        "/api/v1/notification-rules",
        &s.aal,
        rule(Some("3330")),
    )
    .await;
    assert_eq!(status, 403);
    let (status, region) = post(
        &api,
        "/api/v1/notification-rules",
        &s.coordinator,
        json!({"kind": "import_errors", "emails": ["koordinator@region.test.no"]}),
    )
    .await;
    assert_eq!(status, 201, "{region}");
    // Bad input is told, not stored.
    for bad in [
        json!({"kind": "battery_low", "threshold": 0, "emails": ["a@b.no"]}),
        json!({"kind": "nonsense", "emails": ["a@b.no"]}),
        json!({"kind": "gateway_silent", "emails": ["a@b.no\r\nBcc: x@y.no"]}),
        json!({"kind": "gateway_silent", "emails": ["01019012057@b.no"]}),
        json!({"kind": "gateway_silent"}),
        json!({"kind": "import_errors", "municipality": "3328", "emails": ["a@b.no"]}),
        json!({"kind": "gateway_silent", "municipality": "9999", "emails": ["a@b.no"]}),
    ] {
        let (status, body) = post(
            &api,
            "/api/v1/notification-rules",
            &s.coordinator,
            bad.clone(),
        )
        .await;
        assert_eq!(status, 400, "{bad} → {body}");
    }
    // The incidents of a municipality the region does not have: an error, not an empty list.
    let unknown = get(
        &format!("{api}/api/v1/incidents?municipality=9999"),
        Some(&s.coordinator),
    )
    .await;
    assert_eq!(unknown.status(), 400);
    let body = unknown.text().await.unwrap_or_default();
    assert!(body.contains("unknown municipality 9999"), "{body}");
    let listed = get_json(&format!("{api}/api/v1/notification-rules"), &s.aal).await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "Ål sees its own rule only"
    );
    let gone = reqwest::Client::new()
        .delete(format!("{api}/api/v1/notification-rules/{}", region["id"]))
        .bearer_auth(&s.aal)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(
        gone.status(),
        404,
        "another scope's rule is not Ål's to delete"
    );

    // Two low batteries in Ål: one digest e-mail with both.
    let now = now_utc();
    let mut events = Vec::new();
    for d in ["B1", "B2"] {
        let mut i = ev(
            &format!("i-{d}"),
            now - chrono::Duration::days(1),
            d,
            "installed",
        );
        i["kind"] = "safety_alarm".into();
        let mut h = ev(&format!("h-{d}"), now, d, "heartbeat");
        h["battery"] = 5.into();
        events.extend([i, h]);
    }
    s.publish(&events).await;
    let mails = eventually("one digest", WAIT, || async {
        let m = emails(&maildir);
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("Daglig oppsummering") && s.contains("2 varsler")),
        "{}",
        mails[0]
    );
    let body = mails[0]["body"].as_str().unwrap_or_default();
    assert!(
        body.contains("hepro/B1") && body.contains("hepro/B2"),
        "{body}"
    );

    // A third the same day waits for tomorrow's digest.
    let mut i = ev("i-B3", now - chrono::Duration::days(1), "B3", "installed");
    i["kind"] = "safety_alarm".into();
    let mut h = ev("h-B3", now_utc(), "B3", "heartbeat");
    h["battery"] = 5.into();
    s.publish(&[i, h]).await;
    eventually("B3's incident and a few rounds", WAIT, || async {
        let incidents = get_json(&format!("{api}/api/v1/incidents"), &s.aal).await;
        let n = incidents["items"].as_array()?.len();
        let r = rounds(&api).await;
        (n == 3 && r >= 3).then_some(())
    })
    .await;
    let before = rounds(&api).await;
    eventually("two more rounds", WAIT, || async {
        (rounds(&api).await >= before + 2).then_some(())
    })
    .await;
    assert_eq!(emails(&maildir).len(), 1, "one digest a day");
    // Ål's history has its incidents only; the region's rule found nothing of Ål's.
    let history = get_json(&format!("{api}/api/v1/incidents"), &s.aal).await;
    assert!(
        history["items"]
            .as_array()
            .is_some_and(|items| items.iter().all(|i| i["municipality"] == "3328"))
    );
}

/// `pdftotext` of a PDF file, without the line that says when it was made.
fn pdf_text(path: &Path) -> String {
    let out = Command::new("pdftotext")
        .args(["-layout"])
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils; .ci/run installs it)");
    assert!(out.status.success(), "pdftotext {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim_start().starts_with("Laget "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monthly_report_is_emailed_to_the_region_and_each_municipality() {
    let dir = tempfile::tempdir().expect("scratch");
    let maildir = dir.path().join("maildir");
    let Some((_smtp, smtp_port)) = smtp_server(&maildir).await else {
        return;
    };
    let s = Server::start(Scratch::new()).await;
    // A small fleet in Ål and Hol, installed in 2025.
    let mut events = Vec::new();
    for (i, (m, kind)) in [
        ("3328", "safety_alarm"),
        ("3328", "smoke_detector"),
        ("3330", "safety_alarm"),
    ]
    .into_iter()
    .enumerate()
    {
        events.push(json!({
            "id": format!("r-{i}"), "ts": format!("2025-1{}-0{}T10:00:00+01:00", i % 2, i + 1),
            "municipality": m, "device": format!("D{i}"), "type": "installed", "kind": kind,
            "recipient": format!("mottaker-{i}"),
        }));
    }
    s.publish(&events).await;
    s.wait_events(events.len() as u64).await;

    let config = dir.path().join("report.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\nsmtp_url = \"smtp://127.0.0.1:{smtp_port}\"\nfrom = \"vft <vft@region.test.no>\"\n\
             [report]\nregion = [\"koordinator@region.test.no\"]\n\
             [report.municipalities]\n\"3328\" = [\"helse@aal.test.no\", \"leder@aal.test.no\"]\n"
        ),
    )
    .expect("config");
    let db = s.scratch.database_url();
    let config_arg = config.to_string_lossy().into_owned();
    let args = [
        "report",
        "--email",
        "--year",
        "2025",
        "--month",
        "12",
        "--config",
        &config_arg,
        "--database-url",
        &db,
    ];
    vft_cli(&args, s.scratch.dir.path()).unwrap_or_else(|e| panic!("vft report --email: {e}"));

    let files = dir.path().join("attachments");
    std::fs::create_dir_all(&files).expect("dir");
    let out = Command::new("python3")
        .arg(workspace_root().join("tests/notify/read_maildir.py"))
        .arg(&maildir)
        .arg(&files)
        .output()
        .expect("read the maildir");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mails: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        mails.len(),
        2,
        "one e-mail to the region, one to Ål: {mails:#?}"
    );
    for (to, scope, token) in [
        ("koordinator@region.test.no", "region", &s.coordinator),
        ("helse@aal.test.no, leder@aal.test.no", "3328", &s.aal),
    ] {
        let mail = mails
            .iter()
            .find(|m| m["to"] == to)
            .unwrap_or_else(|| panic!("no e-mail to {to}: {mails:#?}"));
        let names: Vec<&str> = mail["attachments"]
            .as_array()
            .expect("attachments")
            .iter()
            .filter_map(|a| a["filename"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                format!("vft-rapport-{scope}-2025-12.pdf"),
                format!("vft-rapport-{scope}-2025-12.xlsx")
            ]
        );
        // The attached PDF says what the API's own report for the same reader says.
        let key = mail["key"].as_str().expect("key");
        let attached = files.join(format!("{key}-vft-rapport-{scope}-2025-12.pdf"));
        let resp = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/reports/monthly.pdf?month=2025-12",
                s.vft.api
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET report");
        assert_eq!(resp.status(), 200);
        let from_api = dir.path().join(format!("api-{scope}.pdf"));
        std::fs::write(&from_api, resp.bytes().await.expect("bytes")).expect("write");
        assert_eq!(pdf_text(&attached), pdf_text(&from_api), "{scope}");
        assert!(
            !mail["body"]
                .as_str()
                .unwrap_or_default()
                .contains("mottaker-")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_gateway_and_an_export_with_errors_are_told_and_resolved() {
    let dir = tempfile::tempdir().expect("scratch");
    let maildir = dir.path().join("maildir");
    let Some((_smtp, smtp_port)) = smtp_server(&maildir).await else {
        return;
    };
    let smtp = format!("smtp://127.0.0.1:{smtp_port}");
    let s = Server::start_with_env(Scratch::new(), &env(&smtp, &[])).await;
    let api = s.vft.api.clone();
    for kind in ["gateway_silent", "import_errors"] {
        let (status, body) = post(
            &api,
            "/api/v1/notification-rules",
            &s.coordinator,
            json!({"kind": kind, "emails": ["drift@region.test.no"]}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    // gw-quiet's two devices last reported two hours ago (timeout: one hour); gw-busy has one
    // silent and one reporting device, so it is not silent.
    let now = now_utc();
    let hour = chrono::Duration::hours(1);
    let mut p = Publisher::connect(&s.broker, "gateways").await;
    for (gateway, device, last) in [
        ("gw-quiet", "Q1", now - hour * 2),
        ("gw-quiet", "Q2", now - hour * 2),
        ("gw-busy", "B1", now - hour * 2),
        ("gw-busy", "B2", now),
    ] {
        let mut install = ev(&format!("i-{device}"), now - hour * 24, device, "installed");
        install["kind"] = "safety_alarm".into();
        let beat = ev(&format!("h-{device}"), last, device, "heartbeat");
        for e in [install, beat] {
            p.publish(&format!("vft/v1/hepro/{gateway}/events"), e.to_string())
                .await;
        }
    }
    p.wait_all_acked(WAIT).await;
    // An export with an unreadable row (an unknown product code).
    let header = "Serienr;Produkt;Kommunenr;Kommune;Brukerref;Status;Installert;Merknad\n";
    let import = |rows: &str, as_of: &str| {
        reqwest::Client::new()
            .post(format!("{api}/api/v1/imports/hepro?as_of={as_of}"))
            .bearer_auth(&s.coordinator)
            .body(format!("{header}{rows}"))
            .send()
    };
    let bad = import(
        "HP-1;TA;3328;Al;r1;I drift;01.03.2025;\nHP-2;XX;3328;Al;r2;I drift;01.03.2025;\n",
        "2025-04-01",
    )
    .await
    .expect("import");
    assert_eq!(bad.status(), 200);

    let subjects = |items: &[Value]| -> Vec<String> {
        let mut s: Vec<String> = items
            .iter()
            .filter_map(|i| i["subject"].as_str().map(str::to_owned))
            .collect();
        s.sort();
        s
    };
    let open = eventually("the silent gateway and the export told", WAIT, || async {
        let list = get_json(&format!("{api}/api/v1/incidents?open=true"), &s.coordinator).await;
        let items = list["items"].as_array()?.clone();
        let told = items.iter().all(|i| {
            i["notices"]
                .as_array()
                .is_some_and(|n| n.iter().all(|n| !n["delivered_at"].is_null()))
        });
        (items.len() == 2 && told).then_some(items)
    })
    .await;
    let import_id = open
        .iter()
        .find_map(|i| i["subject"].as_str().filter(|s| s.starts_with("import:")))
        .expect("the export's incident")
        .to_owned();
    assert_eq!(
        subjects(&open),
        ["gateway:hepro/gw-quiet".to_owned(), import_id.clone()]
    );

    // The gateway reports again, and a clean export of the same vendor replaces the bad one.
    let mut p = Publisher::connect(&s.broker, "gateways-2").await;
    p.publish(
        "vft/v1/hepro/gw-quiet/events",
        ev("h-Q1-2", now_utc(), "Q1", "heartbeat").to_string(),
    )
    .await;
    p.wait_all_acked(WAIT).await;
    let clean = import("HP-1;TA;3328;Al;r1;I drift;01.03.2025;\n", "2025-05-01")
        .await
        .expect("import");
    assert_eq!(clean.status(), 200);
    eventually("both resolved", WAIT, || async {
        let list = get_json(&format!("{api}/api/v1/incidents?open=true"), &s.coordinator).await;
        list["items"].as_array()?.is_empty().then_some(())
    })
    .await;
    let mails = eventually("four e-mails", WAIT, || async {
        let m = emails(&maildir);
        (m.len() >= 4).then_some(m)
    })
    .await;
    assert_eq!(mails.len(), 4, "{mails:#?}");
    let about = |what: &str| {
        mails
            .iter()
            .filter(|m| m["body"].as_str().is_some_and(|b| b.contains(what)))
            .count()
    };
    assert_eq!(about("gw-quiet"), 2, "opened and resolved");
    assert_eq!(
        about("gw-busy"),
        0,
        "a gateway with a reporting device is not silent"
    );
    assert_eq!(
        about("kunne ikke leses"),
        2,
        "the export: opened and resolved"
    );
}
