#!/usr/bin/env bash
# Memory per idle authenticated tunnel: ringgate holds K tunnels opened by `loadtest idle` (from 16
# source addresses), which reads the proxy's RSS and threads at K/2 and K and proves every tunnel
# works afterwards. Bounded: K tunnels (default 9000, what one process's 20,000 fds allow here).
# Usage: scripts/idle.sh [TUNNELS]
set -euo pipefail
cd "$(dirname "$0")/.."
tunnels=${1:-9000}
cargo build --release -q -p ringgate -p loadtest
target/release/ringgate --listen 127.0.0.1:13160 --log-level warn --user bench:bench-password \
    --allow-dest 127.0.0.0/8 --connect-ports any --max-connections 12000 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
sleep 1
echo "machine: $(nproc) cores, $(uname -r); $(date -u +%F)"
target/release/loadtest idle --proxy 127.0.0.1:13160 --pid "$pid" --proxy-user bench:bench-password \
    --tunnels "$tunnels"
