-- Each service interval keeps the unit its install replaces (vft_domain::interval), so the
-- reconciliation's snapshots and spans read one table instead of looking up each interval's
-- install among the events. The intervals are then recomputed once from the stored lifecycle
-- events by the same code ingest runs (a pending fill, as 0019 asked for), not by a second
-- statement of which install an interval's is.
ALTER TABLE service_intervals ADD COLUMN replaces TEXT;
UPDATE derived_state SET built = 0 WHERE name = 'service_state';
