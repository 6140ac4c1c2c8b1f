//! End to end: vendors' own formats through their declared adapters, over a real broker.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::*;
use vft_domain::adapter::AdapterConfig;
use vft_domain::{EventTopic, ParsedItem, Registry, parse_payload};

const WAIT: Duration = Duration::from_secs(60);

/// A third vendor, added purely by configuration.
const ACME: &str = r#"
[[adapters]]
vendor = "acme"
topic = "acme/v2/+/telemetry"
gateway_segment = 2
events_path = "items"
[adapters.fields]
id = "uid"
ts = "at"
municipality = "kommune"
device = "dev"
type = "what"
kind = "tech"
[adapters.value_maps.type]
ON = "installed"
PING = "heartbeat"
[adapters.value_maps.kind]
SMOKE = "smoke_detector"
[adapters.time]
format = "unix_seconds"
zone = "Europe/Oslo"
[adapters.device_id]
trim = true
uppercase = true
"#;

fn example(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join("config/adapters").join(name))
        .expect("example file")
}

fn registry() -> Registry {
    let text =
        std::fs::read_to_string(workspace_root().join("config/municipalities.csv")).expect("csv");
    Registry::new(vft_domain::municipality::parse_csv(&text).expect("csv")).expect("registry")
}

/// What the adapter and the contract make of a message: the events vft must store.
fn expected_devices(
    adapter: &AdapterConfig,
    topic: &str,
    payload: &[u8],
) -> Vec<(String, String, String)> {
    let gateway = adapter.matches(topic).expect("topic matches");
    let t = EventTopic {
        vendor: adapter.vendor.clone(),
        gateway,
    };
    let mut out = Vec::new();
    for mapped in adapter.map(payload) {
        let canonical = mapped.expect("example maps");
        for item in parse_payload(
            Ok(&t),
            canonical.to_string().as_bytes(),
            &registry(),
            1 << 20,
        ) {
            let ParsedItem::Event(e) = item else {
                panic!("example event rejected: {item:?}")
            };
            out.push((e.vendor.to_string(), e.device.to_string(), e.id.to_string()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_example_vendors_and_a_configured_third_reach_the_store_and_bad_mappings_are_dead_letters()
 {
    let scratch = Scratch::new();
    let adapters_dir = workspace_root().join("config/adapters");
    let config = format!(
        "adapter_files = [{:?}, {:?}]\n{ACME}",
        adapters_dir
            .join("hepro.example.toml")
            .display()
            .to_string(),
        adapters_dir.join("atea.example.toml").display().to_string(),
    );
    let config_path = scratch.dir.path().join("vft.toml");
    std::fs::write(&config_path, config).expect("write config");
    let config_arg = config_path.display().to_string();
    let db = scratch.database_url();
    let (vft, broker) = spawn_vft(
        "serve",
        &db,
        scratch.dir.path(),
        None,
        &["--config", &config_arg],
        &[],
    );
    let token = create_token(
        &db,
        scratch.dir.path(),
        &["--config", &config_arg, "--role", "coordinator"],
    );
    wait_ready(&vft.api).await;

    let hepro: AdapterConfig =
        toml::from_str(&example("hepro.example.toml")).expect("hepro adapter");
    let atea: AdapterConfig = toml::from_str(&example("atea.example.toml")).expect("atea adapter");
    let acme: AdapterConfig = {
        let table: toml::Table = toml::from_str(ACME).expect("acme");
        table["adapters"].as_array().expect("array")[0]
            .clone()
            .try_into()
            .expect("acme adapter")
    };
    let acme_payload = json!({ "items": [
        { "uid": "a-1", "at": 1751320800, "kommune": 3330, "dev": " sd-77 ", "what": "ON", "tech": "SMOKE" },
        { "uid": "a-2", "at": 1751324400, "kommune": 3330, "dev": "sd-77", "what": "PING" },
    ]})
    .to_string();
    let messages = [
        (
            &hepro,
            "hepro/base-0042/alarms".to_owned(),
            example("hepro.example.json"),
        ),
        (
            &atea,
            "atea/telecare/hub-9/events".to_owned(),
            example("atea.example.json"),
        ),
        (&acme, "acme/v2/site-1/telemetry".to_owned(), acme_payload),
    ];
    let mut expected = Vec::new();
    for (adapter, topic, payload) in &messages {
        expected.extend(expected_devices(adapter, topic, payload.as_bytes()));
    }
    assert!(expected.iter().any(|(v, _, _)| v == "acme"));

    let mut publisher = Publisher::connect(&broker, "vendors").await;
    for (_, topic, payload) in &messages {
        publisher.publish(topic, payload.clone()).await;
    }
    // A message whose event type Hepro's adapter does not know: a dead letter naming the field.
    let bad = json!([{ "eventId": "x-1", "timestamp": "2025-06-01T10:00:00+02:00", "municipalityNo": "3328",
                       "unit": { "serial": "HP-1" }, "eventType": "EXPLODED" }]);
    publisher
        .publish("hepro/base-0042/alarms", bad.to_string())
        .await;
    publisher.wait_all_acked(WAIT).await;
    publisher.disconnect().await;

    let store = vft_store::open(&db, &Default::default())
        .await
        .expect("store");
    eventually("every mapped event stored", WAIT, || async {
        (store.event_count().await.ok()? >= expected.len() as u64).then_some(())
    })
    .await;
    assert_eq!(
        store.event_count().await.expect("count"),
        expected.len() as u64
    );
    // Every device the adapters named is in the inventory under its vendor, ids normalised.
    let devices = get_json(&format!("{}/api/v1/devices?limit=1000", vft.api), &token).await;
    let listed: std::collections::BTreeSet<(String, String)> = devices["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|d| {
            (
                d["vendor"].as_str().expect("v").to_owned(),
                d["device"].as_str().expect("d").to_owned(),
            )
        })
        .collect();
    for (vendor, device, _) in &expected {
        assert!(
            listed.contains(&(vendor.clone(), device.clone())),
            "{vendor}/{device} missing from {listed:?}"
        );
    }
    assert!(
        listed.contains(&("acme".to_owned(), "SD-77".to_owned())),
        "trimmed and upper-cased by configuration"
    );
    let letters = get_json(&format!("{}/api/v1/dead-letters", vft.api), &token).await;
    let letter = &letters["items"][0];
    assert_eq!(letter["reason_code"], "mapping_failed", "{letters}");
    assert!(
        letter["reason"]
            .as_str()
            .expect("reason")
            .contains("`type`"),
        "{letter}"
    );
    assert_eq!(letter["topic"], "hepro/base-0042/alarms");
    let _: Value = letters;
}

#[test]
fn an_adapter_under_the_canonical_prefix_or_with_a_bad_field_is_refused_at_start() {
    let scratch = Scratch::new();
    let path = scratch.dir.path().join("bad.toml");
    std::fs::write(
        &path,
        ACME.replace("acme/v2/+/telemetry", "vft/v1/+/telemetry"),
    )
    .expect("write");
    let err = vft_cli(
        &["print-config", "--config", &path.display().to_string()],
        scratch.dir.path(),
    )
    .expect_err("refused");
    assert!(err.contains("canonical prefix"), "{err}");
    std::fs::write(
        &path,
        ACME.replace("what = \"ON\"", "wat = \"ON\"")
            .replace("type = \"what\"", "tyype = \"what\""),
    )
    .expect("write");
    let err = vft_cli(
        &["print-config", "--config", &path.display().to_string()],
        scratch.dir.path(),
    )
    .expect_err("refused");
    assert!(err.contains("tyype"), "{err}");
}
