-- `make bench`: a streamed OpenAI chat completion: the mock LLM answers with 50 SSE content
-- chunks (plus the finish chunk, the usage chunk and [DONE]), sent without delay between them.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["authorization"] = "Bearer sk-bench"
wrk.headers["content-type"] = "application/json"
wrk.headers["x-mock-stream-chunks"] = "50"
wrk.headers["x-mock-chunk-delay-ms"] = "0"
wrk.body = '{"model":"gpt-4o-mini","max_tokens":64,"stream":true,"stream_options":{"include_usage":true},'
  .. '"messages":[{"role":"user","content":"Say hello to the benchmark"}]}'
