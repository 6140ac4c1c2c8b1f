//! Signing in with the organisation's OpenID provider: `GET /api/auth/oidc/start` sends the
//! browser to the provider, `GET /api/auth/oidc/callback` takes it back, verifies who the
//! provider says it is (`crate::oidc`) and opens a session for the vft account of that person.
//!
//! An account is found by the provider's issuer and subject once bound; before that, by the
//! configured username claim (an e-mail address the provider has not called unverified), and
//! the first sign-in binds the subject to it. Nobody gets an account by signing in: a person
//! without one is refused (and recorded), so access stays granted by the coordinator or
//! operator. The flow is bound to the browser that began it by a short-lived cookie holding
//! the `state`, so a sign-in cannot be finished in another browser (login CSRF).

use crate::client_ip::ClientIp;
use crate::oidc::{
    CALLBACK_ROUTE, OidcClient, OidcError, OidcSettings, PendingSignIns, VerifiedIdentity,
};
use crate::session::{cookie_is_secure, open_session, record_sign, sign_entry};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vft_domain::audit::AuditAction;

/// The cookie that binds a sign-in to its browser. SameSite=Lax: the provider's redirect back
/// is a cross-site navigation, which Strict would strip.
const STATE_COOKIE: &str = "vft_oidc_state";

/// OpenID sign-in as configured: the provider's settings, its client once discovered, and the
/// sign-ins under way.
pub struct OidcSignIn {
    settings: OidcSettings,
    client: tokio::sync::Mutex<Option<std::sync::Arc<OidcClient>>>,
    pending: PendingSignIns,
}

impl OidcSignIn {
    pub fn new(settings: OidcSettings) -> Self {
        Self {
            settings,
            client: tokio::sync::Mutex::new(None),
            pending: PendingSignIns::new(),
        }
    }

    /// The provider's client, discovered at the first sign-in (and again after a failure), so
    /// vft starts while the provider is down.
    async fn client(&self) -> Result<std::sync::Arc<OidcClient>, OidcError> {
        let mut client = self.client.lock().await;
        if let Some(c) = client.as_ref() {
            return Ok(c.clone());
        }
        let discovered = std::sync::Arc::new(OidcClient::discover(&self.settings).await?);
        *client = Some(discovered.clone());
        Ok(discovered)
    }
}

/// Records a refused OpenID sign-in (under the callback's route).
async fn refused(
    state: &AppState,
    actor: &str,
    role: &str,
    subjects: Vec<String>,
    client: std::net::IpAddr,
) {
    let entry = sign_entry(
        actor,
        role,
        AuditAction::SignInFailed,
        CALLBACK_ROUTE,
        subjects,
        client,
        303,
    );
    record_sign(state, entry).await;
}

/// Back to the dashboard, with an error code it shows (`?sign_in_error=`).
fn to_dashboard(error: Option<&str>) -> Response {
    let location = match error {
        Some(code) => format!("/?sign_in_error={code}"),
        None => "/".to_owned(),
    };
    (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/")),
        )],
    )
        .into_response()
}

fn state_cookie(value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let cookie = cookie::Cookie::build((STATE_COOKIE, value))
        .path("/api/auth/oidc/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

fn state_from_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == STATE_COOKIE)
        .map(|c| c.value().to_owned())
}

fn configured(state: &AppState) -> Result<&OidcSignIn, ApiError> {
    state
        .oidc
        .as_deref()
        .ok_or_else(|| ApiError::NotFound("OpenID Connect sign-in is not configured".into()))
}

#[utoipa::path(get, path = "/api/auth/oidc", tag = "dashboard", security(()), responses((status = 200, description = "OpenID Connect sign-in is configured: `{\"enabled\": true}`."), (status = 404, description = "Not configured", body = crate::schemas::ErrorBody)))]
/// `GET /api/auth/oidc`: whether the dashboard offers sign-in with the organisation's account.
pub async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    configured(&state)?;
    Ok(Json(serde_json::json!({ "enabled": true })).into_response())
}

#[utoipa::path(get, path = "/api/auth/oidc/start", tag = "dashboard", security(()), responses((status = 303, description = "To the identity provider's sign-in page."), (status = 404, body = crate::schemas::ErrorBody)))]
/// `GET /api/auth/oidc/start`: sends the browser to the identity provider.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let oidc = configured(&state)?;
    let client = match oidc.client().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "OpenID sign-in: the provider does not answer");
            return Ok(to_dashboard(Some("provider_unavailable")));
        }
    };
    let (authorize, pending) = client.begin();
    let secure = cookie_is_secure(&state.sessions, &headers);
    let cookie = state_cookie(pending.state(), 600, secure);
    oidc.pending.insert(pending);
    let mut response = (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(&authorize).map_err(|e| ApiError::Internal(e.to_string()))?,
        )],
    )
        .into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    /// The provider's error (`access_denied` when the person cancelled).
    pub error: Option<String>,
    /// The issuer that answered (RFC 9207), checked when present.
    pub iss: Option<String>,
}

