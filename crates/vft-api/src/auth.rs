//! Who is calling: a person's dashboard session or a machine token, resolved once per request
//! into a [`Principal`], and the extractors that require a capability of its role. Every
//! extractor also tells the audit record of the request who made it
//! ([`crate::audit_slot::AuditSlot`]).

use crate::audit_slot::AuditSlot;
use crate::client_ip::ClientIp;
use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use chrono::{DateTime, Utc};
use vft_app::accounts::TOKEN_ID_DIGITS;
use vft_domain::{Actor, Capability, MunicipalityCode, Principal, Role, hash_token};

/// The dashboard's session cookie. Its value is a random secret; only its hash is stored.
pub const SESSION_COOKIE: &str = "vft_session";

/// How a request proved who it is.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
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

/// A bearer token wins over a session cookie: scripts say exactly who they are. Wrong tokens
/// and sessions count against the client in the sign-in throttle, so guessing tokens on any
/// route is as slow as guessing passwords.
async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Authenticated, ApiError> {
    if let Some(known) = parts.extensions.get::<Authenticated>() {
        return Ok(known.clone());
    }
    let ClientIp(client) = ClientIp::from_parts(parts);
    let presented = bearer(&parts.headers).map(str::to_owned);
    let cookie = session_cookie(&parts.headers);
    if presented.is_none() && cookie.is_none() {
        return Err(ApiError::Unauthorized);
    }
    let throttle = &state.credential_throttle;
    if let Err(wait) = throttle.admit(client, std::time::Instant::now()) {
        metrics::counter!("vft_http_sign_in_throttled_total").increment(1);
        return Err(ApiError::TooManyRequests(wait.as_secs().max(1)));
    }
    let now = Utc::now();
    let found = if let Some(token) = presented {
        let token_hash = hash_token(&token);
        let record = if token.is_empty() || token.len() > 256 {
            None
        } else {
            state.store.find_token(&token_hash, now).await?
        };
        record.map(|r| Authenticated {
            principal: Principal {
                actor: Actor::Token {
                    id: token_hash[..TOKEN_ID_DIGITS].to_owned(),
                    label: r.label.unwrap_or_default(),
                },
                role: r.role,
            },
            session_expires: None,
        })
    } else {
        let secret = cookie.unwrap_or_default();
        match state.store.find_session(&hash_token(&secret), now).await? {
            Some((user, expires)) => {
                // SameSite=Strict keeps other sites' forms from sending the cookie; checking
                // Origin on writes covers browsers and proxies that get SameSite wrong.
                if !matches!(parts.method, Method::GET | Method::HEAD)
                    && !same_origin(&parts.headers)
                {
                    return Err(ApiError::Forbidden(
                        "a change through the dashboard session must come from the dashboard's own page"
                            .into(),
                    ));
                }
                Some(Authenticated {
                    principal: Principal {
                        actor: Actor::User {
                            id: user.id,
                            username: user.username,
                        },
                        role: user.role,
                    },
                    session_expires: Some(expires),
                })
            }
            None => None,
        }
    };
    let Some(who) = found else {
        metrics::counter!("vft_http_unknown_credentials_total").increment(1);
        throttle.failed(client, std::time::Instant::now());
        AuditSlot::note_unknown_credential(parts);
        return Err(ApiError::Unauthorized);
    };
    AuditSlot::note_principal(parts, &who.principal);
    parts.extensions.insert(who.clone());
    Ok(who)
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

async fn require(
    parts: &mut Parts,
    state: &AppState,
    capability: Capability,
) -> Result<Principal, ApiError> {
    let who = authenticate(parts, state).await?;
    if who.principal.role.may(capability) {
        Ok(who.principal)
    } else {
        Err(ApiError::Forbidden(format!(
            "the {} role may not {}",
            who.principal.role.name(),
            match capability {
                Capability::ReadFleet => "read fleet data",
                Capability::ChangeFleet => "change fleet data (a coordinator may)",
                Capability::ReadDeadLetters => "read dead letters",
                Capability::ManageAccess => "manage accounts, tokens or credentials",
                Capability::ReadAuditLog => "read the audit log",
            }
        )))
    }
}

/// A caller that may read fleet data, and the municipality it acts for. A municipality user
/// of several municipalities acts for the one its request names (`municipality=`), else the
/// lowest-numbered of its municipalities.
pub struct Caller {
    principal: Principal,
    own: Option<MunicipalityCode>,
}

/// The `municipality` query parameter, if the request has one that parses.
fn asked_municipality(parts: &Parts) -> Option<MunicipalityCode> {
    let query = parts.uri.query()?;
    url_pairs(query)
        .find(|(k, _)| k == "municipality")
        .and_then(|(_, v)| MunicipalityCode::parse(&v).ok())
}

/// `key=value` pairs of a query string, decoded as a form is.
pub(crate) fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned()))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = require(parts, state, Capability::ReadFleet).await?;
        let own = match &principal.role {
            Role::Municipality(codes) => Some(match asked_municipality(parts) {
                Some(asked) if codes.contains(&asked) => asked,
                Some(asked) => {
                    return Err(ApiError::Forbidden(format!(
                        "this account may see {} only, not {asked}",
                        principal.role.municipalities_text().unwrap_or_default()
                    )));
                }
                None => codes.first().cloned().ok_or(ApiError::Unauthorized)?,
            }),
            _ => None,
        };
        AuditSlot::note_municipality(
            parts,
            own.clone().or_else(|| asked_municipality(parts)).as_ref(),
        );
        Ok(Caller { principal, own })
    }
}

