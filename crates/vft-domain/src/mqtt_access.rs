//! Gateway credentials for MQTT: who may publish what, and how their passwords are kept.
//!
//! A credential is scoped to a vendor (it may publish under `{prefix}/{vendor}/…` and on the
//! vendor's adapter topics) or to one gateway of a vendor (only `{prefix}/{vendor}/{gateway}/…`,
//! and adapter topics whose gateway segment is that gateway). Passwords are random, shown once,
//! and kept as an Argon2id hash in PHC string form (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`),
//! which carries its own parameters, so they can be raised later without breaking old hashes.
//! The caller passes the salt and the random bytes (no I/O here).

use crate::adapter::AdapterConfig;
use crate::ids::{GatewayId, VendorId};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Longest username accepted (a vendor id, `/` and a gateway id take at most 97 bytes).
pub const MAX_USERNAME_BYTES: usize = 128;

/// What a credential may publish.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialScope {
    pub vendor: VendorId,
    /// `None`: every gateway of the vendor.
    pub gateway: Option<GatewayId>,
}

impl CredentialScope {
    /// The username a credential gets unless another is given: `vendor` or `vendor/gateway`.
    /// Mosquitto's shipped ACL (`pattern write vft/v1/%u/#`) grants exactly the same topics to
    /// a user of that name, so one naming scheme serves both brokers.
    pub fn default_username(&self) -> String {
        match &self.gateway {
            None => self.vendor.to_string(),
            Some(g) => format!("{}/{g}", self.vendor),
        }
    }
}

impl std::fmt::Display for CredentialScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.default_username())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "a username is 1-{MAX_USERNAME_BYTES} characters of A-Z a-z 0-9 . _ - / (no MQTT wildcards)"
    )]
    BadUsername,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Checks a username: printable, no MQTT wildcards (`+`, `#`: Mosquitto refuses pattern ACLs
/// for such names), no spaces or control characters.
pub fn validate_username(username: &str) -> Result<(), CredentialError> {
    let ok = !username.is_empty()
        && username.len() <= MAX_USERNAME_BYTES
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(CredentialError::BadUsername)
    }
}

/// A password from 24 random bytes: `vftm_` and 48 hex digits (192 bits).
pub fn password_from_random(bytes: [u8; 24]) -> String {
    format!("vftm_{}", hex::encode(bytes))
}

/// Argon2id with the RustCrypto defaults (19 MiB, 2 passes, 1 lane: OWASP's recommendation),
/// as a PHC string. `salt` is 16 random bytes from the caller.
pub fn hash_password(password: &str, salt: [u8; 16]) -> Result<String, CredentialError> {
    let salt = SaltString::encode_b64(&salt).map_err(|e| CredentialError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CredentialError::Hash(e.to_string()))
}

