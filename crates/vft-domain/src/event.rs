//! The canonical event (Contract 1 in DESIGN.md) and the parser that turns a message payload
//! into events or dead letters. Every rule of the contract lives here, so ingest only routes.

use crate::ids::{
    AlarmRef, DeviceId, EventId, GatewayId, MunicipalityCode, RecipientRef, VendorId,
};
use crate::kind::TechnologyKind;
use crate::municipality::Registry;
use crate::nin;
use crate::topic::EventTopic;
use chrono::{DateTime, FixedOffset, SubsecRound, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $id:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn id(self) -> &'static str {
                match self { $($name::$variant => $id),+ }
            }
            pub fn from_id(id: &str) -> Option<Self> {
                match id { $($id => Some($name::$variant),)+ _ => None }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.id())
            }
        }
    };
}

wire_enum!(
    /// What happened. Lifecycle types decide whether a device is in service.
    EventType {
        Installed = "installed",
        Decommissioned = "decommissioned",
        Heartbeat = "heartbeat",
        BatteryLow = "battery_low",
        Fault = "fault",
        Alarm = "alarm",
        AlarmReceived = "alarm_received",
        AlarmAcknowledged = "alarm_acknowledged",
        AlarmClosed = "alarm_closed",
        DoseTaken = "dose_taken",
        DoseMissed = "dose_missed",
    }
);

wire_enum!(
    /// Why an alarm was raised.
    Cause {
        Button = "button",
        Fall = "fall",
        Smoke = "smoke",
        Door = "door",
        Geofence = "geofence",
        DoseMissed = "dose_missed",
        Technical = "technical",
        Other = "other",
    }
);

wire_enum!(
    /// How the response centre closed an alarm.
    Outcome {
        FalseAlarm = "false_alarm",
        ResolvedRemotely = "resolved_remotely",
        HelpDispatched = "help_dispatched",
        EmergencyServices = "emergency_services",
        NoContact = "no_contact",
    }
);

wire_enum!(
    /// Why a unit left service (optional on `decommissioned`).
    DecommissionReason {
        Returned = "returned",
        MovedToInstitution = "moved_to_institution",
        Deceased = "deceased",
        NoLongerNeeded = "no_longer_needed",
        Replaced = "replaced",
        Broken = "broken",
        Lost = "lost",
        Other = "other",
    }
);

impl DecommissionReason {
    /// The reason in Norwegian, as the dashboard and reports show it.
    pub fn label_nb(self) -> &'static str {
        match self {
            Self::Returned => "levert tilbake",
            Self::MovedToInstitution => "flyttet til institusjon",
            Self::Deceased => "død",
            Self::NoLongerNeeded => "ikke lenger behov",
            Self::Replaced => "erstattet",
            Self::Broken => "defekt",
            Self::Lost => "tapt",
            Self::Other => "annet",
        }
    }
}

impl EventType {
    /// Order of lifecycle events that share a timestamp: `installed` before `decommissioned`,
    /// so a device installed and removed in the same instant ends out of service. `None` for
    /// non-lifecycle events. Together with the event id this makes "the latest lifecycle event"
    /// a total order, independent of arrival.
    pub fn lifecycle_rank(self) -> Option<i16> {
        match self {
            Self::Installed => Some(0),
            Self::Decommissioned => Some(1),
            _ => None,
        }
    }

    pub fn is_alarm_event(self) -> bool {
        matches!(
            self,
            Self::Alarm | Self::AlarmReceived | Self::AlarmAcknowledged | Self::AlarmClosed
        )
    }
}

/// A validated canonical event, with the vendor and gateway taken from its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub vendor: VendorId,
    pub gateway: GatewayId,
    pub id: EventId,
    /// When it happened at the device, with the device's offset, truncated to microseconds
    /// (the stores' resolution).
    pub ts: DateTime<FixedOffset>,
    pub municipality: MunicipalityCode,
    pub device: DeviceId,
    pub event_type: EventType,
    pub kind: Option<TechnologyKind>,
    pub battery: Option<u8>,
    pub alarm: Option<AlarmRef>,
    pub cause: Option<Cause>,
    pub outcome: Option<Outcome>,
    pub recipient: Option<RecipientRef>,
    pub replaces: Option<DeviceId>,
    /// Why a unit left service; only on `decommissioned`, and optional there.
    pub reason: Option<DecommissionReason>,
}

impl Event {
    pub fn ts_utc(&self) -> DateTime<Utc> {
        self.ts.with_timezone(&Utc)
    }

