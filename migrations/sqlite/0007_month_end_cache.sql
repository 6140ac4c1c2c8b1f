-- Month-end breakdowns of past instants, kept once computed: a month end in the past changes
-- only when a lifecycle event dated before it arrives, and the batch that stores such an event
-- deletes every kept month end after its earliest lifecycle ts, in the same transaction.
CREATE TABLE month_end_cuts (
    cut INTEGER PRIMARY KEY
);
CREATE TABLE month_end_cache (
    cut          INTEGER NOT NULL REFERENCES month_end_cuts (cut) ON DELETE CASCADE,
    municipality TEXT    NOT NULL,
    vendor       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    devices      INTEGER NOT NULL,
    recipients   INTEGER NOT NULL
);
CREATE INDEX month_end_cache_cut ON month_end_cache (cut);

-- Bumped by every batch with lifecycle events (its first statement). A breakdown computed
-- while it moved is not kept: it may have missed that batch.
CREATE TABLE lifecycle_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO lifecycle_generation (id, generation) VALUES (1, 0);
