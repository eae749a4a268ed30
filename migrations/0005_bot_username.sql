-- The bot's Telegram @username, learned with getMe: group messages that mention it are for it.
ALTER TABLE bots ADD COLUMN username text;
