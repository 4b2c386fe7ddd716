#!/usr/bin/env bash
# The pure core's unit tests compiled to wasm32-wasip1 and run under Node's WASI:
# the filter runs on a 32-bit target in Envoy, so its arithmetic is tested there too.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "test-wasm: node not found: run 'apt-get install -y nodejs' (Node >= 18)" >&2; exit 1; }
echo "== pure core tests on wasm32-wasip1 (Node WASI) =="
CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $(pwd)/scripts/wasi-run.mjs" \
  cargo test --target wasm32-wasip1 -p tollgate-core --lib -- --test-threads=1
