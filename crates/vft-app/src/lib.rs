//! vft's use cases: what a coordinator asks of vft, whichever door the question comes in by.
//! The HTTP API (`vft-api`) and the command line (`vft`) both call these functions, so they
//! give the same answers from the same code, and neither reaches into the other. A use case
//! takes the store, the settings it needs and "now" from its caller; it parses its inputs
//! (strings from a query or a flag) into domain types and returns results and [`AppError`]s
//! that each door shows its own way (a status code with the cause logged, or the cause on the
//! operator's console).

pub mod accounts;
mod error;
pub mod figures;
pub mod inventory;
pub mod mqtt_credentials;
pub mod report;
pub mod rollups;
pub mod schema;
pub mod selection;
pub mod service_level;
pub mod transition;

pub use error::AppError;
