//! The `vft` binary's library half: command-line interface and the composition of config,
//! telemetry, broker, store, ingest and API. The end-to-end tests run the same entry point.

mod access;
mod allocator;
pub mod config;
mod devices;
mod import;
mod mqtt_credential;
mod rebuild;
mod report;
mod serve;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use config::{Config, Overrides};
use std::sync::Arc;

/// mimalloc instead of glibc's malloc, for every binary that runs `vft` (decision 0020): at
/// national size the reconciliation spent a third of its time in glibc's free lists, and
/// glibc's arenas kept freed memory as resident. The `system-allocator` feature leaves it out,
/// for heap profilers that see only malloc (heaptrack).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "vft", version, about = "Welfare-technology fleet tracker")]
pub struct Cli {
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run ingest and the HTTP API (embedded broker and SQLite unless configured otherwise).
    Serve,
    /// Serve, feed it the simulated Hallingdal region, print the API URL, a coordinator's
    /// sign-in and a token.
    Demo(DemoArgs),
    /// Publish the simulated region to a broker (--mqtt-url, or the embedded address).
    Sim(SimArgs),
    /// Machine tokens for integrations: labelled, scoped, expiring, revocable.
    #[command(subcommand)]
    Token(access::TokenCommand),
    /// Personal accounts (people sign in to the dashboard with these).
    #[command(subcommand)]
    User(access::UserCommand),
    /// The audit log: verify its hash chain, or print the newest records.
    #[command(subcommand)]
    Audit(access::AuditCommand),
    /// Manage gateway credentials for the embedded MQTT listener.
    #[command(subcommand)]
    MqttCredential(mqtt_credential::MqttCredentialCommand),
    /// Print the effective configuration (secrets masked).
    PrintConfig,
    /// The device inventory, read from the database (for scripts).
    #[command(subcommand)]
    Devices(Box<devices::DevicesCommand>),
    /// Import vendor data into the database (inventory exports).
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Reconcile an old and a new vendor at a date (the vendor transition).
    Reconcile(import::ReconcileArgs),
    /// A month's report, PDF or XLSX (the same as the API's /api/v1/reports/monthly.*).
    Report(report::ReportArgs),
    /// Ingest replicas and their heartbeats; `forget` one retired for good.
    Replicas {
        #[command(subcommand)]
        action: Option<ReplicasCommand>,
    },
    /// Bring what vft derives from the events back in line with them, after a restore into a
    /// live database or a hand edit: recomputes the service state, doses and response-centre
    /// sums, merges the contact history.
    Rebuild(rebuild::RebuildArgs),
    /// Copy a SQLite store to a new file, consistently, while vft runs (PostgreSQL: pg_dump).
    Backup {
        /// The copy to write; an existing file is never overwritten.
        file: std::path::PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Seed of the simulated region.
    #[arg(long, default_value_t = 2025)]
    seed: u64,
    /// Exit after the data is in and the figures are printed, instead of serving on.
    #[arg(long)]
    exit_when_loaded: bool,
}

#[derive(Debug, clap::Args)]
struct SimArgs {
    #[arg(long, default_value_t = 2025)]
    seed: u64,
    /// Days between heartbeats of each device.
    #[arg(long, default_value_t = 7)]
    heartbeat_days: u32,
}

#[derive(Debug, Subcommand)]
enum ReplicasCommand {
    /// Stop expecting a replica's heartbeat (after taking it out of service for good, and
    /// after its broker session is gone or drained: see the README on replicas).
    Forget { client_id: String },
}

/// How a listing command prints (`--format`): aligned text, CSV or JSON.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// Entry point of the binary (and of the e2e tests' copy of it).
pub fn main() -> anyhow::Result<()> {
    allocator::return_freed_memory_at_once();
    let cli = Cli::parse();
    let config = Config::load(&cli.overrides)?;
    serve::init_tracing(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli.command, config))
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve::serve(config, None).await,
        Command::Demo(args) => {
            serve::serve(
                config,
                Some(serve::DemoOptions {
                    seed: args.seed,
                    exit_when_loaded: args.exit_when_loaded,
                }),
            )
            .await
        }
        Command::Sim(args) => serve::sim(&config, args.seed, args.heartbeat_days).await,
        Command::Devices(cmd) => devices::run(&config, *cmd).await,
        Command::MqttCredential(cmd) => mqtt_credential::run(&config, cmd).await,
        Command::Import(cmd) => import::import(&config, cmd).await,
        Command::Reconcile(args) => import::reconcile(&config, args).await,
        Command::Report(args) => report::report(&config, args).await,
        Command::Rebuild(args) => rebuild::rebuild(&config, args).await,
        Command::Replicas { action: None } => {
            let store = open_store(&config).await?;
            let now = chrono::Utc::now();
            let silent_after =
                chrono::Duration::seconds(config.ingest.replica_silent_secs.max(1) as i64);
            println!(
                "{:<24}{:<20}{:<22}state",
                "client id", "shared group", "last heartbeat (UTC)"
            );
            for r in store.replicas().await? {
                let state = if now - r.seen_at > silent_after {
                    "silent"
                } else {
                    "beating"
                };
                println!(
                    "{:<24}{:<20}{:<22}{state}",
                    r.client_id,
                    r.shared_group.as_deref().unwrap_or("-"),
                    r.seen_at.format("%Y-%m-%d %H:%M:%S"),
                );
            }
            Ok(())
        }
        Command::Replicas {
            action: Some(ReplicasCommand::Forget { client_id }),
        } => {
            let store = open_store(&config).await?;
            anyhow::ensure!(
                store.forget_replica(&client_id).await?,
                "no replica {client_id:?} (see `vft replicas`)"
            );
            eprintln!("Forgot replica {client_id}: its peers no longer wait for its heartbeat.");
            Ok(())
        }
        Command::Backup { file } => {
            let store = open_store(&config).await?;
            let dest = std::path::absolute(&file)
                .with_context(|| format!("backup: cannot resolve the path {}", file.display()))?;
            let started = std::time::Instant::now();
            store.backup(&dest).await?;
            let bytes = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
            eprintln!(
                "Backed up {} to {} ({:.1} MB in {:.1} s).",
                vft_store::redact_url(&config.database_url),
                dest.display(),
                bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::PrintConfig => {
            print!("{}", config.redacted_toml()?);
            Ok(())
        }
        Command::Token(cmd) => access::token(&config, cmd).await,
        Command::User(cmd) => access::user(&config, cmd).await,
        Command::Audit(cmd) => access::audit(&config, cmd).await,
    }
}

/// Opens an existing store: every command but `serve` and `demo`, which create it. Run in the
/// wrong directory, the default `sqlite://data/vft.db` would otherwise be a new, empty store.
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn vft_store::Store>> {
    open_store_with(config, false).await
}

/// Opens the store, creating (and migrating) it when missing: `serve` and `demo`.
pub(crate) async fn create_or_open_store(
    config: &Config,
) -> anyhow::Result<Arc<dyn vft_store::Store>> {
    open_store_with(config, true).await
}

async fn open_store_with(
    config: &Config,
    create_if_missing: bool,
) -> anyhow::Result<Arc<dyn vft_store::Store>> {
    let options = vft_store::StoreOptions {
        create_if_missing,
        ..config.store_options()
    };
    match vft_store::open(&config.database_url, &options).await {
        Ok(store) => Ok(store),
        Err(e @ vft_store::StoreError::NoDatabase { .. }) => Err(anyhow::anyhow!(
            "{e} (run `vft serve` first, or set --database-url)"
        )),
        Err(e) => Err(e).with_context(|| {
            format!(
                "cannot open the database {}",
                vft_store::redact_url(&config.database_url)
            )
        }),
    }
}
