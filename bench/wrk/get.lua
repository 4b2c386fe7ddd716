-- `make bench`: GET / carrying one API key (every direct_response case sends the same request,
-- with or without a filter, so only the filter differs).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

wrk.method = "GET"
wrk.path = "/"
wrk.headers["authorization"] = "Bearer sk-bench"
