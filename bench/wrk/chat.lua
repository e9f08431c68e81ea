-- wrk script: POST one chat completion request per call and print a
-- machine-readable result line when the run ends.
--
-- Environment:
--   BENCH_BODY_FILE  file holding the JSON request body (required)
--   BENCH_HEADERS    extra request headers, "Name: value" pairs separated by "|"
--   BENCH_KEYS       when set to N > 0, every request carries an X-Key-Id
--                    taken round-robin from N distinct UUIDs

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
local counter = 0

if keys > 0 then
    -- Builds a new request per call, which costs wrk some CPU: only the
    -- distinct-key runs pay it.
    request = function()
        counter = counter + 1
        local n = counter % keys
        wrk.headers["X-Key-Id"] = string.format("00000000-0000-4000-8000-%012x", n)
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
