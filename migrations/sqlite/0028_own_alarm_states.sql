-- A municipality user's response-centre figures count its own events only (decision 0014): an
-- alarm raised here and acknowledged through another municipality's gateway is unanswered here.
-- For an alarm whose events all come from one municipality, that municipality's own merge is
-- the alarm state itself, and its contribution is already in response_months. Only the rare
-- alarm with events from several municipalities needs more: each municipality's own merge of
-- it, kept here by ingest, so a municipality's figures are its sums corrected by those alarms
-- instead of a merge of its whole year of alarm events per request (decision 0026).

-- Set by the alarm upsert once the alarm's events come from more than one municipality.
ALTER TABLE alarms ADD COLUMN several_municipalities INTEGER NOT NULL DEFAULT 0;

-- Per municipality, the merge of its own events of such an alarm (the columns of alarms).
CREATE TABLE own_alarm_states (
    municipality     TEXT    NOT NULL,
    vendor           TEXT    NOT NULL,
    alarm            TEXT    NOT NULL,
    origin_rank      INTEGER,
    origin_ts        INTEGER,
    origin_event_id  TEXT,
    device           TEXT    NOT NULL,
    kind             TEXT,
    cause            TEXT,
    triggered_ts     INTEGER,
    received_ts      INTEGER,
    acknowledged_ts  INTEGER,
    closed_ts        INTEGER,
    closed_event_id  TEXT,
    outcome          TEXT,
    PRIMARY KEY (municipality, vendor, alarm)
);
CREATE INDEX own_alarm_states_origin ON own_alarm_states (municipality, origin_ts);

-- The moment an alarm gets a second municipality, the state it had until then is the first
-- municipality's own merge; the batch then merges each municipality's new events into its own
-- row. Only the upsert knows that state before it is overwritten, hence a trigger.
CREATE TRIGGER alarms_several_municipalities AFTER UPDATE OF several_municipalities ON alarms
WHEN OLD.several_municipalities = 0 AND NEW.several_municipalities = 1
BEGIN
    INSERT INTO own_alarm_states (municipality, vendor, alarm, origin_rank, origin_ts,
        origin_event_id, device, kind, cause, triggered_ts, received_ts, acknowledged_ts,
        closed_ts, closed_event_id, outcome)
    VALUES (OLD.municipality, OLD.vendor, OLD.alarm, OLD.origin_rank, OLD.origin_ts,
        OLD.origin_event_id, OLD.device, OLD.kind, OLD.cause, OLD.triggered_ts, OLD.received_ts,
        OLD.acknowledged_ts, OLD.closed_ts, OLD.closed_event_id, OLD.outcome)
    ON CONFLICT (municipality, vendor, alarm) DO NOTHING;
END;

-- Found in the stored events when the store next opens (and by `vft rebuild`).
INSERT INTO derived_state (name, built) VALUES ('own_alarm_states', 0);
