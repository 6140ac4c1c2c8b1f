-- Change attribution of past months (the month against the one before), kept once computed,
-- per scope. It reads the lifecycle events before the month's end, so the batch that stores
-- a lifecycle event drops every kept month ending after it, in the same transaction.
CREATE TABLE change_month_cache (
    scope       TEXT    NOT NULL,
    month_start BIGINT NOT NULL,
    month_end   BIGINT NOT NULL,
    figures     TEXT    NOT NULL,
    PRIMARY KEY (scope, month_start)
);
CREATE INDEX change_month_cache_end ON change_month_cache (month_end);
