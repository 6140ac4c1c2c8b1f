//! The device inventory's routes: list with filters, sorting and cursor paging (JSON or CSV)
//! and a device's own offline timeout over `vft_app::inventory`; one device with its
//! replacement chain and history.

use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vft_app::inventory::{DevicePage, DeviceParams, DeviceView, devices_csv, parse_key};
use vft_domain::{DeviceId, Event, VendorId};
use vft_store::DeviceRecord;

#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(DeviceParams), responses((status = 200, description = "One page of devices and next_cursor; CSV of the whole query with format=csv.", content((DevicePage = "application/json"), (String = "text/csv"))), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/devices`
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    note: crate::audit_slot::AuditNote,
    headers: HeaderMap,
    Query(params): Query<DeviceParams>,
) -> Result<Response, ApiError> {
    let query = params.to_query(caller.own(), &state.registry, Utc::now(), state.timeouts)?;
    if let Some(dialect) = crate::wants_csv(params.format.as_deref(), &headers)? {
        // The export is the whole query, not one page.
        let views =
            vft_app::inventory::export(state.store.as_ref(), &query, &state.timeouts).await?;
        note_devices(&note, &views);
        return Ok(crate::csv_response(
            dialect,
            "enheter",
            &vft_app::inventory::file_scope(&query),
            devices_csv(&views),
        ));
    }
    let page = vft_app::inventory::page(state.store.as_ref(), &query, &state.timeouts).await?;
    note_devices(&note, &page.items);
    Ok(Json(page).into_response())
}

/// The audit record of a device list names every device shown and its recipient.
fn note_devices(note: &crate::audit_slot::AuditNote, views: &[DeviceView]) {
    note.subjects(views.iter().flat_map(|v| {
        std::iter::once(format!("{}/{}", v.vendor, v.device))
            .chain(v.recipient.as_ref().map(|r| format!("recipient={r}")))
    }));
}

/// The device as the caller sees it (another municipality's is not there).
async fn visible_device(
    state: &AppState,
    caller: &Caller,
    vendor: &VendorId,
    device: &DeviceId,
) -> Result<Option<DeviceRecord>, ApiError> {
    Ok(vft_app::inventory::visible_device(
        state.store.as_ref(),
        state.timeouts,
        caller.own(),
        vendor,
        device,
        Utc::now(),
    )
    .await?)
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
    let view = vft_app::inventory::set_timeout(
        state.store.as_ref(),
        state.timeouts,
        caller.own(),
        &vendor,
        &device,
        body.timeout_secs,
        Utc::now(),
    )
    .await?;
    Ok(Json(view).into_response())
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
