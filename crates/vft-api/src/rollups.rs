//! The rollups' routes (the monthly table, change attribution) over `vft_app::rollups`, and
//! dead letters with handling and replay.

use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vft_app::rollups::{ChangesView, CorrectionView, TableFigures, attribution, table_figures};
use vft_app::selection::{Selection, begun_month, parse_year};
use vft_domain::{DeviceTable, TableRow, TechnologyKind, YearMonth};

/// The selection a figure's query asks for: the municipality checked against the registry and
/// then against the caller (400 before 403, as every route answers), then vendor and
/// cooperation.
pub(crate) fn selection(
    state: &AppState,
    caller: &Caller,
    municipality: Option<&str>,
    vendor: Option<&str>,
    cooperation: Option<&str>,
) -> Result<Selection, ApiError> {
    let asked = vft_app::transition::municipality(&state.registry, municipality)?;
    let municipality = caller.scope(asked)?;
    Ok(Selection::parse(
        municipality,
        vendor,
        cooperation,
        &state.cooperations,
    )?)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DevicesQuery {
    /// The year (default: this year).
    year: Option<String>,
    /// One municipality number (a municipality user gets its own without asking).
    municipality: Option<String>,
    /// One vendor, e.g. hepro.
    vendor: Option<String>,
    /// A configured cooperation: only its members in each month count.
    cooperation: Option<String>,
    /// json (default) or csv; `Accept: text/csv` works too.
    format: Option<String>,
}

/// `GET /api/v1/rollups/devices` as JSON: Contract 2's table (`year`, `months`, `rows`,
/// `total`) and, beside it, recipients, published months, corrections and the cooperation.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceTableView {
    pub year: i32,
    /// The twelve months of the year.
    #[schema(value_type = Vec<crate::schemas::Month>)]
    pub months: Vec<YearMonth>,
    /// One row per technology type, in table order.
    pub rows: Vec<TableRowView>,
    /// Per month, the sum of the rows; `null` for a month not begun.
    pub total: Vec<Option<u64>>,
    pub recipients: RecipientTableView,
    /// Per month, whether it is published (closed): its counts are then the published ones.
    pub published: Vec<bool>,
    /// Where later events changed a published count.
    pub corrections: Vec<CorrectionView>,
    /// The cooperation asked for; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub cooperation: Option<String>,
}

/// One technology type's devices in service at each month end.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableRowView {
    #[schema(value_type = crate::schemas::Kind)]
    pub kind: TechnologyKind,
    /// The type's Norwegian label.
    pub label: String,
    /// Per month; `null` for a month not begun.
    pub counts: Vec<Option<u64>>,
}

/// Distinct service recipients per technology type (summed over municipalities).
#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientTableView {
    pub rows: Vec<RecipientRowView>,
    /// Per month, the sum of the rows; `null` for a month not begun.
    pub total: Vec<Option<u64>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecipientRowView {
    #[schema(value_type = crate::schemas::Kind)]
    pub kind: TechnologyKind,
    /// Per month; `null` for a month not begun.
    pub counts: Vec<Option<u64>>,
}

