use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Errors as the client sees them. Internal details are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token or session")]
    Unauthorized,
    /// A failed sign-in: the answer does not say whether the account exists, is locked or
    /// is disabled.
    #[error(
        "wrong username or password, or the account is locked for a while after too many wrong passwords"
    )]
    WrongPassword,
    /// A dead letter that cannot (yet) become events.
    #[error("{0}")]
    NotReplayable(String),
    /// The audit log cannot be written, so personal data is not shown.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Too many wrong tokens: try again after this many seconds (`Retry-After`).
    #[error("too many wrong tokens or passwords; try again in {0} s")]
    TooManyRequests(u64),
    #[error("internal error")]
    Internal(String),
}

impl From<vft_store::StoreError> for ApiError {
    fn from(e: vft_store::StoreError) -> Self {
        match e {
            vft_store::StoreError::Conflict(why) => Self::Conflict(why),
            e => Self::Internal(e.to_string()),
        }
    }
}

/// A use case's error as the client sees it. The operator's failures (the store, a document
/// not written, work interrupted) become `Internal`, whose detail is logged and never sent.
impl From<vft_app::AppError> for ApiError {
    fn from(e: vft_app::AppError) -> Self {
        match e {
            vft_app::AppError::Invalid(why) => Self::BadRequest(why),
            vft_app::AppError::Forbidden(why) => Self::Forbidden(why),
            vft_app::AppError::NotFound(why) => Self::NotFound(why),
            vft_app::AppError::Conflict(why) => Self::Conflict(why),
            vft_app::AppError::Store(e) => e.into(),
            e @ (vft_app::AppError::Interrupted(_) | vft_app::AppError::Failed(..)) => {
                Self::Internal(e.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthorized | Self::WrongPassword => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::NotReplayable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "not_replayable"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            Self::Internal(detail) => {
                tracing::error!(%detail, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let body = Json(serde_json::json!({ "error": code, "message": self.to_string() }));
        let mut response = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if let Self::TooManyRequests(secs) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs.max(1)));
        }
        response
    }
}
