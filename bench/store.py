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
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402  (the shared helpers: processes, ports, the gateway's configuration)

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
GATEWAY = os.environ.get("GATEWAY", str(bench.BIN))


def main():
    if not os.path.exists(GATEWAY):
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=bench.ROOT, check=True)
    up, port = bench.free_port(), bench.free_port()
    providers = bench.Process("store-providers", [
        GATEWAY, "providers", "--bind", f"127.0.0.1:{up}", "--no-uniqueness", "--workers", "1"], up)
    config = bench.TMP / "store-gateway.toml"
    config.write_text(bench.gateway_config(port, up).replace(
        "[telemetry]\nlog_level = \"info\"",
        f"[idempotency]\nmax_keys = {N + 10000}\nretain_s = 3600\n[telemetry]\nlog_level = \"error\""))
    gateway = bench.Process("store-gateway", [GATEWAY, "--config", str(config)], port)
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
            before = gateway.status("VmRSS")
            started = time.time()
            statuses = list(pool.map(send, range(N)))
            elapsed = time.time() - started
        time.sleep(1)
        after = gateway.status("VmRSS")
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        keys = next(l for l in metrics.splitlines() if l.startswith("clients_gateway_idempotency_keys "))
        assert all(s == 207 for s in statuses), set(statuses)
        per_key = (after - before) * 1024 / N
        print(f"{N} keyed five-target requests in {elapsed:.1f} s; {keys}")
        print(f"RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB: {per_key:.0f} bytes per key")
        print(f"at the default idempotency.max_keys (20,000): about {per_key * 20000 / 2**20:.0f} MiB")
    finally:
        gateway.stop()
        providers.stop()


if __name__ == "__main__":
    main()
