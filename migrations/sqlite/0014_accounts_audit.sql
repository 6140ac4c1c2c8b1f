-- Personal accounts (issue 10): people sign in with a local password (Argon2id, PHC string) or
-- OpenID Connect (bound to the provider's issuer and subject at the first sign-in). The role
-- and municipalities are read at every request, so a change takes effect at once.
CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    username        TEXT    NOT NULL UNIQUE,
    display_name    TEXT,
    role            TEXT    NOT NULL,
    municipalities  TEXT,
    password_hash   TEXT,
    oidc_issuer     TEXT,
    oidc_subject    TEXT,
    failed_sign_ins INTEGER NOT NULL DEFAULT 0,
    locked_until    INTEGER,
    created_at      INTEGER NOT NULL,
    last_sign_in_at INTEGER,
    disabled_at     INTEGER,
    UNIQUE (oidc_issuer, oidc_subject)
);

-- Dashboard sessions now belong to a person; shared tokens no longer open the dashboard (their
-- sessions end with this migration).
DROP TABLE sessions;
CREATE TABLE sessions (
    session_hash TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    method       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_user ON sessions (user_id);

-- Machine tokens expire (NULL: a token created before expiry existed, kept as it was).
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;

-- The audit log: append-only, each record's hash covering the previous one's (see
-- vft_domain::audit). audit_head holds the newest record's seq and hash (so removing the
-- newest records shows) and the anchor retention left (the last record it removed).
CREATE TABLE audit_log (
    seq          INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    route        TEXT    NOT NULL,
    municipality TEXT,
    subjects     TEXT    NOT NULL,
    client       TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    hash         TEXT    NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);

CREATE TABLE audit_head (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    seq         INTEGER NOT NULL,
    hash        TEXT    NOT NULL,
    anchor_seq  INTEGER NOT NULL,
    anchor_hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash, anchor_seq, anchor_hash) VALUES
    (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
        0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Records are never changed, and only retention removes them (up to its anchor, which it
-- moves first). The hash chain shows what a writer that drops these triggers did.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_retention_only BEFORE DELETE ON audit_log
WHEN OLD.seq > (SELECT anchor_seq FROM audit_head WHERE id = 1)
BEGIN
    SELECT RAISE(ABORT, 'only retention removes audit records');
END;
