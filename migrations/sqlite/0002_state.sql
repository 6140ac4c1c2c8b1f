-- Current state per device, upserted by ingest with order-independent merges (see
-- vft_domain::state). Each group of columns holds the latest (or earliest) event of one sort,
-- with that event's (ts, rank, event_id) so a late event only wins when it is newer.
CREATE TABLE devices (
    vendor               TEXT    NOT NULL,
    device               TEXT    NOT NULL,
    -- latest lifecycle event
    lc_ts                INTEGER,
    lc_rank              INTEGER,
    lc_event_id          TEXT,
    lc_installed         INTEGER,
    lc_municipality      TEXT,
    lc_gateway           TEXT,
    -- latest installed event
    inst_ts              INTEGER,
    inst_rank            INTEGER,
    inst_event_id        TEXT,
    kind                 TEXT,
    recipient            TEXT,
    replaces             TEXT,
    first_installed_ts   INTEGER,
    -- latest event sent by the device itself
    contact_ts           INTEGER,
    contact_rank         INTEGER,
    contact_event_id     TEXT,
    contact_municipality TEXT,
    contact_gateway      TEXT,
    -- latest battery reading
    battery_ts           INTEGER,
    battery_rank         INTEGER,
    battery_event_id     TEXT,
    battery              INTEGER,
    last_fault_ts        INTEGER,
    last_heartbeat_ts    INTEGER,
    -- per-device override of its technology type's offline timeout
    timeout_secs         INTEGER,
    municipality         TEXT GENERATED ALWAYS AS (COALESCE(lc_municipality, contact_municipality)) STORED,
    gateway              TEXT GENERATED ALWAYS AS (COALESCE(contact_gateway, lc_gateway)) STORED,
    PRIMARY KEY (vendor, device)
);
CREATE INDEX devices_municipality ON devices (municipality, vendor, device);
CREATE INDEX devices_replaces ON devices (vendor, replaces);

-- The last will / birth message of each gateway (`…/status`: offline / online).
CREATE TABLE gateway_status (
    vendor     TEXT    NOT NULL,
    gateway    TEXT    NOT NULL,
    online     INTEGER NOT NULL,
    changed_at INTEGER NOT NULL,
    PRIMARY KEY (vendor, gateway)
);

-- One row per alarm, merged from its response-centre events (earliest of each step).
CREATE TABLE alarms (
    vendor           TEXT    NOT NULL,
    alarm            TEXT    NOT NULL,
    origin_rank      INTEGER,
    origin_ts        INTEGER,
    origin_event_id  TEXT,
    device           TEXT    NOT NULL,
    municipality     TEXT    NOT NULL,
    kind             TEXT,
    cause            TEXT,
    triggered_ts     INTEGER,
    received_ts      INTEGER,
    acknowledged_ts  INTEGER,
    closed_ts        INTEGER,
    closed_event_id  TEXT,
    outcome          TEXT,
    PRIMARY KEY (vendor, alarm)
);
CREATE INDEX alarms_origin ON alarms (origin_ts);

CREATE INDEX events_type_ts ON events (type, ts);
