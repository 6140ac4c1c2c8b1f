use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use chrono::{DateTime, Utc};
use vft_domain::{MunicipalityCode, Role, hash_token};

/// The dashboard's session cookie. Its value is a random secret; only its hash is stored.
pub const SESSION_COOKIE: &str = "vft_session";

/// The caller, as its bearer token or dashboard session says.
pub struct Caller(pub Role);

/// A caller with a coordinator's token or session. As an extractor it runs before the body is
/// read, so an upload by anyone else is refused (401/403) without vft reading a byte of it.
pub struct Coordinator;

/// How a request proved who it is.
pub struct Authenticated {
    pub role: Role,
    /// When the dashboard session ends; `None` for a bearer token.
    pub session_expires: Option<DateTime<Utc>>,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// The session cookie's value, if the request carries one of a plausible size.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 256)
}

/// A bearer token wins over a session cookie: scripts say exactly who they are.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Authenticated, ApiError> {
    if let Some(token) = bearer(&parts.headers) {
        if token.is_empty() || token.len() > 256 {
            return Err(ApiError::Unauthorized);
        }
        let record = state
            .store
            .find_token(&hash_token(token))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        return Ok(Authenticated {
            role: record.role,
            session_expires: None,
        });
    }
    let session = session_cookie(&parts.headers).ok_or(ApiError::Unauthorized)?;
    let (record, expires) = state
        .store
        .find_session(&hash_token(&session), Utc::now())
        .await?
        .ok_or(ApiError::Unauthorized)?;
    // SameSite=Strict keeps other sites' forms from sending the cookie; checking Origin on
    // writes covers browsers and proxies that get SameSite wrong.
    if !matches!(parts.method, Method::GET | Method::HEAD) && !same_origin(&parts.headers) {
        return Err(ApiError::Forbidden(
            "a change through the dashboard session must come from the dashboard's own page".into(),
        ));
    }
    Ok(Authenticated {
        role: record.role,
        session_expires: Some(expires),
    })
}

/// Whether `Origin` names the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    match (header(ORIGIN), header(HOST)) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state).await
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Caller(authenticate(parts, state).await?.role))
    }
}

impl FromRequestParts<AppState> for Coordinator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Caller(authenticate(parts, state).await?.role).require_coordinator()?;
        Ok(Coordinator)
    }
}

impl Caller {
    /// The municipality a request is about: the one asked for, if the caller may see it; a
    /// municipality caller that asks for none gets its own.
    pub fn scope(
        &self,
        asked: Option<MunicipalityCode>,
    ) -> Result<Option<MunicipalityCode>, ApiError> {
        match (&self.0, asked) {
            (Role::Coordinator, asked) => Ok(asked),
            (Role::Municipality(own), None) => Ok(Some(own.clone())),
            (Role::Municipality(own), Some(asked)) if *own == asked => Ok(Some(asked)),
            (Role::Municipality(own), Some(asked)) => Err(ApiError::Forbidden(format!(
                "this token may see municipality {own} only, not {asked}"
            ))),
        }
    }

    pub fn require_coordinator(&self) -> Result<(), ApiError> {
        match self.0 {
            Role::Coordinator => Ok(()),
            Role::Municipality(_) => {
                Err(ApiError::Forbidden("this needs a coordinator token".into()))
            }
        }
    }
}
