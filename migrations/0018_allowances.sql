-- Who may talk to a bot and how much it may spend (issue 17).

-- The bot's policy as its last PolicySet event gave it: the effect runner reads it with the
-- bot's row. '{}' is the default policy: anyone, no limits.
ALTER TABLE bots ADD COLUMN policy jsonb NOT NULL DEFAULT '{}';

-- What each person used of each bot per UTC day and month, and what admins granted on top;
-- person 0 is the whole bot. Built by the "allowances" projector from the LLM answers'
-- charges and ExtraGranted events, so it survives restarts and every replica reads the same.
-- The budget check reads a person's day, month and the bot's month in one primary-key scan.
CREATE TABLE person_usage
(
    bot_id                 uuid   NOT NULL,
    person                 bigint NOT NULL,
    period                 text   NOT NULL CHECK (period IN ('day', 'month')),
    period_start           date   NOT NULL,
    messages               bigint NOT NULL DEFAULT 0,
    cost_micro_usd         bigint NOT NULL DEFAULT 0,
    granted_messages       bigint NOT NULL DEFAULT 0,
    granted_cost_micro_usd bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bot_id, person, period, period_start)
);

-- Who tried and was refused, one row per bot, person and reason (person 0: none known), so
-- admins can see who knocked and grant access from there.
CREATE TABLE refusals
(
    bot_id           uuid        NOT NULL,
    person           bigint      NOT NULL,
    reason           text        NOT NULL,
    attempts         bigint      NOT NULL,
    first_at         timestamptz NOT NULL,
    last_at          timestamptz NOT NULL,
    -- The chat of the last refusal (a group's, for a group the bot may not serve).
    chat_id          uuid        NOT NULL,
    telegram_chat_id bigint      NOT NULL,
    PRIMARY KEY (bot_id, person, reason)
);

CREATE INDEX refusals_by_bot_recent ON refusals (bot_id, last_at DESC);
