#!/usr/bin/env bash
# Key-flood soak (`make soak`): at least SOAK_REQUESTS (default 1,000,000) requests, each with
# its own API key, through Envoy with Tollgate (in front of a direct_response, so the upstream
# costs nothing), sent by wrk with a Lua script that makes the keys. Checks, and prints:
#   - Envoy's resident memory (before, peak, after) stays within the bound: growth over the
#     flood at most SOAK_RSS_GROWTH_MB (default 64 MiB; the counters are preallocated at
#     configure time, README "Bounded memory", so a flood must not grow them);
#   - a key limited before the flood is still limited after it (a live counter is never
#     evicted; new keys that find their set full go to the rule's overflow counter);
#   - the filter's counters: allowed, denied, slots evicted, overflow; no panic in the log.
# Only loopback traffic; bounded by SOAK_REQUESTS and SOAK_MAX_SECONDS (default 900).
# Figures are recorded in docs/hardening.md.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET="${SOAK_REQUESTS:-1000000}"
MAX_SECONDS="${SOAK_MAX_SECONDS:-900}"
GROWTH_MB="${SOAK_RSS_GROWTH_MB:-64}"
CONNECTIONS="${SOAK_CONNECTIONS:-32}"
CHUNK_SECONDS="${SOAK_CHUNK_SECONDS:-20}"
WASM=target/wasm32-wasip1/release/tollgate.wasm

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "soak: $tool not found: run \`make setup\`" >&2; exit 1; }
done
[ -x .venv/bin/envoy ] || { echo "soak: .venv/bin/envoy not found: run \`make setup\`" >&2; exit 1; }
[ -f "$WASM" ] || { echo "soak: $WASM not found: run \`make build\`" >&2; exit 1; }

WORK="$(mktemp -d)"
ENVOY_PID=""
SAMPLER_PID=""
cleanup() {
    [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
    [ -n "$ENVOY_PID" ] && kill "$ENVOY_PID" 2>/dev/null && wait "$ENVOY_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
ADMIN=$(free_port)

# One rule, 5 requests per key per hour: each flood key sends one request. The default
# 65,536 counter slots.
PLUGIN='{"rules":[{"name":"per-key","key":["api_key"],"algorithm":"fixed_window","limit":5,"window":"1h"}]}'
PLUGIN_QUOTED=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$PLUGIN")
cat >"$WORK/envoy.yaml" <<EOF
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $ADMIN } }
stats_config:
  stats_tags:
  - tag_name: rule
    regex: '^wasmcustom\.tollgate\.rule\.((.+)\.)[a-z_]+$'
static_resources:
  listeners:
  - name: ingress
    address: { socket_address: { address: 127.0.0.1, port_value: $PORT } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "ok\n" } }
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: tollgate
                root_id: tollgate
                vm_config:
                  vm_id: tollgate
                  runtime: envoy.wasm.runtime.v8
                  code: { local: { filename: "$PWD/$WASM" } }
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: $PLUGIN_QUOTED
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
EOF

.venv/bin/envoy -c "$WORK/envoy.yaml" --concurrency 2 --disable-hot-restart -l warning >"$WORK/envoy.log" 2>&1 &
ENVOY_PID=$!
for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$ADMIN/ready" >/dev/null 2>&1 && break
    kill -0 "$ENVOY_PID" 2>/dev/null || { cat "$WORK/envoy.log"; echo "soak: Envoy exited" >&2; exit 1; }
    sleep 0.1
