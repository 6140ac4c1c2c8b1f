//! `vft rebuild`: brings the state vft derives from the events back in line with them, after a
//! restore into a live database or a hand edit of the events table.

use crate::config::Config;

#[derive(Debug, clap::Args)]
pub(crate) struct RebuildArgs {
    /// Also forget contact history the events no longer show (after deleting events by
    /// hand). This forgets the days whose raw heartbeats retention purged as well, so a past
    /// date's reconciliation may change; without it, the history is only added to.
    #[arg(long)]
    discard_contact_history: bool,
}

pub(crate) async fn rebuild(config: &Config, args: RebuildArgs) -> anyhow::Result<()> {
    let store = crate::open_store(config).await?;
    let started = std::time::Instant::now();
    let bar = progress_bar("service state   ", "devices");
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let devices = store.rebuild_service_state(&progress).await?;
    bar.finish_and_clear();
    eprintln!(
        "Service state recomputed from the lifecycle events of {devices} devices ({:.1} s).",
        started.elapsed().as_secs_f64()
    );
    let dose_months = store.recount_dose_months().await?;
    eprintln!(
        "Doses recounted per month from the dose events ({dose_months} municipality months)."
    );
    let alarms = store.rebuild_response_months().await?;
    eprintln!(
        "Response-centre sums recomputed from the state of {alarms} alarms, and the alarms \
         with events from several municipalities found again in the alarm events."
    );
    let bar = progress_bar("contact history ", "months");
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let outcome = store
        .rebuild_contact_history(args.discard_contact_history, &progress)
        .await?;
    bar.finish_and_clear();
    eprintln!(
        "Contact history {}: {} device months from {} contact events ({:.1} s in all).",
        if args.discard_contact_history {
            "recomputed"
        } else {
            "merged with the events"
        },
        outcome.contact_months,
        outcome.contact_events,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A bar for one step, its length set by the step's first progress report.
fn progress_bar(step: &str, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{step}[{{bar:40}}] {{pos}}/{{len}} {unit} ({{eta}})"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}
