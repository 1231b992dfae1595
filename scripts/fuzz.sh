#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for a bounded time each, from its committed seeds
# (fuzz/seeds/<target>) and the working corpus it grows (fuzz/corpus/<target>, not committed),
# and prints the executions per target. A crash, a failed assertion or a leak fails the script;
# the input that did it is in fuzz/artifacts/<target>/ (replay: cargo fuzz run <target> <file>).
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 20         # CI's short pass
#   scripts/fuzz.sh 600 ntlm   # one target, longer
#
# cargo fuzz (libFuzzer with AddressSanitizer) needs `-Zsanitizer`, an unstable flag: on this
# stable toolchain RUSTC_BOOTSTRAP=1 allows it. cargo-fuzz itself is installed from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz@0.13.2
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
# Built up front (all of them when none is named), so the timed runs fuzz rather than compile.
if [ $# -eq 0 ]; then
    cargo fuzz build --fuzz-dir fuzz -O
else
    for t in "${targets[@]}"; do cargo fuzz build --fuzz-dir fuzz -O "$t"; done
fi
failed=()
printf '%-16s %12s %8s %10s\n' target executions exec/s corpus
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    log=$(mktemp)
    if cargo fuzz run --fuzz-dir fuzz -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$secs" -max_len=16384 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        runs=$(grep -oP '^stat::number_of_executed_units:\s*\K\d+' "$log" || echo '?')
        rate=$(grep -oP '^stat::average_exec_per_sec:\s*\K\d+' "$log" || echo '?')
        units=$(ls "fuzz/corpus/$t" | wc -l)
        printf '%-16s %12s %8s %10s\n' "$t" "$runs" "$rate" "$units"
    else
        printf '%-16s FAILED\n' "$t"
        grep -E 'panicked|ERROR|SUMMARY|Test unit written|artifact' "$log" | head -20 >&2
        failed+=("$t")
    fi
    rm -f "$log"
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets failed: ${failed[*]}" >&2
    exit 1
fi
