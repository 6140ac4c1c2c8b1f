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
        let [vendor, gateway, "events"] = parts.as_slice() else {
            return Err(err(
                "expected exactly {vendor}/{gateway}/events after the prefix".into(),
            ));
        };
        Ok(Self {
            vendor: VendorId::parse(vendor).map_err(|e| err(e.to_string()))?,
            gateway: GatewayId::parse(gateway).map_err(|e| err(e.to_string()))?,
        })
    }

    pub fn render(&self, prefix: &str) -> String {
        format!("{prefix}/{}/{}/events", self.vendor, self.gateway)
    }
}

/// The subscription filter for all event topics under `prefix`, optionally in a shared group.
pub fn subscription_filter(prefix: &str, shared_group: Option<&str>) -> String {
    match shared_group {
        Some(group) => format!("$share/{group}/{prefix}/+/+/events"),
        None => format!("{prefix}/+/+/events"),
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
        assert_eq!(subscription_filter("vft/v1", None), "vft/v1/+/+/events");
        assert_eq!(
            subscription_filter("vft/v1", Some("ingest")),
            "$share/ingest/vft/v1/+/+/events"
        );
    }
}
