-- Doses taken and missed per Oslo month (year * 100 + month) and municipality, counted by
-- ingest in the batch that stores each dose event for the first time. Replaces the kept dose
-- periods: a month's medication figures no longer read its dose events.
CREATE TABLE dose_months (
    month        BIGINT  NOT NULL,
    municipality TEXT    NOT NULL,
    taken        BIGINT  NOT NULL,
    missed       BIGINT  NOT NULL,
    PRIMARY KEY (month, municipality)
);

INSERT INTO derived_state (name, built) VALUES ('dose_months', 0);

DROP TABLE dose_count_cache;
DROP TABLE dose_periods;
DROP TABLE dose_generation;
