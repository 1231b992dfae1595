#!/usr/bin/env bash
# Plain-HTTP forwarding under load, side by side in one run: small GETs on kept-alive connections
# through ringgate (without and with Basic auth) and straight to the same built-in origin.
# Bounded: ROUNDS × CLIENTS × REQUESTS per target.
# Usage: scripts/forward-load.sh [REQUESTS_PER_CLIENT] [ROUNDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
# The built-in origins listen on loopback, on ports other than 443: lift the safe defaults for them.
bench_policy="--allow-dest 127.0.0.0/8 --connect-ports any"
requests=${1:-20000}
rounds=${2:-3}
clients=${3:-4}
cargo build --release -q -p ringgate -p loadtest
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
target/release/ringgate --listen 127.0.0.1:13132 --log-level warn $bench_policy &
pids+=($!)
target/release/ringgate --listen 127.0.0.1:13133 --log-level warn $bench_policy --user bench:bench-password &
pids+=($!)
sleep 1
echo "machine: $(nproc) cores, $(uname -r); $(date -u +%F)"
target/release/loadtest forward --requests "$requests" --rounds "$rounds" --clients "$clients" \
    --proxy-user bench:bench-password --proxy open=127.0.0.1:13132 --proxy basic=127.0.0.1:13133
