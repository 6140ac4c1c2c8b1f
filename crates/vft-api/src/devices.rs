//! The device inventory: list with filters, sorting and cursor paging (JSON or CSV), one
//! device with its replacement chain and history, and a device's own offline timeout.

use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vft_domain::{
    Connectivity, DeviceId, Event, MunicipalityCode, Registry, TechnologyKind, VendorId,
};
use vft_store::{DeviceCursor, DeviceQuery, DeviceRecord, DeviceSort, SortValue, Timeouts};

/// Query parameters of a device list, as strings: parsed here so the API and the CLI agree.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeviceParams {
    pub municipality: Option<String>,
    pub kind: Option<String>,
    pub vendor: Option<String>,
    /// online | offline | never_seen
    pub connectivity: Option<String>,
    pub battery_below: Option<String>,
    /// Date (YYYY-MM-DD, Europe/Oslo) or RFC 3339 instant.
    pub installed_before: Option<String>,
    pub installed_after: Option<String>,
    pub in_service: Option<String>,
    /// Substring of the device id, case-insensitive.
    pub q: Option<String>,
    /// device | installed | municipality | kind
    pub sort: Option<String>,
    /// asc | desc
    pub order: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
    /// json | csv
    pub format: Option<String>,
}

fn bad(what: &str, got: &str, expected: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "{what} must be {expected}, got {:?}",
        got.chars().take(64).collect::<String>()
    ))
}

/// An RFC 3339 instant, or a date meaning its first instant in Europe/Oslo.
fn instant(what: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| bad(what, s, "a date (YYYY-MM-DD) or RFC 3339 time"))?;
    Ok(vft_domain::month::oslo_midnight(date))
}

impl DeviceParams {
    /// Builds the store query. `scope` is the caller's own municipality, if it has one.
    pub fn to_query(
        &self,
        scope: Option<&MunicipalityCode>,
        registry: &Registry,
        now: DateTime<Utc>,
        timeouts: Timeouts,
    ) -> Result<DeviceQuery, ApiError> {
        let mut q = DeviceQuery::new(now, timeouts);
        let asked = self
            .municipality
            .as_deref()
            .map(|m| {
                let code =
                    MunicipalityCode::parse(m).map_err(|e| ApiError::BadRequest(e.to_string()))?;
                if registry.contains(&code) {
                    Ok(code)
                } else {
                    Err(ApiError::BadRequest(format!("unknown municipality {code}")))
                }
            })
            .transpose()?;
        q.municipalities = match (scope, asked) {
            (Some(own), Some(asked)) if *own != asked => {
                return Err(ApiError::Forbidden(format!(
                    "this token may see municipality {own} only, not {asked}"
                )));
            }
            (Some(own), _) => Some(vec![own.clone()]),
            (None, asked) => asked.map(|m| vec![m]),
        };
        // The caller's own municipality: each device as its own events show it (a device that
        // moved in shows its first install here, not the one where it came from).
        q.own = scope.cloned();
        if let Some(k) = &self.kind {
            q.kind = Some(
                TechnologyKind::from_id(k).ok_or_else(|| bad("kind", k, "a technology type id"))?,
            );
        }
        if let Some(v) = &self.vendor {
            q.vendor = Some(VendorId::parse(v).map_err(|e| ApiError::BadRequest(e.to_string()))?);
        }
        if let Some(c) = &self.connectivity {
            q.connectivity = Some(
                Connectivity::from_id(c)
                    .ok_or_else(|| bad("connectivity", c, "online, offline or never_seen"))?,
            );
        }
        if let Some(b) = &self.battery_below {
            q.battery_below = Some(
                b.parse::<u8>()
                    .ok()
                    .filter(|b| *b <= 101)
                    .ok_or_else(|| bad("battery_below", b, "0-101"))?,
            );
        }
        if let Some(t) = &self.installed_before {
            q.installed_before = Some(instant("installed_before", t)?);
        }
        if let Some(t) = &self.installed_after {
            q.installed_after = Some(instant("installed_after", t)?);
        }
        if let Some(s) = &self.in_service {
            q.in_service = Some(match s.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(bad("in_service", s, "true or false")),
            });
        }
        q.search = self
            .q
            .clone()
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(64).collect());
        q.sort = match self.sort.as_deref() {
            None | Some("device") => DeviceSort::Device,
            Some("installed") => DeviceSort::Installed,
            Some("municipality") => DeviceSort::Municipality,
            Some("kind") => DeviceSort::Kind,
            Some(other) => {
                return Err(bad(
                    "sort",
                    other,
                    "device, installed, municipality or kind",
                ));
            }
        };
        q.descending = match self.order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(bad("order", other, "asc or desc")),
        };
        q.limit = match &self.limit {
            None => 100,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|l| (1..=1000).contains(l))
                .ok_or_else(|| bad("limit", l, "1-1000"))?,
        };
        if let Some(c) = &self.cursor {
            q.after = Some(decode_cursor(c, q.sort, q.descending)?);
        }
        Ok(q)
    }
}

