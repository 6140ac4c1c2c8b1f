//! `vft report`: a month's report (PDF or XLSX) straight from the database, made by the same
//! use case as the API's `/api/v1/reports/monthly.{pdf,xlsx}` (`vft_app::report`).

use crate::config::Config;
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use vft_app::report::{ReportFormat, ReportScope, ReportSources, Transition, render_report};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum FormatArg {
    Pdf,
    Xlsx,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The report's year (with --month; default: last month's).
    #[arg(long, requires = "month")]
    year: Option<i32>,
    /// The report's month (1-12); it must have begun.
    #[arg(long, requires = "year")]
    month: Option<u32>,
    /// E-mail the month's PDF and XLSX to the recipients in `[report]` (the region's and each
    /// municipality's own) through `notify.smtp_url`, instead of writing a file. Run monthly
    /// by deploy/systemd/vft-report.timer.
    #[arg(long, conflicts_with_all = ["municipality", "own", "format", "out"])]
    email: bool,
    /// One municipality (the coordinator's view of it: the region's figures placed there);
    /// without it, the whole region.
    #[arg(long)]
    municipality: Option<String>,
    /// A municipality's own report (its own data only, as its users see it in the API):
    /// needs --municipality.
    #[arg(long, requires = "municipality")]
    own: bool,
    #[arg(long, value_enum, required_unless_present = "email")]
    format: Option<FormatArg>,
    /// Where to write it; `-` for stdout. Default: the report's own name
    /// (`vft-rapport-region-2025-12.pdf`) in the current directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The vendor transition's old vendor.
    #[arg(long, default_value = "hepro")]
    from: String,
    /// The vendor transition's new vendor.
    #[arg(long, default_value = "atea")]
    to: String,
}

pub async fn report(config: &Config, a: ReportArgs) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let (year, month) = match (a.year, a.month) {
        (Some(y), Some(m)) => (y, m),
        _ => {
            let last = vft_app::report::last_ended_month(now);
            (last.year(), last.month())
        }
    };
    if a.email {
        return email(
            config,
            year,
            month,
            Transition {
                from: a.from,
                to: a.to,
            },
        )
        .await;
    }
    let registry = config.registry()?;
    let municipality = vft_app::transition::municipality(&registry, a.municipality.as_deref())?;
    let scope = match (municipality, a.own) {
        (Some(m), true) => ReportScope::Own(m),
        (Some(m), false) => ReportScope::Municipality(m),
        (None, _) => ReportScope::Region,
    };
    let store = crate::open_store(config).await?;
    let sources = ReportSources {
        store,
        registry: Arc::new(registry),
        timeouts: config.timeouts(),
        reconciliation: config.reconcile_settings(),
        transition: Transition {
            from: a.from,
            to: a.to,
        },
    };
    let format = match a.format {
        Some(FormatArg::Xlsx) => ReportFormat::Xlsx,
        _ => ReportFormat::Pdf,
    };
    // The use case's error carries its cause (a store error's, say) to the operator's console.
    let report = render_report(&sources, &scope, year, month, format, now).await?;
    let out = a.out.unwrap_or_else(|| PathBuf::from(&report.filename));
    if out.as_os_str() == "-" {
        std::io::stdout()
            .lock()
            .write_all(&report.bytes)
            .context("writing the report to stdout")?;
    } else {
        std::fs::write(&out, &report.bytes)
            .with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("Wrote {} ({} bytes).", out.display(), report.bytes.len());
    }
    Ok(())
}

/// Sends the month's reports: the region's to `report.region`, and each municipality's own
/// (its own data, as its users see it) to `report.municipalities[code]`. Stops at the first
/// failure with what was sent so far, so a timer's retry (or the operator) knows.
async fn email(
    config: &Config,
    year: i32,
    month: u32,
    transition: Transition,
) -> anyhow::Result<()> {
    let registry = Arc::new(config.registry()?);
    let mut jobs: Vec<(ReportScope, &Vec<String>)> = Vec::new();
    if !config.report.region.is_empty() {
        jobs.push((ReportScope::Region, &config.report.region));
    }
    for (code, to) in &config.report.municipalities {
        let m = vft_app::transition::municipality(&registry, Some(code))?
            .with_context(|| format!("report.municipalities: {code}"))?;
        if !to.is_empty() {
            jobs.push((ReportScope::Own(m), to));
        }
    }
    anyhow::ensure!(
        !jobs.is_empty(),
        "no recipients: set report.region and/or [report.municipalities] in the configuration"
    );
    let sources = ReportSources {
        store: crate::open_store(config).await?,
        registry: registry.clone(),
        timeouts: config.timeouts(),
        reconciliation: config.reconcile_settings(),
        transition,
    };
    let now = chrono::Utc::now();
    for (i, (scope, to)) in jobs.iter().enumerate() {
        let mut files = Vec::new();
        for format in [ReportFormat::Pdf, ReportFormat::Xlsx] {
            let r = render_report(&sources, scope, year, month, format, now).await?;
            files.push(vft_notify::Attachment {
                filename: r.filename,
                content_type: r.content_type.to_owned(),
                bytes: r.bytes,
            });
        }
        let area = match scope.municipality() {
            Some(m) => registry
                .get(m)
                .map_or_else(|| m.to_string(), |x| format!("{} ({m})", x.name)),
            None => "hele regionen".to_owned(),
        };
        let subject = format!("[vft] Månedsrapport {month:02}.{year} – {area}");
        let body = format!(
            "Vedlagt er månedsrapporten for {area}, {month:02}.{year}, som PDF og regneark.\n\
             Tallene er de samme som vft viser i dashbordet for samme utvalg og måned.\n"
        );
        vft_notify::send_with_attachments(&config.notify, to, &subject, &body, files)
            .await
            .with_context(|| {
                format!(
                    "sending the report for {area} (sent before it: {i} of {})",
                    jobs.len()
                )
            })?;
        eprintln!("Sent the report for {area} to {}.", to.join(", "));
    }
    Ok(())
}
