//! Gateway credentials for vft's embedded MQTT listener: creating one, for
//! `POST /api/v1/mqtt-credentials` and `vft mqtt-credential create` alike.

use crate::AppError;
use chrono::{DateTime, Utc};
use vft_domain::mqtt_access::{self, CredentialScope};
use vft_domain::{GatewayId, VendorId};
use vft_store::{MqttCredential, Store};

/// Longest label kept with a credential.
const MAX_LABEL_CHARS: usize = 200;

/// Creates a credential for `vendor` (or one of its gateways) and returns it with its
/// password, which is shown once: only its Argon2id hash is stored. The username defaults to
/// `vendor` or `vendor/gateway` (what Mosquitto's shipped ACL expects too).
pub async fn create(
    store: &dyn Store,
    vendor: &str,
    gateway: Option<&str>,
    username: Option<&str>,
    label: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(MqttCredential, String), AppError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| AppError::Invalid(format!("{what}: {e}"));
    let scope = CredentialScope {
        vendor: VendorId::parse(vendor).map_err(|e| bad("vendor", &e))?,
        gateway: gateway
            .map(GatewayId::parse)
            .transpose()
            .map_err(|e| bad("gateway", &e))?,
    };
    let username = username.map_or_else(|| scope.default_username(), str::to_owned);
    mqtt_access::validate_username(&username).map_err(|e| bad("username", &e))?;
    let label = label.map(str::trim).filter(|l| !l.is_empty());
    if label.is_some_and(|l| l.chars().count() > MAX_LABEL_CHARS || l.chars().any(char::is_control))
    {
        return Err(AppError::Invalid(format!(
            "label: at most {MAX_LABEL_CHARS} characters, no control characters"
        )));
    }
    let password = mqtt_access::password_from_random(rand::random());
    let salt: [u8; 16] = rand::random();
    let given = password.clone();
    // Argon2id takes 19 MiB and some tens of milliseconds: off the async workers.
    let password_hash =
        tokio::task::spawn_blocking(move || mqtt_access::hash_password(&given, salt))
            .await
            .map_err(|_| AppError::Interrupted("hashing the password"))?
            .map_err(|e| AppError::failed("hash the password", e.to_string()))?;
    let credential = MqttCredential {
        username,
        password_hash,
        scope,
        label: label.map(str::to_owned),
        created_at: now,
        revoked_at: None,
    };
    if !store.create_mqtt_credential(&credential).await? {
        return Err(AppError::Conflict(format!(
            "an MQTT credential named {:?} exists; revoke it first or choose another username",
            credential.username
        )));
    }
    Ok((credential, password))
}
