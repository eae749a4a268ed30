-- Admin accounts can be disabled (their sessions end and they cannot log in) rather than
-- deleted, so that the admin ids in the event log's actors keep naming someone.
ALTER TABLE admins
    ADD COLUMN disabled_at timestamptz,
    -- Who created or disabled the account: `admin:<id>`, or `cli:<user>`, `env` for the first.
    ADD COLUMN created_by  text,
    ADD COLUMN disabled_by text;
