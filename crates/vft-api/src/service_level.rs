//! `GET /api/v1/rollups/vendor-service`: the vendors' service level in one month, over
//! `vft_app::service_level`.

use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use vft_app::selection::begun_month;
use vft_app::service_level::{VendorServiceView, service_csv, vendor_service};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ServiceQuery {
    /// `YYYY-MM` (Europe/Oslo). The current month is counted up to now.
    pub month: Option<String>,
    /// One municipality (a municipality user: its own).
    pub municipality: Option<String>,
    /// `json` (default), `csv` or `excel`.
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/rollups/vendor-service", tag = "rollups", params(ServiceQuery), responses((status = 200, description = "Per vendor: availability, faults and the response centre's answers to its alarms; CSV with format=csv or excel.", body = VendorServiceView), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/rollups/vendor-service?month=YYYY-MM[&municipality=][&format=]`.
pub async fn vendor_service_level(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<ServiceQuery>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let month = begun_month(q.month.as_deref(), now)?;
    // Checked against the registry before the caller, as every figure route answers.
    let asked = vft_app::transition::municipality(&state.registry, q.municipality.as_deref())?;
    let scope = caller.scope(asked)?;
    let dialect = crate::wants_csv(q.format.as_deref(), &headers)?;
    let view = vendor_service(
        state.store.as_ref(),
        state.timeouts,
        caller.own(),
        month,
        scope,
        now,
    )
    .await?;
    if let Some(dialect) = dialect {
        return Ok(crate::csv_response(
            dialect,
            &format!("leverandorer-{month}"),
            view.municipality.as_deref().unwrap_or("region"),
            service_csv(&view),
        ));
    }
    Ok(Json(view).into_response())
}
