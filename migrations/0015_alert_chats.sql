-- The alerts projection's own record of which bot each chat belongs to, so that it never
-- reads the raw event log to find a chat's bot (which bypassed the upcasters). A chat's first
-- event names its bot; the rows of existing chats are filled here, once.
CREATE TABLE alert_chats
(
    chat_id uuid PRIMARY KEY,
    bot_id  uuid NOT NULL
);

INSERT INTO alert_chats (chat_id, bot_id)
SELECT aggregate_id::uuid,
       coalesce(payload -> 'MessageReceived' ->> 'bot_id',
                payload -> 'CallbackQueryReceived' ->> 'bot_id')::uuid
FROM events
WHERE aggregate_type = 'Chat' AND sequence = 1
  AND coalesce(payload -> 'MessageReceived' ->> 'bot_id',
               payload -> 'CallbackQueryReceived' ->> 'bot_id') IS NOT NULL
ON CONFLICT (chat_id) DO NOTHING;
