-- Contact history kept by ingest beside the events (vft_domain::contact): per device and Oslo
-- month, a bit per day it was heard from and its latest contact. It outlives the raw status
-- events that retention purges, so a past date's reconciliation does not change.
CREATE TABLE contact_months (
    month   INTEGER NOT NULL, -- year * 100 + month
    vendor  TEXT    NOT NULL,
    device  TEXT    NOT NULL,
    days    INTEGER NOT NULL, -- bit d - 1: heard from on day d
    last_ts INTEGER NOT NULL,
    PRIMARY KEY (month, vendor, device)
);

-- Derived state built from the events once, when it is new: the store fills it from the events
-- already there on its first start after this migration, then sets `built`.
CREATE TABLE derived_state (
    name  TEXT    PRIMARY KEY,
    built INTEGER NOT NULL
);
INSERT INTO derived_state (name, built) VALUES ('contact_history', 0);
