-- The newest Bot event in commit order, found without walking past every chat event: a
-- registration waits for the bots read model to include it before checking that its token
-- is free (see src/http/bots.rs, TokenGuard).
CREATE INDEX events_bot_commit_order ON events (transaction_id, global_position)
    WHERE aggregate_type = 'Bot';
