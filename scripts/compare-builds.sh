#!/usr/bin/env bash
# This tree's ringgate beside an earlier commit's, in one run on this machine: the same flags, the
# same user, one loadtest (this tree's) measuring both, interleaved, with the direct connection
# first where a scenario has it. For before/after figures of a change (issue 14's restructure,
# issue 20's per-connection work) without the noise of two runs minutes apart.
#
# Usage: scripts/compare-builds.sh REV [quick]
#   REV: any commit; its ringgate is built in a git worktree under target/compare-builds/ (kept
#        between runs, so a second run of the same REV builds nothing).
#   quick: 1 round each and smaller runs.
# Only flags both builds know are passed: --listen, --user, --allow-dest, --connect-ports,
# --log-level. Loopback only; every scenario has a fixed count of runs and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/compare.sh

rev=${1:?usage: scripts/compare-builds.sh REV [quick]}
quick=${2:-}
if [ "$quick" = quick ]; then
    rounds=1; bytes=$((256 << 20)); tunnels=500; requests=5000
else
    rounds=3; bytes=$((1 << 30)); tunnels=2000; requests=20000
fi
sha=$(git rev-parse --short=12 "$rev^{commit}")
here=$(git rev-parse --short=12 HEAD)
git diff --quiet HEAD -- src Cargo.toml Cargo.lock || here="$here+changes"

tree=target/compare-builds/$sha
if [ ! -x "$tree/target/release/ringgate" ]; then
    [ -d "$tree/src" ] || git worktree add --force --detach "$tree" "$sha" >/dev/null
    (cd "$tree" && cargo build --release -q --bin ringgate)
fi
cargo build --release -q -p ringgate -p loadtest

user=bench
pass=bench-password
compare_work compare-builds
now=127.0.0.1:13150
then=127.0.0.1:13151
flags=(--user "$user:$pass" --allow-dest 127.0.0.0/8 --connect-ports any --log-level warn)
target/release/ringgate --listen "$now" "${flags[@]}" &
pids+=($!)
"$tree/target/release/ringgate" --listen "$then" "${flags[@]}" &
pids+=($!)
start_origins
targets=()
wait_port "$then" "ringgate $sha" && targets+=(--proxy "before=$then")
wait_port "$now" "ringgate $here" && targets+=(--proxy "after=$now")

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F); before = $sha, after = $here"
creds=(--proxy-user "$user:$pass")
lt() { target/release/loadtest "${origins[@]}" "$@" "${targets[@]}" || true; }
lt throughput "${creds[@]}" --bytes "$bytes" --rounds "$((rounds + 2))"
lt throughput "${creds[@]}" --mode both --tunnels 4 --bytes "$bytes" --rounds "$((rounds + 2))"
lt tunnels "${creds[@]}" --tunnels "$tunnels" --rounds "$rounds"
lt challenges --requests "$requests" --rounds "$rounds"
lt challenges --proxy-user "$user:stale-$pass" --requests "$requests" --rounds "$rounds"
lt forward "${creds[@]}" --requests "$requests" --rounds "$rounds"
lt latency "${creds[@]}" --pings "$((requests / 2))" --rounds "$rounds"
