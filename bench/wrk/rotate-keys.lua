-- `make bench`: GET / rotating over 100 API keys (sk-bench-000 .. sk-bench-099); the
-- "realistic" config maps the first 20 to the pro tier, the rest fall to the default (free).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

local reqs = {}
local i = 0

function init(args)
  for k = 0, 99 do
    reqs[k + 1] = wrk.format("GET", "/", { ["authorization"] = string.format("Bearer sk-bench-%03d", k) })
  end
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
