//! Dashboard sign-in: a person proves who they are (a local password here, or OpenID Connect
//! in `crate::oidc`) and gets an HttpOnly, SameSite=Strict session cookie that expires. Shared
//! machine tokens do not open the dashboard. Wrong passwords are throttled per client address
//! and in total (`crate::throttle`) and lock the account after a few in a row. The cookie is `Secure`
//! unless configured off or the page was opened over plain HTTP on a loopback address.

use crate::auth::{Authenticated, Caller, SESSION_COOKIE, session_cookie};
use crate::client_ip::ClientIp;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vft_domain::audit::{AuditAction, AuditEntry};
use vft_domain::{Actor, Capability, Principal, Role, hash_token};
use vft_store::UserRecord;

/// How dashboard sessions behave (`[dashboard]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct SessionSettings {
    /// How long a sign-in lasts.
    pub lifetime: chrono::Duration,
    /// Mark the cookie `Secure` (only sent over HTTPS), except to a page opened over plain
    /// HTTP on a loopback address (see [`cookie_is_secure`]).
    pub secure_cookie: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            lifetime: chrono::Duration::hours(8),
            secure_cookie: true,
        }
    }
}

/// A host name or address (with or without a port) that names this machine itself.
fn loopback_host(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _port)| host),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether the browser (or script) is talking plain HTTP to a loopback address: as the page's
/// `Origin` says (a browser sends it with every sign-in), else as `Host` says unless a proxy
/// in front says the request came over HTTPS (`X-Forwarded-Proto`, `Forwarded`).
fn plain_http_to_loopback(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = value(header::ORIGIN) {
        return origin.strip_prefix("http://").is_some_and(loopback_host);
    }
    let forwarded_https =
        value(header::HeaderName::from_static("x-forwarded-proto")).is_some_and(|p| {
            p.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        }) || value(header::FORWARDED)
            .is_some_and(|f| f.to_ascii_lowercase().contains("proto=https"));
    !forwarded_https && value(header::HOST).is_some_and(loopback_host)
}

/// Whether the session cookie gets `Secure`: unless configured off, always, except to a page
/// opened over plain HTTP on a loopback address (`vft demo` on http://127.0.0.1), where a
/// browser would keep a Secure cookie only by its own leniency. A TLS proxy on the same
/// machine still gets `Secure`: the browser's `Origin` is its https address.
pub fn cookie_is_secure(settings: &SessionSettings, headers: &HeaderMap) -> bool {
    headers.contains_key(SERVED_OVER_TLS)
        || (settings.secure_cookie && !plain_http_to_loopback(headers))
}

/// A header `serve_tls` sets on every request it serves (replacing any a client sent), so the
/// session cookie is Secure whenever vft itself speaks TLS, whatever the request says.
pub(crate) const SERVED_OVER_TLS: &str = "x-vft-served-over-tls";

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub username: String,
    pub password: String,
}

/// Who is signed in, and until when.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// `coordinator`, `municipality`, `operator` or `auditor`.
    pub role: String,
    /// `user:…` for a person, `token:…` for a machine token.
    pub actor: String,
    /// A person's display name, if set.
    pub name: Option<String>,
    /// The municipality a municipality user acts for by default (the lowest-numbered of its own).
    pub municipality: Option<String>,
    pub municipality_name: Option<String>,
    /// Every municipality a municipality user may see (one at a time, by `municipality=`).
    pub municipalities: Vec<String>,
    /// End of the dashboard session; `null` when asked with a bearer token.
    pub expires_at: Option<DateTime<Utc>>,
    /// The newest event time among the devices the caller may see (`null`: no data yet, or
    /// a role without fleet data). The dashboard opens on that year.
    pub latest_activity: Option<DateTime<Utc>>,
}

