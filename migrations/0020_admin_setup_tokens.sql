-- One-time links that create the first admin without editing the environment: printed at
-- start while no admin exists, valid until used or for an hour. Only a SHA-256 of each token
-- is kept, like sessions'. Creating an admin deletes them all.
CREATE TABLE admin_setup_tokens
(
    token_hash bytea PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
