-- Personal accounts (issue 10): people sign in with a local password (Argon2id, PHC string) or
-- OpenID Connect (bound to the provider's issuer and subject at the first sign-in). The role
-- and municipalities are read at every request, so a change takes effect at once.
CREATE TABLE users (
    id              BIGSERIAL PRIMARY KEY,
    username        TEXT    NOT NULL UNIQUE,
    display_name    TEXT,
    role            TEXT    NOT NULL,
    municipalities  TEXT,
    password_hash   TEXT,
    oidc_issuer     TEXT,
    oidc_subject    TEXT,
    failed_sign_ins BIGINT NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    created_at      BIGINT NOT NULL,
    last_sign_in_at BIGINT,
    disabled_at     BIGINT,
    UNIQUE (oidc_issuer, oidc_subject)
);

-- Dashboard sessions now belong to a person; shared tokens no longer open the dashboard (their
-- sessions end with this migration).
DROP TABLE sessions;
CREATE TABLE sessions (
    session_hash TEXT    PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    method       TEXT    NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_user ON sessions (user_id);

-- Machine tokens expire (NULL: a token created before expiry existed, kept as it was).
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;

-- The audit log: append-only, each record's hash covering the previous one's (see
-- vft_domain::audit). audit_head holds the newest record's seq and hash (so removing the
-- newest records shows) and the anchor retention left (the last record it removed).
CREATE TABLE audit_log (
    seq          BIGINT PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor        TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    route        TEXT    NOT NULL,
    municipality TEXT,
    subjects     TEXT    NOT NULL,
    client       TEXT    NOT NULL,
    status       BIGINT  NOT NULL,
    hash         TEXT    NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, seq);

CREATE TABLE audit_head (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    seq         BIGINT NOT NULL,
    hash        TEXT    NOT NULL,
    anchor_seq  BIGINT NOT NULL,
    anchor_hash TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash, anchor_seq, anchor_hash) VALUES
    (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
        0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Records are never changed, and only retention removes them (up to its anchor, which it
-- moves first). The hash chain shows what a writer that drops these triggers did.
CREATE FUNCTION audit_log_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'the audit log is append-only';
    END IF;
    IF OLD.seq > (SELECT anchor_seq FROM audit_head WHERE id = 1) THEN
        RAISE EXCEPTION 'only retention removes audit records';
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_guard BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
