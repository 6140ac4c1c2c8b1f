//! Declarative vendor adapters (DESIGN.md, Contract 1: "vendor platforms that cannot send this
//! format are mapped by declarative adapters"). An adapter is configuration only: where the
//! events are in a vendor's message, which vendor path holds each canonical field, value maps for
//! the vendor's codes, its time format and zone, and how its device ids are normalised. Adding a
//! vendor is adding a file, never code.
//!
//! `map` only translates. It never checks canonical rules (unknown municipality, missing `kind`,
//! national identity numbers…): ingest feeds each mapped object to [`crate::parse_payload`], so
//! the contract is enforced in exactly one place.

use crate::event::{Cause, DecommissionReason, EventType, Outcome};
use crate::ids::{GatewayId, VendorId};
use crate::kind::TechnologyKind;
use crate::nin::mask_national_identity_numbers;
use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// The canonical field names of Contract 1. Mirrors the private list in `event.rs`; a unit test
/// pins the two together through the public parser and `Event::to_json`.
const CANONICAL_FIELDS: &[&str] = &[
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

/// Fields every canonical event needs; an adapter that can never supply one is a config error,
/// not a stream of dead letters.
const REQUIRED_FIELDS: &[&str] = &["id", "ts", "municipality", "device", "type"];

/// One vendor's adapter, as written in its configuration file (TOML in `config/adapters/`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    /// The canonical vendor id, e.g. `hepro`.
    pub vendor: VendorId,
    /// MQTT topic filter the vendor publishes to, with `+` wildcards, e.g. `hepro/+/alarms`.
    pub topic: String,
    /// Index (0-based) of the topic segment that names the gateway; must be a `+` segment.
    pub gateway_segment: usize,
    /// Where the events are in a payload: `""` = the payload is one event or an array of events;
    /// `"data.events"` = a nested array (or a single nested object).
    #[serde(default)]
    pub events_path: String,
    /// Canonical field -> dotted path in the vendor's event (`unit.serial`, `meta.ts`); a numeric
    /// segment indexes an array (`readings.0.value`). Keys containing dots cannot be addressed.
    pub fields: BTreeMap<String, String>,
    /// Constant canonical fields, e.g. `kind = "safety_alarm"` for a vendor that sells one kind.
    #[serde(default)]
    pub constants: BTreeMap<String, Value>,
    /// Canonical field -> (vendor value -> canonical value), e.g. `type: { ALM = "alarm" }`.
    /// Numbers and booleans are looked up by their JSON text (`1`, `true`).
    #[serde(default)]
    pub value_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub time: TimeFormat,
    #[serde(default)]
    pub device_id: DeviceIdRules,
}

/// How a vendor writes `ts`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TimeFormat {
    /// `rfc3339`, `unix_seconds`, `unix_millis`, or a chrono strftime pattern such as
    /// `%d.%m.%Y %H:%M:%S` (a pattern without a time of day means local midnight).
    pub format: String,
    /// IANA zone (e.g. `Europe/Oslo`) for times written without an offset: required by patterns
    /// without an offset, used by `rfc3339` only for values that lack one, and for `unix_*` the
    /// offset the canonical `ts` is written with (UTC when absent).
    #[serde(default)]
    pub zone: Option<String>,
}

/// Device-id normalisation, applied to `device` and `replaces` in this order: trim, uppercase,
/// strip the prefix (then trim again), remove characters. Ids must come out the way the vendor's
/// inventory export writes them, or reconciliation cannot match them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceIdRules {
    pub trim: bool,
    pub uppercase: bool,
    /// Removed when present; compared after uppercasing, so write it in upper case then.
    pub strip_prefix: Option<String>,
    /// Characters to delete anywhere in the id, e.g. `" -:"`.
    pub remove: Option<String>,
}

/// Why one vendor message or event could not be mapped. Becomes a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// A canonical field could not be produced; `why` names the vendor path.
    #[error("field `{field}`: {why}")]
    Field { field: String, why: String },
    /// The message or element as a whole: not JSON, `events_path` missing, not an object.
    #[error("vendor payload: {0}")]
    Payload(String),
}

/// One mapped vendor event: the canonical JSON object, or the vendor element's raw bytes (national
/// identity numbers masked) with the reason.
pub type Mapped = Result<Value, (Vec<u8>, MappingError)>;

/// Vendor text echoed into a reason: bounded, and masked because reasons are stored and shown.
fn echo(s: &str) -> String {
    // Masked before the cut, so the cut never keeps part of a number.
    format!("{:?}", crate::nin::masked_prefix(s, 64))
}

/// Raw bytes kept with a mapping failure: masked like every other dead letter.
fn masked(raw: &[u8]) -> Vec<u8> {
    mask_national_identity_numbers(raw).0
}

impl AdapterConfig {
    /// Checks the configuration once at startup, so a typo fails loudly instead of turning every
    /// message into a dead letter. Reports every problem found, separated by `; `.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems: Vec<String> = Vec::new();
        let mut bad = |p: String| problems.push(p);

