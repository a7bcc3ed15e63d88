"""What an asynchronous operation costs, side by side in one run (docs/benchmarks/operations.md).

    python3 bench/operations.py [N]     # N requests per phase (default 4000)

Starts on loopback a Redis (no persistence: the memory counted is the data's), the simulated
providers answering after 60 s (an attempt in flight costs nothing while the requests are
measured), and one gateway (one worker, `operations.concurrency = 1`) sharing that Redis. Then,
in alternating phases of N requests each, the same five-target body sent as a dry run
(`?dry_run=true`: checked and planned, nothing kept) and as an operation (`Prefer:
respond-async`: checked, planned, sealed and written to Redis, acknowledged before the 202), by 8
keep-alive callers. Reported: the gateway's requests per CPU-second (from /proc, the callers'
CPU not counted) per kind and their ratio, and Redis's memory per pending operation (`used_memory`
before and after, divided by the operations accepted).

Needs a release build (`cargo build --release --locked --bin clients-gateway`, or
BENCH_PROFILE_DIR=target/fast/release for one without LTO) and `redis-server` on the PATH.
"""

import concurrent.futures
import http.client
import json
import pathlib
import socket
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402

KEY = "YmVuY2gtb3BlcmF0aW9ucy1rZXktb2YtMzItYnl0ZXM="
CALLERS = 8


def redis_info(port):
    """`INFO memory` of the Redis on `port`, as a dict."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"INFO memory\r\n")
        data = b""
        while True:
            data += s.recv(65536)
            head, _, rest = data.partition(b"\r\n")
            if head.startswith(b"$") and len(rest) >= int(head[1:]):
                break
    return dict(line.split(":", 1) for line in rest.decode().splitlines() if ":" in line)


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{__import__('os').cpu_count()} × {cpu}; {rustc}"


def send(port, token, body, headers, n, path="/clients"):
    """n POSTs over CALLERS keep-alive connections; the statuses seen."""

    def caller(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        seen = {}
        for _ in range(count):
            conn.request("POST", path, body=body, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers})
            response = conn.getresponse()
            response.read()
            seen[response.status] = seen.get(response.status, 0) + 1
        conn.close()
        return seen

    statuses = {}
    with concurrent.futures.ThreadPoolExecutor(CALLERS) as pool:
        for seen in pool.map(caller, [n // CALLERS] * CALLERS):
            for status, count in seen.items():
                statuses[status] = statuses.get(status, 0) + count
    return statuses


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    redis_port, upstream, port = bench.free_port(), bench.free_port(), bench.free_port()
    procs = [bench.Process("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--dir", str(bench.TMP)],
                           redis_port),
             bench.Process("upstream", [str(bench.BIN), "providers", "--bind", f"127.0.0.1:{upstream}",
                                        "--delay-ms", "60000", "--no-uniqueness"], upstream)]
    try:
        config = bench.TMP / "gateway-operations.toml"
        config.write_text(bench.gateway_config(port, upstream).replace("workers = 2", "workers = 1")
                          + f"""
[idempotency]
redis_url = "redis://127.0.0.1:{redis_port}/0"
[operations]
encryption_key = "{KEY}"
concurrency = 1
""")
        gateway = bench.Process("gateway", [str(bench.BIN), "--config", str(config)], port)
        procs.append(gateway)
        token = subprocess.run([str(bench.BIN), "token", "--config", str(config), "--sub", "bench"],
                               capture_output=True, text=True, check=True).stdout.strip()
        body = bench.canonical(5)
        send(port, token, body, {}, 400, "/clients?dry_run=true")  # warm-up
        send(port, token, body, {"Prefer": "respond-async"}, 400)
        time.sleep(1)
        before = int(redis_info(redis_port)["used_memory"])
        accepted = 400
        rows = {"dry run": [], "operation": []}
        for _ in range(2):
            for kind, headers, path, expect in [
                ("dry run", {}, "/clients?dry_run=true", 207),
                ("operation", {"Prefer": "respond-async"}, "/clients", 202),
            ]:
                cpu, started = gateway.cpu_seconds(), time.time()
                statuses = send(port, token, body, headers, n, path)
                cpu, wall = gateway.cpu_seconds() - cpu, time.time() - started
                if set(statuses) != {expect}:
                    raise SystemExit(f"{kind}: {statuses}")
                rows[kind].append((n / cpu, n / wall))
                if kind == "operation":
                    accepted += n
        time.sleep(1)
        after = int(redis_info(redis_port)["used_memory"])
        per_op = (after - before) / (accepted - 400)
        dry = sorted(r[0] for r in rows["dry run"])[-1]
        op = sorted(r[0] for r in rows["operation"])[-1]
        report = {
            "requests_per_phase": n,
            "dry_run_per_cpu_second": round(dry),
            "operation_per_cpu_second": round(op),
            "operation_cost_over_dry_run": round(dry / op, 2),
            "dry_run_per_second_wall": [round(r[1]) for r in rows["dry run"]],
            "operation_per_second_wall": [round(r[1]) for r in rows["operation"]],
            "redis_bytes_per_pending_operation": round(per_op),
            "operations_pending": accepted,
            "machine": machine(),
        }
        print(json.dumps(report, indent=2))
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    main()
