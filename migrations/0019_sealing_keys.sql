-- The keys that seal bot tokens and people's keys (TOKEN_ENCRYPTION_KEY and the ones it
-- replaced). The current key itself is never stored: only a check value (an HMAC under it),
-- which lets a start with another key be refused before it runs a fleet it cannot open.
-- Retired keys are kept sealed under the current key, so that what they sealed (the event log
-- is immutable) stays readable, and the current key is the one secret to keep.
CREATE TABLE sealing_keys
(
    -- Eight characters derived from the key, carried by every value it sealed.
    key_id      text PRIMARY KEY,
    state       text        NOT NULL CHECK (state IN ('current', 'retired')),
    check_value text        NOT NULL,
    -- A retired key, sealed under the current one; NULL for the current key.
    sealed_key  text,
    -- The store's first key: values sealed before key ids existed were sealed with it.
    is_root     boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz,
    CHECK ((state = 'current') = (sealed_key IS NULL))
);

CREATE UNIQUE INDEX sealing_keys_one_current ON sealing_keys ((true)) WHERE state = 'current';
CREATE UNIQUE INDEX sealing_keys_one_root ON sealing_keys ((true)) WHERE is_root;
