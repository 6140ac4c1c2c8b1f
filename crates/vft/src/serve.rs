//! `vft serve` and `vft demo`: compose store, broker, ingest and API, and stop them cleanly.

use crate::config::Config;
use anyhow::Context;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::info;
use vft_domain::Role;
use vft_ingest::{BrokerAddress, IngestStatus};

pub fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout carries what scripts read (URL, token). Colour codes only on a
    // terminal: journald and log files would store them as raw escape sequences.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        crate::config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        crate::config::LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

pub struct DemoOptions {
    pub seed: u64,
    pub exit_when_loaded: bool,
}

/// Where gateways' messages come from: an external broker ingest subscribes to, or the
/// embedded listener, which acknowledges a publish only after its batch committed.
enum Ingress {
    External,
    Embedded {
        listener: vft_ingest::RunningListener,
        inbound: tokio::sync::mpsc::Receiver<vft_ingest::Inbound>,
    },
}

/// The ingress, the address the demo publishes to, and the TLS client configuration for an
/// `mqtts://` broker.
async fn ingress_for(
    config: &Config,
    store: &Arc<dyn vft_store::Store>,
    demo: bool,
) -> anyhow::Result<(
    Ingress,
    BrokerAddress,
    Option<Arc<vft_ingest::tls::ClientConfig>>,
)> {
    if let Some(url) = &config.mqtt.url {
        let broker = BrokerAddress::parse(url)?;
        let tls = if broker.tls {
            anyhow::ensure!(
                !demo,
                "vft demo publishes its simulated region over plain MQTT: give it an mqtt:// broker"
            );
            Some(
                vft_ingest::tls::client_config(config.mqtt.ca_file.as_deref())
                    .context("mqtt.url is mqtts:// (set mqtt.ca_file to the broker's CA)")?,
            )
        } else {
            None
        };
        return Ok((Ingress::External, broker, tls));
    }
    let mqtt = &config.mqtt;
    let tls = match (&mqtt.tls_cert, &mqtt.tls_key) {
        (Some(cert), Some(key)) => Some(vft_ingest::ListenerTls {
            cert_file: cert.clone(),
            key_file: key.clone(),
            addr: mqtt.embedded_tls_addr,
        }),
        (None, None) => {
            anyhow::ensure!(
                mqtt.embedded_tls_addr.is_none(),
                "mqtt.embedded_tls_addr needs mqtt.tls_cert and mqtt.tls_key"
            );
            None
        }
        _ => anyhow::bail!("mqtt.tls_cert and mqtt.tls_key go together"),
    };
    // Anonymous clients may publish for any vendor and gateway: only from this machine.
    let allow_anonymous = demo || mqtt.allow_anonymous;
    if allow_anonymous {
        let addrs = std::iter::once(mqtt.embedded_addr).chain(tls.as_ref().and_then(|t| t.addr));
        for addr in addrs {
            anyhow::ensure!(
                addr.ip().is_loopback(),
                "{} lets MQTT clients publish without credentials, so the embedded listener must \
                 listen on a loopback address, not {addr} (use --mqtt-addr 127.0.0.1:1883; gateways \
                 on other machines log in with credentials from `vft mqtt-credential create`)",
                if demo {
                    "vft demo"
                } else {
                    "mqtt.allow_anonymous = true"
                }
            );
        }
    }
    if demo {
        anyhow::ensure!(
            tls.as_ref().is_none_or(|t| t.addr.is_some()),
            "vft demo publishes over plain MQTT: give TLS its own mqtt.embedded_tls_addr"
        );
    }
    if !allow_anonymous
        && store
            .mqtt_credentials()
            .await?
            .iter()
            .all(|c| c.revoked_at.is_some())
    {
        tracing::warn!(
            "no MQTT credentials: no gateway can log in to the embedded listener yet (vft mqtt-credential create --vendor …)"
        );
    }
    // Bounded: a full channel holds the listener's connections back (they wait for acks).
    let (tx, inbound) = tokio::sync::mpsc::channel(config.ingest.batch_max_messages.max(64) * 4);
    let listener = vft_ingest::start_listener(
        vft_ingest::ListenerConfig {
            addr: mqtt.embedded_addr,
            tls,
            max_payload_bytes: mqtt.embedded_max_payload_bytes,
            max_inflight: u16::try_from(mqtt.embedded_max_inflight.clamp(1, 65_535))
                .unwrap_or(u16::MAX),
            max_inflight_bytes: mqtt.embedded_max_inflight_bytes.max(1),
            max_connections: mqtt.embedded_max_connections.max(1),
            access: vft_ingest::Access {
                allow_anonymous,
                credentials: Some(store.clone()),
                topic_prefix: mqtt.topic_prefix.clone(),
                adapters: config.adapters.clone(),
            },
        },
        tx,
    )
    .await
    .context("use --mqtt-addr for another address, or --mqtt-url for an external broker")?;
    let plain = listener.tls_addr.is_none_or(|t| t != listener.local_addr);
    info!(
        addr = %listener.local_addr,
        tls = ?listener.tls_addr,
        plain,
        anonymous = allow_anonymous,
        "embedded MQTT listener started (a publish is acknowledged after its commit)"
    );
    let addr = connectable(listener.local_addr);
    let broker = BrokerAddress {
        host: addr.ip().to_string(),
        port: addr.port(),
        username: None,
        password: None,
        tls: !plain,
    };
    Ok((Ingress::Embedded { listener, inbound }, broker, None))
}

