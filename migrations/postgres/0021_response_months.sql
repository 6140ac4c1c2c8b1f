-- Response-centre figures kept by ingest, in the batch that changes them, instead of computed
-- from the alarm state on a month's first request and kept per scope. Months are Oslo months
-- (year * 100 + month) of each alarm's origin; kind is the alarm's own, else its device's
-- current one ('' when neither has one).

-- What each alarm contributes (vft_domain::response::AlarmFact), so that a batch can take an
-- alarm's earlier contribution back when its steps or its device's kind change.
CREATE TABLE response_alarms (
    vendor        TEXT    NOT NULL,
    alarm         TEXT    NOT NULL,
    month         BIGINT  NOT NULL,
    municipality  TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    triggered     BIGINT  NOT NULL,
    received      BIGINT  NOT NULL,
    acknowledged  BIGINT  NOT NULL,
    closed        BIGINT  NOT NULL,
    response_ms   BIGINT,
    outcome       TEXT,
    PRIMARY KEY (vendor, alarm)
);

-- The sums of those contributions per month, municipality and kind.
CREATE TABLE response_months (
    month              BIGINT  NOT NULL,
    municipality       TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    triggered          BIGINT  NOT NULL,
    received           BIGINT  NOT NULL,
    acknowledged       BIGINT  NOT NULL,
    closed             BIGINT  NOT NULL,
    never_acknowledged BIGINT  NOT NULL,
    PRIMARY KEY (month, municipality, kind)
);

-- Alarms per response time to the millisecond: nearest-rank percentiles stay exact.
CREATE TABLE response_times (
    month        BIGINT  NOT NULL,
    municipality TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    response_ms  BIGINT  NOT NULL,
    alarms       BIGINT  NOT NULL,
    PRIMARY KEY (month, municipality, kind, response_ms)
);

CREATE TABLE response_outcomes (
    month        BIGINT  NOT NULL,
    municipality TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    alarms       BIGINT  NOT NULL,
    PRIMARY KEY (month, municipality, kind, outcome)
);

-- A device whose kind changes moves its alarms between kinds.
CREATE INDEX alarms_device ON alarms (vendor, device);

INSERT INTO derived_state (name, built) VALUES ('response_months', 0);

-- alarm_generation stays: its row lock serialises, in PostgreSQL, the batches that change
-- these sums.
DROP TABLE response_month_cache;
