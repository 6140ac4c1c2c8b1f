-- Change attributions are read from the service state ingest keeps (the changes between two
-- instants: Store::service_changes), so nothing computed on request is kept any more and no
-- GET writes. lifecycle_generation stays: in PostgreSQL its row lock serialises the batches
-- that recompute service state.
DROP TABLE change_month_cache;
