//! Personal accounts and machine tokens, managed through the API by the coordinator and
//! operator roles (`vft user …` and `vft token …` do the same on the server).

use crate::audit_slot::AuditNote;
use crate::auth::AccessManager;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use vft_domain::auth::{check_new_password, parse_username};
use vft_domain::{Actor, MunicipalityCode, Principal, Role};
use vft_store::{NewUser, TokenListing, UserChange, UserRecord};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub username: String,
    pub name: Option<String>,
    pub role: String,
    pub municipalities: Vec<String>,
    /// Signs in with a local password.
    pub password: bool,
    /// Has signed in through the identity provider (its subject is bound).
    pub oidc_bound: bool,
    pub locked_until: Option<DateTime<Utc>>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            username: u.username.clone(),
            name: u.display_name.clone(),
            role: u.role.name().to_owned(),
            municipalities: u
                .role
                .municipalities()
                .iter()
                .map(ToString::to_string)
                .collect(),
            password: u.password_hash.is_some(),
            oidc_bound: u.oidc.is_some(),
            locked_until: u.locked_until.filter(|t| *t > Utc::now()),
            disabled: u.disabled_at.is_some(),
            created_at: u.created_at,
            last_sign_in_at: u.last_sign_in_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

/// A role from its name and municipality codes, as a request gives them.
pub fn role_from(name: &str, municipalities: &[String]) -> Result<Role, ApiError> {
    let codes = municipalities
        .iter()
        .map(|m| MunicipalityCode::parse(m).map_err(|e| ApiError::BadRequest(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Role::parse(name, codes).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Argon2id of a new password, off the async workers.
pub async fn hash_new_password(password: String) -> Result<String, ApiError> {
    check_new_password(&password).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        vft_domain::mqtt_access::hash_password(&password, rand::random())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))
}

fn checked_name(name: &str) -> Result<String, ApiError> {
    vft_domain::auth::check_free_text("a name", name)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(name.trim().to_owned())
}

fn check_municipalities(state: &AppState, role: &Role) -> Result<(), ApiError> {
    match role
        .municipalities()
        .iter()
        .find(|m| state.registry.get(m).is_none())
    {
        Some(unknown) => Err(ApiError::BadRequest(format!(
            "municipality {unknown} is not in the configured region"
        ))),
        None => Ok(()),
    }
}

#[utoipa::path(get, path = "/api/v1/users", tag = "access", responses((status = 200, body = UserList), (status = 401, body = crate::schemas::ErrorBody), (status = 403, description = "Not a coordinator or operator", body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/users`: every personal account.
pub async fn list_users(
    _manager: AccessManager,
    State(state): State<AppState>,
    note: AuditNote,
) -> Result<Json<UserList>, ApiError> {
    let users = state.store.list_users().await?;
    note.subjects(users.iter().map(|u| format!("user={}", u.username)));
    Ok(Json(UserList {
        users: users.iter().map(UserView::from).collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    /// Lower-cased; an e-mail address works (and is what OpenID sign-in matches by default).
    pub username: String,
    pub name: Option<String>,
    /// `coordinator`, `municipality`, `operator` or `auditor`.
    pub role: String,
    /// A municipality user's municipality codes.
    #[serde(default)]
    pub municipalities: Vec<String>,
    /// A local password (at least 12 characters); leave out for OpenID Connect only.
    pub password: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/users", tag = "access", request_body = NewUserRequest, responses((status = 201, body = UserView), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody), (status = 409, description = "The username is taken", body = crate::schemas::ErrorBody)))]
/// `POST /api/v1/users`: creates a personal account.
pub async fn create_user(
    _manager: AccessManager,
    State(state): State<AppState>,
    note: AuditNote,
    Json(new): Json<NewUserRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let username =
        parse_username(&new.username).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    note.subjects([format!("user={username}")]);
    let role = role_from(&new.role, &new.municipalities)?;
    check_municipalities(&state, &role)?;
    note.subjects([format!("role={role}")]);
    let password_hash = match new.password {
        Some(p) => Some(hash_new_password(p).await?),
        None => None,
    };
    let user = state
        .store
        .create_user(
            &NewUser {
                username,
                display_name: new.name.map(|n| checked_name(&n)).transpose()?,
                role,
                password_hash,
            },
            Utc::now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub name: Option<String>,
    /// A new role (with `municipalities` for a municipality user).
    pub role: Option<String>,
    pub municipalities: Option<Vec<String>>,
    /// A new local password (ends the account's sessions and lifts a lock).
    pub password: Option<String>,
    pub disabled: Option<bool>,
    /// Lifts a lock after wrong passwords.
    #[serde(default)]
    pub unlock: bool,
}

#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "access", request_body = UserPatch, responses((status = 200, body = UserView), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, description = "Not a coordinator or operator, or one's own role or state", body = crate::schemas::ErrorBody), (status = 404, body = crate::schemas::ErrorBody)))]
/// `PATCH /api/v1/users/{username}`: changes an account. Nobody changes their own role, lock
/// or disabled state (another manager must).
pub async fn update_user(
    AccessManager(me): AccessManager,
    State(state): State<AppState>,
    Path(username): Path<String>,
    note: AuditNote,
    Json(patch): Json<UserPatch>,
) -> Result<Json<UserView>, ApiError> {
    let username = parse_username(&username).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let is_me = matches!(&me.actor, Actor::User { username: mine, .. } if *mine == username);
    if is_me && (patch.role.is_some() || patch.disabled.is_some() || patch.unlock) {
        return Err(ApiError::Forbidden(
            "nobody changes their own role or account state; ask another coordinator or operator"
                .into(),
        ));
    }
    let role = match (&patch.role, &patch.municipalities) {
        (Some(name), municipalities) => {
            let role = role_from(name, municipalities.as_deref().unwrap_or_default())?;
            check_municipalities(&state, &role)?;
            note.subjects([format!("role={role}")]);
            Some(role)
        }
        (None, Some(_)) => {
            return Err(ApiError::BadRequest(
                "municipalities go with a role (\"role\": \"municipality\")".into(),
            ));
        }
        (None, None) => None,
    };
    let password_hash = match patch.password {
        Some(p) => {
            note.subjects(["password=changed"]);
            Some(Some(hash_new_password(p).await?))
        }
        None => None,
    };
    if let Some(d) = patch.disabled {
        note.subjects([format!("disabled={d}")]);
    }
    let change = UserChange {
        display_name: patch.name.map(|n| checked_name(&n).map(Some)).transpose()?,
        role,
        password_hash,
        disabled: patch.disabled,
        unlock: patch.unlock,
    };
    let user = state
        .store
        .update_user(&username, &change, Utc::now())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user named {username}")))?;
    Ok(Json(UserView::from(&user)))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    /// The start of the token's hash: how `vft token list` and the audit log name it.
    pub id: String,
    pub role: String,
    pub municipalities: Vec<String>,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub expired: bool,
}

impl From<&TokenListing> for TokenView {
    fn from(t: &TokenListing) -> Self {
        Self {
            id: vft_app::accounts::token_id(&t.token_hash).to_owned(),
            role: t.record.role.name().to_owned(),
            municipalities: t
                .record
                .role
                .municipalities()
                .iter()
                .map(ToString::to_string)
                .collect(),
            label: t.record.label.clone(),
            created_at: t.record.created_at,
            expires_at: t.record.expires_at,
            expired: t.record.expires_at.is_some_and(|e| e <= Utc::now()),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "access", responses((status = 200, body = TokenList), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody)))]
/// `GET /api/v1/tokens`: every machine token (never the tokens themselves).
pub async fn list_tokens(
    _manager: AccessManager,
    State(state): State<AppState>,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = state.store.list_tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens.iter().map(TokenView::from).collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// Who holds the token and what for (required: a token nobody can name is never revoked).
    pub label: String,
    pub role: String,
    #[serde(default)]
    pub municipalities: Vec<String>,
    /// Days until it expires (default 90, at most 730).
    pub expires_in_days: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    pub token: TokenView,
    /// The token itself, shown this once; vft keeps only its hash.
    pub secret: String,
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "access", request_body = NewTokenRequest, responses((status = 201, body = CreatedToken), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody)))]
/// `POST /api/v1/tokens`: a labelled, scoped, expiring machine token for an integration.
pub async fn create_token(
    _manager: AccessManager,
    State(state): State<AppState>,
    note: AuditNote,
    Json(new): Json<NewTokenRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let role = role_from(&new.role, &new.municipalities)?;
    check_municipalities(&state, &role)?;
    let issued = vft_app::accounts::create_token(
        state.store.as_ref(),
        role,
        &new.label,
        new.expires_in_days,
        Utc::now(),
    )
    .await?;
    let listing = &issued.listing;
    note.subjects([
        format!("token={}", vft_app::accounts::token_id(&listing.token_hash)),
        format!("role={}", listing.record.role),
        format!(
            "label={}",
            listing.record.label.as_deref().unwrap_or_default()
        ),
    ]);
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: TokenView::from(listing),
            secret: issued.secret,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "access", responses((status = 204, description = "Revoked"), (status = 400, body = crate::schemas::ErrorBody), (status = 401, body = crate::schemas::ErrorBody), (status = 403, body = crate::schemas::ErrorBody), (status = 404, body = crate::schemas::ErrorBody)))]
/// `DELETE /api/v1/tokens/{id}`: revokes a token by its id (at least 8 hex digits of its hash).
pub async fn revoke_token(
    AccessManager(me): AccessManager,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = id.to_ascii_lowercase();
    if id.len() < 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest(
            "a token id is at least 8 hex digits".into(),
        ));
    }
    let tokens = state.store.list_tokens().await?;
    let matches: Vec<&TokenListing> = tokens
        .iter()
        .filter(|t| t.token_hash.starts_with(&id))
        .collect();
    let token = match matches.as_slice() {
        [one] => *one,
        [] => return Err(ApiError::NotFound(format!("no token with id {id}"))),
        _ => {
            return Err(ApiError::BadRequest(format!(
                "several tokens start with {id}; give more digits"
            )));
        }
    };
    state.store.delete_token(&token.token_hash).await?;
    tracing::info!(token = %id, by = %Principal::actor(&me), "machine token revoked through the API");
    Ok(StatusCode::NO_CONTENT)
}
