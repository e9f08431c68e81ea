-- chat_logs: one row per request that reached the worker, partitioned by day
-- (UTC) on created_at. The default partition takes any row whose day has no
-- partition yet, so an insert never fails for lack of one.

CREATE TABLE IF NOT EXISTS chat_logs (
    id                 bigserial,
    created_at         timestamptz NOT NULL,
    request_id         text,
    client_addr        text NOT NULL DEFAULT '',
    key_id             text NOT NULL DEFAULT '',
    provider           text NOT NULL DEFAULT '',
    model              text NOT NULL DEFAULT '',
    ok                 boolean NOT NULL,
    status             integer NOT NULL,
    latency_ms         integer NOT NULL,
    prompt_tokens      integer,
    completion_tokens  integer,
    total_tokens       integer,
    error_class        text,
    error_message      text,
    stream             boolean NOT NULL DEFAULT false,
    ttft_ms            integer,
    stream_ms          integer,
    chunks             integer,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE TABLE IF NOT EXISTS chat_logs_default
    PARTITION OF chat_logs DEFAULT;

-- "Recent requests" pages read newest first.
CREATE INDEX IF NOT EXISTS chat_logs_created_at_idx
    ON chat_logs (created_at DESC);

-- Per-provider counts and error rates over a time window.
CREATE INDEX IF NOT EXISTS chat_logs_provider_created_at_idx
    ON chat_logs (provider, created_at DESC);

-- Replays of the log writer's spool insert with ON CONFLICT DO NOTHING, so
-- a batch written twice (its result lost with the connection, then replayed
-- from the spool) stores each row once. A NULL request_id never conflicts.
CREATE UNIQUE INDEX IF NOT EXISTS chat_logs_request_id_key
    ON chat_logs (created_at, request_id);

-- Creates the daily partitions from yesterday to days_ahead days after today
-- (UTC) that do not exist yet. Rows of such a day already in the default
-- partition are moved into the new partition. Returns how many it created.
CREATE OR REPLACE FUNCTION chatgate_ensure_log_partitions(days_ahead integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    today    date := (now() AT TIME ZONE 'UTC')::date;
    day      date;
    name     text;
    lo       timestamptz;
    hi       timestamptz;
    created  integer := 0;
BEGIN
    IF days_ahead IS NULL OR days_ahead < 0 OR days_ahead > 366 THEN
        RAISE EXCEPTION 'invalid days_ahead %: expected 0 to 366', days_ahead;
    END IF;

    FOR i IN -1 .. days_ahead LOOP
        day := today + i;
        name := 'chat_logs_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(name) IS NOT NULL;

        lo := day::timestamp AT TIME ZONE 'UTC';
        hi := (day + 1)::timestamp AT TIME ZONE 'UTC';

        IF EXISTS (SELECT 1 FROM chat_logs_default
                   WHERE created_at >= lo AND created_at < hi) THEN
            -- Attaching a range fails while the default partition contains
            -- rows in it, so the rows move first.
            EXECUTE format('CREATE TABLE %I (LIKE chat_logs INCLUDING DEFAULTS)',
                           name);
            EXECUTE format('WITH moved AS (DELETE FROM chat_logs_default '
                           'WHERE created_at >= $1 AND created_at < $2 '
                           'RETURNING *) INSERT INTO %I SELECT * FROM moved',
                           name) USING lo, hi;
            EXECUTE format('ALTER TABLE chat_logs ATTACH PARTITION %I '
                           'FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
        ELSE
            EXECUTE format('CREATE TABLE %I PARTITION OF chat_logs '
                           'FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
        END IF;

        created := created + 1;
    END LOOP;

    RETURN created;
END
$$;

-- Drops the daily partitions of days more than keep_days before today (UTC).
-- Rows in the default partition are left alone. Returns how many it dropped.
CREATE OR REPLACE FUNCTION chatgate_drop_log_partitions(keep_days integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    oldest   date;
    part     record;
    dropped  integer := 0;
BEGIN
    IF keep_days IS NULL OR keep_days < 1 THEN
        RAISE EXCEPTION 'invalid keep_days %: expected 1 or more', keep_days;
    END IF;

    oldest := (now() AT TIME ZONE 'UTC')::date - keep_days;

    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'chat_logs'::regclass
          AND c.relname ~ '^chat_logs_p[0-9]{8}$'
    LOOP
        CONTINUE WHEN to_date(substr(part.relname, 12), 'YYYYMMDD') >= oldest;
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;

    RETURN dropped;
END
$$;
