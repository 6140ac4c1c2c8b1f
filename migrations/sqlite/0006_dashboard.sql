-- Dashboard sign-in sessions. Only a hash of the cookie value is kept (like api_tokens), and a
-- session belongs to the token it was opened with: the token's role is read at every request.
CREATE TABLE sessions (
    session_hash TEXT    PRIMARY KEY,
    token_hash   TEXT    NOT NULL REFERENCES api_tokens (token_hash) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- The rows of an inventory export that could not be read, as the import reported them (the
-- first ones of each import; inventory_imports.errors has the full count).
CREATE TABLE inventory_import_errors (
    import_id INTEGER NOT NULL REFERENCES inventory_imports (id) ON DELETE CASCADE,
    line      INTEGER NOT NULL,
    col       TEXT,
    why       TEXT    NOT NULL
);
CREATE INDEX inventory_import_errors_import ON inventory_import_errors (import_id, line);
