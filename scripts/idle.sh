#!/usr/bin/env bash
# Memory per idle authenticated tunnel: ringgate holds K tunnels opened by `loadtest idle` (from 16
# source addresses, in as many client processes as their fd limit needs) to the holding origin of
# a separate `loadtest serve`; it reads the proxy's RSS and threads at K/2 and K and proves every
# tunnel works afterwards. Bounded: K tunnels (default 9000: ringgate holds two fds per tunnel and
# the hard fd limit here is 20,000).
# Usage: scripts/idle.sh [TUNNELS]
set -euo pipefail
cd "$(dirname "$0")/.."
tunnels=${1:-9000}
cargo build --release -q -p ringgate -p loadtest
work=$(mktemp -d /tmp/ringgate-idle.XXXXXX)
target/release/loadtest serve --seconds 600 >"$work/origins" &
origins_pid=$!
target/release/ringgate --listen 127.0.0.1:13160 --log-level error --user bench:bench-password \
    --allow-dest 127.0.0.0/8 --connect-ports any --max-connections $((tunnels + 100)) &
pid=$!
trap 'kill $pid $origins_pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/origins" ] && break; sleep 0.1; done
sleep 1
echo "machine: $(nproc) cores, $(uname -r); $(date -u +%F)"
target/release/loadtest --origins "$(head -1 "$work/origins")" idle --proxy 127.0.0.1:13160 \
    --pid "$pid" --proxy-user bench:bench-password --tunnels "$tunnels"
