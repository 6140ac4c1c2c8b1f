//! Dashboard sign-in: a token from `vft token create` is exchanged for an HttpOnly,
//! SameSite=Strict session cookie that expires. The token itself never reaches the page's
//! script after sign-in, and the cookie is worth nothing once the session ends.

use crate::auth::{Authenticated, Caller, SESSION_COOKIE, session_cookie};
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vft_domain::{Role, hash_token};

/// How dashboard sessions behave (`[dashboard]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// How long a sign-in lasts.
    pub lifetime: chrono::Duration,
    /// Mark the cookie `Secure` (only sent over HTTPS): on when vft is served behind TLS.
    pub secure_cookie: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            lifetime: chrono::Duration::hours(8),
            secure_cookie: false,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// A token from `vft token create`.
    pub token: String,
}

/// Who is signed in, and until when.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// `coordinator` or `municipality`.
    pub role: String,
    pub municipality: Option<String>,
    pub municipality_name: Option<String>,
    /// End of the dashboard session; `null` when asked with a bearer token.
    pub expires_at: Option<DateTime<Utc>>,
    /// The newest event time among the devices the caller may see (`null`: no data yet).
    /// The dashboard opens on that year.
    pub latest_activity: Option<DateTime<Utc>>,
}

async fn view(
    state: &AppState,
    role: &Role,
    expires_at: Option<DateTime<Utc>>,
) -> Result<SessionView, ApiError> {
    let municipality = role.municipality();
    Ok(SessionView {
        latest_activity: state.store.latest_activity(municipality).await?,
        role: role.name().to_owned(),
        municipality: municipality.map(ToString::to_string),
        municipality_name: municipality
            .and_then(|m| state.registry.get(m))
            .map(|m| m.name.clone()),
        expires_at,
    })
}

fn cookie_header(value: &str, max_age: chrono::Duration, secure: bool) -> HeaderValue {
    let cookie = cookie::Cookie::build((SESSION_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age.num_seconds()))
        .build();
    HeaderValue::from_str(&cookie.to_string()).expect("a cookie of hex and fixed words")
}

#[utoipa::path(post, path = "/api/session", tag = "dashboard", security(()), request_body = SignIn, responses((status = 200, description = "Signed in; sets the session cookie.", body = SessionView), (status = 400, body = crate::openapi::ErrorBody), (status = 401, description = "Unknown token", body = crate::openapi::ErrorBody)))]
/// `POST /api/session {"token": …}`: signs in to the dashboard.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Only JSON: a form on another site cannot send it without the browser asking first.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json {
        return Err(ApiError::BadRequest(
            "sign-in expects Content-Type: application/json".into(),
        ));
    }
    let SignIn { token } = serde_json::from_slice(&body)
        .map_err(|_| ApiError::BadRequest("expected a JSON body {\"token\": \"…\"}".into()))?;
    let token = token.trim();
    if token.is_empty() || token.len() > 256 {
        return Err(ApiError::Unauthorized);
    }
    let token_hash = hash_token(token);
    let record = state
        .store
        .find_token(&token_hash)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let settings = state.sessions;
    let expires_at = Utc::now() + settings.lifetime;
    state
        .store
        .create_session(&hash_token(&secret), &token_hash, expires_at)
        .await?;
    tracing::info!(role = record.role.name(), "dashboard sign-in");
    let mut response = Json(view(&state, &record.role, Some(expires_at)).await?).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie_header(&secret, settings.lifetime, settings.secure_cookie),
    );
    Ok(response)
}

#[utoipa::path(delete, path = "/api/session", tag = "dashboard", security(()), responses((status = 204, description = "Signed out; the cookie is cleared.")))]
/// `DELETE /api/session`: signs out (ends the session, clears the cookie).
pub async fn sign_out(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(secret) = session_cookie(&headers) {
        state.store.delete_session(&hash_token(&secret)).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie_header("", chrono::Duration::zero(), state.sessions.secure_cookie),
    );
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/session", tag = "dashboard", responses((status = 200, body = SessionView), (status = 401, body = crate::openapi::ErrorBody)))]
/// `GET /api/v1/session`: who the caller is.
pub async fn current(
    State(state): State<AppState>,
    who: Authenticated,
) -> Result<Response, ApiError> {
    Ok(Json(view(&state, &who.role, who.session_expires).await?).into_response())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MunicipalityView {
    pub code: String,
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MunicipalityList {
    pub municipalities: Vec<MunicipalityView>,
}

/// A membership period: member from `from` (inclusive) until `until` (exclusive), dates in
/// Europe/Oslo; `null` is open-ended.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MembershipView {
    pub municipality: String,
    pub from: Option<chrono::NaiveDate>,
    pub until: Option<chrono::NaiveDate>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CooperationView {
    pub id: String,
    pub name: String,
    pub members: Vec<MembershipView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CooperationList {
    pub cooperations: Vec<CooperationView>,
}

#[utoipa::path(get, path = "/api/v1/municipalities", tag = "dashboard", responses((status = 200, description = "The municipalities the caller may see (a municipality token: its own).", body = MunicipalityList), (status = 401, body = crate::openapi::ErrorBody)))]
/// `GET /api/v1/municipalities`: the municipalities the caller may see.
pub async fn municipalities(
    State(state): State<AppState>,
    caller: Caller,
) -> Json<MunicipalityList> {
    let municipalities = state
        .registry
        .iter()
        .filter(|m| caller.0.may_see(&m.code))
        .map(|m| MunicipalityView {
            code: m.code.to_string(),
            name: m.name.clone(),
        })
        .collect();
    Json(MunicipalityList { municipalities })
}

#[utoipa::path(get, path = "/api/v1/cooperations", tag = "dashboard", responses((status = 200, description = "The configured cooperations and their membership periods; a municipality token sees those it has been a member of, with its own periods only.", body = CooperationList), (status = 401, body = crate::openapi::ErrorBody)))]
/// `GET /api/v1/cooperations`: the configured cooperations and their membership periods.
pub async fn cooperations(State(state): State<AppState>, caller: Caller) -> Json<CooperationList> {
    let cooperations = state
        .cooperations
        .iter()
        .map(|c| CooperationView {
            id: c.id.clone(),
            name: c.name.clone(),
            members: c
                .members
                .iter()
                .filter(|m| caller.0.may_see(&m.municipality))
                .map(|m| MembershipView {
                    municipality: m.municipality.to_string(),
                    from: m.from,
                    until: m.until,
                })
                .collect(),
        })
        .filter(|c| !c.members.is_empty() || caller.0 == Role::Coordinator)
        .collect();
    Json(CooperationList { cooperations })
}
