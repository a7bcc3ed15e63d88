"""The clients-gateway benchmark (run it with bench/run.sh).

Starts on loopback: two upstreams (the gateway's simulated providers, `clients-gateway providers`,
one answering at once and one after 50 ms), two gateways in release mode with JWT auth on (one per
upstream), and nginx proxying to the fast upstream. Drives them with oha in a separate process and
writes docs/benchmarks/throughput.md. Every figure is the median of BENCH_RUNS runs; ratios compare figures
measured side by side in the same run.
"""

import json
import os
import pathlib
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
# BENCH_PROFILE_DIR: where the release build is (default target/release).
PROFILE_DIR = ROOT / os.environ.get("BENCH_PROFILE_DIR", "target/release")
BIN = PROFILE_DIR / "clients-gateway"
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WORKERS = 2
HS256 = "bench-hs256-secret-0123456789abcdef0123"
WORKSPACE = "64a687e29ae1f428e7ebe303"
TMP = pathlib.Path(tempfile.mkdtemp(prefix="clients-gateway-bench-"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Process:
    def __init__(self, name, args, port):
        self.name = name
        self.log = open(TMP / f"{name}.log", "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(port)
        self.port = port

    @property
    def pid(self):
        return self.proc.pid

    def status(self, field):
        for line in pathlib.Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])  # KiB
        raise KeyError(field)

    def cpu_seconds(self):
        fields = pathlib.Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf(os.sysconf_names["SC_CLK_TCK"])
        return (int(fields[11]) + int(fields[12])) / ticks

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def gateway_config(port, upstream):
    base = f"http://127.0.0.1:{upstream}"
    return f"""
[server]
bind = "127.0.0.1:{port}"
workers = {WORKERS}
[auth]
hs256_secret = "{HS256}"
[telemetry]
log_level = "info"
[providers.lucca]
base_url = "{base}/lucca"
api_key = "sandbox-lucca-api-key"
organization_id = 12
[providers.clockify]
base_url = "{base}/clockify/api"
api_key = "sandbox-clockify-api-key"
workspace_id = "{WORKSPACE}"
[providers.plusvibe]
base_url = "{base}/plusvibe/api/v1"
api_key = "sandbox-plusvibe-api-key"
workspace_id = "65f99a0dd96fae8ab61130c0"
[providers.chatdash]
base_url = "{base}/chatdash/v1/public"
api_key = "sandbox-chatdash-agency-key"
# ChatDash's create answers no id; finding it pages through the agency's clients, and the
# simulated agency holds thousands of identical ones here: the benchmark leaves that out.
resolve_id = false
[providers.missionx]
base_url = "{base}/missionx/v2"
token_url = "{base}/missionx/v2/auth/token"
client_id = "sandbox-missionx-client"
client_secret = "sandbox-missionx-secret"
org_id = "6650c0ffee00000000000001"
departments = ["6650c0ffee0000000000abcd"]
"""


def nginx_config(port, upstream, workers=WORKERS, name="nginx", scheme="http", upstream_tls=""):
    """nginx proxy_pass to the upstream (keepalive); `upstream_tls`: its proxy_ssl_* lines."""
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (TMP / name / d).mkdir(parents=True, exist_ok=True)
    n = TMP / name
    return f"""
worker_processes {workers};
daemon off;
pid {n}/nginx.pid;
error_log {n}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {n}/body;
  proxy_temp_path {n}/proxy;
  fastcgi_temp_path {n}/fastcgi;
  uwsgi_temp_path {n}/uwsgi;
  scgi_temp_path {n}/scgi;
  upstream providers {{ server 127.0.0.1:{upstream}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass {scheme}://providers;
      proxy_http_version 1.1;
      proxy_set_header Connection "";{upstream_tls}
    }}
  }}
}}
"""


CONTACT = {"first_name": "Nova", "last_name": "Smith", "email": "nova.smith@nova.example"}
TARGETS = {
    "clockify": {},
    "lucca": {"organization_id": 12},
    "plusvibe": {},
    "chatdash": {"member": {"login_id": "nova"}},
    "missionx": {},
}


def canonical(n_targets=5, size=None):
    """A POST /clients body for the first n targets; padded to `size` bytes when given (a longer
    note and address first, then JSON whitespace, which the gateway parses and skips)."""
    client = {"name": "Nova Consulting Ltd", "email": "billing@nova.example", "contact": CONTACT}
    body = {"client": client, "targets": dict(list(TARGETS.items())[:n_targets])}
    if size:
        room = size - len(json.dumps(body))
        client["note"] = "n" * max(0, min(3000, room - 200))
        room = size - len(json.dumps(body))
        if room > 100:
            client["address"] = "a" * min(1000, room - 100)
        text = json.dumps(body)
        return text[:-1] + " " * max(0, size - len(text)) + "}"
    return json.dumps(body)


def oha(url, body, headers, connections, duration=None, requests=None, qps=None):
    args = ["oha", "--no-tui", "--output-format", "json", "-c", str(connections), "-m", "POST",
            "-T", "application/json", "-d", body]
    for h in headers:
        args += ["-H", h]
    if duration:
        args += ["-z", f"{duration}s"]
    if requests:
        args += ["-n", str(requests)]
    if qps:
        args += ["-q", str(qps)]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    summary, pct = data["summary"], data["latencyPercentiles"]
    codes = data.get("statusCodeDistribution", {})
    return {
        "rps": summary["requestsPerSec"],
        "p50": pct["p50"] * 1000,
        "p99": pct["p99"] * 1000,
        "ok": summary["successRate"],
        "codes": codes,
    }


def median(results, key):
    return statistics.median(r[key] for r in results)


def check_codes(label, result, expected):
    codes = {str(k): v for k, v in result["codes"].items()}
    wrong = {k: v for k, v in codes.items() if k != expected}
    if wrong or result["ok"] < 0.999:
        raise RuntimeError(f"{label}: unexpected answers {codes}, success rate {result['ok']}")


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    oha_v = subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip()
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    return (f"{os.cpu_count()} × {cpu}, {int(mem) // 1024 // 1024} GiB, Linux {platform.release()}; "
            f"{rustc}; {oha_v}; {nginx_v}")


def main():
    procs = []
    try:
        fast_up, slow_up = free_port(), free_port()
        procs.append(Process("upstream-fast", [str(BIN), "providers", "--bind", f"127.0.0.1:{fast_up}",
                                               "--workers", str(WORKERS), "--no-uniqueness"], fast_up))
        procs.append(Process("upstream-50ms", [str(BIN), "providers", "--bind", f"127.0.0.1:{slow_up}",
                                               "--workers", str(WORKERS), "--no-uniqueness",
                                               "--delay-ms", "50"], slow_up))
        gw_fast, gw_slow, nginx_port = free_port(), free_port(), free_port()
        for name, port, upstream in (("gateway-fast", gw_fast, fast_up), ("gateway-50ms", gw_slow, slow_up)):
            (TMP / f"{name}.toml").write_text(gateway_config(port, upstream))
        fast = Process("gateway-fast", [str(BIN), "--config", str(TMP / "gateway-fast.toml")], gw_fast)
        slow = Process("gateway-50ms", [str(BIN), "--config", str(TMP / "gateway-50ms.toml")], gw_slow)
        procs += [fast, slow]
        (TMP / "nginx.conf").write_text(nginx_config(nginx_port, fast_up))
        procs.append(Process("nginx", ["nginx", "-c", str(TMP / "nginx.conf"), "-p", str(TMP / "nginx")], nginx_port))
        token = subprocess.run([str(BIN), "token", "--config", str(TMP / "gateway-fast.toml"),
                                "--sub", "bench", "--ttl", "2h"], capture_output=True, text=True,
                               check=True).stdout.strip()
        auth = [f"Authorization: Bearer {token}"]
        idle_rss = slow.status("VmRSS")

        five, one = canonical(5), canonical(1)
        lucca_wire = json.dumps({"name": "Nova Consulting Ltd", "code": "NOVA", "organizationId": 12})
        lucca_auth = ["Authorization: lucca application=sandbox-lucca-api-key"]
        clockify_wire = json.dumps({"name": "Nova Consulting Ltd", "email": "billing@nova.example"})
        clockify_auth = ["X-Api-Key: sandbox-clockify-api-key"]
        clockify_path = f"/clockify/api/v1/workspaces/{WORKSPACE}/clients"

        # Warm-up: connections, the missionX token, caches.
        for port in (gw_fast, gw_slow):
            oha(f"http://127.0.0.1:{port}/clients", five, auth, 10, requests=200)
        oha(f"http://127.0.0.1:{nginx_port}{clockify_path}", clockify_wire, clockify_auth, 10, requests=200)

        figures = {}
        # 1. Fan-out latency: five targets at 50 ms each, against one upstream's own latency.
        gw, up = [], []
        for _ in range(RUNS):
            r = oha(f"http://127.0.0.1:{gw_slow}/clients", five, auth, 50, duration=DURATION)
            check_codes("fan-out", r, "207")
            gw.append(r)
            r = oha(f"http://127.0.0.1:{slow_up}/lucca/timmi-project/api/v4/clients", lucca_wire, lucca_auth, 50, duration=DURATION)
            check_codes("upstream", r, "201")
            up.append(r)
        figures["fanout"] = {"gw": gw, "up": up}

        # 2. Overhead, one target, no delay: gateway, direct, nginx; at full speed and at 1,000/s.
        rows = {"gateway": [], "direct": [], "nginx": []}
        fixed = {"gateway": [], "direct": [], "nginx": []}
        targets = {
            "gateway": (f"http://127.0.0.1:{gw_fast}/clients", one, auth, "207"),
            "direct": (f"http://127.0.0.1:{fast_up}{clockify_path}", clockify_wire, clockify_auth, "201"),
            "nginx": (f"http://127.0.0.1:{nginx_port}{clockify_path}", clockify_wire, clockify_auth, "201"),
        }
        for _ in range(RUNS):
            for name, (url, body, headers, code) in targets.items():
                r = oha(url, body, headers, 50, duration=DURATION)
                check_codes(name, r, code)
                rows[name].append(r)
                r = oha(url, body, headers, 50, duration=DURATION, qps=1000)
                check_codes(name + " @1000/s", r, code)
                fixed[name].append(r)
        figures["overhead"] = {"max": rows, "fixed": fixed}

        # 3. Fan-out throughput: five targets, no delay, against the upstream's own rate.
        gw5, up1 = [], []
        for _ in range(RUNS):
            r = oha(f"http://127.0.0.1:{gw_fast}/clients", five, auth, 50, duration=DURATION)
            check_codes("fan-out throughput", r, "207")
            gw5.append(r)
            up1.append(rows["direct"][len(gw5) - 1])
        figures["throughput"] = {"gw": gw5, "up": up1}

        # 5. Growth: p50 and CPU per request, targets 1→5 (0.5 KiB) and body 0.5→32 KiB (1 target).
        growth = []
        n = 2000
        for label, body in ([(f"{k} target(s), {len(canonical(k, 512)) / 1024:.1f} KiB", canonical(k, 512)) for k in range(1, 6)]
                            + [(f"1 target, {kib} KiB", canonical(1, int(kib * 1024))) for kib in (2, 8, 32)]):
            cpu0 = fast.cpu_seconds()
            r = oha(f"http://127.0.0.1:{gw_fast}/clients", body, auth, 10, requests=n)
            check_codes(label, r, "207")
            growth.append((label, r["p50"], (fast.cpu_seconds() - cpu0) / n * 1e6, r["rps"]))
        figures["growth"] = growth

        # 4. Memory: idle, then 1,000 concurrent connections of five-target requests (50 ms
        # upstream). Last, so that the requests still draining after it disturb no other figure.
        r = oha(f"http://127.0.0.1:{gw_slow}/clients", five, auth, 1000, duration=DURATION)
        check_codes("1000 connections", r, "207")
        figures["memory"] = {"idle_kib": idle_rss, "peak_kib": slow.status("VmHWM"), "load": r}
        write_report(figures)
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(TMP, ignore_errors=True)


def write_report(f):
    fan, over, thr, mem = f["fanout"], f["overhead"], f["throughput"], f["memory"]
    gw50, up50 = median(fan["gw"], "p50"), median(fan["up"], "p50")
    gw99, up99 = median(fan["gw"], "p99"), median(fan["up"], "p99")
    mx, fx = over["max"], over["fixed"]
    rps = {k: median(v, "rps") for k, v in mx.items()}
    fp50 = {k: median(v, "p50") for k, v in fx.items()}
    fp99 = {k: median(v, "p99") for k, v in fx.items()}
    mp50 = {k: median(v, "p50") for k, v in mx.items()}
    mp99 = {k: median(v, "p99") for k, v in mx.items()}
    g5, u1 = median(thr["gw"], "rps"), median(thr["up"], "rps")
    lines = [
        "# Benchmarks",
        "",
        f"Measured with `bash bench/run.sh` (BENCH_DURATION={DURATION} s per measurement, medians of "
        f"BENCH_RUNS={RUNS} runs) on {time.strftime('%Y-%m-%d')}.",
        "",
        f"Machine: {machine()}. Everything runs on this one machine and shares its cores: the load "
        f"generator (oha, its own process), the upstreams, the gateways (JWT auth on, logs at `info` "
        f"to a file) and nginx; §1 and §2 say how many workers each had. The machine is shared and "
        "noisy: compare the ratios, measured side by side in the same run, more than the absolute figures.",
        "",
        "Upstream: the gateway's own simulated providers (`clients-gateway providers --no-uniqueness`), "
        "answering each provider's documented success body, at once or after 50 ms. ChatDash's id "
        "is not looked up after each create (`resolve_id = false`): the simulated agency fills up "
        "with thousands of identical clients, and paging through them would measure the sandbox.",
        "",
    ]
    https = os.environ.get("BENCH_HTTPS_REPORT")
    if https and pathlib.Path(https).exists():
        lines += [pathlib.Path(https).read_text().rstrip(), ""]
    lines += [
        "## 2. Over plain HTTP",
        "",
        f"The same upstream without TLS; the gateways and nginx have {WORKERS} workers each, not pinned.",
        "",
        "### 2.1 Fan-out latency: five targets, each upstream delayed 50 ms, 50 concurrent callers",
        "",
        "| | p50 (ms) | p99 (ms) | requests/s |",
        "|---|---|---|---|",
        f"| gateway, 5 targets | {gw50:.1f} | {gw99:.1f} | {median(fan['gw'], 'rps'):.0f} |",
        f"| one upstream directly (Lucca path) | {up50:.1f} | {up99:.1f} | {median(fan['up'], 'rps'):.0f} |",
        f"| **ratio gateway / upstream** | **{gw50 / up50:.3f}** | **{gw99 / up99:.3f}** | |",
        "",
        "Target: p50 ratio ≤ 1.05 (the slowest target's latency, not the sum of five: that would be ≥ 250 ms).",
        "",
        "### 2.2 Overhead: one target, upstream without delay, 50 connections",
        "",
        "| path | requests/s (max) | p50 (ms) | p99 (ms) | p50 at 1,000/s (ms) | p99 at 1,000/s (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for k in ("direct", "nginx", "gateway"):
        lines.append(f"| {k} | {rps[k]:.0f} | {mp50[k]:.2f} | {mp99[k]:.2f} | {fp50[k]:.2f} | {fp99[k]:.2f} |")
    lines += [
        "",
        f"- throughput gateway / nginx: **{rps['gateway'] / rps['nginx']:.2f}** (target ≥ 0.7); "
        f"gateway / direct: **{rps['gateway'] / rps['direct']:.2f}**",
        f"- added p99 at 1,000 requests/s: gateway − direct **{fp99['gateway'] - fp99['direct']:+.2f} ms** "
        f"(target ≤ 1 ms); nginx − direct {fp99['nginx'] - fp99['direct']:+.2f} ms",
        "",
        "The gateway does more than nginx per request: it verifies the JWT, parses and validates the "
        "canonical body, builds the provider's body, parses the provider's answer and writes a 207 and "
        "a log line.",
        "",
        "### 2.3 Fan-out throughput: five targets, upstream without delay",
        "",
        "| | requests/s | upstream calls/s |",
        "|---|---|---|",
        f"| gateway, 5 targets | {g5:.0f} | {g5 * 5:.0f} |",
        f"| upstream directly (its own limit here) | {u1:.0f} | {u1:.0f} |",
        f"| **ratio (gateway × 5) / upstream** | | **{g5 * 5 / u1:.2f}** |",
        "",
        "### 2.4 Memory",
        "",
        f"- idle (after start): **{mem['idle_kib'] / 1024:.1f} MiB** RSS",
        f"- peak with 1,000 concurrent connections of five-target requests (upstreams at 50 ms, "
        f"{mem['load']['rps']:.0f} requests/s, p99 {mem['load']['p99']:.0f} ms): "
        f"**{mem['peak_kib'] / 1024:.1f} MiB** (VmHWM)",
        "",
        "### 2.5 Growth: targets and body size (upstream without delay, 10 connections, 2,000 requests)",
        "",
        "| request | p50 (ms) | gateway CPU per request (µs) | requests/s |",
        "|---|---|---|---|",
    ]
    for label, p50, cpu, r in f["growth"]:
        lines.append(f"| {label} | {p50:.2f} | {cpu:.0f} | {r:.0f} |")
    lines += [
        "",
        "Bodies above 4 KiB are padded with a longer note and address, then JSON whitespace.",
        "",
    ]
    profile = ROOT / "bench" / "PROFILE.md"
    if profile.exists():
        lines += [profile.read_text().rstrip(), ""]
    (ROOT / "docs" / "benchmarks" / "throughput.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    if not BIN.exists():
        sys.exit(f"{BIN} is missing: run bench/run.sh")
    main()
