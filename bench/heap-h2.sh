#!/usr/bin/env bash
# Where the memory of a provider call in flight goes over HTTP/2: the gateway (built without
# jemalloc, so heaptrack sees every allocation) under heaptrack, its five providers
# (`clients-gateway providers`, TLS, HTTP/2) answering after HEAP_DELAY_MS (default 2000),
# HEAP_CONNECTIONS callers (default 1000) of five-target requests for HEAP_DURATION seconds
# (default 10), driven by the overload benchmark's load generator. Prints the peak heap and the
# allocation sites alive at the peak. The recording is kept in target/heap/.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v heaptrack >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq heaptrack >/dev/null; }
DIR=target/heap-build
CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  cargo build --release --locked --no-default-features --bin clients-gateway --example load --target-dir "$DIR"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p target/heap
rm -f target/heap/gateway-h2.*
BENCH_PROFILE_DIR="$DIR/release" python3 - <<'PY'
import json, os, subprocess, sys, time
sys.path.insert(0, "bench")
import bench, tls
from bench import BIN, TMP, Process, canonical, free_port, wait_port

delay = os.environ.get("HEAP_DELAY_MS", "2000")
n = int(os.environ.get("HEAP_CONNECTIONS", "1000"))
duration = os.environ.get("HEAP_DURATION", "10")
pki = tls.make_certificates()
upstream_port, port = free_port(), free_port()
upstream = Process("upstream", [str(BIN), "providers", "--bind", f"127.0.0.1:{upstream_port}", "--workers", "1",
                                "--no-uniqueness", "--delay-ms", delay, "--tls-cert", str(pki / "server.pem"),
                                "--tls-key", str(pki / "server.key")], upstream_port)
config = TMP / "gateway-h2.toml"
config.write_text(tls.gateway_config(port, upstream_port, pki / "ca.pem", True))
gateway = subprocess.Popen(["heaptrack", "-o", "target/heap/gateway-h2", str(BIN), "--config", str(config)],
                           stdout=open(TMP / "heaptrack.log", "w"), stderr=subprocess.STDOUT)
try:
    wait_port(port, 120)
    token = subprocess.run([str(BIN), "token", "--config", str(config), "--sub", "heap"],
                           capture_output=True, text=True, check=True).stdout.strip()
    body = TMP / "five.json"
    body.write_text(canonical(5))
    out = subprocess.run([str(bench.PROFILE_DIR / "examples" / "load"), "--addr", f"127.0.0.1:{port}",
                          "--connections", str(n), "--duration-s", duration, "--body", str(body),
                          "--header", f"Authorization: Bearer {token}", "--probe-every-ms", "0",
                          "--ramp-ms", "1000"], capture_output=True, text=True, check=True).stdout
    summary = json.loads(out)
    print(f"{n} callers, five targets, providers after {delay} ms: "
          f"{ {k: v.get('count') for k, v in summary['statuses'].items()} }, targets {summary.get('targets')}")
finally:
    subprocess.run(["pkill", "-TERM", "-f", f"clients-gateway --config {config}"])
    gateway.wait(timeout=60)
    upstream.stop()
PY
heaptrack_print -f target/heap/gateway-h2.zst --print-peaks 1 --print-allocators 0 \
  --print-temporary 0 --print-leaks 0 -n "${HEAP_SITES:-25}" -s 0 2>/dev/null \
  | grep -A1 "peak memory consumed" | grep -v '^--' | cut -c1-220
heaptrack_print -f target/heap/gateway-h2.zst 2>/dev/null | grep -E "^peak (heap|RSS)"