    /// The canonical JSON object of this event (without vendor and gateway, which travel in
    /// the topic). Used by the simulator and tests.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_owned(), v);
        };
        put("id", self.id.as_str().into());
        put("ts", self.ts.to_rfc3339().into());
        put("municipality", self.municipality.as_str().into());
        put("device", self.device.as_str().into());
        put("type", self.event_type.id().into());
        if let Some(k) = self.kind {
            put("kind", k.id().into());
        }
        if let Some(b) = self.battery {
            put("battery", b.into());
        }
        if let Some(a) = &self.alarm {
            put("alarm", a.as_str().into());
        }
        if let Some(c) = self.cause {
            put("cause", c.id().into());
        }
        if let Some(o) = self.outcome {
            put("outcome", o.id().into());
        }
        if let Some(r) = &self.recipient {
            put("recipient", r.as_str().into());
        }
        if let Some(r) = &self.replaces {
            put("replaces", r.as_str().into());
        }
        if let Some(r) = self.reason {
            put("reason", r.id().into());
        }
        Value::Object(m)
    }
}

/// Why a payload (or one element of a batch) was not accepted. `code()` is a bounded label
/// for metrics; `Display` is the human reason kept with the dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterReason {
    BadTopic(String),
    Oversized {
        size: usize,
        max: usize,
    },
    MalformedJson(String),
    NotAnObject,
    EmptyBatch,
    MissingField(&'static str),
    UnknownField(String),
    InvalidField {
        field: &'static str,
        why: String,
    },
    UnknownMunicipality(String),
    UnknownType(String),
    NationalIdentityNumber {
        field: String,
    },
    InvalidStatus,
    /// A vendor adapter could not map the vendor's message (the text names the field).
    Mapping {
        vendor: String,
        why: String,
    },
    /// An event id already stored with other content: the first arrival is kept, this one
    /// is shown instead of silently dropped.
    ConflictingDuplicate {
        id: String,
    },
    /// An event time outside [`PlausibleTimes`] (a device clock reset to 1970, or run ahead):
    /// the text says which bound, never the instant it was checked at, so a redelivery makes
    /// the same dead letter.
    ImplausibleTime(String),
    /// The embedded listener took a publish its sender's credential may not make (another
    /// vendor's or gateway's topic): kept here instead of acknowledged and dropped, because an
    /// MQTT 3.1.1 client cannot be told "refused" and would send it again forever.
    ForbiddenTopic {
        /// The credential's username and scope, e.g. `hepro/gw-1 (scope hepro/gw-1)`.
        credential: String,
    },
}

impl DeadLetterReason {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadTopic(_) => "bad_topic",
            Self::Oversized { .. } => "oversized",
            Self::MalformedJson(_) => "malformed_json",
            Self::NotAnObject => "not_an_object",
            Self::EmptyBatch => "empty_batch",
            Self::MissingField(_) => "missing_field",
            Self::UnknownField(_) => "unknown_field",
            Self::InvalidField { .. } => "invalid_field",
            Self::UnknownMunicipality(_) => "unknown_municipality",
            Self::UnknownType(_) => "unknown_type",
            Self::NationalIdentityNumber { .. } => "national_identity_number",
            Self::InvalidStatus => "invalid_status",
            Self::Mapping { .. } => "mapping_failed",
            Self::ConflictingDuplicate { .. } => "conflicting_duplicate",
            Self::ImplausibleTime(_) => "implausible_time",
            Self::ForbiddenTopic { .. } => "forbidden_topic",
        }
    }
}

/// The reason as kept with the dead letter and logged: whatever outside text it echoes (a key,
/// a value, a topic) has its national identity numbers masked.
impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Unmasked<'a>(&'a DeadLetterReason);
        impl fmt::Display for Unmasked<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt_unmasked(f)
            }
        }
        f.write_str(&nin::mask_str(&Unmasked(self).to_string()).0)
    }
}

impl DeadLetterReason {
    fn fmt_unmasked(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadTopic(why) => write!(f, "bad topic: {why}"),
            Self::Oversized { size, max } => {
                write!(
                    f,
                    "payload of {size} bytes exceeds the limit of {max} bytes (first bytes kept)"
                )
            }
            Self::MalformedJson(why) => write!(f, "malformed JSON: {why}"),
            Self::NotAnObject => write!(f, "an event must be a JSON object"),
            Self::EmptyBatch => write!(f, "empty batch: the array holds no events"),
            Self::MissingField(field) => write!(f, "missing field `{field}`"),
            Self::UnknownField(field) => write!(f, "unknown field `{field}`"),
            Self::InvalidField { field, why } => write!(f, "invalid field `{field}`: {why}"),
            Self::UnknownMunicipality(code) => write!(f, "unknown municipality {code}"),
            Self::UnknownType(t) => write!(f, "unknown event type {t:?}"),
            Self::InvalidStatus => write!(f, "a gateway status must be `online` or `offline`"),
            Self::Mapping { vendor, why } => write!(f, "{vendor} adapter: {why}"),
            Self::ConflictingDuplicate { id } => write!(
                f,
                "event id {id:?} was stored before with other content; the first arrival is kept"
            ),
            Self::ImplausibleTime(why) => write!(f, "implausible event time: {why}"),
            Self::ForbiddenTopic { credential } => write!(
                f,
                "MQTT credential {credential} may not publish on this topic; not processed"
            ),
            Self::NationalIdentityNumber { field } => {
                match field.as_str() {
                    NIN_IN_TOPIC => f.write_str("the topic")?,
                    NIN_IN_PAYLOAD => f.write_str("the payload")?,
                    field => write!(f, "field `{field}`")?,
                }
                f.write_str(
                    " holds a national identity number; refused (the number is masked here)",
                )
            }
        }
    }
}

