-- Poison events: an event a projector failed on after its attempts ran out. Depending on the
-- projector's policy the subscription either paused before it (status 'paused', until an
-- operator retries or skips it) or went on without it ('parked'). The rows stay as history
-- once resolved: 'retried' (an operator asked for another try; applied once the checkpoint is
-- past it), 'skipped' (an operator moved the checkpoint past it, or acknowledged a parked one).
CREATE TABLE projection_faults
(
    subscription    text        NOT NULL,
    transaction_id  xid8        NOT NULL,
    global_position bigint      NOT NULL,
    aggregate_type  text        NOT NULL,
    aggregate_id    text        NOT NULL,
    sequence        bigint      NOT NULL,
    event_type      text        NOT NULL,
    error           text        NOT NULL,
    attempts        integer     NOT NULL,
    status          text        NOT NULL CHECK (status IN ('paused', 'parked', 'retried', 'skipped')),
    failed_at       timestamptz NOT NULL DEFAULT now(),
    resolved_by     text,
    resolved_at     timestamptz,
    PRIMARY KEY (subscription, global_position)
);

CREATE INDEX projection_faults_open ON projection_faults (subscription)
    WHERE status IN ('paused', 'parked');

-- Releases before this one sorted transaction ids as text ('1000' < '999') when reading the
-- stream: a read model may have skipped events wherever a batch spanned a power of ten, and
-- `projections rebuild` could store a checkpoint behind what it had projected, after which
-- the live runner failed on every event it re-read. Every read model is therefore rebuilt
-- once, by the first process of this release that starts (in one transaction per read
-- model, so readers see the old rows until it commits).
ALTER TABLE subscription_checkpoints
    ADD COLUMN rebuild_required boolean NOT NULL DEFAULT false;

UPDATE subscription_checkpoints
SET rebuild_required = true
WHERE subscription IN ('bots', 'chats', 'chat_work');
