//! The response centre's and medication routes (over `vft_app::figures`), the response
//! centre's unanswered alarms, and publishing (closing) a month.

use crate::auth::Caller;
use crate::rollups::selection;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vft_app::figures::{MedicationView, response_months, technology_kind};
use vft_app::selection::{parse_month, year_months};
use vft_domain::YearMonth;
use vft_domain::response::{MonthResponse, ResponseStandard};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FiguresQuery {
    /// The year (default: this year).
    year: Option<String>,
    municipality: Option<String>,
    /// A technology type id (response centre only).
    kind: Option<String>,
}

/// `GET /api/v1/rollups/response-centre`: the standard and one entry per month of the year.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseCentreView {
    pub year: i32,
    pub standard: StandardView,
    /// One entry per month of the year.
    // `ResponseMonth` (schema only) describes the domain's `MonthResponse`.
    #[schema(value_type = Vec<ResponseMonth>)]
    pub months: Vec<MonthResponse>,
}

/// The shares of alarms that must be answered within 60 s and within 180 s.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ResponseStandard)]
pub struct StandardView {
    pub within_60s: f64,
    pub within_180s: f64,
}

impl From<ResponseStandard> for StandardView {
    fn from(s: ResponseStandard) -> Self {
        let ResponseStandard {
            within_60s,
            within_180s,
        } = s;
        Self {
            within_60s,
            within_180s,
        }
    }
}

// Schema only: `vft_domain::response::MonthResponse` as serialized; never built.
// vft-domain does not depend on utoipa. Keep it in step with the domain struct.
/// One month of response-centre figures; an alarm belongs to the month it was triggered in.
#[derive(ToSchema)]
#[schema(as = MonthResponse)]
#[allow(dead_code)]
pub struct ResponseMonth {
    #[schema(value_type = crate::schemas::Month)]
    month: String,
    /// Alarms triggered in the month (by their origin).
    triggered: u64,
    received: u64,
    acknowledged: u64,
    closed: u64,
    /// Triggered and never acknowledged.
    never_acknowledged: u64,
    /// Response times (acknowledged − triggered); `null` when none was answered.
    #[schema(required = true)]
    response: Option<ResponseTimesSchema>,
    /// Answered within 60 s over all triggered; `null` when none was triggered.
    #[schema(required = true)]
    share_within_60s: Option<f64>,
    #[schema(required = true)]
    share_within_180s: Option<f64>,
    /// Whether the share meets the standard; `null` when none was triggered.
    #[schema(required = true)]
    meets_60s: Option<bool>,
    #[schema(required = true)]
    meets_180s: Option<bool>,
    #[schema(value_type = crate::schemas::Outcomes)]
    outcomes: std::collections::BTreeMap<String, u64>,
}

// Schema only: `vft_domain::ResponseTimes` as serialized; never built.
/// Response times in milliseconds: median and 90th percentile (nearest rank) and maximum.
#[derive(ToSchema)]
#[schema(as = ResponseTimes)]
#[allow(dead_code)]
pub struct ResponseTimesSchema {
    median_ms: u64,
    p90_ms: u64,
    max_ms: u64,
}

