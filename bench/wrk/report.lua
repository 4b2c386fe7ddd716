-- Shared by the `make bench` wrk scripts (loaded with dofile): prints one machine-readable
-- line at the end of a run, which tests/src/bin/bench/ parses.
--   BENCH {"requests":N,"duration_us":N,"p50_us":N,"p99_us":N,"non2xx":N,"socket_errors":N,"sent":N}
-- `sent` adds up the per-thread `sent` counters of scripts that keep one (flood.lua), else -1.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local e = summary.errors
  local sent = -1
  for _, t in ipairs(threads) do
    local n = t:get("sent")
    if n ~= nil then
      sent = math.max(sent, 0) + n
    end
  end
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"non2xx":%d,"socket_errors":%d,"sent":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout, sent))
end
