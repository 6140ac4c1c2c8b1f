//! The shipped example adapters (config/adapters/*.example.*) map their example payloads to events
//! the canonical parser accepts, and a third vendor works from configuration alone.

use std::path::PathBuf;
use vft_domain::adapter::{AdapterConfig, MappingError};
use vft_domain::{
    Event, EventTopic, EventType, Municipality, MunicipalityCode, ParsedItem, Registry,
    TechnologyKind, parse_payload,
};

fn hallingdal() -> Registry {
    Registry::new(
        ["3320", "3322", "3324", "3326", "3328", "3330"].map(|c| Municipality {
            code: MunicipalityCode::parse(c).expect("code"),
            name: c.into(),
            population: 1,
        }),
    )
    .expect("registry")
}

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/adapters")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn adapter(toml_text: &str) -> AdapterConfig {
    let adapter: AdapterConfig = toml::from_str(toml_text).expect("adapter TOML");
    adapter.validate().expect("valid adapter");
    adapter
}

/// What ingest does: topic -> adapter -> map -> canonical parser. Panics on any dead letter.
fn ingest(adapter: &AdapterConfig, topic: &str, payload: &[u8]) -> Vec<Event> {
    let gateway = adapter.matches(topic).expect("topic matches");
    let topic = EventTopic {
        vendor: adapter.vendor.clone(),
        gateway,
    };
    adapter
        .map(payload)
        .into_iter()
        .map(|mapped| {
            let canonical = mapped.unwrap_or_else(|(raw, e)| {
                panic!("mapping failed: {e} in {}", String::from_utf8_lossy(&raw))
            });
            let parsed = parse_payload(
                Ok(&topic),
                canonical.to_string().as_bytes(),
                &hallingdal(),
                1 << 20,
            );
            match <[ParsedItem; 1]>::try_from(parsed) {
                Ok([ParsedItem::Event(e)]) => *e,
                other => panic!("not a valid event: {other:?} from {canonical}"),
            }
        })
        .collect()
}

fn utc(e: &Event) -> String {
    e.ts_utc().to_rfc3339()
}

#[test]
fn hepro_example_maps_to_valid_events() {
    let hepro = adapter(&example("hepro.example.toml"));
    let events = ingest(
        &hepro,
        "hepro/HG-BASE-0042/alarms",
        example("hepro.example.json").as_bytes(),
    );
    let types: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
    use EventType::*;
    assert_eq!(
        types,
        [
            Installed,
            Heartbeat,
            Alarm,
            AlarmReceived,
            AlarmAcknowledged,
            AlarmClosed,
            Installed,
            Decommissioned
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.vendor.as_str() == "hepro" && e.gateway.as_str() == "HG-BASE-0042")
    );
    let install = &events[0];
    assert_eq!(
        install.device.as_str(),
        "HP4711-0042",
        "trimmed, uppercased"
    );
    assert_eq!(install.kind, Some(TechnologyKind::SafetyAlarm));
    assert_eq!(install.municipality.as_str(), "3324");
    assert_eq!(
        install.recipient.as_ref().map(|r| r.as_str()),
        Some("gol-rec-0193")
    );
    assert_eq!(events[1].battery, Some(87));
    assert_eq!(utc(&events[1]), "2025-06-30T21:00:00+00:00");
    let alarm = &events[2];
    assert_eq!(alarm.cause.map(|c| c.id()), Some("fall"));
    assert!(
        events[2..6]
            .iter()
            .all(|e| e.alarm.as_ref().map(|a| a.as_str()) == Some("HP-ALM-88121"))
    );
    assert_eq!((events[4].ts - alarm.ts).num_seconds(), 33, "response time");
    assert_eq!(events[5].outcome.map(|o| o.id()), Some("help_dispatched"));
    let smoke = &events[6];
    assert_eq!(smoke.kind, Some(TechnologyKind::SmokeDetector));
    assert_eq!(
        smoke.replaces.as_ref().map(|d| d.as_str()),
        Some("HP5520-0001")
    );
    assert_eq!(events[7].device.as_str(), "HP5520-0001");
    assert_eq!(
        events[7].reason,
        Some(vft_domain::DecommissionReason::Replaced),
        "the removal code through the value map"
    );
    assert_eq!(smoke.ts.to_rfc3339(), "2025-06-30T23:59:00+02:00");
    assert_eq!(utc(smoke), "2025-06-30T21:59:00+00:00");
}

