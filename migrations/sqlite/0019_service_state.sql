-- Service state kept by ingest beside the events (vft_domain::interval), replacing the kept
-- month ends: each device's stretches in service, each recipient's union of them per
-- (municipality, vendor, kind), and their month deltas, from which any instant's counts are
-- read without touching the events. A batch with lifecycle events recomputes its devices'
-- intervals and what they touch, in its own transaction.
CREATE TABLE service_intervals (
    vendor       TEXT    NOT NULL,
    device       TEXT    NOT NULL,
    from_ts      INTEGER NOT NULL,
    to_ts        INTEGER,
    municipality TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    recipient    TEXT,
    PRIMARY KEY (vendor, device, from_ts)
);
CREATE INDEX service_intervals_from ON service_intervals (from_ts);
CREATE INDEX service_intervals_to ON service_intervals (to_ts) WHERE to_ts IS NOT NULL;
CREATE INDEX service_intervals_recipient ON service_intervals (recipient, municipality, vendor, kind)
    WHERE recipient IS NOT NULL;

CREATE TABLE recipient_spans (
    recipient    TEXT    NOT NULL,
    municipality TEXT    NOT NULL,
    vendor       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    from_ts      INTEGER NOT NULL,
    to_ts        INTEGER,
    PRIMARY KEY (recipient, municipality, vendor, kind, from_ts)
);
CREATE INDEX recipient_spans_from ON recipient_spans (from_ts);
CREATE INDEX recipient_spans_to ON recipient_spans (to_ts) WHERE to_ts IS NOT NULL;

-- Net change of devices and recipients in service during each Oslo month (year * 100 + month).
CREATE TABLE service_month_deltas (
    month        INTEGER NOT NULL,
    municipality TEXT    NOT NULL,
    vendor       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    devices      INTEGER NOT NULL,
    recipients   INTEGER NOT NULL,
    PRIMARY KEY (month, municipality, vendor, kind)
);

INSERT INTO derived_state (name, built) VALUES ('service_state', 0);

DROP TABLE month_end_cache;
DROP TABLE month_end_cuts;
