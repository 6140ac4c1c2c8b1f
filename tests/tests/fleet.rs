mod support;

// The device inventory end to end: connectivity from timeouts and from a gateway's last will,
// replacement history, inventory paging and filters, municipality scoping on every device
// endpoint, and the `vft devices` CLI against the same database as the API.

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;
use vft_domain::{TechnologyKind, YearMonth};

const WAIT: Duration = Duration::from_secs(60);
const SECOND: i64 = 1_000_000;
const HOUR: i64 = 3600 * SECOND;
const DAY: i64 = 24 * HOUR;

// ---------------------------------------------------------------------------------------------
// Time without a time crate: microseconds since the Unix epoch, written and read as RFC 3339.

fn now_micros() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(d.as_micros()).expect("micros fit")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// An instant as RFC 3339 in UTC with microseconds.
fn rfc3339(micros: i64) -> String {
    let secs = micros.div_euclid(SECOND);
    let frac = micros.rem_euclid(SECOND);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Reads an RFC 3339 time (any offset, any fraction) as microseconds since the epoch.
fn instant_micros(s: &str) -> i64 {
    let num = |r: std::ops::Range<usize>| -> i64 {
        s.get(r)
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("not an RFC 3339 time: {s:?}"))
    };
    let (y, mo, d) = (num(0..4), num(5..7), num(8..10));
    let (h, mi, se) = (num(11..13), num(14..16), num(17..19));
    let mut i = 19;
    let mut frac = 0;
    if s.as_bytes().get(i) == Some(&b'.') {
        let digits: String = s[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        i += 1 + digits.len();
        frac = format!("{digits:0<6}")[..6].parse().expect("fraction");
    }
    let offset = match &s[i..] {
        "Z" | "z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (num(i + 1..i + 3) * 3600 + num(i + 4..i + 6) * 60)
        }
    };
    (days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset) * SECOND + frac
}

#[test]
fn the_time_helpers_agree_with_the_domain_crate() {
    // Month starts in Oslo (winter and summer offsets), as chrono in vft-domain computes them.
    for (y, m) in [
        (1970, 2),
        (2024, 2),
        (2024, 3),
        (2025, 3),
        (2025, 7),
        (2025, 12),
        (2100, 3),
    ] {
        let start = YearMonth::new(y, m).expect("month").start();
        let micros = start.timestamp_micros();
        assert_eq!(instant_micros(&start.to_rfc3339()), micros, "{start}");
        assert_eq!(instant_micros(&rfc3339(micros)), micros);
        assert_eq!(instant_micros(&rfc3339(micros + 123_456)), micros + 123_456);
    }
    assert_eq!(
        instant_micros("2025-06-30T23:59:00.5+02:00"),
        instant_micros("2025-06-30T21:59:00.500000Z")
    );
}

/// Waits (once, no polling) until the wall clock has passed `micros`.
async fn sleep_past(micros: i64) {
    let left = micros + 1000 - now_micros();
    if left > 0 {
        tokio::time::sleep(Duration::from_micros(left.unsigned_abs())).await;
    }
    assert!(now_micros() > micros, "the clock passed the instant");
}

// ---------------------------------------------------------------------------------------------
// Events, HTTP and the server.

fn ev(id: &str, ts: &str, municipality: &str, device: &str, t: &str) -> Value {
    json!({ "id": id, "ts": ts, "municipality": municipality, "device": device, "type": t })
}

/// `e` with the fields of `more` added.
fn with(mut e: Value, more: Value) -> Value {
    if let (Some(e), Value::Object(more)) = (e.as_object_mut(), more) {
        e.extend(more);
    }
    e
}

fn topic(vendor: &str, gateway: &str) -> String {
    format!("vft/v1/{vendor}/{gateway}/events")
}

/// Percent-encodes everything but RFC 3986's unreserved characters (query values, path segments).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn devices_url(api: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    format!("{api}/api/v1/devices?{}", query.join("&"))
}

fn device_url(api: &str, vendor: &str, device: &str) -> String {
    format!("{api}/api/v1/devices/{}/{}", enc(vendor), enc(device))
}

type Key = (String, String);
type Params<'a> = Vec<(&'a str, &'a str)>;

fn key_of(item: &Value) -> Key {
    (
        item["vendor"].as_str().expect("vendor").to_owned(),
        item["device"].as_str().expect("device").to_owned(),
    )
}

fn keys(items: &[Value]) -> Vec<Key> {
    items.iter().map(key_of).collect()
}

fn key(vendor: &str, device: &str) -> Key {
    (vendor.to_owned(), device.to_owned())
}

/// All items of a list query (one page of up to 1000).
async fn list(api: &str, token: &str, params: &[(&str, &str)]) -> Vec<Value> {
    let mut params = params.to_vec();
    params.push(("limit", "1000"));
    let body = get_json(&devices_url(api, &params), token).await;
    assert!(body["next_cursor"].is_null(), "one page holds them all");
    let items = body["items"].as_array().expect("items").clone();
    assert_eq!(
        body["total"].as_u64(),
        Some(items.len() as u64),
        "the first page counts every match"
    );
    items
}

/// `GET /devices/{vendor}/{device}`: None on 404.
async fn show(api: &str, token: &str, vendor: &str, device: &str) -> Option<Value> {
    let resp = get(&device_url(api, vendor, device), Some(token)).await;
    match resp.status().as_u16() {
        404 => None,
        200 => Some(resp.json().await.expect("JSON body")),
        other => panic!("GET {vendor}/{device}: {other}"),
    }
}

async fn put_timeout(
    api: &str,
    token: &str,
    vendor: &str,
    device: &str,
    body: Value,
) -> reqwest::Response {
    reqwest::Client::new()
        .put(format!("{}/timeout", device_url(api, vendor, device)))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("PUT")
}

async fn status_and_error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("JSON error body");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "an error says why: {body}"
    );
    (
        status,
        body["error"].as_str().expect("error code").to_owned(),
    )
}

async fn get_text(url: &str, token: &str, accept_csv: bool) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(url).bearer_auth(token);
    if accept_csv {
        req = req.header("accept", "text/csv");
    }
    let resp = req.send().await.expect("GET");
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ctype, resp.text().await.expect("body"))
}

fn coordinator_token(scratch: &Scratch) -> String {
    create_token(
        &scratch.database_url(),
        scratch.dir.path(),
        &["--role", "coordinator"],
    )
}

fn municipality_token(scratch: &Scratch, code: &str) -> String {
    create_token(
        &scratch.database_url(),
        scratch.dir.path(),
        &["--role", "municipality", "--municipality", code],
    )
}

/// Publishes (topic, event) pairs one message each, waits for every PUBACK.
async fn publish(broker: &BrokerUnderTest, client_id: &str, events: &[(String, Value)]) {
    let mut publisher = Publisher::connect(broker, client_id).await;
    for (t, e) in events {
        publisher.publish(t, e.to_string()).await;
    }
    publisher.wait_all_acked(WAIT).await;
    publisher.disconnect().await;
}

/// Polls until every device is visible to `token`; none of these scenarios sends bad input,
/// so a dead letter fails at once with its reason instead of a timeout.
async fn wait_stored(api: &str, coordinator: &str, devices: &[Key]) {
    eventually("the devices to be stored", WAIT, || async {
        let dead = get_json(&format!("{api}/api/v1/dead-letters"), coordinator).await;
        assert_eq!(dead["items"], json!([]), "nothing here is a dead letter");
        for (v, d) in devices {
            show(api, coordinator, v, d).await?;
        }
        Some(())
    })
    .await;
}

