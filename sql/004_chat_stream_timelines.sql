-- chat_stream_timelines: when each content chunk of a streamed chat was sent
-- to the client, for replaying a stream later. Written only while the
-- worker runs with CHATGATE_STREAM_TIMELINE=1; one row per stream.

CREATE TABLE IF NOT EXISTS chat_stream_timelines (
    request_id  text NOT NULL,
    created_at  timestamptz NOT NULL,
    offsets     int[] NOT NULL      -- ms from the request start, one per content chunk
);

CREATE INDEX IF NOT EXISTS chat_stream_timelines_request_id
    ON chat_stream_timelines (request_id);
CREATE INDEX IF NOT EXISTS chat_stream_timelines_created_at
    ON chat_stream_timelines (created_at);
