-- The effect runner shares its slots fairly between bots: a claim takes each bot's oldest
-- due chats, ranked after the chats the bot already holds (src/turns/runner.rs).
CREATE INDEX chat_work_due_by_bot ON chat_work (bot_id, available_at) WHERE open_turns > 0;
