//! Layered configuration: built-in defaults → a TOML file (`--config`, `VFT_CONFIG`, or
//! `config/vft.toml` when present) → `VFT_*` environment variables (`__` separates sections,
//! e.g. `VFT_INGEST__BATCH_MAX_MESSAGES`) → command-line flags. Unknown keys are errors.

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use vft_domain::adapter::AdapterConfig;
use vft_domain::import::ImportFormat;
use vft_domain::membership::Cooperation;
use vft_domain::{Municipality, TechnologyKind};

/// The region vft knows out of the box (Hallingdal); replace it with `[[municipalities]]`.
const DEFAULT_MUNICIPALITIES: &str = include_str!("../../../config/municipalities.csv");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// HTTPS on `http_addr` with this certificate chain (PEM) and `http_tls_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_tls_key: Option<PathBuf>,
    /// `sqlite://path/to/file.db` or `postgres://user[:password]@host/db`.
    pub database_url: String,
    /// `tracing` filter, e.g. `info` or `vft_ingest=debug,info`. `RUST_LOG` wins when set.
    pub log: String,
    /// `text` (plain when stderr is not a terminal, as under journald) or `json` (one object
    /// per line, for log shippers).
    pub log_format: LogFormat,
    pub sqlite: SqliteConfig,
    pub mqtt: MqttConfig,
    pub ingest: IngestSettings,
    pub connectivity: ConnectivityConfig,
    pub retention: RetentionConfig,
    pub municipalities: Vec<Municipality>,
    /// Vendor adapters given inline (`[[adapters]]`, see config/adapters/*.example.toml).
    pub adapters: Vec<AdapterConfig>,
    /// Files with one adapter each, added to `adapters` (e.g. config/adapters/hepro.toml).
    pub adapter_files: Vec<PathBuf>,
    /// Cooperations and their members' periods (e.g. Nesbyen left Hallinghelse on 2025-07-01).
    /// A rollup asked for one counts only its members in each month.
    pub cooperations: Vec<Cooperation>,
    pub reconciliation: ReconciliationConfig,
    pub dashboard: DashboardConfig,
    /// Sign-in with the organisation's OpenID provider (Entra ID, ID-porten, Feide, HelseID):
    /// `[oidc]` with issuer, client_id, client_secret (or VFT_OIDC__CLIENT_SECRET), redirect_url
    /// and optionally username_claim and ca_file. Absent: local passwords only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<vft_api::oidc::OidcSettings>,
    pub audit: AuditConfig,
    /// Notifications by e-mail and webhook: the SMTP server, the sender, the webhook signing
    /// secret, how often rules run and when daily digests go out. Rules are made in the
    /// dashboard or through `/api/v1/notification-rules`.
    pub notify: vft_notify::NotifySettings,
    /// Who gets the monthly report by e-mail (`vft report --email`).
    pub report: ReportConfig,
    /// Inventory export formats per vendor (`[imports.<vendor>]`). The defaults are the
    /// EXAMPLE formats of config/imports/*.example.toml, not the vendors' real exports.
    pub imports: BTreeMap<String, ImportFormat>,
}

/// The vendor transition's reconciliation (classes: vft_domain::reconcile).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationConfig {
    /// A subject in service on both vendors longer than this is `double` (paid twice).
    pub grace_days: u32,
    /// A unit listed in service with no contact for this long is `listed_silent`.
    pub silent_after_days: u32,
}

/// Largest `ingest.max_future_secs`: ten years.
const MAX_FUTURE_SECS: u64 = 3650 * 86_400;

/// The web dashboard's sign-in (served at `/`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// How long a sign-in lasts (1-720 hours).
    pub session_hours: u32,
    /// Mark the session cookie `Secure` (the browser sends it over HTTPS only). On by default;
    /// a page opened over plain HTTP on a loopback address (`http://127.0.0.1:8080`, as with
    /// `vft demo`) still gets a cookie without it. Turn off only to use the dashboard over
    /// plain HTTP from another machine.
    pub secure_cookie: bool,
}

