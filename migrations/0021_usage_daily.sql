-- Usage per bot per day, built by the "usage" projector: what each bot cost, and how much it
-- worked, on each UTC day (the day of the events' recorded_at, never of the clock, so a
-- rebuild reproduces every row). A new projection: it builds itself from the first event.
CREATE TABLE usage_daily
(
    bot_id              uuid   NOT NULL,
    day                 date   NOT NULL,
    -- People's messages received (MessageReceived).
    messages            bigint NOT NULL DEFAULT 0,
    -- Turns answered: a response generated for a person's message (the LLM's, a command's,
    -- a notice, the error message); admins' messages are not turns.
    turns               bigint NOT NULL DEFAULT 0,
    -- Turns that failed for good (TurnFailed).
    failed_turns        bigint NOT NULL DEFAULT 0,
    input_tokens        bigint NOT NULL DEFAULT 0,
    cached_input_tokens bigint NOT NULL DEFAULT 0,
    output_tokens       bigint NOT NULL DEFAULT 0,
    reasoning_tokens    bigint NOT NULL DEFAULT 0,
    cost_micro_usd      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bot_id, day)
);

CREATE INDEX usage_daily_by_day ON usage_daily (day, bot_id);

-- The usage projection's own record of which bot each chat belongs to (a chat's first event
-- names it; later events of the chat do not), so that it never reads the raw event log.
CREATE TABLE usage_chats
(
    chat_id uuid PRIMARY KEY,
    bot_id  uuid NOT NULL
);
