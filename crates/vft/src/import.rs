//! `vft import inventory …` and `vft reconcile …`: the vendor transition from the command line,
//! straight against the database, with the same use cases as the API (`vft_app::transition`).

use crate::OutputFormat;
use crate::config::Config;
use anyhow::Context;
use std::io::Read;
use std::path::PathBuf;
use vft_app::transition::{
    ImportRules, ReconcileScope, import_file, reconciliation_csv, subject_text,
};

#[derive(Debug, clap::Subcommand)]
pub enum ImportCommand {
    /// Import a vendor's inventory export (CSV) as a dated snapshot.
    Inventory {
        /// Vendor id; its format is `[imports.<vendor>]` in the configuration.
        #[arg(long)]
        vendor: String,
        /// Date the export was taken (YYYY-MM-DD, Europe/Oslo) [default: today].
        #[arg(long)]
        as_of: Option<String>,
        file: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// The old vendor.
    #[arg(long)]
    from: String,
    /// The new vendor.
    #[arg(long)]
    to: String,
    /// Date (YYYY-MM-DD), reconciled at the end of that day (Europe/Oslo) [default: today].
    #[arg(long)]
    at: Option<String>,
    #[arg(long)]
    municipality: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

pub async fn import(config: &Config, cmd: ImportCommand) -> anyhow::Result<()> {
    let ImportCommand::Inventory {
        vendor,
        as_of,
        file,
    } = cmd;
    let now = chrono::Utc::now();
    let as_of = vft_app::transition::as_of_instant(as_of.as_deref(), now)?;
    let bytes = read_with_progress(&file)?;
    let store = crate::open_store(config).await?;
    let spinner = indicatif::ProgressBar::new_spinner().with_message("parsing and storing rows");
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let report = import_file(
        store.as_ref(),
        ImportRules {
            registry: &config.registry()?,
            formats: &config.imports,
            times: &config.plausible_times(),
        },
        &vendor,
        as_of,
        bytes.into(),
        now,
    )
    .await;
    spinner.finish_and_clear();
    // The use case's error says what was wrong with the input, or names the database's cause:
    // on the operator's own console nothing is hidden.
    let report = report?;
    for e in &report.errors {
        match &e.column {
            Some(c) => println!("line {}: {c}: {}", e.line, e.reason),
            None => println!("line {}: {}", e.line, e.reason),
        }
    }
    for line in &report.duplicates {
        println!("line {line}: duplicate of an earlier line (kept once)");
    }
    println!(
        "{} rows kept, {} errors, {} duplicate lines; {}",
        report.rows,
        report.errors.len(),
        report.duplicates.len(),
        if report.new {
            format!("new import {}", report.import_id)
        } else {
            format!(
                "already imported as import {}: nothing changed",
                report.import_id
            )
        }
    );
    Ok(())
}

/// Reads the file with a progress bar over its bytes (exports run to hundreds of megabytes).
fn read_with_progress(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(len).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("reading");
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(bytes)
}

pub async fn reconcile(config: &Config, a: ReconcileArgs) -> anyhow::Result<()> {
    let registry = vft_domain::Registry::new(config.municipalities.clone())?;
    let scope = vft_app::transition::municipality(&registry, a.municipality.as_deref())?;
    let store = crate::open_store(config).await?;
    let report = vft_app::transition::reconciliation(
        store.as_ref(),
        config.reconcile_settings(),
        Some(&a.from),
        Some(&a.to),
        a.at.as_deref(),
        ReconcileScope::Region(scope.as_ref()),
        chrono::Utc::now(),
    )
    .await?;
    match a.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Csv => print!("{}", reconciliation_csv(&report.rows)),
        OutputFormat::Table => {
            println!(
                "{} → {} at the end of {} (grace {} days, silent after {} days)",
                report.from, report.to, report.at, report.grace_days, report.silent_after_days
            );
            println!(
                "{:<5} {:<20} {:<19} {:>6}  subjects",
                "muni", "kind", "class", "count"
            );
            for r in &report.rows {
                let subjects: Vec<String> =
                    r.subjects.iter().map(|s| subject_text(&s.key)).collect();
                println!(
                    "{:<5} {:<20} {:<19} {:>6}  {}",
                    r.municipality,
                    r.kind.id(),
                    r.class.id(),
                    r.count,
                    subjects.join(" ")
                );
            }
            let totals: Vec<String> = report
                .totals
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            println!("total: {}", totals.join(", "));
        }
    }
    Ok(())
}