/// The example import formats shipped with vft (EXAMPLES: real formats come from the vendors).
const EXAMPLE_IMPORTS: [(&str, &str); 2] = [
    (
        "hepro",
        include_str!("../../../config/imports/hepro.example.toml"),
    ),
    (
        "atea",
        include_str!("../../../config/imports/atea.example.toml"),
    ),
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConnectivityConfig {
    /// How often offline devices are counted (metrics) and retention runs. Whether a device is
    /// offline is decided from its last contact whenever asked, so it needs no new message.
    pub check_interval_secs: u64,
    /// Timeout for a device whose technology type is unknown.
    pub default_timeout_secs: u64,
    /// Seconds without contact after which a device of a type is offline. Types not listed use
    /// `default_timeout_secs`. A device's own timeout (API/CLI) overrides both.
    pub timeouts: BTreeMap<TechnologyKind, u64>,
}

/// The monthly report's recipients (`vft report --email`, run monthly by a timer).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// Receive the whole region's report.
    pub region: Vec<String>,
    /// Per municipality code: receive that municipality's own report.
    pub municipalities: BTreeMap<String, Vec<String>>,
}

/// The audit log of who read and changed what.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Days audit records are kept (0 = forever). Retention removes the oldest records and
    /// keeps the hash chain verifiable from the last one it removed.
    pub retention_days: u32,
    /// Record reads of personal data. On: turning it off breaks the health-sector norm's
    /// logging requirement and exists only to measure what the log costs. Changes, sign-ins
    /// and refusals are recorded either way.
    pub record_reads: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days raw heartbeat and battery events are kept (0 = forever). Device state keeps what
    /// they said; lifecycle, alarm and medication events are always kept.
    pub status_event_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// `full`: a commit survives power loss (default). `normal`: survives a crash of vft,
    /// may lose the last commits on power loss; faster.
    pub synchronous: Synchronous,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Full,
    Normal,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// External broker (`mqtt://[user:password@]host:port`, or `mqtts://…:8883` over TLS).
    /// When unset, vft starts its own embedded listener on `embedded_addr`.
    pub url: Option<String>,
    /// PEM file of the CA that signed an `mqtts://` broker's certificate (default: the
    /// system's roots).
    pub ca_file: Option<PathBuf>,
    /// The embedded listener's address: plain MQTT, or TLS instead when `tls_cert` and
    /// `tls_key` are set and `embedded_tls_addr` is not.
    pub embedded_addr: SocketAddr,
    /// With `tls_cert` and `tls_key`: serve TLS here and plain MQTT on `embedded_addr` too.
    pub embedded_tls_addr: Option<SocketAddr>,
    /// PEM certificate chain (server certificate first) and its private key: the embedded
    /// listener serves MQTT over TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Let clients without a username publish anything to the embedded listener. Only on a
    /// loopback address (vft refuses to start otherwise); `vft demo` always allows it there.
    /// Gateways log in with credentials from `vft mqtt-credential create`.
    pub allow_anonymous: bool,
    /// Largest payload the embedded broker accepts; larger publishes are refused by it.
    pub embedded_max_payload_bytes: usize,
    /// QoS 1 publishes of one gateway connection that the embedded listener takes at once
    /// (each is acknowledged only after its batch committed; 1-65535).
    pub embedded_max_inflight: usize,
    /// Payload bytes one connection may have waiting for their commit; past it the listener
    /// reads nothing more from that connection until some are acknowledged.
    pub embedded_max_inflight_bytes: usize,
    /// Gateway connections the embedded listener accepts at once. Payload held for them all
    /// stays under embedded_max_connections × (embedded_max_inflight_bytes +
    /// embedded_max_payload_bytes); resident memory adds the batch being stored.
    pub embedded_max_connections: usize,
    /// Stable per ingest replica: the broker keeps its persistent session under this id.
    pub client_id: String,
    pub topic_prefix: String,
    /// Shared-subscription group for several ingest replicas (`$share/<group>/…`).
    pub shared_group: Option<String>,
    pub keep_alive_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    pub batch_max_messages: usize,
    pub batch_max_wait_ms: u64,
    pub max_payload_bytes: usize,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    /// Readiness turns 503 when a received message has waited this long without a commit.
    pub max_pending_secs: u64,
    /// A peer replica (same `mqtt.shared_group`) without a heartbeat for this long makes
    /// readiness 503: the broker holds its share of the stream until it comes back.
    pub replica_silent_secs: u64,
    /// Events dated before this day (00:00 UTC) are `implausible_time` dead letters, and so
    /// are inventory rows installed before it.
    pub earliest_event: chrono::NaiveDate,
    /// Events dated more than this many seconds after they arrive are `implausible_time`
    /// dead letters (1 to 3 650 days' worth).
    pub max_future_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            http_tls_cert: None,
            http_tls_key: None,
            database_url: "sqlite://data/vft.db".into(),
            log: "info".into(),
            log_format: LogFormat::Text,
            sqlite: SqliteConfig {
                synchronous: Synchronous::Full,
            },
            mqtt: MqttConfig {
                url: None,
                ca_file: None,
                embedded_addr: SocketAddr::from(([127, 0, 0, 1], 1883)),
                embedded_tls_addr: None,
                tls_cert: None,
                tls_key: None,
                allow_anonymous: false,
                embedded_max_payload_bytes: 1024 * 1024,
                embedded_max_inflight: 1000,
                embedded_max_inflight_bytes: 1024 * 1024,
                embedded_max_connections: 10_000,
                client_id: "vft-ingest".into(),
                topic_prefix: "vft/v1".into(),
                shared_group: None,
                keep_alive_secs: 30,
            },
            ingest: IngestSettings {
                batch_max_messages: 1000,
                batch_max_wait_ms: 0,
                max_payload_bytes: 256 * 1024,
                backoff_initial_ms: 200,
                backoff_max_ms: 30_000,
                max_pending_secs: 30,
                replica_silent_secs: 30,
                earliest_event: chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default(),
                max_future_secs: 86_400,
            },
            // The embedded CSV is part of the build; a parse failure is a build defect caught
            // by the tests, so fall back to an empty region rather than panic.
            connectivity: ConnectivityConfig {
                check_interval_secs: 60,
                // Gateways report at least daily; 25 h leaves room for one late report.
                default_timeout_secs: 25 * 3600,
                timeouts: TechnologyKind::ALL
                    .into_iter()
                    .map(|k| {
                        (
                            k,
                            if k == TechnologyKind::Tracking {
                                2 * 3600
                            } else {
                                25 * 3600
                            },
                        )
                    })
                    .collect(),
            },
            retention: RetentionConfig {
                status_event_days: 90,
            },
            municipalities: vft_domain::municipality::parse_csv(DEFAULT_MUNICIPALITIES)
                .unwrap_or_default(),
            adapters: Vec::new(),
            adapter_files: Vec::new(),
            cooperations: vft_domain::membership::cooperations_from_csv(DEFAULT_MUNICIPALITIES)
                .unwrap_or_default(),
            reconciliation: ReconciliationConfig {
                grace_days: 30,
                silent_after_days: 7,
            },
            dashboard: DashboardConfig {
                session_hours: 8,
                secure_cookie: true,
            },
            oidc: None,
            audit: AuditConfig {
                retention_days: 1825,
                record_reads: true,
            },
            notify: vft_notify::NotifySettings::default(),
            report: ReportConfig::default(),
            // Embedded at build time; a parse failure is a build defect caught by the tests.
            imports: EXAMPLE_IMPORTS
                .iter()
                .filter_map(|(v, text)| Some(((*v).to_owned(), toml::from_str(text).ok()?)))
                .collect(),
        }
    }
}

