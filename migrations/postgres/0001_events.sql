-- Every accepted event, once per (vendor, event_id). Times are microseconds since the Unix
-- epoch, UTC; ts_offset keeps the device's own UTC offset in seconds.
CREATE TABLE events (
    vendor         TEXT    NOT NULL,
    event_id       TEXT    COLLATE "C" NOT NULL,
    gateway        TEXT    NOT NULL,
    ts             BIGINT  NOT NULL,
    ts_offset      BIGINT  NOT NULL,
    municipality   TEXT    NOT NULL,
    device         TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    -- 0 installed, 1 decommissioned, NULL for other types (see EventType::lifecycle_rank).
    lifecycle_rank BIGINT,
    kind           TEXT,
    battery        BIGINT,
    alarm          TEXT,
    cause          TEXT,
    outcome        TEXT,
    recipient      TEXT,
    replaces       TEXT,
    received_at    BIGINT  NOT NULL,
    PRIMARY KEY (vendor, event_id)
);

CREATE INDEX events_lifecycle ON events (vendor, device, ts, lifecycle_rank, event_id)
    WHERE lifecycle_rank IS NOT NULL;
CREATE INDEX events_device_ts ON events (vendor, device, ts);

-- Payloads that broke the contract: kept with topic, bytes and reason. A redelivered copy has
-- the same fingerprint and is kept once.
CREATE TABLE dead_letters (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint TEXT    NOT NULL UNIQUE,
    topic       TEXT    NOT NULL,
    payload     BYTEA   NOT NULL,
    reason_code TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    received_at BIGINT  NOT NULL
);

CREATE TABLE api_tokens (
    token_hash   TEXT    PRIMARY KEY,
    role         TEXT    NOT NULL,
    municipality TEXT,
    label        TEXT,
    created_at   BIGINT  NOT NULL
);
