-- Each ingest replica rewrites its row every few seconds. The write is the readiness probe
-- ("a commit succeeded lately", which a read cannot show: a full disk still answers SELECT 1),
-- and the rows let a replica see a peer of its shared group that went silent, whose share of
-- the stream the broker then holds for it (stranded until it comes back).
CREATE TABLE ingest_replicas (
    client_id TEXT PRIMARY KEY,
    shared_group TEXT,
    seen_at BIGINT NOT NULL
);
