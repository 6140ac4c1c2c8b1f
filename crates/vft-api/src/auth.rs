use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use vft_domain::{MunicipalityCode, Role, hash_token};

/// The caller, as its bearer token says.
pub struct Caller(pub Role);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or(ApiError::Unauthorized)?;
        let record = state
            .store
            .find_token(&hash_token(token))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        Ok(Caller(record.role))
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
