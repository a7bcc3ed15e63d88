#!/usr/bin/env bash
# Where the memory goes at 1,000 concurrent five-target requests: runs the release gateway under
# heaptrack (Debian's `heaptrack`, installed if missing) against the simulated providers (50 ms),
# drives it with oha for BENCH_DURATION seconds (default 8) and prints the peak heap, the peak
# RSS and the largest allocation sites at the peak. The recording is kept in target/heap/.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v heaptrack >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq heaptrack >/dev/null
fi
command -v oha >/dev/null 2>&1 || cargo install oha --locked --version 1.12.0
# heaptrack sees allocations made through malloc: this build leaves jemalloc out.
cargo build --release --locked --no-default-features --bin clients-gateway --target-dir target/heap-build
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p target/heap
rm -f target/heap/gateway.*
python3 - <<'PY'
import os, subprocess, sys
sys.path.insert(0, "bench")
import bench
bench.BIN = bench.ROOT / "target" / "heap-build" / "release" / "clients-gateway"
from bench import BIN, TMP, Process, canonical, free_port, gateway_config, oha, wait_port

duration = int(os.environ.get("BENCH_DURATION", "8"))
upstream_port, port = free_port(), free_port()
upstream = Process("upstream", [str(BIN), "providers", "--bind", f"127.0.0.1:{upstream_port}",
                                "--no-uniqueness", "--delay-ms", "50"], upstream_port)
config = TMP / "gateway.toml"
config.write_text(gateway_config(port, upstream_port))
gateway = subprocess.Popen(["heaptrack", "-o", "target/heap/gateway", str(BIN), "--config", str(config)],
                           stdout=open(TMP / "heaptrack.log", "w"), stderr=subprocess.STDOUT)
try:
    wait_port(port, 120)
    token = subprocess.run([str(BIN), "token", "--config", str(config), "--sub", "heap"],
                           capture_output=True, text=True, check=True).stdout.strip()
    r = oha(f"http://127.0.0.1:{port}/clients", canonical(5), [f"Authorization: Bearer {token}"],
            1000, duration=duration)
    print(f"1,000 connections, five targets: {r['rps']:.0f} requests/s, answers {r['codes']}")
finally:
    # heaptrack runs the gateway as its child: stop the gateway, heaptrack then writes its file.
    subprocess.run(["pkill", "-TERM", "-f", f"clients-gateway --config {config}"])
    gateway.wait(timeout=60)
    upstream.stop()
PY
heaptrack_print -f target/heap/gateway.zst --print-peaks 1 --print-allocators 0 \
  --print-temporary 0 --print-leaks 0 -n 12 -s 0 2>/dev/null \
  | grep -A1 "peak memory consumed" | grep -v '^--' | cut -c1-160
heaptrack_print -f target/heap/gateway.zst 2>/dev/null | grep -E "^peak (heap|RSS)"