#[derive(Serialize, Deserialize)]
struct CursorWire {
    sort: String,
    desc: bool,
    int: Option<i64>,
    text: Option<String>,
    vendor: String,
    device: String,
}

fn sort_name(s: DeviceSort) -> &'static str {
    match s {
        DeviceSort::Device => "device",
        DeviceSort::Installed => "installed",
        DeviceSort::Municipality => "municipality",
        DeviceSort::Kind => "kind",
    }
}

/// Opaque to clients; carries its sort so a cursor is never used with another order.
pub fn encode_cursor(sort: DeviceSort, desc: bool, c: &DeviceCursor) -> String {
    let (int, text) = match &c.sort_value {
        SortValue::Int(i) => (Some(*i), None),
        SortValue::Text(t) => (None, Some(t.clone())),
    };
    let wire = CursorWire {
        sort: sort_name(sort).into(),
        desc,
        int,
        text,
        vendor: c.vendor.to_string(),
        device: c.device.to_string(),
    };
    hex::encode(serde_json::to_vec(&wire).unwrap_or_default())
}

fn decode_cursor(s: &str, sort: DeviceSort, desc: bool) -> Result<DeviceCursor, ApiError> {
    let invalid = || {
        ApiError::BadRequest(
            "invalid cursor: pass next_cursor from the previous page unchanged".into(),
        )
    };
    let bytes = hex::decode(s).map_err(|_| invalid())?;
    let wire: CursorWire = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if wire.sort != sort_name(sort) || wire.desc != desc {
        return Err(ApiError::BadRequest(
            "the cursor belongs to another sort order".into(),
        ));
    }
    let sort_value = match (wire.int, wire.text) {
        (Some(i), None) => SortValue::Int(i),
        (None, Some(t)) => SortValue::Text(t),
        _ => return Err(invalid()),
    };
    Ok(DeviceCursor {
        sort_value,
        vendor: VendorId::parse(&wire.vendor).map_err(|_| invalid())?,
        device: DeviceId::parse(&wire.device).map_err(|_| invalid())?,
    })
}

/// A device as the API and CLI show it. Every field is present; unknown values are `null`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceView {
    pub vendor: String,
    pub device: String,
    #[schema(value_type = Option<crate::schemas::Kind>, required = true)]
    pub kind: Option<TechnologyKind>,
    pub municipality: String,
    #[schema(required = true)]
    pub gateway: Option<String>,
    pub in_service: bool,
    /// online, offline or never_seen
    #[schema(value_type = String)]
    pub connectivity: Connectivity,
    #[schema(required = true)]
    pub last_contact: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub battery: Option<u8>,
    #[schema(required = true)]
    pub battery_at: Option<DateTime<Utc>>,
    pub fault_open: bool,
    #[schema(required = true)]
    pub first_installed: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub lifecycle_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub recipient: Option<String>,
    #[schema(required = true)]
    pub replaces: Option<String>,
    /// The offline timeout in force: the device's own, else its type's.
    pub timeout_secs: u64,
    /// The device's own timeout, if set.
    #[schema(required = true)]
    pub timeout_override_secs: Option<u64>,
}

