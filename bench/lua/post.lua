-- POST one fixed body for the whole run; bench/loadgen.py runs it as
--   wrk -t1 -cC -dDs --latency -s post.lua http://127.0.0.1:PORT/PATH
-- with the request in environment variables:
--   WRK_BODY_FILE     the body, read once per thread
--   WRK_CONTENT_TYPE  its Content-Type
--   WRK_ACCEPT        the Accept header (optional)
--   WRK_HEADERS       other headers, one "Name: value" a line (optional)
--   WRK_MAX_REQUESTS  each thread stops after this many responses (the run is bounded in time by -d too)
-- done() prints one line, "WRK_RESULT {json}", that loadgen.py parses.

local function read_body(path)
  local file = assert(io.open(path, "rb"))
  local body = file:read("*a")
  file:close()
  return body
end

wrk.method = "POST"
wrk.body = read_body(os.getenv("WRK_BODY_FILE"))
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE")
local accept = os.getenv("WRK_ACCEPT")
if accept and accept ~= "" then
  wrk.headers["Accept"] = accept
end
for line in (os.getenv("WRK_HEADERS") or ""):gmatch("[^\n]+") do
  local name, value = line:match("^([^:]+):%s*(.*)$")
  if name then
    wrk.headers[name] = value
  end
end

local max_requests = tonumber(os.getenv("WRK_MAX_REQUESTS") or "0") or 0
local seen = 0

if max_requests > 0 then
  function response(status, headers, body)
    seen = seen + 1
    if seen >= max_requests then
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, '
      .. '"status": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
