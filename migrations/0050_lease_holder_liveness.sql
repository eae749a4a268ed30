-- The liveness key of a lease's holder: the advisory lock its process holds for its whole
-- life (see src/runtime/liveness.rs). When nobody holds that lock, the holder is dead and
-- its lease may be taken at once, without waiting for `expires_at`. Leases written by
-- processes of earlier releases have none, and are taken only once they expire.
ALTER TABLE leases ADD COLUMN owner_key bigint;
