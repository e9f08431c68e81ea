-- admin_users: people who sign in to the admin API and console. email is
-- stored lowercased; password_hash is a PHC-style scrypt string.
-- revoked_tokens: JWT ids ended by logout before their expiry; a row can be
-- deleted once expires_at has passed.

CREATE TABLE IF NOT EXISTS admin_users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL UNIQUE CHECK (email = lower(email)),
    role           text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    disabled       boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti         text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS revoked_tokens_expires_at
    ON revoked_tokens (expires_at);