impl Caller {
    pub fn role(&self) -> &Role {
        &self.principal.role
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The municipality a municipality user acts for; `None` for a coordinator.
    pub fn own(&self) -> Option<&MunicipalityCode> {
        self.own.as_ref()
    }

    /// The municipality a request is about: the one asked for, if the caller may see it; a
    /// municipality user that asks for none gets the one it acts for.
    pub fn scope(
        &self,
        asked: Option<MunicipalityCode>,
    ) -> Result<Option<MunicipalityCode>, ApiError> {
        match (&self.own, asked) {
            (None, asked) => Ok(asked),
            (Some(own), None) => Ok(Some(own.clone())),
            (Some(_), Some(asked)) if self.principal.role.may_see(&asked) => Ok(Some(asked)),
            (Some(_), Some(asked)) => Err(ApiError::Forbidden(format!(
                "this account may see {} only, not {asked}",
                self.principal
                    .role
                    .municipalities_text()
                    .unwrap_or_default()
            ))),
        }
    }

    pub fn require_coordinator(&self) -> Result<(), ApiError> {
        if self.principal.role.may(Capability::ChangeFleet) {
            Ok(())
        } else {
            Err(ApiError::Forbidden("this needs a coordinator".into()))
        }
    }
}

/// Extractors that require one capability. As extractors they run before the body is read,
/// so an upload by anyone else is refused (401/403) without vft reading a byte of it.
macro_rules! capability_extractor {
    ($(#[$doc:meta])* $name:ident, $capability:expr) => {
        $(#[$doc])*
        pub struct $name(pub Principal);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
                Ok(Self(require(parts, state, $capability).await?))
            }
        }
    };
}

capability_extractor!(
    /// May publish months, import and set timeouts (a coordinator).
    Coordinator,
    Capability::ChangeFleet
);
capability_extractor!(
    /// May manage accounts, machine tokens and MQTT credentials (coordinator, operator).
    AccessManager,
    Capability::ManageAccess
);
capability_extractor!(
    /// May read the audit log (auditor, coordinator).
    AuditReader,
    Capability::ReadAuditLog
);
capability_extractor!(
    /// May read dead letters and their payloads (coordinator, operator).
    DeadLetterReader,
    Capability::ReadDeadLetters
);