impl DeviceView {
    pub fn new(r: &DeviceRecord, timeouts: &Timeouts) -> Self {
        let type_timeout = r
            .kind
            .map_or(timeouts.unknown_kind, |k| timeouts.per_kind[k.index()]);
        Self {
            vendor: r.vendor.to_string(),
            device: r.device.to_string(),
            kind: r.kind,
            municipality: r.municipality.to_string(),
            gateway: r.gateway.clone(),
            in_service: r.in_service,
            connectivity: r.connectivity,
            last_contact: r.last_contact,
            battery: r.battery,
            battery_at: r.battery_at,
            fault_open: r.fault_open,
            first_installed: r.first_installed,
            lifecycle_at: r.lifecycle_at,
            recipient: r.recipient.clone(),
            replaces: r.replaces.as_ref().map(ToString::to_string),
            timeout_secs: r.timeout_override_secs.unwrap_or(type_timeout),
            timeout_override_secs: r.timeout_override_secs,
        }
    }
}

/// The same rows as CSV, one line per device.
pub fn devices_csv(views: &[DeviceView]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
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
    ]);
    let t = |t: &Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for v in views {
        // Device ids, gateways and recipients are the senders' text: never a formula when a
        // spreadsheet opens the file.
        let cells = [
            v.vendor.clone(),
            v.device.clone(),
            v.kind.map(|k| k.id().to_owned()).unwrap_or_default(),
            v.municipality.clone(),
            v.gateway.clone().unwrap_or_default(),
            v.in_service.to_string(),
            v.connectivity.id().to_owned(),
            t(&v.last_contact),
            v.battery.map(|b| b.to_string()).unwrap_or_default(),
            v.fault_open.to_string(),
            t(&v.first_installed),
            v.recipient.clone().unwrap_or_default(),
            v.replaces.clone().unwrap_or_default(),
            v.timeout_secs.to_string(),
        ];
        let _ = w.write_record(
            cells
                .iter()
                .map(|c| vft_domain::spreadsheet_safe(c).into_owned()),
        );
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// One page of the inventory.
#[derive(Debug, Serialize, ToSchema)]
pub struct DevicePage {
    pub items: Vec<DeviceView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// How many devices match the filters on every page together; on the first page only.
    pub total: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(DeviceParams), responses((status = 200, description = "One page of devices and next_cursor; CSV of the whole query with format=csv.", content((DevicePage = "application/json"), (String = "text/csv"))), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/devices`
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    note: crate::audit_slot::AuditNote,
    headers: HeaderMap,
    Query(params): Query<DeviceParams>,
) -> Result<Response, ApiError> {
    let mut query = params.to_query(caller.own(), &state.registry, Utc::now(), state.timeouts)?;
    if let Some(dialect) = crate::wants_csv(params.format.as_deref(), &headers)? {
        // The export is the whole query, not one page.
        query.limit = 0;
        query.after = None;
        let rows = state.store.devices(&query).await?;
        let views: Vec<DeviceView> = rows
            .iter()
            .map(|r| DeviceView::new(r, &state.timeouts))
            .collect();
        note_devices(&note, &views);
        let scope = query
            .municipalities
            .as_deref()
            .filter(|m| m.len() == 1)
            .map_or_else(|| "region".to_owned(), |m| m[0].to_string());
        return Ok(crate::csv_response(
            dialect,
            "enheter",
            &scope,
            devices_csv(&views),
        ));
    }
    let rows = state.store.devices(&query).await?;
    // The first page counts them all (later pages leave it out: the count costs a query).
    let total = if query.after.is_none() {
        Some(state.store.count_devices(&query).await?)
    } else {
        None
    };
    let next = (rows.len() == query.limit as usize)
        .then(|| {
            rows.last()
                .map(|r| encode_cursor(query.sort, query.descending, &r.cursor))
        })
        .flatten();
    let items: Vec<DeviceView> = rows
        .iter()
        .map(|r| DeviceView::new(r, &state.timeouts))
        .collect();
    note_devices(&note, &items);
    Ok(Json(DevicePage {
        items,
        next_cursor: next,
        total,
    })
    .into_response())
}

/// The audit record of a device list names every device shown and its recipient.
fn note_devices(note: &crate::audit_slot::AuditNote, views: &[DeviceView]) {
    note.subjects(views.iter().flat_map(|v| {
        std::iter::once(format!("{}/{}", v.vendor, v.device))
            .chain(v.recipient.as_ref().map(|r| format!("recipient={r}")))
    }));
}

async fn visible_device(
    state: &AppState,
    caller: &Caller,
    vendor: &VendorId,
    device: &DeviceId,
) -> Result<Option<DeviceRecord>, ApiError> {
    let mut q = DeviceQuery::new(Utc::now(), state.timeouts);
    q.device = Some((vendor.clone(), device.clone()));
    q.municipalities = caller.own().map(|m| vec![m.clone()]);
    q.own = caller.own().cloned();
    Ok(state.store.devices(&q).await?.into_iter().next())
}

fn parse_key(vendor: &str, device: &str) -> Result<(VendorId, DeviceId), ApiError> {
    Ok((
        VendorId::parse(vendor).map_err(|e| ApiError::BadRequest(e.to_string()))?,
        DeviceId::parse(device).map_err(|e| ApiError::BadRequest(e.to_string()))?,
    ))
}

/// One device with its replacement chain both ways and the history of the whole chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceDetail {
    pub device: DeviceView,
    /// The devices this one replaced, newest first.
    pub replaces_chain: Vec<String>,
    /// The devices that replaced this one.
    pub replaced_by_chain: Vec<String>,
    /// Events of the whole chain, oldest first.
    pub history: Vec<HistoryEvent>,
}

// Built from `vft_domain::Event` as `Event::to_json` writes it (optional fields absent, not
// null), with vendor and gateway added.
/// One event of a device's history: the canonical event (Contract 1) with its vendor and
/// gateway. Optional fields are absent when the event has none.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEvent {
    pub id: String,
    /// As the device sent it, with its offset (RFC 3339).
    #[schema(format = DateTime)]
    pub ts: String,
    pub municipality: String,
    pub device: String,
    #[serde(rename = "type")]
    #[schema(value_type = crate::schemas::EventTypeId)]
    pub event_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = crate::schemas::Kind)]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u8)]
    pub battery: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub alarm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = crate::schemas::AlarmCause)]
    pub cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = crate::schemas::OutcomeId)]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub recipient: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub replaces: Option<String>,
    /// Why a unit left service (on `decommissioned`, when given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub vendor: String,
    pub gateway: String,
}

impl From<&Event> for HistoryEvent {
    fn from(e: &Event) -> Self {
        // Destructured in full, so a field added to the event is a compile error here.
        let Event {
            vendor,
            gateway,
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
        } = e;
        Self {
            id: id.as_str().to_owned(),
            ts: ts.to_rfc3339(),
            municipality: municipality.as_str().to_owned(),
            device: device.as_str().to_owned(),
            event_type: event_type.id().to_owned(),
            kind: kind.map(|k| k.id().to_owned()),
            battery: *battery,
            alarm: alarm.as_ref().map(|a| a.as_str().to_owned()),
            cause: cause.map(|c| c.id().to_owned()),
            outcome: outcome.map(|o| o.id().to_owned()),
            recipient: recipient.as_ref().map(|r| r.as_str().to_owned()),
            replaces: replaces.as_ref().map(|r| r.as_str().to_owned()),
            reason: reason.map(|r| r.id().to_owned()),
            vendor: vendor.as_str().to_owned(),
            gateway: gateway.as_str().to_owned(),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/devices/{vendor}/{device}", tag = "devices", params(("vendor" = String, Path), ("device" = String, Path)), responses((status = 200, description = "The device, its replacement chain both ways and the chain's history.", body = DeviceDetail), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody), (status = 404, description = "No such device visible to this token", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/devices/{vendor}/{device}`: the device, its replacement chain both ways, and
/// the history of the whole chain (lifecycle, status, alarms), oldest first.
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    note: crate::audit_slot::AuditNote,
    Path((vendor, device)): Path<(String, String)>,
) -> Result<Json<DeviceDetail>, ApiError> {
    let (vendor, device) = parse_key(&vendor, &device)?;
    // Another municipality's device is invisible: 404, as if it did not exist.
    let record = visible_device(&state, &caller, &vendor, &device)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device {vendor}/{device}")))?;
    if let Some(recipient) = &record.recipient {
        note.subjects([format!("recipient={recipient}")]);
    }
    const MAX_CHAIN: usize = 50;
    let mut older = Vec::new();
    let mut cursor = record.replaces.clone();
    while let Some(prev) = cursor.filter(|_| older.len() < MAX_CHAIN) {
        match visible_device(&state, &caller, &vendor, &prev).await? {
            Some(r) if !older.contains(&r.device) && r.device != device => {
                cursor = r.replaces.clone();
                older.push(r.device);
            }
            _ => break,
        }
    }
    let mut newer = Vec::new();
    let mut frontier = vec![device.clone()];
    while let Some(d) = frontier.pop().filter(|_| newer.len() < MAX_CHAIN) {
        for next in state.store.replaced_by(&vendor, &d).await? {
            if next != device
                && !newer.contains(&next)
                && visible_device(&state, &caller, &vendor, &next)
                    .await?
                    .is_some()
            {
                frontier.push(next.clone());
                newer.push(next);
            }
        }
    }
    let mut chain: Vec<DeviceId> = older.iter().rev().cloned().collect();
    chain.push(device.clone());
    chain.extend(newer.iter().cloned());
    // A device that moved in keeps its earlier municipality's events out of this one's sight
    // (asked of the store, so they cannot crowd this municipality's events out of the limit).
    let history = state
        .store
        .device_events(&vendor, &chain, caller.own(), 5000)
        .await?;
    Ok(Json(DeviceDetail {
        device: DeviceView::new(&record, &state.timeouts),
        replaces_chain: older.iter().map(ToString::to_string).collect(),
        replaced_by_chain: newer.iter().map(ToString::to_string).collect(),
        history: history.iter().map(HistoryEvent::from).collect(),
    }))
}

/// Longest offline timeout accepted: ten years. Larger values would overflow the stores'
/// microsecond arithmetic and mean "never offline", which is not a timeout.
pub const MAX_TIMEOUT_SECS: u64 = 10 * 365 * 24 * 3600;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutBody {
    /// Seconds (1 to ten years); `null` returns the device to its type's timeout. Required.
    #[serde(deserialize_with = "required_nullable")]
    pub timeout_secs: Option<u64>,
}

/// Present-but-null is allowed; absent is an error (a typo must not clear an override).
fn required_nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<u64>::deserialize(d)
}

/// Checks a device's own timeout, wherever it comes from (API or CLI).
pub fn check_timeout(secs: Option<u64>) -> Result<Option<u64>, ApiError> {
    match secs {
        Some(s) if !(1..=MAX_TIMEOUT_SECS).contains(&s) => Err(ApiError::BadRequest(format!(
            "timeout_secs must be 1 to {MAX_TIMEOUT_SECS} seconds (or null), got {s}"
        ))),
        other => Ok(other),
    }
}

#[utoipa::path(put, path = "/api/v1/devices/{vendor}/{device}/timeout", tag = "devices", params(("vendor" = String, Path), ("device" = String, Path)), request_body = TimeoutBody, responses((status = 200, body = DeviceView), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 404, body = crate::schemas::ErrorBody)))]
/// `PUT /api/v1/devices/{vendor}/{device}/timeout`
pub async fn set_timeout(
    State(state): State<AppState>,
    caller: Caller,
    Path((vendor, device)): Path<(String, String)>,
    body: Result<Json<TimeoutBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    // A device's timeout is the coordinator's to set (it changes what every view counts as
    // offline); a municipality user reads it only.
    caller.require_coordinator()?;
    let (vendor, device) = parse_key(&vendor, &device)?;
    let Json(body) = body.map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be JSON {{\"timeout_secs\": seconds or null}}: {}",
            e.body_text()
        ))
    })?;
    check_timeout(body.timeout_secs)?;
    visible_device(&state, &caller, &vendor, &device)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device {vendor}/{device}")))?;
    state
        .store
        .set_device_timeout(&vendor, &device, body.timeout_secs)
        .await?;
    let record = visible_device(&state, &caller, &vendor, &device)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device {vendor}/{device}")))?;
    Ok(Json(DeviceView::new(&record, &state.timeouts)).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VendorList {
    pub vendors: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/vendors", tag = "devices", responses((status = 200, body = VendorList), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/vendors`: every vendor with a device (the dashboard's vendor filters).
pub async fn vendors(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<VendorList>, ApiError> {
    Ok(Json(VendorList {
        vendors: state
            .store
            .vendors()
            .await?
            .iter()
            .map(ToString::to_string)
            .collect(),
    }))
}
