//! The fleet as it stands and as it stood: the inventory (filtered, sorted, paged), one
//! device's history and contacts, device counts at instants, and the per-device settings an
//! operator changes (offline timeout, gateway status).

use crate::{DeviceQuery, DeviceRecord, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use vft_domain::{DeviceId, Event, LifecycleRecord, MunicipalityCode, RollupFilter, VendorId};

#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Devices in service just before each instant, per technology type in table order.
    async fn device_counts(
        &self,
        before: &[DateTime<Utc>],
        filter: &RollupFilter,
    ) -> Result<Vec<[u64; 6]>>;

    /// All lifecycle events (for checks against the domain rules and for exports).
    async fn lifecycle_records(&self) -> Result<Vec<LifecycleRecord>>;

    /// Devices matching a query, in its order, at most `limit`.
    async fn devices(&self, query: &DeviceQuery) -> Result<Vec<DeviceRecord>>;

    /// Every vendor with a device, in order (the dashboard's vendor filters).
    async fn vendors(&self) -> Result<Vec<VendorId>>;

    /// How many devices match a query's filters (every page together: `after`, the sort and
    /// `limit` do not count).
    async fn count_devices(&self, query: &DeviceQuery) -> Result<u64>;

    /// Devices of the same vendor whose `replaces` names this one.
    async fn replaced_by(&self, vendor: &VendorId, device: &DeviceId) -> Result<Vec<DeviceId>>;

    /// Stored events of these devices of one vendor, oldest first, at most `limit`; with
    /// `municipality`, only the events that name it.
    async fn device_events(
        &self,
        vendor: &VendorId,
        devices: &[DeviceId],
        municipality: Option<&MunicipalityCode>,
        limit: u32,
    ) -> Result<Vec<Event>>;

    /// Every contact (any event but a lifecycle event) with `from <= ts < to`: vendor, device,
    /// time, and whether it is a `fault`.
    async fn contacts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(VendorId, DeviceId, DateTime<Utc>, bool)>>;

    /// For each device, the reason its latest lifecycle event before `before` gave, when that
    /// event is a decommissioning (a device with none, or whose latest lifecycle event is an
    /// install, is absent; a decommissioning without a reason maps to `None`).
    async fn decommission_reasons(
        &self,
        devices: &[(VendorId, DeviceId)],
        before: DateTime<Utc>,
    ) -> Result<
        std::collections::HashMap<(VendorId, DeviceId), Option<vft_domain::DecommissionReason>>,
    >;

    /// Sets or clears a device's own offline timeout. False if the device is unknown.
    async fn set_device_timeout(
        &self,
        vendor: &VendorId,
        device: &DeviceId,
        secs: Option<u64>,
    ) -> Result<bool>;

    /// Records a gateway's status message (`online` / `offline`, e.g. its last will).
    async fn set_gateway_status(
        &self,
        vendor: &VendorId,
        gateway: &str,
        online: bool,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// The newest event time (lifecycle or contact) of any device, or of one municipality's:
    /// where the data ends, so a page can open on the year that has data.
    async fn latest_activity(
        &self,
        municipality: Option<&MunicipalityCode>,
    ) -> Result<Option<DateTime<Utc>>>;
}

macro_rules! impl_fleet {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The inventory query up to its filters (`SELECT … FROM (…) x WHERE …`), shared by
            /// the device list (`*`) and its count (`COUNT(*)`, when `counting`); `None` when it
            /// can match nothing.
            fn device_filter<'q>(q: &'q $crate::DeviceQuery, counting: bool) -> Option<sqlx::QueryBuilder<'q, $db>> {
                let outer = if counting { "COUNT(*)" } else { "*" };
                let now = $crate::shared::micros(q.now);
                // A municipality's own view (see `DeviceQuery::own`): its rows are that
                // municipality's (filtered below), so there `d.municipality` is it.
                let own = q.own.is_some();
                let column = |c: &str| if own { $crate::shared::own_view(c) } else { format!("d.{c}") };
                let (gateway, first_installed, recipient, replaces) =
                    (column("gateway"), column("first_installed_ts"), column("recipient"), column("replaces"));
                let contact = column("contact_ts");
                // In service now: the stored latest lifecycle event, unless it lies in the
                // future (planned); then the latest one up to now decides (rare: a lookup).
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {outer} FROM (SELECT d.vendor, d.device, d.kind, d.municipality, {gateway} AS gateway, \
                     CASE WHEN d.lc_ts IS NULL OR d.lc_ts <= ",
                ));
                qb.push_bind(now).push(
                    " THEN d.lc_installed ELSE (SELECT CASE WHEN e.lifecycle_rank = 0 THEN 1 ELSE 0 END FROM events e \
                     WHERE e.vendor = d.vendor AND e.device = d.device AND e.lifecycle_rank IS NOT NULL AND e.ts <= ",
                );
                qb.push_bind(now).push(format!(
                    " ORDER BY e.ts DESC, e.lifecycle_rank DESC, e.event_id DESC LIMIT 1) END AS lc_installed, d.lc_ts, \
                     {first_installed} AS first_installed_ts, {recipient} AS recipient, {replaces} AS replaces, \
                     {contact} AS contact_ts, {} AS battery, {} AS battery_ts, {} AS last_fault_ts, \
                     {} AS last_heartbeat_ts, d.timeout_secs, ",
                    column("battery"),
                    column("battery_ts"),
                    column("last_fault_ts"),
                    column("last_heartbeat_ts"),
                ));
                // A count that does not filter on connectivity leaves out the gateways' join:
                // SQLite would otherwise read every device row for it (90–150 ms at 500 000)
                // where the bare count reads an index (5 ms).
                if counting && q.connectivity.is_none() {
                    qb.push("NULL AS connectivity FROM devices d) x WHERE 1 = 1");
                    return Self::device_filters(qb, q);
                }
                qb.push(format!("CASE WHEN {contact} IS NULL THEN 'never_seen' WHEN d.contact_ts < "));
                qb.push_bind(now).push(" - COALESCE(d.timeout_secs, CASE d.kind");
                for kind in vft_domain::TechnologyKind::ALL {
                    qb.push(" WHEN ").push_bind(kind.id()).push(" THEN ");
                    qb.push_bind(i64::try_from(q.timeouts.per_kind[kind.index()]).unwrap_or(i64::MAX / 2_000_000));
                }
                qb.push(" ELSE ").push_bind(i64::try_from(q.timeouts.unknown_kind).unwrap_or(i64::MAX / 2_000_000));
                qb.push(
                    " END) * 1000000 THEN 'offline' WHEN g.online = 0 AND g.changed_at >= COALESCE(d.contact_received_at, d.contact_ts) THEN 'offline' \
                     ELSE 'online' END AS connectivity FROM devices d \
                     LEFT JOIN gateway_status g ON g.vendor = d.vendor AND g.gateway = d.gateway) x WHERE 1 = 1",
                );
                Self::device_filters(qb, q)
            }

            /// The inventory's filters, on the columns of [`Self::device_filter`]'s `x`.
            fn device_filters<'q>(mut qb: sqlx::QueryBuilder<'q, $db>, q: &'q $crate::DeviceQuery) -> Option<sqlx::QueryBuilder<'q, $db>> {
                if let Some(m) = &q.own {
                    qb.push(" AND x.municipality = ").push_bind(m.to_string());
                }
                if let Some(ms) = &q.municipalities {
                    if ms.is_empty() {
                        return None;
                    }
                    qb.push(" AND x.municipality IN (");
                    let mut sep = qb.separated(", ");
                    for m in ms {
                        sep.push_bind(m.to_string());
                    }
                    qb.push(")");
                }
                if let Some((v, d)) = &q.device {
                    qb.push(" AND x.vendor = ").push_bind(v.to_string()).push(" AND x.device = ").push_bind(d.to_string());
                }
                if let Some(k) = q.kind {
                    qb.push(" AND x.kind = ").push_bind(k.id());
                }
                if let Some(v) = &q.vendor {
                    qb.push(" AND x.vendor = ").push_bind(v.to_string());
                }
                if let Some(c) = q.connectivity {
                    qb.push(" AND x.connectivity = ").push_bind(c.id());
                }
                if let Some(b) = q.battery_below {
                    qb.push(" AND x.battery < ").push_bind(i64::from(b));
                }
                if let Some(t) = q.installed_before {
                    qb.push(" AND x.first_installed_ts < ").push_bind($crate::shared::micros(t));
                }
                if let Some(t) = q.installed_after {
                    qb.push(" AND x.first_installed_ts >= ").push_bind($crate::shared::micros(t));
                }
                if let Some(s) = q.in_service {
                    qb.push(if s { " AND x.lc_installed = 1" } else { " AND (x.lc_installed IS NULL OR x.lc_installed = 0)" });
                }
                if let Some(text) = &q.search {
                    // LOWER on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
                    qb.push(" AND LOWER(x.device) LIKE LOWER(").push_bind($crate::shared::like_pattern(text)).push(") ESCAPE '\\'");
                }
                Some(qb)
            }
        }
        #[async_trait::async_trait]
        impl $crate::FleetStore for $store {
            async fn device_counts(
                &self,
                before: &[chrono::DateTime<chrono::Utc>],
                filter: &vft_domain::RollupFilter,
            ) -> $crate::Result<Vec<[u64; 6]>> {
                let mut counts = vec![[0u64; 6]; before.len()];
                for row in self.breakdown_from_state(before).await? {
                    let admitted = filter.municipality.as_ref().is_none_or(|m| *m == row.municipality)
                        && filter.vendor.as_ref().is_none_or(|v| *v == row.vendor);
                    if let (true, Some(slot)) = (admitted, counts.get_mut(row.idx)) {
                        slot[row.kind.index()] += row.devices;
                    }
                }
                Ok(counts)
            }

            async fn lifecycle_records(&self) -> $crate::Result<Vec<vft_domain::LifecycleRecord>> {
                let rows: Vec<(String, String, String, i64, i64, Option<String>, String)> = sqlx::query_as(
                    "SELECT vendor, device, event_id, ts, lifecycle_rank, kind, municipality FROM events \
                     WHERE lifecycle_rank IS NOT NULL ORDER BY vendor, device, ts, lifecycle_rank, event_id",
                )
                .fetch_all(&self.reader)
                .await?;
                rows.into_iter()
                    .map(|(v, d, id, ts, rank, kind, m)| $crate::shared::lifecycle_record(v, d, id, ts, rank, kind, m))
                    .collect()
            }

            async fn vendors(&self) -> $crate::Result<Vec<vft_domain::VendorId>> {
                let rows: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT vendor FROM devices ORDER BY vendor")
                    .fetch_all(&self.reader)
                    .await?;
                rows.into_iter()
                    .map(|(v,)| vft_domain::VendorId::parse(&v).map_err($crate::shared::corrupt))
                    .collect()
            }

            async fn count_devices(&self, q: &$crate::DeviceQuery) -> $crate::Result<u64> {
                let Some(mut qb) = Self::device_filter(q, true) else {
                    return Ok(0);
                };
                let (n,): (i64,) = qb.build_query_as().fetch_one(&self.reader).await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn devices(&self, q: &$crate::DeviceQuery) -> $crate::Result<Vec<$crate::DeviceRecord>> {
                use sqlx::Row;
                let Some(mut qb) = Self::device_filter(q, false) else {
                    return Ok(Vec::new());
                };
                let sort_expr = $crate::shared::sort_expr(q.sort);
                let (cmp, dir) = if q.descending { ("<", "DESC") } else { (">", "ASC") };
                let lead = sort_expr.map(|e| format!("{e}, ")).unwrap_or_default();
                if let Some(c) = &q.after {
                    qb.push(format!(" AND ({lead}x.vendor, x.device) {cmp} ("));
                    if sort_expr.is_some() {
                        match &c.sort_value {
                            $crate::SortValue::Int(i) => qb.push_bind(*i),
                            $crate::SortValue::Text(t) => qb.push_bind(t.clone()),
                        };
                        qb.push(", ");
                    }
                    qb.push_bind(c.vendor.to_string()).push(", ").push_bind(c.device.to_string()).push(")");
                }
                let order_lead = sort_expr.map(|e| format!("{e} {dir}, ")).unwrap_or_default();
                qb.push(format!(" ORDER BY {order_lead}x.vendor {dir}, x.device {dir}"));
                if q.limit > 0 {
                    qb.push(" LIMIT ").push_bind(i64::from(q.limit));
                }
                let rows = qb.build().fetch_all(&self.reader).await?;
                rows.iter()
                    .map(|r| {
                        let ts = |i: usize| -> $crate::Result<Option<chrono::DateTime<chrono::Utc>>> {
                            r.try_get::<Option<i64>, _>(i)?.map($crate::shared::from_micros).transpose()
                        };
                        let raw = $crate::shared::RawDevice {
                            vendor: r.try_get(0)?,
                            device: r.try_get(1)?,
                            kind: r.try_get(2)?,
                            municipality: r.try_get(3)?,
                            gateway: r.try_get(4)?,
                            lc_installed: r.try_get(5)?,
                            lifecycle_at: ts(6)?,
                            first_installed: ts(7)?,
                            recipient: r.try_get(8)?,
                            replaces: r.try_get(9)?,
                            last_contact: ts(10)?,
                            battery: r.try_get(11)?,
                            battery_at: ts(12)?,
                            last_fault: ts(13)?,
                            last_heartbeat: ts(14)?,
                            timeout_secs: r.try_get(15)?,
                            connectivity: r.try_get(16)?,
                        };
                        raw.into_record(q.sort)
                    })
                    .collect()
            }

            async fn replaced_by(&self, vendor: &vft_domain::VendorId, device: &vft_domain::DeviceId) -> $crate::Result<Vec<vft_domain::DeviceId>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT device FROM devices WHERE vendor = ");
                // Sorted here, not in SQL: with `ORDER BY device` SQLite (no statistics) walks the
                // vendor's whole primary key in order instead of the `(vendor, replaces)` index,
                // 150 ms for one device's detail at 500 000 devices.
                qb.push_bind(vendor.to_string()).push(" AND replaces = ").push_bind(device.to_string());
                let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&self.reader).await?;
                let mut next = rows
                    .into_iter()
                    .map(|(d,)| vft_domain::DeviceId::parse(&d).map_err($crate::shared::corrupt))
                    .collect::<$crate::Result<Vec<_>>>()?;
                next.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                Ok(next)
            }

            async fn contacts(
                &self,
                from: chrono::DateTime<chrono::Utc>,
                to: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<Vec<(vft_domain::VendorId, vft_domain::DeviceId, chrono::DateTime<chrono::Utc>, bool)>> {
                // By type, so the (type, ts) index serves the range.
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT vendor, device, ts, type FROM events WHERE type IN (");
                let mut sep = qb.separated(", ");
                for t in vft_domain::EventType::ALL.iter().filter(|t| t.lifecycle_rank().is_none()) {
                    sep.push_bind(t.id());
                }
                qb.push(") AND ts >= ").push_bind($crate::shared::micros(from));
                qb.push(" AND ts < ").push_bind($crate::shared::micros(to));
                let rows: Vec<(String, String, i64, String)> = qb.build_query_as().fetch_all(&self.reader).await?;
                rows.into_iter()
                    .map(|(v, d, ts, t)| {
                        Ok((
                            vft_domain::VendorId::parse(&v).map_err($crate::shared::corrupt)?,
                            vft_domain::DeviceId::parse(&d).map_err($crate::shared::corrupt)?,
                            $crate::shared::from_micros(ts)?,
                            t == vft_domain::EventType::Fault.id(),
                        ))
                    })
                    .collect()
            }

            async fn decommission_reasons(
                &self,
                devices: &[(vft_domain::VendorId, vft_domain::DeviceId)],
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::Result<std::collections::HashMap<(vft_domain::VendorId, vft_domain::DeviceId), Option<vft_domain::DecommissionReason>>> {
                // Per device, only its lifecycle events at its latest lifecycle instant before
                // `before` (the index's last entry below it): the rest of its history cannot
                // be the latest. Ties at that instant are decided here, in the total order of
                // (lifecycle_rank, event_id) that decides being in service, by Rust's byte
                // order rather than the database's collation.
                let mut latest: std::collections::HashMap<(String, String), (i64, String, Option<String>)> =
                    std::collections::HashMap::new();
                let before = $crate::shared::micros(before);
                for chunk in $crate::shared::statement_chunks(&devices, $crate::shared::ROWS_PER_STATEMENT) {
                    let rows: Vec<(String, String, i64, String, Option<String>)> = self
                        .fetch_many(&["vendor", "device", "lifecycle_rank", "event_id", "reason"], |qb| {
                            qb.push("WITH d(vendor, device) AS (VALUES ");
                            let mut sep = qb.separated(", ");
                            for (v, d) in chunk {
                                sep.push("(");
                                sep.push_bind_unseparated(v.to_string());
                                sep.push_unseparated(", ");
                                sep.push_bind_unseparated(d.to_string());
                                sep.push_unseparated(")");
                            }
                            qb.push(
                                ") SELECT e.vendor, e.device, e.lifecycle_rank, e.event_id, e.reason \
                                 FROM d JOIN events e ON e.vendor = d.vendor AND e.device = d.device \
                                 AND e.lifecycle_rank IS NOT NULL AND e.ts = (SELECT MAX(x.ts) FROM events x \
                                 WHERE x.vendor = d.vendor AND x.device = d.device AND x.lifecycle_rank IS NOT NULL AND x.ts < ",
                            );
                            qb.push_bind(before);
                            qb.push(")");
                        })
                        .await?;
                    for (v, d, rank, event_id, reason) in rows {
                        match latest.entry((v, d)) {
                            std::collections::hash_map::Entry::Vacant(slot) => {
                                slot.insert((rank, event_id, reason));
                            }
                            std::collections::hash_map::Entry::Occupied(mut slot) => {
                                let old = slot.get();
                                if (rank, &event_id) > (old.0, &old.1) {
                                    slot.insert((rank, event_id, reason));
                                }
                            }
                        }
                    }
                }
                let decommissioned = vft_domain::EventType::Decommissioned.lifecycle_rank().map(i64::from);
                let mut reasons = std::collections::HashMap::new();
                for ((v, d), (rank, _, reason)) in latest {
                    if Some(rank) == decommissioned {
                        reasons.insert(
                            (
                                vft_domain::VendorId::parse(&v).map_err($crate::shared::corrupt)?,
                                vft_domain::DeviceId::parse(&d).map_err($crate::shared::corrupt)?,
                            ),
                            reason.as_deref().and_then(vft_domain::DecommissionReason::from_id),
                        );
                    }
                }
                Ok(reasons)
            }

            async fn device_events(
                &self,
                vendor: &vft_domain::VendorId,
                devices: &[vft_domain::DeviceId],
                municipality: Option<&vft_domain::MunicipalityCode>,
                limit: u32,
            ) -> $crate::Result<Vec<vft_domain::Event>> {
                use sqlx::Row;
                if devices.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT vendor, event_id, gateway, ts, ts_offset, municipality, device, type, kind, battery, alarm, cause, \
                     outcome, recipient, replaces, reason FROM events WHERE vendor = ",
                );
                qb.push_bind(vendor.to_string()).push(" AND device IN (");
                let mut sep = qb.separated(", ");
                for d in devices {
                    sep.push_bind(d.to_string());
                }
                qb.push(")");
                if let Some(m) = municipality {
                    qb.push(" AND municipality = ").push_bind(m.to_string());
                }
                qb.push(" ORDER BY ts, COALESCE(lifecycle_rank, -1), event_id LIMIT ").push_bind(i64::from(limit));
                let rows = qb.build().fetch_all(&self.reader).await?;
                rows.iter()
                    .map(|r| {
                        $crate::shared::event_from_row(
                            r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?,
                            r.try_get(6)?, r.try_get(7)?, r.try_get(8)?, r.try_get(9)?, r.try_get(10)?, r.try_get(11)?,
                            r.try_get(12)?, r.try_get(13)?, r.try_get(14)?, r.try_get(15)?,
                        )
                    })
                    .collect()
            }

            async fn set_device_timeout(&self, vendor: &vft_domain::VendorId, device: &vft_domain::DeviceId, secs: Option<u64>) -> $crate::Result<bool> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("UPDATE devices SET timeout_secs = ");
                qb.push_bind(secs.map(|s| i64::try_from(s).unwrap_or(i64::MAX)))
                    .push(" WHERE vendor = ")
                    .push_bind(vendor.to_string())
                    .push(" AND device = ")
                    .push_bind(device.to_string());
                Ok(qb.build().execute(&self.writer).await?.rows_affected() > 0)
            }

            async fn set_gateway_status(&self, vendor: &vft_domain::VendorId, gateway: &str, online: bool, at: chrono::DateTime<chrono::Utc>) -> $crate::Result<()> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO gateway_status (vendor, gateway, online, changed_at) ");
                qb.push_values([()], |mut row, ()| {
                    row.push_bind(vendor.to_string())
                        .push_bind(gateway)
                        .push_bind(i64::from(online))
                        .push_bind($crate::shared::micros(at));
                });
                qb.push(
                    " ON CONFLICT (vendor, gateway) DO UPDATE SET online = excluded.online, changed_at = excluded.changed_at \
                     WHERE excluded.changed_at >= gateway_status.changed_at",
                );
                qb.build().execute(&self.writer).await?;
                Ok(())
            }

            async fn latest_activity(
                &self,
                municipality: Option<&vft_domain::MunicipalityCode>,
            ) -> $crate::Result<Option<chrono::DateTime<chrono::Utc>>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT MAX(CASE WHEN contact_ts IS NULL OR lc_ts > contact_ts THEN lc_ts ELSE contact_ts END) FROM devices",
                );
                if let Some(m) = municipality {
                    qb.push(" WHERE municipality = ").push_bind(m.as_str());
                }
                let (latest,): (Option<i64>,) = qb.build_query_as().fetch_one(&self.reader).await?;
                latest.map($crate::shared::from_micros).transpose()
            }
        }
    };
}

pub(crate) use impl_fleet;
