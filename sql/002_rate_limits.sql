-- rate_limits: the rule set that the worker pushes to the nginx module.
-- scope is one of: global (all traffic together), ip:* and key:* (each
-- address or key on its own), ip:<address or CIDR>, key:<uuid>.
-- Rates are GCRA rates with burst as the extra requests allowed at once;
-- per_day is a quota that resets at 00:00 UTC.

CREATE TABLE IF NOT EXISTS rate_limits (
    scope       text PRIMARY KEY,
    per_minute  integer,
    per_hour    integer,
    burst       integer,
    per_day     integer,
    updated_at  timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT rate_limits_scope_format CHECK (
        scope IN ('global', 'ip:*', 'key:*')
        OR scope ~ '^ip:[0-9A-Fa-f.:]+(/[0-9]{1,3})?$'
        OR scope ~ '^key:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    ),
    CONSTRAINT rate_limits_per_minute_positive CHECK (per_minute > 0),
    CONSTRAINT rate_limits_per_hour_positive CHECK (per_hour > 0),
    CONSTRAINT rate_limits_per_day_positive CHECK (per_day > 0),
    CONSTRAINT rate_limits_burst_positive CHECK (burst > 0),
    CONSTRAINT rate_limits_some_limit CHECK (
        per_minute IS NOT NULL OR per_hour IS NOT NULL OR per_day IS NOT NULL
    )
);

INSERT INTO rate_limits (scope, per_minute, per_day)
VALUES ('global', 60, 5000)
ON CONFLICT DO NOTHING;
