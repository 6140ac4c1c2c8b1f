-- Doses taken and missed per municipality in past periods (months), kept once counted. A dose
-- event counts in the period holding its ts, so the batch that stores dose events drops every
-- kept period that ends after the earliest of them, in the same transaction.
CREATE TABLE dose_periods (
    period_start INTEGER NOT NULL,
    period_end   INTEGER NOT NULL,
    PRIMARY KEY (period_start, period_end)
);
CREATE INDEX dose_periods_end ON dose_periods (period_end);
CREATE TABLE dose_count_cache (
    period_start INTEGER NOT NULL,
    period_end   INTEGER NOT NULL,
    municipality TEXT    NOT NULL,
    taken        INTEGER NOT NULL,
    missed       INTEGER NOT NULL,
    FOREIGN KEY (period_start, period_end) REFERENCES dose_periods (period_start, period_end) ON DELETE CASCADE
);
CREATE INDEX dose_count_cache_period ON dose_count_cache (period_start, period_end);

-- Bumped by every batch with dose events (see lifecycle_generation).
CREATE TABLE dose_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO dose_generation (id, generation) VALUES (1, 0);
