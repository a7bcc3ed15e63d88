#!/usr/bin/env python3
"""Memory of the in-process idempotency store: resident memory of a gateway before and after
N keyed five-target requests (each a new key), against the simulated providers.

    python3 bench/store.py [N]          (default 20000; GATEWAY=path/to/binary, default the
                                          release build, built if missing)

Prints the RSS growth per key and the key count the gateway exports. The providers keep at most
10,000 clients each, so their memory does not grow with N; they run in their own process anyway.
"""
import concurrent.futures
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
GATEWAY = os.environ.get("GATEWAY", str(ROOT / "target" / "release" / "clients-gateway"))
HS256 = "bench-store-hs256-secret-of-32-bytes!!"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port):
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit("no VmRSS")


def main():
    if not os.path.exists(GATEWAY):
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    work = pathlib.Path(tempfile.mkdtemp())
    up, port = free_port(), free_port()
    providers = subprocess.Popen(
        [GATEWAY, "providers", "--bind", f"127.0.0.1:{up}", "--no-uniqueness", "--workers", "1"],
        stderr=subprocess.DEVNULL)
    wait_for(up)
    base = f"http://127.0.0.1:{up}"
    config = work / "gateway.toml"
    config.write_text(f"""
[server]
bind = "127.0.0.1:{port}"
workers = 2
[auth]
hs256_secret = "{HS256}"
[idempotency]
max_keys = {N + 10000}
retain_s = 3600
[telemetry]
log_level = "error"
[providers.lucca]
base_url = "{base}/lucca"
api_key = "sandbox-lucca-api-key"
organization_id = 12
[providers.clockify]
base_url = "{base}/clockify/api"
api_key = "sandbox-clockify-api-key"
workspace_id = "64a687e29ae1f428e7ebe303"
[providers.plusvibe]
base_url = "{base}/plusvibe/api/v1"
api_key = "sandbox-plusvibe-api-key"
workspace_id = "65f99a0dd96fae8ab61130c0"
[providers.chatdash]
base_url = "{base}/chatdash/v1/public"
api_key = "sandbox-chatdash-agency-key"
resolve_id = false
[providers.missionx]
base_url = "{base}/missionx/v2"
token_url = "{base}/missionx/v2/auth/token"
client_id = "sandbox-missionx-client"
client_secret = "sandbox-missionx-secret"
org_id = "6650c0ffee00000000000001"
departments = ["6650c0ffee0000000000abcd"]
""")
    gateway = subprocess.Popen([GATEWAY, "--config", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for(port)
    token = subprocess.run([GATEWAY, "--config", str(config), "token", "--sub", "bench", "--ttl", "2h"],
                           capture_output=True, text=True, check=True).stdout.strip()
    body = json.dumps({
        "client": {"name": "Nova Consulting Ltd", "external_id": "crm-4711", "email": "billing@nova.example",
                   "contact": {"first_name": "Nova", "last_name": "Smith", "email": "nova.smith@nova.example"}},
        "targets": {"lucca": {}, "clockify": {}, "plusvibe": {}, "chatdash": {"member": {"login_id": "nova"}},
                    "missionx": {}},
    }).encode()

    def send(i):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/clients", data=body, method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                     "Idempotency-Key": f"store-bench-{i}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status

    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            assert all(s == 207 for s in pool.map(send, range(-500, 0)))
            time.sleep(1)
            before = rss_kib(gateway.pid)
            started = time.time()
            statuses = list(pool.map(send, range(N)))
            elapsed = time.time() - started
        time.sleep(1)
        after = rss_kib(gateway.pid)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        keys = next(l for l in metrics.splitlines() if l.startswith("clients_gateway_idempotency_keys "))
        assert all(s == 207 for s in statuses), set(statuses)
        per_key = (after - before) * 1024 / N
        print(f"{N} keyed five-target requests in {elapsed:.1f} s; {keys}")
        print(f"RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB: {per_key:.0f} bytes per key")
        print(f"at the default idempotency.max_keys (20,000): about {per_key * 20000 / 2**20:.0f} MiB")
    finally:
        gateway.terminate()
        providers.terminate()


if __name__ == "__main__":
    main()
