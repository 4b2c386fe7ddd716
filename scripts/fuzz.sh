#!/usr/bin/env bash
# Fuzz the filter's pure core with cargo-fuzz (libFuzzer): every target of fuzz/ (or the ones
# named as arguments) for FUZZ_SECONDS each (default 60), then minimize each corpus back into
# fuzz/corpus/<target>/ and print, per target: seconds, runs, runs/s, coverage (libFuzzer's
# `cov` edges and `ft` features), corpus size and crashes. A crashing input is saved under
# fuzz/artifacts/<target>/ by libFuzzer; the script then exits 1. See docs/hardening.md.
#
#   scripts/fuzz.sh                     # all targets, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh sse algorithm
#
# Builds are optimized with debug assertions and overflow checks on (`-O -a`): an integer
# overflow in the core is a crash, as in the tests.
#
# Environment:
#   FUZZ_SECONDS        time budget per target (default 60)
#   FUZZ_SANITIZER      none (default) | address | ... -- `none` builds on the stable toolchain
#                       (the core has no `unsafe`, so ASan adds little but halves the speed);
#                       any sanitizer needs nightly flags (-Zsanitizer), so the script sets
#                       RUSTC_BOOTSTRAP=1 for it: that is how it runs on this machine's one
#                       stable toolchain.
#   FUZZ_UPDATE_CORPUS  1 (default): merge what was found into fuzz/corpus/<target>/ (minimized
#                       with -set_cover_merge=1, inputs of at most FUZZ_MAX_LEN bytes); 0: leave
#                       it alone
#   FUZZ_MAX_LEN        longest input tried (default 4096)
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${FUZZ_SECONDS:-60}"
SANITIZER="${FUZZ_SANITIZER:-none}"
UPDATE="${FUZZ_UPDATE_CORPUS:-1}"
MAX_LEN="${FUZZ_MAX_LEN:-4096}"

if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
    echo "FUZZ_SECONDS must be a positive integer, got '$SECONDS_PER_TARGET'" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found: installing it (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi

if [ "$SANITIZER" != "none" ]; then
    # -Zsanitizer is a nightly flag; the machine has one stable toolchain.
    export RUSTC_BOOTSTRAP=1
fi

if [ "$#" -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo fuzz list)
fi

echo "== building ${#TARGETS[@]} fuzz target(s), sanitizer: $SANITIZER"
cargo fuzz build -O -a --sanitizer "$SANITIZER"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
SUMMARY="$WORK/summary.txt"
printf '%-11s %5s %11s %8s %6s %7s %13s %8s\n' target secs runs runs/s cov ft corpus crashes >"$SUMMARY"
CRASHED=0

for t in "${TARGETS[@]}"; do
    corpus="fuzz/corpus/$t"
    artifacts="fuzz/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    before=$(find "$corpus" -type f | wc -l)
    found="$WORK/$t-found"
    mkdir -p "$found"
    log="$WORK/$t.log"
    marker="$WORK/$t.start"
    touch "$marker"
    echo "== $t: ${SECONDS_PER_TARGET}s (corpus: $before files)"
    start=$(date +%s)
    status=0
    # New inputs go to the scratch directory; the committed corpus is read as seeds.
    cargo fuzz run -O -a --sanitizer "$SANITIZER" "$t" "$found" "$corpus" -- \
        -max_total_time="$SECONDS_PER_TARGET" -max_len="$MAX_LEN" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    secs=$(($(date +%s) - start))
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
    # libFuzzer names what it saves crash-*, leak-*, timeout-*, oom-*, slow-unit-*.
    crashes=$(find "$artifacts" -type f -newer "$marker" \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' -o -name 'slow-unit-*' \) | wc -l)
    if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        CRASHED=1
        echo "!! $t: libFuzzer exited $status; new artifacts:"
        find "$artifacts" -type f -newer "$marker" ! -name last-crash.log | sed 's/^/   /'
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -5 | sed 's/^/   /' || true
        cp "$log" "$artifacts/last-crash.log"
    fi
    after="$before"
    if [ "$UPDATE" = "1" ]; then
        merged="$WORK/$t-merged"
        mkdir -p "$merged"
        # Keep only inputs that add coverage (libFuzzer's merge), from the old corpus and the
        # new finds, so the committed corpus stays small.
        # -set_cover_merge with -use_counters=0 keeps a smallest set of inputs that covers the
        # same edges (hit-count variety is found again in seconds): a few hundred files, not
        # thousands. Older libFuzzers without it fall back to -merge=1.
        if cargo fuzz run -O -a --sanitizer "$SANITIZER" "$t" "$merged" "$corpus" "$found" -- \
            -set_cover_merge=1 -use_counters=0 -max_len="$MAX_LEN" -timeout=10 >"$WORK/$t.merge.log" 2>&1 ||
            cargo fuzz run -O -a --sanitizer "$SANITIZER" "$t" "$merged" "$corpus" "$found" -- \
                -merge=1 -max_len="$MAX_LEN" -timeout=10 >"$WORK/$t.merge.log" 2>&1; then
            if [ "$(find "$merged" -type f | wc -l)" -gt 0 ]; then
                # Seeds (seed-*) are kept whatever their coverage: they document the formats.
                # libFuzzer names merged files by the SHA-1 of their content: skip the seeds'.
                seeds="$(find "$corpus" -type f -name 'seed-*' -exec sha1sum {} + | cut -d' ' -f1)"
                find "$corpus" -type f ! -name 'seed-*' -delete
                for f in "$merged"/*; do
                    grep -qx "$(basename "$f")" <<<"$seeds" || cp "$f" "$corpus"/
                done
            fi
        else
            echo "   (merge failed, corpus left as it was; see below)"
            tail -5 "$WORK/$t.merge.log" | sed 's/^/   /'
        fi
        after=$(find "$corpus" -type f | wc -l)
    fi
    printf '%-11s %5s %11s %8s %6s %7s %13s %8s\n' "$t" "$secs" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
        "$before->$after" "$crashes" >>"$SUMMARY"
done

echo
echo "== fuzz summary (sanitizer $SANITIZER, ${SECONDS_PER_TARGET}s per target)"
cat "$SUMMARY"
if [ "$CRASHED" -ne 0 ]; then
    echo "crashes found: inputs under fuzz/artifacts/<target>/; replay one with"
    echo "  cargo run --manifest-path fuzz/Cargo.toml --no-default-features --example replay -- TARGET FILE"
    exit 1
fi
