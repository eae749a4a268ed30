-- A user message's Telegram message id, so that the chats projector finds the message an
-- edit refers to in its own rows instead of reading the raw event log (which bypassed the
-- upcasters). Existing rows get it from the rebuild below.
ALTER TABLE messages ADD COLUMN telegram_message_id bigint;

CREATE INDEX messages_by_telegram_message ON messages (chat_id, telegram_message_id)
    WHERE role = 'user';

-- The chats read model is rebuilt once, at the next start, to fill the column.
UPDATE subscription_checkpoints SET rebuild_required = true WHERE subscription = 'chats';