/// A wildcard listen address is not one to connect to; use loopback instead.
fn connectable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

/// SIGINT and SIGTERM, listened for from the start: a signal that arrives while vft is still
/// starting (or loading the demo) waits here for the graceful stop, instead of killing the
/// process with the signal's default action (the quick start's test once sent SIGTERM
/// between the demo's last line and the moment this was first asked).
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            if self.term.is_none() && self.interrupt.is_none() {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
            tokio::select! {
                () = next(&mut self.term) => {},
                () = next(&mut self.interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn on_stop(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

pub async fn serve(mut config: Config, demo: Option<DemoOptions>) -> anyhow::Result<()> {
    let mut signals = StopSignals::listen();
    if demo.is_some() && config.retention.status_event_days > 0 {
        // The demo's year is in the past: retention would drop its heartbeats at once, and
        // with them what the reconciliation and device histories show of that year.
        info!("demo: raw status events are kept (retention off for the demo's past year)");
        config.retention.status_event_days = 0;
    }
    if demo.is_some() {
        // The simulated units report once a week; with the production timeouts (about a day)
        // every one of them would count as without contact six days in seven.
        let weekly = u64::from(vft_sim::Plan::hallingdal_2025().heartbeat_every_days.max(1))
            * 86_400
            + 86_400;
        let c = &mut config.connectivity;
        c.default_timeout_secs = c.default_timeout_secs.max(weekly);
        for kind in vft_domain::TechnologyKind::ALL {
            let t = c.timeouts.entry(kind).or_insert(weekly);
            *t = (*t).max(weekly);
        }
        info!(
            timeout_secs = weekly,
            "demo: offline timeouts fit the simulated weekly heartbeats"
        );
    }
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let store = crate::create_or_open_store(&config).await?;
    let registry = Arc::new(config.registry()?);
    let (ingress, broker, broker_tls) = ingress_for(&config, &store, demo.is_some()).await?;
    info!(database = %vft_store::redact_url(&config.database_url), backend = store.backend(), broker = ?broker, "starting");

    let status = Arc::new(IngestStatus::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let ingest_config = vft_ingest::IngestConfig {
        broker_tls,
        ..config.ingest_config(broker.clone())
    };
    let ingest = match ingress {
        Ingress::External => tokio::spawn(vft_ingest::run(
            ingest_config,
            store.clone(),
            registry.clone(),
            status.clone(),
            on_stop(stop_rx.clone()),
        )),
        Ingress::Embedded { listener, inbound } => tokio::spawn(vft_ingest::run_embedded(
            ingest_config,
            listener,
            inbound,
            store.clone(),
            registry.clone(),
            status.clone(),
            on_stop(stop_rx.clone()),
        )),
    };

    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for the HTTP API (use --http-addr)",
                config.http_addr
            )
        })?;
    let addr = listener.local_addr()?;
    let ready_status = status.clone();
    let max_pending = Duration::from_secs(config.ingest.max_pending_secs.max(1));
    // Built before the API, so settings that cannot work stop the start with a clear error.
    let notifier = vft_notify::Notifier::new(
        store.clone(),
        config.notify.clone(),
        registry.clone(),
        config.timeouts(),
    )
    .context("notification settings ([notify])")?;
    let state = vft_api::AppState {
        store: store.clone(),
        registry,
        readiness: Arc::new(move || {
            ready_status
                .readiness(max_pending)
                .map_err(vft_ingest::NotReady::code)
        }),
        metrics: Arc::new(move || prometheus.render()),
        timeouts: config.timeouts(),
        cooperations: Arc::new(config.cooperations.clone()),
        imports: Arc::new(config.imports.clone()),
        reconciliation: config.reconcile_settings(),
        sessions: config.session_settings(),
        sign_in_throttle: Default::default(),
        credential_throttle: Arc::new(vft_api::throttle::SignInThrottle::per_client()),
        plausible_times: config.plausible_times(),
        audit: vft_api::audit::AuditTrail::start(store.clone(), config.audit.record_reads),
        topic_prefix: config.mqtt.topic_prefix.clone(),
        oidc: config
            .oidc
            .clone()
            .map(|o| Arc::new(vft_api::oidc_sign_in::OidcSignIn::new(o))),
    };
    let https = match (&config.http_tls_cert, &config.http_tls_key) {
        (Some(cert), Some(key)) => {
            let mut tls = (*vft_ingest::tls::server_config(cert, key)?).clone();
            tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Some(Arc::new(tls))
        }
        _ => None,
    };
    let scheme = if https.is_some() { "https" } else { "http" };
    let api = match https {
        Some(tls) => tokio::spawn(vft_api::serve_tls(
            listener,
            state,
            tls,
            on_stop(stop_rx.clone()),
        )),
        None => tokio::spawn(vft_api::serve(listener, state, on_stop(stop_rx.clone()))),
    };
    let upkeep = tokio::spawn(maintenance(store.clone(), config.clone(), stop_rx.clone()));
    let notify = tokio::spawn(notifier.run(on_stop(stop_rx.clone())));
    println!("vft: API listening on {scheme}://{addr}");
    let _ = std::io::stdout().flush();

    let outcome = match demo {
        Some(demo) => {
            // A signal while the demo loads stops it there, gracefully like any other time.
            let loaded = tokio::select! {
                loaded = run_demo(&config, store.as_ref(), &status, &broker, addr, &demo) => Some(loaded),
                () = signals.recv() => None,
            };
            match loaded {
                Some(loaded) => {
                    if loaded.is_ok() && !demo.exit_when_loaded {
                        signals.recv().await;
                    }
                    loaded
                }
                None => {
                    info!("asked to stop while the demo was loading");
                    Ok(())
                }
            }
        }
        None => {
            signals.recv().await;
            Ok(())
        }
    };
    info!("stopping");
    let _ = stop_tx.send(true);
    api.await?.context("HTTP server failed")?;
    ingest.await?.context("ingest failed")?;
    upkeep.await?;
    notify.await?;
    outcome
}

/// Periodic upkeep: drops raw status events past retention. (Connectivity needs no job: it is
/// decided from each device's last contact whenever asked.)
async fn maintenance(
    store: Arc<dyn vft_store::Store>,
    config: Config,
    mut stop: watch::Receiver<bool>,
) {
    let interval = Duration::from_secs(config.connectivity.check_interval_secs);
    loop {
        if config.retention.status_event_days > 0 {
            let cutoff = chrono::Utc::now()
                - chrono::Duration::days(i64::from(config.retention.status_event_days));
            let types = [
                vft_domain::EventType::Heartbeat,
                vft_domain::EventType::BatteryLow,
            ];
            match store.purge_events(&types, cutoff).await {
                Ok(0) => {}
                Ok(n) => info!(purged = n, %cutoff, "dropped raw status events past retention"),
                Err(e) => tracing::warn!(error = %e, "retention failed; will retry"),
            }
        }
        if config.audit.retention_days > 0 {
            let cutoff =
                chrono::Utc::now() - chrono::Duration::days(i64::from(config.audit.retention_days));
            match store.purge_audit(cutoff).await {
                Ok(0) => {}
                Ok(n) => info!(purged = n, %cutoff, "dropped audit records past retention"),
                Err(e) => tracing::warn!(error = %e, "audit retention failed; will retry"),
            }
        }
        metrics::counter!("vft_maintenance_runs_total").increment(1);
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

async fn run_demo(
    config: &Config,
    store: &dyn vft_store::Store,
    status: &IngestStatus,
    broker: &BrokerAddress,
    addr: SocketAddr,
    demo: &DemoOptions,
) -> anyhow::Result<()> {
    let plan = vft_sim::Plan {
        seed: demo.seed,
        topic_prefix: config.mqtt.topic_prefix.clone(),
        // The fleet at the end of 2025 goes on reporting until today, so the demo's latest
        // month is the current one and its devices are online (2025's figures stay exact).
        live_until: Some(chrono::Utc::now() - chrono::Duration::minutes(1)),
        ..vft_sim::Plan::hallingdal_2025()
    };
    let year = plan.table.year;
    let simulation = vft_sim::generate(&plan)?;
    let started = Instant::now();
    let before = status.messages_received();
    let report = publish(broker, &simulation.messages, "demo").await?;
    // Every message the broker acknowledged is on its way to ingest; wait until it is stored.
    wait_stored(status, before, report.messages as u64).await?;
    let loaded_in = started.elapsed();
    demo_deviations(&plan, store, broker).await?;
    demo_imports(config, store, &plan, &simulation).await?;
    let (token, password) = demo_access(store).await?;
    let months = vft_domain::YearMonth::months_of_year(year)?;
    let counts = store
        .device_counts(
            &vft_domain::month_end_instants(&months),
            &Default::default(),
        )
        .await?;
    let table = vft_domain::DeviceTable::from_counts(
        year,
        months,
        &counts.into_iter().map(Some).collect::<Vec<_>>(),
    );
    print!("{}", text_table(&table));
    let base = format!("http://{addr}");
    println!(
        "vft: demo loaded {} events in {} messages through MQTT into {} in {:.1} s",
        report.events,
        report.messages,
        store.backend(),
        loaded_in.as_secs_f64()
    );
    println!("vft: table   {base}/api/v1/rollups/devices?year={year}");
    println!(
        "vft: try     curl -H 'Authorization: Bearer {token}' '{base}/api/v1/rollups/devices?year={year}&format=csv'"
    );
    println!("vft: dashboard {base}/  (sign in as {DEMO_USER}, password {password})");
    println!("vft: token   {token}");
    let _ = std::io::stdout().flush();
    Ok(())
}

/// The demo's coordinator account (its password is new at every start).
pub const DEMO_USER: &str = "koordinator";

/// The demo's coordinator: a personal account to sign in to the dashboard with, and a
/// machine token for scripts. Both are new at every start (a password reset if the account
/// exists from an earlier run).
async fn demo_access(store: &dyn vft_store::Store) -> anyhow::Result<(String, String)> {
    let password = format!("demo-{}", hex::encode(rand::random::<[u8; 8]>()));
    let hash = vft_domain::mqtt_access::hash_password(&password, rand::random())?;
    let change = vft_store::UserChange {
        password_hash: Some(Some(hash.clone())),
        role: Some(Role::Coordinator),
        disabled: Some(false),
        ..Default::default()
    };
    if store
        .update_user(DEMO_USER, &change, chrono::Utc::now())
        .await?
        .is_none()
    {
        store
            .create_user(
                &vft_store::NewUser {
                    username: DEMO_USER.into(),
                    display_name: Some("Demo-koordinator".into()),
                    role: Role::Coordinator,
                    password_hash: Some(hash),
                },
                chrono::Utc::now(),
            )
            .await?;
    }
    let token = vft_app::accounts::new_token_secret();
    store
        .create_token(
            &vft_domain::hash_token(&token),
            &Role::Coordinator,
            "demo",
            chrono::Utc::now(),
            Some(chrono::Utc::now() + chrono::Duration::days(30)),
        )
        .await?;
    Ok((token, password))
}

/// Waits until ingest has stored `messages` more messages than `before` (events or dead
/// letters), with a progress bar; gives up after 10 minutes.
async fn wait_stored(status: &IngestStatus, before: u64, messages: u64) -> anyhow::Result<()> {
    let bar = progress_bar(messages, "storing");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let stored = status.messages_received().saturating_sub(before);
        bar.set_position(stored.min(messages));
        if stored >= messages {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "ingest stored {stored} of {messages} messages within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish_and_clear();
    Ok(())
}

/// The demo's deviations: a handful of messages that break the contract (see
/// `vft_sim::bad_messages`), published after the region and waited for until the store holds
/// each as a dead letter. They carry no valid event, so no figure changes.
async fn demo_deviations(
    plan: &vft_sim::Plan,
    store: &dyn vft_store::Store,
    broker: &BrokerAddress,
) -> anyhow::Result<()> {
    let bad = vft_sim::bad_messages(plan)?;
    let messages: Vec<vft_sim::Message> = bad.iter().map(|b| b.message.clone()).collect();
    publish(broker, &messages, "demo-deviations").await?;
    let bar = progress_bar(bad.len() as u64, "storing");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Dead letters are kept once per topic, bytes and reason, so a demo run again on the
        // same database finds the ones it stored before.
        let letters = store.dead_letters(1000, None).await?;
        let stored = bad
            .iter()
            .filter(|b| {
                letters
                    .iter()
                    .any(|d| d.topic == b.message.topic && d.reason_code == b.reason_code)
            })
            .count();
        bar.set_position(stored as u64);
        if stored == bad.len() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "ingest stored {stored} of the demo's {} dead letters within a minute",
            bad.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bar.finish_and_clear();
    for b in &bad {
        info!(topic = %b.message.topic, reason = b.reason_code, story = b.story, "demo dead letter stored");
    }
    Ok(())
}

/// The vendor transition's paperwork: each simulated vendor's inventory export (in its
/// configured format, `[imports.<vendor>]`), taken on the last simulated day, imported through
/// the same code as `POST /api/v1/imports/{vendor}` and `vft import inventory`.
async fn demo_imports(
    config: &Config,
    store: &dyn vft_store::Store,
    plan: &vft_sim::Plan,
    simulation: &vft_sim::Simulation,
) -> anyhow::Result<()> {
    let Some(day) = vft_sim::last_simulated_day(simulation) else {
        return Ok(());
    };
    let exports = vft_sim::inventory_exports(simulation, plan, &config.imports, day)?;
    if exports.is_empty() {
        tracing::warn!(
            "no import format for the simulated vendors (hepro, atea): no inventory exports imported"
        );
    }
    let now = chrono::Utc::now();
    let as_of = vft_app::transition::as_of_instant(Some(&day.to_string()), now)?;
    for export in exports {
        let spinner = indicatif::ProgressBar::new_spinner().with_message(format!(
            "importing {}'s inventory export as of {day}",
            export.vendor
        ));
        spinner.enable_steady_tick(Duration::from_millis(120));
        let report = vft_app::transition::import_file(
            store,
            vft_app::transition::ImportRules {
                registry: &config.registry()?,
                formats: &config.imports,
                times: &config.plausible_times(),
            },
            export.vendor.as_str(),
            as_of,
            export.bytes.into(),
            now,
        )
        .await;
        spinner.finish_and_clear();
        let report = report
            .with_context(|| format!("importing the simulated {} export failed", export.vendor))?;
        info!(
            vendor = %report.vendor,
            as_of = %day,
            import = report.import_id,
            new = report.new,
            rows = report.rows,
            errors = report.errors.len(),
            duplicates = report.duplicates.len(),
            "demo inventory export imported"
        );
    }
    Ok(())
}

async fn publish(
    broker: &BrokerAddress,
    messages: &[vft_sim::Message],
    who: &str,
) -> anyhow::Result<vft_sim::PublishReport> {
    anyhow::ensure!(
        !broker.tls,
        "the simulator publishes over plain MQTT only (mqtt://host:port, or the embedded listener's plain address)"
    );
    let target = vft_sim::BrokerTarget {
        host: broker.host.clone(),
        port: broker.port,
        client_id: format!("vft-{who}-{}", std::process::id()),
        username: broker.username.clone(),
        password: broker.password.clone(),
    };
    let bar = progress_bar(messages.len() as u64, "publishing");
    let report = vft_sim::publish(&target, messages, |acked| bar.set_position(acked as u64))
        .await
        .context("publishing the simulated region failed")?;
    bar.finish_and_clear();
    Ok(report)
}

/// The table as aligned text for a terminal.
fn text_table(table: &vft_domain::DeviceTable) -> String {
    let mut out = format!("{:<20}", "");
    for m in &table.months {
        out += &format!("{:>8}", m.to_string());
    }
    out.push('\n');
    let cell = |c: &Option<u64>| c.map_or_else(|| format!("{:>8}", "-"), |n| format!("{n:>8}"));
    for row in &table.rows {
        out += &format!("{:<20}", row.label);
        row.counts.iter().for_each(|c| out += &cell(c));
        out.push('\n');
    }
    out += &format!("{:<20}", "Sum");
    table.total.iter().for_each(|c| out += &cell(c));
    out.push('\n');
    out
}

pub(crate) fn progress_bar(len: u64, what: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>10} [{bar:40}] {pos}/{len} messages ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(what);
    bar
}

/// `vft sim`: publish the simulated region to a running vft's broker.
pub async fn sim(config: &Config, seed: u64, heartbeat_days: u32) -> anyhow::Result<()> {
    let broker = match &config.mqtt.url {
        Some(url) => BrokerAddress::parse(url)?,
        None => {
            let addr = connectable(config.mqtt.embedded_addr);
            BrokerAddress {
                host: addr.ip().to_string(),
                port: addr.port(),
                username: None,
                password: None,
                tls: false,
            }
        }
    };
    let plan = vft_sim::Plan {
        seed,
        heartbeat_every_days: heartbeat_days.max(1),
        topic_prefix: config.mqtt.topic_prefix.clone(),
        ..vft_sim::Plan::hallingdal_2025()
    };
    let simulation = vft_sim::generate(&plan)?;
    let report = publish(&broker, &simulation.messages, "sim").await?;
    println!(
        "published {} events in {} messages in {:.1} s ({:.0} events/s)",
        report.events,
        report.messages,
        report.elapsed.as_secs_f64(),
        report.events as f64 / report.elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}