async fn view(
    state: &AppState,
    principal: &Principal,
    name: Option<String>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<SessionView, ApiError> {
    let role = &principal.role;
    let municipality = role.municipalities().first();
    let latest_activity = if role.may(Capability::ReadFleet) {
        state.store.latest_activity(municipality).await?
    } else {
        None
    };
    Ok(SessionView {
        latest_activity,
        role: role.name().to_owned(),
        actor: principal.actor(),
        name,
        municipality: municipality.map(ToString::to_string),
        municipality_name: municipality
            .and_then(|m| state.registry.get(m))
            .map(|m| m.name.clone()),
        municipalities: role
            .municipalities()
            .iter()
            .map(ToString::to_string)
            .collect(),
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

/// A password hash that matches nothing, checked for unknown, disabled and password-less
/// accounts so that a wrong username costs as long as a wrong password.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    vft_domain::mqtt_access::hash_password("no account has this password", [7; 16])
        .unwrap_or_default()
});

/// At most two Argon2id checks (19 MiB each) at once: sign-in floods cost bounded memory.
static PASSWORD_CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Checks a password against a PHC string off the async workers.
pub(crate) async fn password_matches(phc: Option<&str>, password: &str) -> bool {
    let Ok(_permit) = PASSWORD_CHECKS.acquire().await else {
        return false;
    };
    let known = phc.is_some();
    let phc = phc.map_or_else(|| DUMMY_HASH.clone(), str::to_owned);
    let password = password.to_owned();
    let matched = tokio::task::spawn_blocking(move || {
        vft_domain::mqtt_access::verify_password(&phc, &password)
    })
    .await
    .unwrap_or(false);
    known && matched
}

/// Opens a dashboard session for a person who proved who they are (`method`: `password` or
/// `oidc`), records it in the audit log, and answers with the session cookie.
pub(crate) async fn open_session(
    state: &AppState,
    user: &UserRecord,
    method: &str,
    client: std::net::IpAddr,
    headers: &HeaderMap,
    mut response: Option<Response>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let settings = state.sessions;
    let expires_at = now + settings.lifetime;
    state.store.sign_in_succeeded(user.id, now).await?;
    state
        .store
        .create_session(&hash_token(&secret), user.id, method, now, expires_at)
        .await?;
    let principal = Principal {
        actor: Actor::User {
            id: user.id,
            username: user.username.clone(),
        },
        role: user.role.clone(),
    };
    record_sign(
        state,
        sign_entry(
            &principal.actor(),
            &principal.role.to_string(),
            AuditAction::SignIn,
            if method == "oidc" {
                crate::oidc::CALLBACK_ROUTE
            } else {
                "POST /api/session"
            },
            vec![format!("method={method}")],
            client,
            200,
        ),
    )
    .await;
    tracing::info!(role = user.role.name(), method, "dashboard sign-in");
    let secure = cookie_is_secure(&settings, headers);
    if secure
        && headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|o| o.starts_with("http://"))
    {
        tracing::warn!(
            "dashboard sign-in from a page served over plain HTTP: the browser will not keep the \
             Secure session cookie; serve vft behind TLS (or set dashboard.secure_cookie = false)"
        );
    }
    let mut response = match response.take() {
        Some(r) => r,
        None => Json(
            view(
                state,
                &principal,
                user.display_name.clone(),
                Some(expires_at),
            )
            .await?,
        )
        .into_response(),
    };
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie_header(&secret, settings.lifetime, secure),
    );
    Ok(response)
}

/// Writes a sign-in, failed sign-in or sign-out record (failures to write are logged by the
/// audit writer; sign-in goes on, as a change would).
pub(crate) async fn record_sign(state: &AppState, entry: AuditEntry) {
    let _ = state.audit.record(entry).await;
}

/// A sign-in, failed sign-in or sign-out record.
pub(crate) fn sign_entry(
    actor: &str,
    role: &str,
    action: AuditAction,
    route: &str,
    subjects: Vec<String>,
    client: std::net::IpAddr,
    status: u16,
) -> AuditEntry {
    AuditEntry {
        at_micros: Utc::now().timestamp_micros(),
        actor: actor.to_owned(),
        role: role.to_owned(),
        action,
        route: route.to_owned(),
        municipality: None,
        subjects,
        client: client.to_string(),
        status,
    }
}

