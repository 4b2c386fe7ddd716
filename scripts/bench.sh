#!/usr/bin/env bash
# `make bench` (after `make build` and `cargo build --release -p tollgate-e2e --bins`; builds the
# release tollgate-store itself):
# Tollgate vs Envoy alone vs Envoy's native local_ratelimit, side by side, then the flood of
# 1,000,000 distinct keys; writes docs/benchmarks.md. The runner is tests/src/bin/bench/; settings
# are BENCH_* variables (see its main.rs), e.g. `BENCH_DURATION=2 BENCH_ROUNDS=1 BENCH_DOC=- make
# bench` for a quick look. `scripts/bench.sh --flood-only` (`make soak`): the flood alone.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
  echo "bench: wrk is not installed: run \`make setup\` (installs the Debian package wrk)" >&2
  exit 1
fi
if [ ! -x .venv/bin/envoy ]; then
  echo "bench: Envoy not found at .venv/bin/envoy: run \`make setup\`" >&2
  exit 1
fi
if [ ! -f target/wasm32-wasip1/release/tollgate.wasm ]; then
  echo "bench: target/wasm32-wasip1/release/tollgate.wasm not found: run \`make build\`" >&2
  exit 1
fi
for bin in bench mock-llm; do
  if [ ! -x "target/release/$bin" ]; then
    echo "bench: target/release/$bin not found: run \`cargo build --release -p tollgate-e2e --bins\` (or \`make bench\`)" >&2
    exit 1
  fi
done
if [ "${1:-}" = "--flood-only" ]; then
  exec target/release/bench "$@"
fi
if ! command -v redis-server >/dev/null; then
  echo "bench: redis-server is not installed (the global cases need it): run \`make setup\`" >&2
  exit 1
fi
# The global cases start target/release/tollgate-store (found next to target/release/bench),
# which `cargo build --release -p tollgate-e2e --bins` does not build: build it here, so the
# bench never runs a stale store (the harness also refuses one older than its sources).
cargo build --release -q -p tollgate-store --bin tollgate-store
# The reference filter (bench/probe/): the host calls alone, for the "reference filter" rows.
cargo build --release -q --target wasm32-wasip1 --manifest-path bench/probe/Cargo.toml --target-dir target/probe
if ! command -v taskset >/dev/null; then
  echo "bench: taskset not found (util-linux): Envoy and wrk will share CPUs, figures will be noisier" >&2
fi

exec target/release/bench "$@"