        let segments: Vec<&str> = self.topic.split('/').collect();
        if self.topic.is_empty() {
            bad("topic is empty".into());
        } else if self.topic.starts_with('$') {
            bad(format!(
                "topic {:?}: `$` topics are the broker's own",
                self.topic
            ));
        }
        if self.topic.contains('\0') {
            bad("topic contains a NUL character".into());
        }
        for s in &segments {
            if s.is_empty() {
                bad(format!("topic {:?} has an empty segment", self.topic));
            } else if s.contains('#') {
                bad(format!(
                    "topic {:?}: only `+` wildcards are supported, not `#`",
                    self.topic
                ));
            } else if s.contains('+') && *s != "+" {
                bad(format!(
                    "topic {:?}: `+` must be a whole segment, not {s:?}",
                    self.topic
                ));
            }
        }
        match segments.get(self.gateway_segment) {
            Some(&"+") => {}
            Some(s) => bad(format!(
                "gateway_segment {} is {s:?}, not a `+` segment of {:?}",
                self.gateway_segment, self.topic
            )),
            None => bad(format!(
                "gateway_segment {} is past the end of {:?} ({} segments)",
                self.gateway_segment,
                self.topic,
                segments.len()
            )),
        }
        if !self.events_path.is_empty() && self.events_path.split('.').any(str::is_empty) {
            bad(format!(
                "events_path {:?} has an empty segment",
                self.events_path
            ));
        }

        for (field, path) in &self.fields {
            if !CANONICAL_FIELDS.contains(&field.as_str()) {
                bad(format!(
                    "fields: {field:?} is not a canonical field ({})",
                    CANONICAL_FIELDS.join(", ")
                ));
            }
            if path.is_empty() || path.split('.').any(str::is_empty) {
                bad(format!(
                    "fields.{field}: path {path:?} has an empty segment"
                ));
            }
        }
        for (field, value) in &self.constants {
            if !CANONICAL_FIELDS.contains(&field.as_str()) {
                bad(format!("constants: {field:?} is not a canonical field"));
            } else if matches!(field.as_str(), "id" | "ts") {
                // A constant id makes every event a duplicate of the first; a constant ts is
                // never true.
                bad(format!(
                    "constants: `{field}` must come from the vendor's event"
                ));
            } else if self.fields.contains_key(field) {
                bad(format!(
                    "`{field}` is both in fields and in constants; pick one"
                ));
            }
            match value {
                Value::String(s) => {
                    if let Some(why) = unknown_code(field, s) {
                        bad(format!("constants.{field}: {why}"));
                    }
                }
                Value::Number(_) => {}
                other => bad(format!(
                    "constants.{field}: must be a string or a number, got {other}"
                )),
            }
        }
        for (field, map) in &self.value_maps {
            if !self.fields.contains_key(field) {
                bad(format!(
                    "value_maps.{field}: `{field}` is not in fields, so the map is never used"
                ));
            }
            for (vendor_value, canonical) in map {
                if let Some(why) = unknown_code(field, canonical) {
                    bad(format!("value_maps.{field}.{vendor_value}: {why}"));
                }
            }
        }
        for field in REQUIRED_FIELDS {
            let from_vendor = self.fields.contains_key(*field);
            let constant = self.constants.contains_key(*field);
            if !from_vendor && !constant {
                bad(format!(
                    "`{field}` is required by every canonical event but neither in fields nor in constants"
                ));
            }
        }

        if let Err(why) = self.time.check() {
            bad(format!("time: {why}"));
        }
        if let Some(prefix) = &self.device_id.strip_prefix {
            if prefix.is_empty() {
                bad("device_id.strip_prefix is empty".into());
            } else if self.device_id.uppercase && prefix.to_uppercase() != *prefix {
                bad(format!(
                    "device_id.strip_prefix {prefix:?} is compared after uppercasing, so it can never match; write it in upper case"
                ));
            }
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The gateway, when `topic` matches this adapter's filter and its gateway segment is a valid
    /// gateway id (`[A-Za-z0-9._-]{1,64}`); `None` otherwise.
    pub fn matches(&self, topic: &str) -> Option<GatewayId> {
        // MQTT: wildcards never match topics starting with `$` (the broker's own).
        if topic.starts_with('$') {
            return None;
        }
        let filter: Vec<&str> = self.topic.split('/').collect();
        let parts: Vec<&str> = topic.split('/').collect();
        if filter.len() != parts.len() {
            return None;
        }
        if filter.iter().zip(&parts).any(|(f, p)| *f != "+" && f != p) {
            return None;
        }
        GatewayId::parse(parts.get(self.gateway_segment)?).ok()
    }

    /// Maps one message. Each vendor event becomes a canonical JSON object (Contract 1 field
    /// names, `ts` as RFC 3339 with offset) or a [`MappingError`] naming the field. A message that
    /// cannot be read at all (not JSON, `events_path` missing, no events) is one error carrying
    /// the whole payload.
    ///
    /// Semantics: a mapped path that is absent, `null` or a blank string leaves the canonical
    /// field absent (the canonical parser reports it if it is required); a present value a value
    /// map does not know, a path that lands on an object or array, and a `ts` that cannot be read
    /// are errors. Numbers become strings except `battery`, which becomes a number (also from a
    /// string of digits); a numeric municipality is zero-padded to four digits (`301` = `0301`).
    pub fn map(&self, payload: &[u8]) -> Vec<Mapped> {
        let whole = |why: String| vec![Err((masked(payload), MappingError::Payload(why)))];
        let text = match std::str::from_utf8(payload) {
            Ok(t) => t,
            Err(e) => return whole(format!("not UTF-8: {e}")),
        };
        let root: &RawValue = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => return whole(format!("not JSON: {e}")),
        };
        let at = match locate(root, &self.events_path) {
            Ok(at) => at,
            Err(why) => return whole(why),
        };
        // Raw values keep each element's own bytes for its dead letter.
        let elements: Vec<&RawValue> = if at.get().trim_start().starts_with('[') {
            match serde_json::from_str(at.get()) {
                Ok(items) => items,
                Err(e) => return whole(format!("not JSON: {e}")),
            }
        } else {
            vec![at]
        };
        if elements.is_empty() {
            // Like the canonical `empty_batch`: an empty message is kept, not silently dropped.
            return whole(format!("no events at {:?}", self.events_path));
        }
        elements
            .into_iter()
            .map(|raw| {
                self.map_event(raw.get())
                    .map_err(|e| (masked(raw.get().as_bytes()), e))
            })
            .collect()
    }

