//! The MQTT perimeter, from real clients (Debian's `mosquitto_pub`/`mosquitto_sub`, and
//! rumqttc): on vft's embedded listener with gateway credentials, and on Mosquitto with the
//! shipped configuration (deploy/mosquitto/mosquitto.conf and vft.acl). Strangers are refused,
//! a credential publishes only under its vendor (or gateway), nobody reads, a client id cannot
//! be taken from its holder, TLS works both ways, and 200 abusive connections stay under the
//! memory bound the README states.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

const WAIT: Duration = Duration::from_secs(60);

/// `mosquitto_pub` and `mosquitto_sub`; `None` (loudly) outside CI when not installed.
fn clients() -> Option<(PathBuf, PathBuf)> {
    Some((
        mosquitto_client("mosquitto_pub")?,
        mosquitto_client("mosquitto_sub")?,
    ))
}

/// Runs a command to its end (killed after 60 s).
fn run(mut command: Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &id.to_string()])
                .status();
            panic!("{command:?} still running after {WAIT:?}")
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Who connects, and how.
#[derive(Clone, Default)]
struct Login<'a> {
    port: u16,
    user: Option<(&'a str, &'a str)>,
    cafile: Option<&'a Path>,
    client_id: Option<&'a str>,
}

impl<'a> Login<'a> {
    fn at(port: u16) -> Self {
        Self {
            port,
            ..Self::default()
        }
    }
    fn user(self, name: &'a str, password: &'a str) -> Self {
        Self {
            user: Some((name, password)),
            ..self
        }
    }
    fn tls(self, cafile: &'a Path) -> Self {
        Self {
            cafile: Some(cafile),
            ..self
        }
    }
    fn id(self, client_id: &'a str) -> Self {
        Self {
            client_id: Some(client_id),
            ..self
        }
    }

    fn apply(&self, command: &mut Command) {
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-V",
            "mqttv311",
        ]);
        if let Some((u, p)) = self.user {
            command.args(["-u", u, "-P", p]);
        }
        if let Some(ca) = self.cafile {
            command.arg("--cafile").arg(ca);
        }
        if let Some(id) = self.client_id {
            command.args(["-i", id]);
        }
    }
}

/// `mosquitto_pub -q 1` of one message (plus `extra` arguments).
fn publish(bin: &Path, login: &Login, topic: &str, message: &str, extra: &[&str]) -> Output {
    let mut command = Command::new(bin);
    login.apply(&mut command);
    command
        .args(["-q", "1", "-t", topic, "-m", message])
        .args(extra);
    run(command)
}

/// Published and acknowledged.
fn published(bin: &Path, login: &Login, topic: &str, message: &str) {
    let out = publish(bin, login, topic, message, &[]);
    assert!(
        out.status.success(),
        "mosquitto_pub to {topic} failed: {}",
        text(&out.stderr)
    );
}

/// Refused at CONNECT, saying `why`.
fn refused(out: &Output, why: &str) {
    assert!(
        !out.status.success(),
        "expected a refusal ({why}), got success"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains(why), "expected {why:?} in {stderr:?}");
}

/// `mosquitto_sub -t '#'` for `secs` seconds: what it printed and its stderr.
fn subscribe_everything(bin: &Path, login: &Login, secs: u32) -> (String, String) {
    let mut command = Command::new(bin);
    login.apply(&mut command);
    command.args(["-q", "1", "-t", "#", "-v", "-W", &secs.to_string()]);
    let out = run(command);
    (text(&out.stdout), text(&out.stderr))
}

fn event(id: &str, device: &str, kind: &str) -> String {
    let ts = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Oslo)
        .to_rfc3339();
    let mut e = serde_json::json!({
        "id": id, "ts": ts, "municipality": "3328", "device": device, "type": kind,
    });
    if kind == "installed" {
        e["kind"] = "safety_alarm".into();
    }
    e.to_string()
}

/// `vft mqtt-credential create ARGS`: (username, password).
fn credential(db: &str, cwd: &Path, args: &[&str]) -> (String, String) {
    let mut all = vec!["mqtt-credential", "create", "--database-url", db];
    all.extend_from_slice(args);
    let out = vft_cli(&all, cwd).unwrap_or_else(|e| panic!("mqtt-credential create: {e}"));
    let lines: Vec<&str> = out.lines().collect();
    let username = lines
        .first()
        .and_then(|l| l.strip_prefix("username "))
        .expect("a username line")
        .to_owned();
    let password = lines.last().expect("a password line").trim().to_owned();
    assert!(password.starts_with("vftm_"), "{out}");
    (username, password)
}

