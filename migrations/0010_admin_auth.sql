-- Admin accounts, their sessions and the failed-login throttle. Plain tables, not events:
-- a password hash or a session must be deletable, and the event log is append-only. What an
-- admin does is still recorded, with the admin's id as the events' actor.

CREATE TABLE admins
(
    id            uuid PRIMARY KEY,
    -- Stored as given; unique regardless of case, and looked up by lower(email).
    email         text        NOT NULL,
    -- argon2id, in the PHC string format (algorithm, parameters and salt included).
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX admins_email ON admins (lower(email));

-- A session lives here, so logout and expiry end it for real, whatever the browser keeps.
-- Only a hash of the token is stored: a copy of this table does not let anyone in.
CREATE TABLE admin_sessions
(
    id         uuid PRIMARY KEY,
    token_hash bytea       NOT NULL UNIQUE,
    admin_id   uuid        NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);

CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- Failed logins per subject (`account:<email>` or `ip:<address>`), shared by every process so
-- that replicas do not multiply an attacker's guesses.
CREATE TABLE login_throttle
(
    subject           text PRIMARY KEY,
    failures          integer     NOT NULL,
    window_started_at timestamptz NOT NULL,
    locked_until      timestamptz
);