#[test]
fn atea_example_maps_to_valid_events() {
    let atea = adapter(&example("atea.example.toml"));
    let events = ingest(
        &atea,
        "atea/telecare/hub-al-17/events",
        example("atea.example.json").as_bytes(),
    );
    let types: Vec<EventType> = events.iter().map(|e| e.event_type).collect();
    use EventType::*;
    assert_eq!(
        types,
        [
            Installed,
            Heartbeat,
            Alarm,
            AlarmReceived,
            AlarmAcknowledged,
            AlarmClosed,
            Installed
        ]
    );
    assert!(events.iter().all(|e| e.vendor.as_str() == "atea"));
    let install = &events[0];
    assert_eq!(
        install.device.as_str(),
        "AT77310009",
        "prefix, spaces and dashes gone"
    );
    assert_eq!(
        install.municipality.as_str(),
        "3328",
        "numeric municipality"
    );
    assert_eq!(install.kind, Some(TechnologyKind::SafetyAlarm));
    // Oslo local time in summer: +02:00.
    assert_eq!(install.ts.to_rfc3339(), "2025-06-30T23:59:00+02:00");
    assert_eq!(utc(install), "2025-06-30T21:59:00+00:00");
    assert_eq!(install.battery, None, "no measurements");
    let heartbeat = &events[1];
    assert_eq!(heartbeat.device.as_str(), "AT77310011");
    assert_eq!(heartbeat.battery, Some(64));
    assert_eq!(heartbeat.municipality.as_str(), "3326");
    let alarm = &events[2];
    assert_eq!(alarm.cause.map(|c| c.id()), Some("button"));
    assert_eq!(
        alarm.recipient.as_ref().map(|r| r.as_str()),
        Some("he-0112")
    );
    assert!(
        events[2..6]
            .iter()
            .all(|e| e.alarm.as_ref().map(|a| a.as_str()) == Some("AT-2025-0630-0147"))
    );
    assert_eq!((events[4].ts - alarm.ts).num_seconds(), 36, "response time");
    assert_eq!(events[5].outcome.map(|o| o.id()), Some("resolved_remotely"));
    // Winter: +01:00.
    let dispenser = &events[6];
    assert_eq!(dispenser.kind, Some(TechnologyKind::MedicationSupport));
    assert_eq!(dispenser.ts.to_rfc3339(), "2025-01-15T10:30:00+01:00");
    assert_eq!(
        dispenser.replaces.as_ref().map(|d| d.as_str()),
        Some("AT91000001")
    );
}

#[test]
fn example_adapters_do_not_claim_each_others_topics() {
    let hepro = adapter(&example("hepro.example.toml"));
    let atea = adapter(&example("atea.example.toml"));
    assert!(hepro.matches("atea/telecare/hub-1/events").is_none());
    assert!(atea.matches("hepro/hub-1/alarms").is_none());
    assert!(atea.matches("vft/v1/atea/hub-1/events").is_none());
}

#[test]
fn an_unknown_vendor_code_is_a_mapping_error_naming_the_field() {
    let atea = adapter(&example("atea.example.toml"));
    let payload = example("atea.example.json").replace("KEEPALIVE", "SELF_TEST");
    let out = atea.map(payload.as_bytes());
    assert_eq!(out.len(), 7, "the other events still map");
    let Err((raw, MappingError::Field { field, why })) = &out[1] else {
        panic!("{:?}", out[1])
    };
    assert_eq!(field, "type");
    assert!(
        why.contains("SELF_TEST") && why.contains("eventCode"),
        "{why}"
    );
    assert!(String::from_utf8_lossy(raw).contains("4f1d0c2a-0002"));
    assert!(out.iter().filter(|r| r.is_ok()).count() == 6);
}

/// A third vendor added purely by configuration: smoke detector hubs that send unix
/// milliseconds, numeric type codes and a fixed technology type.
const THIRD: &str = r#"
vendor = "roykvakt"
topic = "rv/+/hub/+/up"
gateway_segment = 3
events_path = "records"

[fields]
id = "seq"
ts = "t"
municipality = "knr"
device = "mac"
type = "c"
battery = "bat"
cause = "why"
alarm = "seq"

[constants]
kind = "smoke_detector"

[value_maps.type]
1 = "installed"
2 = "heartbeat"
9 = "alarm"

[value_maps.cause]
S = "smoke"
T = "technical"

[time]
format = "unix_millis"
zone = "Europe/Oslo"

[device_id]
uppercase = true
remove = ":"
"#;

#[test]
fn a_third_vendor_needs_only_configuration() {
    let third = adapter(THIRD);
    let payload = br#"{"fw": "1.0", "records": [
        {"seq": 7001, "t": 1751320740000, "knr": 3330, "mac": "a4:cf:12:00:be:ef", "c": 1},
        {"seq": 7002, "t": "1751321000000", "knr": 3330, "mac": "a4:cf:12:00:be:ef", "c": 2, "bat": "91"},
        {"seq": 7003, "t": 1751321100500, "knr": 3330, "mac": "a4:cf:12:00:be:ef", "c": 9, "why": "S"}
    ]}"#;
    let events = ingest(&third, "rv/hallingdal/hub/hub-hol-3/up", payload);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.vendor.as_str() == "roykvakt"
        && e.gateway.as_str() == "hub-hol-3"
        && e.device.as_str() == "A4CF1200BEEF"
        && e.kind == Some(TechnologyKind::SmokeDetector)
        && e.municipality.as_str() == "3330"));
    assert_eq!(events[0].event_type, EventType::Installed);
    assert_eq!(events[0].ts.to_rfc3339(), "2025-06-30T23:59:00+02:00");
    assert_eq!(events[1].battery, Some(91));
    assert_eq!(events[2].event_type, EventType::Alarm);
    assert_eq!(events[2].alarm.as_ref().map(|a| a.as_str()), Some("7003"));
    assert_eq!(utc(&events[2]), "2025-06-30T22:05:00.500+00:00");
}
