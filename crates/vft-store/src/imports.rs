//! The vendor transition's inputs: inventory exports kept as dated snapshots (and their
//! unreadable rows), the listing at a date, the old vendor's installs, and which devices
//! report (from the contact history).

use crate::{ImportErrorRecord, ImportOutcome, ImportSummary, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use vft_domain::VendorId;
use vft_domain::attribution::InService;
use vft_domain::reconcile::{Listing, Reporting};

/// The raw columns of one install as [`ImportStore::installs_before`] reads them.
type InstallRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

/// One install as read: its time and event id (the order installs go in) and what it said.
pub(crate) type Install = (i64, vft_domain::EventId, InService);

impl crate::shared::FromRaw for Install {
    type Raw = InstallRow;
    fn from_raw((ts, event_id, v, d, k, m, r, rep): InstallRow) -> Result<Self> {
        Ok((
            ts,
            vft_domain::EventId::parse(&event_id).map_err(crate::shared::corrupt)?,
            crate::shared::in_service(v, d, k, m, r, rep)?,
        ))
    }
}

#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Keeps a vendor's inventory export as a snapshot as of `as_of`, once per file hash:
    /// the same vendor and hash again returns the first import with `new: false`.
    async fn import_inventory(
        &self,
        vendor: &VendorId,
        as_of: DateTime<Utc>,
        imported_at: DateTime<Utc>,
        file_sha256: &str,
        rows: &[Listing],
        errors: &[vft_domain::import::RowError],
    ) -> Result<ImportOutcome>;

    /// Rows of imports that could not be read: newest import first, then by line; at most
    /// `limit`. Only the first [`crate::MAX_KEPT_IMPORT_ERRORS`] of each import are kept.
    async fn import_errors(&self, limit: u32) -> Result<Vec<ImportErrorRecord>>;

    /// Import history, oldest snapshot first (one vendor or all).
    async fn imports(&self, vendor: Option<&VendorId>) -> Result<Vec<ImportSummary>>;

    /// The rows of the vendor's latest import with `as_of <= at` (empty when none).
    async fn listing_at(&self, vendor: &VendorId, at: DateTime<Utc>) -> Result<Vec<Listing>>;

    /// Every install of the vendor's devices before `before`, oldest first, with what it said.
    async fn ever_in_service(
        &self,
        vendor: &VendorId,
        before: DateTime<Utc>,
    ) -> Result<Vec<InService>>;

    /// [`ImportStore::ever_in_service`] with each install's time: the entries before any earlier
    /// instant `c` are the prefix with time `< c`, so several instants need one read.
    async fn installs_before(
        &self,
        vendor: &VendorId,
        before: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, InService)>>;

    /// Whether any device of `vendor` is in [`ImportStore::reporting_at`]`(at, since)`, without
    /// reading every device's contact history.
    async fn vendor_reporting(
        &self,
        vendor: &VendorId,
        at: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Result<bool>;

    /// Per device, its latest contact (any event but installed/decommissioned) in
    /// `(since, at]`, read from the contact history ingest keeps (`contact_months`), which
    /// retention never purges. Devices without contact in the window are left out.
    async fn reporting_at(&self, at: DateTime<Utc>, since: DateTime<Utc>)
    -> Result<Vec<Reporting>>;
}

macro_rules! impl_imports {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::ImportStore for $store {
            async fn import_inventory(
                &self,
                vendor: &vft_domain::VendorId,
                as_of: chrono::DateTime<chrono::Utc>,
                imported_at: chrono::DateTime<chrono::Utc>,
                file_sha256: &str,
                rows: &[vft_domain::reconcile::Listing],
                errors: &[vft_domain::import::RowError],
            ) -> $crate::Result<$crate::ImportOutcome> {
                use $crate::shared::micros;
                let mut tx = self.writer.begin().await?;
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO inventory_imports (vendor, as_of, imported_at, file_sha256, rows, errors) ",
                );
                qb.push_values([()], |mut row, ()| {
                    row.push_bind(vendor.to_string())
                        .push_bind(micros(as_of))
                        .push_bind(micros(imported_at))
                        .push_bind(file_sha256)
                        .push_bind(i64::try_from(rows.len()).unwrap_or(i64::MAX))
                        .push_bind(i64::try_from(errors.len()).unwrap_or(i64::MAX));
                });
                qb.push(" ON CONFLICT (vendor, file_sha256) DO NOTHING RETURNING id");
                let inserted: Option<(i64,)> = qb.build_query_as().fetch_optional(&mut *tx).await?;
                let Some((import_id,)) = inserted else {
                    // The same file again: report the first import, touch nothing.
                    let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT id FROM inventory_imports WHERE vendor = ");
                    qb.push_bind(vendor.to_string()).push(" AND file_sha256 = ").push_bind(file_sha256);
                    let (import_id,): (i64,) = qb.build_query_as().fetch_one(&mut *tx).await?;
                    return Ok($crate::ImportOutcome { import_id, new: false });
                };
                for chunk in $crate::shared::statement_chunks(&rows, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO inventory_rows (import_id, vendor, device, kind, municipality, recipient, in_service) ",
                    );
                    qb.push_values(chunk, |mut row, l| {
                        row.push_bind(import_id)
                            .push_bind(vendor.to_string())
                            .push_bind(l.device.to_string())
                            .push_bind(l.kind.map(|k| k.id()))
                            .push_bind(l.municipality.as_ref().map(|m| m.to_string()))
                            .push_bind(l.recipient.as_ref().map(|r| r.to_string()))
                            .push_bind(i64::from(l.in_service));
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                let kept = &errors[..errors.len().min($crate::MAX_KEPT_IMPORT_ERRORS)];
                for chunk in $crate::shared::statement_chunks(&kept, $crate::shared::ROWS_PER_STATEMENT) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO inventory_import_errors (import_id, line, col, why) ",
                    );
                    qb.push_values(chunk, |mut row, e| {
                        // The last line, as for dead letters: the parser masks already.
                        row.push_bind(import_id)
                            .push_bind(i64::try_from(e.line).unwrap_or(i64::MAX))
                            .push_bind(e.column.as_deref().map(|c| vft_domain::nin::mask_str(c).0))
                            .push_bind(vft_domain::nin::mask_str(&e.why).0);
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok($crate::ImportOutcome { import_id, new: true })
            }

            async fn import_errors(&self, limit: u32) -> $crate::Result<Vec<$crate::ImportErrorRecord>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT i.id, i.vendor, i.as_of, i.imported_at, e.line, e.col, e.why \
                     FROM inventory_import_errors e JOIN inventory_imports i ON i.id = e.import_id \
                     ORDER BY i.imported_at DESC, i.id DESC, e.line LIMIT ",
                );
                qb.push_bind(i64::from(limit));
                let rows: Vec<(i64, String, i64, i64, i64, Option<String>, String)> =
                    qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter()
                    .map(|(import_id, v, as_of, at, line, column, why)| {
                        Ok($crate::ImportErrorRecord {
                            import_id,
                            vendor: vft_domain::VendorId::parse(&v).map_err($crate::shared::corrupt)?,
                            as_of: $crate::shared::from_micros(as_of)?,
                            imported_at: $crate::shared::from_micros(at)?,
                            line: u64::try_from(line).unwrap_or(0),
                            column,
                            why,
                        })
                    })
                    .collect()
            }

            async fn imports(&self, vendor: Option<&vft_domain::VendorId>) -> $crate::Result<Vec<$crate::ImportSummary>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, vendor, as_of, imported_at, file_sha256, rows, errors FROM inventory_imports",
                );
                if let Some(v) = vendor {
                    qb.push(" WHERE vendor = ").push_bind(v.to_string());
                }
                qb.push(" ORDER BY as_of, id");
                let rows: Vec<(i64, String, i64, i64, String, i64, i64)> = qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter()
                    .map(|(id, v, as_of, at, sha, n, errors)| {
                        Ok($crate::ImportSummary {
                            id,
                            vendor: vft_domain::VendorId::parse(&v).map_err($crate::shared::corrupt)?,
                            as_of: $crate::shared::from_micros(as_of)?,
                            imported_at: $crate::shared::from_micros(at)?,
                            file_sha256: sha,
                            rows: u64::try_from(n).unwrap_or(0),
                            errors: u64::try_from(errors).unwrap_or(0),
                        })
                    })
                    .collect()
            }

            async fn listing_at(&self, vendor: &vft_domain::VendorId, at: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<vft_domain::reconcile::Listing>> {
                let vendor_text = vendor.to_string();
                let mut rows: Vec<(String, Option<String>, Option<String>, Option<String>, i64)> = self
                    .fetch_many(&["device", "kind", "municipality", "recipient", "in_service"], |qb| {
                        qb.push(
                            "SELECT r.device, r.kind, r.municipality, r.recipient, r.in_service FROM inventory_rows r \
                             WHERE r.import_id = (SELECT id FROM inventory_imports WHERE vendor = ",
                        );
                        qb.push_bind(vendor_text)
                            .push(" AND as_of <= ")
                            .push_bind($crate::shared::micros(at))
                            .push(" ORDER BY as_of DESC, id DESC LIMIT 1)");
                    })
                    .await?;
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                rows.into_iter()
                    .map(|(d, k, m, r, s)| $crate::shared::listing(vendor, d, k, m, r, s))
                    .collect()
            }

            async fn ever_in_service(&self, vendor: &vft_domain::VendorId, before: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<vft_domain::attribution::InService>> {
                Ok(self.installs_before(vendor, before).await?.into_iter().map(|(_, d)| d).collect())
            }

            async fn installs_before(&self, vendor: &vft_domain::VendorId, before: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<(chrono::DateTime<chrono::Utc>, vft_domain::attribution::InService)>> {
                let vendor_text = vendor.to_string();
                let mut rows: Vec<$crate::shared::Decoded<$crate::imports::Install>> = self
                    .fetch_many(&["ts", "event_id", "vendor", "device", "kind", "municipality", "recipient", "replaces"], |qb| {
                        qb.push(
                            "SELECT ts, event_id, vendor, device, kind, municipality, recipient, replaces FROM events \
                             WHERE lifecycle_rank = 0 AND vendor = ",
                        );
                        qb.push_bind(vendor_text)
                            .push(" AND ts < ")
                            .push_bind($crate::shared::micros(before));
                    })
                    .await?;
                // Oldest first, as the events order installs (ts, then event id).
                rows.sort_unstable_by(|$crate::shared::Decoded(a), $crate::shared::Decoded(b)| (a.0, &a.1).cmp(&(b.0, &b.1)));
                rows.into_iter()
                    .map(|$crate::shared::Decoded((ts, _, install))| Ok(($crate::shared::from_micros(ts)?, install)))
                    .collect()
            }

            /// A month row can only give a contact after `since` when its latest contact is
            /// after `since`: those rows are read a page at a time, and the first that gives one
            /// (usually the first row) answers.
            async fn vendor_reporting(&self, vendor: &vft_domain::VendorId, at: chrono::DateTime<chrono::Utc>, since: chrono::DateTime<chrono::Utc>) -> $crate::Result<bool> {
                const PAGE: i64 = 1000;
                let (first, last) = vft_domain::contact::window_months(since, at);
                let mut offset = 0;
                loop {
                    let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(
                        "SELECT month, device, days, last_ts FROM contact_months \
                         WHERE month >= $1 AND month <= $2 AND vendor = $3 AND last_ts > $4 \
                         ORDER BY month, device LIMIT $5 OFFSET $6",
                    )
                    .bind(first)
                    .bind(last)
                    .bind(vendor.as_str())
                    .bind($crate::shared::micros(since))
                    .bind(PAGE)
                    .bind(offset)
                    .fetch_all(&self.reader)
                    .await?;
                    for (month, device, days, last_ts) in &rows {
                        let row = vft_domain::contact::ContactMonth {
                            vendor: vendor.clone(),
                            device: vft_domain::DeviceId::parse(device).map_err($crate::shared::corrupt)?,
                            month: vft_domain::contact::month_from_key(*month)
                                .ok_or_else(|| $crate::StoreError::Corrupt(format!("contact month {month}")))?,
                            days: u32::try_from(*days)
                                .map_err(|_| $crate::StoreError::Corrupt(format!("contact days {days}")))?,
                            last: $crate::shared::from_micros(*last_ts)?,
                        };
                        if row.latest_at_or_before(at).is_some_and(|t| t > since) {
                            return Ok(true);
                        }
                    }
                    if (rows.len() as i64) < PAGE {
                        return Ok(false);
                    }
                    offset += PAGE;
                }
            }

            async fn reporting_at(&self, at: chrono::DateTime<chrono::Utc>, since: chrono::DateTime<chrono::Utc>) -> $crate::Result<Vec<vft_domain::reconcile::Reporting>> {
                // From the contact history, never the raw events: retention purges those, and a
                // past date's answer must not change when it does.
                self.reporting_from_history(at, since).await
            }
        }
    };
}

pub(crate) use impl_imports;
