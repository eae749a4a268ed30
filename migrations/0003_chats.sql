-- Bots: what the effect runner and admins need beyond the settings.
ALTER TABLE bots
    ADD COLUMN webhook_url        text,
    ADD COLUMN last_error_kind    text,
    ADD COLUMN last_error_message text,
    ADD COLUMN last_error_at      timestamptz;

-- Read models of the "chats" projector. Timestamps come from events, never from now().
CREATE TABLE chats
(
    id                   uuid PRIMARY KEY,
    bot_id               uuid        NOT NULL,
    telegram_chat_id     bigint      NOT NULL,
    chat_type            text        NOT NULL,
    title                text,
    username             text,
    -- The person who wrote last (in a private chat, the chat's only person).
    telegram_user_id     bigint,
    previous_response_id text,
    message_count        bigint      NOT NULL DEFAULT 0,
    total_cost_micro_usd bigint      NOT NULL DEFAULT 0,
    created_at           timestamptz NOT NULL,
    last_activity_at     timestamptz NOT NULL,
    version              bigint      NOT NULL,
    UNIQUE (bot_id, telegram_chat_id)
);

CREATE INDEX chats_by_activity ON chats (last_activity_at DESC, id DESC);
CREATE INDEX chats_by_bot ON chats (bot_id, last_activity_at DESC, id DESC);
CREATE INDEX chats_by_user ON chats (telegram_user_id, last_activity_at DESC, id DESC);

CREATE TABLE telegram_users
(
    id            bigint PRIMARY KEY,
    is_bot        boolean     NOT NULL,
    first_name    text        NOT NULL,
    last_name     text,
    username      text,
    language_code text,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL
);

-- One row per user message and one per bot response, keyed by the turn's update id.
CREATE TABLE messages
(
    chat_id              uuid        NOT NULL,
    update_id            bigint      NOT NULL,
    role                 text        NOT NULL CHECK (role IN ('user', 'bot')),
    text                 text        NOT NULL,
    -- user: received, answered, failed; bot: generated, sent
    status               text        NOT NULL,
    telegram_user_id     bigint,
    telegram_message_ids bigint[]    NOT NULL DEFAULT '{}',
    response_kind        text,
    model                text,
    response_id          text,
    input_tokens         bigint,
    cached_input_tokens  bigint,
    output_tokens        bigint,
    reasoning_tokens     bigint,
    cost_micro_usd       bigint,
    attempts             integer     NOT NULL DEFAULT 0,
    last_error           text,
    created_at           timestamptz NOT NULL,
    sent_at              timestamptz,
    PRIMARY KEY (chat_id, update_id, role)
);

CREATE INDEX messages_by_chat ON messages (chat_id, created_at, update_id);

-- The effect runner's index of chats with unfinished turns (projector "chat_work").
CREATE TABLE chat_work
(
    chat_id      uuid PRIMARY KEY,
    bot_id       uuid        NOT NULL,
    open_turns   integer     NOT NULL,
    -- Not before: a retry's backoff.
    available_at timestamptz NOT NULL
);

CREATE INDEX chat_work_due ON chat_work (available_at) WHERE open_turns > 0;

-- Who works on what: a chat's turns, a bot's polling. A lease that is not renewed expires,
-- so the work of a process that died is taken over.
CREATE TABLE leases
(
    resource   text PRIMARY KEY,
    owner      uuid        NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Long polling: the next getUpdates offset per bot, stored after the updates are appended.
CREATE TABLE polling_offsets
(
    bot_id      uuid PRIMARY KEY,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