    fn map_event(&self, raw: &str) -> Result<Value, MappingError> {
        let event = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(MappingError::Payload(
                    "an event must be a JSON object".into(),
                ));
            }
            Err(e) => return Err(MappingError::Payload(format!("not JSON: {e}"))),
        };
        let mut out = Map::new();
        for (field, path) in &self.fields {
            if let Some(value) = lookup(&event, path) {
                out.insert(field.clone(), self.translate(field, path, value)?);
            }
        }
        for (field, value) in &self.constants {
            out.entry(field.clone()).or_insert_with(|| value.clone());
        }
        Ok(Value::Object(out))
    }

    fn translate(&self, field: &str, path: &str, value: &Value) -> Result<Value, MappingError> {
        let err = |why: String| MappingError::Field {
            field: field.to_owned(),
            why,
        };
        let Some(text) = scalar_text(value) else {
            return Err(err(format!(
                "`{path}` holds a JSON {}, not a value",
                if value.is_array() { "array" } else { "object" }
            )));
        };
        let value = match self.value_maps.get(field) {
            Some(map) => match map.get(&text) {
                Some(canonical) => Value::String(canonical.clone()),
                None => {
                    return Err(err(format!(
                        "vendor value {} at `{path}` is not in value_maps.{field}",
                        echo(&text)
                    )));
                }
            },
            None => value.clone(),
        };
        Ok(match field {
            "ts" => {
                let ts = self
                    .time
                    .to_rfc3339(&value)
                    .map_err(|why| err(format!("{} at `{path}`: {why}", echo(&text))))?;
                Value::String(ts)
            }
            "battery" => match &value {
                Value::String(s) => s.trim().parse::<u64>().map_or(value.clone(), Value::from),
                _ => value,
            },
            "municipality" => match &value {
                Value::Number(n) => match n.as_u64().filter(|n| *n <= 9999) {
                    Some(n) => Value::String(format!("{n:04}")),
                    None => Value::String(n.to_string()),
                },
                _ => value,
            },
            "device" | "replaces" => match stringify(value) {
                Value::String(s) => Value::String(self.device_id.apply(&s)),
                other => other,
            },
            _ => stringify(value),
        })
    }
}

/// Numbers sent where the contract wants strings (ids, serials) become their JSON text.
fn stringify(value: Value) -> Value {
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        other => other,
    }
}

/// The text a value map looks a scalar up by; `None` for objects and arrays.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// For the enumerated canonical fields, why `code` is not one of ours (config check only).
fn unknown_code(field: &str, code: &str) -> Option<String> {
    let known: Vec<&str> = match field {
        "type" => EventType::ALL.iter().map(|t| t.id()).collect(),
        "kind" => TechnologyKind::ALL.iter().map(|k| k.id()).collect(),
        "cause" => Cause::ALL.iter().map(|c| c.id()).collect(),
        "outcome" => Outcome::ALL.iter().map(|o| o.id()).collect(),
        "reason" => DecommissionReason::ALL.iter().map(|r| r.id()).collect(),
        _ => return None,
    };
    (!known.contains(&code)).then(|| format!("{code:?} is not one of {}", known.join(", ")))
}