/// Connectivity by the rule, from what the view says about the device, at `now`.
fn connectivity_rule(view: &Value, now: i64) -> &'static str {
    match view["last_contact"].as_str() {
        None => "never_seen",
        Some(t) => {
            let timeout = view["timeout_secs"].as_i64().expect("timeout_secs");
            if now - instant_micros(t) > timeout * SECOND {
                "offline"
            } else {
                "online"
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Silence turns a device offline with no further traffic, and that survives a restart.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_goes_offline_within_its_timeout_and_stays_offline_after_restart() {
    a_silent_device_goes_offline_within_its_timeout_and_stays_offline_after_restart_on(
        Scratch::new(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_device_goes_offline_within_its_timeout_and_stays_offline_after_restart_on_postgres()
 {
    if let Some(scratch) = Scratch::postgres().await {
        a_silent_device_goes_offline_within_its_timeout_and_stays_offline_after_restart_on(scratch)
            .await
    }
}

async fn a_silent_device_goes_offline_within_its_timeout_and_stays_offline_after_restart_on(
    scratch: Scratch,
) {
    const TIMEOUT_SECS: i64 = 5;
    const CHECK_SECS: i64 = 1;
    let (timeout, check) = (TIMEOUT_SECS.to_string(), CHECK_SECS.to_string());
    let env = [
        ("VFT_CONNECTIVITY__TIMEOUTS__SAFETY_ALARM", timeout.as_str()),
        ("VFT_CONNECTIVITY__CHECK_INTERVAL_SECS", check.as_str()),
    ];
    let (vft, broker) = serve(&scratch, None, &env);
    let token = coordinator_token(&scratch);
    wait_ready(&vft.api).await;

    let now = now_micros();
    let yesterday = rfc3339(now - DAY);
    let heartbeat_ts = rfc3339(now);
    let platform = topic("hepro", "platform");
    let gw = topic("hepro", "gw-1");
    let events = vec![
        (
            platform.clone(),
            with(
                ev("s-i", &yesterday, "3328", "SILENT", "installed"),
                json!({"kind": "safety_alarm"}),
            ),
        ),
        (
            platform.clone(),
            with(
                ev("n-i", &yesterday, "3328", "NEVER", "installed"),
                json!({"kind": "safety_alarm"}),
            ),
        ),
        // Another type keeps its own (default, long) timeout.
        (
            platform.clone(),
            with(
                ev("o-i", &yesterday, "3328", "OTHER", "installed"),
                json!({"kind": "digital_supervision"}),
            ),
        ),
        (
            gw.clone(),
            ev("s-h", &heartbeat_ts, "3328", "SILENT", "heartbeat"),
        ),
        (
            gw.clone(),
            ev("o-h", &heartbeat_ts, "3328", "OTHER", "heartbeat"),
        ),
    ];
    publish(&broker, "fleet-silence", &events).await;

    let silent = eventually("SILENT online", WAIT, || async {
        let d = show(&vft.api, &token, "hepro", "SILENT").await?;
        assert_ne!(
            d["device"]["connectivity"], "offline",
            "stored later than its {TIMEOUT_SECS} s timeout: the machine is far too slow"
        );
        (d["device"]["connectivity"] == "online").then_some(d["device"].clone())
    })
    .await;
    assert_eq!(
        silent["timeout_secs"], TIMEOUT_SECS,
        "the configured type timeout"
    );
    assert_eq!(silent["gateway"], "gw-1");
    let last_contact = instant_micros(silent["last_contact"].as_str().expect("last contact"));
    assert_eq!(last_contact, now, "last contact is the heartbeat's own ts");
    let never = show(&vft.api, &token, "hepro", "NEVER")
        .await
        .expect("NEVER");
    assert_eq!(never["device"]["connectivity"], "never_seen");

    // No more traffic: one wait until last contact + timeout + one check interval has passed.
    sleep_past(last_contact + (TIMEOUT_SECS + CHECK_SECS) * SECOND).await;
    let expect_connectivity = |api: String, token: String| async move {
        for (c, want) in [
            ("offline", vec![key("hepro", "SILENT")]),
            ("never_seen", vec![key("hepro", "NEVER")]),
            ("online", vec![key("hepro", "OTHER")]),
        ] {
            let items = list(&api, &token, &[("connectivity", c)]).await;
            assert_eq!(keys(&items), want, "connectivity={c}");
        }
        list(&api, &token, &[("q", "SILENT")]).await[0].clone()
    };
    let before = expect_connectivity(vft.api.clone(), token.clone()).await;

    // The state is in the database, not in the process: a restart keeps it offline.
    assert!(vft.terminate().success(), "vft exits cleanly on SIGTERM");
    let (restarted, _) = serve(&scratch, None, &env);
    wait_ready(&restarted.api).await;
    let after = expect_connectivity(restarted.api.clone(), token.clone()).await;
    assert_eq!(after, before, "the device's state survived the restart");
    assert_eq!(
        instant_micros(after["last_contact"].as_str().expect("ts")),
        now
    );
}

// ---------------------------------------------------------------------------------------------
// 2. A gateway's last will turns its devices offline long before their timeout.

/// A gateway's own MQTT connection with a last will on its status topic, counting PUBACKs.
struct Gateway {
    client: AsyncClient,
    acked: tokio::sync::watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Gateway {
    fn connect(broker: &BrokerUnderTest, vendor: &str, gateway: &str) -> Self {
        let mut options = MqttOptions::new(gateway, "127.0.0.1", broker.port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_last_will(LastWill::new(
                format!("vft/v1/{vendor}/{gateway}/status"),
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
        if let Some((u, p)) = &broker.credentials {
            options.set_credentials(u, p);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 10);
        let (tx, acked) = tokio::sync::watch::channel(0);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => tx.send_modify(|n| *n += 1),
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        Self {
            client,
            acked,
            task,
        }
    }

    async fn publish(&self, topic: &str, payload: String, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .expect("queue publish");
    }

    async fn wait_acked(&mut self, n: usize) {
        tokio::time::timeout(WAIT, self.acked.wait_for(|a| *a >= n))
            .await
            .expect("the broker acknowledged the gateway's messages")
            .expect("gateway connection alive");
    }

    /// Drops the connection without DISCONNECT, as a gateway losing power does.
    async fn vanish(self) {
        self.task.abort();
        let _ = self.task.await;
        drop(self.client);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateways_last_will_turns_its_devices_offline_through_mosquitto() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let scratch = Scratch::new();
    let (vft, broker) = serve(&scratch, Some(&mosquitto.broker), &[]);
    let token = coordinator_token(&scratch);
    wait_ready(&vft.api).await;

    let now = now_micros();
    let installs: Vec<(String, Value)> = ["W1", "W2", "O1"]
        .iter()
        .map(|d| {
            (
                topic("hepro", "platform"),
                with(
                    ev(
                        &format!("{d}-i"),
                        &rfc3339(now - DAY),
                        "3328",
                        d,
                        "installed",
                    ),
                    json!({"kind": "safety_alarm"}),
                ),
            )
        })
        .collect();
    publish(&broker, "fleet-platform", &installs).await;
    publish(
        &broker,
        "fleet-gw-other",
        &[(
            topic("hepro", "gw-other"),
            ev("O1-h", &rfc3339(now), "3328", "O1", "heartbeat"),
        )],
    )
    .await;

    let will_status = "vft/v1/hepro/gw-will/status";
    let mut gateway = Gateway::connect(&broker, "hepro", "gw-will");
    gateway.publish(will_status, "online".into(), true).await;
    for d in ["W1", "W2"] {
        let hb = ev(&format!("{d}-h"), &rfc3339(now), "3328", d, "heartbeat");
        gateway
            .publish(&topic("hepro", "gw-will"), hb.to_string(), false)
            .await;
    }
    gateway.wait_acked(3).await;

    let state = |want: &'static str, devices: &'static [&'static str]| {
        let (api, token) = (vft.api.clone(), token.clone());
        async move {
            let mut views = Vec::new();
            for d in devices {
                let v = show(&api, &token, "hepro", d).await?["device"].clone();
                if v["connectivity"] != want {
                    return None;
                }
                views.push(v);
            }
            Some(views)
        }
    };
    let online = eventually("all three online", WAIT, || {
        state("online", &["W1", "W2", "O1"])
    })
    .await;
    for v in &online {
        let timeout = v["timeout_secs"].as_u64().expect("timeout");
        assert!(
            timeout > 10 * WAIT.as_secs(),
            "a long timeout, so only the will can turn it offline: {v}"
        );
    }
    assert_eq!(
        online
            .iter()
            .map(|v| v["gateway"].clone())
            .collect::<Vec<_>>(),
        [json!("gw-will"), json!("gw-will"), json!("gw-other")],
        "a device's gateway is the one of its own latest event, not the platform's"
    );

    gateway.vanish().await;
    eventually("W1 and W2 offline by the will", WAIT, || {
        state("offline", &["W1", "W2"])
    })
    .await;
    let o1 = show(&vft.api, &token, "hepro", "O1").await.expect("O1");
    assert_eq!(
        o1["device"]["connectivity"], "online",
        "another gateway's device"
    );
    assert_eq!(
        keys(&list(&vft.api, &token, &[("connectivity", "offline")]).await),
        [key("hepro", "W1"), key("hepro", "W2")]
    );

    // The gateway comes back: its `online` is newer than the will, so its devices are online
    // again (their own timeout has not passed).
    let mut back = Gateway::connect(&broker, "hepro", "gw-will");
    back.publish(will_status, "online".into(), true).await;
    back.wait_acked(1).await;
    eventually("W1 and W2 online after the gateway's rebirth", WAIT, || {
        state("online", &["W1", "W2"])
    })
    .await;
    back.vanish().await;
}

// ---------------------------------------------------------------------------------------------
// 3. A replacement keeps the history.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_keeps_the_history_of_the_whole_chain() {
    a_replacement_keeps_the_history_of_the_whole_chain_on(Scratch::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_keeps_the_history_of_the_whole_chain_on_postgres() {
    if let Some(scratch) = Scratch::postgres().await {
        a_replacement_keeps_the_history_of_the_whole_chain_on(scratch).await
    }
}

async fn a_replacement_keeps_the_history_of_the_whole_chain_on(scratch: Scratch) {
    let (vft, broker) = serve(&scratch, None, &[]);
    let token = coordinator_token(&scratch);
    wait_ready(&vft.api).await;

    // OLDER → OLD (same instant as OLDER's removal) → NEW (same instant as OLD's removal).
    let m = "3328";
    let platform = topic("hepro", "platform");
    let gw = topic("hepro", "gw-home");
    let events: Vec<(String, Value)> = vec![
        (
            platform.clone(),
            with(
                ev("a-i", "2025-01-10T09:00:00+01:00", m, "OLDER", "installed"),
                json!({"kind": "safety_alarm", "recipient": "R-17"}),
            ),
        ),
        (
            gw.clone(),
            with(
                ev("a-h", "2025-02-01T09:00:00+01:00", m, "OLDER", "heartbeat"),
                json!({"battery": 40}),
            ),
        ),
        (
            platform.clone(),
            ev(
                "a-d",
                "2025-03-03T12:00:00+01:00",
                m,
                "OLDER",
                "decommissioned",
            ),
        ),
        (
            platform.clone(),
            with(
                ev("b-i", "2025-03-03T12:00:00+01:00", m, "OLD", "installed"),
                json!({"kind": "safety_alarm", "recipient": "R-17", "replaces": "OLDER"}),
            ),
        ),
        (
            gw.clone(),
            with(
                ev("b-h", "2025-04-01T10:00:00+02:00", m, "OLD", "heartbeat"),
                json!({"battery": 90}),
            ),
        ),
        (
            gw.clone(),
            ev("b-f", "2025-05-05T10:00:00+02:00", m, "OLD", "fault"),
        ),
        (
            platform.clone(),
            ev(
                "b-d",
                "2025-05-06T08:00:00+02:00",
                m,
                "OLD",
                "decommissioned",
            ),
        ),
        (
            platform.clone(),
            with(
                ev("c-i", "2025-05-06T08:00:00+02:00", m, "NEW", "installed"),
                json!({"kind": "safety_alarm", "recipient": "R-17", "replaces": "OLD"}),
            ),
        ),
        (
            gw.clone(),
            ev("c-h", "2025-05-07T08:00:00+02:00", m, "NEW", "heartbeat"),
        ),
    ];
    // Arrival order never matters: the newest first.
    let reversed: Vec<(String, Value)> = events.iter().rev().cloned().collect();
    publish(&broker, "fleet-replacement", &reversed).await;
    let all = [
        key("hepro", "OLDER"),
        key("hepro", "OLD"),
        key("hepro", "NEW"),
    ];
    wait_stored(&vft.api, &token, &all).await;

    // History: every event of the chain, ordered by (ts, installed before decommissioned,
    // event id), each the published event plus vendor and gateway.
    let rank = |e: &Value| match e["type"].as_str() {
        Some("installed") => 0,
        Some("decommissioned") => 1,
        _ => -1,
    };
    let mut expected: Vec<(i64, i32, String, Value)> = events
        .iter()
        .map(|(t, e)| {
            let gateway = t.split('/').nth(3).expect("gateway");
            (
                instant_micros(e["ts"].as_str().expect("ts")),
                rank(e),
                e["id"].as_str().expect("id").to_owned(),
                with(e.clone(), json!({"vendor": "hepro", "gateway": gateway})),
            )
        })
        .collect();
    expected.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    let expected: Vec<Value> = expected.into_iter().map(|(_, _, _, e)| e).collect();
    // At the same instant the new unit's installation comes before the old one's removal.
    let ids: Vec<&str> = expected
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert!(ids.windows(2).any(|w| w == ["c-i", "b-d"]), "{ids:?}");

    let new = show(&vft.api, &token, "hepro", "NEW").await.expect("NEW");
    assert_eq!(
        new["replaces_chain"],
        json!(["OLD", "OLDER"]),
        "nearest first"
    );
    assert_eq!(new["replaced_by_chain"], json!([]));
    assert_eq!(new["history"], json!(expected));
    assert_eq!(new["device"]["replaces"], "OLD");
    assert_eq!(new["device"]["in_service"], true);
    assert_eq!(new["device"]["recipient"], "R-17");

    let old = show(&vft.api, &token, "hepro", "OLD").await.expect("OLD");
    assert_eq!(old["replaces_chain"], json!(["OLDER"]));
    assert_eq!(old["replaced_by_chain"], json!(["NEW"]));
    assert_eq!(old["history"], json!(expected));
    assert_eq!(old["device"]["in_service"], false);
    assert_eq!(
        old["device"]["fault_open"], true,
        "no heartbeat after its fault"
    );
    assert_eq!(old["device"]["battery"], 90);
    assert_eq!(
        instant_micros(
            old["device"]["lifecycle_at"]
                .as_str()
                .expect("lifecycle_at")
        ),
        instant_micros("2025-05-06T08:00:00+02:00")
    );

    let older = show(&vft.api, &token, "hepro", "OLDER")
        .await
        .expect("OLDER");
    assert_eq!(older["replaces_chain"], json!([]));
    assert_eq!(
        older["replaced_by_chain"],
        json!(["OLD", "NEW"]),
        "nearest first"
    );
    assert_eq!(older["history"], json!(expected));
}

// ---------------------------------------------------------------------------------------------
// 4. Inventory: paging while devices arrive, filters, CSV, errors.

/// A device as the test planned it; the expected answers are computed from these.
#[derive(Debug, Clone)]
struct Planned {
    vendor: String,
    device: String,
    municipality: &'static str,
    kind: &'static str,
    installed: Option<i64>,
    decommissioned: Option<i64>,
    contact: Option<i64>,
    battery: Option<u8>,
}

impl Planned {
    fn key(&self) -> Key {
        key(&self.vendor, &self.device)
    }

    fn in_service(&self) -> bool {
        self.installed.is_some() && self.decommissioned.is_none()
    }

    fn events(&self) -> Vec<(String, Value)> {
        let (v, d, m) = (&self.vendor, &self.device, self.municipality);
        let mut out = Vec::new();
        if let Some(t) = self.installed {
            out.push((
                topic(v, "platform"),
                with(
                    ev(&format!("{d}/i"), &rfc3339(t), m, d, "installed"),
                    json!({"kind": self.kind}),
                ),
            ));
        }
        if let Some(t) = self.decommissioned {
            out.push((
                topic(v, "platform"),
                ev(&format!("{d}/d"), &rfc3339(t), m, d, "decommissioned"),
            ));
        }
        if let Some(t) = self.contact {
            let mut hb = ev(&format!("{d}/h"), &rfc3339(t), m, d, "heartbeat");
            if let Some(b) = self.battery {
                hb = with(hb, json!({ "battery": b }));
            }
            out.push((topic(v, "gw-7"), hb));
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Order {
    DeviceAsc,
    InstalledDesc,
}

impl Order {
    fn params(self) -> [(&'static str, &'static str); 2] {
        match self {
            Self::DeviceAsc => [("sort", "device"), ("order", "asc")],
            Self::InstalledDesc => [("sort", "installed"), ("order", "desc")],
        }
    }
    /// The order's key: ascending (vendor, device), or descending (first install or -1,
    /// vendor, device).
    fn sorted(self, devices: &[Planned]) -> Vec<Key> {
        let mut v: Vec<(i64, Key)> = devices
            .iter()
            .map(|d| (d.installed.unwrap_or(-1), d.key()))
            .collect();
        match self {
            Self::DeviceAsc => v.sort_by(|a, b| a.1.cmp(&b.1)),
            Self::InstalledDesc => v.sort_by(|a, b| b.cmp(a)),
        }
        v.into_iter().map(|(_, k)| k).collect()
    }
}

/// A device id just above `id` (and below anything else above it in the plan).
fn just_after(id: &str) -> String {
    format!("{id}0")
}

/// A device id just below `id`.
fn just_before(id: &str) -> String {
    let mut chars: Vec<char> = id.chars().collect();
    let last = chars.pop().expect("non-empty");
    let lower = char::from_u32(u32::from(last) - 1).expect("a char below");
    format!("{}{lower}~", chars.into_iter().collect::<String>())
}

fn plan(now: i64, march: i64) -> Vec<Planned> {
    let kinds = TechnologyKind::ALL;
    let municipalities = ["3320", "3324", "3328", "3330"];
    let ids: Vec<(&str, String)> = (0..16)
        .map(|i| ("hepro", format!("D-{i:02}")))
        .chain([
            ("atea", "D-03".to_owned()),
            ("atea", "D-07".to_owned()),
            ("atea", "AT-1".to_owned()),
            ("hepro", "PCT%1".to_owned()),
            ("hepro", "pctx1".to_owned()),
            ("hepro", "PCT_1".to_owned()),
            ("hepro", "Q,\"1\"".to_owned()),
        ])
        .collect();
    let mut out: Vec<Planned> = ids
        .into_iter()
        .enumerate()
        .map(|(i, (vendor, device))| {
            // Four install instants around the start of March in Oslo: many ties.
            let installed = [march - SECOND, march, march + HOUR, march - 30 * DAY][i % 4];
            Planned {
                vendor: vendor.to_owned(),
                device,
                municipality: municipalities[i % 4],
                kind: kinds[i % kinds.len()].id(),
                installed: Some(installed),
                decommissioned: (i % 6 == 5).then_some(installed + 10 * DAY),
                contact: [
                    None,
                    Some(now - 30 * DAY),
                    Some(now - HOUR / 2),
                    Some(now - 5 * HOUR),
                    Some(march + DAY),
                ][i % 5],
                battery: (i % 3 != 0).then_some(u8::try_from(i * 13 % 100).expect("small")),
            }
        })
        .collect();
    // Never installed: it only ever sent a heartbeat.
    out.push(Planned {
        vendor: "hepro".into(),
        device: "HB-ONLY".into(),
        municipality: "3328",
        kind: "safety_alarm",
        installed: None,
        decommissioned: None,
        contact: Some(now - HOUR),
        battery: Some(3),
    });
    out
}

/// Pages through `order` with limit 7, adding one device behind the cursor and one ahead of
/// it (at the page boundary, on the order's tie-breaks) after every page. Every device there
/// at the start and every one added ahead must come exactly once, in order; none added behind.
async fn page_while_adding(
    api: &str,
    token: &str,
    publisher: &mut Publisher,
    planned: &mut Vec<Planned>,
    order: Order,
) {
    let mut expected: Vec<Planned> = planned.clone();
    let mut behind: Vec<Planned> = Vec::new();
    let mut seen: Vec<Key> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params: Vec<(&str, &str)> = order.params().to_vec();
        params.push(("limit", "7"));
        if let Some(c) = &cursor {
            params.push(("cursor", c));
        }
        let body = get_json(&devices_url(api, &params), token).await;
        let items = body["items"].as_array().expect("items").clone();
        // Only the first page is counted (a count costs a query).
        assert_eq!(body["total"].is_null(), cursor.is_some());
        pages += 1;
        seen.extend(keys(&items));
        let Some(next) = body["next_cursor"].as_str().map(str::to_owned) else {
            assert!(items.len() < 7, "a full page has a next cursor");
            break;
        };
        assert_eq!(items.len(), 7, "only the last page is short");
        let last = items.last().expect("a full page");
        let (vendor, device) = key_of(last);
        let installed = last["first_installed"].as_str().map(instant_micros);
        let like = |device: String| Planned {
            vendor: vendor.clone(),
            device,
            municipality: "3328",
            kind: "safety_alarm",
            installed,
            decommissioned: None,
            // A device that was never installed exists only through its own events.
            contact: installed.is_none().then(now_micros),
            battery: None,
        };
        let (ahead, back) = match order {
            Order::DeviceAsc => (like(just_after(&device)), like(just_before(&device))),
            Order::InstalledDesc => (like(just_before(&device)), like(just_after(&device))),
        };
        for d in [&ahead, &back] {
            assert!(
                !planned.iter().any(|p| p.key() == d.key()),
                "new device {:?}",
                d.key()
            );
            for (t, e) in d.events() {
                publisher.publish(&t, e.to_string()).await;
            }
        }
        publisher.wait_all_acked(WAIT).await;
        wait_stored(api, token, &[ahead.key(), back.key()]).await;
        planned.extend([ahead.clone(), back.clone()]);
        expected.push(ahead);
        behind.push(back);
        cursor = Some(next);
    }
    assert!(pages >= 4, "several pages ({pages})");
    let unique: HashSet<&Key> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no device twice: {seen:?}");
    assert_eq!(
        seen,
        order.sorted(&expected),
        "{order:?}: none skipped, in order"
    );
    assert!(behind.iter().all(|b| !seen.contains(&b.key())));
    // The ones behind the cursor were stored all the same: a fresh listing has everything.
    let mut fresh_params = order.params().to_vec();
    fresh_params.push(("limit", "1000"));
    let fresh = get_json(&devices_url(api, &fresh_params), token).await;
    assert_eq!(
        keys(fresh["items"].as_array().expect("items")),
        order.sorted(planned)
    );
}

/// Parses CSV as RFC 4180 (quoted fields, doubled quotes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

const CSV_HEADER: [&str; 14] = [
    "vendor",
    "device",
    "kind",
    "municipality",
    "gateway",
    "in_service",
    "connectivity",
    "last_contact",
    "battery",
    "fault_open",
    "first_installed",
    "recipient",
    "replaces",
    "timeout_secs",
];

/// A JSON item as its CSV row would say it (times as instants, so "Z" and "+00:00" agree).
fn csv_cells(item: &Value) -> Vec<String> {
    CSV_HEADER
        .iter()
        .map(|f| match &item[*f] {
            Value::Null => String::new(),
            Value::String(s) if f.ends_with("contact") || f.ends_with("installed") => {
                instant_micros(s).to_string()
            }
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

fn csv_row_cells(row: &[String]) -> Vec<String> {
    row.iter()
        .zip(CSV_HEADER)
        .map(|(cell, f)| {
            if !cell.is_empty() && (f.ends_with("contact") || f.ends_with("installed")) {
                instant_micros(cell).to_string()
            } else {
                cell.clone()
            }
        })
        .collect()
}

fn assert_csv_matches(csv: &str, items: &[Value]) {
    let rows = parse_csv(csv);
    assert_eq!(
        rows.first().map(Vec::as_slice),
        Some(&CSV_HEADER.map(String::from)[..])
    );
    assert_eq!(
        rows[1..]
            .iter()
            .map(|r| csv_row_cells(r))
            .collect::<Vec<_>>(),
        items.iter().map(csv_cells).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_pages_neither_skip_nor_repeat_and_filters_follow_the_rules() {
    inventory_pages_neither_skip_nor_repeat_and_filters_follow_the_rules_on(Scratch::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_pages_neither_skip_nor_repeat_and_filters_follow_the_rules_on_postgres() {
    if let Some(scratch) = Scratch::postgres().await {
        inventory_pages_neither_skip_nor_repeat_and_filters_follow_the_rules_on(scratch).await
    }
}

async fn inventory_pages_neither_skip_nor_repeat_and_filters_follow_the_rules_on(scratch: Scratch) {
    let (vft, broker) = serve(&scratch, None, &[]);
    let token = coordinator_token(&scratch);
    wait_ready(&vft.api).await;
    let api = vft.api.clone();

    let march = YearMonth::new(2025, 3)
        .expect("month")
        .start()
        .timestamp_micros();
    let mut planned = plan(now_micros(), march);
    let mut publisher = Publisher::connect(&broker, "fleet-inventory").await;
    for d in &planned {
        for (t, e) in d.events() {
            publisher.publish(&t, e.to_string()).await;
        }
    }
    publisher.wait_all_acked(WAIT).await;
    let all_keys: Vec<Key> = planned.iter().map(Planned::key).collect();
    wait_stored(&api, &token, &all_keys).await;

    page_while_adding(&api, &token, &mut publisher, &mut planned, Order::DeviceAsc).await;
    page_while_adding(
        &api,
        &token,
        &mut publisher,
        &mut planned,
        Order::InstalledDesc,
    )
    .await;
    publisher.disconnect().await;

    // Filters, each against the rule applied to the plan (default order: vendor, device).
    let expect = |pred: &dyn Fn(&Planned) -> bool| -> Vec<Key> {
        let mut v: Vec<Key> = planned
            .iter()
            .filter(|d| pred(d))
            .map(Planned::key)
            .collect();
        v.sort();
        v
    };
    let battery_below =
        |n: u8| move |d: &Planned| d.contact.is_some() && d.battery.is_some_and(|b| b < n);
    let search =
        |q: &'static str| move |d: &Planned| d.device.to_lowercase().contains(&q.to_lowercase());
    let march_date = "2025-03-01";
    let march_instant = rfc3339(march);
    let cases: Vec<(Params, Vec<Key>)> = vec![
        (vec![], expect(&|_| true)),
        (
            vec![("kind", "tracking")],
            expect(&|d| d.installed.is_some() && d.kind == "tracking"),
        ),
        (vec![("vendor", "atea")], expect(&|d| d.vendor == "atea")),
        (
            vec![("municipality", "3324")],
            expect(&|d| d.municipality == "3324"),
        ),
        (vec![("battery_below", "30")], expect(&battery_below(30))),
        (vec![("battery_below", "101")], expect(&battery_below(101))),
        (vec![("battery_below", "0")], expect(&battery_below(0))),
        // `%` and `_` are literal characters, not wildcards; case does not matter.
        (vec![("q", "T%1")], expect(&search("T%1"))),
        (vec![("q", "t_1")], expect(&search("t_1"))),
        (vec![("q", "\"")], expect(&search("\""))),
        (vec![("in_service", "false")], expect(&|d| !d.in_service())),
        (vec![("in_service", "true")], expect(&Planned::in_service)),
        // A date is its first instant in Europe/Oslo; the instant itself gives the same.
        (
            vec![("installed_before", march_date)],
            expect(&|d| d.installed.is_some_and(|t| t < march)),
        ),
        (
            vec![("installed_before", march_instant.as_str())],
            expect(&|d| d.installed.is_some_and(|t| t < march)),
        ),
        (
            vec![("installed_after", march_date)],
            expect(&|d| d.installed.is_some_and(|t| t >= march)),
        ),
        (
            vec![
                ("kind", "safety_alarm"),
                ("in_service", "true"),
                ("installed_after", march_date),
            ],
            expect(&|d| {
                d.kind == "safety_alarm"
                    && d.in_service()
                    && d.installed.is_some_and(|t| t >= march)
            }),
        ),
    ];
    for (params, want) in &cases {
        let got = keys(&list(&api, &token, params).await);
        assert_eq!(&got, want, "{params:?}");
    }
    let literal_percent = expect(&search("T%1"));
    assert!(!literal_percent.is_empty() && literal_percent.len() < expect(&search("T")).len());

    // Connectivity: every view follows the rule from its own last contact and timeout, and
    // each filter returns exactly its part.
    let everything = list(&api, &token, &[]).await;
    let now = now_micros();
    for v in &everything {
        assert_eq!(v["connectivity"], connectivity_rule(v, now), "{v}");
    }
    for c in ["online", "offline", "never_seen"] {
        let part: Vec<Key> = everything
            .iter()
            .filter(|v| v["connectivity"] == c)
            .map(key_of)
            .collect();
        assert!(!part.is_empty(), "the plan has {c} devices");
        assert_eq!(
            keys(&list(&api, &token, &[("connectivity", c)]).await),
            part
        );
    }

    // CSV: all matching rows (no paging), the same as the JSON items.
    let (status, ctype, csv) =
        get_text(&devices_url(&api, &[("format", "csv")]), &token, false).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    assert_csv_matches(&csv, &everything);
    let (_, _, by_accept) = get_text(&devices_url(&api, &[]), &token, true).await;
    assert_eq!(by_accept, csv);
    let filtered = [("kind", "safety_alarm"), ("limit", "2")];
    let (_, _, csv_kind) = get_text(
        &devices_url(&api, &[filtered[0], filtered[1], ("format", "csv")]),
        &token,
        false,
    )
    .await;
    let json_kind = list(&api, &token, &filtered[..1]).await;
    assert!(json_kind.len() > 2);
    assert_csv_matches(&csv_kind, &json_kind);

    // Bad parameters are 400 with a JSON reason.
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "sort=colour",
        "order=up",
        "connectivity=asleep",
        "battery_below=low",
        "battery_below=102",
        "in_service=yes",
        "installed_before=2025-13-01",
        "installed_after=yesterday",
        "kind=toaster",
        "vendor=Not%20A%20Vendor",
        "municipality=9999",
        "municipality=abc",
        "format=xml",
        "cursor=not-a-cursor",
    ] {
        let resp = get(&format!("{api}/api/v1/devices?{bad}"), Some(&token)).await;
        assert_eq!(
            status_and_error(resp).await,
            (400, "bad_request".into()),
            "{bad}"
        );
    }
    // A cursor belongs to its order.
    let first = get_json(
        &devices_url(&api, &[("sort", "device"), ("limit", "3")]),
        &token,
    )
    .await;
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_owned();
    for other in [
        vec![("sort", "installed")],
        vec![("sort", "municipality")],
        vec![("sort", "device"), ("order", "desc")],
    ] {
        let mut params = other.clone();
        params.extend([("limit", "3"), ("cursor", cursor.as_str())]);
        let resp = get(&devices_url(&api, &params), Some(&token)).await;
        assert_eq!(
            status_and_error(resp).await,
            (400, "bad_request".into()),
            "{other:?}"
        );
    }
    let second = get_json(
        &devices_url(
            &api,
            &[("sort", "device"), ("limit", "3"), ("cursor", &cursor)],
        ),
        &token,
    )
    .await;
    assert_eq!(
        keys(second["items"].as_array().expect("items")),
        expect(&|_| true)[3..6]
    );
}

// ---------------------------------------------------------------------------------------------
// 5. A municipality token sees its own municipality only, on every device endpoint.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_municipality_token_never_sees_another_municipalitys_device() {
    a_municipality_token_never_sees_another_municipalitys_device_on(Scratch::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_municipality_token_never_sees_another_municipalitys_device_on_postgres() {
    if let Some(scratch) = Scratch::postgres().await {
        a_municipality_token_never_sees_another_municipalitys_device_on(scratch).await
    }
}

async fn a_municipality_token_never_sees_another_municipalitys_device_on(scratch: Scratch) {
    let (vft, broker) = serve(&scratch, None, &[]);
    let coordinator = coordinator_token(&scratch);
    let aal = municipality_token(&scratch, "3328");
    wait_ready(&vft.api).await;
    let api = vft.api.clone();

    let now = now_micros();
    let platform = topic("hepro", "platform");
    let gw = topic("hepro", "gw-hall");
    let installed = |id: &str, ts: i64, m: &str, d: &str, more: Value| {
        (
            platform.clone(),
            with(
                ev(id, &rfc3339(ts), m, d, "installed"),
                with(json!({"kind": "safety_alarm"}), more),
            ),
        )
    };
    let events = vec![
        installed("a1-i", now - 40 * DAY, "3328", "AAL-1", json!({})),
        (
            gw.clone(),
            with(
                ev("a1-h", &rfc3339(now), "3328", "AAL-1", "heartbeat"),
                json!({"battery": 50}),
            ),
        ),
        installed("g1-i", now - 90 * DAY, "3324", "GOL-1", json!({})),
        (
            gw.clone(),
            ev(
                "g1-h",
                &rfc3339(now - 60 * DAY),
                "3324",
                "GOL-1",
                "heartbeat",
            ),
        ),
        // GOL-1's unit is replaced by one in Ål: Ål sees its own device, not Gol's history.
        (
            platform.clone(),
            ev(
                "g1-d",
                &rfc3339(now - 20 * DAY),
                "3324",
                "GOL-1",
                "decommissioned",
            ),
        ),
        installed(
            "a2-i",
            now - 20 * DAY,
            "3328",
            "AAL-2",
            json!({"replaces": "GOL-1"}),
        ),
        installed("g2-i", now - 10 * DAY, "3324", "GOL-2", json!({})),
        (
            gw.clone(),
            with(
                ev("g2-h", &rfc3339(now), "3324", "GOL-2", "battery_low"),
                json!({"battery": 9}),
            ),
        ),
    ];
    publish(&broker, "fleet-scope", &events).await;
    let everyone = [
        key("hepro", "AAL-1"),
        key("hepro", "AAL-2"),
        key("hepro", "GOL-1"),
        key("hepro", "GOL-2"),
    ];
    wait_stored(&api, &coordinator, &everyone).await;
    let own = everyone[..2].to_vec();
    let gol: Vec<Key> = everyone[2..].to_vec();

    // The coordinator sees both municipalities.
    assert_eq!(keys(&list(&api, &coordinator, &[]).await), everyone);
    assert_eq!(
        keys(&list(&api, &coordinator, &[("municipality", "3324")]).await),
        gol
    );
    let aal2 = show(&api, &coordinator, "hepro", "AAL-2")
        .await
        .expect("AAL-2");
    assert_eq!(aal2["replaces_chain"], json!(["GOL-1"]));
    let gol1 = show(&api, &coordinator, "hepro", "GOL-1")
        .await
        .expect("GOL-1");
    assert_eq!(gol1["replaced_by_chain"], json!(["AAL-2"]));

    // Ål: lists, every filter, paging and CSV hold Ål's devices only.
    let sees_only_own = |items: &[Value]| {
        for item in items {
            assert_eq!(item["municipality"], "3328", "{item}");
            assert!(own.contains(&key_of(item)), "{item}");
        }
    };
    assert_eq!(keys(&list(&api, &aal, &[]).await), own);
    assert_eq!(
        keys(&list(&api, &aal, &[("municipality", "3328")]).await),
        own
    );
    for params in [
        vec![("q", "GOL")],
        vec![("battery_below", "101")],
        vec![("in_service", "false")],
        vec![("connectivity", "offline")],
        vec![("connectivity", "online")],
        vec![("connectivity", "never_seen")],
        vec![("sort", "installed"), ("order", "desc")],
        vec![("sort", "municipality")],
        vec![("kind", "safety_alarm")],
    ] {
        sees_only_own(&list(&api, &aal, &params).await);
    }
    assert!(list(&api, &aal, &[("q", "GOL")]).await.is_empty());
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("limit", "1")];
        if let Some(c) = &cursor {
            params.push(("cursor", c));
        }
        let page = get_json(&devices_url(&api, &params), &aal).await;
        paged.extend(page["items"].as_array().expect("items").clone());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(keys(&paged), own);
    for (url, accept) in [
        (devices_url(&api, &[("format", "csv")]), false),
        (devices_url(&api, &[]), true),
    ] {
        let (status, _, csv) = get_text(&url, &aal, accept).await;
        assert_eq!(status, 200);
        assert_csv_matches(&csv, &list(&api, &aal, &[]).await);
    }
    for m in ["3324", "3320"] {
        let resp = get(&devices_url(&api, &[("municipality", m)]), Some(&aal)).await;
        assert_eq!(status_and_error(resp).await, (403, "forbidden".into()));
        let resp = get(
            &devices_url(&api, &[("municipality", m), ("format", "csv")]),
            Some(&aal),
        )
        .await;
        assert_eq!(resp.status(), 403);
    }

    // Another municipality's device is invisible: the same 404 as a device that does not exist.
    let missing = get(&device_url(&api, "hepro", "NO-SUCH"), Some(&aal)).await;
    let missing = status_and_error(missing).await;
    assert_eq!(missing, (404, "not_found".into()));
    for (v, d) in &gol {
        let resp = get(&device_url(&api, v, d), Some(&aal)).await;
        assert_eq!(status_and_error(resp).await, missing, "show {d}");
        // Setting a timeout is the coordinator's: refused alike for every device, so the answer
        // says nothing about whether another municipality's device exists.
        let resp = put_timeout(&api, &aal, v, d, json!({"timeout_secs": 60})).await;
        assert_eq!(
            status_and_error(resp).await,
            (403, "forbidden".into()),
            "PUT {d}"
        );
        let resp = put_timeout(&api, &aal, v, d, json!({"timeout_secs": null})).await;
        assert_eq!(
            status_and_error(resp).await,
            (403, "forbidden".into()),
            "PUT null {d}"
        );
    }
    let gol2 = show(&api, &coordinator, "hepro", "GOL-2")
        .await
        .expect("GOL-2");
    assert_eq!(
        gol2["device"]["timeout_override_secs"],
        Value::Null,
        "Ål's PUT changed nothing"
    );

    // Its own replacement brings none of Gol's unit along: no chain, no events.
    let aal2 = show(&api, &aal, "hepro", "AAL-2")
        .await
        .expect("own device");
    assert_eq!(aal2["replaces_chain"], json!([]));
    let history = aal2["history"].as_array().expect("history");
    assert!(!history.is_empty());
    for e in history {
        assert_eq!(e["device"], "AAL-2", "{e}");
        assert_eq!(e["municipality"], "3328", "{e}");
    }

    // Not even its own: a timeout changes what every view counts as offline, so the
    // coordinator sets it (issue 12's actions by role).
    let resp = put_timeout(&api, &aal, "hepro", "AAL-1", json!({"timeout_secs": 600})).await;
    assert_eq!(status_and_error(resp).await, (403, "forbidden".into()));
    let resp = put_timeout(
        &api,
        &coordinator,
        "hepro",
        "AAL-1",
        json!({"timeout_secs": 600}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let view: Value = resp.json().await.expect("view");
    assert_eq!(
        (
            view["timeout_secs"].clone(),
            view["timeout_override_secs"].clone()
        ),
        (json!(600), json!(600))
    );

    // No token, no inventory.
    for url in [devices_url(&api, &[]), device_url(&api, "hepro", "AAL-1")] {
        assert_eq!(get(&url, None).await.status(), 401, "{url}");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. The CLI reads the same database and agrees with the API.

fn cli(scratch: &Scratch, args: &[&str]) -> Result<String, String> {
    let db = scratch.database_url();
    let mut all = vec!["devices"];
    all.extend_from_slice(args);
    all.extend(["--database-url", db.as_str()]);
    vft_cli(&all, scratch.dir.path())
}

fn cli_ok(scratch: &Scratch, args: &[&str]) -> String {
    cli(scratch, args).unwrap_or_else(|e| panic!("vft devices {args:?} failed: {e}"))
}

fn cli_json(scratch: &Scratch, args: &[&str]) -> Value {
    let out = cli_ok(scratch, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_agrees_with_the_api() {
    let scratch = Scratch::new();
    let (vft, broker) = serve(&scratch, None, &[]);
    let token = coordinator_token(&scratch);
    wait_ready(&vft.api).await;
    let api = vft.api.clone();

    let now = now_micros();
    let platform = topic("hepro", "platform");
    let gw = topic("hepro", "gw-cli");
    let installed = |d: &str, kind: &str, m: &str| {
        (
            platform.clone(),
            with(
                ev(
                    &format!("{d}-i"),
                    &rfc3339(now - 7 * DAY),
                    m,
                    d,
                    "installed",
                ),
                json!({ "kind": kind }),
            ),
        )
    };
    let events = vec![
        installed("C-1", "safety_alarm", "3328"),
        (
            gw.clone(),
            with(
                ev(
                    "C-1-h",
                    &rfc3339(now - 10 * 60 * SECOND),
                    "3328",
                    "C-1",
                    "heartbeat",
                ),
                json!({"battery": 55}),
            ),
        ),
        installed("C-2", "tracking", "3324"),
        (
            gw.clone(),
            ev("C-2-f", &rfc3339(now - 30 * DAY), "3324", "C-2", "fault"),
        ),
        installed("C-3", "smoke_detector", "3328"),
        installed("C,4 \"x\"", "door_lock_alarm", "3330"),
        (
            gw.clone(),
            with(
                ev(
                    "C-4-h",
                    &rfc3339(now - HOUR),
                    "3330",
                    "C,4 \"x\"",
                    "heartbeat",
                ),
                json!({"battery": 12}),
            ),
        ),
    ];
    publish(&broker, "fleet-cli", &events).await;
    let all = [
        key("hepro", "C,4 \"x\""),
        key("hepro", "C-1"),
        key("hepro", "C-2"),
        key("hepro", "C-3"),
    ];
    wait_stored(&api, &token, &all).await;

    // List: CSV byte for byte, JSON item for item, with and without filters.
    let (_, _, api_csv) = get_text(&devices_url(&api, &[("format", "csv")]), &token, false).await;
    assert_eq!(cli_ok(&scratch, &["list", "--format", "csv"]), api_csv);
    assert_eq!(
        cli_json(&scratch, &["list", "--format", "json"]),
        json!(list(&api, &token, &[]).await)
    );
    for (flag, param, value) in [
        ("--kind", "kind", "tracking"),
        ("--municipality", "municipality", "3328"),
        ("--connectivity", "connectivity", "never_seen"),
        ("--connectivity", "connectivity", "offline"),
        ("--search", "q", "c,4"),
    ] {
        let from_api = list(&api, &token, &[(param, value)]).await;
        assert!(!from_api.is_empty(), "{param}={value}");
        assert_eq!(
            cli_json(&scratch, &["list", flag, value, "--format", "json"]),
            json!(from_api),
            "{flag} {value}"
        );
    }
    let table = cli_ok(&scratch, &["list"]);
    for (_, d) in &all {
        assert!(table.contains(d.as_str()), "{d} in\n{table}");
    }

    // Show.
    for (v, d) in &all {
        let from_api = show(&api, &token, v, d).await.expect("device");
        assert_eq!(
            cli_json(&scratch, &["show", v, d]),
            from_api["device"],
            "{d}"
        );
    }
    let err = cli(&scratch, &["show", "hepro", "NO-SUCH"]).expect_err("unknown device");
    assert!(err.contains("NO-SUCH"), "{err}");

    // A device's own timeout, set by the CLI, is what the API computes with, and the reverse.
    // C-1 last spoke ten minutes ago: a 60 s timeout makes it offline with no new message.
    let c1 = |scratch: &Scratch| cli_json(scratch, &["show", "hepro", "C-1"]);
    assert_eq!(c1(&scratch)["connectivity"], "online");
    let type_timeout = c1(&scratch)["timeout_secs"].clone();
    cli_ok(&scratch, &["set-timeout", "hepro", "C-1", "60"]);
    let via_api = show(&api, &token, "hepro", "C-1").await.expect("C-1")["device"].clone();
    assert_eq!(
        (
            via_api["timeout_secs"].clone(),
            via_api["timeout_override_secs"].clone()
        ),
        (json!(60), json!(60))
    );
    assert_eq!(
        via_api["connectivity"],
        connectivity_rule(&via_api, now_micros())
    );
    assert_eq!(via_api["connectivity"], "offline");
    assert_eq!(c1(&scratch), via_api);
    assert_eq!(
        keys(&list(&api, &token, &[("connectivity", "offline")]).await),
        keys(
            &cli_json(
                &scratch,
                &["list", "--connectivity", "offline", "--format", "json"]
            )
            .as_array()
            .expect("array")
            .clone()
        )
    );

    let resp = put_timeout(&api, &token, "hepro", "C-1", json!({"timeout_secs": null})).await;
    assert_eq!(resp.status(), 200);
    let put_view: Value = resp.json().await.expect("view");
    assert_eq!(put_view["timeout_override_secs"], Value::Null);
    assert_eq!(put_view["timeout_secs"], type_timeout);
    assert_eq!(put_view["connectivity"], "online");
    assert_eq!(c1(&scratch), put_view);

    let resp = put_timeout(&api, &token, "hepro", "C-1", json!({"timeout_secs": 7200})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(c1(&scratch)["timeout_override_secs"], 7200);
    cli_ok(&scratch, &["set-timeout", "hepro", "C-1", "none"]);
    let via_api = show(&api, &token, "hepro", "C-1").await.expect("C-1")["device"].clone();
    assert_eq!(via_api["timeout_override_secs"], Value::Null);
    assert_eq!(via_api["timeout_secs"], type_timeout);

    // Refusals agree too.
    for bad in ["0", "-5", "soon"] {
        assert!(
            cli(&scratch, &["set-timeout", "hepro", "C-1", bad]).is_err(),
            "{bad}"
        );
    }
    let err = cli(&scratch, &["set-timeout", "hepro", "NO-SUCH", "60"]).expect_err("unknown");
    assert!(err.contains("NO-SUCH"), "{err}");
    let resp = put_timeout(&api, &token, "hepro", "C-1", json!({"timeout_secs": 0})).await;
    assert_eq!(status_and_error(resp).await, (400, "bad_request".into()));
    let resp = put_timeout(
        &api,
        &token,
        "hepro",
        "NO-SUCH",
        json!({"timeout_secs": 60}),
    )
    .await;
    assert_eq!(status_and_error(resp).await, (404, "not_found".into()));
    assert_eq!(
        c1(&scratch)["timeout_override_secs"],
        Value::Null,
        "refusals changed nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// Regression tests for product bugs found while writing these tests (fixed).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_service_now_follows_the_rule_for_future_dated_lifecycle_events() {
    let scratch = Scratch::new();
    // Planned a month ahead: beyond the default one day of ingest.max_future_secs.
    let (vft, broker) = serve(
        &scratch,
        None,
        &[("VFT_INGEST__MAX_FUTURE_SECS", &(60 * 86_400).to_string())],
    );
    let token = coordinator_token(&scratch);
    wait_ready(&vft.api).await;

    let now = now_micros();
    // (device, [(installed?, ts)]): a planned removal next month, an installation not yet done.
    let plan: [(&str, Vec<(bool, i64)>); 3] = [
        (
            "PLANNED-OFF",
            vec![(true, now - 365 * DAY), (false, now + 30 * DAY)],
        ),
        ("NOT-YET", vec![(true, now + 30 * DAY)]),
        ("PLAIN", vec![(true, now - DAY)]),
    ];
    let mut events = Vec::new();
    for (d, lifecycle) in &plan {
        for (i, (installed, ts)) in lifecycle.iter().enumerate() {
            let e = if *installed {
                with(
                    ev(&format!("{d}-{i}"), &rfc3339(*ts), "3328", d, "installed"),
                    json!({"kind": "safety_alarm"}),
                )
            } else {
                ev(
                    &format!("{d}-{i}"),
                    &rfc3339(*ts),
                    "3328",
                    d,
                    "decommissioned",
                )
            };
            events.push((topic("hepro", "platform"), e));
        }
    }
    publish(&broker, "fleet-future", &events).await;
    let all: Vec<Key> = plan.iter().map(|(d, _)| key("hepro", d)).collect();
    wait_stored(&vft.api, &token, &all).await;

    let at = now_micros();
    let rule = |lifecycle: &[(bool, i64)]| {
        lifecycle
            .iter()
            .filter(|(_, ts)| *ts <= at)
            .max_by_key(|(installed, ts)| (*ts, !installed))
            .is_some_and(|(installed, _)| *installed)
    };
    let mut wrong = Vec::new();
    for (d, lifecycle) in &plan {
        let view = show(&vft.api, &token, "hepro", d).await.expect("device")["device"].clone();
        if view["in_service"] != rule(lifecycle) {
            wrong.push(format!(
                "{d}: in_service {} (rule: {})",
                view["in_service"],
                rule(lifecycle)
            ));
        }
    }
    let mut in_service: Vec<Key> = plan
        .iter()
        .filter(|(_, l)| rule(l))
        .map(|(d, _)| key("hepro", d))
        .collect();
    // The list comes in device order.
    in_service.sort();
    let listed = keys(&list(&vft.api, &token, &[("in_service", "true")]).await);
    if listed != in_service {
        wrong.push(format!(
            "in_service=true lists {listed:?}, rule: {in_service:?}"
        ));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_timeout_body_is_a_json_400_and_nothing_is_clamped() {
    let scratch = Scratch::new();
    let (vft, broker) = serve(&scratch, None, &[]);
    let token = coordinator_token(&scratch);
    wait_ready(&vft.api).await;
    let hb = ev("x-h", &rfc3339(now_micros()), "3328", "X", "heartbeat");
    publish(&broker, "fleet-put", &[(topic("hepro", "gw"), hb)]).await;
    wait_stored(&vft.api, &token, &[key("hepro", "X")]).await;

    let set = put_timeout(&vft.api, &token, "hepro", "X", json!({"timeout_secs": 600})).await;
    assert_eq!(set.status(), 200);
    let url = format!("{}/timeout", device_url(&vft.api, "hepro", "X"));
    let mut wrong = Vec::new();
    for body in [
        r#"{"timeout_secs": -1}"#,
        r#"{"timeout_secs": "60"}"#,
        r#"{"timeout_secs": 1.5}"#,
        // A typo must not reset the device's own timeout.
        r#"{"timeout": 60}"#,
        "not json",
    ] {
        let resp = reqwest::Client::new()
            .put(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("PUT");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let json: Option<Value> = serde_json::from_str(&text).ok();
        let error = json
            .as_ref()
            .and_then(|j| j["error"].as_str().map(str::to_owned));
        if (status, error.as_deref()) != (400, Some("bad_request")) {
            wrong.push(format!("{body}: {status} {text}"));
        }
    }
    let kept =
        show(&vft.api, &token, "hepro", "X").await.expect("X")["device"]["timeout_override_secs"]
            .clone();
    if kept != 600 {
        wrong.push(format!("refused bodies changed the override to {kept}"));
    }
    // Too large for the store: refused, or kept exactly as given, never changed silently.
    let resp = put_timeout(
        &vft.api,
        &token,
        "hepro",
        "X",
        json!({"timeout_secs": u64::MAX}),
    )
    .await;
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let kept = serde_json::from_str::<Value>(&text)
        .is_ok_and(|v| v["timeout_override_secs"] == json!(u64::MAX));
    if !(status == 400 || (status == 200 && kept)) {
        wrong.push(format!("u64::MAX: {status} {text}"));
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
