-- An answer the person stopped while it was written (issue 16: the draft's stop button). Its
-- ResponseGenerated says `stopped`; answers recorded before cannot have been stopped, so the
-- default is their truth and no rebuild is needed.
ALTER TABLE messages ADD COLUMN stopped boolean NOT NULL DEFAULT false;
