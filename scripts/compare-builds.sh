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
compare_sizes "${2:-}"
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
basic_scenarios "$user" "$pass"
