-- wrk script: POST one chat completion request per call and print a
-- machine-readable result line when the run ends.
--
-- Environment:
--   BENCH_BODY_FILE  file holding the JSON request body (required)
--   BENCH_HEADERS    extra request headers, "Name: value" pairs separated by "|"
--   BENCH_KEYS       when set to N > 0, every request carries an X-Key-Id
--                    drawn at random from N distinct UUIDs
--   BENCH_FILL       when 1 (with BENCH_KEYS), send the N key ids in order
--                    instead, and stop after N responses (see below)

local body_file = os.getenv("BENCH_BODY_FILE")
local f = assert(io.open(body_file or "", "rb"), "BENCH_BODY_FILE is missing or unreadable")
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"

for pair in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do
    local name, value = string.match(pair, "^%s*([^:]+):%s*(.-)%s*$")
    if name then
        wrk.headers[name] = value
    end
end

local keys = tonumber(os.getenv("BENCH_KEYS") or "0") or 0
local fill = os.getenv("BENCH_FILL") == "1"
local counter = 0
local responses = 0

local function key_id(n)
    return string.format("00000000-0000-4000-8000-%012x", n)
end

if keys > 0 and fill then
    -- Fill pass: every key id in turn, until the N-th response is in. wrk
    -- calls request() once before the run to check it, so key 0 is sent
    -- last. Because wrk cannot end a run early, the script stops its thread
    -- and prints BENCH_FILL_DONE, and the harness then sends wrk SIGINT,
    -- which cuts its sleep short.
    request = function()
        wrk.headers["X-Key-Id"] = key_id(counter % keys)
        counter = counter + 1
        return wrk.format()
    end

    response = function(status, headers, body)
        responses = responses + 1
        if responses == keys then
            io.write(string.format("BENCH_FILL_DONE responses=%d\n", responses))
            io.stdout:flush()
            wrk.thread:stop()
        end
    end
elseif keys > 0 then
    -- Measured runs: a key drawn uniformly from all N per request, so that
    -- every run spreads over the whole zone. Builds a new request per call,
    -- which costs wrk some CPU: only the distinct-key runs pay it.
    math.randomseed(os.time())
    request = function()
        wrk.headers["X-Key-Id"] = key_id(math.random(0, keys - 1))
        return wrk.format()
    end
end

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d mean_us=%d " ..
        "max_us=%d err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
        summary.requests, summary.duration,
        latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
        e.connect, e.read, e.write, e.status, e.timeout))
end