#[utoipa::path(post, path = "/api/session", tag = "dashboard", security(()), request_body = SignIn, responses((status = 200, description = "Signed in; sets the session cookie.", body = SessionView), (status = 400, body = crate::schemas::ErrorBody), (status = 401, description = "Wrong username or password, or the account is locked or disabled (the answer does not say which)", body = crate::schemas::ErrorBody), (status = 429, description = "Too many wrong passwords from this client (or from all clients together): try again after `Retry-After` seconds; the password was not looked at.", body = crate::schemas::ErrorBody)))]
/// `POST /api/session {"username": …, "password": …}`: a person signs in to the dashboard
/// with a local password. Wrong passwords are throttled per client address and in total, and
/// [`vft_domain::auth::LOCKOUT_AFTER_FAILURES`] in a row lock the account for
/// [`vft_domain::auth::LOCKOUT_MINUTES`] minutes.
pub async fn sign_in(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // A client that must wait is refused before its password is looked at.
    let throttle = &state.sign_in_throttle;
    if let Err(wait) = throttle.admit(client, std::time::Instant::now()) {
        metrics::counter!("vft_http_sign_in_throttled_total").increment(1);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return Err(ApiError::TooManyRequests(secs.max(1)));
    }
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
    let SignIn { username, password } = serde_json::from_slice(&body).map_err(|_| {
        ApiError::BadRequest(
            "expected a JSON body {\"username\": \"…\", \"password\": \"…\"}".into(),
        )
    })?;
    let now = Utc::now();
    let claimed = vft_domain::auth::parse_username(&username).ok();
    let user = match &claimed {
        Some(name) => state.store.find_user(name).await?,
        None => None,
    };
    let usable = user
        .as_ref()
        .filter(|u| u.disabled_at.is_none() && u.locked_until.is_none_or(|t| t <= now));
    let matched = password.len() <= vft_domain::auth::MAX_PASSWORD_BYTES
        && password_matches(usable.and_then(|u| u.password_hash.as_deref()), &password).await;
    match (usable, matched) {
        (Some(user), true) => {
            throttle.succeeded(client);
            open_session(&state, user, "password", client, &headers, None).await
        }
        _ => {
            metrics::counter!("vft_http_sign_in_failures_total").increment(1);
            throttle.failed(client, std::time::Instant::now());
            let mut why = Vec::new();
            let (actor, role) = match &user {
                Some(u) => {
                    if u.disabled_at.is_some() {
                        why.push("disabled".to_owned());
                    } else if u.locked_until.is_some_and(|t| t > now) {
                        why.push("locked".to_owned());
                    } else if u.password_hash.is_none() {
                        why.push("no_password".to_owned());
                    } else {
                        let failed = state
                            .store
                            .sign_in_failed(
                                u.id,
                                vft_domain::auth::LOCKOUT_AFTER_FAILURES,
                                now + chrono::Duration::minutes(vft_domain::auth::LOCKOUT_MINUTES),
                            )
                            .await?;
                        why.push(format!("wrong_password={failed}"));
                        if failed >= vft_domain::auth::LOCKOUT_AFTER_FAILURES {
                            why.push("now_locked".to_owned());
                            tracing::warn!(username = %u.username, failed, "account locked after wrong passwords");
                        }
                    }
                    (format!("user:{}", u.username), u.role.to_string())
                }
                None => {
                    why.push("unknown_user".to_owned());
                    (
                        format!("user:{}", claimed.as_deref().unwrap_or("(not a username)")),
                        String::new(),
                    )
                }
            };
            record_sign(
                &state,
                sign_entry(
                    &actor,
                    &role,
                    AuditAction::SignInFailed,
                    "POST /api/session",
                    why,
                    client,
                    401,
                ),
            )
            .await;
            Err(ApiError::WrongPassword)
        }
    }
}

