#!/usr/bin/env python3
"""Captures real clients' bytes as fuzz seeds: curl and Python talk to a real ringgate through a
recording relay, and what each client sent is cut into the inputs of the fuzz targets.

    fuzz/capture-seeds.py target/release/ringgate   # writes fuzz/seeds/<target>/curl-*, py-*

Run by hand when clients change; the seeds it wrote are committed. Loopback only."""
import base64, os, socket, subprocess, sys, tempfile, threading, time

RINGGATE = sys.argv[1]
SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
tmp = tempfile.mkdtemp(prefix="ringgate-seeds-")
sent = []  # every client byte stream, one per connection


def origin():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
    def serve(c):
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d: return
            buf += d
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        c.close()
    threading.Thread(target=lambda: [threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start() for _ in iter(int, 1)], daemon=True).start()
    return s.getsockname()[1]


def relay(to_port):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
    def pump(a, b, record):
        while True:
            try: d = a.recv(65536)
            except OSError: d = b""
            if not d:
                try: b.shutdown(socket.SHUT_WR)
                except OSError: pass
                return
            if record is not None: record.append(d)
            try: b.sendall(d)
            except OSError: return
    def conn(c):
        u = socket.create_connection(("127.0.0.1", to_port))
        record = []; sent.append(record)
        threading.Thread(target=pump, args=(c, u, record), daemon=True).start()
        pump(u, c, None)
    threading.Thread(target=lambda: [threading.Thread(target=conn, args=(s.accept()[0],), daemon=True).start() for _ in iter(int, 1)], daemon=True).start()
    return s.getsockname()[1]


def ringgate(args):
    port = socket.socket(); port.bind(("127.0.0.1", 0)); p = port.getsockname()[1]; port.close()
    proc = subprocess.Popen([RINGGATE, "--listen", f"127.0.0.1:{p}", "--allow-dest", "127.0.0.0/8",
                             "--connect-ports", "any", *args])
    for _ in range(200):
        try: socket.create_connection(("127.0.0.1", p)).close(); break
        except OSError: time.sleep(0.02)
    return proc, p


def nthash(pw):
    out = subprocess.run(["openssl", "dgst", "-md4", "-provider", "legacy", "-provider", "default", "-r"],
                         input=pw.encode("utf-16-le"), capture_output=True, check=True).stdout
    return out.split()[0].decode()


o = origin()
users = os.path.join(tmp, "users"); open(users, "w").write("carol:" + nthash("pw") + "\n")
proc, p = ringgate(["--user", "alice:pw", "--ntlm-users", users,
                    "--auth-schemes", "ntlm,basic", "--ntlm-domain", "CORP"])
r = relay(p)
curl = ["curl", "-s", "-o", "/dev/null", "-x", f"http://127.0.0.1:{r}"]
runs = {
    "get": [f"http://127.0.0.1:{o}/a/b?c=d"],
    "basic": ["--proxy-user", "alice:pw", f"http://127.0.0.1:{o}/"],
    "basic-connect": ["-p", "--proxy-user", "alice:pw", f"http://127.0.0.1:{o}/"],
    "ntlm": ["--proxy-ntlm", "--proxy-user", "CORP\\carol:pw", f"http://127.0.0.1:{o}/"],
    "ntlm-connect": ["-p", "--proxy-ntlm", "--proxy-user", "carol@corp:pw", f"http://127.0.0.1:{o}/"],
    "post": ["--proxy-user", "alice:pw", "-d", "x=1", f"http://127.0.0.1:{o}/form"],
    "chunked": ["--proxy-user", "alice:pw", "-H", "Transfer-Encoding: chunked", "-d", "hello world",
                f"http://127.0.0.1:{o}/up"],
}
captured = {}
for name, args in runs.items():
    before = len(sent)
    subprocess.run(curl + args, timeout=20)
    time.sleep(0.2)
    captured["curl-" + name] = [b"".join(x) for x in sent[before:]]
proc.kill()

digest = os.path.join(tmp, "digest")
import hashlib
open(digest, "w").write("".join(f"bob:ringgate:{h(b'bob:ringgate:pw').hexdigest()}\n"
                                for h in (hashlib.md5, hashlib.sha256)))
proc, p = ringgate(["--htdigest", digest, "--digest-algorithms", "MD5,SHA-256"])
r = relay(p)
curl = ["curl", "-s", "-o", "/dev/null", "-x", f"http://127.0.0.1:{r}"]
for name, args in {"digest": [f"http://127.0.0.1:{o}/d?x=1"], "digest-connect": ["-p", f"http://127.0.0.1:{o}/"]}.items():
    before = len(sent)
    subprocess.run(curl + ["--proxy-digest", "--proxy-user", "bob:pw"] + args, timeout=20)
    time.sleep(0.2)
    captured["curl-" + name] = [b"".join(x) for x in sent[before:]]
before = len(sent)
subprocess.run([sys.executable, "-c",
    "import sys, urllib.request as u\n"
    "h = u.ProxyDigestAuthHandler(); h.add_password('ringgate', sys.argv[2], 'bob', 'pw')\n"
    "u.build_opener(u.ProxyHandler({'http': sys.argv[1]}), h).open(sys.argv[2]).read()\n",
    f"http://127.0.0.1:{r}", f"http://127.0.0.1:{o}/py"], timeout=20)
time.sleep(0.2)
captured["py-digest"] = [b"".join(x) for x in sent[before:]]
proc.kill()


def write(target, name, data):
    d = os.path.join(SEEDS, target); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)


count = 0
for name, streams in captured.items():
    for i, stream in enumerate(streams):
        for j, head in enumerate(stream.split(b"\r\n\r\n")[:-1]):
            head += b"\r\n\r\n"
            if not head.strip(): continue
            tag = f"{name}-{i}-{j}"
            write("request_head", tag, b"\xff\xff" + head); count += 1
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"proxy-authorization:"):
                    value = line.split(b":", 1)[1].strip()
                    write("credentials", tag, value)
                    scheme, _, rest = value.partition(b" ")
                    if scheme.lower() == b"digest": write("digest", tag, rest)
                    if scheme.lower() == b"ntlm":
                        write("ntlm", tag + "-b64", rest)
                        write("ntlm", tag, base64.b64decode(rest))
            target = head.split(b" ")[1] if b" " in head else b""
            write("target", tag, target)
print(f"{count} heads from {len(captured)} runs into {SEEDS}")
