-- One key per person (a Telegram user id, or a chat id for messages without a sender). Names
-- and message texts are sealed under it before they enter any event; deleting the row
-- ("forgetting" the person) makes every copy unreadable, in events, snapshots and read models.
-- Keys are themselves sealed under TOKEN_ENCRYPTION_KEY.
CREATE TABLE personal_keys
(
    subject    bigint PRIMARY KEY,
    sealed_key text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
