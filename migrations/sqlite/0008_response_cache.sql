-- Response-centre figures of past months, kept once computed, per scope (region or one
-- municipality). An alarm belongs to the month of its origin, so the batch that stores an
-- alarm event drops every kept month after the earliest origin it touched, in the same
-- transaction.
CREATE TABLE response_month_cache (
    scope       TEXT    NOT NULL,
    month_start INTEGER NOT NULL,
    month_end   INTEGER NOT NULL,
    figures     TEXT    NOT NULL,
    PRIMARY KEY (scope, month_start)
);
CREATE INDEX response_month_cache_end ON response_month_cache (month_end);

-- Bumped by every batch with alarm events (see lifecycle_generation).
CREATE TABLE alarm_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO alarm_generation (id, generation) VALUES (1, 0);
