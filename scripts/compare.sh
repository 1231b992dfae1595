#!/usr/bin/env bash
# ringgate side by side with squid (one worker, and as many workers as ringgate) and tinyproxy, in
# one run on this machine: all with Basic auth for the same user (squid and tinyproxy cache or keep
# it as ringgate does), no cache, no access log, listening on loopback. Every loadtest scenario
# measures every proxy once per round, interleaved (A, B, C, A, B, C…), and prints medians, min–max
# and the ratio to the first target (direct where the scenario has it, else ringgate).
#
# Usage: scripts/compare.sh [quick]      quick: 1 round each and smaller runs (a smoke test)
# Installs squid, tinyproxy and apache2-utils from Debian's packages when missing (needs root).
# Bounded: every scenario has a fixed count of runs and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/compare.sh

quick=${1:-}
compare_sizes "$quick"

need=()
command -v squid >/dev/null || [ -x /usr/sbin/squid ] || need+=(squid)
command -v tinyproxy >/dev/null || need+=(tinyproxy)
command -v htpasswd >/dev/null || need+=(apache2-utils)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}"
fi
squid_bin=$(command -v squid || echo /usr/sbin/squid)
cargo build --release -q -p ringgate -p loadtest

user=bench
pass=bench-password
workers=$(nproc)
work=$(mktemp -d /tmp/ringgate-compare.XXXXXX)
chmod 777 "$work"
htpasswd -bcm "$work/users" "$user" "$pass" 2>/dev/null
chmod 644 "$work/users"

ringgate=127.0.0.1:13140
squid1=127.0.0.1:13141
squidn=127.0.0.1:13142
tinyproxy=127.0.0.1:13143

pids=()
squids=()
origins_pid=
cleanup() {
    for conf in "${squids[@]}"; do "$squid_bin" -f "$conf" -k shutdown 2>/dev/null || true; done
    kill "${pids[@]}" $origins_pid 2>/dev/null || true
    sleep 1
    for conf in "${squids[@]}"; do
        pid=$(cat "${conf%.conf}.pid" 2>/dev/null || true)
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

squid_conf() { # port workers
    local conf="$work/squid-$1.conf"
    cat >"$conf" <<EOF
http_port 127.0.0.1:$1
workers $2
auth_param basic program /usr/lib/squid/basic_ncsa_auth $work/users
auth_param basic children 8
auth_param basic realm bench
auth_param basic credentialsttl 2 hours
acl authed proxy_auth REQUIRED
http_access allow authed
http_access deny all
cache deny all
cache_mem 8 MB
access_log none
cache_store_log none
cache_log $work/squid-$1.cache.log
pid_filename $work/squid-$1.pid
coredump_dir $work
max_filedescriptors 16384
shutdown_lifetime 1 second
visible_hostname compare
EOF
    echo "$conf"
}

target/release/ringgate --listen "$ringgate" --user "$user:$pass" --allow-dest 127.0.0.0/8 \
    --connect-ports any --log-level warn &
ringgate_pid=$!
pids+=($ringgate_pid)
for spec in "${squid1#*:} 1" "${squidn#*:} $workers"; do
    # shellcheck disable=SC2086
    conf=$(squid_conf $spec)
    squids+=("$conf")
    "$squid_bin" -f "$conf"
done
cat >"$work/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port ${tinyproxy#*:}
Listen 127.0.0.1
Timeout 600
MaxClients 4096
BasicAuth $user $pass
LogLevel Critical
LogFile "$work/tinyproxy.log"
PidFile "$work/tinyproxy.pid"
EOF
tinyproxy -d -c "$work/tinyproxy.conf" &
tinyproxy_pid=$!
pids+=($tinyproxy_pid)

start_origins

targets=(--proxy "ringgate=$ringgate")
wait_port "$ringgate" ringgate
if wait_port "$squid1" squid; then targets+=(--proxy "squid=$squid1"); fi
if wait_port "$squidn" "squid-$workers"; then targets+=(--proxy "squid-${workers}w=$squidn"); fi
if wait_port "$tinyproxy" tinyproxy; then targets+=(--proxy "tinyproxy=$tinyproxy"); fi

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F); $($squid_bin -v | head -1); $(tinyproxy -v 2>&1)"
echo "ringgate workers: $workers; every proxy: Basic auth ($user), no cache, no access log"
creds=(--proxy-user "$user:$pass")
basic_scenarios "$user" "$pass"

# Idle tunnels: each proxy holds the same number of authenticated tunnels; its RSS is read at half
# and at all of them (one process each: ringgate, squid's worker kid, tinyproxy), then every tunnel
# is proven. Run one proxy at a time (the tunnels stay open until the proof).
idle_tunnels=$([ "$quick" = quick ] && echo 1000 || echo 4000)
squid_master=$(cat "$work/squid-${squid1#*:}.pid" 2>/dev/null || true)
squid_kid=""
if [ -n "$squid_master" ]; then squid_kid=$(pgrep -P "$squid_master" | head -1 || true); fi
for spec in "ringgate $ringgate $ringgate_pid" "squid $squid1 ${squid_kid:-}" "tinyproxy $tinyproxy $tinyproxy_pid"; do
    # shellcheck disable=SC2086
    set -- $spec
    [ -n "${3:-}" ] || { echo "idle: no process found for $1"; continue; }
    echo "idle through $1 (pid $3):"
    target/release/loadtest "${origins[@]}" idle --proxy "$2" --pid "$3" "${creds[@]}" \
        --tunnels "$idle_tunnels" || true
done