#[utoipa::path(get, path = "/api/v1/rollups/response-centre", tag = "rollups", params(FiguresQuery), responses((status = 200, description = "The standard and, per month, alarm counts, response times, shares against the standard and outcomes.", body = ResponseCentreView), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/rollups/response-centre?year=&municipality=&kind=`: per month, alarms
/// triggered, received, acknowledged and closed; response time median, 90th percentile and
/// maximum; the shares answered within 60 s and 180 s against the standard; outcomes; alarms
/// never acknowledged. An alarm belongs to the month it was triggered in (Europe/Oslo). A
/// municipality user's figures are made of its own events only (an alarm raised there and
/// acknowledged by another municipality's gateway is unanswered there); the coordinator's,
/// also for one municipality, of every event of each alarm, counted where it was raised.
pub async fn response_centre(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<FiguresQuery>,
) -> Result<Json<ResponseCentreView>, ApiError> {
    let months = year_months(q.year.as_deref(), Utc::now())?;
    let selection = selection(&state, &caller, q.municipality.as_deref(), None, None)?;
    let kind = technology_kind(q.kind.as_deref())?;
    let standard = ResponseStandard::default();
    let figures = response_months(
        state.store.as_ref(),
        &selection,
        caller.own(),
        kind,
        &months,
        &standard,
    )
    .await?;
    Ok(Json(ResponseCentreView {
        year: months[0].year(),
        standard: standard.into(),
        months: figures,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UnansweredQuery {
    /// `YYYY-MM` (Europe/Oslo); default: this month.
    month: Option<String>,
    municipality: Option<String>,
}

/// One alarm of a month that was triggered and never acknowledged.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnansweredAlarm {
    pub vendor: String,
    pub alarm: String,
    pub device: String,
    pub municipality: String,
    pub kind: Option<String>,
    pub cause: Option<String>,
    pub triggered: DateTime<Utc>,
    /// Closed without an acknowledgement (with its outcome), or still open.
    pub closed: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnansweredView {
    #[schema(value_type = crate::schemas::Month)]
    pub month: YearMonth,
    /// Oldest first; as many as the month's `never_acknowledged`.
    pub alarms: Vec<UnansweredAlarm>,
}

#[utoipa::path(get, path = "/api/v1/rollups/response-centre/unanswered", tag = "rollups", params(UnansweredQuery), responses((status = 200, body = UnansweredView), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/rollups/response-centre/unanswered?month=&municipality=`: the month's alarms
/// that were triggered and never acknowledged (the response centre's `never_acknowledged`),
/// counted by the same rules: a municipality user's from its own events only.
pub async fn unanswered(
    State(state): State<AppState>,
    caller: Caller,
    note: crate::audit_slot::AuditNote,
    Query(q): Query<UnansweredQuery>,
) -> Result<Json<UnansweredView>, ApiError> {
    let month = match q.month.as_deref() {
        Some(m) => parse_month(m)?,
        None => YearMonth::containing(Utc::now()),
    };
    let selection = selection(&state, &caller, q.municipality.as_deref(), None, None)?;
    let (start, end) = (month.start(), month.end_exclusive());
    let mut alarms = match caller.own() {
        Some(own) => state.store.own_alarm_records(own, start, end).await?,
        None => state.store.alarm_records(start, end).await?,
    };
    alarms.retain(|a| {
        let cut = a.anchor().unwrap_or(start) + chrono::Duration::microseconds(1);
        a.month() == Some(month)
            && a.triggered.is_some()
            && a.acknowledged.is_none()
            && selection.admits(&a.municipality, &a.vendor, cut)
    });
    alarms.sort_by_key(|a| (a.triggered, a.vendor.to_string(), a.alarm.to_string()));
    note.subjects(alarms.iter().map(|a| format!("{}/{}", a.vendor, a.device)));
    Ok(Json(UnansweredView {
        month,
        alarms: alarms
            .into_iter()
            .filter_map(|a| {
                Some(UnansweredAlarm {
                    vendor: a.vendor.to_string(),
                    alarm: a.alarm.to_string(),
                    device: a.device.to_string(),
                    municipality: a.municipality.to_string(),
                    kind: a.kind.map(|k| k.id().to_owned()),
                    cause: a.cause.map(|c| c.id().to_owned()),
                    triggered: a.triggered?,
                    closed: a.closed,
                    outcome: a.outcome.map(|o| o.id().to_owned()),
                })
            })
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/rollups/medication", tag = "rollups", params(FiguresQuery), responses((status = 200, description = "Doses taken and missed per month.", body = MedicationView), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/rollups/medication?year=&municipality=`: doses taken and missed per month.
pub async fn medication(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<FiguresQuery>,
) -> Result<Json<MedicationView>, ApiError> {
    let months = year_months(q.year.as_deref(), Utc::now())?;
    let selection = selection(&state, &caller, q.municipality.as_deref(), None, None)?;
    Ok(Json(
        vft_app::figures::medication(state.store.as_ref(), &selection, &months).await?,
    ))
}

/// The answer to publishing a month.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishView {
    #[schema(value_type = crate::schemas::Month)]
    pub month: YearMonth,
    /// Always true (an already published month is 409).
    pub published: bool,
}

#[utoipa::path(post, path = "/api/v1/months/{month}/publish", tag = "months", params(("month" = String, Path, description = "YYYY-MM")), responses((status = 201, description = "Published.", body = PublishView), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody), (status = 409, description = "Already published", body = crate::schemas::ErrorBody)))]
/// `POST /api/v1/months/{month}/publish` (coordinator): closes a month. Its figures stay as
/// published; later events that would change them show as corrections beside them.
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path(month): Path<String>,
) -> Result<Response, ApiError> {
    caller.require_coordinator()?;
    let month = parse_month(&month)?;
    let now = Utc::now();
    if month.end_exclusive() > now {
        return Err(ApiError::BadRequest(format!(
            "{month} has not ended; only past months can be published"
        )));
    }
    let rows = state
        .store
        .month_end_breakdown(&[month.end_exclusive()])
        .await?;
    if state
        .store
        // Who published: the person (or token) as the audit log names them.
        .publish_month(month, &rows, Some(&caller.principal().actor()), now)
        .await?
    {
        Ok((
            StatusCode::CREATED,
            Json(PublishView {
                month,
                published: true,
            }),
        )
            .into_response())
    } else {
        Err(ApiError::Conflict(format!("{month} is already published")))
    }
}

/// `GET /api/v1/months`: the published months of a year.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedMonthsView {
    pub items: Vec<PublishedMonthView>,
}

/// A closed month: when, and by whom.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedMonthView {
    #[schema(value_type = crate::schemas::Month)]
    pub month: YearMonth,
    pub published_at: DateTime<Utc>,
    #[schema(required = true)]
    pub published_by: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/months", tag = "months", params(FiguresQuery), responses((status = 200, description = "The published months of the year.", body = PublishedMonthsView), (status = 400, description = "Bad parameter", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Another municipality asked for", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/months?year=`: the published months of a year.
pub async fn published(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<FiguresQuery>,
) -> Result<Json<PublishedMonthsView>, ApiError> {
    let months = year_months(q.year.as_deref(), Utc::now())?;
    // The months are the region's; a municipality asked for is checked like everywhere else,
    // so asking for another one is 403 here too.
    selection(&state, &caller, q.municipality.as_deref(), None, None)?;
    let published = state.store.published_months(&months).await?;
    let items = published
        .into_iter()
        .map(|p| PublishedMonthView {
            month: p.month,
            published_at: p.published_at,
            published_by: p.published_by,
        })
        .collect();
    Ok(Json(PublishedMonthsView { items }))
}
