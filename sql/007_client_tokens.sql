-- client_tokens: every client token (a JWT for one stored key) that
-- POST /admin/api/tokens issued, without the token itself, so a single one
-- can be listed and revoked before it expires. A revoked one also gets a
-- revoked_tokens row until expires_at.

CREATE TABLE IF NOT EXISTS client_tokens (
    jti          text PRIMARY KEY,
    key_id       uuid NOT NULL,
    models       text[],
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

CREATE INDEX IF NOT EXISTS client_tokens_key_id ON client_tokens (key_id);
