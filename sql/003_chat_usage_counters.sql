-- chat_usage_counters: requests let through and denied per UTC day and
-- scope (the same scope names as rate_limits), so per-day quotas survive a
-- restart and admins can see usage.

CREATE TABLE IF NOT EXISTS chat_usage_counters (
    day         date NOT NULL,
    scope       text NOT NULL,
    requests    bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
    denied      bigint NOT NULL DEFAULT 0 CHECK (denied >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, scope)
);
