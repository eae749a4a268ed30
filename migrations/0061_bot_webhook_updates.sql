-- The update kinds a bot's webhook was set with (issue 16: the stop of a draft is a kind of
-- its own, sent only to webhooks that ask for it). NULL for webhooks set before: the bot
-- supervisor sees them differ from what it asks for now and sets them again, once.
ALTER TABLE bots ADD COLUMN webhook_updates text[];
