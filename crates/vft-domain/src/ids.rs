//! Identifiers and codes, parsed once at the edge so the rest of the code can trust them.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must be {rule}, got {got:?}")]
    Invalid {
        what: &'static str,
        rule: &'static str,
        got: String,
    },
}

fn invalid(what: &'static str, rule: &'static str, got: &str) -> IdError {
    // Bound what we echo back: the input may be huge or hostile, and may hold a national
    // identity number (masked before the cut, so the cut never keeps part of one).
    let got = crate::nin::masked_prefix(got, 80);
    IdError::Invalid { what, rule, got }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $rule:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let valid: fn(&str) -> bool = $valid;
                if valid(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(invalid($what, $rule, s))
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

fn char_len_between(s: &str, min: usize, max: usize) -> bool {
    let n = s.chars().count();
    (min..=max).contains(&n)
}

fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

string_id!(
    /// A municipality number: four digits (e.g. `3328` for Ål).
    MunicipalityCode,
    "municipality",
    "a 4-digit municipality number",
    |s| s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit())
);
string_id!(
    /// A vendor as it appears in the topic: `[a-z0-9-]{1,32}`.
    VendorId,
    "vendor",
    "1-32 characters of a-z, 0-9 and -",
    |s| (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
);
string_id!(
    /// A gateway as it appears in the topic: `[A-Za-z0-9._-]{1,64}`.
    GatewayId,
    "gateway",
    "1-64 characters of A-Z, a-z, 0-9, ., _ and -",
    |s| (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
);
string_id!(
    /// The vendor's device id (serial number, IMEI).
    DeviceId,
    "device",
    "1-64 printable characters",
    |s| char_len_between(s, 1, 64) && printable(s)
);
string_id!(
    /// An event id, unique per vendor.
    EventId,
    "id",
    "1-128 printable characters",
    |s| char_len_between(s, 1, 128) && printable(s)
);
string_id!(
    /// One alarm's reference, linking its response-centre events.
    AlarmRef,
    "alarm",
    "1-128 printable characters",
    |s| char_len_between(s, 1, 128) && printable(s)
);
string_id!(
    /// A pseudonymous service-recipient reference. Never a national identity number
    /// (the event parser refuses those before this type is built).
    RecipientRef,
    "recipient",
    "1-128 printable characters",
    |s| char_len_between(s, 1, 128) && printable(s)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn municipality_codes_are_four_digits() {
        assert!(MunicipalityCode::parse("3328").is_ok());
        for bad in ["", "328", "33280", "33a8", "３３２８"] {
            assert!(MunicipalityCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn vendor_and_gateway_follow_the_topic_grammar() {
        assert!(VendorId::parse("hepro").is_ok());
        assert!(VendorId::parse("Hepro").is_err());
        assert!(VendorId::parse(&"a".repeat(33)).is_err());
        assert!(GatewayId::parse("gw-01.Ål").is_err());
        assert!(GatewayId::parse("GW_01.a-b").is_ok());
        assert!(GatewayId::parse(&"g".repeat(65)).is_err());
    }

    #[test]
    fn device_ids_count_characters_not_bytes() {
        assert!(DeviceId::parse(&"ø".repeat(64)).is_ok());
        assert!(DeviceId::parse(&"ø".repeat(65)).is_err());
        assert!(DeviceId::parse("a\nb").is_err());
    }
}
