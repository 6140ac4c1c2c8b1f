-- Vendor inventory exports, each kept as a dated snapshot ("what did Hepro list on 1 March").
-- A file is kept once per vendor (by its SHA-256): importing it again changes nothing.
CREATE TABLE inventory_imports (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vendor      TEXT    NOT NULL,
    as_of       BIGINT  NOT NULL,
    imported_at BIGINT  NOT NULL,
    file_sha256 TEXT    NOT NULL,
    rows        BIGINT  NOT NULL,
    errors      BIGINT  NOT NULL,
    UNIQUE (vendor, file_sha256)
);
CREATE INDEX inventory_imports_as_of ON inventory_imports (vendor, as_of, id);

CREATE TABLE inventory_rows (
    import_id    BIGINT  NOT NULL REFERENCES inventory_imports (id),
    vendor       TEXT    NOT NULL,
    device       TEXT    NOT NULL,
    kind         TEXT,
    municipality TEXT,
    recipient    TEXT,
    in_service   BIGINT  NOT NULL
);
CREATE INDEX inventory_rows_import ON inventory_rows (import_id, device);
