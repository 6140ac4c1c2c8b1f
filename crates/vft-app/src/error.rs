/// Why a use case failed. `Invalid` is the caller's to fix and its text says how; `Store` is
/// the operator's: the HTTP API answers it with a plain 500 and logs the cause, the command
/// line prints the cause.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad input: a malformed date, an unknown vendor format or municipality, a file that
    /// cannot be read.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not see what it asked for (another municipality's data).
    #[error("{0}")]
    Forbidden(String),
    /// What was asked for does not exist (an unknown device).
    #[error("{0}")]
    NotFound(String),
    /// It clashes with what is stored (a credential's username taken).
    #[error("{0}")]
    Conflict(String),
    #[error("the database failed: {0}")]
    Store(#[from] vft_store::StoreError),
    /// Work off the async threads ended without an answer (it panicked or was cancelled).
    #[error("{0} did not finish")]
    Interrupted(&'static str),
    /// vft's own work failed (writing the report's PDF or workbook, hashing a password): not
    /// the caller's fault, so the API answers it as it answers a store error.
    #[error("cannot {0}: {1}")]
    Failed(&'static str, String),
}

impl AppError {
    pub(crate) fn failed(what: &'static str, why: impl Into<String>) -> Self {
        Self::Failed(what, why.into())
    }
}
