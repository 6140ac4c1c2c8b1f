//! Pure types and rules of vft. No I/O: everything here takes values and returns values,
//! so the rules that make the numbers can be tested exhaustively (see the property tests).

pub mod adapter;
pub mod attribution;
pub mod audit;
pub mod auth;
pub mod contact;
pub mod event;
pub mod ids;
pub mod import;
pub mod interval;
pub mod kind;
pub mod membership;
pub mod month;
pub mod mqtt_access;
pub mod municipality;
pub mod nin;
pub mod notify;
pub mod reconcile;
pub mod response;
pub mod rollup;
pub mod service;
pub mod state;
pub mod table;
pub mod topic;

pub use attribution::{ChangeCause, ChangeLine, InService, Scope, attribute_changes};
pub use auth::{Actor, Capability, Principal, Role, RoleError, fingerprint, hash_token};
pub use event::{
    Cause, DeadLetterReason, DecommissionReason, Event, EventType, Outcome, ParsedItem,
    PlausibleTimes, parse_payload, parse_payload_at,
};
pub use ids::{
    AlarmRef, DeviceId, EventId, GatewayId, IdError, MunicipalityCode, RecipientRef, VendorId,
};
pub use kind::TechnologyKind;
pub use membership::{Cooperation, Membership, MembershipError, cooperations_from_csv};
pub use month::{YearMonth, month_end_instants};
pub use municipality::{Municipality, MunicipalityError, Registry};
pub use response::{AlarmRecord, MonthResponse, ResponseStandard, ResponseTimes, response_figures};
pub use rollup::{LifecycleRecord, RollupFilter, in_service_at, month_end_counts};
pub use state::{AlarmDelta, AlarmFold, Connectivity, DeviceDelta, connectivity, fault_open};
pub use table::{DeviceTable, TableError, TableRow, spreadsheet_safe};
pub use topic::{EventTopic, TopicError, TopicKind};
