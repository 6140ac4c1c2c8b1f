//! Technology types: the rows of the monthly table, in the order the table shows them.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TechnologyKind {
    MedicationSupport,
    DigitalSupervision,
    Tracking,
    SafetyAlarm,
    SmokeDetector,
    DoorLockAlarm,
}

impl TechnologyKind {
    /// All types in table order.
    pub const ALL: [TechnologyKind; 6] = [
        Self::MedicationSupport,
        Self::DigitalSupervision,
        Self::Tracking,
        Self::SafetyAlarm,
        Self::SmokeDetector,
        Self::DoorLockAlarm,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Self::MedicationSupport => "medication_support",
            Self::DigitalSupervision => "digital_supervision",
            Self::Tracking => "tracking",
            Self::SafetyAlarm => "safety_alarm",
            Self::SmokeDetector => "smoke_detector",
            Self::DoorLockAlarm => "door_lock_alarm",
        }
    }

    /// Norwegian bokmål label, as the coordinator's table prints it.
    pub fn label_nb(self) -> &'static str {
        match self {
            Self::MedicationSupport => "Medisineringsstøtte",
            Self::DigitalSupervision => "Digitalt tilsyn",
            Self::Tracking => "Sporingsteknologi",
            Self::SafetyAlarm => "Trygghetsalarm",
            Self::SmokeDetector => "Røykvarsler",
            Self::DoorLockAlarm => "Dørlås/døralarm",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.id() == id)
    }

    /// Position in the table.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TechnologyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_order_matches_index() {
        for (i, k) in TechnologyKind::ALL.into_iter().enumerate() {
            assert_eq!(TechnologyKind::from_id(k.id()), Some(k));
            assert_eq!(k.index(), i);
            assert_eq!(
                serde_json::to_value(k).ok(),
                Some(serde_json::Value::from(k.id()))
            );
        }
        assert_eq!(TechnologyKind::from_id("toaster"), None);
    }
}
