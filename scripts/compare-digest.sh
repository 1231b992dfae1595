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

source scripts/lib/compare.sh
compare_install squid:squid htpasswd:apache2-utils
cargo build --release -q -p ringgate -p loadtest

user=bench
pass=bench-password
realm=bench
compare_work compare-digest
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
squid_start "${squid_basic#*:}" "$basic_auth"
squid_start "${squid_digest#*:}" "$digest_auth"
start_origins

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
