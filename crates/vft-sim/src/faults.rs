//! A handful of messages that break Contract 1 the way real gateways and people do: a batch cut
//! off mid-write, a unit still configured with its municipality's number from before the 2024
//! county split, a national identity number typed into the recipient field, a technology type
//! the contract does not have and an event type the firmware invented. Each message carries one
//! event and nothing valid, so ingest keeps each as a dead letter and no figure changes.

use crate::generate::{VENDORS, figured_months};
use crate::{Message, Plan, SimError};
use chrono::{Duration, SecondsFormat};
use chrono_tz::Europe::Oslo;
use serde_json::json;
use vft_domain::nin::is_national_identity_number;

/// One deliberately bad message and the dead-letter reason code ingest gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMessage {
    pub message: Message,
    /// `DeadLetterReason::code()` of the dead letter it becomes.
    pub reason_code: &'static str,
    /// What happened, for people reading the demo.
    pub story: &'static str,
}

/// Municipality numbers of Hallingdal in Viken (2020–2023): a unit configured then and never
/// updated sends one of these. Any not configured in the plan will do.
const OLD_NUMBERS: [&str; 6] = ["3044", "3043", "3041", "3042", "3040", "3039"];

/// The bad messages, on the simulated gateways' topics, dated in the last simulated month.
/// Deterministic for a plan.
pub fn bad_messages(plan: &Plan) -> Result<Vec<BadMessage>, SimError> {
    let months = figured_months(&plan.table)?;
    let month = months[months.len() - 1];
    let at = |day: i64, secs: i64| {
        (month.start() + Duration::days(day) + Duration::seconds(secs))
            .with_timezone(&Oslo)
            .to_rfc3339_opts(SecondsFormat::Secs, false)
    };
    let codes: Vec<&str> = plan
        .municipalities
        .iter()
        .map(|m| m.code.as_str())
        .collect();
    let pick = |n: usize| codes[n % codes.len()];
    let (hepro, atea) = (VENDORS[0].0, VENDORS[1].0);
    let topic = |vendor: &str, municipality: &str| {
        format!(
            "{}/{vendor}/{vendor}-{municipality}-gw1/events",
            plan.topic_prefix
        )
    };
    let unknown = OLD_NUMBERS
        .into_iter()
        .find(|c| !codes.contains(c))
        .ok_or_else(|| SimError::Plan("no unconfigured municipality number left".into()))?;
    let nin = synthetic_nin()
        .ok_or_else(|| SimError::Plan("no synthetic identity number found".into()))?;

    let mut out = Vec::new();
    let mut add = |topic: String, payload: Vec<u8>, reason_code, story| {
        out.push(BadMessage {
            message: Message {
                topic,
                payload,
                events: 1,
            },
            reason_code,
            story,
        });
    };
    let truncated = format!(
        r#"[{{"id":"sim-fault-1","ts":"{}","municipality":"{}","device":"HP-SA-0"#,
        at(3, 2 * 3600 + 17 * 60),
        pick(2)
    );
    add(
        topic(hepro, pick(2)),
        truncated.into_bytes(),
        "malformed_json",
        "a gateway lost power while writing a batch",
    );
    add(
        topic(hepro, pick(5)),
        json!({
            "id": "sim-fault-2", "ts": at(6, 10 * 3600), "municipality": unknown,
            "device": "HP-SA-090210", "type": "heartbeat", "battery": 81,
        })
        .to_string()
        .into_bytes(),
        "unknown_municipality",
        "a unit still configured with its municipality's number from before 2024",
    );
    add(
        topic(atea, pick(4)),
        json!({
            "id": "sim-fault-3", "ts": at(9, 13 * 3600 + 5 * 60), "municipality": pick(4),
            "device": "AT-SA-090311", "type": "installed", "kind": "safety_alarm",
            "recipient": nin,
        })
        .to_string()
        .into_bytes(),
        "national_identity_number",
        "an installer typed the recipient's national identity number as the reference",
    );
    add(
        topic(atea, pick(5)),
        json!({
            "id": "sim-fault-4", "ts": at(12, 9 * 3600 + 40 * 60), "municipality": pick(5),
            "device": "AT-EP-090412", "type": "installed", "kind": "epilepsy_alarm",
        })
        .to_string()
        .into_bytes(),
        "invalid_field",
        "a product the contract has no technology type for (an epilepsy alarm)",
    );
    add(
        topic(hepro, pick(0)),
        json!({
            "id": "sim-fault-5", "ts": at(15, 22 * 3600 + 3 * 60), "municipality": pick(0),
            "device": "HP-DL-090513", "type": "tamper",
        })
        .to_string()
        .into_bytes(),
        "unknown_type",
        "new firmware reports an event type the contract does not have",
    );
    Ok(out)
}

/// A made-up number with valid check digits (born 1 January 1930), never a real person's
/// identity as such: it exists to be refused and masked.
fn synthetic_nin() -> Option<String> {
    (0..1000u32)
        .map(|tail| format!("010130{tail:03}"))
        .flat_map(|first9| (0..100u32).map(move |check| format!("{first9}{check:02}")))
        .find(|n| is_national_identity_number(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vft_domain::{EventTopic, ParsedItem, Registry, parse_payload};

    #[test]
    fn each_bad_message_is_one_dead_letter_with_its_reason_and_no_event() {
        let plan = Plan::hallingdal_2025();
        let registry = Registry::new(plan.municipalities.clone()).expect("registry");
        let bad = bad_messages(&plan).expect("bad messages");
        let mut codes: Vec<&str> = bad.iter().map(|b| b.reason_code).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), bad.len(), "one of each");
        for b in &bad {
            let topic = EventTopic::parse(&plan.topic_prefix, &b.message.topic).expect("topic");
            let items = parse_payload(Ok(&topic), &b.message.payload, &registry, 1 << 20);
            assert_eq!(items.len(), 1, "{}", b.story);
            match &items[0] {
                ParsedItem::Dead { reason, .. } => {
                    assert_eq!(reason.code(), b.reason_code, "{}: {reason}", b.story)
                }
                other => panic!("{}: not a dead letter: {other:?}", b.story),
            }
        }
        assert_eq!(bad_messages(&plan).expect("again"), bad);
    }
}
