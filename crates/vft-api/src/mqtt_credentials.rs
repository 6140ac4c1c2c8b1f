//! Gateway credentials for vft's embedded MQTT listener (coordinator only):
//! `POST /api/v1/mqtt-credentials` creates one and shows its password once,
//! `GET /api/v1/mqtt-credentials` lists them (never a password or hash),
//! `DELETE /api/v1/mqtt-credentials?username=` revokes one. Creating is the use case
//! `vft_app::mqtt_credentials::create`, which `vft mqtt-credential …` calls too, so both
//! paths make the same credential.

use crate::auth::AccessManager;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vft_store::MqttCredential;

/// A new credential (`POST /api/v1/mqtt-credentials`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// The vendor whose topics it may publish on, e.g. `hepro`.
    pub vendor: String,
    /// Only this gateway's topics (`vft/v1/{vendor}/{gateway}/…`); absent: all of the vendor's.
    pub gateway: Option<String>,
    /// Default: `{vendor}` or `{vendor}/{gateway}`.
    pub username: Option<String>,
    /// A note on who holds it.
    pub label: Option<String>,
}

/// A credential as listed: never its password or hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    pub username: String,
    pub vendor: String,
    /// Absent: every gateway of the vendor.
    pub gateway: Option<String>,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it stopped working; absent while it works.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<&MqttCredential> for CredentialView {
    fn from(c: &MqttCredential) -> Self {
        Self {
            username: c.username.clone(),
            vendor: c.scope.vendor.to_string(),
            gateway: c.scope.gateway.as_ref().map(ToString::to_string),
            label: c.label.clone(),
            created_at: c.created_at,
            revoked_at: c.revoked_at,
        }
    }
}

/// A credential just created, with its password: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedCredential {
    #[serde(flatten)]
    pub credential: CredentialView,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialList {
    /// Oldest first, revoked ones included.
    pub items: Vec<CredentialView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevokeQuery {
    /// The credential's username, e.g. `hepro/gw-1`.
    pub username: String,
}

#[utoipa::path(post, path = "/api/v1/mqtt-credentials", tag = "mqtt", request_body = NewCredential, responses((status = 201, description = "Created; the password is shown this once.", body = CreatedCredential), (status = 400, description = "Bad vendor, gateway, username or label", body = crate::schemas::ErrorBody), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Not a coordinator", body = crate::schemas::ErrorBody), (status = 409, description = "The username is taken", body = crate::schemas::ErrorBody)))]
/// `POST /api/v1/mqtt-credentials` (coordinator): a gateway credential for the embedded MQTT
/// listener. The response holds the password; vft keeps only its hash.
pub async fn post(
    _manager: AccessManager,
    note: crate::audit_slot::AuditNote,
    State(state): State<AppState>,
    Json(new): Json<NewCredential>,
) -> Result<impl IntoResponse, ApiError> {
    let (credential, password) = vft_app::mqtt_credentials::create(
        state.store.as_ref(),
        &new.vendor,
        new.gateway.as_deref(),
        new.username.as_deref(),
        new.label.as_deref(),
        Utc::now(),
    )
    .await?;
    tracing::info!(username = %credential.username, scope = %credential.scope, "MQTT credential created through the API");
    note.subjects([format!("username={}", credential.username)]);
    Ok((
        StatusCode::CREATED,
        Json(CreatedCredential {
            credential: CredentialView::from(&credential),
            password,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/mqtt-credentials", tag = "mqtt", responses((status = 200, description = "Every credential, oldest first.", body = CredentialList), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Not a coordinator", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/mqtt-credentials` (coordinator): the embedded listener's gateway credentials.
pub async fn list(
    _manager: AccessManager,
    State(state): State<AppState>,
) -> Result<Json<CredentialList>, ApiError> {
    let items = state
        .store
        .mqtt_credentials()
        .await?
        .iter()
        .map(CredentialView::from)
        .collect();
    Ok(Json(CredentialList { items }))
}

#[utoipa::path(delete, path = "/api/v1/mqtt-credentials", tag = "mqtt", params(RevokeQuery), responses((status = 204, description = "Revoked: no new connection with it; open ones close at their next publish (within 30 s)."), (status = 401, description = "No or unknown token", body = crate::schemas::ErrorBody), (status = 403, description = "Not a coordinator", body = crate::schemas::ErrorBody), (status = 404, description = "No working credential of that username", body = crate::schemas::ErrorBody)))]
/// `DELETE /api/v1/mqtt-credentials?username=` (coordinator): revokes a credential.
pub async fn revoke(
    _manager: AccessManager,
    note: crate::audit_slot::AuditNote,
    State(state): State<AppState>,
    Query(q): Query<RevokeQuery>,
) -> Result<StatusCode, ApiError> {
    note.subjects([format!("username={}", q.username)]);
    if state
        .store
        .revoke_mqtt_credential(&q.username, Utc::now())
        .await?
    {
        tracing::info!(username = %q.username, "MQTT credential revoked through the API");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "no working MQTT credential named {:?}",
            q.username
        )))
    }
}
