#!/usr/bin/env bash
# Where the proxy's CPU goes per operation: one ringgate (Basic, default workers) under one bounded
# loadtest scenario, its CPU time read from /proc before and after (µs per operation), and
# `perf record -g` over the run: the kernel/user split, the kernel's entry points (children, so
# they overlap) and the hottest symbols. Loopback only; the load stops by itself.
#
#   scripts/profile.sh [tunnels|forward|challenges] [CLIENTS] [PER-CLIENT]
#   scripts/profile.sh tunnels 32 1500       # the default
# perf slows the proxy somewhat: compare µs per operation between runs of this script, not with
# scripts/compare.sh's figures. Installs linux-perf from Debian's packages when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-tunnels} clients=${2:-32} each=${3:-1500}
command -v perf >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf; }
cargo build --release --locked -q -p ringgate -p loadtest
dir=$(mktemp -d /tmp/ringgate-profile.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/loadtest serve --seconds 600 >"$dir/origins" &
pids+=($!)
target/release/ringgate --listen "127.0.0.1:$port" --user u:p --allow-dest 127.0.0.0/8 \
    --connect-ports any --log-level warn &
rg=$!
pids+=($rg)
for _ in $(seq 100); do
    [ -s "$dir/origins" ] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
case $scenario in
    tunnels) args=(tunnels --proxy-user u:p --tunnels "$each") ;;
    forward) args=(forward --proxy-user u:p --requests "$each") ;;
    challenges) args=(challenges --requests "$each") ;;
    *) echo "scenario: tunnels, forward or challenges" >&2; exit 2 ;;
esac
ticks() { awk '{print $14 + $15}' "/proc/$rg/stat"; }
hz=$(getconf CLK_TCK)
perf record -F 1999 -g -o "$dir/perf.data" -p "$rg" >/dev/null 2>&1 &
perf_pid=$!
sleep 0.5
before=$(ticks)
target/release/loadtest --origins "$(head -1 "$dir/origins")" "${args[@]}" \
    --proxy "ringgate=127.0.0.1:$port" --clients "$clients" --rounds 1 | grep -v '^{'
after=$(ticks)
kill -INT "$perf_pid"
wait "$perf_pid" 2>/dev/null || true
ops=$((clients * each))
echo "proxy CPU: $(( (after - before) * 1000000 / hz / ops )) µs per operation ($ops, under perf)"
echo "== by binary"
perf report -i "$dir/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | head -5
echo "== kernel entry points and ringgate (children: each includes what it calls)"
perf report -i "$dir/perf.data" --children --sort sym --stdio -g none 2>/dev/null | grep '%' |
    grep -E 'io_(accept|connect|send|recv|read|write|poll_task_func)\b|__x64_sys_(splice|shutdown|socket|close|ioctl|setsockopt)|net_rx_action|__schedule|ringgate::' |
    head -20
echo "== hottest symbols (self)"
perf report -i "$dir/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep '%' | head -12