/// The event times vft believes: from `earliest` up to `max_future` after the event arrives.
/// One event dated 9999 would open the dashboard on that year and stretch every range; one
/// dated year 0 would be counted in every month end since. The caller passes "now".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlausibleTimes {
    pub earliest: DateTime<Utc>,
    pub max_future: chrono::Duration,
}

impl Default for PlausibleTimes {
    /// From 2000-01-01T00:00:00Z to one day ahead of arrival.
    fn default() -> Self {
        Self {
            earliest: DateTime::<Utc>::from_naive_utc_and_offset(
                chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
                    .unwrap_or_default()
                    .and_time(chrono::NaiveTime::MIN),
                Utc,
            ),
            max_future: chrono::Duration::days(1),
        }
    }
}

impl PlausibleTimes {
    /// The latest plausible time for something arriving at `now` (`None`: no upper bound,
    /// when `now + max_future` is past what chrono can hold).
    pub fn latest(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        now.checked_add_signed(self.max_future)
    }

    /// Whether `ts` is plausible at `now`; if not, why, naming the configured bound only (the
    /// reason is part of a dead letter's identity, so it must not change with `now`).
    pub fn check(&self, ts: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
        if ts < self.earliest {
            return Err(format!(
                "{} is before {} (ingest.earliest_event); a device clock that was reset?",
                ts.to_rfc3339(),
                self.earliest.to_rfc3339()
            ));
        }
        if self.latest(now).is_some_and(|latest| ts > latest) {
            return Err(format!(
                "{} is more than {} s after it arrived (ingest.max_future_secs); a device clock that runs ahead?",
                ts.to_rfc3339(),
                self.max_future.num_seconds()
            ));
        }
        Ok(())
    }
}

/// `NationalIdentityNumber { field }` when the number is in the message's topic (a vendor or
/// gateway segment, or a topic nobody handles).
pub const NIN_IN_TOPIC: &str = "(topic)";
/// `NationalIdentityNumber { field }` when the number is in a payload that is not read as an
/// event (malformed JSON, a status payload, …).
pub const NIN_IN_PAYLOAD: &str = "(payload)";

/// One outcome of parsing a payload: an event, or the raw bytes that become a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedItem {
    Event(Box<Event>),
    Dead {
        raw: Vec<u8>,
        reason: DeadLetterReason,
    },
}

/// How much of an oversized payload is kept in its dead letter.
pub const OVERSIZED_KEEP_BYTES: usize = 64 * 1024;

fn dead(raw: &[u8], reason: DeadLetterReason) -> ParsedItem {
    // Masked whatever the reason: a malformed payload can carry a national identity number too,
    // and then that is the reason (an oversized payload keeps its own: it was not read).
    let (raw, found) = nin::mask_bytes(raw);
    let reason = match reason {
        DeadLetterReason::NationalIdentityNumber { .. } | DeadLetterReason::Oversized { .. } => {
            reason
        }
        _ if found > 0 => DeadLetterReason::NationalIdentityNumber {
            field: NIN_IN_PAYLOAD.into(),
        },
        reason => reason,
    };
    ParsedItem::Dead { raw, reason }
}

/// Parses one message: a single event object or an array of them. Never fails as a whole:
/// each element becomes an event or a dead letter, so one bad element never hides the others.
/// Any event time is accepted; ingest uses [`parse_payload_at`], which also checks it.
pub fn parse_payload(
    topic: Result<&EventTopic, &crate::topic::TopicError>,
    payload: &[u8],
    registry: &Registry,
    max_payload_bytes: usize,
) -> Vec<ParsedItem> {
    parse_with(topic, payload, registry, max_payload_bytes, None)
}

/// [`parse_payload`], and an event whose time is outside `times` for a message arriving at
/// `now` becomes an `implausible_time` dead letter.
pub fn parse_payload_at(
    topic: Result<&EventTopic, &crate::topic::TopicError>,
    payload: &[u8],
    registry: &Registry,
    max_payload_bytes: usize,
    times: &PlausibleTimes,
    now: DateTime<Utc>,
) -> Vec<ParsedItem> {
    parse_with(
        topic,
        payload,
        registry,
        max_payload_bytes,
        Some((times, now)),
    )
}

