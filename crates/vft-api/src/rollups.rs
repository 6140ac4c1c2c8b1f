use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use vft_domain::{DeviceTable, MunicipalityCode, RollupFilter, VendorId, YearMonth};

#[derive(Debug, Deserialize)]
pub struct DevicesQuery {
    year: Option<String>,
    municipality: Option<String>,
    vendor: Option<String>,
    format: Option<String>,
}

fn parse_year(year: Option<&str>, now: DateTime<Utc>) -> Result<i32, ApiError> {
    match year {
        None => Ok(YearMonth::containing(now).year()),
        Some(y) => y
            .parse::<i32>()
            .ok()
            .filter(|y| (1970..=9999).contains(y))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "year must be a year between 1970 and 9999, got {y:?}"
                ))
            }),
    }
}

/// `GET /api/v1/rollups/devices`: devices in service at each month end of a year.
pub async fn devices(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<DevicesQuery>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let year = parse_year(q.year.as_deref(), now)?;
    let asked = q
        .municipality
        .as_deref()
        .map(|m| {
            let code =
                MunicipalityCode::parse(m).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            if state.registry.contains(&code) {
                Ok(code)
            } else {
                Err(ApiError::BadRequest(format!("unknown municipality {code}")))
            }
        })
        .transpose()?;
    let municipality = caller.scope(asked)?;
    let vendor = q
        .vendor
        .as_deref()
        .map(|v| VendorId::parse(v).map_err(|e| ApiError::BadRequest(e.to_string())))
        .transpose()?;
    let csv = match q.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "format must be json or csv, got {other:?}"
            )));
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    };

    let months =
        YearMonth::months_of_year(year).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Past months are taken at their last instant; the current month as of now; future
    // months have no figure yet (null).
    let cuts: Vec<Option<DateTime<Utc>>> = months
        .iter()
        .map(|m| (m.start() <= now).then(|| m.end_exclusive().min(now)))
        .collect();
    let instants: Vec<DateTime<Utc>> = cuts.iter().flatten().copied().collect();
    let filter = RollupFilter {
        municipality,
        vendor,
    };
    let mut counts = state
        .store
        .device_counts(&instants, &filter)
        .await?
        .into_iter();
    let per_month: Vec<Option<[u64; 6]>> =
        cuts.iter().map(|c| c.and_then(|_| counts.next())).collect();
    let table = DeviceTable::from_counts(year, months, &per_month);

    if csv {
        let filename = format!("attachment; filename=\"vft-devices-{year}.csv\"");
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, filename),
            ],
            table.to_csv(),
        )
            .into_response())
    } else {
        Ok(Json(table).into_response())
    }
}

#[derive(Debug, Deserialize)]
pub struct DeadLettersQuery {
    limit: Option<u32>,
    before: Option<i64>,
}

/// `GET /api/v1/dead-letters`: what broke the contract, newest first. Coordinator only: a
/// dead letter may not say which municipality it belongs to.
pub async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<DeadLettersQuery>,
) -> Result<Response, ApiError> {
    caller.require_coordinator()?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let rows = state.store.dead_letters(limit, q.before).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|d| d.id))
        .flatten();
    let items: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|d| {
            serde_json::json!({
                "id": d.id,
                "topic": d.topic,
                "reason_code": d.reason_code,
                "reason": d.reason,
                "received_at": d.received_at.to_rfc3339(),
                "payload": String::from_utf8_lossy(&d.payload),
                "payload_bytes": d.payload.len(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items, "next_before": next })).into_response())
}
