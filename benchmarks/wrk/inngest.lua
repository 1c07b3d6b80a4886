-- wrk script for `make bench`: one fixed request (method, body and headers from the environment),
-- an optional stop after N responses, and a JSON summary line on stdout.
--
--   BENCH_METHOD     HTTP method (default POST)
--   BENCH_BODY_FILE  file whose bytes are the request body (optional)
--   BENCH_HEADERS    header lines "Name: value" separated by "\n" (optional)
--   BENCH_STOP_AFTER stop the (single) thread after this many responses (optional, use with -t1)

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

wrk.method = os.getenv("BENCH_METHOD") or "POST"

local body_file = os.getenv("BENCH_BODY_FILE")
if body_file and body_file ~= "" then
  wrk.body = read_file(body_file)
end

local header_lines = os.getenv("BENCH_HEADERS") or ""
for line in string.gmatch(header_lines, "[^\n]+") do
  local name, value = string.match(line, "^%s*([^:]+):%s*(.-)%s*$")
  if name then
    wrk.headers[name] = value
  end
end

local stop_after = tonumber(os.getenv("BENCH_STOP_AFTER") or "")
if stop_after then
  local seen = 0
  response = function(status, headers, body)
    seen = seen + 1
    if seen == stop_after then
      -- the runner waits for this line and interrupts wrk's main sleep (SIGINT) to finish early
      io.write("BENCH_STOPPED\n")
      io.flush()
      wrk.thread:stop()
    end
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  local pct = {}
  for _, p in ipairs({ 50, 75, 90, 99, 99.9 }) do
    pct[#pct + 1] = string.format('"%s": %d', tostring(p), latency:percentile(p))
  end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "stdev": %.1f, "percentiles": {%s}}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency.stdev, table.concat(pct, ", ")
  ))
end
