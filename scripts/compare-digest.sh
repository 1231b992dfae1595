#!/usr/bin/env bash
# Digest side by side, in one run on this machine: ringgate with Basic, ringgate with Digest (MD5,
# as squid has only MD5; and with its default SHA-256 + MD5 challenges), squid with Basic and squid
# with Digest (digest_file_auth). Two figures, every target measured once per round, interleaved:
#   - 407s/s on kept-alive connections without credentials (a Digest 407 carries a fresh nonce);
#   - new authenticated tunnels/s (CONNECT + 16-byte echo + close), each client learning a nonce
#     once and then reusing it with nc counting up, as a long-running client does (squid's
#     nonce_max_count is raised so that it does not call every 50th use stale).
#
# Usage: scripts/compare-digest.sh [quick]    quick: 1 round, smaller runs
# Installs squid and apache2-utils from Debian's packages when missing (needs root).
# Bounded: fixed counts, every run with timeouts.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=${1:-}
if [ "$quick" = quick ]; then
    rounds=1; tunnels=500; requests=5000
else
    rounds=3; tunnels=2000; requests=20000
fi

need=()
command -v squid >/dev/null || [ -x /usr/sbin/squid ] || need+=(squid)
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
realm=bench
work=$(mktemp -d /tmp/ringgate-compare-digest.XXXXXX)
chmod 777 "$work"
htpasswd -bcm "$work/users" "$user" "$pass" 2>/dev/null
printf '%s\n' "$pass" | target/release/ringgate passwd --password-stdin --digest --realm "$realm" \
    "$work/digest" "$user" 2>/dev/null
chmod 644 "$work/users" "$work/digest"

rg_basic=127.0.0.1:13140
squid_basic=127.0.0.1:13141
rg_digest=127.0.0.1:13144
squid_digest=127.0.0.1:13145
rg_digest2=127.0.0.1:13146

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

squid_conf() { # port auth-lines
    local conf="$work/squid-$1.conf"
    cat >"$conf" <<EOF
http_port 127.0.0.1:$1
workers 1
$2
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

wait_port() { # host:port name
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$2 did not start on $1" >&2
    return 1
}

common=(--allow-dest 127.0.0.0/8 --connect-ports any --log-level warn --realm "$realm")
target/release/ringgate --listen "$rg_basic" --htpasswd "$work/users" "${common[@]}" &
pids+=($!)
target/release/ringgate --listen "$rg_digest" --htdigest "$work/digest" \
    --digest-algorithms MD5 "${common[@]}" &
pids+=($!)
target/release/ringgate --listen "$rg_digest2" --htdigest "$work/digest" "${common[@]}" &
pids+=($!)
basic_auth="auth_param basic program /usr/lib/squid/basic_ncsa_auth $work/users
auth_param basic children 8
auth_param basic realm $realm
auth_param basic credentialsttl 2 hours"
digest_auth="auth_param digest program /usr/lib/squid/digest_file_auth -c $work/digest
auth_param digest children 8
auth_param digest realm $realm
auth_param digest nonce_max_count 100000000
auth_param digest nonce_max_duration 30 minutes"
for spec in "${squid_basic#*:}|$basic_auth" "${squid_digest#*:}|$digest_auth"; do
    conf=$(squid_conf "${spec%%|*}" "${spec#*|}")
    squids+=("$conf")
    "$squid_bin" -f "$conf"
done

target/release/loadtest serve --seconds 3600 >"$work/origins" &
origins_pid=$!
for _ in $(seq 50); do [ -s "$work/origins" ] && break; sleep 0.1; done
origins=(--origins "$(head -1 "$work/origins")")

targets=()
for spec in "ringgate-basic=$rg_basic" "ringgate-md5=$rg_digest" "ringgate-sha=$rg_digest2" \
    "squid-basic=$squid_basic" "squid-md5=$squid_digest"; do
    wait_port "${spec#*=}" "${spec%%=*}" && targets+=(--proxy "$spec")
done

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F); $($squid_bin -v | head -1)"
echo "ringgate-md5: Digest MD5 only; ringgate-sha: SHA-256 then MD5 challenges (default; the client answers SHA-256)"
lt() { target/release/loadtest "${origins[@]}" "$@" "${targets[@]}" || true; }
lt challenges --requests "$requests" --rounds "$rounds"
lt tunnels --proxy-user "$user:$pass" --digest ringgate-md5 --digest ringgate-sha \
    --digest squid-md5 --clients 32 --tunnels "$((tunnels / 8))" --rounds "$rounds"
