-- `make bench`: a different API key on every request (sk-flood-<thread>-<counter>), to show
-- that Tollgate's memory stays bounded however many distinct keys arrive. Stops the thread
-- once BENCH_FLOOD_KEYS keys (default 1,000,000) have been sent; wrk's -d caps the time.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

local limit = tonumber(os.getenv("BENCH_FLOOD_KEYS") or "1000000")
local prefix = "sk-flood-"
sent = 0

function init(args)
  -- Distinct per thread (wrk gives each thread its own Lua state).
  prefix = string.format("sk-flood-%d-%x-", math.random(1, 1000000000), os.time())
end

function request()
  if sent < limit then
    sent = sent + 1
  else
    wrk.thread:stop() -- (the last key is repeated for the few requests still in flight)
  end
  return wrk.format("GET", "/", { ["authorization"] = "Bearer " .. prefix .. sent })
end