/// Flags shared by `serve`, `demo` and the commands that open the store.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Configuration file (TOML). Default: config/vft.toml if it exists.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// HTTP API listen address [default: 127.0.0.1:8080].
    #[arg(long, global = true)]
    pub http_addr: Option<SocketAddr>,
    /// Embedded broker listen address [default: 127.0.0.1:1883].
    #[arg(long, global = true)]
    pub mqtt_addr: Option<SocketAddr>,
    /// Use this external broker instead of the embedded one, e.g. mqtt://127.0.0.1:1883.
    #[arg(long, global = true)]
    pub mqtt_url: Option<String>,
    /// sqlite://… or postgres://… [default: sqlite://data/vft.db].
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// Log lines as `text` or `json` [default: text].
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

impl Config {
    pub fn load(flags: &Overrides) -> anyhow::Result<Self> {
        let explicit = flags
            .config
            .clone()
            .or_else(|| std::env::var_os("VFT_CONFIG").map(PathBuf::from));
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match &explicit {
            Some(path) => {
                anyhow::ensure!(
                    path.is_file(),
                    "configuration file {} does not exist",
                    path.display()
                );
                figment = figment.merge(Toml::file(path));
            }
            None => figment = figment.merge(Toml::file("config/vft.toml")),
        }
        figment = figment.merge(
            Env::prefixed("VFT_")
                .split("__")
                .ignore(&["config", "test_database_url"]),
        );
        if let Some(v) = flags.http_addr {
            figment = figment.merge(("http_addr", v));
        }
        if let Some(v) = flags.mqtt_addr {
            figment = figment.merge(("mqtt.embedded_addr", v));
        }
        if let Some(v) = &flags.mqtt_url {
            figment = figment.merge(("mqtt.url", v));
        }
        if let Some(v) = &flags.database_url {
            figment = figment.merge(("database_url", v));
        }
        if let Some(v) = flags.log_format {
            figment = figment.merge(("log_format", v));
        }
        let mut config: Config = figment.extract().context("invalid configuration")?;
        for path in &config.adapter_files {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read adapter file {}", path.display()))?;
            let adapter: AdapterConfig = toml::from_str(&text)
                .with_context(|| format!("invalid adapter file {}", path.display()))?;
            config.adapters.push(adapter);
        }
        config.adapter_files.clear();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.notify.check()?;
        anyhow::ensure!(
            self.http_tls_cert.is_some() == self.http_tls_key.is_some(),
            "http_tls_cert and http_tls_key go together"
        );
        anyhow::ensure!(
            (1..=720).contains(&self.dashboard.session_hours),
            "dashboard.session_hours must be 1-720"
        );
        anyhow::ensure!(
            !self.municipalities.is_empty(),
            "no municipalities configured"
        );
        anyhow::ensure!(
            self.ingest.batch_max_messages > 0,
            "ingest.batch_max_messages must be at least 1"
        );
        anyhow::ensure!(
            (1..=MAX_FUTURE_SECS).contains(&self.ingest.max_future_secs),
            "ingest.max_future_secs must be 1 to {MAX_FUTURE_SECS} (3650 days)"
        );
        anyhow::ensure!(
            self.ingest
                .earliest_event
                .and_time(chrono::NaiveTime::MIN)
                .and_utc()
                < chrono::Utc::now(),
            "ingest.earliest_event must be in the past, got {}",
            self.ingest.earliest_event
        );
        anyhow::ensure!(
            !self.mqtt.client_id.is_empty(),
            "mqtt.client_id must not be empty"
        );
        anyhow::ensure!(
            !self.mqtt.topic_prefix.is_empty() && !self.mqtt.topic_prefix.contains(['+', '#']),
            "mqtt.topic_prefix must be a plain topic prefix without wildcards"
        );
        anyhow::ensure!(
            self.connectivity.check_interval_secs > 0,
            "connectivity.check_interval_secs must be at least 1"
        );
        let max = vft_app::inventory::MAX_TIMEOUT_SECS;
        let timeouts = self.connectivity.timeouts.iter().map(|(k, s)| (k.id(), *s));
        for (what, secs) in timeouts.chain([(
            "default_timeout_secs",
            self.connectivity.default_timeout_secs,
        )]) {
            anyhow::ensure!(
                (1..=max).contains(&secs),
                "connectivity timeout {what} must be 1 to {max} seconds, got {secs}"
            );
        }
        for a in &self.adapters {
            a.validate()
                .map_err(|why| anyhow::anyhow!("adapter for vendor {}: {why}", a.vendor))?;
            anyhow::ensure!(
                !a.topic.starts_with(&format!("{}/", self.mqtt.topic_prefix)),
                "adapter for vendor {}: its topic {} lies under the canonical prefix {}",
                a.vendor,
                a.topic,
                self.mqtt.topic_prefix
            );
        }
        for (vendor, format) in &self.imports {
            vft_domain::VendorId::parse(vendor)
                .with_context(|| format!("[imports.{vendor}]: not a vendor id"))?;
            format
                .validate()
                .with_context(|| format!("[imports.{vendor}]"))?;
        }
        anyhow::ensure!(
            self.reconciliation.silent_after_days >= 1,
            "reconciliation.silent_after_days must be at least 1"
        );
        let registry = vft_domain::Registry::new(self.municipalities.clone())?;
        let mut ids = std::collections::BTreeSet::new();
        for c in &self.cooperations {
            anyhow::ensure!(
                ids.insert(&c.id),
                "cooperation {:?} is configured twice",
                c.id
            );
            for m in &c.members {
                anyhow::ensure!(
                    registry.contains(&m.municipality),
                    "cooperation {:?} lists unknown municipality {}",
                    c.id,
                    m.municipality
                );
            }
        }
        Ok(())
    }

