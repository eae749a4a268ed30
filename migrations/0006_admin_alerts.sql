-- Admin notifications of final errors, one row per bot and error kind. Occurrences are
-- counted as they are projected; a notification goes out when `send_after` is reached and
-- carries the count, so a burst of identical failures makes one notification.
CREATE TABLE admin_alerts
(
    bot_id           uuid        NOT NULL,
    kind             text        NOT NULL,
    -- Occurrences not yet notified.
    pending_count    bigint      NOT NULL,
    total_count      bigint      NOT NULL,
    last_error       text        NOT NULL,
    first_pending_at timestamptz,
    last_at          timestamptz NOT NULL,
    send_after       timestamptz NOT NULL,
    last_sent_at     timestamptz,
    PRIMARY KEY (bot_id, kind)
);

CREATE INDEX admin_alerts_due ON admin_alerts (send_after) WHERE pending_count > 0;