#[utoipa::path(get, path = "/api/auth/oidc/callback", tag = "dashboard", security(()), params(Callback), responses((status = 303, description = "Signed in (to `/`, with the session cookie), or back to the dashboard with `?sign_in_error=` (`cancelled`, `failed`, `no_account`, `disabled`, `provider_unavailable`)."), (status = 404, body = crate::schemas::ErrorBody)))]
/// `GET /api/auth/oidc/callback`: the provider sends the browser back here.
pub async fn callback(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Result<Response, ApiError> {
    let oidc = configured(&state)?;
    let secure = cookie_is_secure(&state.sessions, &headers);
    let clear_state = state_cookie("", 0, secure);
    let failed = |code: &str| {
        let mut r = to_dashboard(Some(code));
        r.headers_mut()
            .insert(header::SET_COOKIE, clear_state.clone());
        r
    };
    // The audit log names a person as an account is named (lower case, checked), so a refused
    // sign-in is found under the account it asked for; a claim that is no username (or holds
    // an identity number) is recorded by the provider's subject instead.
    let actor_of = |id: &VerifiedIdentity| match id
        .username
        .as_deref()
        .and_then(|u| vft_domain::auth::parse_username(u).ok())
    {
        Some(u) => format!("user:{u}"),
        None => format!("oidc:{}", id.subject),
    };
    if let Some(error) = &callback.error {
        let error: String = error.chars().take(64).collect();
        tracing::info!(%error, "OpenID sign-in ended at the provider");
        refused(
            &state,
            "oidc:unknown",
            "",
            vec!["cancelled".into(), format!("provider_error={error}")],
            client_ip,
        )
        .await;
        return Ok(failed("cancelled"));
    }
    let (Some(code), Some(returned)) = (callback.code.as_deref(), callback.state.as_deref()) else {
        return Ok(failed("failed"));
    };
    // The state must be the one this browser began with (and one vft is waiting for).
    if state_from_cookie(&headers).as_deref() != Some(returned) {
        tracing::warn!("OpenID sign-in: the callback's state is not this browser's");
        refused(
            &state,
            "oidc:unknown",
            "",
            vec!["state_mismatch".into()],
            client_ip,
        )
        .await;
        return Ok(failed("failed"));
    }
    let Ok(pending) = oidc.pending.take(returned) else {
        return Ok(failed("failed"));
    };
    let client = match oidc.client().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "OpenID sign-in: the provider does not answer");
            return Ok(failed("provider_unavailable"));
        }
    };
    if callback
        .iss
        .as_deref()
        .is_some_and(|iss| iss != client.issuer())
    {
        tracing::warn!("OpenID sign-in: the callback names another issuer");
        return Ok(failed("failed"));
    }
    let identity = match client.finish(pending, code).await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(error = %e, "OpenID sign-in refused");
            refused(
                &state,
                "oidc:unknown",
                "",
                vec!["token_refused".into()],
                client_ip,
            )
            .await;
            return Ok(failed("failed"));
        }
    };
    let bound = state
        .store
        .find_user_by_oidc(&identity.issuer, &identity.subject)
        .await?;
    let user = match bound {
        Some(u) => Some(u),
        None => {
            let by_name = match identity
                .username
                .as_deref()
                .and_then(|u| vft_domain::auth::parse_username(u).ok())
            {
                Some(name) => state.store.find_user(&name).await?,
                None => None,
            };
            match by_name {
                // An account bound to another subject of this (or another) provider is not
                // taken over by a second identity that happens to carry the same e-mail. The
                // attempt is recorded under the identity that tried, not the account's person.
                Some(u) if u.oidc.is_some() => {
                    refused(
                        &state,
                        &format!("oidc:{}", identity.subject),
                        "",
                        vec![
                            "method=oidc".into(),
                            "bound_to_another_identity".into(),
                            format!("claimed=user:{}", u.username),
                        ],
                        client_ip,
                    )
                    .await;
                    return Ok(failed("no_account"));
                }
                // A disabled account is refused before it is bound.
                Some(u) if u.disabled_at.is_some() => Some(u),
                Some(u) => {
                    state
                        .store
                        .bind_oidc(u.id, &identity.issuer, &identity.subject)
                        .await?;
                    Some(u)
                }
                None => None,
            }
        }
    };
    let Some(user) = user else {
        refused(
            &state,
            &actor_of(&identity),
            "",
            vec!["method=oidc".into(), "no_account".into()],
            client_ip,
        )
        .await;
        return Ok(failed("no_account"));
    };
    if user.disabled_at.is_some() {
        refused(
            &state,
            &format!("user:{}", user.username),
            &user.role.to_string(),
            vec!["method=oidc".into(), "disabled".into()],
            client_ip,
        )
        .await;
        return Ok(failed("disabled"));
    }
    let mut response = open_session(
        &state,
        &user,
        "oidc",
        client_ip,
        &headers,
        Some(to_dashboard(None)),
    )
    .await?;
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_state);
    Ok(response)
}