    /// The configuration as TOML with secrets masked, for `print-config` and logs.
    pub fn redacted_toml(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        shown.database_url = vft_store::redact_url(&shown.database_url);
        shown.mqtt.url = shown.mqtt.url.as_deref().map(vft_store::redact_url);
        shown.oidc = shown
            .oidc
            .as_ref()
            .map(vft_api::oidc::OidcSettings::redacted);
        shown.notify = shown.notify.redacted();
        Ok(toml::to_string_pretty(&shown)?)
    }

    pub fn ingest_config(&self, broker: vft_ingest::BrokerAddress) -> vft_ingest::IngestConfig {
        vft_ingest::IngestConfig {
            broker,
            client_id: self.mqtt.client_id.clone(),
            topic_prefix: self.mqtt.topic_prefix.clone(),
            shared_group: self.mqtt.shared_group.clone(),
            keep_alive: Duration::from_secs(self.mqtt.keep_alive_secs.max(5)),
            batch_max_messages: self.ingest.batch_max_messages,
            batch_max_wait: Duration::from_millis(self.ingest.batch_max_wait_ms),
            max_payload_bytes: self.ingest.max_payload_bytes,
            backoff_initial: Duration::from_millis(self.ingest.backoff_initial_ms.max(1)),
            backoff_max: Duration::from_millis(self.ingest.backoff_max_ms.max(1)),
            adapters: self.adapters.clone(),
            replica_silent_after: Duration::from_secs(self.ingest.replica_silent_secs.max(1)),
            max_pending: Duration::from_secs(self.ingest.max_pending_secs.max(1)),
            plausible_times: self.plausible_times(),
            // Set by `serve` from `mqtt.ca_file` for an mqtts:// broker.
            broker_tls: None,
        }
    }

