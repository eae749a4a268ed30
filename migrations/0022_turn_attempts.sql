-- Every failed attempt of a turn, kept by the "chats" projector, so that a conversation shows
-- each attempt inline with its step, class and error (the messages row keeps only the last).
-- Keyed by the chat's own sequence: attempt numbers start over after an admin's retry.
CREATE TABLE turn_attempts
(
    chat_id   uuid        NOT NULL,
    sequence  bigint      NOT NULL,
    update_id bigint      NOT NULL,
    attempt   integer     NOT NULL,
    step      text        NOT NULL,
    class     text        NOT NULL,
    error     text        NOT NULL,
    failed_at timestamptz NOT NULL,
    retry_at  timestamptz,
    PRIMARY KEY (chat_id, sequence)
);

CREATE INDEX turn_attempts_by_turn ON turn_attempts (chat_id, update_id);

-- People's messages by person: the users list (their chats and spend) and the chats filter by
-- Telegram user read them without scanning every message.
CREATE INDEX messages_by_person ON messages (telegram_user_id);

-- The chats read model is rebuilt once, at the next start, to fill turn_attempts.
UPDATE subscription_checkpoints SET rebuild_required = true WHERE subscription = 'chats';
