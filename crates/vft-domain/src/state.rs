//! Current state of each device, folded from its events. Every part of the state is "the value
//! from the latest event of some kind" (or the earliest, for first install), so folding is
//! associative and commutative: any arrival order, any duplication, gives the same state. The
//! store applies the same merge in SQL when it upserts a batch's deltas.

use crate::event::{Cause, Event, EventType, Outcome};
use crate::ids::{
    AlarmRef, DeviceId, EventId, GatewayId, MunicipalityCode, RecipientRef, VendorId,
};
use crate::kind::TechnologyKind;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Order of a device's events of one sort: time, then lifecycle rank, then event id.
pub type EventKey = (DateTime<Utc>, i16, EventId);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleFact {
    pub key: EventKey,
    pub installed: bool,
    pub municipality: MunicipalityCode,
    pub gateway: GatewayId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallFact {
    pub key: EventKey,
    pub kind: TechnologyKind,
    pub recipient: Option<RecipientRef>,
    pub replaces: Option<DeviceId>,
}

/// Contact = any event the device itself sends (status, alarm, medication). Lifecycle events
/// come from the vendor's platform and say nothing about whether the device is reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactFact {
    pub key: EventKey,
    pub municipality: MunicipalityCode,
    pub gateway: GatewayId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDelta {
    pub vendor: VendorId,
    pub device: DeviceId,
    pub lifecycle: Option<LifecycleFact>,
    pub install: Option<InstallFact>,
    pub first_installed: Option<DateTime<Utc>>,
    pub contact: Option<ContactFact>,
    pub battery: Option<(EventKey, u8)>,
    pub last_fault: Option<DateTime<Utc>>,
    pub last_heartbeat: Option<DateTime<Utc>>,
}

fn later<T: Clone>(a: &mut Option<T>, b: &Option<T>, key: impl Fn(&T) -> &EventKey) {
    if let Some(b) = b
        && a.as_ref().is_none_or(|a| key(b) > key(a))
    {
        *a = Some(b.clone());
    }
}

fn max_ts(a: &mut Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) {
    *a = (*a).max(b);
}

impl DeviceDelta {
    fn empty(vendor: VendorId, device: DeviceId) -> Self {
        Self {
            vendor,
            device,
            lifecycle: None,
            install: None,
            first_installed: None,
            contact: None,
            battery: None,
            last_fault: None,
            last_heartbeat: None,
        }
    }

    pub fn from_event(e: &Event) -> Self {
        let mut d = Self::empty(e.vendor.clone(), e.device.clone());
        let key: EventKey = (
            e.ts_utc(),
            e.event_type.lifecycle_rank().unwrap_or(-1),
            e.id.clone(),
        );
        match e.event_type {
            EventType::Installed | EventType::Decommissioned => {
                d.lifecycle = Some(LifecycleFact {
                    key: key.clone(),
                    installed: e.event_type == EventType::Installed,
                    municipality: e.municipality.clone(),
                    gateway: e.gateway.clone(),
                });
                if let (EventType::Installed, Some(kind)) = (e.event_type, e.kind) {
                    d.install = Some(InstallFact {
                        key: key.clone(),
                        kind,
                        recipient: e.recipient.clone(),
                        replaces: e.replaces.clone(),
                    });
                    d.first_installed = Some(key.0);
                }
            }
            other => {
                d.contact = Some(ContactFact {
                    key: key.clone(),
                    municipality: e.municipality.clone(),
                    gateway: e.gateway.clone(),
                });
                if other == EventType::Fault {
                    d.last_fault = Some(key.0);
                }
                if other == EventType::Heartbeat {
                    d.last_heartbeat = Some(key.0);
                }
            }
        }
        if let Some(b) = e.battery {
            d.battery = Some((key, b));
        }
        d
    }

    /// Merges another delta of the same device. Associative and commutative.
    pub fn merge(&mut self, other: &DeviceDelta) {
        later(&mut self.lifecycle, &other.lifecycle, |f| &f.key);
        later(&mut self.install, &other.install, |f| &f.key);
        later(&mut self.contact, &other.contact, |f| &f.key);
        later(&mut self.battery, &other.battery, |(k, _)| k);
        self.first_installed = match (self.first_installed, other.first_installed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        max_ts(&mut self.last_fault, other.last_fault);
        max_ts(&mut self.last_heartbeat, other.last_heartbeat);
    }

    /// One delta per device of a batch.
    pub fn fold(events: &[Event]) -> Vec<DeviceDelta> {
        let mut by_device: BTreeMap<(VendorId, DeviceId), DeviceDelta> = BTreeMap::new();
        for e in events {
            let delta = Self::from_event(e);
            by_device
                .entry((e.vendor.clone(), e.device.clone()))
                .and_modify(|d| d.merge(&delta))
                .or_insert(delta);
        }
        by_device.into_values().collect()
    }
}

/// One alarm, merged from its response-centre events: the earliest time of each step, and the
/// device and place from its origin (the `alarm` event if present, else its earliest event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmDelta {
    pub vendor: VendorId,
    pub alarm: AlarmRef,
    /// (0 for the `alarm` event, 1 for others; ts; id): the smallest wins.
    pub origin: (i16, DateTime<Utc>, EventId),
    pub device: DeviceId,
    pub municipality: MunicipalityCode,
    pub kind: Option<TechnologyKind>,
    pub cause: Option<Cause>,
    pub triggered: Option<DateTime<Utc>>,
    pub received: Option<DateTime<Utc>>,
    pub acknowledged: Option<DateTime<Utc>>,
    pub closed: Option<(DateTime<Utc>, EventId, Option<Outcome>)>,
    /// Its events come from more than one municipality (then a municipality's own figures
    /// count it from its own events only, see `response`).
    pub several_municipalities: bool,
}

fn min_opt<T: Ord + Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.clone().min(b.clone())),
        (a, b) => a.clone().or_else(|| b.clone()),
    }
}

