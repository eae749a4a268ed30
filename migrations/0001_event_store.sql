-- The event store: postgres-es's tables, plus the columns that give the stream a global
-- order. postgres-es never writes the extra columns; their defaults fill them.

CREATE TABLE events
(
    aggregate_type  text                         NOT NULL,
    aggregate_id    text                         NOT NULL,
    sequence        bigint CHECK (sequence >= 0) NOT NULL,
    event_type      text                         NOT NULL,
    event_version   text                         NOT NULL,
    payload         jsonb                        NOT NULL,
    metadata        jsonb                        NOT NULL,
    -- Allocated at insert, so a lower position can commit after a higher one: readers order
    -- by (transaction_id, global_position) and stop below the oldest running transaction.
    global_position bigint GENERATED ALWAYS AS IDENTITY,
    transaction_id  xid8                         NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at     timestamptz                  NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

CREATE UNIQUE INDEX events_global_position ON events (global_position);
CREATE INDEX events_commit_order ON events (transaction_id, global_position);
CREATE INDEX events_correlation ON events ((metadata ->> 'correlation_id'));

-- Every event gets its own id in its metadata. cqrs-es shares one metadata map among all the
-- events of a command, so the id is given here, per row.
CREATE FUNCTION events_assign_id() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    IF NOT (NEW.metadata ? 'event_id') THEN
        NEW.metadata := NEW.metadata || jsonb_build_object('event_id', gen_random_uuid()::text);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER events_assign_id
    BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_assign_id();

-- Wakes subscribers at commit (NOTIFY is transactional and folds duplicates, so one
-- notification per transaction). Subscribers also poll slowly in case one is missed.
CREATE FUNCTION events_notify() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('botfleet_events', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_notify();

-- The log is append-only: auditors must be able to trust that history was never rewritten.
CREATE FUNCTION events_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % is not allowed', TG_OP;
END
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          jsonb                                NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);

-- One row per catch-up subscription: the last event it has fully handled.
CREATE TABLE subscription_checkpoints
(
    subscription    text PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT '0',
    global_position bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
