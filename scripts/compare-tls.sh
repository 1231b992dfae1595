#!/usr/bin/env bash
# TLS to the proxy side by side, in one run on this machine, with one test CA and one server
# certificate: ringgate's plain listener, ringgate's TLS listener (rustls), and squid's https_port
# (Debian's squid-openssl), all with Basic credentials. Figures: new tunnels/s (each a new
# connection: the TLS handshake where there is one, CONNECT, a 16-byte echo, close; so through a
# TLS listener this is also TLS handshakes/s), bulk throughput through 4 tunnels (push and pull),
# and ringgate's RSS per idle tunnel, plain and TLS.
#
# Usage: scripts/compare-tls.sh [quick]    quick: 1 round, smaller runs
# Installs squid-openssl, apache2-utils (htpasswd) and openssl from Debian's packages when missing
# (needs root; squid-openssl replaces the GnuTLS squid, whose https_port is not the one users run).
# Bounded: fixed counts and bytes, every run with timeouts.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=${1:-}
if [ "$quick" = quick ]; then
    rounds=1; tunnels=300; bytes=$((512 << 20)); idle=1000
else
    rounds=3; tunnels=1000; bytes=$((2 << 30)); idle=4000
fi

source scripts/lib/compare.sh
compare_install curl:curl htpasswd:apache2-utils openssl:openssl
if ! { command -v squid >/dev/null || [ -x /usr/sbin/squid ]; } \
    || ! "$(command -v squid || echo /usr/sbin/squid)" -v | grep -q -- --with-openssl; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq squid-openssl
fi
compare_install squid:squid-openssl
cargo build --release -q -p ringgate -p loadtest

rg=127.0.0.1:13180
rg_tls=127.0.0.1:13181
squid_tls=127.0.0.1:13182
rg_idle=127.0.0.1:13183
rg_idle_tls=127.0.0.1:13184
compare_work compare-tls

# A CA and a certificate for localhost (P-256, as a modern deployment would use).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$work/ca.key" -out "$work/ca.pem" -subj "/CN=compare-tls CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/proxy.key" -out "$work/proxy.csr" -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' >"$work/ext"
openssl x509 -req -in "$work/proxy.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/ext" -out "$work/proxy.pem" 2>/dev/null
chmod 644 "$work/proxy.key" "$work/proxy.pem"
htpasswd -b -c -m "$work/users" bench bench-password 2>/dev/null
chmod 644 "$work/users"

target/release/ringgate --listen "$rg" --listen-tls "$rg_tls" --tls-cert "$work/proxy.pem" \
    --tls-key "$work/proxy.key" --htpasswd "$work/users" --allow-dest 127.0.0.0/8 \
    --connect-ports any --log-level error --max-connections $((idle + 1000)) &
pids+=($!)
rg_pid=$!
# squid: one worker, Basic through basic_ncsa_auth, TLS on https_port with the same pair.
conf="$work/squid-tls.conf"
cat >"$conf" <<EOC
https_port ${squid_tls} tls-cert=$work/proxy.pem tls-key=$work/proxy.key
workers 1
auth_param basic program /usr/lib/squid/basic_ncsa_auth $work/users
auth_param basic children 8
acl authed proxy_auth REQUIRED
acl SSL_ports port 1-65535
acl CONNECT method CONNECT
http_access allow authed
http_access deny all
cache deny all
cache_mem 8 MB
access_log none
cache_store_log none
cache_log $work/squid-tls.cache.log
pid_filename $work/squid-tls.pid
coredump_dir $work
max_filedescriptors 16384
shutdown_lifetime 1 second
visible_hostname compare
EOC
squids+=("$conf")
"$squid_bin" -f "$conf"
start_origins

targets=()
for spec in "ringgate=$rg" "ringgate-tls=$rg_tls" "squid-tls=$squid_tls"; do
    wait_port "${spec#*=}" "${spec%%=*}" && targets+=(--proxy "$spec")
done
tls=(--tls ringgate-tls --tls squid-tls --proxy-cacert "$work/ca.pem")

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F); $($squid_bin -v | head -1)"
echo "== new tunnels (TLS handshake where there is one + CONNECT + 16-byte echo + close)"
timeout 900 target/release/loadtest "${origins[@]}" "${tls[@]}" tunnels "${targets[@]}" \
    --proxy-user bench:bench-password --clients 16 --tunnels "$tunnels" --rounds "$rounds" || true
for mode in push pull; do
    echo "== throughput ($mode), 4 tunnels"
    timeout 900 target/release/loadtest "${origins[@]}" "${tls[@]}" throughput "${targets[@]}" \
        --proxy-user bench:bench-password --mode "$mode" --tunnels 4 --bytes "$bytes" \
        --rounds "$rounds" || true
done
echo "== ringgate's RSS per idle tunnel: plain, then TLS (a fresh proxy each)"
for kind in plain tls; do
    if [ "$kind" = plain ]; then addr=$rg_idle; else addr=$rg_idle_tls; fi
    target/release/ringgate --listen "$rg_idle" --listen-tls "$rg_idle_tls" \
        --tls-cert "$work/proxy.pem" --tls-key "$work/proxy.key" --htpasswd "$work/users" \
        --allow-dest 127.0.0.0/8 --connect-ports any --log-level error \
        --max-connections $((idle + 1000)) &
    idle_pid=$!
    pids+=($idle_pid)
    wait_port "$addr" "ringgate ($kind)"
    extra=()
    [ "$kind" = tls ] && extra=(--tls idle --proxy-cacert "$work/ca.pem")
    timeout 300 target/release/loadtest "${origins[@]}" "${extra[@]}" idle --proxy "$addr" \
        --pid "$idle_pid" --proxy-user bench:bench-password --tunnels "$idle" || true
    kill "$idle_pid" 2>/dev/null || true
    wait "$idle_pid" 2>/dev/null || true
done
echo "ringgate (main proxy) RSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$rg_pid/status)"
