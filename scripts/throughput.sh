#!/usr/bin/env bash
# One-tunnel throughput of ringgate (splice and copy relays) against a direct loopback connection,
# measured side by side in one run by the project's load generator. Bounded: ROUNDS × BYTES.
# Usage: scripts/throughput.sh [BYTES] [ROUNDS] [PIPE_SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
# The built-in origins listen on loopback, on ports other than 443: lift the safe defaults for them.
bench_policy="--allow-dest 127.0.0.0/8 --connect-ports any"
bytes=${1:-1073741824}
rounds=${2:-5}
pipe=${3:-262144}
cargo build --release -q -p ringgate -p loadtest
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
start() { # name relay port
    target/release/ringgate --listen "127.0.0.1:$3" --relay "$2" --pipe-size "$pipe" --log-level warn $bench_policy &
    pids+=($!)
}
start splice splice 13128
start copy copy 13129
sleep 1
echo "machine: $(nproc) cores, $(uname -r); pipe_size=$pipe; $(date -u +%F)"
target/release/loadtest throughput --bytes "$bytes" --rounds "$rounds" \
    --proxy splice=127.0.0.1:13128 --proxy copy=127.0.0.1:13129
