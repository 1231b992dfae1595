#!/usr/bin/env bash
# Negotiate (Kerberos through SPNEGO) side by side, in one run on this machine, against one MIT
# realm on loopback (krb5kdc in the foreground, rootless files in a temporary directory) and one
# keytab: ringgate accepting tokens in-process (GSS-API on its verifier threads) and squid with
# its negotiate_kerberos_auth helpers. Figure: Negotiate handshakes/s, each a new connection with
# CONNECT + a fresh token (a new authenticator from one service ticket, as curl makes per
# connection) → 200 + 16-byte echo + close. Both proxies keep a replay cache.
#
# Usage: scripts/compare-negotiate.sh [quick]    quick: 1 round, smaller runs
# Installs squid, krb5-kdc, krb5-admin-server and krb5-user from Debian's packages when missing
# (needs root). Bounded: fixed counts, every run with timeouts.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=${1:-}
if [ "$quick" = quick ]; then rounds=1; tunnels=300; else rounds=3; tunnels=1000; fi

source scripts/lib/compare.sh
compare_install curl:curl squid:squid krb5kdc:krb5-kdc kadmin.local:krb5-admin-server kinit:krb5-user
cargo build --release -q -p ringgate -p loadtest

realm=RG.BENCH
kdc_port=13173
rg=127.0.0.1:13170
squid_neg=127.0.0.1:13171
compare_work compare-negotiate
cat >"$work/krb5.conf" <<EOC
[libdefaults]
    default_realm = $realm
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
[realms]
    $realm = {
        kdc = 127.0.0.1:$kdc_port
    }
EOC
cat >"$work/kdc.conf" <<EOC
[kdcdefaults]
    kdc_ports = $kdc_port
    kdc_tcp_ports = $kdc_port
[realms]
    $realm = {
        database_name = $work/principal
        key_stash_file = $work/stash
        acl_file = $work/kadm5.acl
    }
[logging]
    kdc = FILE:$work/kdc.log
EOC
: >"$work/kadm5.acl"
export KRB5_CONFIG=$work/krb5.conf KRB5_KDC_PROFILE=$work/kdc.conf KRB5CCNAME=$work/cc
kdb5_util create -s -r "$realm" -P master >/dev/null
kadmin.local -q "addprinc -pw benchpw bench" >/dev/null 2>&1
kadmin.local -q "addprinc -randkey HTTP/localhost" >/dev/null 2>&1
kadmin.local -q "ktadd -k $work/http.keytab HTTP/localhost" >/dev/null
# squid's helpers run as squid's own user: they read the keytab and write their replay cache.
chmod 644 "$work/http.keytab" "$work/krb5.conf"
mkdir -m 777 "$work/rc-ringgate" "$work/rc-squid"
krb5kdc -n -P "$work/kdc.pid" &
pids+=($!)
for _ in $(seq 100); do echo benchpw | kinit bench >/dev/null 2>&1 && break; sleep 0.1; done
klist -s || { echo "kinit failed: $(cat "$work/kdc.log")" >&2; exit 1; }

target/release/ringgate --listen "$rg" --keytab "$work/http.keytab" \
    --negotiate-rcache-dir "$work/rc-ringgate" --allow-dest 127.0.0.0/8 --connect-ports any \
    --log-level warn &
pids+=($!)
KRB5RCACHEDIR=$work/rc-squid squid_start "${squid_neg#*:}" \
    "auth_param negotiate program /usr/lib/squid/negotiate_kerberos_auth -k $work/http.keytab -s HTTP/localhost@$realm -c $work/rc-squid
auth_param negotiate children 8
auth_param negotiate keep_alive on"
start_origins

targets=()
for spec in "ringgate=$rg" "squid-negotiate=$squid_neg"; do
    if wait_port "${spec#*=}" "${spec%%=*}"; then
        targets+=(--proxy "$spec" --negotiate "${spec%%=*}")
    fi
done
# The first use fetches the service ticket into the cache; every token after it is made from it.
curl -s -o /dev/null --proxy-negotiate -U : -x "http://localhost:${rg#*:}" "http://127.0.0.1:9/" || true

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F); $($squid_bin -v | head -1); $(krb5-config --version 2>/dev/null || echo MIT krb5)"
echo "== Negotiate handshakes (one fresh token per tunnel)"
timeout 600 target/release/loadtest "${origins[@]}" tunnels "${targets[@]}" \
    --negotiate-service HTTP@localhost --clients 16 --tunnels "$tunnels" --rounds "$rounds" || true
