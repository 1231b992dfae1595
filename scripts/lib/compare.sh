# Sourced by the compare scripts (compare.sh, compare-builds.sh, compare-digest.sh, compare-ntlm.sh,
# compare-negotiate.sh): what
# each of them does the same way. Installing what is missing, a work directory removed on exit
# with everything started in it stopped, squid configs that differ only in their auth lines, the
# origins in a process of their own, and waiting for a port.

pids=()
squids=()
origins_pid=
squid_bin=

# compare_install COMMAND:PACKAGE...: installs (Debian, needs root) the packages whose command is
# missing; sets squid_bin.
compare_install() {
    local need=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
    done
    if [ ${#need[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${need[@]}"
    fi
    squid_bin=$(command -v squid || echo /usr/sbin/squid)
}

# compare_work NAME: makes $work (readable by squid's own user) and cleans up on exit.
compare_work() {
    work=$(mktemp -d "/tmp/ringgate-$1.XXXXXX")
    chmod 755 "$work"
    trap compare_cleanup EXIT
}

compare_cleanup() {
    local conf pid
    for conf in "${squids[@]}"; do "$squid_bin" -f "$conf" -k shutdown 2>/dev/null || true; done
    kill "${pids[@]}" $origins_pid 2>/dev/null || true
    sleep 1
    for conf in "${squids[@]}"; do
        pid=$(cat "${conf%.conf}.pid" 2>/dev/null || true)
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    done
    # COMPARE_KEEP=1 keeps the work dir (configs, squid's cache.log) to read after a run.
    if [ -n "${COMPARE_KEEP:-}" ]; then echo "work dir kept: $work" >&2; else rm -rf "$work"; fi
}

# squid_start PORT AUTH-LINES: writes a one-worker squid config requiring proxy auth with these
# auth_param lines, and starts squid on 127.0.0.1:PORT.
squid_start() {
    local conf="$work/squid-$1.conf"
    cat >"$conf" <<EOC
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
EOC
    squids+=("$conf")
    # squid writes its log as its own user, in a directory only root writes to.
    touch "$work/squid-$1.cache.log"
    chown proxy "$work/squid-$1.cache.log" 2>/dev/null || true
    "$squid_bin" -f "$conf"
}

# start_origins: the load generator's origins in a process of their own (so the generator's
# threads and fds are apart from theirs); sets the `origins` arguments for loadtest.
start_origins() {
    target/release/loadtest serve --seconds 3600 >"$work/origins" &
    origins_pid=$!
    for _ in $(seq 50); do [ -s "$work/origins" ] && break; sleep 0.1; done
    [ -s "$work/origins" ] || { echo "the origins did not start" >&2; exit 1; }
    origins=(--origins "$(head -1 "$work/origins")")
}

# wait_port HOST:PORT NAME: whether something listens there within 10 s.
wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$2 did not start on $1" >&2
    return 1
}

# compare_sizes [quick]: the sizes of the Basic scenarios (rounds, bytes, tunnels, requests);
# quick: 1 round each and smaller runs.
compare_sizes() {
    if [ "${1:-}" = quick ]; then
        rounds=1; bytes=$((256 << 20)); tunnels=500; requests=5000
    else
        rounds=3; bytes=$((1 << 30)); tunnels=2000; requests=20000
    fi
}

# basic_scenarios USER PASSWORD: every loadtest scenario with Basic credentials against the
# `targets` (--proxy NAME=ADDR…), at compare_sizes' sizes. A scenario exits non-zero when any
# target had errors (tinyproxy closes kept-alive connections, for one): the tables say which; the
# comparison goes on.
basic_scenarios() {
    local creds=(--proxy-user "$1:$2")
    lt() { target/release/loadtest "${origins[@]}" "$@" "${targets[@]}" || true; }
    lt throughput "${creds[@]}" --bytes "$bytes" --rounds "$((rounds + 2))"
    lt throughput "${creds[@]}" --mode both --tunnels 4 --bytes "$bytes" --rounds "$((rounds + 2))"
    lt tunnels "${creds[@]}" --tunnels "$tunnels" --rounds "$rounds"
    lt challenges --requests "$requests" --rounds "$rounds"
    # A client with a stale saved password: the same wrong credentials on every request.
    lt challenges --proxy-user "$1:stale-$2" --requests "$requests" --rounds "$rounds"
    lt forward "${creds[@]}" --requests "$requests" --rounds "$rounds"
    lt latency "${creds[@]}" --pings "$((requests / 2))" --rounds "$rounds"
}