#[utoipa::path(delete, path = "/api/session", tag = "dashboard", security(()), responses((status = 204, description = "Signed out; the cookie is cleared.")))]
/// `DELETE /api/session`: signs out (ends the session, clears the cookie).
pub async fn sign_out(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(secret) = session_cookie(&headers) {
        let hash = hash_token(&secret);
        if let Some((user, _)) = state.store.find_session(&hash, Utc::now()).await? {
            state.store.delete_session(&hash).await?;
            record_sign(
                &state,
                sign_entry(
                    &format!("user:{}", user.username),
                    &user.role.to_string(),
                    AuditAction::SignOut,
                    "DELETE /api/session",
                    Vec::new(),
                    client,
                    204,
                ),
            )
            .await;
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie_header(
            "",
            chrono::Duration::zero(),
            cookie_is_secure(&state.sessions, &headers),
        ),
    );
    Ok(response)
}

#[utoipa::path(get, path = "/api/v1/session", tag = "dashboard", responses((status = 200, body = SessionView), (status = 401, body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/session`: who the caller is.
pub async fn current(
    State(state): State<AppState>,
    who: Authenticated,
) -> Result<Response, ApiError> {
    let name = match &who.principal.actor {
        Actor::User { username, .. } => state
            .store
            .find_user(username)
            .await?
            .and_then(|u| u.display_name),
        _ => None,
    };
    Ok(Json(view(&state, &who.principal, name, who.session_expires).await?).into_response())
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

#[utoipa::path(get, path = "/api/v1/municipalities", tag = "dashboard", responses((status = 200, description = "The municipalities the caller may see (a municipality user: its own).", body = MunicipalityList), (status = 401, body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/municipalities`: the municipalities the caller may see.
pub async fn municipalities(
    State(state): State<AppState>,
    caller: Caller,
) -> Json<MunicipalityList> {
    let municipalities = state
        .registry
        .iter()
        .filter(|m| caller.role().may_see(&m.code))
        .map(|m| MunicipalityView {
            code: m.code.to_string(),
            name: m.name.clone(),
        })
        .collect();
    Json(MunicipalityList { municipalities })
}

#[utoipa::path(get, path = "/api/v1/cooperations", tag = "dashboard", responses((status = 200, description = "The configured cooperations and their membership periods; a municipality user sees those it has been a member of, with its own periods only.", body = CooperationList), (status = 401, body = crate::schemas::ErrorBody)))]
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
                .filter(|m| caller.role().may_see(&m.municipality))
                .map(|m| MembershipView {
                    municipality: m.municipality.to_string(),
                    from: m.from,
                    until: m.until,
                })
                .collect(),
        })
        .filter(|c| !c.members.is_empty() || *caller.role() == Role::Coordinator)
        .collect();
    Json(CooperationList { cooperations })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, HeaderValue::from_str(value).expect("value"));
        }
        h
    }

    #[test]
    fn the_cookie_is_secure_unless_off_or_a_plain_http_page_on_loopback() {
        let on = SessionSettings::default();
        assert!(on.secure_cookie, "Secure by default");
        let off = SessionSettings {
            secure_cookie: false,
            ..on
        };
        let cases: &[(&[(&'static str, &str)], bool)] = &[
            // A browser on vft demo's own address: plain HTTP to loopback.
            (
                &[
                    ("origin", "http://127.0.0.1:8080"),
                    ("host", "127.0.0.1:8080"),
                ],
                false,
            ),
            (
                &[
                    ("origin", "http://localhost:8080"),
                    ("host", "localhost:8080"),
                ],
                false,
            ),
            (
                &[("origin", "http://[::1]:8080"), ("host", "[::1]:8080")],
                false,
            ),
            (
                &[("origin", "http://127.0.0.2:9"), ("host", "127.0.0.2:9")],
                false,
            ),
            (&[("origin", "http://vft.localhost")], false),
            // A TLS proxy on the same machine passing Host through, or not.
            (
                &[
                    ("origin", "https://vft.example.no"),
                    ("host", "127.0.0.1:8080"),
                ],
                true,
            ),
            (
                &[
                    ("origin", "https://127.0.0.1:8443"),
                    ("host", "127.0.0.1:8080"),
                ],
                true,
            ),
            (
                &[("host", "127.0.0.1:8080"), ("x-forwarded-proto", "https")],
                true,
            ),
            (
                &[
                    ("host", "localhost"),
                    ("forwarded", "for=1.2.3.4;proto=https"),
                ],
                true,
            ),
            // Plain HTTP to another machine: Secure (the browser drops it; vft warns).
            (
                &[
                    ("origin", "http://10.0.0.5:8080"),
                    ("host", "10.0.0.5:8080"),
                ],
                true,
            ),
            (&[("origin", "http://localhost.example.no")], true),
            // Scripts: no Origin, Host decides.
            (&[("host", "127.0.0.1:8080")], false),
            (&[("host", "localhost")], false),
            (&[("host", "vft.example.no")], true),
            (&[], true),
        ];
        for (pairs, secure) in cases {
            let h = headers(pairs);
            assert_eq!(cookie_is_secure(&on, &h), *secure, "{pairs:?}");
            assert!(!cookie_is_secure(&off, &h), "off is off: {pairs:?}");
            let mut tls = h.clone();
            tls.insert(SERVED_OVER_TLS, HeaderValue::from_static("1"));
            assert!(
                cookie_is_secure(&off, &tls),
                "always over vft's own TLS: {pairs:?}"
            );
        }
    }
}