/// A dotted path in a vendor event; `None` when absent, `null` or a blank string.
fn lookup<'a>(event: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut segments = path.split('.');
    let mut current = event.get(segments.next()?)?;
    for seg in segments {
        current = match current {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match current {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        v => Some(v),
    }
}

/// Follows `events_path` through raw JSON, so each event keeps its exact bytes.
fn locate<'a>(root: &'a RawValue, path: &str) -> Result<&'a RawValue, String> {
    if path.is_empty() {
        return Ok(root);
    }
    let mut current = root;
    let mut walked: Vec<&str> = Vec::new();
    for seg in path.split('.') {
        let here = if walked.is_empty() {
            "the payload".to_owned()
        } else {
            format!("`{}`", walked.join("."))
        };
        let text = current.get().trim_start();
        let next = if text.starts_with('{') {
            serde_json::from_str::<HashMap<String, &'a RawValue>>(current.get())
                .map_err(|e| format!("not JSON: {e}"))?
                .remove(seg)
        } else if text.starts_with('[') {
            let items = serde_json::from_str::<Vec<&'a RawValue>>(current.get())
                .map_err(|e| format!("not JSON: {e}"))?;
            seg.parse::<usize>()
                .ok()
                .and_then(|i| items.get(i).copied())
        } else {
            return Err(format!(
                "events_path {path:?}: {here} is not an object or array"
            ));
        };
        current = next.ok_or_else(|| format!("events_path {path:?}: no `{seg}` in {here}"))?;
        walked.push(seg);
    }
    if current.get() == "null" {
        return Err(format!("events_path {path:?} is null"));
    }
    Ok(current)
}

impl DeviceIdRules {
    /// Normalises one vendor device id.
    pub fn apply(&self, id: &str) -> String {
        let mut s = if self.trim { id.trim() } else { id }.to_owned();
        if self.uppercase {
            s = s.to_uppercase();
        }
        if let Some(rest) = self.strip_prefix.as_deref().and_then(|p| s.strip_prefix(p)) {
            s = if self.trim { rest.trim() } else { rest }.to_owned();
        }
        if let Some(remove) = &self.remove {
            s.retain(|c| !remove.contains(c));
        }
        s
    }
}

/// A vendor time read from a pattern: an instant when the text carried an offset (or a unix
/// timestamp), a wall-clock time otherwise.
enum Reading {
    Instant(DateTime<FixedOffset>),
    Local(NaiveDateTime),
}

fn read_pattern(text: &str, pattern: &str) -> Result<Reading, String> {
    let mut p = Parsed::new();
    chrono::format::parse(&mut p, text, StrftimeItems::new(pattern))
        .map_err(|e| format!("does not match {pattern:?} ({e})"))?;
    if p.timestamp().is_some() && p.offset().is_none() {
        // `%s` counts seconds since the epoch in UTC.
        p.set_offset(0).map_err(|e| e.to_string())?;
    }
    if p.offset().is_some() {
        return p
            .to_datetime()
            .map(Reading::Instant)
            .map_err(|e| format!("does not match {pattern:?} ({e})"));
    }
    match p.to_naive_datetime_with_offset(0) {
        Ok(n) => Ok(Reading::Local(n)),
        Err(_) if p.hour_mod_12().is_none() && p.minute().is_none() => p
            .to_naive_date()
            .map(|d| Reading::Local(d.and_time(NaiveTime::MIN)))
            .map_err(|e| format!("does not match {pattern:?} ({e})")),
        Err(e) => Err(format!("does not match {pattern:?} ({e})")),
    }
}

/// A wall-clock time in `zone`. In the hour repeated when summer time ends (02:00–03:00 on the
/// last Sunday of October in Oslo) the time is ambiguous and the earlier instant (summer time) is
/// taken: the vendor has lost the information, and taking the first occurrence matches chrono's
/// `earliest()` and PostgreSQL. In the hour skipped when summer time starts the time does not exist,
/// which is an error rather than a guess.
fn in_zone(local: NaiveDateTime, zone: Tz) -> Result<DateTime<FixedOffset>, String> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => Ok(t.fixed_offset()),
        LocalResult::Ambiguous(a, b) => Ok(if a <= b { a } else { b }.fixed_offset()),
        LocalResult::None => Err(format!(
            "{local} does not exist in {zone} (skipped when summer time starts)"
        )),
    }
}

/// `whole[.fraction]` units since the epoch, `unit_nanos` nanoseconds each, exactly.
fn read_unix(text: &str, unit_nanos: i128) -> Result<DateTime<Utc>, String> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(frac.is_empty() || digits(frac)) || whole.len() > 18 {
        return Err("must be a non-negative number of units since 1970-01-01T00:00:00Z".into());
    }
    let mut nanos: i128 = whole.parse::<i128>().map_err(|e| e.to_string())? * unit_nanos;
    let mut scale = unit_nanos;
    for b in frac.bytes() {
        scale /= 10;
        nanos += i128::from(b - b'0') * scale;
    }
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).map_err(|e| e.to_string())?;
    let sub = u32::try_from(nanos.rem_euclid(1_000_000_000)).map_err(|e| e.to_string())?;
    DateTime::from_timestamp(secs, sub).ok_or_else(|| "out of range".to_owned())
}

impl TimeFormat {
    fn zone(&self) -> Result<Option<Tz>, String> {
        self.zone
            .as_deref()
            .map(|z| {
                z.parse::<Tz>().map_err(|_| {
                    format!("unknown time zone {z:?} (use an IANA name like Europe/Oslo)")
                })
            })
            .transpose()
    }

    fn is_builtin(&self) -> bool {
        matches!(
            self.format.as_str(),
            "rfc3339" | "unix_seconds" | "unix_millis"
        )
    }

