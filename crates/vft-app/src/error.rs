/// Why a use case failed. `Invalid` is the caller's to fix and its text says how; `Store` is
/// the operator's: the HTTP API answers it with a plain 500 and logs the cause, the command
/// line prints the cause.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad input: a malformed date, an unknown vendor format or municipality, a file that
    /// cannot be read.
    #[error("{0}")]
    Invalid(String),
    #[error("the database failed: {0}")]
    Store(#[from] vft_store::StoreError),
    /// Work off the async threads ended without an answer (it panicked or was cancelled).
    #[error("{0} did not finish")]
    Interrupted(&'static str),
}