#[utoipa::path(get, path = "/api/v1/rollups/devices", tag = "rollups", params(DevicesQuery), responses((status = 200, description = "The monthly table (Contract 2) with recipients, published months and corrections; CSV with format=csv.", content((DeviceTableView = "application/json"), (String = "text/csv"))), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/rollups/devices`: devices in service at each month end of a year (Contract 2),
/// with, beside the contract's fields, distinct service recipients per type, which months are
/// published, and corrections where later events changed a published figure.
pub async fn devices(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<DevicesQuery>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let year = parse_year(q.year.as_deref(), now)?;
    let selection = selection(
        &state,
        &caller,
        q.municipality.as_deref(),
        q.vendor.as_deref(),
        q.cooperation.as_deref(),
    )?;
    let csv = crate::wants_csv(q.format.as_deref(), &headers)?;
    let TableFigures {
        devices: table,
        recipients: recipient_table,
        published,
        corrections,
    } = table_figures(state.store.as_ref(), &selection, year, now).await?;
    if let Some(dialect) = csv {
        return Ok(crate::csv_response(
            dialect,
            &format!("tabell-{year}"),
            &selection.file_scope(),
            table.to_csv(),
        ));
    }
    // Destructured in full, so a field added to the domain table is a compile error here.
    let DeviceTable {
        year,
        months,
        rows,
        total,
    } = table;
    let body = DeviceTableView {
        year,
        months,
        rows: rows
            .into_iter()
            .map(
                |TableRow {
                     kind,
                     label,
                     counts,
                 }| TableRowView {
                    kind,
                    label,
                    counts,
                },
            )
            .collect(),
        total,
        recipients: RecipientTableView {
            rows: recipient_table
                .rows
                .into_iter()
                .map(|r| RecipientRowView {
                    kind: r.kind,
                    counts: r.counts,
                })
                .collect(),
            total: recipient_table.total,
        },
        published,
        corrections,
        cooperation: selection.cooperation().map(|c| c.id.clone()),
    };
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// The month to explain (YYYY-MM), against the month before.
    month: Option<String>,
    municipality: Option<String>,
    vendor: Option<String>,
    cooperation: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/rollups/devices/changes", tag = "rollups", params(ChangesQuery), responses((status = 200, description = "Per technology type: before, after, delta and the lines adding up to delta.", body = ChangesView), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/rollups/devices/changes?month=YYYY-MM`: why each row moved since the month
/// before, line by line; the lines of a row add up to its change.
pub async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ChangesQuery>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let month = begun_month(q.month.as_deref(), now)?;
    let selection = selection(
        &state,
        &caller,
        q.municipality.as_deref(),
        q.vendor.as_deref(),
        q.cooperation.as_deref(),
    )?;
    // Read from the service state ingest keeps: the cost follows the month's changes, not the
    // fleet, so nothing is kept and a GET writes nothing.
    let view = attribution(
        state.store.as_ref(),
        &state.registry,
        &selection,
        month,
        now,
    )
    .await?;
    Ok(Json(view).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLettersQuery {
    /// At most this many (1-1000, default 100).
    limit: Option<u32>,
    /// Only those older than this id (`next_before` of the previous page).
    before: Option<i64>,
    /// `false`: only open ones; `true`: only those handled (or replayed).
    handled: Option<bool>,
}

/// One page of dead letters, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetterView>,
    /// Pass as `before` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_before: Option<i64>,
}

/// A message (or one element of a batch) that broke the contract, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    pub id: i64,
    pub topic: String,
    /// A bounded code, e.g. `malformed_json`.
    pub reason_code: String,
    pub reason: String,
    /// RFC 3339 with offset (`+00:00`).
    #[schema(format = DateTime)]
    pub received_at: String,
    /// The payload as text (invalid UTF-8 replaced); national identity numbers masked.
    pub payload: String,
    /// Size of the stored payload.
    pub payload_bytes: u64,
    /// When it was marked handled (or replayed); `null` while open.
    pub handled_at: Option<String>,
    /// Who marked it (as the audit log names them).
    pub handled_by: Option<String>,
    /// Whether it was replayed into events (and how many), once the configuration allowed.
    pub replayed: bool,
    pub replayed_events: Option<u64>,
}

