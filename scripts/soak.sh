#!/usr/bin/env bash
# Soak: one ringgate under mixed load from `loadtest soak` for a bounded time (10 minutes by
# default), users added and removed by a reload every 30 s. Fails unless: no byte differed, no
# status or close was unexpected, every reload's new user got in and its removed user did not,
# RSS stayed flat after warm-up, fds came back to their baseline once the load stopped, and the
# proxy logged nothing at WARN or ERROR. Prints the RSS/fd series and writes it, with an SVG plot,
# to target/soak/. Loopback only.
#
#   scripts/soak.sh            # 600 s
#   scripts/soak.sh 60         # CI's short run (reloads every 15 s)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
every=${RELOAD_EVERY:-$(( secs >= 300 ? 30 : 15 ))}
rss_slack_kib=${RSS_SLACK_KIB:-16384}
out=target/soak
mkdir -p "$out"
cargo build --locked --release --quiet --bin ringgate -p ringgate -p loadtest --bin loadtest
rg=target/release/ringgate lt=target/release/loadtest
dir=$(mktemp -d /tmp/ringgate-soak.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

users=$dir/users
htpasswd -nbB -C 4 soak s0ak-pw > "$users"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port) admin=$(free_port)
# Idle origin connections expire after 2 s, so that once the load stops the pools hold only pipes.
"$rg" --listen "127.0.0.1:$port" --htpasswd "$users" --allow-dest 127.0.0.0/8 --connect-ports any \
    --header-timeout 3 --upstream-idle 2 --admin "127.0.0.1:$admin" --log-level info 2> "$dir/ringgate.log" &
rg_pid=$!; pids+=("$rg_pid")
# The baseline is taken once the proxy says it is ready: its listeners accept from the moment they
# are bound, before the workers' rings, the admin endpoint and the signal socketpair exist.
ready=0
for _ in $(seq 200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin/readyz")" = 200 ] && { ready=1; break; }
    sleep 0.05
done
[ "$ready" = 1 ] || { echo "soak: the proxy did not become ready" >&2; cat "$dir/ringgate.log" >&2; exit 1; }
baseline_fds=$(ls "/proc/$rg_pid/fd" | wc -l)

"$lt" serve --seconds $((secs + 120)) > "$dir/origins" &
pids+=($!)
for _ in $(seq 100); do [ -s "$dir/origins" ] && break; sleep 0.05; done
origins=$(head -1 "$dir/origins")
http_origin=$(python3 -c 'import sys,re; print(re.search(r"http=([^;\s]+)", sys.argv[1]).group(1))' "$origins")

"$lt" --origins "$origins" soak --proxy "127.0.0.1:$port" --pid "$rg_pid" --proxy-user soak:s0ak-pw \
    --wrong-user soak:wrong --seconds "$secs" --sample-secs 5 > "$dir/series" 2>&1 &
soak_pid=$!; pids+=("$soak_pid")

# Reloads: each adds a user, and removes the one the previous reload added.
reload_fail=0 n=0 start=$(date +%s)
status_as() {  # user:password → the proxy's status for a forwarded GET
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 -x "http://127.0.0.1:$port" \
        --proxy-user "$1" "http://$http_origin/reload-check"
}
while kill -0 "$soak_pid" 2>/dev/null; do
    sleep 1
    [ $(( $(date +%s) - start )) -ge $(( (n + 1) * every )) ] || continue
    n=$((n + 1))
    { htpasswd -nbB -C 4 soak s0ak-pw; htpasswd -nbB -C 4 "extra$n" "pw$n"; } > "$users.new"
    mv "$users.new" "$users"
    kill -HUP "$rg_pid"
    ok=0
    for _ in $(seq 50); do [ "$(status_as "extra$n:pw$n")" = 200 ] && { ok=1; break; }; sleep 0.1; done
    gone=407
    [ "$n" -gt 1 ] && gone=$(status_as "extra$((n - 1)):pw$((n - 1))")
    if [ "$ok" != 1 ] || [ "$gone" != 407 ]; then
        echo "reload $n: new user in=$ok, removed user got $gone" >&2
        reload_fail=1
    fi
done
soak_rc=0; wait "$soak_pid" || soak_rc=$?

