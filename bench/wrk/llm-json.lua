-- `make bench`: an OpenAI chat completion, answered by the mock LLM with a 2,048-byte JSON body.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["authorization"] = "Bearer sk-bench"
wrk.headers["content-type"] = "application/json"
wrk.headers["x-mock-body-bytes"] = "2048"
wrk.body = '{"model":"gpt-4o-mini","max_tokens":64,"messages":[{"role":"user","content":"Say hello to the benchmark"}]}'
