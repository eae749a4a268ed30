-- chat_work, the effect runner's index of chats with unfinished turns, is kept by the append
-- itself: a trigger on `events` applies each chat event in the appending transaction. Kept
-- by a catch-up subscription, it cost every turn two or three projection transactions of
-- its own and a claim on each of their announcements; now the index can never lag the log,
-- and an event it cannot read is refused with its append rather than pausing the runners.
--
-- Upgrading: stop every replica of an earlier release first. Their chat_work subscription
-- would otherwise apply the same events a second time.

-- Applies one chat event to chat_work, by the rules the subscription had
-- (projections/src/chat_work.rs before this migration). Returns what it means for the runners:
-- 'work' (a turn opened or a retry was scheduled: they are to be told), 'drained' (it ended the
-- chat's last open turn), or NULL.
CREATE FUNCTION chat_work_apply(chat uuid, kind text, payload jsonb, at timestamptz)
    RETURNS text
    LANGUAGE plpgsql AS
$$
DECLARE
    body jsonb := payload -> kind;
    bot  uuid;
    left_open integer;
BEGIN
    CASE kind
        WHEN 'MessageReceived', 'CallbackQueryReceived' THEN
            bot := body ->> 'bot_id';
            IF bot IS NULL THEN
                RAISE EXCEPTION 'a % event of chat % names no bot_id', kind, chat
                    USING ERRCODE = 'not_null_violation', COLUMN = 'bot_id';
            END IF;
            INSERT INTO chat_work (chat_id, bot_id, open_turns, available_at)
            VALUES (chat, bot, 1, at)
            ON CONFLICT (chat_id) DO UPDATE SET open_turns = chat_work.open_turns + 1,
                available_at = CASE WHEN chat_work.open_turns = 0 THEN EXCLUDED.available_at
                                    ELSE chat_work.available_at END;
            RETURN 'work';
        -- The chat's row outlives its turns, so it is there to be reopened.
        WHEN 'TurnRetried', 'AdminMessageQueued' THEN
            UPDATE chat_work SET open_turns = open_turns + 1,
                available_at = CASE WHEN open_turns = 0 THEN at ELSE available_at END
            WHERE chat_id = chat;
            RETURN 'work';
        WHEN 'AttemptFailed' THEN
            UPDATE chat_work SET available_at = coalesce((body ->> 'retry_at')::timestamptz, at)
            WHERE chat_id = chat;
            -- The runners learn when the retry falls due.
            RETURN 'work';
        WHEN 'ResponseSent', 'TurnFailed', 'CallbackAnswered', 'TurnRefused', 'ChatLeft' THEN
            -- A refusal without a notice or a leave, and a leave of a still open turn, end it.
            IF kind = 'TurnRefused' AND ((body ->> 'notified')::boolean
                                         OR (body ->> 'leave_chat')::boolean) IS NOT FALSE
               OR kind = 'ChatLeft' AND (body ->> 'ends_turn')::boolean IS NOT TRUE THEN
                RETURN NULL;
            END IF;
            UPDATE chat_work SET open_turns = greatest(open_turns - 1, 0), available_at = at
            WHERE chat_id = chat
            RETURNING open_turns INTO left_open;
            RETURN CASE WHEN left_open = 0 THEN 'drained' END;
        ELSE
            RETURN NULL;
    END CASE;
END
$$;

-- Wakes the effect runners of every process at commit. A new turn's announcement carries the
-- appending process's tag (`botfleet.process`, set on each of its connections): that process's
-- intake hands the chat to its own runner directly, which therefore ignores the announcement.
-- The event that ends a chat's last open turn also ends the chat's lease: only the lease's
-- holder ends turns, and its runner then has nothing to give back (src/turns/runner.rs).
CREATE FUNCTION events_chat_work() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    CASE chat_work_apply(NEW.aggregate_id::uuid, NEW.event_type, NEW.payload, NEW.recorded_at)
        WHEN 'work' THEN
            PERFORM pg_notify('botfleet_work',
                              CASE WHEN NEW.event_type IN ('MessageReceived', 'CallbackQueryReceived')
                                   THEN coalesce(current_setting('botfleet.process', true), '')
                                   ELSE '' END);
        WHEN 'drained' THEN
            DELETE FROM leases WHERE resource = 'chat:' || NEW.aggregate_id;
        ELSE
            NULL;
    END CASE;
    RETURN NULL;
END
$$;

-- Recomputes chat_work from every chat event (`botfleet projections rebuild`). Appends of chat
-- events wait meanwhile: one that committed before the lock is in the replay, one that did
-- not applies itself after it.
CREATE FUNCTION chat_work_rebuild() RETURNS bigint
    LANGUAGE plpgsql AS
$$
DECLARE
    event    record;
    replayed bigint := 0;
BEGIN
    LOCK TABLE chat_work IN EXCLUSIVE MODE;
    DELETE FROM chat_work;
    FOR event IN SELECT aggregate_id, event_type, payload, recorded_at FROM events
                 WHERE aggregate_type = 'Chat' ORDER BY aggregate_id, sequence
    LOOP
        PERFORM chat_work_apply(event.aggregate_id::uuid, event.event_type, event.payload,
                                event.recorded_at);
        replayed := replayed + 1;
    END LOOP;
    RETURN replayed;
END
$$;

-- Catch up with the events the subscription had not handled yet (from its checkpoint), then
-- retire it. An event it could not read (paused on it) is left out, as it was.
DO
$$
DECLARE
    event record;
BEGIN
    FOR event IN
        SELECT e.aggregate_id, e.sequence, e.event_type, e.payload, e.recorded_at
        FROM events e
        LEFT JOIN subscription_checkpoints c ON c.subscription = 'chat_work'
        WHERE e.aggregate_type = 'Chat'
          AND (e.transaction_id, e.global_position)
              > (coalesce(c.transaction_id, '0'), coalesce(c.global_position, 0))
        ORDER BY e.transaction_id, e.global_position
    LOOP
        BEGIN
            PERFORM chat_work_apply(event.aggregate_id::uuid, event.event_type, event.payload,
                                    event.recorded_at);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'chat_work: left out event % of chat %: %', event.sequence,
                event.aggregate_id, SQLERRM;
        END;
    END LOOP;
END
$$;

-- Which sequence last changed a chat's work: the subscription's lag made runners remember the
-- chats they had drained (migration 0012). An index kept by the append never lags.
ALTER TABLE chat_work DROP COLUMN last_sequence;

DELETE FROM subscription_checkpoints WHERE subscription = 'chat_work';
DELETE FROM projection_faults WHERE subscription = 'chat_work';

CREATE TRIGGER events_chat_work
    AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.aggregate_type = 'Chat') EXECUTE FUNCTION events_chat_work();
