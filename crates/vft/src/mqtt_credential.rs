//! `vft mqtt-credential create|list|revoke`: gateway credentials for the embedded MQTT
//! listener. Only an Argon2id hash of each password is stored; the password is printed once.

use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub enum MqttCredentialCommand {
    /// Create a credential and print its password as the last line of stdout (shown once;
    /// only its hash is stored). It may publish under vft/v1/VENDOR/… (with --gateway, only
    /// vft/v1/VENDOR/GATEWAY/…) and on the vendor's adapter topics.
    Create {
        /// The vendor id, e.g. hepro.
        #[arg(long)]
        vendor: String,
        /// Only this gateway of the vendor.
        #[arg(long)]
        gateway: Option<String>,
        /// Default: VENDOR or VENDOR/GATEWAY (the names Mosquitto's shipped ACL expects).
        #[arg(long)]
        username: Option<String>,
        /// A note on who holds it.
        #[arg(long)]
        label: Option<String>,
    },
    /// List credentials: username, scope, label, created, revoked.
    List,
    /// Revoke a credential: no new connection with it, and its open connections close at
    /// their next publish (within 30 s).
    Revoke { username: String },
}

pub async fn run(config: &Config, command: MqttCredentialCommand) -> anyhow::Result<()> {
    let store = crate::open_store(config).await?;
    match command {
        MqttCredentialCommand::Create {
            vendor,
            gateway,
            username,
            label,
        } => {
            let (credential, password) = vft_app::mqtt_credentials::create(
                store.as_ref(),
                &vendor,
                gateway.as_deref(),
                username.as_deref(),
                label.as_deref(),
                chrono::Utc::now(),
            )
            .await?;
            let topics = match &credential.scope.gateway {
                Some(g) => format!(
                    "{}/{}/{g}/…",
                    config.mqtt.topic_prefix, credential.scope.vendor
                ),
                None => format!("{}/{}/…", config.mqtt.topic_prefix, credential.scope.vendor),
            };
            eprintln!(
                "Created the MQTT credential {} (may publish on {topics} and {}'s adapter topics). \
                 The password is shown once; vft keeps only its hash.",
                credential.username, credential.scope.vendor
            );
            println!("username {}", credential.username);
            println!("{password}");
            Ok(())
        }
        MqttCredentialCommand::List => {
            println!(
                "{:<32}{:<32}{:<22}{:<22}label",
                "username", "scope", "created (UTC)", "revoked (UTC)"
            );
            for c in store.mqtt_credentials().await? {
                println!(
                    "{:<32}{:<32}{:<22}{:<22}{}",
                    c.username,
                    c.scope.to_string(),
                    c.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    c.revoked_at.map_or_else(
                        || "-".to_owned(),
                        |t| t.format("%Y-%m-%d %H:%M:%S").to_string()
                    ),
                    c.label.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
        MqttCredentialCommand::Revoke { username } => {
            anyhow::ensure!(
                store
                    .revoke_mqtt_credential(&username, chrono::Utc::now())
                    .await?,
                "no working MQTT credential named {username:?} (see `vft mqtt-credential list`)"
            );
            eprintln!(
                "Revoked the MQTT credential {username}: no new connection with it; open ones close at their next publish (within 30 s)."
            );
            Ok(())
        }
    }
}
