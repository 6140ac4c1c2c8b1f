-- A dead letter can be marked handled (by whom, when) from the dashboard, or replayed once the
-- configuration that refused it is fixed (how many events its payload then gave).
ALTER TABLE dead_letters ADD COLUMN handled_at BIGINT;
ALTER TABLE dead_letters ADD COLUMN handled_by TEXT;
ALTER TABLE dead_letters ADD COLUMN replayed_events BIGINT;