async fn store(db: &str) -> std::sync::Arc<dyn vft_store::Store> {
    vft_store::open(db, &Default::default())
        .await
        .expect("store")
}

async fn wait_events(db: &str, ids: &[&str]) {
    eventually("events stored", WAIT, || async {
        let stored = stored_ids(db).await;
        ids.iter().all(|i| stored.contains(*i)).then_some(())
    })
    .await;
}

async fn wait_dead_letter(db: &str, topic: &str, reason: &str) -> vft_store::DeadLetter {
    let store = store(db).await;
    eventually(
        &format!("a {reason} dead letter on {topic}"),
        WAIT,
        || async {
            store
                .dead_letters(1000, None)
                .await
                .ok()?
                .into_iter()
                .find(|d| d.topic == topic && d.reason_code == reason)
        },
    )
    .await
}

async fn connectivity(api: &str, token: &str, vendor: &str, device: &str) -> String {
    let detail = get_json(&format!("{api}/api/v1/devices/{vendor}/{device}"), token).await;
    detail["device"]["connectivity"]
        .as_str()
        .expect("connectivity")
        .to_owned()
}

fn no_anonymous() -> [(&'static str, &'static str); 1] {
    [("VFT_MQTT__ALLOW_ANONYMOUS", "false")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_listener_admits_credentials_only_and_keeps_each_to_its_topics() {
    let Some((pub_bin, sub_bin)) = clients() else {
        return;
    };
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let cwd = scratch.dir.path();
    let (vft, broker) = spawn_vft("serve", &db, cwd, None, &[], &no_anonymous());
    wait_ready(&vft.api).await;
    let token = create_token(&db, cwd, &["--role", "coordinator"]);
    let (hepro, hepro_pw) = credential(&db, cwd, &["--vendor", "hepro", "--label", "Hepro"]);
    assert_eq!(hepro, "hepro");
    let (gw1, gw1_pw) = credential(&db, cwd, &["--vendor", "hepro", "--gateway", "gw-1"]);
    assert_eq!(gw1, "hepro/gw-1");
    let anyone = Login::at(broker.port);
    let as_hepro = anyone.clone().user(&hepro, &hepro_pw);
    let as_gw1 = anyone.clone().user(&gw1, &gw1_pw);

    // Strangers: no username, or a wrong password.
    let gw2_events = "vft/v1/hepro/gw-2/events";
    let out = publish(
        &pub_bin,
        &anyone,
        gw2_events,
        &event("anon-1", "HP-ANON-1", "installed"),
        &[],
    );
    refused(&out, "not authorised");
    let out = publish(
        &pub_bin,
        &anyone.clone().user(&hepro, "vftm_wrong"),
        gw2_events,
        &event("anon-2", "HP-ANON-2", "installed"),
        &[],
    );
    refused(&out, "bad user name or password");
    let out = publish(
        &pub_bin,
        &anyone.clone().user("nobody", &hepro_pw),
        gw2_events,
        &event("anon-3", "HP-ANON-3", "installed"),
        &[],
    );
    refused(&out, "bad user name or password");

    // The vendor's credential: a device behind gw-2, online.
    published(
        &pub_bin,
        &as_hepro,
        gw2_events,
        &event("gw2-install", "HP-GW2-1", "installed"),
    );
    published(
        &pub_bin,
        &as_hepro,
        gw2_events,
        &event("gw2-heartbeat", "HP-GW2-1", "heartbeat"),
    );
    published(&pub_bin, &as_hepro, "vft/v1/hepro/gw-2/status", "online");
    wait_events(&db, &["gw2-install"]).await;
    // The heartbeat is no lifecycle record (`wait_events` cannot see it) and may be stored in
    // a later batch than the install: wait for its effect instead.
    eventually("HP-GW2-1 online", WAIT, || async {
        (connectivity(&vft.api, &token, "hepro", "HP-GW2-1").await == "online").then_some(())
    })
    .await;

    // Another vendor's topic: acknowledged (MQTT 3.1.1 cannot say no), kept as a
    // forbidden_topic dead letter, and no event.
    let atea = "vft/v1/atea/gw-9/events";
    published(
        &pub_bin,
        &as_hepro,
        atea,
        &event("forged-1", "AT-FORGED-1", "installed"),
    );
    let letter = wait_dead_letter(&db, atea, "forbidden_topic").await;
    assert!(letter.reason.contains("hepro"), "{}", letter.reason);
    let store = store(&db).await;
    assert_eq!(store.event_count().await.expect("count"), 2);
    assert_eq!(
        get(
            &format!("{}/api/v1/devices/atea/AT-FORGED-1", vft.api),
            Some(&token)
        )
        .await
        .status(),
        404
    );

    // A gateway's credential: `offline` on another gateway's status topic changes nothing…
    let gw2_status = "vft/v1/hepro/gw-2/status";
    published(&pub_bin, &as_gw1, gw2_status, "offline");
    wait_dead_letter(&db, gw2_status, "forbidden_topic").await;
    assert_eq!(
        connectivity(&vft.api, &token, "hepro", "HP-GW2-1").await,
        "online"
    );
    // … nor does a last will there: refused at CONNECT.
    let out = publish(
        &pub_bin,
        &as_gw1,
        "vft/v1/hepro/gw-1/events",
        &event("gw1-will", "HP-GW1-W", "installed"),
        &[
            "--will-topic",
            gw2_status,
            "--will-payload",
            "offline",
            "--will-qos",
            "1",
        ],
    );
    refused(&out, "not authorised");
    // Its own topics are its own.
    published(
        &pub_bin,
        &as_gw1,
        "vft/v1/hepro/gw-1/events",
        &event("gw1-own", "HP-GW1-1", "installed"),
    );
    wait_events(&db, &["gw1-own"]).await;

    // Nobody reads: every subscription is refused, and nothing arrives.
    let (seen, stderr) = subscribe_everything(&sub_bin, &as_hepro, 2);
    assert!(seen.is_empty(), "a subscriber got {seen:?}");
    assert!(stderr.contains("denied"), "{stderr}");

    // The control: the vendor's own `offline` does move the device.
    published(&pub_bin, &as_hepro, gw2_status, "offline");
    eventually("the gateway's own offline", WAIT, || async {
        (connectivity(&vft.api, &token, "hepro", "HP-GW2-1").await == "offline").then_some(())
    })
    .await;

    // Revoked: the next connection is refused.
    vft_cli(
        &["mqtt-credential", "revoke", "--database-url", &db, &gw1],
        cwd,
    )
    .expect("revoke");
    let out = publish(
        &pub_bin,
        &as_gw1,
        "vft/v1/hepro/gw-1/events",
        &event("gw1-late", "HP-GW1-2", "heartbeat"),
        &[],
    );
    refused(&out, "bad user name or password");
    let listing = vft_cli(&["mqtt-credential", "list", "--database-url", &db], cwd).expect("list");
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("hepro/gw-1 ") && !l.contains(" - ")),
        "revoked in the list: {listing}"
    );

    // The same through the API (coordinator only).
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/mqtt-credentials", vft.api);
    let created: serde_json::Value = client
        .post(&url)
        .bearer_auth(&token)
        .json(&serde_json::json!({ "vendor": "atea", "gateway": "gw-9", "label": "Atea gw-9" }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(created["username"], "atea/gw-9", "{created}");
    let atea_pw = created["password"].as_str().expect("password").to_owned();
    published(
        &pub_bin,
        &anyone.clone().user("atea/gw-9", &atea_pw),
        atea,
        &event("atea-own", "AT-OWN-1", "installed"),
    );
    wait_events(&db, &["atea-own"]).await;
    let list: serde_json::Value = get_json(&url, &token).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["username"].as_str().expect("username"))
        .collect();
    assert_eq!(names, ["hepro", "hepro/gw-1", "atea/gw-9"]);
    assert!(
        !list.to_string().contains("argon2"),
        "no hash is shown: {list}"
    );
    let aal = create_token(
        &db,
        cwd,
        &["--role", "municipality", "--municipality", "3328"],
    );
    assert_eq!(get(&url, Some(&aal)).await.status(), 403);
    let delete = |who: String| {
        let client = client.clone();
        let url = format!("{url}?username=atea/gw-9");
        async move {
            client
                .delete(url)
                .bearer_auth(who)
                .send()
                .await
                .expect("DELETE")
                .status()
        }
    };
    assert_eq!(delete(aal.clone()).await, 403);
    assert_eq!(delete(token.clone()).await, 204);
    assert_eq!(delete(token.clone()).await, 404);

    // Wrong passwords from one address are answered ever more slowly.
    let mut last = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let out = publish(
            &pub_bin,
            &anyone.clone().user(&hepro, "vftm_guess"),
            gw2_events,
            "x",
            &[],
        );
        refused(&out, "bad user name or password");
        last = started.elapsed();
    }
    assert!(
        last >= Duration::from_millis(400),
        "the fifth guess took only {last:?}"
    );
    drop(vft);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_listener_keeps_a_client_id_with_the_credential_holding_it() {
    let Some((pub_bin, _)) = clients() else {
        return;
    };
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let cwd = scratch.dir.path();
    let (vft, broker) = spawn_vft("serve", &db, cwd, None, &[], &no_anonymous());
    wait_ready(&vft.api).await;
    let (gw1, gw1_pw) = credential(&db, cwd, &["--vendor", "hepro", "--gateway", "gw-1"]);
    let (gw2, gw2_pw) = credential(&db, cwd, &["--vendor", "hepro", "--gateway", "gw-2"]);
    // gw-2 is connected (rumqttc) under its client id.
    let holder = BrokerUnderTest {
        port: broker.port,
        credentials: Some((gw2.clone(), gw2_pw)),
    };
    let mut gateway = Publisher::connect(&holder, "hepro-gw-2").await;
    gateway
        .publish(
            "vft/v1/hepro/gw-2/events",
            event("held-1", "HP-HELD-1", "installed"),
        )
        .await;
    gateway.wait_all_acked(WAIT).await;
    // gw-1's credential asks for the same client id: refused, and gw-2 stays connected.
    let out = publish(
        &pub_bin,
        &Login::at(broker.port).user(&gw1, &gw1_pw).id("hepro-gw-2"),
        "vft/v1/hepro/gw-1/events",
        &event("thief-1", "HP-THIEF-1", "installed"),
        &[],
    );
    refused(&out, "identifier rejected");
    gateway
        .publish(
            "vft/v1/hepro/gw-2/events",
            event("held-2", "HP-HELD-2", "installed"),
        )
        .await;
    gateway.wait_all_acked(WAIT).await;
    assert!(!gateway.is_closed(), "the holder was cut off");
    wait_events(&db, &["held-1", "held-2"]).await;
    assert!(!stored_ids(&db).await.contains("thief-1"));
    gateway.disconnect().await;
    drop(vft);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_listener_serves_tls() {
    let Some((pub_bin, _)) = clients() else {
        return;
    };
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let cwd = scratch.dir.path();
    let (ca, cert, key) = test_ca(cwd);
    let other = cwd.join("other-ca");
    std::fs::create_dir(&other).expect("dir");
    let (wrong_ca, _, _) = test_ca(&other);
    let tls_addr = format!("127.0.0.1:{}", free_port());
    let (cert_s, key_s) = (cert.display().to_string(), key.display().to_string());
    let env = [
        ("VFT_MQTT__ALLOW_ANONYMOUS", "false"),
        ("VFT_MQTT__TLS_CERT", cert_s.as_str()),
        ("VFT_MQTT__TLS_KEY", key_s.as_str()),
        ("VFT_MQTT__EMBEDDED_TLS_ADDR", tls_addr.as_str()),
    ];
    let (vft, broker) = spawn_vft("serve", &db, cwd, None, &[], &env);
    wait_ready(&vft.api).await;
    let (hepro, pw) = credential(&db, cwd, &["--vendor", "hepro"]);
    let tls_port: u16 = tls_addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let topic = "vft/v1/hepro/gw-tls/events";
    let over_tls = Login::at(tls_port).user(&hepro, &pw).tls(&ca);
    published(
        &pub_bin,
        &over_tls,
        topic,
        &event("tls-1", "HP-TLS-1", "installed"),
    );
    // Plain MQTT beside it, on the other address.
    published(
        &pub_bin,
        &Login::at(broker.port).user(&hepro, &pw),
        topic,
        &event("plain-1", "HP-PLAIN-1", "installed"),
    );
    wait_events(&db, &["tls-1", "plain-1"]).await;
    // A certificate from another CA is not trusted, and plain MQTT on the TLS port fails.
    let out = publish(
        &pub_bin,
        &Login::at(tls_port).user(&hepro, &pw).tls(&wrong_ca),
        topic,
        "x",
        &[],
    );
    assert!(!out.status.success(), "another CA was trusted");
    let out = publish(
        &pub_bin,
        &Login::at(tls_port).user(&hepro, &pw),
        topic,
        "x",
        &[],
    );
    assert!(!out.status.success(), "plain MQTT on the TLS port worked");
    drop(vft);

    // TLS only: with no address of its own, TLS replaces plain MQTT on embedded_addr.
    let env = [
        ("VFT_MQTT__ALLOW_ANONYMOUS", "false"),
        ("VFT_MQTT__TLS_CERT", cert_s.as_str()),
        ("VFT_MQTT__TLS_KEY", key_s.as_str()),
    ];
    let (vft, broker) = spawn_vft("serve", &db, cwd, None, &[], &env);
    wait_ready(&vft.api).await;
    published(
        &pub_bin,
        &Login::at(broker.port).user(&hepro, &pw).tls(&ca),
        topic,
        &event("tls-2", "HP-TLS-2", "installed"),
    );
    let out = publish(
        &pub_bin,
        &Login::at(broker.port).user(&hepro, &pw),
        topic,
        "x",
        &[],
    );
    assert!(!out.status.success(), "plain MQTT still served");
    wait_events(&db, &["tls-2"]).await;
    drop(vft);
}

/// Runs vft to its end (killed after 60 s): its exit status and stderr.
fn vft_exits(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> (bool, String) {
    let mut command = Command::new(VFT);
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied());
    let out = run(command);
    (out.status.success(), text(&out.stderr))
}

#[test]
fn anonymous_access_needs_a_loopback_address() {
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let cwd = scratch.dir.path();
    let everywhere = format!("0.0.0.0:{}", free_port());
    let common = [
        "--database-url",
        &db,
        "--http-addr",
        "127.0.0.1:0",
        "--mqtt-addr",
        &everywhere,
    ];
    let serve: Vec<&str> = ["serve"].into_iter().chain(common).collect();
    let (ok, stderr) = vft_exits(&serve, &[("VFT_MQTT__ALLOW_ANONYMOUS", "true")], cwd);
    assert!(!ok && stderr.contains("loopback"), "{stderr}");
    assert!(stderr.contains("mqtt.allow_anonymous"), "{stderr}");
    let demo: Vec<&str> = ["demo", "--exit-when-loaded"]
        .into_iter()
        .chain(common)
        .collect();
    let (ok, stderr) = vft_exits(&demo, &[], cwd);
    assert!(
        !ok && stderr.contains("vft demo") && stderr.contains("loopback"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_with_the_shipped_acl_keeps_gateways_to_their_topics() {
    let Some((pub_bin, sub_bin)) = clients() else {
        return;
    };
    let Some(mosquitto) = Mosquitto::start_with_users(
        &[],
        &[("hepro", "hepro-secret"), ("hepro/gw-1", "gw1-secret")],
    ) else {
        return;
    };
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let cwd = scratch.dir.path();
    let (vft, _) = spawn_vft("serve", &db, cwd, Some(&mosquitto.broker), &[], &[]);
    wait_ready(&vft.api).await;
    let token = create_token(&db, cwd, &["--role", "coordinator"]);
    let port = mosquitto.broker.port;
    let anyone = Login::at(port);
    let as_hepro = anyone.clone().user("hepro", "hepro-secret");
    let as_gw1 = anyone.clone().user("hepro/gw-1", "gw1-secret");
    let gw2_events = "vft/v1/hepro/gw-2/events";

    // Strangers.
    refused(
        &publish(&pub_bin, &anyone, gw2_events, "x", &[]),
        "not authorised",
    );
    refused(
        &publish(
            &pub_bin,
            &anyone.clone().user("hepro", "guess"),
            gw2_events,
            "x",
            &[],
        ),
        "not authorised",
    );

    // The vendor user: a device behind gw-2, online.
    published(
        &pub_bin,
        &as_hepro,
        gw2_events,
        &event("m-gw2", "HP-M-GW2", "installed"),
    );
    published(
        &pub_bin,
        &as_hepro,
        gw2_events,
        &event("m-gw2-heartbeat", "HP-M-GW2", "heartbeat"),
    );
    published(&pub_bin, &as_hepro, "vft/v1/hepro/gw-2/status", "online");
    wait_events(&db, &["m-gw2"]).await;
    // The heartbeat is no lifecycle record (`wait_events` cannot see it) and may be stored in
    // a later batch than the install: wait for its effect instead.
    eventually("HP-M-GW2 online", WAIT, || async {
        (connectivity(&vft.api, &token, "hepro", "HP-M-GW2").await == "online").then_some(())
    })
    .await;

    // Another vendor's topic: Mosquitto acknowledges and drops it; vft never sees it. A later
    // message of the same user on its own topic is the marker that it would have by now.
    let atea = "vft/v1/atea/gw-9/events";
    published(
        &pub_bin,
        &as_hepro,
        atea,
        &event("m-forged", "AT-M-FORGED", "installed"),
    );
    // A gateway user: `offline` on another gateway's status topic.
    published(&pub_bin, &as_gw1, "vft/v1/hepro/gw-2/status", "offline");
    published(
        &pub_bin,
        &as_gw1,
        "vft/v1/hepro/gw-1/events",
        &event("m-gw1", "HP-M-GW1", "installed"),
    );
    published(
        &pub_bin,
        &as_hepro,
        gw2_events,
        &event("m-marker", "HP-M-MARK", "installed"),
    );
    wait_events(&db, &["m-gw1", "m-marker"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!stored_ids(&db).await.contains("m-forged"));
    assert_eq!(
        connectivity(&vft.api, &token, "hepro", "HP-M-GW2").await,
        "online"
    );
    let letters = store(&db)
        .await
        .dead_letters(100, None)
        .await
        .expect("dead letters");
    assert!(
        letters.iter().all(|d| !d.topic.starts_with("vft/v1/atea")),
        "{letters:?}"
    );

    // A gateway user's last will on another gateway's status topic: Mosquitto refuses the
    // connection or drops the will when it fires; either way the device stays online.
    let will_broker = BrokerUnderTest {
        port,
        credentials: Some(("hepro/gw-1".into(), "gw1-secret".into())),
    };
    let mut options = rumqttc::MqttOptions::new("will-forger", "127.0.0.1", will_broker.port);
    options
        .set_credentials("hepro/gw-1", "gw1-secret")
        .set_last_will(rumqttc::LastWill::new(
            "vft/v1/hepro/gw-2/status",
            "offline",
            rumqttc::QoS::AtLeastOnce,
            false,
        ));
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    let first = tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await;
    // Dropping the event loop drops the socket without DISCONNECT: the will would fire.
    drop(eventloop);
    eprintln!("will forger's CONNECT: {first:?}");
    published(
        &pub_bin,
        &as_hepro,
        gw2_events,
        &event("m-marker-2", "HP-M-MARK2", "installed"),
    );
    wait_events(&db, &["m-marker-2"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        connectivity(&vft.api, &token, "hepro", "HP-M-GW2").await,
        "online"
    );

    // Nobody but vft reads.
    let reader = {
        let sub_bin = sub_bin.clone();
        let login = as_hepro.clone();
        let (user, pw) = login
            .user
            .map(|(u, p)| (u.to_owned(), p.to_owned()))
            .expect("user");
        std::thread::spawn(move || {
            subscribe_everything(&sub_bin, &Login::at(port).user(&user, &pw), 3)
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    published(
        &pub_bin,
        &as_hepro,
        gw2_events,
        &event("m-read", "HP-M-READ", "heartbeat"),
    );
    let (seen, _) = reader.join().expect("subscriber");
    assert!(seen.is_empty(), "a gateway user read {seen:?}");

    // The ingest's client id, asked for by a gateway user on the TLS listener (where
    // gateways connect): Mosquitto gives the client its username instead, so vft's session
    // is neither taken nor disconnected.
    let errors_before = ingest_connection_errors(&vft.api).await;
    let thief = {
        let sub_bin = sub_bin.clone();
        let ca = mosquitto.ca_file.clone();
        let tls_port = mosquitto.tls_port;
        std::thread::spawn(move || {
            subscribe_everything(
                &sub_bin,
                &Login::at(tls_port)
                    .user("hepro", "hepro-secret")
                    .tls(&ca)
                    .id("vft-ingest"),
                3,
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    published(
        &pub_bin,
        &as_hepro,
        gw2_events,
        &event("m-during", "HP-M-DURING", "installed"),
    );
    wait_events(&db, &["m-during"]).await;
    let (seen, stderr) = thief.join().expect("thief");
    assert!(seen.is_empty(), "the thief read {seen:?} ({stderr})");
    assert_eq!(
        ingest_connection_errors(&vft.api).await,
        errors_before,
        "vft's ingest lost its broker connection"
    );

    // The control, and the reason gateways belong on the TLS listener: on the loopback
    // listener, which keeps client ids as given (vft's replicas on the broker's host need
    // theirs), the same request does cut vft's ingest off.
    let (_seen, _) = subscribe_everything(&sub_bin, &as_hepro.clone().id("vft-ingest"), 1);
    eventually(
        "vft's ingest cut off by a client id taken on loopback",
        WAIT,
        || async { (ingest_connection_errors(&vft.api).await > errors_before).then_some(()) },
    )
    .await;
    drop(vft);
}

/// A gauge or counter from `/metrics` (0 when absent).
async fn gauge(api: &str, name: &str) -> f64 {
    let text = get(&format!("{api}/metrics"), None)
        .await
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `vft_ingest_connection_errors_total` (0 when never counted).
async fn ingest_connection_errors(api: &str) -> u64 {
    let text = get(&format!("{api}/metrics"), None)
        .await
        .text()
        .await
        .expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("vft_ingest_connection_errors_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vft_reads_mosquitto_over_tls() {
    let Some((pub_bin, _)) = clients() else {
        return;
    };
    // Every packet in Mosquitto's log, and ingest's own account in vft's, both shown if the
    // test fails: CI once saw neither event stored in 60 s with no warning from vft.
    let Some(mosquitto) =
        Mosquitto::start_with_users(&[("log_type", "all")], &[("hepro", "hepro-secret")])
    else {
        return;
    };
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let cwd = scratch.dir.path();
    let (user, password) = mosquitto.broker.credentials.clone().expect("vft's user");
    let url = format!("mqtts://{user}:{password}@127.0.0.1:{}", mosquitto.tls_port);
    let ca = mosquitto.ca_file.display().to_string();
    let log = cwd.join("trusted.log");
    let (vft, _) = spawn_vft_logged(
        "serve",
        &db,
        cwd,
        &["--mqtt-url", &url],
        &[
            ("VFT_MQTT__CA_FILE", ca.as_str()),
            ("RUST_LOG", "warn,vft_ingest=debug"),
        ],
        &log,
    );
    let _shown = ShownOnPanic(log);
    wait_ready(&vft.api).await;
    let hepro = Login::at(mosquitto.broker.port).user("hepro", "hepro-secret");
    published(
        &pub_bin,
        &hepro,
        "vft/v1/hepro/gw-1/events",
        &event("over-tls-1", "HP-OT-1", "installed"),
    );
    let hepro_tls = Login::at(mosquitto.tls_port)
        .user("hepro", "hepro-secret")
        .tls(&mosquitto.ca_file);
    published(
        &pub_bin,
        &hepro_tls,
        "vft/v1/hepro/gw-1/events",
        &event("over-tls-2", "HP-OT-2", "installed"),
    );
    wait_events(&db, &["over-tls-1", "over-tls-2"]).await;
    drop(vft);

    // Without the broker's CA (the system's roots do not hold it), vft does not connect.
    let log = cwd.join("untrusted.log");
    let (vft, _) = spawn_vft_logged(
        "serve",
        &db,
        cwd,
        &["--mqtt-url", &url],
        &[("RUST_LOG", "warn")],
        &log,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        assert_ne!(
            get(&format!("{}/readyz", vft.api), None).await.status(),
            200,
            "ready against a broker it cannot verify"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(vft);
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("broker connection lost") && logged.to_lowercase().contains("certificate"),
        "{logged}"
    );
}

/// VmRSS of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The bound README.md states: the payload bytes the embedded listener holds stay under
/// connections × (embedded_max_inflight_bytes + embedded_max_payload_bytes), and vft's resident
/// memory grows by at most that plus half a MiB per message in flight (the batch being parsed
/// and stored), run as the shipped systemd unit runs it (MALLOC_MMAP_THRESHOLD_). Before the
/// listener kept its own window, this load grew vft by 2.6 GiB: ntex-mqtt 8.2's in-flight
/// limits let a PUBLISH that follows another through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_abusive_connections_stay_under_the_memory_bound() {
    const CONNECTIONS: usize = 200;
    const PAYLOAD: usize = 1024 * 1024;
    const INFLIGHT_BYTES: usize = 512 * 1024;
    let scratch = Scratch::new();
    let db = scratch.database_url();
    let cwd = scratch.dir.path();
    let (payload_s, inflight_s) = (PAYLOAD.to_string(), INFLIGHT_BYTES.to_string());
    let env = [
        ("VFT_MQTT__ALLOW_ANONYMOUS", "false"),
        ("VFT_MQTT__EMBEDDED_MAX_CONNECTIONS", "250"),
        ("VFT_MQTT__EMBEDDED_MAX_INFLIGHT", "16"),
        ("VFT_MQTT__EMBEDDED_MAX_INFLIGHT_BYTES", inflight_s.as_str()),
        ("VFT_MQTT__EMBEDDED_MAX_PAYLOAD_BYTES", payload_s.as_str()),
        // As deploy/systemd/vft.service runs it.
        ("MALLOC_MMAP_THRESHOLD_", "262144"),
    ];
    // MEMORY_TEST_TRACE=1: the listener's connections logged, its state printed twice a second.
    let mut env = env.to_vec();
    if std::env::var_os("MEMORY_TEST_TRACE").is_some() {
        env.push(("RUST_LOG", "vft_ingest::listener=debug,warn"));
    }
    let (vft, broker) = spawn_vft("serve", &db, cwd, None, &[], &env);
    wait_ready(&vft.api).await;
    let (user, password) = credential(&db, cwd, &["--vendor", "hepro"]);
    let pid = vft.pid();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = rss(pid);
    let bound = (CONNECTIONS * (INFLIGHT_BYTES + PAYLOAD)) as u64;
    // A 1 MiB payload fills a 512 KiB window alone: one message in flight per connection.
    let resident_bound = bound + (CONNECTIONS * 512 * 1024) as u64;

    let broker = BrokerUnderTest {
        port: broker.port,
        credentials: Some((user, password)),
    };
    let stop = Instant::now() + Duration::from_secs(15);
    let mut tasks = Vec::new();
    for i in 0..CONNECTIONS {
        let broker = broker.clone();
        tasks.push(tokio::spawn(async move {
            let mut p = Publisher::connect_with_inflight(&broker, &format!("abuser-{i}"), 16).await;
            let mut n = 0u32;
            while Instant::now() < stop {
                // Distinct bytes each time: dead letters are kept once per content.
                let mut body = vec![b'x'; PAYLOAD];
                body[..8].copy_from_slice(&(i as u32).to_le_bytes().repeat(2));
                body[8..12].copy_from_slice(&n.to_le_bytes());
                n += 1;
                if !p
                    .try_publish(&format!("vft/v1/hepro/abuser-{i}/events"), body)
                    .await
                {
                    break;
                }
                // Keep about 16 queued: the listener decides how many it takes.
                while p.acked().len() + 16 < n as usize && Instant::now() < stop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let acked = p.acked().len();
            p.disconnect().await;
            acked
        }));
    }
    let mut peak = base;
    let mut held_peak = 0f64;
    let mut next_scrape = Instant::now();
    while Instant::now() < stop {
        peak = peak.max(rss(pid));
        if Instant::now() >= next_scrape {
            next_scrape = Instant::now() + Duration::from_millis(500);
            let held = gauge(&vft.api, "vft_listener_inflight_bytes").await;
            held_peak = held_peak.max(held);
            if std::env::var_os("MEMORY_TEST_TRACE").is_some() {
                eprintln!(
                    "trace: held {:.0} MiB, publishes {}, stored messages {}, connections {}, rss {} MiB",
                    held / 1048576.0,
                    gauge(&vft.api, "vft_listener_publishes_total").await,
                    gauge(&vft.api, "vft_ingest_messages_total").await,
                    gauge(&vft.api, "vft_listener_connections").await,
                    rss(pid) / 1048576
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "memory bound: payload bytes waiting for their commit peaked at {:.0} MiB",
        held_peak / (1024.0 * 1024.0)
    );
    let mut acked = 0;
    for t in tasks {
        acked += t.await.expect("publisher");
    }
    peak = peak.max(rss(pid));
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "memory bound: {CONNECTIONS} connections × ({} KiB in flight + {} KiB payload) = {:.0} MiB of payload (resident: at most {:.0} MiB more) over an idle {:.0} MiB; peak {:.0} MiB (+{:.0} MiB) with {acked} payloads of 1 MiB acknowledged",
        INFLIGHT_BYTES / 1024,
        PAYLOAD / 1024,
        mib(bound),
        mib(resident_bound),
        mib(base),
        mib(peak),
        mib(peak.saturating_sub(base)),
    );
    // The load was real: the windows filled (how many were stored depends on how fast this
    // build masks and stores 1 MiB dead letters; a debug build is slow at it).
    assert!(
        held_peak >= (CONNECTIONS * PAYLOAD / 2) as f64,
        "the windows never filled ({:.0} MiB held at most)",
        mib(held_peak as u64)
    );
    assert!(
        held_peak <= bound as f64,
        "the listener held {:.0} MiB of payload, above {:.0} MiB",
        mib(held_peak as u64),
        mib(bound)
    );
    assert!(
        peak.saturating_sub(base) <= resident_bound,
        "RSS grew by {:.0} MiB, above the stated bound of {:.0} MiB",
        mib(peak.saturating_sub(base)),
        mib(resident_bound)
    );
    drop(vft);
}
