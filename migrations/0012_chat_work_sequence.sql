-- The sequence of the chat's last event that changed its work, so that a runner that has
-- worked a chat through it does not claim the chat again while the projection catches up.
ALTER TABLE chat_work ADD COLUMN last_sequence bigint NOT NULL DEFAULT 0;
