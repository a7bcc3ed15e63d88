#!/usr/bin/env bash
# Instructions per request on the gateway's hot path, with valgrind's callgrind (it counts
# instructions, so the figure repeats on a busy machine). Runs the release gateway (1 worker)
# under callgrind against the simulated providers, sends N one-target requests over one
# keep-alive connection, and subtracts a run with no request (start-up and shutdown).
#   bash bench/profile.sh [N]        (default 500); the annotated profile is in target/profile/
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500}
bin=target/release/clients-gateway
[ -x "$bin" ] || cargo build --release --locked --bin clients-gateway
out=target/profile
mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
up=$(free_port)
"$bin" providers --bind "127.0.0.1:$up" --no-uniqueness >/dev/null 2>&1 &
upstream=$!
trap 'kill $upstream 2>/dev/null || true' EXIT

run() {
  local requests=$1 port
  port=$(free_port)
  cat >"$out/gateway.toml" <<TOML
[server]
bind = "127.0.0.1:$port"
workers = 1
[auth]
hs256_secret = "profile-hs256-secret-0123456789abcdef01"
[telemetry]
log_level = "info"
[providers.clockify]
base_url = "http://127.0.0.1:$up/clockify/api"
api_key = "sandbox-clockify-api-key"
workspace_id = "64a687e29ae1f428e7ebe303"
TOML
  valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$requests" \
    "$bin" --config "$out/gateway.toml" >"$out/gateway.$requests.log" 2>"$out/valgrind.$requests.log" &
  local gw=$!
  local token
  token=$("$bin" token --config "$out/gateway.toml" --sub profile)
  python3 - "$port" "$token" "$requests" <<'PY'
import http.client, json, socket, sys, time
port, token, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
deadline = time.time() + 120
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("the gateway did not start")
        time.sleep(0.2)
body = json.dumps({"client": {"name": "Nova Consulting Ltd", "email": "billing@nova.example"},
                   "targets": {"clockify": {}}})
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    conn.request("POST", "/clients", body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    assert r.status == 207, r.status
PY
  kill -TERM "$gw"
  wait "$gw" || true
  grep -oE 'summary: [0-9]+' "$out/callgrind.$requests" | awk '{print $2}'
}

base=$(run 0)
loaded=$(run "$n")
echo "instructions per request (one target): $(( (loaded - base) / n ))"
callgrind_annotate --inclusive=no "$out/callgrind.$n" 2>/dev/null | head -40 > "$out/top.txt" || true
echo "top functions (self): $out/top.txt"