impl From<vft_store::DeadLetter> for DeadLetterView {
    fn from(d: vft_store::DeadLetter) -> Self {
        Self {
            id: d.id,
            topic: d.topic,
            reason_code: d.reason_code,
            reason: d.reason,
            received_at: d.received_at.to_rfc3339(),
            payload: String::from_utf8_lossy(&d.payload).into_owned(),
            payload_bytes: d.payload.len() as u64,
            handled_at: d.handled.as_ref().map(|(at, _)| at.to_rfc3339()),
            handled_by: d.handled.map(|(_, by)| by),
            replayed: d.replayed_events.is_some(),
            replayed_events: d.replayed_events,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/dead-letters/{id}/handled", tag = "ingest", params(("id" = i64, Path)), responses((status = 200, body = DeadLetterView), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody), (status = 404, body = crate::schemas::ErrorBody)))]
/// `POST /api/v1/dead-letters/{id}/handled` (coordinator, operator): marks a rejected message
/// as dealt with. A second mark keeps the first (who and when).
pub async fn mark_handled(
    State(state): State<AppState>,
    crate::auth::DeadLetterReader(who): crate::auth::DeadLetterReader,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Result<Json<DeadLetterView>, ApiError> {
    if !state
        .store
        .mark_dead_letter_handled(id, &who.actor(), Utc::now(), None)
        .await?
    {
        return Err(ApiError::NotFound(format!("no dead letter {id}")));
    }
    let letter = state
        .store
        .dead_letter(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))?;
    Ok(Json(letter.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayView {
    pub replayed: bool,
    /// Events the payload gave (stored once: a replay of what is stored is a duplicate).
    pub events: u64,
    pub dead_letter: DeadLetterView,
}

#[utoipa::path(post, path = "/api/v1/dead-letters/{id}/replay", tag = "ingest", params(("id" = i64, Path)), responses((status = 200, description = "Every item of its payload is now a valid event: stored, and the dead letter marked handled.", body = ReplayView), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody), (status = 404, body = crate::schemas::ErrorBody), (status = 422, description = "Still not valid (the reason says why), or not replayable (an identity number was masked in it, or it came on a vendor adapter's topic).", body = crate::schemas::ErrorBody)))]
/// `POST /api/v1/dead-letters/{id}/replay` (coordinator): parses the stored payload again with
/// today's configuration (a municipality added, say); if every item is now a valid event, the
/// events are stored as ingest would store them and the dead letter is marked handled.
pub async fn replay(
    State(state): State<AppState>,
    crate::auth::Coordinator(who): crate::auth::Coordinator,
    axum::extract::Path(id): axum::extract::Path<i64>,
) -> Result<Json<ReplayView>, ApiError> {
    let letter = state
        .store
        .dead_letter(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))?;
    if letter.replayed_events.is_some() {
        let events = letter.replayed_events.unwrap_or(0);
        return Ok(Json(ReplayView {
            replayed: true,
            events,
            dead_letter: letter.into(),
        }));
    }
    // Its payload was stored with the number masked: it can never become the events it was.
    if letter.reason_code == "national_identity_number" {
        return Err(ApiError::NotReplayable(
            "it held a national identity number, which was masked; ask the sender to send it again without".into(),
        ));
    }
    let topic = vft_domain::EventTopic::parse(&state.topic_prefix, &letter.topic).map_err(|_| {
        ApiError::NotReplayable(
            "only messages on vft's own event topics can be replayed here; a vendor adapter's messages come again from the vendor".into(),
        )
    })?;
    let now = Utc::now();
    let items = vft_domain::parse_payload_at(
        Ok(&topic),
        &letter.payload,
        &state.registry,
        letter.payload.len().max(1),
        &state.plausible_times,
        now,
    );
    let mut events = Vec::with_capacity(items.len());
    for item in items {
        match item {
            vft_domain::ParsedItem::Event(e) => events.push(*e),
            vft_domain::ParsedItem::Dead { reason, .. } => {
                return Err(ApiError::NotReplayable(format!(
                    "still not valid: {}",
                    vft_domain::nin::masked_prefix(&reason.to_string(), 300)
                )));
            }
        }
    }
    let outcome = state.store.write_batch(&events, &[], now).await?;
    if !outcome.conflicting.is_empty() {
        return Err(ApiError::NotReplayable(format!(
            "{} of its events have ids already stored with other content",
            outcome.conflicting.len()
        )));
    }
    let count = events.len() as u64;
    state
        .store
        .mark_dead_letter_handled(id, &who.actor(), now, Some(count))
        .await?;
    let letter = state
        .store
        .dead_letter(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no dead letter {id}")))?;
    tracing::info!(dead_letter = id, events = count, "dead letter replayed");
    Ok(Json(ReplayView {
        replayed: true,
        events: count,
        dead_letter: letter.into(),
    }))
}

#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "ingest", params(DeadLettersQuery), responses((status = 200, description = "Dead letters, newest first, and next_before.", body = DeadLetterPage), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/dead-letters`: what broke the contract, newest first. Coordinator and
/// operator only: a dead letter may not say which municipality it belongs to.
pub async fn dead_letters(
    State(state): State<AppState>,
    _reader: crate::auth::DeadLetterReader,
    note: crate::audit_slot::AuditNote,
    Query(q): Query<DeadLettersQuery>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state
        .store
        .dead_letter_page(limit, q.before, q.handled)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|d| d.id))
        .flatten();
    note.subjects(rows.iter().map(|d| format!("dead_letter={}", d.id)));
    let items = rows.into_iter().map(DeadLetterView::from).collect();
    Ok(Json(DeadLetterPage {
        items,
        next_before: next,
    }))
}
