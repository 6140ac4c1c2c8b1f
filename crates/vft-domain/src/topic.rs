//! The event topic: `{prefix}/{vendor}/{gateway}/events` (prefix `vft/v1` by default).

use crate::ids::{GatewayId, VendorId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTopic {
    pub vendor: VendorId,
    pub gateway: GatewayId,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic {topic:?} is not {prefix}/{{vendor}}/{{gateway}}/events: {why}")]
pub struct TopicError {
    pub topic: String,
    pub prefix: String,
    pub why: String,
}

impl EventTopic {
    /// Parses a topic received on a subscription. The shared-subscription prefix
    /// (`$share/group/`) never appears on received messages, so it is not handled here.
    pub fn parse(prefix: &str, topic: &str) -> Result<Self, TopicError> {
        match Self::parse_any(prefix, topic)? {
            (t, TopicKind::Events) => Ok(t),
            (_, TopicKind::Status) => Err(TopicError {
                topic: topic.chars().take(200).collect(),
                prefix: prefix.to_owned(),
                why: "a status topic, not an events topic".into(),
            }),
        }
    }

    /// Parses `{prefix}/{vendor}/{gateway}/events` or `…/status`.
    pub fn parse_any(prefix: &str, topic: &str) -> Result<(Self, TopicKind), TopicError> {
        let err = |why: String| TopicError {
            topic: topic.chars().take(200).collect(),
            prefix: prefix.to_owned(),
            why,
        };
        let rest = topic
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| err("wrong prefix".into()))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let (vendor, gateway, kind) = match parts.as_slice() {
            [vendor, gateway, "events"] => (vendor, gateway, TopicKind::Events),
            [vendor, gateway, "status"] => (vendor, gateway, TopicKind::Status),
            _ => {
                return Err(err(
                    "expected exactly {vendor}/{gateway}/events (or /status) after the prefix"
                        .into(),
                ));
            }
        };
        let topic = Self {
            vendor: VendorId::parse(vendor).map_err(|e| err(e.to_string()))?,
            gateway: GatewayId::parse(gateway).map_err(|e| err(e.to_string()))?,
        };
        Ok((topic, kind))
    }

    pub fn render(&self, prefix: &str) -> String {
        format!("{prefix}/{}/{}/events", self.vendor, self.gateway)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    Events,
    /// A gateway's birth message / last will: payload `online` or `offline`.
    Status,
}

/// The subscription filter for all topics of one kind under `prefix`, optionally in a shared
/// group.
pub fn subscription_filter(prefix: &str, kind: TopicKind, shared_group: Option<&str>) -> String {
    let leaf = match kind {
        TopicKind::Events => "events",
        TopicKind::Status => "status",
    };
    match shared_group {
        Some(group) => format!("$share/{group}/{prefix}/+/+/{leaf}"),
        None => format!("{prefix}/+/+/{leaf}"),
    }
}

/// A gateway status payload: `online` or `offline` (surrounding whitespace and case ignored).
pub fn parse_status(payload: &[u8]) -> Option<bool> {
    match std::str::from_utf8(payload)
        .ok()?
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "online" => Some(true),
        "offline" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let t = EventTopic::parse("vft/v1", "vft/v1/hepro/gw-17/events").expect("valid");
        assert_eq!(t.vendor.as_str(), "hepro");
        assert_eq!(t.gateway.as_str(), "gw-17");
        assert_eq!(t.render("vft/v1"), "vft/v1/hepro/gw-17/events");
    }

    #[test]
    fn rejects_wrong_shapes() {
        for bad in [
            "vft/v2/hepro/gw/events",
            "vft/v1/hepro/gw/status",
            "vft/v1/Hepro/gw/events",
            "vft/v1/hepro/g w/events",
            "vft/v1/hepro/gw/events/x",
            "vft/v1hepro/gw/events",
        ] {
            assert!(EventTopic::parse("vft/v1", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters() {
        assert_eq!(
            subscription_filter("vft/v1", TopicKind::Events, None),
            "vft/v1/+/+/events"
        );
        assert_eq!(
            subscription_filter("vft/v1", TopicKind::Status, Some("ingest")),
            "$share/ingest/vft/v1/+/+/status"
        );
    }

    #[test]
    fn status_topics_and_payloads() {
        let (t, kind) = EventTopic::parse_any("vft/v1", "vft/v1/hepro/gw-1/status").expect("valid");
        assert_eq!((t.gateway.as_str(), kind), ("gw-1", TopicKind::Status));
        assert!(EventTopic::parse("vft/v1", "vft/v1/hepro/gw-1/status").is_err());
        assert_eq!(parse_status(b" Offline\n"), Some(false));
        assert_eq!(parse_status(b"online"), Some(true));
        assert_eq!(parse_status(b"gone"), None);
    }
}