impl AlarmDelta {
    pub fn from_event(e: &Event) -> Option<Self> {
        let alarm = e.alarm.clone().filter(|_| e.event_type.is_alarm_event())?;
        let ts = e.ts_utc();
        let at = |t: EventType| (e.event_type == t).then_some(ts);
        Some(Self {
            vendor: e.vendor.clone(),
            alarm,
            origin: (
                i16::from(e.event_type != EventType::Alarm),
                ts,
                e.id.clone(),
            ),
            device: e.device.clone(),
            municipality: e.municipality.clone(),
            kind: e.kind,
            cause: e.cause,
            triggered: at(EventType::Alarm),
            received: at(EventType::AlarmReceived),
            acknowledged: at(EventType::AlarmAcknowledged),
            closed: at(EventType::AlarmClosed).map(|t| (t, e.id.clone(), e.outcome)),
            several_municipalities: false,
        })
    }

    /// Merges another delta of the same alarm. Associative and commutative.
    pub fn merge(&mut self, o: &AlarmDelta) {
        // Each side's municipality is one of its events' (all of them unless it already has
        // several): compared before the origin's place is taken.
        self.several_municipalities |=
            o.several_municipalities || self.municipality != o.municipality;
        if o.origin < self.origin {
            self.origin = o.origin.clone();
            self.device = o.device.clone();
            self.municipality = o.municipality.clone();
            self.kind = o.kind;
            self.cause = o.cause;
        }
        self.triggered = min_opt(&self.triggered, &o.triggered);
        self.received = min_opt(&self.received, &o.received);
        self.acknowledged = min_opt(&self.acknowledged, &o.acknowledged);
        self.closed = min_opt(&self.closed, &o.closed);
    }

    pub fn fold(events: &[Event]) -> Vec<AlarmDelta> {
        let mut fold = AlarmFold::default();
        for e in events {
            fold.add(e);
        }
        fold.finish()
    }
}

/// Alarms merged one event at a time, as [`AlarmDelta::fold`] merges a slice: for a read that
/// streams its events rather than holding them all.
#[derive(Debug, Default)]
pub struct AlarmFold(BTreeMap<(VendorId, AlarmRef), AlarmDelta>);

impl AlarmFold {
    /// Merges one event (anything but an alarm event with an alarm reference is ignored).
    pub fn add(&mut self, e: &Event) {
        if let Some(delta) = AlarmDelta::from_event(e) {
            self.0
                .entry((delta.vendor.clone(), delta.alarm.clone()))
                .and_modify(|d| d.merge(&delta))
                .or_insert(delta);
        }
    }

