-- A group's streamed preview message while its answer is being written (issue 16). The
-- preview is deleted before the answer is recorded; a process killed in between leaves its
-- row here, and the next attempt at the chat's turn deletes the orphaned message first, so
-- the group sees one answer and no half-written preview. Runner state, not a read model:
-- nothing here comes from the events.
CREATE TABLE group_previews
(
    bot_id           uuid        NOT NULL,
    telegram_chat_id bigint      NOT NULL,
    message_id       bigint      NOT NULL,
    sent_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, telegram_chat_id, message_id)
);
