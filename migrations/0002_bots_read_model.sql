-- The bots read model, built by the "bots" projector. Timestamps come from the events'
-- recorded_at, never from now(), so a rebuild reproduces every row exactly.
CREATE TABLE bots
(
    id                uuid PRIMARY KEY,
    name              text        NOT NULL,
    token_ciphertext  text        NOT NULL,
    token_fingerprint text        NOT NULL,
    token_hint        text        NOT NULL,
    start_message     text        NOT NULL,
    error_message     text        NOT NULL,
    model             text        NOT NULL,
    instructions      text        NOT NULL,
    is_active         boolean     NOT NULL,
    deleted_at        timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    version           bigint      NOT NULL
);

CREATE INDEX bots_listing ON bots (created_at, id);
CREATE INDEX bots_token_fingerprint ON bots (token_fingerprint) WHERE deleted_at IS NULL;
