//! Machine tokens for integrations: their secret, terms (label and lifetime) and creation,
//! for `POST /api/v1/tokens` and `vft token create` alike (each records its own audit entry).

use crate::AppError;
use chrono::{DateTime, Utc};
use vft_domain::{Role, hash_token};
use vft_store::{Store, TokenListing, TokenRecord};

/// Longest a machine token may live, and how long one lives unless asked otherwise.
pub const MAX_TOKEN_DAYS: u32 = 730;
pub const DEFAULT_TOKEN_DAYS: u32 = 90;

/// How many hex digits of a token's hash name it (`vft token list`, the audit log).
pub const TOKEN_ID_DIGITS: usize = 12;

/// A token's id: the start of its hash.
pub fn token_id(token_hash: &str) -> &str {
    &token_hash[..TOKEN_ID_DIGITS.min(token_hash.len())]
}

/// A new machine token: `vft_` and 64 hex digits (256 random bits).
pub fn new_token_secret() -> String {
    format!("vft_{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// Checks a token's label and lifetime; returns the label trimmed and the expiry.
pub fn token_terms(
    label: &str,
    expires_in_days: Option<u32>,
    now: DateTime<Utc>,
) -> Result<(String, DateTime<Utc>), AppError> {
    let label = label.trim();
    vft_domain::auth::check_free_text("a token's label (who holds it, what for)", label)
        .map_err(|e| AppError::Invalid(e.to_string()))?;
    let days = expires_in_days.unwrap_or(DEFAULT_TOKEN_DAYS);
    if days == 0 || days > MAX_TOKEN_DAYS {
        return Err(AppError::Invalid(format!(
            "a token lives 1-{MAX_TOKEN_DAYS} days"
        )));
    }
    Ok((
        label.to_owned(),
        now + chrono::Duration::days(i64::from(days)),
    ))
}

/// A token just created: its secret, shown this once, and what is stored of it.
pub struct IssuedToken {
    pub secret: String,
    pub listing: TokenListing,
}

/// Creates a machine token for `role` (already checked against the registry by the caller)
/// with a checked label and lifetime; only its hash is stored.
pub async fn create_token(
    store: &dyn Store,
    role: Role,
    label: &str,
    expires_in_days: Option<u32>,
    now: DateTime<Utc>,
) -> Result<IssuedToken, AppError> {
    let (label, expires_at) = token_terms(label, expires_in_days, now)?;
    let secret = new_token_secret();
    let token_hash = hash_token(&secret);
    store
        .create_token(&token_hash, &role, &label, now, Some(expires_at))
        .await?;
    Ok(IssuedToken {
        secret,
        listing: TokenListing {
            token_hash,
            record: TokenRecord {
                role,
                label: Some(label),
                created_at: now,
                expires_at: Some(expires_at),
            },
        },
    })
}