    /// The alarms, by vendor and alarm reference.
    pub fn finish(self) -> Vec<AlarmDelta> {
        self.0.into_values().collect()
    }
}

/// Whether a device can be reached now.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Connectivity {
    /// Contact within its timeout, and its gateway not reported offline since.
    Online,
    /// No contact within its timeout, or its gateway's last will said `offline` after the
    /// device's last contact.
    Offline,
    /// Never sent anything itself (only lifecycle events from the vendor's platform).
    NeverSeen,
}

impl Connectivity {
    pub fn id(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::NeverSeen => "never_seen",
        }
    }
    pub fn from_id(s: &str) -> Option<Self> {
        [Self::Online, Self::Offline, Self::NeverSeen]
            .into_iter()
            .find(|c| c.id() == s)
    }
}

/// Whether a device answers. The timeout is measured from its last contact's own time; a
/// gateway's last will is timed by vft's clock when it arrived, so it is compared with when
/// vft received that contact (`None`: unknown, the contact's own time stands in). A device
/// whose clock runs ahead thus cannot hide behind its gateway's will.
pub fn connectivity(
    last_contact: Option<DateTime<Utc>>,
    last_contact_received: Option<DateTime<Utc>>,
    timeout: Duration,
    gateway_offline_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Connectivity {
    let Some(last) = last_contact else {
        return Connectivity::NeverSeen;
    };
    let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    let silent_too_long = now.signed_duration_since(last) > timeout;
    let received = last_contact_received.unwrap_or(last);
    let gateway_down = gateway_offline_since.is_some_and(|since| since >= received);
    if silent_too_long || gateway_down {
        Connectivity::Offline
    } else {
        Connectivity::Online
    }
}

/// A fault is open while no heartbeat has come after it.
pub fn fault_open(
    last_fault: Option<DateTime<Utc>>,
    last_heartbeat: Option<DateTime<Utc>>,
) -> bool {
    match (last_fault, last_heartbeat) {
        (Some(f), Some(h)) => f > h,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(id: &str, ts: &str, t: EventType, battery: Option<u8>) -> Event {
        Event {
            vendor: VendorId::parse("hepro").expect("vendor"),
            gateway: GatewayId::parse(&format!("gw-{id}")).expect("gateway"),
            id: EventId::parse(id).expect("id"),
            ts: DateTime::parse_from_rfc3339(ts).expect("ts"),
            municipality: MunicipalityCode::parse(if id.len().is_multiple_of(2) {
                "3328"
            } else {
                "3330"
            })
            .expect("code"),
            device: DeviceId::parse("D1").expect("device"),
            event_type: t,
            kind: (t == EventType::Installed).then_some(TechnologyKind::SafetyAlarm),
            battery,
            alarm: None,
            cause: None,
            outcome: None,
            recipient: None,
            replaces: None,
            reason: None,
        }
    }

    #[test]
    fn state_takes_the_latest_of_each_sort() {
        let events = [
            event("a", "2025-01-01T10:00:00Z", EventType::Installed, None),
            event("bb", "2025-02-01T10:00:00Z", EventType::Heartbeat, Some(80)),
            event("c", "2025-02-02T10:00:00Z", EventType::Fault, None),
            event("dd", "2025-01-15T10:00:00Z", EventType::BatteryLow, Some(9)),
        ];
        let [d] = DeviceDelta::fold(&events).try_into().expect("one device");
        assert!(d.lifecycle.as_ref().is_some_and(|l| l.installed));
        assert_eq!(
            d.battery.map(|(_, b)| b),
            Some(80),
            "the latest reading, not the lowest"
        );
        assert_eq!(
            d.contact.map(|c| c.gateway.to_string()),
            Some("gw-c".into())
        );
        assert!(fault_open(d.last_fault, d.last_heartbeat));
        assert_eq!(d.first_installed, Some(events[0].ts_utc()));
    }

    #[test]
    fn connectivity_rules() {
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("ts")
                .with_timezone(&Utc)
        };
        let now = t("2025-03-01T12:00:00Z");
        let hour = Duration::from_secs(3600);
        assert_eq!(
            connectivity(None, None, hour, None, now),
            Connectivity::NeverSeen
        );
        assert_eq!(
            connectivity(Some(t("2025-03-01T11:30:00Z")), None, hour, None, now),
            Connectivity::Online
        );
        assert_eq!(
            connectivity(Some(t("2025-03-01T10:59:59Z")), None, hour, None, now),
            Connectivity::Offline
        );
        let last = Some(t("2025-03-01T11:30:00Z"));
        assert_eq!(
            connectivity(last, None, hour, Some(t("2025-03-01T11:45:00Z")), now),
            Connectivity::Offline
        );
        assert_eq!(
            connectivity(last, None, hour, Some(t("2025-03-01T11:00:00Z")), now),
            Connectivity::Online,
            "contact after the will"
        );
        // The device's clock runs 40 minutes ahead: its contact says 12:10, vft got it at
        // 11:30, the will came at 11:45. The will wins.
        let ahead = Some(t("2025-03-01T12:10:00Z"));
        assert_eq!(
            connectivity(ahead, last, hour, Some(t("2025-03-01T11:45:00Z")), now),
            Connectivity::Offline
        );
    }

    proptest! {
        #[test]
        fn folding_is_independent_of_order_and_duplicates(
            spec in prop::collection::vec((0u8..11, 0u32..50, prop::option::of(0u8..=100)), 1..25),
            rotate in 0usize..25,
        ) {
            let events: Vec<Event> = spec.iter().enumerate().map(|(i, (t, hour, battery))| {
                let t = crate::event::EventType::ALL[usize::from(*t)];
                let mut e = event(&format!("e{i}"), &format!("2025-01-{:02}T{:02}:00:00Z", 1 + hour / 24, hour % 24), t, *battery);
                if t.is_alarm_event() { e.alarm = Some(crate::ids::AlarmRef::parse("A").expect("alarm")); }
                e
            }).collect();
            let expected = DeviceDelta::fold(&events);
            let mut shuffled: Vec<Event> = events.iter().rev().cloned().collect();
            let n = shuffled.len();
            shuffled.rotate_left(rotate % n);
            shuffled.extend(events.iter().take(3).cloned());
            prop_assert_eq!(DeviceDelta::fold(&shuffled), expected.clone());
            // Merging per-event deltas one by one in another order gives the same, too.
            let mut merged = DeviceDelta::from_event(&shuffled[0]);
            for e in &shuffled[1..] { merged.merge(&DeviceDelta::from_event(e)); }
            prop_assert_eq!(vec![merged], expected);
        }

        /// An alarm's merge is the same in any order and over any batches, and it has several
        /// municipalities exactly when its events do.
        #[test]
        fn alarm_merge_knows_when_its_events_come_from_several_municipalities(
            spec in prop::collection::vec((0u8..4, 0u32..50, 0usize..3), 1..12),
            rotate in 0usize..12,
            split in 0usize..12,
        ) {
            let alarm_types = [EventType::Alarm, EventType::AlarmReceived, EventType::AlarmAcknowledged, EventType::AlarmClosed];
            let events: Vec<Event> = spec.iter().enumerate().map(|(i, (t, minute, place))| {
                let mut e = event(&format!("e{i}"), &format!("2025-01-01T10:{minute:02}:00Z"), alarm_types[usize::from(*t)], None);
                e.alarm = Some(crate::ids::AlarmRef::parse("A").expect("alarm"));
                e.municipality = MunicipalityCode::parse(["3328", "3330", "0301"][*place]).expect("code");
                e
            }).collect();
            let places: std::collections::BTreeSet<&MunicipalityCode> = events.iter().map(|e| &e.municipality).collect();
            let [expected] = <[AlarmDelta; 1]>::try_from(AlarmDelta::fold(&events)).expect("one alarm");
            prop_assert_eq!(expected.several_municipalities, places.len() > 1);
            let mut shuffled: Vec<Event> = events.iter().rev().cloned().collect();
            let n = shuffled.len();
            shuffled.rotate_left(rotate % n);
            // Two batches, each folded on its own, then merged (as a batch meets the stored state).
            let (a, b) = shuffled.split_at(split % shuffled.len());
            let mut merged = AlarmDelta::fold(b).remove(0);
            if let Some(first) = AlarmDelta::fold(a).first() {
                merged.merge(first);
            }
            prop_assert_eq!(merged, expected);
        }
    }
}
