//! Notification rules and the incident history (`vft-notify` evaluates and delivers). A
//! coordinator manages the region's rules and every municipality's; a municipality user
//! manages and sees its own municipality's only.

use crate::audit_slot::AuditNote;
use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vft_domain::notify::{RuleDefinition, RuleKind};
use vft_domain::{MunicipalityCode, Role};
use vft_store::{IncidentQuery, IncidentRecord, RuleRecord};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRuleRequest {
    /// Absent: the whole region (a coordinator), or the municipality a municipality user acts for.
    pub municipality: Option<String>,
    /// `device_offline`, `battery_low`, `alarm_unanswered`, `month_below_standard`,
    /// `gateway_silent` or `import_errors`.
    pub kind: String,
    /// Seconds (`device_offline`, `alarm_unanswered`) or percent (`battery_low`).
    pub threshold: Option<u64>,
    #[serde(default)]
    pub emails: Vec<String>,
    pub webhook: Option<String>,
    /// One message a day (at `notify.digest_hour`) instead of one per incident.
    #[serde(default)]
    pub digest: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleView {
    pub id: i64,
    pub municipality: Option<String>,
    pub kind: String,
    pub kind_label: String,
    pub threshold: Option<u64>,
    pub emails: Vec<String>,
    pub webhook: Option<String>,
    pub digest: bool,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

impl From<&RuleRecord> for RuleView {
    fn from(r: &RuleRecord) -> Self {
        let d = &r.definition;
        Self {
            id: r.id,
            municipality: d.municipality.as_ref().map(ToString::to_string),
            kind: d.kind.id().to_owned(),
            kind_label: d.kind.label().to_owned(),
            threshold: d.threshold,
            emails: d.channels.emails.clone(),
            webhook: d.channels.webhook.clone(),
            digest: d.digest,
            created_at: r.created_at,
            created_by: r.created_by.clone(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleList {
    pub items: Vec<RuleView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NoticeView {
    pub event: String,
    pub channel: String,
    pub digest: bool,
    pub attempts: u32,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentView {
    pub id: i64,
    pub rule_id: i64,
    pub kind: String,
    pub kind_label: String,
    pub subject: String,
    pub municipality: Option<String>,
    pub summary: String,
    pub opened_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub notices: Vec<NoticeView>,
}

impl From<&IncidentRecord> for IncidentView {
    fn from(i: &IncidentRecord) -> Self {
        Self {
            id: i.id,
            rule_id: i.rule_id,
            kind: i.kind.id().to_owned(),
            kind_label: i.kind.label().to_owned(),
            subject: i.subject.clone(),
            municipality: i.municipality.as_ref().map(ToString::to_string),
            summary: i.summary.clone(),
            opened_at: i.opened_at,
            resolved_at: i.resolved_at,
            notices: i
                .notices
                .iter()
                .map(|n| NoticeView {
                    event: n.event.id().to_owned(),
                    channel: n.channel.id().to_owned(),
                    digest: n.digest,
                    attempts: n.attempts,
                    delivered_at: n.delivered_at,
                    last_error: n.last_error.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentList {
    pub items: Vec<IncidentView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Whether the caller may see and change a rule of this scope.
fn may_manage(caller: &Caller, scope: Option<&MunicipalityCode>) -> bool {
    match (caller.role(), scope) {
        (Role::Coordinator, _) => true,
        (Role::Municipality(_), Some(m)) => caller.own() == Some(m),
        _ => false,
    }
}

#[utoipa::path(get, path = "/api/v1/notification-rules", tag = "notifications", responses((status = 200, body = RuleList), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/notification-rules`: the rules the caller manages (a municipality user: its
/// municipality's; a coordinator: all).
pub async fn list_rules(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<RuleList>, ApiError> {
    let rules = state.store.rules().await?;
    Ok(Json(RuleList {
        items: rules
            .iter()
            .filter(|r| may_manage(&caller, r.definition.municipality.as_ref()))
            .map(RuleView::from)
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/notification-rules", tag = "notifications", request_body = NewRuleRequest, responses((status = 201, body = RuleView), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody)))]
/// `POST /api/v1/notification-rules`: a new rule.
pub async fn create_rule(
    caller: Caller,
    State(state): State<AppState>,
    note: AuditNote,
    Json(new): Json<NewRuleRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let asked = vft_app::transition::municipality(&state.registry, new.municipality.as_deref())?;
    let scope = caller.scope(asked)?;
    if !may_manage(&caller, scope.as_ref()) {
        return Err(ApiError::Forbidden(
            "a rule for the whole region needs a coordinator".into(),
        ));
    }
    let rule = RuleDefinition::new(
        scope,
        &new.kind,
        new.threshold,
        new.emails,
        new.webhook,
        new.digest,
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let stored = state
        .store
        .create_rule(&rule, &caller.principal().actor(), Utc::now())
        .await?;
    note.subjects([
        format!("rule={}", stored.id),
        format!("kind={}", rule.kind.id()),
    ]);
    Ok((StatusCode::CREATED, Json(RuleView::from(&stored))))
}

#[utoipa::path(delete, path = "/api/v1/notification-rules/{id}", tag = "notifications", responses((status = 204, description = "Deleted"), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody), (status = 404, body = crate::schemas::ErrorBody)))]
/// `DELETE /api/v1/notification-rules/{id}`: its open incidents close without a notice.
pub async fn delete_rule(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let rules = state.store.rules().await?;
    // Another municipality's rule is "not found" to a municipality user: nothing told.
    let rule = rules
        .iter()
        .find(|r| r.id == id && may_manage(&caller, r.definition.municipality.as_ref()))
        .ok_or_else(|| ApiError::NotFound(format!("no notification rule {id}")))?;
    if state.store.delete_rule(rule.id, Utc::now()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no notification rule {id}")))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct IncidentParams {
    /// A coordinator: one municipality's incidents (default: all).
    pub municipality: Option<String>,
    /// Only incidents still open.
    #[serde(default)]
    pub open: bool,
    pub before: Option<i64>,
    /// 1-500, default 100.
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/incidents", tag = "notifications", params(IncidentParams), responses((status = 200, body = IncidentList), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/incidents`: what the rules found, newest first, with each notice's delivery.
pub async fn incidents(
    caller: Caller,
    State(state): State<AppState>,
    Query(params): Query<IncidentParams>,
) -> Result<Json<IncidentList>, ApiError> {
    let asked = vft_app::transition::municipality(&state.registry, params.municipality.as_deref())?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1-500".into()));
    }
    let items = state
        .store
        .incidents(&IncidentQuery {
            municipality: caller.scope(asked)?,
            open_only: params.open,
            before_id: params.before,
            limit,
        })
        .await?;
    let next_before = (items.len() == limit as usize)
        .then(|| items.last().map(|i| i.id))
        .flatten();
    Ok(Json(IncidentList {
        items: items.iter().map(IncidentView::from).collect(),
        next_before,
    }))
}

/// Every rule kind with its Norwegian name and threshold unit (the dashboard's form).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleKindView {
    pub kind: String,
    pub label: String,
    /// `seconds`, `percent`, or absent (no threshold).
    pub unit: Option<String>,
    pub min: Option<u64>,
    pub max: Option<u64>,
    pub region_only: bool,
}

#[utoipa::path(get, path = "/api/v1/notification-rules/kinds", tag = "notifications", responses((status = 200, body = [RuleKindView]), (status = 401, body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/notification-rules/kinds`: what a rule can watch.
pub async fn kinds(_caller: Caller) -> Json<Vec<RuleKindView>> {
    Json(
        RuleKind::ALL
            .into_iter()
            .map(|k| {
                let range = k.threshold_range();
                RuleKindView {
                    kind: k.id().to_owned(),
                    label: k.label().to_owned(),
                    unit: range.map(|(u, _, _)| u.to_owned()),
                    min: range.map(|(_, min, _)| min),
                    max: range.map(|(_, _, max)| max),
                    region_only: k.region_only(),
                }
            })
            .collect(),
    )
}
