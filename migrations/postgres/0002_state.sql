-- Current state per device, upserted by ingest with order-independent merges (see
-- vft_domain::state). Each group of columns holds the latest (or earliest) event of one sort,
-- with that event's (ts, rank, event_id) so a late event only wins when it is newer.
CREATE TABLE devices (
    vendor               TEXT    NOT NULL,
    device               TEXT    NOT NULL,
    -- latest lifecycle event
    lc_ts                BIGINT,
    lc_rank              BIGINT,
    lc_event_id          TEXT COLLATE "C",
    lc_installed         BIGINT,
    lc_municipality      TEXT,
    lc_gateway           TEXT,
    -- latest installed event
    inst_ts              BIGINT,
    inst_rank            BIGINT,
    inst_event_id        TEXT COLLATE "C",
    kind                 TEXT,
    recipient            TEXT,
    replaces             TEXT,
    first_installed_ts   BIGINT,
    -- latest event sent by the device itself
    contact_ts           BIGINT,
    contact_rank         BIGINT,
    contact_event_id     TEXT COLLATE "C",
    contact_municipality TEXT,
    contact_gateway      TEXT,
    -- latest battery reading
    battery_ts           BIGINT,
    battery_rank         BIGINT,
    battery_event_id     TEXT COLLATE "C",
    battery              BIGINT,
    last_fault_ts        BIGINT,
    last_heartbeat_ts    BIGINT,
    -- per-device override of its technology type's offline timeout
    timeout_secs         BIGINT,
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
    online     BIGINT NOT NULL,
    changed_at BIGINT NOT NULL,
    PRIMARY KEY (vendor, gateway)
);

-- One row per alarm, merged from its response-centre events (earliest of each step).
CREATE TABLE alarms (
    vendor           TEXT    NOT NULL,
    alarm            TEXT    NOT NULL,
    origin_rank      BIGINT,
    origin_ts        BIGINT,
    origin_event_id  TEXT COLLATE "C",
    device           TEXT    NOT NULL,
    municipality     TEXT    NOT NULL,
    kind             TEXT,
    cause            TEXT,
    triggered_ts     BIGINT,
    received_ts      BIGINT,
    acknowledged_ts  BIGINT,
    closed_ts        BIGINT,
    closed_event_id  TEXT COLLATE "C",
    outcome          TEXT,
    PRIMARY KEY (vendor, alarm)
);
CREATE INDEX alarms_origin ON alarms (origin_ts);

CREATE INDEX events_type_ts ON events (type, ts);
