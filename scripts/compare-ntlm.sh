#!/usr/bin/env bash
# NTLM side by side, in one run on this machine, against one local Samba SAM (tdbsam, winbindd in
# the foreground): ringgate checking local NT hashes, ringgate delegating each check to Samba's
# ntlm_auth (ntlm_backend = "winbind"), and squid with ntlm_auth --helper-protocol=squid-2.5-ntlmssp.
# Figure: NTLM handshakes/s, each a new connection with CONNECT + type 1 → 407 → type 3 → 200 +
# 16-byte echo + close; then the same while 1,000 handshakes stand abandoned after their 407.
#
# Usage: scripts/compare-ntlm.sh [quick]    quick: 1 round, smaller runs
# Installs squid, winbind and samba-common-bin from Debian's packages when missing (needs root:
# it adds a Unix account for the SAM's user). Bounded: fixed counts, every run with timeouts.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=${1:-}
if [ "$quick" = quick ]; then rounds=1; tunnels=200; else rounds=3; tunnels=800; fi

source scripts/lib/compare.sh
compare_install squid:squid ntlm_auth:winbind smbpasswd:samba-common-bin
cargo build --release -q -p ringgate -p loadtest

user=rgbench
pass='Bench-pw1'
domain=RGBENCH
compare_work compare-ntlm
for d in private lock state cache pid; do mkdir -p "$work/$d"; done
mkdir -p /run/samba
cat >"$work/smb.conf" <<EOC
[global]
  workgroup = $domain
  netbios name = $domain
  security = user
  server role = standalone server
  passdb backend = tdbsam:$work/private/passdb.tdb
  private dir = $work/private
  lock directory = $work/lock
  state directory = $work/state
  cache directory = $work/cache
  pid directory = $work/pid
  log file = $work/log.%m
EOC
chmod 644 "$work/smb.conf"
id "$user" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$user"
printf '%s\n%s\n' "$pass" "$pass" | smbpasswd -c "$work/smb.conf" -s -a "$user" >/dev/null
printf '%s\n' "$pass" | target/release/ringgate passwd --ntlm --password-stdin "$work/nthash" "$user" >/dev/null

rg_local=127.0.0.1:13160
rg_winbind=127.0.0.1:13161
squid_ntlm=127.0.0.1:13162

winbindd -F --no-process-group -s "$work/smb.conf" &
pids+=($!)
for _ in $(seq 100); do wbinfo -p >/dev/null 2>&1 && break; sleep 0.1; done
# squid runs its helpers as its own user: let it reach winbindd's privileged pipe.
for dir in /var/lib/samba/winbindd_privileged "$work/state/winbindd_privileged"; do
    [ -d "$dir" ] && chmod 755 "$dir"
done

cat >"$work/ringgate.toml" <<EOC
ntlm_backend = "winbind"
ntlm_domain = "$domain"
ntlm_auth_command = ["ntlm_auth", "--configfile=$work/smb.conf", "--helper-protocol=ntlm-server-1"]
ntlm_helpers = 8
EOC
common=(--allow-dest 127.0.0.0/8 --connect-ports any --log-level warn)
target/release/ringgate --listen "$rg_local" --ntlm-users "$work/nthash" --ntlm-domain "$domain" "${common[@]}" &
pids+=($!)
target/release/ringgate --listen "$rg_winbind" --config "$work/ringgate.toml" "${common[@]}" &
pids+=($!)
squid_start "${squid_ntlm#*:}" "auth_param ntlm program /usr/bin/ntlm_auth --configfile=$work/smb.conf --helper-protocol=squid-2.5-ntlmssp
auth_param ntlm children 8
auth_param ntlm keep_alive on"
start_origins

targets=()
names=()
for spec in "ringgate-local=$rg_local" "ringgate-winbind=$rg_winbind" "squid-ntlm=$squid_ntlm"; do
    if wait_port "${spec#*=}" "${spec%%=*}"; then
        targets+=(--proxy "$spec" --ntlm "${spec%%=*}")
        names+=("${spec#*=}")
    fi
done

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F); $($squid_bin -v | head -1); $(ntlm_auth --version)"
lt() { timeout 600 target/release/loadtest "${origins[@]}" tunnels --proxy-user "$domain\\$user:$pass" \
    "${targets[@]}" --clients 16 --tunnels "$tunnels" --rounds "$rounds" || true; }
echo "== NTLM handshakes (one per tunnel)"
lt
# 1,000 handshakes left after their 407 (type 1 sent, type 2 read, never answered), held open.
python3 - "$work/abandon.ready" "${names[@]}" <<'EOP' &
import base64, socket, sys, time
ready, addrs = sys.argv[1], sys.argv[2:]
t1 = "TlRMTVNTUAABAAAABoIIAAAAAAAAAAAAAAAAAAAAAAA="
held = []
count = {a: 0 for a in addrs}
failures = {a: 0 for a in addrs}
for i in range(1000):
    for a in addrs:
        if failures[a] >= 3:
            continue  # a proxy that does not answer a type 1 holds nothing
        host, port = a.rsplit(":", 1)
        try:
            s = socket.create_connection((host, int(port)), timeout=2)
            s.sendall(f"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nProxy-Authorization: NTLM {t1}\r\n\r\n".encode())
            if b" 407 " not in s.recv(4096):
                raise OSError("no 407")
            held.append(s)
            count[a] += 1
            failures[a] = 0
        except OSError:
            failures[a] += 1
# A proxy whose type 1s go to stateful helpers (squid: one reserved per handshake until its type 3
# or `reservation-timeout`) stops answering new type 1s once they are all reserved.
print(f"abandoned handshakes held: {count}; given up after 3 unanswered type 1s in a row: "
      f"{[a for a, f in failures.items() if f >= 3]}", flush=True)
open(ready, "w").close()
time.sleep(300)
EOP
abandon_pid=$!
pids+=($abandon_pid)
for _ in $(seq 600); do [ -e "$work/abandon.ready" ] && break; sleep 0.1; done
echo "== NTLM handshakes with 1,000 abandoned handshakes held open on each proxy"
lt
