-- A closed (published) month: the month-end figures as they were published, per municipality,
-- vendor and technology type, so any filtered view can show the published figure and, beside
-- it, a correction when later events change the live figure.
CREATE TABLE published_months (
    year_month   TEXT    NOT NULL,
    municipality TEXT    NOT NULL,
    vendor       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    devices      INTEGER NOT NULL,
    recipients   INTEGER NOT NULL,
    PRIMARY KEY (year_month, municipality, vendor, kind)
);

CREATE TABLE published_month_log (
    year_month   TEXT    PRIMARY KEY,
    published_at INTEGER NOT NULL,
    published_by TEXT
);
