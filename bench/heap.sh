#!/usr/bin/env bash
# Where the memory goes: the release gateway (built without jemalloc, so heaptrack sees every
# allocation) under heaptrack (Debian's `heaptrack`, installed if missing), against the
# simulated providers; prints the peak heap, the peak RSS and the largest allocation sites at
# the peak. The recording is kept in target/heap/.
#
#   bash bench/heap.sh       1,000 connections of five-target requests driven by oha for
#                            BENCH_DURATION seconds (default 8), plain HTTP/1.1 providers at 50 ms
#   bash bench/heap.sh h2    a provider call in flight over HTTP/2: HEAP_CONNECTIONS callers
#                            (default 1000) of five-target requests for HEAP_DURATION seconds
#                            (default 10, the overload benchmark's load generator), TLS HTTP/2
#                            providers answering after HEAP_DELAY_MS (default 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-h1}"
command -v heaptrack >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq heaptrack >/dev/null; }
[ "$MODE" = h2 ] || command -v oha >/dev/null 2>&1 || cargo install oha --locked --version 1.12.0
# Memory does not depend on LTO; the build without it takes minutes, not twenty.
CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  cargo build --release --locked --no-default-features --bin clients-gateway --example load \
  --target-dir target/heap-build
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p target/heap
rm -f "target/heap/gateway-$MODE".*
HEAP_MODE="$MODE" BENCH_PROFILE_DIR=target/heap-build/release python3 - <<'PY'
import json, os, subprocess, sys
sys.path.insert(0, "bench")
import bench, tls
from bench import BIN, TMP, Process, canonical, free_port, gateway_config, oha, wait_port

mode = os.environ["HEAP_MODE"]
upstream_port, port = free_port(), free_port()
config = TMP / "gateway.toml"
if mode == "h2":
    delay = os.environ.get("HEAP_DELAY_MS", "2000")
    pki = tls.make_certificates()
    served = ["--workers", "1", "--delay-ms", delay, "--tls-cert", str(pki / "server.pem"),
              "--tls-key", str(pki / "server.key")]
    config.write_text(tls.gateway_config(port, upstream_port, pki / "ca.pem", True))
else:
    served = ["--delay-ms", "50"]
    config.write_text(gateway_config(port, upstream_port))
upstream = Process("upstream", [str(BIN), "providers", "--bind", f"127.0.0.1:{upstream_port}",
                                "--no-uniqueness", *served], upstream_port)
gateway = subprocess.Popen(["heaptrack", "-o", f"target/heap/gateway-{mode}", str(BIN), "--config", str(config)],
                           stdout=open(TMP / "heaptrack.log", "w"), stderr=subprocess.STDOUT)
try:
    wait_port(port, 120)
    token = subprocess.run([str(BIN), "token", "--config", str(config), "--sub", "heap"],
                           capture_output=True, text=True, check=True).stdout.strip()
    if mode == "h2":
        n = os.environ.get("HEAP_CONNECTIONS", "1000")
        body = TMP / "five.json"
        body.write_text(canonical(5))
        out = subprocess.run([str(bench.PROFILE_DIR / "examples" / "load"), "--addr", f"127.0.0.1:{port}",
                              "--connections", n, "--duration-s", os.environ.get("HEAP_DURATION", "10"),
                              "--body", str(body), "--header", f"Authorization: Bearer {token}",
                              "--probe-every-ms", "0", "--ramp-ms", "1000"],
                             capture_output=True, text=True, check=True).stdout
        summary = json.loads(out)
        print(f"{n} callers, five targets, providers after {delay} ms: "
              f"{ {k: v.get('count') for k, v in summary['statuses'].items()} }, targets {summary.get('targets')}")
    else:
        r = oha(f"http://127.0.0.1:{port}/clients", canonical(5), [f"Authorization: Bearer {token}"],
                1000, duration=int(os.environ.get("BENCH_DURATION", "8")))
        print(f"1,000 connections, five targets: {r['rps']:.0f} requests/s, answers {r['codes']}")
finally:
    # heaptrack runs the gateway as its child: stop the gateway, heaptrack then writes its file.
    subprocess.run(["pkill", "-TERM", "-f", f"clients-gateway --config {config}"])
    gateway.wait(timeout=60)
    upstream.stop()
PY
heaptrack_print -f "target/heap/gateway-$MODE.zst" --print-peaks 1 --print-allocators 0 \
  --print-temporary 0 --print-leaks 0 -n "${HEAP_SITES:-12}" -s 0 2>/dev/null \
  | grep -A1 "peak memory consumed" | grep -v '^--' | cut -c1-200
heaptrack_print -f "target/heap/gateway-$MODE.zst" 2>/dev/null | grep -E "^peak (heap|RSS)"