done
curl -fs "http://127.0.0.1:$ADMIN/ready" >/dev/null || { cat "$WORK/envoy.log"; echo "soak: Envoy not ready" >&2; exit 1; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$ENVOY_PID/status"; }
envoy_stat() { curl -fs "http://127.0.0.1:$ADMIN/stats?filter=$1" | awk -F': ' -v n="$1" '$1 == n {print $2}'; }
prom() { curl -fs "http://127.0.0.1:$ADMIN/stats/prometheus" | awk -v s="$1" 'index($0, s" ") == 1 {print $2}'; }
status_of() { curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $1" "http://127.0.0.1:$PORT/canary"; }

# The canary: limited before the flood.
CANARY=sk-soak-canary
canary_before=""
for _ in 1 2 3 4 5 6; do canary_before="$canary_before $(status_of "$CANARY")"; done
echo "canary before the flood:$canary_before"
[ "$(status_of "$CANARY")" = "429" ] || { echo "soak: FAIL: the canary is not limited before the flood" >&2; exit 1; }

# Warm up (a few thousand keys), then take the baseline RSS.
cat >"$WORK/keys.lua" <<'EOF'
-- Every request carries its own API key: sk-flood-<chunk>-<thread>-<n>.
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  chunk = os.getenv("SOAK_CHUNK") or "0"
  n = 0
end
function request()
  n = n + 1
  return wrk.format("GET", "/flood", { ["x-api-key"] = "sk-flood-" .. chunk .. "-" .. tid .. "-" .. n })
end
EOF
SOAK_CHUNK=warmup wrk -t2 -c"$CONNECTIONS" -d2s -s "$WORK/keys.lua" "http://127.0.0.1:$PORT/" >/dev/null
sleep 1
rss_before=$(rss_kb)

# RSS sampler: once a second, into a file.
(while kill -0 "$ENVOY_PID" 2>/dev/null; do rss_kb >>"$WORK/rss.txt"; sleep 1; done) &
SAMPLER_PID=$!

start_total=$(envoy_stat http.ingress.downstream_rq_total)
start_time=$(date +%s)
chunk=0
sent=0
while [ "$sent" -lt "$TARGET" ]; do
    elapsed=$(($(date +%s) - start_time))
    if [ "$elapsed" -ge "$MAX_SECONDS" ]; then
        echo "soak: FAIL: only $sent requests in ${MAX_SECONDS}s (SOAK_MAX_SECONDS)" >&2
        exit 1
    fi
    chunk=$((chunk + 1))
    SOAK_CHUNK=$chunk wrk -t2 -c"$CONNECTIONS" -d"${CHUNK_SECONDS}s" -s "$WORK/keys.lua" "http://127.0.0.1:$PORT/" >"$WORK/wrk-$chunk.txt"
    sent=$(($(envoy_stat http.ingress.downstream_rq_total) - start_total))
    rate=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk-$chunk.txt")
    echo "chunk $chunk: $sent requests so far, $rate req/s, RSS $(($(rss_kb) / 1024)) MiB"
done
flood_seconds=$(($(date +%s) - start_time))
sleep 2
kill "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
rss_after=$(rss_kb)
rss_peak=$(sort -n "$WORK/rss.txt" | tail -1)

canary_after=$(status_of "$CANARY")
allowed=$(prom 'tollgate_rule_allowed{rule="per-key"}')
denied=$(prom 'tollgate_rule_denied{rule="per-key"}')
evicted=$(prom 'tollgate_slots_evicted{}')
overflow=$(prom 'tollgate_slots_overflow{}')
cas=$(prom 'tollgate_cas_exhausted{}')
r2xx=$(envoy_stat http.ingress.downstream_rq_2xx)
r4xx=$(envoy_stat http.ingress.downstream_rq_4xx)
r5xx=$(envoy_stat http.ingress.downstream_rq_5xx)
growth_kb=$((rss_after - rss_before))
peak_growth_kb=$((rss_peak - rss_before))

echo
echo "== soak: key flood through Envoy + Tollgate (slots.capacity 65536, fixed_window 5/h per key)"
printf '%-34s %s\n' "requests with distinct keys" "$sent in ${flood_seconds}s ($((sent / (flood_seconds > 0 ? flood_seconds : 1))) req/s)"
printf '%-34s %s\n' "responses 2xx / 4xx / 5xx (total)" "$r2xx / $r4xx / $r5xx"
printf '%-34s %s\n' "tollgate allowed / denied" "$allowed / $denied"
printf '%-34s %s\n' "slots evicted / overflow" "$evicted / $overflow"
printf '%-34s %s\n' "cas exhausted" "$cas"
printf '%-34s %s\n' "Envoy RSS before / peak / after" "$((rss_before / 1024)) / $((rss_peak / 1024)) / $((rss_after / 1024)) MiB"
printf '%-34s %s\n' "RSS growth (after, peak)" "$((growth_kb / 1024)) MiB, $((peak_growth_kb / 1024)) MiB (bound ${GROWTH_MB} MiB)"
printf '%-34s %s\n' "canary before / after the flood" "$canary_before / $canary_after"

fail=0
if [ "$peak_growth_kb" -gt $((GROWTH_MB * 1024)) ]; then
    echo "soak: FAIL: Envoy RSS grew by $((peak_growth_kb / 1024)) MiB (> ${GROWTH_MB} MiB)" >&2
    fail=1
fi
if [ "$canary_after" != "429" ]; then
    echo "soak: FAIL: the canary key limited before the flood got $canary_after after it" >&2
    fail=1
fi
if [ "${r5xx:-0}" -ne 0 ]; then
    echo "soak: FAIL: $r5xx responses were 5xx" >&2
    fail=1
fi
if grep -Eiq 'panic|wasm trap|RuntimeError|crashed' "$WORK/envoy.log"; then
    echo "soak: FAIL: the Envoy log shows a panic or trap:" >&2
    grep -Ei 'panic|wasm trap|RuntimeError|crashed' "$WORK/envoy.log" | head -5 >&2
    fail=1
fi
[ "$fail" -eq 0 ] && echo "soak: OK"
exit "$fail"