    /// The event times ingest and imports accept (`ingest.earliest_event`,
    /// `ingest.max_future_secs`).
    pub fn plausible_times(&self) -> vft_domain::PlausibleTimes {
        vft_domain::PlausibleTimes {
            earliest: self
                .ingest
                .earliest_event
                .and_time(chrono::NaiveTime::MIN)
                .and_utc(),
            max_future: chrono::Duration::seconds(
                i64::try_from(self.ingest.max_future_secs.min(MAX_FUTURE_SECS)).unwrap_or(0),
            ),
        }
    }

    pub fn timeouts(&self) -> vft_store::Timeouts {
        let c = &self.connectivity;
        vft_store::Timeouts {
            per_kind: TechnologyKind::ALL.map(|k| {
                c.timeouts
                    .get(&k)
                    .copied()
                    .unwrap_or(c.default_timeout_secs)
            }),
            unknown_kind: c.default_timeout_secs,
        }
    }

    pub fn reconcile_settings(&self) -> vft_app::transition::ReconcileSettings {
        let days = |d: u32| chrono::Duration::days(i64::from(d));
        vft_app::transition::ReconcileSettings {
            grace: days(self.reconciliation.grace_days),
            silent_after: days(self.reconciliation.silent_after_days),
        }
    }

    /// The configured municipalities as a registry (codes checked for repeats).
    pub fn registry(&self) -> anyhow::Result<vft_domain::Registry> {
        Ok(vft_domain::Registry::new(self.municipalities.clone())?)
    }