fn parse_with(
    topic: Result<&EventTopic, &crate::topic::TopicError>,
    payload: &[u8],
    registry: &Registry,
    max_payload_bytes: usize,
    times: Option<(&PlausibleTimes, DateTime<Utc>)>,
) -> Vec<ParsedItem> {
    if payload.len() > max_payload_bytes {
        // Masked before it is cut, so the cut never keeps part of a number.
        let (mut keep, _) = nin::mask_bytes(payload);
        keep.truncate(OVERSIZED_KEEP_BYTES);
        return vec![dead(
            &keep,
            DeadLetterReason::Oversized {
                size: payload.len(),
                max: max_payload_bytes,
            },
        )];
    }
    let topic = match topic {
        Ok(t) => t,
        Err(e) => return vec![dead(payload, DeadLetterReason::BadTopic(e.to_string()))],
    };
    let text = match std::str::from_utf8(payload) {
        Ok(t) => t,
        Err(e) => {
            return vec![dead(
                payload,
                DeadLetterReason::MalformedJson(format!("not UTF-8: {e}")),
            )];
        }
    };
    let element = |raw: &RawValue| match parse_event(raw.get(), topic, registry, times) {
        Ok(event) => ParsedItem::Event(Box::new(event)),
        Err(reason) => dead(raw.get().as_bytes(), reason),
    };
    if text.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(items) if items.is_empty() => vec![dead(payload, DeadLetterReason::EmptyBatch)],
            Ok(items) => items.into_iter().map(element).collect(),
            Err(e) => vec![dead(
                payload,
                DeadLetterReason::MalformedJson(e.to_string()),
            )],
        }
    } else {
        match serde_json::from_str::<&RawValue>(text) {
            Ok(raw) => vec![element(raw)],
            Err(e) => vec![dead(
                payload,
                DeadLetterReason::MalformedJson(e.to_string()),
            )],
        }
    }
}

const FIELDS: &[&str] = &[
    "id",
    "ts",
    "municipality",
    "device",
    "type",
    "kind",
    "battery",
    "alarm",
    "cause",
    "outcome",
    "recipient",
    "replaces",
    "reason",
];

struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// A string field; JSON `null` counts as absent.
    fn opt_str(&self, field: &'static str) -> Result<Option<&'a str>, DeadLetterReason> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(DeadLetterReason::InvalidField {
                field,
                why: "must be a string".into(),
            }),
        }
    }

    fn req_str(&self, field: &'static str) -> Result<&'a str, DeadLetterReason> {
        self.opt_str(field)?
            .ok_or(DeadLetterReason::MissingField(field))
    }

    fn opt_parsed<T, E: fmt::Display>(
        &self,
        field: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, DeadLetterReason> {
        self.opt_str(field)?
            .map(|s| {
                parse(s).map_err(|e| DeadLetterReason::InvalidField {
                    field,
                    why: e.to_string(),
                })
            })
            .transpose()
    }

    fn opt_enum<T>(
        &self,
        field: &'static str,
        from_id: fn(&str) -> Option<T>,
        all: &[&str],
    ) -> Result<Option<T>, DeadLetterReason> {
        self.opt_parsed(field, |s| {
            from_id(s).ok_or_else(|| format!("{s:?} is not one of {}", all.join(", ")))
        })
    }
}

fn ids<T: Copy>(all: &[T], id: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|t| id(*t)).collect()
}

/// Whether a JSON value holds a national identity number anywhere: a string, a number's text
/// (`12345678901` sent as a JSON number), nested keys and values.
fn value_holds_number(v: &Value) -> bool {
    match v {
        Value::String(s) => nin::find(s),
        Value::Number(n) => nin::find(&n.to_string()),
        Value::Array(items) => items.iter().any(value_holds_number),
        Value::Object(m) => m.iter().any(|(k, v)| nin::find(k) || value_holds_number(v)),
        Value::Bool(_) | Value::Null => false,
    }
}

/// The field (any key, known or not; masked and bounded for the reason) whose key or value
/// holds a national identity number in any shape `nin` reads, or the payload as a whole when
/// only its raw text does.
fn find_national_identity_number(raw: &str, map: &Map<String, Value>) -> Option<String> {
    map.iter()
        .find(|(k, v)| nin::find(k) || value_holds_number(v))
        .map(|(k, _)| nin::masked_prefix(k, 64))
        .or_else(|| nin::find(raw).then(|| NIN_IN_PAYLOAD.to_owned()))
}

