//! Pure types and rules of vft. No I/O: everything here takes values and returns values,
//! so the rules that make the numbers can be tested exhaustively (see the property tests).

pub mod auth;
pub mod event;
pub mod ids;
pub mod kind;
pub mod month;
pub mod municipality;
pub mod nin;
pub mod rollup;
pub mod table;
pub mod topic;

pub use auth::{Role, fingerprint, hash_token};
pub use event::{Cause, DeadLetterReason, Event, EventType, Outcome, ParsedItem, parse_payload};
pub use ids::{
    AlarmRef, DeviceId, EventId, GatewayId, IdError, MunicipalityCode, RecipientRef, VendorId,
};
pub use kind::TechnologyKind;
pub use month::{YearMonth, month_end_instants};
pub use municipality::{Municipality, MunicipalityError, Registry};
pub use rollup::{LifecycleRecord, RollupFilter, in_service_at, month_end_counts};
pub use table::{DeviceTable, TableError, TableRow};
pub use topic::{EventTopic, TopicError};