# Once the load is gone, the fds come back to where they started, but for the pipes the workers
# keep pooled (two fds each, counted by the proxy's own metric).
pooled() { curl -s "http://127.0.0.1:$admin/metrics" | awk '/^ringgate_pipes_pooled /{print $2}'; }
# 30 s: past the header timeout (3 s), the origin pool's expiry (2 s) and any drain after an error.
fds=0 expected=$baseline_fds
for _ in $(seq 300); do
    fds=$(ls "/proc/$rg_pid/fd" | wc -l)
    expected=$((baseline_fds + 2 * $(pooled)))
    [ "$fds" -le "$expected" ] && break
    sleep 0.1
done

stamp=$(date -u +%Y%m%dT%H%M%SZ)
cp "$dir/series" "$out/soak-$stamp.tsv"
cat "$dir/series"
python3 - "$dir/series" "$out/soak-$stamp.svg" "$rss_slack_kib" > "$dir/verdict" <<'PY'
import sys
rows = [l.split("\t") for l in open(sys.argv[1]) if l[0].isdigit()]
t = [int(r[0]) for r in rows]; rss = [int(r[1]) for r in rows]; fds = [int(r[2]) for r in rows]
if len(rows) < 4:
    print("too few samples"); sys.exit(0)
# Warm-up: the first quarter. Flat: no sample after it exceeds the warm-up's peak by the slack.
warm = max(1, len(rows) // 4)
growth = max(rss[warm:]) - max(rss[:warm])
print(f"rss warm-up peak {max(rss[:warm])} KiB, later peak {max(rss[warm:])} KiB, growth {growth} KiB")
if growth > int(sys.argv[3]):
    print("RSS GREW")
W, H, P = 720, 300, 40
def line(vals, color):
    lo, hi = 0, max(vals) * 1.1 or 1
    pts = " ".join(f"{P + (W - 2 * P) * (x - t[0]) / max(1, t[-1] - t[0]):.1f},"
                   f"{H - P - (H - 2 * P) * (v - lo) / (hi - lo):.1f}" for x, v in zip(t, vals))
    return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>', hi
rl, rhi = line([r / 1024 for r in rss], "#c0392b"); fl, fhi = line(fds, "#2471a3")
open(sys.argv[2], "w").write(
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">'
    f'<rect width="{W}" height="{H}" fill="white"/>'
    f'<line x1="{P}" y1="{H-P}" x2="{W-P}" y2="{H-P}" stroke="black"/><line x1="{P}" y1="{P}" x2="{P}" y2="{H-P}" stroke="black"/>'
    f'{rl}{fl}<text x="{P}" y="20">ringgate soak: RSS (red, 0–{rhi:.0f} MiB) and open fds (blue, 0–{fhi:.0f}) over {t[-1]} s</text>'
    f'<text x="{W-P}" y="{H-10}" text-anchor="end">seconds</text></svg>')
PY
cat "$dir/verdict"
echo "reloads: $n; fds at start $baseline_fds, after the load $fds (pooled pipes' included: $expected at most)"
echo "series and plot: $out/soak-$stamp.tsv, $out/soak-$stamp.svg"
logged=$(grep -E ' (WARN|ERROR) ' "$dir/ringgate.log" || true)
fail=0
[ "$soak_rc" = 0 ] || { echo "soak: the load saw failures (above)" >&2; fail=1; }
[ "$reload_fail" = 0 ] || fail=1
if [ "$fds" -gt "$expected" ]; then
    echo "soak: fds $fds after the load, at most $expected expected; open now:" >&2
    ls -l "/proc/$rg_pid/fd" | awk 'NR>1{print $NF}' | sed 's/[0-9]\+/N/g' | sort | uniq -c >&2
    ss -tanp 2>/dev/null | grep "pid=$rg_pid," | awk '{print $1, $4, $5}' | head -20 >&2
    ss -uaxnp 2>/dev/null | grep "pid=$rg_pid," | head -20 >&2
    curl -s "http://127.0.0.1:$admin/metrics" | grep -E '^ringgate_[a-z_]*(active|pooled|idle|open)[a-z_]* ' >&2
    fail=1
fi
grep -q "RSS GREW" "$dir/verdict" && { echo "soak: RSS grew by more than $rss_slack_kib KiB after warm-up" >&2; fail=1; }
[ -z "$logged" ] || { echo "soak: the proxy logged warnings or errors:" >&2; echo "$logged" | head -20 >&2; fail=1; }
kill -0 "$rg_pid" 2>/dev/null || { echo "soak: the proxy is gone" >&2; fail=1; }
exit $fail
