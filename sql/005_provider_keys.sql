-- provider_keys: provider API keys, encrypted with AES-256-GCM under
-- ADMIN_KMS_KEY. ciphertext is the vault's base64 blob; its associated data
-- is the id, the provider and key_version, so a blob copied to another row
-- does not decrypt. A revoked key keeps its row (for the request log's
-- key_id) but loses its ciphertext.

CREATE TABLE IF NOT EXISTS provider_keys (
    id           uuid PRIMARY KEY,
    provider     text NOT NULL
                 CHECK (provider IN ('openai', 'openrouter', 'anthropic', 'ollama')),
    label        text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    base_url     text NULL,
    ciphertext   text NULL,
    key_version  integer NOT NULL DEFAULT 1 CHECK (key_version >= 1),
    fingerprint  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    rotated_at   timestamptz NULL,
    revoked_at   timestamptz NULL,
    CHECK (revoked_at IS NOT NULL OR ciphertext IS NOT NULL)
);

CREATE INDEX IF NOT EXISTS provider_keys_active
    ON provider_keys (created_at) WHERE revoked_at IS NULL;
