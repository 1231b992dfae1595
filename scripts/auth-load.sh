#!/usr/bin/env bash
# What proxy authentication costs under load, side by side in one run: new tunnels/s through
# ringgate without auth and with Basic auth (credential-cache hits), against a direct connection;
# then 407s/s on kept-alive connections. Bounded: ROUNDS × CLIENTS × COUNT per target.
# Usage: scripts/auth-load.sh [TUNNELS_PER_CLIENT] [CHALLENGES_PER_CLIENT] [ROUNDS] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
# The built-in origins listen on loopback, on ports other than 443: lift the safe defaults for them.
bench_policy="--allow-dest 127.0.0.0/8 --connect-ports any"
tunnels=${1:-2000}
challenges=${2:-20000}
rounds=${3:-3}
clients=${4:-4}
cargo build --release -q -p ringgate -p loadtest
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
target/release/ringgate --listen 127.0.0.1:13130 --log-level warn $bench_policy &
pids+=($!)
target/release/ringgate --listen 127.0.0.1:13131 --log-level warn $bench_policy --user bench:bench-password &
pids+=($!)
sleep 1
echo "machine: $(nproc) cores, $(uname -r); $(date -u +%F)"
target/release/loadtest tunnels --tunnels "$tunnels" --rounds "$rounds" --clients "$clients" \
    --proxy-user bench:bench-password --proxy open=127.0.0.1:13130 --proxy basic=127.0.0.1:13131
target/release/loadtest challenges --requests "$challenges" --rounds "$rounds" --clients "$clients" \
    --proxy basic=127.0.0.1:13131
