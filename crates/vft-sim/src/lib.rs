//! A simulated region of welfare-technology gateways.
//!
//! [`generate`] builds, from a monthly device table and a list of municipalities, a year of
//! realistic gateway traffic (Contract 1 events) whose month-end counts reproduce the table
//! exactly. [`publish`] sends it to an MQTT broker with QoS 1. Generation is pure and
//! deterministic for a seed, so tests can check the numbers without a broker.
//!
//! Beside the traffic: [`inventory_exports`] writes the vendors' inventory exports of the
//! simulated fleet (in their configured formats, with a few seeded discrepancies of each kind
//! reconciliation looks for), and [`bad_messages`] a handful of messages that become dead
//! letters without changing any figure.

mod exports;
mod faults;
mod generate;
mod publish;

pub use exports::{
    Discrepancy, InventoryExport, Planted, inventory_export, inventory_exports, last_simulated_day,
};
pub use faults::{BadMessage, bad_messages};
pub use generate::{generate, split_by_population};
pub use publish::{BrokerTarget, PublishReport, publish};

use vft_domain::{DeviceTable, Municipality};

/// Embedded so the simulator (and `vft demo`) never reads files at run time.
const TABLE_CSV: &str = include_str!("../data/hallingdal-vft-2025.csv");
const MUNICIPALITIES_CSV: &str = include_str!("../../../config/municipalities.csv");

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Regional month-end counts to reproduce. Months without figures (future months) and
    /// everything after the first of them are not simulated.
    pub table: DeviceTable,
    /// The region; each month's regional total is split among these by population.
    pub municipalities: Vec<Municipality>,
    pub seed: u64,
    /// Topic prefix, `vft/v1` in Contract 1.
    pub topic_prefix: String,
    /// Heartbeat interval of every device in service; 0 turns heartbeats off.
    pub heartbeat_every_days: u32,
    /// Largest batch (JSON array) per MQTT message.
    pub max_events_per_message: usize,
    /// Keep the fleet as it stands at the table's end reporting until this instant
    /// (heartbeats, alarms, faults, doses; nothing installed or removed), so that a demo's
    /// latest month is the current one. The table's months get the same events either way.
    pub live_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Plan {
    /// Hallingdal 2025: the embedded table and municipalities, seed 2025, default settings.
    pub fn hallingdal_2025() -> Plan {
        Plan {
            table: embedded_table(),
            municipalities: embedded_municipalities(),
            seed: 2025,
            topic_prefix: "vft/v1".to_owned(),
            heartbeat_every_days: 7,
            max_events_per_message: 100,
            live_until: None,
        }
    }
}

/// The Hallingdal 2025 table (`data/hallingdal-vft-2025.csv`).
pub fn embedded_table() -> DeviceTable {
    // The embedded file is checked by the crate's tests, so failing here is a build defect.
    DeviceTable::from_csv(TABLE_CSV).expect("embedded table is valid")
}

/// The Hallingdal municipalities (`config/municipalities.csv`, the product's default region).
pub fn embedded_municipalities() -> Vec<Municipality> {
    vft_domain::municipality::parse_csv(MUNICIPALITIES_CSV)
        .expect("embedded municipalities are valid")
}

/// One MQTT message: a batch of events from one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Number of events in the payload.
    pub events: usize,
}

/// The generated traffic.
#[derive(Debug, Clone)]
pub struct Simulation {
    /// In publishing order (roughly, not strictly, by time).
    pub messages: Vec<Message>,
    /// Every event in the messages, in time order; for tests and checks.
    pub events: Vec<vft_domain::Event>,
    /// The simulated months (the table's months with figures).
    pub months: Vec<vft_domain::YearMonth>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulation plan: {0}")]
    Plan(String),
    #[error("generated an invalid identifier: {0}")]
    Id(#[from] vft_domain::IdError),
    #[error("serializing events: {0}")]
    Json(#[from] serde_json::Error),
    #[error("could not connect to the MQTT broker at {host}:{port}: {reason}")]
    Connect {
        host: String,
        port: u16,
        reason: String,
    },
    #[error(
        "lost the MQTT connection to {host}:{port} after {acked} of {total} messages were \
         acknowledged: {reason} (publishing everything again is safe: event ids make it idempotent)"
    )]
    ConnectionLost {
        host: String,
        port: u16,
        acked: usize,
        total: usize,
        reason: String,
    },
    #[error(
        "the MQTT broker at {host}:{port} acknowledged nothing for {waited_secs} s \
         ({acked} of {total} messages acknowledged); giving up"
    )]
    Stalled {
        host: String,
        port: u16,
        acked: usize,
        total: usize,
        waited_secs: u64,
    },
}