    fn check(&self) -> Result<(), String> {
        let zone = self.zone()?;
        if self.is_builtin() {
            return Ok(());
        }
        let pattern = self.format.as_str();
        if pattern.is_empty() {
            return Err("format is empty".into());
        }
        if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
            return Err(format!(
                "format {pattern:?} is not a valid chrono strftime pattern"
            ));
        }
        // Round-trip a sample, so a pattern that loses part of the date or time (no year, no
        // minutes) is caught here rather than by every message.
        let sample =
            DateTime::parse_from_rfc3339("2025-06-30T23:59:00+02:00").map_err(|e| e.to_string())?;
        let mut text = String::new();
        write!(text, "{}", sample.format(pattern))
            .map_err(|_| format!("format {pattern:?} cannot be used to read times"))?;
        let lossy = || format!("format {pattern:?} does not capture a full date and time");
        match read_pattern(&text, pattern).map_err(|_| lossy())? {
            Reading::Instant(t) if t == sample => Ok(()),
            Reading::Local(n)
                if n == sample.naive_local()
                    || n == sample.date_naive().and_time(NaiveTime::MIN) =>
            {
                match zone {
                    Some(_) => Ok(()),
                    None => Err(format!(
                        "format {pattern:?} has no offset, so time.zone is required (e.g. Europe/Oslo)"
                    )),
                }
            }
            _ => Err(lossy()),
        }
    }

    /// A vendor time (string or number) as canonical RFC 3339 with offset.
    fn to_rfc3339(&self, value: &Value) -> Result<String, String> {
        let text = match value {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => return Err("a time must be a string or a number".into()),
        };
        let zone = self.zone()?;
        let t = match self.format.as_str() {
            "rfc3339" => match DateTime::parse_from_rfc3339(&text) {
                Ok(t) => t,
                Err(e) => {
                    let Some(zone) = zone else {
                        return Err(format!("not RFC 3339 with an offset ({e})"));
                    };
                    // Tolerated: ISO local times without an offset, in the configured zone.
                    let local = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                        .iter()
                        .find_map(|p| NaiveDateTime::parse_from_str(&text, p).ok())
                        .ok_or_else(|| format!("not RFC 3339 ({e})"))?;
                    in_zone(local, zone)?
                }
            },
            unix @ ("unix_seconds" | "unix_millis") => {
                let unit = if unix == "unix_seconds" {
                    1_000_000_000
                } else {
                    1_000_000
                };
                let t = read_unix(&text, unit)?;
                match zone {
                    Some(z) => t.with_timezone(&z).fixed_offset(),
                    None => t.fixed_offset(),
                }
            }
            pattern => match read_pattern(&text, pattern)? {
                Reading::Instant(t) => t,
                Reading::Local(local) => {
                    let zone = zone.ok_or("the time has no offset and time.zone is not set")?;
                    in_zone(local, zone)?
                }
            },
        };
        Ok(t.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DeadLetterReason, Event, ParsedItem, parse_payload};
    use crate::ids::{AlarmRef, DeviceId, EventId, MunicipalityCode, RecipientRef};
    use crate::municipality::{Municipality, Registry};
    use crate::topic::EventTopic;
    use serde_json::json;

    fn config() -> AdapterConfig {
        AdapterConfig {
            vendor: VendorId::parse("acme").expect("vendor"),
            topic: "acme/+/up/+".into(),
            gateway_segment: 1,
            events_path: String::new(),
            fields: [
                ("id", "eid"),
                ("ts", "meta.ts"),
                ("municipality", "site.kommune"),
                ("device", "unit.serial"),
                ("type", "code"),
                ("battery", "readings.0.value"),
                ("recipient", "client"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            constants: [("kind".to_owned(), json!("safety_alarm"))].into(),
            value_maps: [(
                "type".to_owned(),
                [("HB", "heartbeat"), ("1", "installed")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            )]
            .into(),
            time: TimeFormat {
                format: "rfc3339".into(),
                zone: None,
            },
            device_id: DeviceIdRules::default(),
        }
    }

    fn one(c: &AdapterConfig, payload: &Value) -> Mapped {
        let mut all = c.map(payload.to_string().as_bytes());
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    fn field_error(m: Mapped) -> (String, String) {
        match m {
            Err((_, MappingError::Field { field, why })) => (field, why),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    fn with_time(format: &str, zone: Option<&str>) -> AdapterConfig {
        let mut c = config();
        c.time = TimeFormat {
            format: format.into(),
            zone: zone.map(str::to_owned),
        };
        c
    }

    fn ts_of(c: &AdapterConfig, ts: Value) -> Result<String, (String, String)> {
        let event = json!({"eid": "e", "meta": {"ts": ts}});
        match one(c, &event) {
            Ok(v) => Ok(v["ts"].as_str().expect("ts").to_owned()),
            Err(e) => Err(field_error(Err(e))),
        }
    }

    #[test]
    fn nested_paths_array_indices_constants_and_number_coercion() {
        let event = json!({
            "eid": 4711,
            "code": "HB",
            "meta": {"ts": "2025-06-30T23:59:00+02:00"},
            "site": {"kommune": 3328},
            "unit": {"serial": 123456789012345_u64, "colour": "red"},
            "readings": [{"value": "87"}, {"value": 3}],
            "client": "",
            "extra": {"ignored": true}
        });
        let v = one(&config(), &event).expect("mapped");
        assert_eq!(
            v,
            json!({
                "id": "4711",
                "ts": "2025-06-30T23:59:00+02:00",
                "municipality": "3328",
                "device": "123456789012345",
                "type": "heartbeat",
                "battery": 87,
                "kind": "safety_alarm"
            }),
            "blank recipient is absent, vendor extras are dropped"
        );
        let mut small = event.clone();
        small["site"]["kommune"] = json!(301);
        assert_eq!(
            one(&config(), &small).expect("mapped")["municipality"],
            "0301"
        );
        // A path through a missing branch or past the array's end leaves the field absent.
        let mut sparse = event;
        sparse["readings"] = json!([]);
        sparse.as_object_mut().expect("object").remove("unit");
        let v = one(&config(), &sparse).expect("mapped");
        assert!(v.get("battery").is_none() && v.get("device").is_none());
    }

    #[test]
    fn the_canonical_parser_still_judges_the_result() {
        let registry = Registry::new([Municipality {
            code: MunicipalityCode::parse("3328").expect("code"),
            name: "Ål".into(),
            population: 1,
        }])
        .expect("registry");
        let topic = EventTopic {
            vendor: VendorId::parse("acme").expect("vendor"),
            gateway: GatewayId::parse("gw").expect("gateway"),
        };
        // Unknown municipality and missing device are not the adapter's business.
        let event = json!({"eid": "e1", "code": "1", "meta": {"ts": "2025-01-01T00:00:00Z"},
            "site": {"kommune": "9999"}, "unit": {"serial": "S1"}});
        let mapped = one(&config(), &event).expect("mapped");
        let parsed = parse_payload(Ok(&topic), mapped.to_string().as_bytes(), &registry, 4096);
        assert!(matches!(
            &parsed[..],
            [ParsedItem::Dead {
                reason: DeadLetterReason::UnknownMunicipality(_),
                ..
            }]
        ));
    }

    #[test]
    fn a_value_the_map_does_not_know_names_the_field_and_the_path() {
        let event = json!({"eid": "e", "code": "EXPLODED", "meta": {"ts": "2025-01-01T00:00:00Z"}});
        let (field, why) = field_error(one(&config(), &event));
        assert_eq!(field, "type");
        assert!(
            why.contains("\"EXPLODED\"") && why.contains("`code`"),
            "{why}"
        );
        // Numbers are looked up by their JSON text.
        let event = json!({"eid": "e", "code": 1, "meta": {"ts": "2025-01-01T00:00:00Z"}});
        assert_eq!(one(&config(), &event).expect("mapped")["type"], "installed");
        // A path that lands on an object is a config or vendor mistake, named too.
        let event = json!({"eid": "e", "unit": {"serial": {"a": 1}}});
        let (field, why) = field_error(one(&config(), &event));
        assert_eq!(field, "device");
        assert!(
            why.contains("`unit.serial`") && why.contains("object"),
            "{why}"
        );
        let text = MappingError::Field { field, why }.to_string();
        assert!(text.starts_with("field `device`: "), "{text}");
    }

    #[test]
    fn unix_times() {
        let c = with_time("unix_millis", None);
        assert_eq!(
            ts_of(&c, json!(1751320740123_u64)),
            Ok("2025-06-30T21:59:00.123+00:00".into())
        );
        let c = with_time("unix_millis", Some("Europe/Oslo"));
        assert_eq!(
            ts_of(&c, json!("1751320740000")),
            Ok("2025-06-30T23:59:00+02:00".into()),
            "the zone sets the offset written"
        );
        let c = with_time("unix_seconds", None);
        assert_eq!(
            ts_of(&c, json!(1751320740.5)),
            Ok("2025-06-30T21:59:00.500+00:00".into())
        );
        let (field, why) = ts_of(&c, json!("yesterday")).expect_err("bad");
        assert_eq!(field, "ts");
        assert!(why.contains("`meta.ts`"), "{why}");
        assert!(ts_of(&c, json!(-5)).is_err());
    }

    #[test]
    fn zone_less_local_times_across_daylight_saving_changes() {
        let c = with_time("%d.%m.%Y %H:%M:%S", Some("Europe/Oslo"));
        c.validate().expect("valid");
        assert_eq!(
            ts_of(&c, json!("30.06.2025 23:59:00")),
            Ok("2025-06-30T23:59:00+02:00".into())
        );
        assert_eq!(
            ts_of(&c, json!("15.01.2025 08:00:00")),
            Ok("2025-01-15T08:00:00+01:00".into())
        );
        // 02:30 on 30 March 2025 was skipped in Oslo: an error, not a guess.
        let (field, why) = ts_of(&c, json!("30.03.2025 02:30:00")).expect_err("gap");
        assert_eq!(field, "ts");
        assert!(why.contains("does not exist"), "{why}");
        // 02:30 on 26 October 2025 happened twice: the earlier one (still summer time) is taken.
        assert_eq!(
            ts_of(&c, json!("26.10.2025 02:30:00")),
            Ok("2025-10-26T02:30:00+02:00".into())
        );
        assert!(ts_of(&c, json!("2025-06-30 23:59")).is_err());
        // A date-only pattern means local midnight.
        let c = with_time("%Y%m%d", Some("Europe/Oslo"));
        c.validate().expect("valid");
        assert_eq!(
            ts_of(&c, json!(20250630)),
            Ok("2025-06-30T00:00:00+02:00".into())
        );
        // A pattern with an offset needs no zone.
        let c = with_time("%Y-%m-%d %H:%M:%S %z", None);
        c.validate().expect("valid");
        assert_eq!(
            ts_of(&c, json!("2025-06-30 23:59:00 +0200")),
            Ok("2025-06-30T23:59:00+02:00".into())
        );
    }

    #[test]
    fn rfc3339_needs_an_offset_unless_a_zone_is_configured() {
        let c = with_time("rfc3339", None);
        assert!(ts_of(&c, json!("2025-06-30T23:59:00")).is_err());
        let c = with_time("rfc3339", Some("Europe/Oslo"));
        assert_eq!(
            ts_of(&c, json!("2025-06-30T23:59:00")),
            Ok("2025-06-30T23:59:00+02:00".into())
        );
        assert_eq!(
            ts_of(&c, json!("2025-06-30T21:59:00Z")),
            Ok("2025-06-30T21:59:00+00:00".into()),
            "an offset in the value wins"
        );
    }

    #[test]
    fn device_id_rules() {
        let rules = DeviceIdRules {
            trim: true,
            uppercase: true,
            strip_prefix: Some("SN:".into()),
            remove: Some(" -:".into()),
        };
        assert_eq!(rules.apply("  sn: ab-12 34:56 "), "AB123456");
        assert_eq!(rules.apply("ab-12"), "AB12", "no prefix: left alone");
        assert_eq!(DeviceIdRules::default().apply(" a-b "), " a-b ");
        let mut c = config();
        c.device_id = rules;
        c.fields.insert("replaces".into(), "old".into());
        let event = json!({"eid": "e", "unit": {"serial": " sn:x-1 "}, "old": "SN: y-2"});
        let v = one(&c, &event).expect("mapped");
        assert_eq!((&v["device"], &v["replaces"]), (&json!("X1"), &json!("Y2")));
        c.device_id.strip_prefix = Some("sn:".into());
        assert!(
            c.validate()
                .expect_err("lower-case prefix")
                .contains("strip_prefix")
        );
    }

    #[test]
    fn events_path_and_payload_errors() {
        let mut c = config();
        c.events_path = "data.batches.1".into();
        let payload = br#"{"data":{"batches":[[], [ {"eid":"a"} , {"eid":"b"}, 7 ]]}}"#;
        let out = c.map(payload);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].as_ref().expect("a")["id"], "a");
        let Err((raw, MappingError::Payload(_))) = &out[2] else {
            panic!("{:?}", out[2])
        };
        assert_eq!(raw, b"7", "the element's own bytes");
        let whole = |c: &AdapterConfig, p: &[u8]| match &c.map(p)[..] {
            [Err((raw, MappingError::Payload(why)))] => (raw.clone(), why.clone()),
            other => panic!("{other:?}"),
        };
        c.events_path = "data.events".into();
        let (raw, why) = whole(&c, br#"{"data":{"other":[]}}"#);
        assert_eq!(raw, br#"{"data":{"other":[]}}"#);
        assert!(why.contains("no `events` in `data`"), "{why}");
        assert!(whole(&c, br#"{"data":[1]}"#).1.contains("no `events`"));
        assert!(
            whole(&c, br#"{"data":{"events":[]}}"#)
                .1
                .contains("no events")
        );
        assert!(whole(&c, b"{oops").1.contains("not JSON"));
        assert!(whole(&c, b"\xff").1.contains("UTF-8"));
        // A single nested object is one event.
        let out = c.map(br#"{"data":{"events":{"eid":"x"}}}"#);
        assert_eq!(out[0].as_ref().expect("x")["id"], "x");
    }

    #[test]
    fn raw_bytes_of_failures_are_masked() {
        let nin = crate::nin::tests::make_nin("241299345")
            .or_else(|| crate::nin::tests::make_nin("241299346"))
            .expect("nin");
        let payload = format!(r#"{{"eid":"e","code":"??","client":"{nin}","meta":{{"ts":"x"}}}}"#);
        let out = config().map(payload.as_bytes());
        let [Err((raw, e))] = &out[..] else {
            panic!("{out:?}")
        };
        assert!(!String::from_utf8_lossy(raw).contains(&nin));
        assert!(!e.to_string().contains(&nin));
    }

    #[test]
    fn topic_matching_and_gateway_extraction() {
        let c = config();
        assert_eq!(
            c.matches("acme/GW_7.a/up/x").map(String::from),
            Some("GW_7.a".to_owned())
        );
        assert_eq!(c.matches("acme/gw/up"), None, "too few segments");
        assert_eq!(c.matches("acme/gw/up/x/y"), None, "too many segments");
        assert_eq!(c.matches("acme/gw/down/x"), None, "literal differs");
        assert_eq!(c.matches("acme/g w/up/x"), None, "not a gateway id");
        assert_eq!(c.matches("acme//up/x"), None, "empty gateway");
        assert_eq!(c.matches("Acme/gw/up/x"), None, "case matters");
        let mut dollar = config();
        dollar.topic = "+/gw".into();
        dollar.gateway_segment = 0;
        assert_eq!(dollar.matches("$SYS/gw"), None);
    }

    #[test]
    fn validate_catches_config_mistakes() {
        config().validate().expect("valid");
        let broken = |f: fn(&mut AdapterConfig)| {
            let mut c = config();
            f(&mut c);
            c.validate().expect_err("invalid")
        };
        assert!(broken(|c| c.gateway_segment = 2).contains("not a `+` segment"));
        assert!(broken(|c| c.gateway_segment = 9).contains("past the end"));
        assert!(broken(|c| c.topic = "acme/#".into()).contains("`#`"));
        assert!(broken(|c| c.topic = "acme/+x/up/+".into()).contains("whole segment"));
        assert!(broken(|c| c.topic = "acme//up/+".into()).contains("empty segment"));
        assert!(
            broken(|c| {
                c.fields.insert("colour".into(), "c".into());
            })
            .contains("not a canonical field")
        );
        assert!(
            broken(|c| {
                c.fields.remove("id");
            })
            .contains("`id` is required")
        );
        assert!(
            broken(|c| {
                c.constants.insert("id".into(), json!("x"));
            })
            .contains("must come from the vendor")
        );
        assert!(
            broken(|c| {
                c.constants.insert("kind".into(), json!("toaster"));
            })
            .contains("\"toaster\" is not one of")
        );
        assert!(
            broken(|c| {
                c.value_maps
                    .get_mut("type")
                    .expect("map")
                    .insert("X".into(), "alarms".into());
            })
            .contains("value_maps.type.X")
        );
        assert!(
            broken(|c| {
                c.value_maps.insert("cause".into(), BTreeMap::new());
            })
            .contains("never used")
        );
        assert!(broken(|c| c.time.zone = Some("Europe/Olso".into())).contains("unknown time zone"));
        assert!(
            broken(|c| c.time.format = "%d.%m.%Y %H:%M".into()).contains("time.zone is required")
        );
        assert!(broken(|c| c.time.format = "%H:%M:%S".into()).contains("full date and time"));
        assert!(broken(|c| c.time.format = "%d.%m.%Y %Q".into()).contains("not a valid"));
        // Several problems are reported together.
        let both = broken(|c| {
            c.gateway_segment = 0;
            c.time.zone = Some("Mars/Base".into());
        });
        assert!(
            both.contains("gateway_segment") && both.contains("Mars/Base"),
            "{both}"
        );
    }

    #[test]
    fn canonical_field_list_matches_the_parser() {
        // Every name here is accepted by the parser (never `unknown_field`)…
        let topic = EventTopic {
            vendor: VendorId::parse("acme").expect("vendor"),
            gateway: GatewayId::parse("gw").expect("gateway"),
        };
        for field in CANONICAL_FIELDS {
            let payload = json!({ *field: null }).to_string();
            let parsed = parse_payload(Ok(&topic), payload.as_bytes(), &Registry::default(), 4096);
            assert!(
                !matches!(
                    &parsed[..],
                    [ParsedItem::Dead {
                        reason: DeadLetterReason::UnknownField(_),
                        ..
                    }]
                ),
                "{field}: {parsed:?}"
            );
        }
        // …and a fully populated event writes exactly these names.
        let ts = DateTime::parse_from_rfc3339("2025-06-30T23:59:00+02:00").expect("ts");
        let full = Event {
            vendor: topic.vendor.clone(),
            gateway: topic.gateway.clone(),
            id: EventId::parse("e").expect("id"),
            ts,
            municipality: MunicipalityCode::parse("3328").expect("code"),
            device: DeviceId::parse("d").expect("device"),
            event_type: EventType::Installed,
            kind: Some(TechnologyKind::SafetyAlarm),
            battery: Some(1),
            alarm: Some(AlarmRef::parse("a").expect("alarm")),
            cause: Some(Cause::Button),
            outcome: Some(Outcome::FalseAlarm),
            recipient: Some(RecipientRef::parse("r").expect("recipient")),
            replaces: Some(DeviceId::parse("old").expect("device")),
            reason: Some(DecommissionReason::Broken),
        };
        let mut written: Vec<String> = full
            .to_json()
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        let mut ours: Vec<String> = CANONICAL_FIELDS.iter().map(|f| (*f).to_owned()).collect();
        written.sort();
        ours.sort();
        assert_eq!(written, ours);
    }

    #[test]
    fn configs_round_trip_through_serde_and_reject_unknown_keys() {
        let c = config();
        let text = serde_json::to_string(&c).expect("serialize");
        assert_eq!(
            serde_json::from_str::<AdapterConfig>(&text).expect("parse"),
            c
        );
        let mut v: Value = serde_json::from_str(&text).expect("json");
        v["colour"] = json!("red");
        assert!(serde_json::from_value::<AdapterConfig>(v).is_err());
    }
}
