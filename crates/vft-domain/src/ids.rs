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
        // Inline up to 24 bytes: the national reads hold hundreds of thousands of ids at
        // once, and most ids are short (decision 0021).
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(compact_str::CompactString);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let valid: fn(&str) -> bool = $valid;
                if valid(s) {
                    Ok(Self(compact_str::CompactString::new(s)))
                } else {
                    Err(invalid($what, $rule, s))
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(IdVisitor(Self::parse))
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
                id.0.into_string()
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

/// Parses a string id straight from the deserializer's text: no owned `String` in between.
struct IdVisitor<T>(fn(&str) -> Result<T, IdError>);

impl<T> serde::de::Visitor<'_> for IdVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
        (self.0)(s).map_err(E::custom)
    }
}

fn char_len_between(s: &str, min: usize, max: usize) -> bool {
    let n = s.chars().count();
    (min..=max).contains(&n)
}

fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// A municipality number: four digits (e.g. `3328` for Ål). Kept as its four bytes: every
/// device in service carries one, and the national reads hold a fleet of them at once.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MunicipalityCode([u8; 4]);

impl MunicipalityCode {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match <[u8; 4]>::try_from(s.as_bytes()) {
            Ok(digits) if digits.iter().all(u8::is_ascii_digit) => Ok(Self(digits)),
            _ => Err(invalid("municipality", "a 4-digit municipality number", s)),
        }
    }
    pub fn as_str(&self) -> &str {
        // Four ASCII digits, checked by `parse`, the only way in.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}
impl fmt::Debug for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MunicipalityCode")
            .field(&self.as_str())
            .finish()
    }
}
impl fmt::Display for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl Serialize for MunicipalityCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
impl<'de> Deserialize<'de> for MunicipalityCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(IdVisitor(Self::parse))
    }
}
impl TryFrom<String> for MunicipalityCode {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<MunicipalityCode> for String {
    fn from(code: MunicipalityCode) -> String {
        code.as_str().to_owned()
    }
}
impl std::str::FromStr for MunicipalityCode {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s)
    }
}

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
        let code = MunicipalityCode::parse("3328").expect("code");
        assert_eq!(
            (code.as_str(), code.to_string()),
            ("3328", "3328".to_owned())
        );
        assert_eq!(format!("{code:?}"), "MunicipalityCode(\"3328\")");
        assert_eq!(serde_json::to_string(&code).expect("json"), "\"3328\"");
        assert!(
            code < MunicipalityCode::parse("3330").expect("code"),
            "in text order"
        );
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
    fn ids_go_through_json_as_plain_strings_short_long_and_escaped() {
        for raw in ["A1", "ø-ø \"q\" \\ /", &"x".repeat(64)] {
            let id = DeviceId::parse(raw).expect("device");
            let json = serde_json::to_string(&id).expect("serialize");
            assert_eq!(json, serde_json::to_string(raw).expect("as str"));
            let back: DeviceId = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, id);
            assert_eq!(String::from(back), raw);
        }
        let refused = serde_json::from_str::<MunicipalityCode>("\"33a8\"").expect_err("refused");
        assert!(refused.to_string().contains("4-digit"), "{refused}");
        assert!(
            serde_json::from_str::<MunicipalityCode>("3328").is_err(),
            "not a string"
        );
    }

    #[test]
    fn device_ids_count_characters_not_bytes() {
        assert!(DeviceId::parse(&"ø".repeat(64)).is_ok());
        assert!(DeviceId::parse(&"ø".repeat(65)).is_err());
        assert!(DeviceId::parse("a\nb").is_err());
    }
}