/// Whether `password` matches a PHC string from [`hash_password`] (with the parameters it
/// names). An unreadable hash matches nothing.
pub fn verify_password(phc: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Whether a credential of `scope` may publish on `topic`: under `prefix`, the vendor segment
/// must be the scope's vendor (and the gateway segment its gateway, for a gateway scope; any
/// leaf, so a misspelt `…/event` still reaches ingest and becomes a `bad_topic` dead letter);
/// outside it, the topic must be one of that vendor's adapters' topics (with the gateway, for a
/// gateway scope).
pub fn may_publish(
    scope: &CredentialScope,
    topic: &str,
    prefix: &str,
    adapters: &[AdapterConfig],
) -> bool {
    if let Some(rest) = topic.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
        let mut parts = rest.split('/');
        if parts.next() != Some(scope.vendor.as_str()) {
            return false;
        }
        return match &scope.gateway {
            None => true,
            Some(gateway) => parts.next() == Some(gateway.as_str()),
        };
    }
    adapters
        .iter()
        .filter(|a| a.vendor == scope.vendor)
        .any(|a| match a.matches(topic) {
            Some(gateway) => scope.gateway.as_ref().is_none_or(|own| *own == gateway),
            None => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(vendor: &str, gateway: Option<&str>) -> CredentialScope {
        CredentialScope {
            vendor: VendorId::parse(vendor).expect("vendor"),
            gateway: gateway.map(|g| GatewayId::parse(g).expect("gateway")),
        }
    }

    fn adapter(vendor: &str, topic: &str, segment: usize) -> AdapterConfig {
        let text = format!(
            "vendor = \"{vendor}\"\ntopic = \"{topic}\"\ngateway_segment = {segment}\n[fields]\nid = \"id\"\n[time]\nformat = \"rfc3339\"\n"
        );
        toml::from_str(&text).expect("adapter")
    }

    #[test]
    fn vendor_scope_publishes_under_its_vendor_only() {
        let hepro = scope("hepro", None);
        for ok in [
            "vft/v1/hepro/gw-1/events",
            "vft/v1/hepro/gw-2/status",
            "vft/v1/hepro/gw-2/event",
        ] {
            assert!(may_publish(&hepro, ok, "vft/v1", &[]), "{ok}");
        }
        for no in [
            "vft/v1/atea/gw-1/events",
            "vft/v1/heprox/gw-1/events",
            "vft/v1",
            "vft/v2/hepro/gw-1/events",
            "vft/v1hepro/gw-1/events",
            "hepro/gw-1/alarms",
            "$SYS/x",
        ] {
            assert!(!may_publish(&hepro, no, "vft/v1", &[]), "{no}");
        }
    }

    #[test]
    fn gateway_scope_publishes_under_its_gateway_only() {
        let gw1 = scope("hepro", Some("gw-1"));
        assert!(may_publish(&gw1, "vft/v1/hepro/gw-1/events", "vft/v1", &[]));
        assert!(may_publish(&gw1, "vft/v1/hepro/gw-1/status", "vft/v1", &[]));
        for no in [
            "vft/v1/hepro/gw-2/status",
            "vft/v1/hepro/gw-10/events",
            "vft/v1/hepro",
            "vft/v1/atea/gw-1/events",
        ] {
            assert!(!may_publish(&gw1, no, "vft/v1", &[]), "{no}");
        }
    }

    #[test]
    fn adapter_topics_belong_to_their_vendor() {
        let adapters = [
            adapter("hepro", "hepro/+/alarms", 1),
            adapter("atea", "atea/telecare/+/events", 2),
        ];
        assert!(may_publish(
            &scope("hepro", None),
            "hepro/gw-9/alarms",
            "vft/v1",
            &adapters
        ));
        assert!(may_publish(
            &scope("hepro", Some("gw-9")),
            "hepro/gw-9/alarms",
            "vft/v1",
            &adapters
        ));
        assert!(!may_publish(
            &scope("hepro", Some("gw-1")),
            "hepro/gw-9/alarms",
            "vft/v1",
            &adapters
        ));
        assert!(!may_publish(
            &scope("hepro", None),
            "atea/telecare/gw-9/events",
            "vft/v1",
            &adapters
        ));
        assert!(may_publish(
            &scope("atea", None),
            "atea/telecare/gw-9/events",
            "vft/v1",
            &adapters
        ));
    }

    #[test]
    fn usernames_and_default_names() {
        assert_eq!(scope("hepro", None).default_username(), "hepro");
        assert_eq!(
            scope("hepro", Some("gw-1")).default_username(),
            "hepro/gw-1"
        );
        for ok in ["hepro", "hepro/gw-1", "a.b_c-D"] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(MAX_USERNAME_BYTES + 1);
        for bad in ["", "a+b", "a#", "a b", "æ", long.as_str()] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_hash_and_verify() {
        let password = password_from_random([7; 24]);
        assert!(password.starts_with("vftm_") && password.len() == 53);
        let phc = hash_password(&password, [1; 16]).expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password(&phc, &password));
        assert!(!verify_password(&phc, "vftm_wrong"));
        assert!(!verify_password("not a hash", &password));
        let other = hash_password(&password, [2; 16]).expect("hash");
        assert_ne!(phc, other, "the salt makes each hash different");
    }
}
