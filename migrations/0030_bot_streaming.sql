-- Whether a bot's answers stream into the chat as they are written (issue 16). Off unless a
-- StreamingSet event turned it on: bots made before streaming existed have no such event, so
-- the default agrees with a rebuild from the events.
ALTER TABLE bots ADD COLUMN streaming boolean NOT NULL DEFAULT false;
