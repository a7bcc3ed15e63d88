#!/usr/bin/env bash
# The benchmark: builds the gateway in release mode, installs the load generator (oha), nginx and
# openssl if missing, then runs bench/tls.py (upstreams over HTTPS, HTTP/2 and HTTP/1.1, against
# nginx proxy_pass to the same upstream, each pinned to its core) and bench/bench.py (the same
# over plain HTTP), which start their own upstreams, gateways (JWT auth on) and nginx on loopback,
# drive them with oha in a separate process, and write docs/benchmarks/throughput.md; then bench/store.py
# measures the in-process idempotency store's memory per key.
#   BENCH_DURATION  seconds per measurement (default 10)
#   BENCH_RUNS      runs per figure; medians are reported (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v oha >/dev/null 2>&1; then
  echo "bench: installing oha (cargo install, a few minutes)" >&2
  cargo install oha --locked --version 1.12.0
fi
if ! command -v nginx >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq nginx openssl >/dev/null
fi
cargo build --release --locked --bin clients-gateway
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
https_report=$(mktemp)
trap 'rm -f "$https_report"' EXIT
python3 bench/tls.py "$https_report"
BENCH_HTTPS_REPORT="$https_report" python3 bench/bench.py "$@"
# The idempotency store's memory: its own section, appended.
{
  echo
  echo "## 3. The in-process idempotency store (\`python3 bench/store.py 20000\`)"
  echo
  python3 bench/store.py 20000 | sed 's/^/    /'
} >> docs/benchmarks/throughput.md
