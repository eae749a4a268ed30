-- Failure handling: blocked chats, failed turns an admin can retry, other kinds of updates.
ALTER TABLE chats ADD COLUMN blocked boolean NOT NULL DEFAULT false;
-- A group that became a supergroup keeps its chat, under the new Telegram id; the old and
-- the new id may then both appear, so the pair is no longer unique.
ALTER TABLE chats DROP CONSTRAINT chats_bot_id_telegram_chat_id_key;
CREATE INDEX chats_by_telegram_id ON chats (bot_id, telegram_chat_id);

ALTER TABLE messages
    ADD COLUMN turn_id   uuid,
    ADD COLUMN media     text,
    ADD COLUMN edited_at timestamptz;
CREATE INDEX messages_by_turn ON messages (turn_id) WHERE role = 'user';


-- Why a turn failed, for the failures list.
ALTER TABLE messages
    ADD COLUMN failure_class text,
    ADD COLUMN failure_step  text,
    ADD COLUMN failed_at     timestamptz;

CREATE INDEX messages_failed ON messages (failed_at DESC, turn_id) WHERE role = 'user' AND status = 'failed';

-- Admins write to chats too (POST /chats/{id}/messages).
ALTER TABLE messages DROP CONSTRAINT messages_role_check;
ALTER TABLE messages ADD CONSTRAINT messages_role_check CHECK (role IN ('user', 'bot', 'admin'));
