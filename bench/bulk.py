"""A bulk import through a fleet that is killed, restarted and failed over while it drains
(docs/benchmarks/operations.md).

    python3 bench/bulk.py [N] [PER_MINUTE]     # default 2000 operations, a quota of 600 a minute
    BULK_QUIET=1 python3 bench/bulk.py ...     # the same without kills, restarts or failover

Starts on loopback a Redis master (append-only, fsync every second) with one replica and a
sentinel, three gateway replicas (release build, one worker each) reaching Redis through the
sentinel, and a stand-in for Clockify (this script: it keeps what it creates, lists it by name,
answers 2 % of creates 503 without creating, and creates 0.5 % but answers only after 20 s, past
the gateway's timeout). Clockify has `max_per_minute = PER_MINUTE` fleet-wide. N operations are
accepted (`Prefer: respond-async`), spread over the replicas, then, while they drain: replica 0
SIGKILLed at 20 s and started again at 30 s, replica 1 and then replica 2 restarted (SIGTERM,
start) at 50 s and 70 s, and a `SENTINEL FAILOVER` at 90 s. Reported: operations by final state,
clients per name at the tool (any name created twice is a duplicate), the most creates the tool
received in any 60 s, and the drain's rate against the quota.

Every operation names a webhook (`notify`) served by the same stand-in, which checks each
event's signature (HMAC-SHA256 over `{id}.{timestamp}.{body}`, as Standard Webhooks defines it),
answers 3 % of deliveries 500, and counts them by `webhook-id`. Reported too: events delivered
(a 2xx), events delivered more than once, signatures that failed, and the time from an
operation's `done` to its event's delivery.
"""

import base64
import hashlib
import hmac
import http.client
import os
import http.server
import json
import pathlib
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402
import operations  # noqa: E402

