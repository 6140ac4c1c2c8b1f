-- Notifications (vft-notify): rules a person wrote, the incidents they opened and resolved,
-- and an outbox of notices to deliver. Incidents and their notices are written in one
-- transaction, so a restart neither loses a notice nor opens an incident twice.
CREATE TABLE notification_rules (
    id           BIGSERIAL PRIMARY KEY,
    municipality TEXT,
    kind         TEXT    NOT NULL,
    threshold    BIGINT,
    emails       TEXT    NOT NULL,
    webhook      TEXT,
    digest       BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    created_by   TEXT    NOT NULL,
    deleted_at   BIGINT
);

CREATE TABLE incidents (
    id           BIGSERIAL PRIMARY KEY,
    rule_id      BIGINT  NOT NULL REFERENCES notification_rules (id),
    subject      TEXT    NOT NULL,
    municipality TEXT,
    summary      TEXT    NOT NULL,
    opened_at    BIGINT  NOT NULL,
    resolved_at  BIGINT
);
-- One open incident per rule and subject: the database refuses a second even if two
-- notifiers raced.
CREATE UNIQUE INDEX incidents_open ON incidents (rule_id, subject) WHERE resolved_at IS NULL;
CREATE INDEX incidents_opened ON incidents (opened_at);

CREATE TABLE notices (
    id           BIGSERIAL PRIMARY KEY,
    incident_id  BIGINT  NOT NULL REFERENCES incidents (id),
    event        TEXT    NOT NULL,
    channel      TEXT    NOT NULL,
    digest       BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL,
    attempts     BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error   TEXT
);
CREATE INDEX notices_pending ON notices (next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX notices_incident ON notices (incident_id);