    pub fn session_settings(&self) -> vft_api::SessionSettings {
        vft_api::SessionSettings {
            lifetime: chrono::Duration::hours(i64::from(self.dashboard.session_hours)),
            secure_cookie: self.dashboard.secure_cookie,
        }
    }

    pub fn store_options(&self) -> vft_store::StoreOptions {
        vft_store::StoreOptions {
            sqlite_synchronous_full: self.sqlite.synchronous == Synchronous::Full,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_hold_the_embedded_region() {
        let c = Config::default();
        assert_eq!(c.municipalities.len(), 6);
        let ids: Vec<&str> = c.cooperations.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["hallinghelse", "ehealth"]);
        assert!(c.validate().is_ok());
        let imports: Vec<&str> = c.imports.keys().map(String::as_str).collect();
        assert_eq!(
            imports,
            ["atea", "hepro"],
            "the example import formats parse"
        );
    }

    #[test]
    fn the_example_file_parses_and_unknown_keys_are_rejected() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/vft.example.toml");
        let flags = Overrides {
            config: Some(example.into()),
            ..Default::default()
        };
        let loaded = Config::load(&flags).expect("example config loads");
        assert_eq!(
            loaded,
            Config {
                http_addr: loaded.http_addr,
                ..Config::default()
            },
            "the example shows the defaults"
        );
        assert_eq!(loaded.mqtt.topic_prefix, "vft/v1");

        let dir = tempfile_dir();
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "http_adr = \"127.0.0.1:1\"\n").expect("write");
        let err = Config::load(&Overrides {
            config: Some(bad),
            ..Default::default()
        })
        .expect_err("typo rejected");
        assert!(format!("{err:#}").contains("http_adr"), "{err:#}");
        let zero = dir.path().join("zero.toml");
        std::fs::write(&zero, "[connectivity]\ncheck_interval_secs = 0\n").expect("write");
        assert!(
            Config::load(&Overrides {
                config: Some(zero),
                ..Default::default()
            })
            .is_err()
        );
        let huge = dir.path().join("huge.toml");
        std::fs::write(
            &huge,
            "[connectivity.timeouts]\nsafety_alarm = 18446744073709551615\n",
        )
        .expect("write");
        assert!(
            Config::load(&Overrides {
                config: Some(huge),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn flags_override_the_file_and_secrets_are_redacted() {
        let dir = tempfile_dir();
        let file = dir.path().join("vft.toml");
        std::fs::write(&file, "database_url = \"postgres://vft:hunter2@db/vft\"\n[mqtt]\nurl = \"mqtt://u:pw@b:1883\"\n[notify]\nsmtp_url = \"smtps://vft:smtp-pw@smtp.example.no\"\nwebhook_secret = \"hook-secret\"\n")
            .expect("write");
        let flags = Overrides {
            config: Some(file.clone()),
            http_addr: Some("127.0.0.1:9999".parse().expect("addr")),
            ..Default::default()
        };
        let c = Config::load(&flags).expect("loads");
        assert_eq!(c.http_addr.port(), 9999);
        assert_eq!(c.database_url, "postgres://vft:hunter2@db/vft");
        let shown = c.redacted_toml().expect("toml");
        assert!(
            !shown.contains("hunter2")
                && !shown.contains(":pw@")
                && !shown.contains("smtp-pw")
                && !shown.contains("hook-secret"),
            "{shown}"
        );
        let flags = Overrides {
            database_url: Some("sqlite://x.db".into()),
            ..flags
        };
        assert_eq!(
            Config::load(&flags).expect("loads").database_url,
            "sqlite://x.db"
        );
    }

    /// Removed when dropped: a test run leaves nothing behind in the temp directory.
    fn tempfile_dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }
}