fn parse_event(
    raw: &str,
    topic: &EventTopic,
    registry: &Registry,
    times: Option<(&PlausibleTimes, DateTime<Utc>)>,
) -> Result<Event, DeadLetterReason> {
    let map: Map<String, Value> = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(DeadLetterReason::NotAnObject),
        Err(e) => return Err(DeadLetterReason::MalformedJson(e.to_string())),
    };
    // Before any other rule, so no reason ever echoes the number.
    if let Some(field) = find_national_identity_number(raw, &map) {
        return Err(DeadLetterReason::NationalIdentityNumber { field });
    }
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(DeadLetterReason::UnknownField(
            unknown.chars().take(64).collect(),
        ));
    }
    let f = Fields(&map);
    let invalid = |field: &'static str| {
        move |e: crate::ids::IdError| DeadLetterReason::InvalidField {
            field,
            why: e.to_string(),
        }
    };

    let id = EventId::parse(f.req_str("id")?).map_err(invalid("id"))?;
    let ts = DateTime::parse_from_rfc3339(f.req_str("ts")?)
        .map_err(|e| DeadLetterReason::InvalidField {
            field: "ts",
            why: format!("must be RFC 3339 with an offset, e.g. 2025-06-30T23:59:00+02:00 ({e})"),
        })?
        .trunc_subsecs(6);
    if let Some((times, now)) = times {
        times
            .check(ts.with_timezone(&Utc), now)
            .map_err(DeadLetterReason::ImplausibleTime)?;
    }
    let municipality =
        MunicipalityCode::parse(f.req_str("municipality")?).map_err(invalid("municipality"))?;
    if !registry.contains(&municipality) {
        return Err(DeadLetterReason::UnknownMunicipality(
            municipality.to_string(),
        ));
    }
    let device = DeviceId::parse(f.req_str("device")?).map_err(invalid("device"))?;
    let type_id = f.req_str("type")?;
    let event_type = EventType::from_id(type_id)
        .ok_or_else(|| DeadLetterReason::UnknownType(type_id.chars().take(64).collect()))?;

    let kind = f.opt_enum(
        "kind",
        TechnologyKind::from_id,
        &ids(&TechnologyKind::ALL, TechnologyKind::id),
    )?;
    if event_type == EventType::Installed && kind.is_none() {
        return Err(DeadLetterReason::MissingField("kind"));
    }
    let battery = match map.get("battery") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|b| *b <= 100)
                .and_then(|b| u8::try_from(b).ok())
                .ok_or_else(|| DeadLetterReason::InvalidField {
                    field: "battery",
                    why: format!(
                        "must be a whole number 0-100, got {}",
                        v.to_string().chars().take(32).collect::<String>()
                    ),
                })?,
        ),
    };
    let alarm = f.opt_parsed("alarm", AlarmRef::parse)?;
    if event_type.is_alarm_event() && alarm.is_none() {
        return Err(DeadLetterReason::MissingField("alarm"));
    }
    let cause = f.opt_enum("cause", Cause::from_id, &ids(Cause::ALL, Cause::id))?;
    if event_type == EventType::Alarm && cause.is_none() {
        return Err(DeadLetterReason::MissingField("cause"));
    }
    let outcome = f.opt_enum("outcome", Outcome::from_id, &ids(Outcome::ALL, Outcome::id))?;
    if event_type == EventType::AlarmClosed && outcome.is_none() {
        return Err(DeadLetterReason::MissingField("outcome"));
    }
    let recipient = f.opt_parsed("recipient", RecipientRef::parse)?;
    let replaces = f.opt_parsed("replaces", DeviceId::parse)?;
    if replaces.is_some() && event_type != EventType::Installed {
        return Err(DeadLetterReason::InvalidField {
            field: "replaces",
            why: "only allowed on `installed` events".into(),
        });
    }
    let reason = f.opt_enum(
        "reason",
        DecommissionReason::from_id,
        &ids(DecommissionReason::ALL, DecommissionReason::id),
    )?;
    if reason.is_some() && event_type != EventType::Decommissioned {
        return Err(DeadLetterReason::InvalidField {
            field: "reason",
            why: "only allowed on `decommissioned` events".into(),
        });
    }
    Ok(Event {
        vendor: topic.vendor.clone(),
        gateway: topic.gateway.clone(),
        id,
        ts,
        municipality,
        device,
        event_type,
        kind,
        battery,
        alarm,
        cause,
        outcome,
        recipient,
        replaces,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::municipality::Municipality;
    use crate::nin::tests::make_nin;

    fn registry() -> Registry {
        Registry::new(["3320", "3328"].map(|c| Municipality {
            code: MunicipalityCode::parse(c).expect("code"),
            name: c.into(),
            population: 1,
        }))
        .expect("unique")
    }

    fn topic() -> EventTopic {
        EventTopic::parse("vft/v1", "vft/v1/hepro/gw-1/events").expect("topic")
    }

    fn parse(payload: &str) -> Vec<ParsedItem> {
        parse_payload(Ok(&topic()), payload.as_bytes(), &registry(), 4096)
    }

    fn reason(payload: &str) -> DeadLetterReason {
        match parse(payload).as_slice() {
            [ParsedItem::Dead { reason, .. }] => reason.clone(),
            other => panic!("expected one dead letter, got {other:?}"),
        }
    }

    const OK: &str = r#"{"id":"e1","ts":"2025-06-30T23:59:00+02:00","municipality":"3328","device":"D1","type":"installed","kind":"safety_alarm","recipient":"r-77"}"#;

    #[test]
    fn a_decommission_may_say_why_and_only_a_decommission() {
        let gone = |extra: &str| {
            format!(
                r#"{{"id":"e2","ts":"2025-06-30T10:00:00+02:00","municipality":"3328","device":"D1","type":"decommissioned"{extra}}}"#
            )
        };
        for r in DecommissionReason::ALL {
            let items = parse(&gone(&format!(r#","reason":"{}""#, r.id())));
            let [ParsedItem::Event(e)] = items.as_slice() else {
                panic!("not an event: {items:?}")
            };
            assert_eq!(e.reason, Some(*r));
            assert_eq!(parse(&e.to_json().to_string()), items, "round trip");
        }
        let without = parse(&gone(""));
        assert!(matches!(without.as_slice(), [ParsedItem::Event(e)] if e.reason.is_none()));
        let null = parse(&gone(r#","reason":null"#));
        assert!(matches!(null.as_slice(), [ParsedItem::Event(e)] if e.reason.is_none()));
        assert!(matches!(
            reason(&gone(r#","reason":"stolen""#)),
            DeadLetterReason::InvalidField {
                field: "reason",
                ..
            }
        ));
        let on_install = OK.replace(r#""recipient""#, r#""reason":"broken","recipient""#);
        assert!(matches!(
            reason(&on_install),
            DeadLetterReason::InvalidField {
                field: "reason",
                ..
            }
        ));
    }

    #[test]
    fn accepts_a_valid_event_and_round_trips_it() {
        let items = parse(OK);
        let [ParsedItem::Event(e)] = items.as_slice() else {
            panic!("not an event: {items:?}")
        };
        let e = e.clone();
        assert_eq!(e.vendor.as_str(), "hepro");
        assert_eq!(e.kind, Some(TechnologyKind::SafetyAlarm));
        assert_eq!(e.ts_utc().to_rfc3339(), "2025-06-30T21:59:00+00:00");
        let again = parse(&e.to_json().to_string());
        assert_eq!(again, vec![ParsedItem::Event(e)]);
    }

    #[test]
    fn a_batch_keeps_good_elements_beside_bad_ones() {
        let bad = r#"{"id":"e2","ts":"2025-01-01T00:00:00Z","municipality":"9999","device":"D","type":"heartbeat"}"#;
        let items = parse(&format!("[{OK}, {bad}]"));
        assert!(matches!(items[0], ParsedItem::Event(_)));
        let ParsedItem::Dead { raw, reason } = &items[1] else {
            panic!("expected dead letter")
        };
        assert_eq!(
            raw.as_slice(),
            bad.as_bytes(),
            "the element's own bytes are kept"
        );
        assert_eq!(
            reason,
            &DeadLetterReason::UnknownMunicipality("9999".into())
        );
    }

    #[test]
    fn every_contract_breach_has_its_reason() {
        let with = |k: &str, v: &str| {
            let mut m: Map<String, Value> = serde_json::from_str(OK).expect("json");
            if v == "-" {
                m.remove(k);
            } else {
                m.insert(k.into(), serde_json::from_str(v).expect("json value"));
            }
            Value::Object(m).to_string()
        };
        assert_eq!(reason("{not json").code(), "malformed_json");
        assert_eq!(reason("[]").code(), "empty_batch");
        assert_eq!(reason("42").code(), "not_an_object");
        assert_eq!(
            reason(&with("id", "-")),
            DeadLetterReason::MissingField("id")
        );
        assert_eq!(
            reason(&with("kind", "-")),
            DeadLetterReason::MissingField("kind")
        );
        assert_eq!(
            reason(&with("type", r#""exploded""#)).code(),
            "unknown_type"
        );
        assert_eq!(
            reason(&with("municipality", r#""0301""#)).code(),
            "unknown_municipality"
        );
        assert_eq!(
            reason(&with("municipality", r#""Ål""#)).code(),
            "invalid_field"
        );
        assert_eq!(
            reason(&with("ts", r#""2025-06-30T23:59:00""#)).code(),
            "invalid_field"
        );
        assert_eq!(reason(&with("battery", "101")).code(), "invalid_field");
        assert_eq!(reason(&with("battery", "-1")).code(), "invalid_field");
        assert_eq!(
            reason(&with("kind", r#""toaster""#)).code(),
            "invalid_field"
        );
        assert_eq!(
            reason(&with("colour", r#""red""#)),
            DeadLetterReason::UnknownField("colour".into())
        );
        assert_eq!(reason(&with("device", r#""""#)).code(), "invalid_field");
        assert_eq!(
            reason(&with("id", &format!("\"{}\"", "x".repeat(129)))).code(),
            "invalid_field"
        );
        let alarm = with("type", r#""alarm""#);
        assert_eq!(reason(&alarm), DeadLetterReason::MissingField("alarm"));
        let mut m: Map<String, Value> = serde_json::from_str(&alarm).expect("json");
        m.insert("alarm".into(), "A1".into());
        assert_eq!(
            reason(&Value::Object(m.clone()).to_string()),
            DeadLetterReason::MissingField("cause")
        );
        m.insert("type".into(), "alarm_closed".into());
        assert_eq!(
            reason(&Value::Object(m).to_string()),
            DeadLetterReason::MissingField("outcome")
        );
        assert_eq!(
            reason(&with("type", r#""heartbeat""#).replace("\"recipient\"", "\"replaces\"")).code(),
            "invalid_field"
        );
        let huge = format!("{{\"id\":\"{}\"}}", "x".repeat(5000));
        let dead = parse(&huge);
        let [
            ParsedItem::Dead {
                raw,
                reason: DeadLetterReason::Oversized { size, max: 4096 },
            },
        ] = dead.as_slice()
        else {
            panic!("expected oversized, got {dead:?}")
        };
        assert_eq!(*size, huge.len());
        assert!(raw.len() <= OVERSIZED_KEEP_BYTES);
        let topic_err = EventTopic::parse("vft/v1", "vft/v1/BAD/gw/events").expect_err("bad topic");
        let items = parse_payload(Err(&topic_err), OK.as_bytes(), &registry(), 4096);
        assert!(matches!(
            &items[..],
            [ParsedItem::Dead {
                reason: DeadLetterReason::BadTopic(_),
                ..
            }]
        ));
    }

    #[test]
    fn national_identity_numbers_are_refused_and_masked_in_any_field() {
        let n = make_nin("241299345")
            .or_else(|| make_nin("241299346"))
            .expect("valid");
        for payload in [
            OK.replace("r-77", &n),
            OK.replace("\"D1\"", &format!("\"{n}\"")),
            OK.replace("\"r-77\"", &n),
        ] {
            let items = parse(&payload);
            let [ParsedItem::Dead { raw, reason }] = items.as_slice() else {
                panic!("{items:?}")
            };
            assert_eq!(reason.code(), "national_identity_number");
            assert!(
                !String::from_utf8_lossy(raw).contains(&n),
                "the number must not be kept"
            );
        }
    }

    #[test]
    fn national_identity_numbers_in_any_shape_are_refused_and_never_echoed() {
        let n = make_nin("241299345")
            .or_else(|| make_nin("241299346"))
            .expect("valid");
        let (date, person) = n.split_at(6);
        let spaced = format!("{date} {person}");
        let with = |k: &str, v: &str| {
            let mut m: Map<String, Value> = serde_json::from_str(OK).expect("json");
            m.insert(k.into(), serde_json::from_str(v).expect("json value"));
            Value::Object(m).to_string()
        };
        for (payload, field) in [
            (with("recipient", &format!("\"fnr {spaced}\"")), "recipient"),
            (with("colour", &format!("\"{spaced}\"")), "colour"),
            (with(&format!("fnr{n}"), "1"), "fnr***********"),
            (with("kind", &format!("\"alarm {spaced}\"")), "kind"),
            (with("type", &format!("\"t-{n}\"")), "type"),
            (
                with("recipient", &format!("{{\"x\":[\"{spaced}\"]}}")),
                "recipient",
            ),
            (OK.replace("r-77", &format!("\\u003{}", n)), "recipient"),
            (format!("{{\"id\":\"{spaced}\""), NIN_IN_PAYLOAD),
            (format!("\"{spaced}\""), NIN_IN_PAYLOAD),
        ] {
            let items = parse(&payload);
            let [ParsedItem::Dead { raw, reason }] = items.as_slice() else {
                panic!("{payload}: {items:?}")
            };
            assert_eq!(
                reason,
                &DeadLetterReason::NationalIdentityNumber {
                    field: field.into()
                },
                "{payload}"
            );
            assert!(!nin::find_bytes(raw), "{payload}");
            assert!(!nin::find(&reason.to_string()), "{reason}");
        }
        // A reason echoing outside text is masked whatever built it.
        let reason = DeadLetterReason::UnknownType(format!("x {spaced}"));
        assert_eq!(reason.to_string(), "unknown event type \"x ***********\"");
        // An oversized payload is masked before it is cut.
        let big = format!("{}{spaced}", " ".repeat(OVERSIZED_KEEP_BYTES - 5));
        let items = parse_payload(Ok(&topic()), big.as_bytes(), &registry(), 1024);
        let [ParsedItem::Dead { raw, reason }] = items.as_slice() else {
            panic!("{items:?}")
        };
        assert_eq!(reason.code(), "oversized");
        assert!(raw.ends_with(b"*****") && !raw.ends_with(date.as_bytes()));
    }

    mod properties {
        use super::*;
        use crate::nin::tests::properties::{decor, dress, valid_number};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]

            #[test]
            fn a_number_in_any_field_is_a_masked_dead_letter(
                n in valid_number(),
                d in decor(),
                field in 0usize..=FIELDS.len(),
                batch: bool,
            ) {
                let key = FIELDS.get(field).copied().unwrap_or("note");
                let mut m: Map<String, Value> = serde_json::from_str(OK).expect("json");
                m.remove(key);
                let rest = Value::Object(m).to_string();
                // The dressed text goes in as written (its JSON escapes included).
                let element = format!("{},\"{key}\":\"{}\"}}", &rest[..rest.len() - 1], dress(&n, &d));
                let payload = if batch { format!("[{OK},{element}]") } else { element };
                let items = parse(&payload);
                let dead: Vec<_> = items
                    .iter()
                    .filter_map(|i| match i {
                        ParsedItem::Dead { raw, reason } => Some((raw, reason)),
                        ParsedItem::Event(_) => None,
                    })
                    .collect();
                prop_assert_eq!(dead.len(), 1, "{}: {:?}", payload, items);
                let (raw, reason) = dead[0];
                prop_assert_eq!(reason.code(), "national_identity_number", "{}", payload);
                prop_assert!(!nin::find_bytes(raw));
                prop_assert!(!String::from_utf8_lossy(raw).contains(&n));
                prop_assert!(!nin::find(&reason.to_string()));
            }
        }
    }

    #[test]
    fn implausible_event_times_become_dead_letters_with_a_reason_that_ignores_now() {
        let now: DateTime<Utc> = "2026-03-10T12:00:00Z".parse().expect("instant");
        let times = PlausibleTimes::default();
        let at = |ts: &str, now: DateTime<Utc>| {
            let payload = OK.replace("2025-06-30T23:59:00+02:00", ts);
            parse_payload_at(
                Ok(&topic()),
                payload.as_bytes(),
                &registry(),
                4096,
                &times,
                now,
            )
        };
        for ok in [
            "2000-01-01T00:00:00Z",
            "2000-01-01T01:00:00+01:00",
            "2025-06-30T23:59:00+02:00",
            "2026-03-11T12:00:00Z",
            "2026-03-11T13:00:00+01:00",
        ] {
            assert!(
                matches!(at(ok, now).as_slice(), [ParsedItem::Event(_)]),
                "{ok} is plausible"
            );
        }
        for bad in [
            "0000-01-01T00:00:00Z",
            "1970-01-01T00:00:00Z",
            "2000-01-01T00:59:59+01:00",
            "1999-12-31T23:59:59.999999Z",
            "2026-03-11T12:00:00.000001Z",
            "2026-03-12T12:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let items = at(bad, now);
            let [ParsedItem::Dead { reason, raw }] = items.as_slice() else {
                panic!("{bad} accepted: {items:?}")
            };
            assert_eq!(reason.code(), "implausible_time", "{bad}");
            assert!(
                String::from_utf8_lossy(raw).contains(bad),
                "the element is kept"
            );
            // Checked at another instant, the same dead letter (its identity has the text).
            let earlier = at(bad, now - chrono::Duration::hours(3));
            assert_eq!(earlier, items, "{bad}");
        }
        // Without a window (parse_payload), any time is an event, as before.
        assert!(matches!(
            parse(&OK.replace("2025-06-30T23:59:00+02:00", "9999-12-31T23:59:59Z")).as_slice(),
            [ParsedItem::Event(_)]
        ));
        // A window past what chrono holds has no upper bound instead of overflowing.
        let wide = PlausibleTimes {
            max_future: chrono::Duration::MAX,
            ..times
        };
        assert_eq!(wide.latest(now), None);
        assert!(
            wide.check("9999-12-31T23:59:59Z".parse().expect("t"), now)
                .is_ok()
        );
        let why = times
            .check("1999-01-01T00:00:00Z".parse().expect("t"), now)
            .expect_err("early");
        assert!(why.contains("ingest.earliest_event"), "{why}");
        let why = times
            .check("2030-01-01T00:00:00Z".parse().expect("t"), now)
            .expect_err("late");
        assert!(
            why.contains("86400 s") && why.contains("ingest.max_future_secs"),
            "{why}"
        );
    }
}
