-- Snapshots written before this version could hold the events of the command that crossed
-- the snapshot interval applied twice (the aggregate had already applied them when the store
-- applied them again). Snapshots are only a cache of the events: dropping them makes the next
-- load replay the stream, and the next snapshot is taken right.
DELETE FROM snapshots;
