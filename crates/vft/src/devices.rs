//! `vft devices …`: the inventory for scripts, straight from the database, with the same
//! filters and output shapes as `GET /api/v1/devices`.

use crate::OutputFormat;
use crate::config::Config;
use anyhow::Context;
use vft_app::inventory::{DeviceParams, DeviceView, devices_csv, parse_key};

#[derive(Debug, clap::Subcommand)]
pub enum DevicesCommand {
    /// List devices (all pages unless --limit).
    List(Box<ListArgs>),
    /// One device as JSON.
    Show { vendor: String, device: String },
    /// Set a device's own offline timeout in seconds, or `none` for its type's.
    SetTimeout {
        vendor: String,
        device: String,
        timeout: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[arg(long)]
    municipality: Option<String>,
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    vendor: Option<String>,
    /// online, offline or never_seen
    #[arg(long)]
    connectivity: Option<String>,
    #[arg(long)]
    battery_below: Option<String>,
    #[arg(long)]
    installed_before: Option<String>,
    #[arg(long)]
    installed_after: Option<String>,
    #[arg(long)]
    in_service: Option<String>,
    /// Substring of the device id.
    #[arg(long)]
    search: Option<String>,
    /// device, installed, municipality or kind
    #[arg(long)]
    sort: Option<String>,
    /// asc or desc
    #[arg(long)]
    order: Option<String>,
    #[arg(long)]
    limit: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

pub async fn run(config: &Config, cmd: DevicesCommand) -> anyhow::Result<()> {
    let store = crate::open_store(config).await?;
    let registry = config.registry()?;
    let timeouts = config.timeouts();
    let now = chrono::Utc::now();
    match cmd {
        DevicesCommand::List(a) => {
            let a = *a;
            let params = DeviceParams {
                municipality: a.municipality,
                kind: a.kind,
                vendor: a.vendor,
                connectivity: a.connectivity,
                battery_below: a.battery_below,
                installed_before: a.installed_before,
                installed_after: a.installed_after,
                in_service: a.in_service,
                q: a.search,
                sort: a.sort,
                order: a.order,
                limit: a.limit.clone(),
                ..Default::default()
            };
            let mut query = params.to_query(None, &registry, now, timeouts)?;
            if a.limit.is_none() {
                query.limit = 0;
            }
            let rows = store.devices(&query).await?;
            let views: Vec<DeviceView> =
                rows.iter().map(|r| DeviceView::new(r, &timeouts)).collect();
            match a.format {
                OutputFormat::Csv => print!("{}", devices_csv(&views)),
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&views)?),
                OutputFormat::Table => {
                    println!(
                        "{:<10} {:<24} {:<20} {:<5} {:<11} {:>7}  last contact",
                        "vendor", "device", "kind", "muni", "connection", "battery"
                    );
                    for v in &views {
                        println!(
                            "{:<10} {:<24} {:<20} {:<5} {:<11} {:>7}  {}",
                            v.vendor,
                            v.device,
                            v.kind.map_or("-", |k| k.id()),
                            v.municipality,
                            v.connectivity.id(),
                            v.battery.map_or_else(|| "-".into(), |b| format!("{b}%")),
                            v.last_contact
                                .map_or_else(|| "-".into(), |t| t.to_rfc3339()),
                        );
                    }
                    eprintln!("{} devices", views.len());
                }
            }
        }
        DevicesCommand::Show { vendor, device } => {
            let (vendor, device) = parse_key(&vendor, &device)?;
            let view =
                vft_app::inventory::device(store.as_ref(), timeouts, None, &vendor, &device, now)
                    .await?;
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
        DevicesCommand::SetTimeout {
            vendor,
            device,
            timeout,
        } => {
            let secs = match timeout.as_str() {
                "none" => None,
                s => Some(
                    s.parse::<u64>()
                        .context("timeout must be seconds or `none`")?,
                ),
            };
            let (vendor, device) = parse_key(&vendor, &device)?;
            vft_app::inventory::set_timeout(
                store.as_ref(),
                timeouts,
                None,
                &vendor,
                &device,
                secs,
                now,
            )
            .await?;
        }
    }
    Ok(())
}