WORKSPACE = bench.WORKSPACE
HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Tool(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a late answer to a gateway that gave up on it: a broken pipe, expected

    def __init__(self, port):
        super().__init__(("127.0.0.1", port), ToolHandler)
        self.lock = threading.Lock()
        self.clients = {}  # name -> [ids]
        self.creates = []  # times of the creates received
        self.random = random.Random(7)
        self.events = {}  # webhook-id -> [(arrived, status answered, event timestamp)]
        self.bad_signatures = 0


class ToolHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for h in headers:
            self.send_header(*h)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - the list, by name
        query = dict(p.split("=", 1) for p in self.path.split("?", 1)[-1].split("&") if "=" in p)
        name = urllib_unquote(query.get("name", ""))
        with self.server.lock:
            ids = list(self.server.clients.get(name, []))
        items = [{"id": i, "name": name, "workspaceId": WORKSPACE, "archived": False} for i in ids]
        self.answer(200, items, [("Last-Page", "true")])

    def do_POST(self):  # noqa: N802 - a create, or a completion event
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/hook"):
            return self.event(raw)
        sent = json.loads(raw)
        tool = self.server
        with tool.lock:
            tool.creates.append(time.time())
            roll = tool.random.random()
            if roll < 0.02:
                act = "down"
            else:
                act = "late" if roll < 0.025 else "create"
                client_id = f"{sum(len(v) for v in tool.clients.values()) + 1:024x}"
                tool.clients.setdefault(sent["name"], []).append(client_id)
        if act == "down":
            return self.answer(503, {"message": "Service unavailable", "code": 503}, [("Retry-After", "1")])
        if act == "late":
            time.sleep(20)
        self.answer(201, {"id": client_id, "name": sent["name"], "workspaceId": WORKSPACE, "archived": False})


    def event(self, raw):
        event_id, at = self.headers["webhook-id"], self.headers["webhook-timestamp"]
        key = base64.b64decode(HOOK_SECRET.removeprefix("whsec_"))
        tag = hmac.new(key, f"{event_id}.{at}.".encode() + raw, hashlib.sha256).digest()
        good = "v1," + base64.b64encode(tag).decode() in self.headers["webhook-signature"].split(" ")
        tool = self.server
        with tool.lock:
            status = 500 if tool.random.random() < 0.03 else 200
            if not good:
                tool.bad_signatures += 1
                status = 400
            done = json.loads(raw)["timestamp"]
            tool.events.setdefault(event_id, []).append((time.time(), status, done))
        self.answer(status, {})


def urllib_unquote(text):
    import urllib.parse
    return urllib.parse.unquote_plus(text)


def gateway_config(port, sentinel, tool, per_minute):
    return f"""
[server]
bind = "127.0.0.1:{port}"
workers = 1
[auth]
hs256_secret = "{bench.HS256}"
[telemetry]
log_level = "warn"
[idempotency]
redis_sentinels = ["127.0.0.1:{sentinel}"]
redis_master_name = "bulk"
[operations]
encryption_key = "{operations.KEY}"
[operations.webhooks.bulk]
url = "http://127.0.0.1:{tool}/hook"
secret = "{HOOK_SECRET}"
[providers.clockify]
base_url = "http://127.0.0.1:{tool}/api"
api_key = "bulk-clockify-key"
workspace_id = "{WORKSPACE}"
max_per_minute = {per_minute}
timeout_ms = 3000
settle_s = 2
"""


def event_report(tool, notifications):
    """What the receiver saw of the completion events."""
    import datetime
    delivered = {i: [a for a in got if a[1] == 200] for i, got in tool.events.items()}
    waits = sorted(ok[0][0] - datetime.datetime.fromisoformat(ok[0][2].replace("Z", "+00:00")).timestamp()
                   for ok in delivered.values() if ok)
    return {
        "notifications": notifications,
        "events_delivered": sum(1 for ok in delivered.values() if ok),
        "events_delivered_twice": sum(1 for ok in delivered.values() if len(ok) > 1),
        "event_attempts": sum(len(got) for got in tool.events.values()),
        "bad_signatures": tool.bad_signatures,
        "done_to_delivered_s_p50_p99_max": [round(waits[len(waits) // 2], 1),
                                            round(waits[int(len(waits) * 0.99)], 1),
                                            round(waits[-1], 1)] if waits else None,
    }


def redis_cmd(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True).stdout.strip()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    per_minute = int(sys.argv[2]) if len(sys.argv) > 2 else 600
    tmp = bench.TMP
    master, replica, sentinel, tool_port = (bench.free_port() for _ in range(4))
    procs = []
    tool = Tool(tool_port)
    threading.Thread(target=tool.serve_forever, daemon=True).start()
    try:
        for name, port, extra in [("master", master, []),
                                  ("replica", replica, ["--replicaof", "127.0.0.1", str(master)])]:
            d = tmp / name
            d.mkdir()
            procs.append(bench.Process(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                              "--dir", str(d), "--appendonly", "yes",
                                              "--appendfsync", "everysec", *extra], port))
        conf = tmp / "sentinel.conf"
        conf.write_text(f"port {sentinel}\nbind 127.0.0.1\nsentinel monitor bulk 127.0.0.1 {master} 1\n"
                        "sentinel down-after-milliseconds bulk 1000\nsentinel failover-timeout bulk 10000\n")
        procs.append(bench.Process("sentinel", ["redis-sentinel", str(conf)], sentinel))
        ports = [bench.free_port() for _ in range(3)]
        configs = []
        for i, port in enumerate(ports):
            configs.append(tmp / f"gateway-{i}.toml")
            configs[i].write_text(gateway_config(port, sentinel, tool_port, per_minute))
        gateways = [bench.Process(f"gateway-{i}", [str(bench.BIN), "--config", str(c)], p)
                    for i, (c, p) in enumerate(zip(configs, ports))]
        token = subprocess.run([str(bench.BIN), "token", "--config", str(configs[0]), "--sub", "bulk"],
                               capture_output=True, text=True, check=True).stdout.strip()
        time.sleep(12)  # the sentinel learns of the replica (it asks the master every 10 s)

        accepted_at = time.time()
        locations = []
        conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=30) for p in ports]
        for i in range(n):
            body = json.dumps({"client": {"name": f"Bulk Client {i:05d}", "contact": {
                "first_name": "Bulk", "last_name": f"Client {i}", "email": f"c{i}@bulk.example"}},
                "targets": {"clockify": {}}, "notify": "bulk"})
            conn = conns[i % 3]
            conn.request("POST", "/clients", body=body, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                "Prefer": "respond-async", "Idempotency-Key": f"bulk-{i}"})
            response = conn.getresponse()
            response.read()
            if response.status != 202:
                raise SystemExit(f"operation {i}: {response.status}")
            locations.append((i % 3, response.getheader("Location")))
        accept_s = time.time() - accepted_at
        print(f"accepted {n} operations in {accept_s:.1f} s", flush=True)

        start = time.time()
        events = [(20, "kill 0"), (30, "start 0"), (50, "restart 1"), (70, "restart 2"), (90, "failover")]
        if os.environ.get("BULK_QUIET") == "1":
            events = []  # the same drain without kills, restarts or failover, for comparison
        while True:
            now = time.time() - start
            while events and now >= events[0][0]:
                _, event = events.pop(0)
                print(f"{now:5.1f} s: {event}", flush=True)
                verb, _, arg = event.partition(" ")
                if verb == "kill":
                    gateways[int(arg)].proc.kill()
                elif verb in ("start", "restart"):
                    i = int(arg)
                    if verb == "restart":
                        gateways[i].stop()
                    gateways[i] = bench.Process(f"gateway-{i}-again", [str(bench.BIN), "--config",
                                                                       str(configs[i])], ports[i])
                else:
                    print("  ", redis_cmd(sentinel, "SENTINEL", "FAILOVER", "bulk"), flush=True)
            with tool.lock:
                names = len(tool.clients)
            if names >= n or now > 3 * 60 * n / per_minute + 300:
                break
            time.sleep(1)

        states, notifications = {}, {}
        for i, location in locations:
            for _ in range(300):
                conn = http.client.HTTPConnection("127.0.0.1", ports[i], timeout=30)
                conn.request("GET", location, headers={"Authorization": f"Bearer {token}"})
                op = json.loads(conn.getresponse().read())
                if op.get("done") and op["notification"]["status"] not in ("waiting", "pending"):
                    break
                time.sleep(1)
            states[op.get("state")] = states.get(op.get("state"), 0) + 1
            notified = op.get("notification", {}).get("status")
            notifications[notified] = notifications.get(notified, 0) + 1
        creates = sorted(tool.creates)
        most = max(sum(1 for t in creates[j:] if t - first < 60) for j, first in enumerate(creates))
        span = creates[-1] - creates[0]
        report = {
            "operations": n,
            "quota_per_minute": per_minute,
            "states": states,
            "names_at_the_tool": len(tool.clients),
            "names_created_twice": sum(1 for v in tool.clients.values() if len(v) > 1),
            "creates_received": len(creates),
            "most_creates_in_any_60_s": most,
            "drain_rate_per_minute": round((len(creates) - 1) / span * 60, 1),
            "drain_rate_over_quota": round((len(creates) - 1) / span * 60 / per_minute, 3),
            "drain_s": round(span, 1),
            **event_report(tool, notifications),
        }
        print(json.dumps(report, indent=2))
        per_10s = {}
        for t in creates:
            bucket = int((t - creates[0]) // 10) * 10
            per_10s[bucket] = per_10s.get(bucket, 0) + 1
        print("creates per 10 s:", json.dumps(per_10s))
    finally:
        for g in locals().get("gateways", []):
            g.stop()
        for p in reversed(procs):
            p.stop()
        tool.shutdown()


if __name__ == "__main__":
    main()
