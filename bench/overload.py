"""Overload: the gateway in a memory cgroup of the chart's limit, against slow providers.

For each provider protocol (HTTP/2 over TLS, HTTP/1.1 over TLS) and each level of concurrent
callers: a fresh gateway starts in its own memory cgroup (OVERLOAD_LIMIT_MB, 256 MiB: the chart's
`resources.limits.memory`) with a CPU quota of one core (`cpu.cfs_quota_us`, cgroup v1; `cpu.max`
on v2), its five providers pointed at `clients-gateway providers --delay-ms 2000 --no-uniqueness`
(a SaaS that has slowed to 2 s), and the load generator (`examples/load.rs`) holds that many
callers of five-target `POST /clients` for OVERLOAD_DURATION seconds while `/healthz` is probed
every 200 ms on a new connection, as a kubelet does. Read afterwards: whether the process lives,
the cgroup's OOM kills and peak memory, the answers by status with their latencies (at the
caller, the connect time included; and the gateway's own time to shed, from its histogram), the
targets' statuses inside the 207s, the probes' failures and p99 on the ops listener and on the
main one, the requests in flight the gateway held (its own gauge, sampled), and
whether a request right after the burst is admitted.

Run as root (cgroups): `python3 bench/overload.py [markdown-out]`; `... calibrate` measures the
costs the budget counts, `... waves` bursts against providers that close idle connections, and
`... bodies` callers that send 60 KB bodies with their heads (BODIES_BASELINE_BIN: a build to
compare side by side).
    OVERLOAD_LEVELS     comma-separated callers (default 500,1000,2000,5000,10000)
    OVERLOAD_PROTOCOLS  h2,h1 (default both)
    OVERLOAD_DURATION   seconds per level (default 20)
    OVERLOAD_LIMIT_MB   the memory limit (default 256)
    OVERLOAD_DELAY_MS   the providers' delay (default 2000)
    OVERLOAD_HONOUR     1: the callers honour `Retry-After` (wait N s ± half before sending
                        again); default: they send again at once
    BENCH_PROFILE_DIR   the build to measure (default target/release)
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402
import tls  # noqa: E402

BIN = bench.BIN
LOAD = bench.PROFILE_DIR / "examples" / "load"
TMP = bench.TMP
LEVELS = [int(x) for x in os.environ.get("OVERLOAD_LEVELS", "500,1000,2000,5000,10000").split(",")]
PROTOCOLS = os.environ.get("OVERLOAD_PROTOCOLS", "h2,h1").split(",")
DURATION = int(os.environ.get("OVERLOAD_DURATION", "20"))
LIMIT_MB = int(os.environ.get("OVERLOAD_LIMIT_MB", "256"))
DELAY_MS = int(os.environ.get("OVERLOAD_DELAY_MS", "2000"))
HONOUR = os.environ.get("OVERLOAD_HONOUR") == "1"
CG = pathlib.Path("/sys/fs/cgroup")


class Cgroup:
    """A memory cgroup with a limit and a one-core CPU quota (v1, or v2 when it is unified)."""

    def __init__(self, name, limit_bytes):
        self.v2 = (CG / "cgroup.controllers").exists() and "memory" in (CG / "cgroup.controllers").read_text()
        if self.v2:
            (CG / "cgroup.subtree_control").write_text("+memory +cpu")
            self.dirs = [CG / name]
        else:
            self.dirs = [CG / "memory" / name, CG / "cpu" / name]
        for d in self.dirs:
            d.mkdir(exist_ok=True)
        if self.v2:
            (self.dirs[0] / "memory.max").write_text(str(limit_bytes))
            (self.dirs[0] / "memory.swap.max").write_text("0")
            (self.dirs[0] / "cpu.max").write_text("100000 100000")
        else:
            mem, cpu = self.dirs
            (mem / "memory.limit_in_bytes").write_text(str(limit_bytes))
            (mem / "memory.max_usage_in_bytes").write_text("0")
            (cpu / "cpu.cfs_period_us").write_text("100000")
            (cpu / "cpu.cfs_quota_us").write_text("100000")

    def join(self):
        """Run in the child before exec: it enters every controller of the group."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def peak(self):
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        path = self.dirs[0] / name
        return int(path.read_text()) if path.exists() else None

    def oom_kills(self):
        name = "memory.events" if self.v2 else "memory.oom_control"
        m = re.search(r"oom_kill (\d+)", (self.dirs[0] / name).read_text())
        return int(m.group(1)) if m else 0

    def remove(self):
        for d in self.dirs:
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def gateway_config(port, ops_port, upstream, ca, http2):
    text = tls.gateway_config(port, upstream, ca, http2)
    text = text.replace('log_level = "info"', 'log_level = "warn"')
    return text.replace("[server]\n", f'[server]\nops_bind = "127.0.0.1:{ops_port}"\n', 1)


def metric(ops_port, name):
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def admitted_after(port, body, token):
    """Whether a five-target request right after the burst is admitted (within 10 s)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/clients", data=body.encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                if r.status == 207:
                    return True
        except urllib.error.HTTPError as e:
            if e.code != 503:
                return False
        except OSError:
            return False
        time.sleep(0.5)
    return False


def run_level(protocol, callers, upstream, ca, body_path, five):
    port, ops = bench.free_port(), bench.free_port()
    config = TMP / f"gateway-{protocol}-{callers}.toml"
    config.write_text(gateway_config(port, ops, upstream, ca, protocol == "h2"))
    cgroup = Cgroup(f"clients-gateway-overload-{protocol}-{callers}", LIMIT_MB << 20)
    log = open(TMP / f"gateway-{protocol}-{callers}.log", "w")
    gateway = subprocess.Popen([str(BIN), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT,
                               preexec_fn=cgroup.join)
    try:
        bench.wait_port(port)
        token = subprocess.run([str(BIN), "token", "--config", str(config), "--sub", "overload", "--ttl", "2h"],
                               capture_output=True, text=True, check=True).stdout.strip()
        # Warm-up: the providers' protocol learnt, the missionX token fetched.
        for _ in range(3):
            admitted_after(port, five, token)
        budget = metric(ops, "clients_gateway_memory_budget_bytes")
        capacity = metric(ops, "clients_gateway_admission_capacity")
        samples, stop = [], threading.Event()

        def sample():
            while not stop.wait(0.5):
                v = metric(ops, "clients_gateway_requests_in_flight")
                if v is not None:
                    samples.append(v)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # The probes come from a process of their own, as a kubelet's do (not from the callers'
        # busy event loop), at a higher priority than the callers'.
        prober = subprocess.Popen(["nice", "-n", "-5", str(LOAD), "--addr", f"127.0.0.1:{port}", "--connections", "0",
                                   "--duration-s", str(DURATION), "--probe-addr", f"127.0.0.1:{ops}",
                                   "--probe-addr", f"127.0.0.1:{port}"],
                                  stdout=subprocess.PIPE, text=True)
        out = subprocess.run(["nice", "-n", "5", str(LOAD), "--addr", f"127.0.0.1:{port}", "--connections", str(callers),
                              "--duration-s", str(DURATION), "--body", str(body_path),
                              "--header", f"Authorization: Bearer {token}", "--timeout-ms", "30000",
                              "--probe-every-ms", "0"] + (["--honour-retry-after"] if HONOUR else []),
                             capture_output=True, text=True, check=True).stdout
        probes = json.loads(prober.communicate()[0])["probes"]
        stop.set()
        sampler.join()
        result = json.loads(out)
        alive = gateway.poll() is None
        result["probe_ops"] = probes.get(f"127.0.0.1:{ops}")
        result["probe_main"] = probes.get(f"127.0.0.1:{port}")
        result["shed_in_gateway"] = shed_time(ops)
        result.update({
            "protocol": protocol, "callers": callers, "alive": alive, "oom_kills": cgroup.oom_kills(),
            "peak_bytes": cgroup.peak(), "budget": budget, "capacity": capacity,
            "in_flight_max": max(samples) if samples else None,
            "admitted_after": alive and admitted_after(port, five, token),
        })
        return result
    finally:
        gateway.terminate()
        try:
            gateway.wait(timeout=40)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait()
        cgroup.remove()


def shed_time(ops_port):
    """The gateway's own p99 for a shed answer (its histogram of 503 overloaded), in ms."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    buckets = sorted((float(le), float(v)) for le, v in re.findall(
        r'^clients_gateway_shed_duration_seconds_bucket{le="([^"]+)"} (\S+)$', text.replace("+Inf", "inf"), re.M))
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    return next(le for le, v in buckets if v >= 0.99 * total) * 1000


def probe_cell(p):
    if not p:
        return "–"
    return f"{p['failed']} of {p['ok'] + p['failed']} failed, p99 {p['latency']['p99_ms']:.0f} ms"


def row(r):
    s = r["statuses"]
    ok, shed = s.get("207", {}), s.get("503", {})
    other = {k: v["count"] for k, v in s.items() if k not in ("207", "503")}
    other.update(r["errors"])
    peak = r["peak_bytes"]
    return (f"| {'HTTP/2' if r['protocol'] == 'h2' else 'HTTP/1.1'} | {r['callers']:,} | "
            f"{'yes' if r['alive'] and not r['oom_kills'] else '**no**'} ({r['oom_kills']} OOM kills) | "
            f"{peak / 2**20:.0f} MiB ({peak / (LIMIT_MB << 20) * 100:.0f} %) | "
            f"{ok.get('count', 0):,} (p50 {ok.get('p50_ms', 0):.0f} ms, p99 {ok.get('p99_ms', 0):.0f} ms, "
            f"max {ok.get('max_ms', 0):.0f} ms) | "
            f"{r['targets'].get('created', 0):,} / {r['targets'].get('failed', 0):,} / {r['targets'].get('unknown', 0):,} | "
            f"{shed.get('count', 0):,} (p99 {shed.get('p99_ms', 0):.0f} ms at the caller, "
            f"{'≤ %g ms' % r['shed_in_gateway'] if r['shed_in_gateway'] is not None else '–'} in the gateway; "
            f"{r['shed_without_retry_after']} without Retry-After) | "
            f"{json.dumps(other) if other else '–'} | "
            f"{probe_cell(r['probe_ops'])} | {probe_cell(r['probe_main'])} | "
            f"{r['in_flight_max'] or 0:.0f} (limit {r['capacity'] or 0:.0f}) | "
            f"{'yes' if r['admitted_after'] else '**no**'} |")


def calibrate(upstream, ca, pki_body_dir):
    """What one idle connection, one request and one provider call in flight cost: the slope of
    the cgroup's working set (and of the allocator's bytes) between none and CALIBRATE_N of each,
    every call held by the providers' delay. The gateway has a 2 GiB cgroup (nothing is shed)."""
    n = int(os.environ.get("CALIBRATE_N", "1000"))
    rows = []
    for protocol in PROTOCOLS:
        figures = {}
        for label, targets, idle in (("connection", 1, True), ("one", 1, False), ("five", 5, False)):
            port, ops = bench.free_port(), bench.free_port()
            config = TMP / f"calibrate-{protocol}-{label}.toml"
            text = gateway_config(port, ops, upstream, ca, protocol == "h2")
            # Enough connections per provider for every call at once (HTTP/1.1: one each).
            text = re.sub(r"(\[providers\.[a-z]+\]\n)", lambda m: m.group(1) + f"max_connections = {n + 50}\n", text)
            config.write_text(text)
            cgroup = Cgroup(f"clients-gateway-calibrate-{protocol}-{label}", 2 << 30)
            gateway = subprocess.Popen([str(BIN), "--config", str(config)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, preexec_fn=cgroup.join)
            try:
                bench.wait_port(port)
                token = subprocess.run([str(BIN), "token", "--config", str(config), "--sub", "calibrate"],
                                       capture_output=True, text=True, check=True).stdout.strip()
                body = TMP / f"calibrate-{targets}.json"
                body.write_text(bench.canonical(targets))
                for _ in range(3):
                    admitted_after(port, bench.canonical(5), token)
                time.sleep(1)
                base_ws = metric(ops, "clients_gateway_memory_in_use_bytes")
                base_alloc = metric(ops, "clients_gateway_memory_allocated_bytes")
                peak_ws, peak_alloc, stop = [base_ws], [base_alloc], threading.Event()

                def sample():
                    while not stop.wait(0.2):
                        peak_ws.append(metric(ops, "clients_gateway_memory_in_use_bytes") or 0)
                        peak_alloc.append(metric(ops, "clients_gateway_memory_allocated_bytes") or 0)

                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                args = [str(LOAD), "--addr", f"127.0.0.1:{port}", "--connections", str(n), "--duration-s", "8",
                        "--body", str(body), "--header", f"Authorization: Bearer {token}", "--probe-every-ms", "0",
                        "--ramp-ms", "1000"]
                if idle:
                    args.append("--idle")
                out = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
                stop.set()
                sampler.join()
                if not idle and out["statuses"].get("207", {}).get("count", 0) < n:
                    print(f"calibrate {protocol} {label}: not every request answered: {out['statuses']}", file=sys.stderr)
                figures[label] = ((max(peak_ws) - base_ws) / n, (max(peak_alloc) - base_alloc) / n)
            finally:
                gateway.terminate()
                gateway.wait(timeout=40)
                cgroup.remove()
        conn, one, five = figures["connection"], figures["one"], figures["five"]
        call = tuple((f - o) / 4 for f, o in zip(five, one))
        request = tuple(o - c - k for o, c, k in zip(one, conn, call))
        rows.append((protocol, conn, request, call, five))
    lines = [f"Calibration (`python3 bench/overload.py calibrate`, {n} of each in flight, providers after {DELAY_MS} ms): "
             "bytes each, as the cgroup's working set / as the allocator's bytes in use.", "",
             "| providers | an open connection | a request, beyond its connection and calls | a provider call | a five-target request, all counted |",
             "|---|---|---|---|---|"]
    for protocol, conn, request, call, five in rows:
        cell = lambda x: f"{x[0]:,.0f} / {x[1]:,.0f}"
        lines.append(f"| {'HTTP/2' if protocol == 'h2' else 'HTTP/1.1'} | {cell(conn)} | {cell(request)} | {cell(call)} | {cell(five)} |")
    return "\n".join(lines) + "\n"


def waves():
    """Bursts against the simulated providers over plain HTTP (HTTP/1.1, their keep-alive 5 s):
    WAVES waves of WAVE_CALLERS concurrent five-target requests, 5 s apart, so that the
    gateway's pooled connections outlive the providers' keep-alive unless its idle timeout is
    shorter. Two gateways side by side: the default idle_timeout_ms (4 s) and 60 s."""
    n = int(os.environ.get("WAVE_CALLERS", "2000"))
    rounds = int(os.environ.get("WAVES", "4"))
    upstream = bench.free_port()
    providers = bench.Process("waves-providers", [str(BIN), "providers", "--bind", f"127.0.0.1:{upstream}",
                                                  "--workers", "1", "--no-uniqueness"], upstream)
    lines = [f"Waves (`python3 bench/overload.py waves`): {rounds} waves of {n} concurrent five-target "
             "requests, 5 s apart (the providers close idle connections after 5 s), against the simulated providers over plain HTTP/1.1 (keep-alive 5 s).", "",
             "| providers.*.idle_timeout_ms | 207 answers | targets created / failed / unknown | other answers |",
             "|---|---|---|---|"]
    try:
        for idle in (4000, 60000):
            port, ops = bench.free_port(), bench.free_port()
            config = TMP / f"waves-{idle}.toml"
            text = bench.gateway_config(port, upstream).replace('log_level = "info"', 'log_level = "warn"')
            text = re.sub(r"(\[providers\.[a-z]+\]\n)",
                          lambda m: m.group(1) + f"idle_timeout_ms = {idle}\nmax_connections = 1024\n", text)
            config.write_text(text)
            gateway = bench.Process(f"waves-gateway-{idle}", [str(BIN), "--config", str(config)], port)
            try:
                token = subprocess.run([str(BIN), "token", "--config", str(config), "--sub", "waves"],
                                       capture_output=True, text=True, check=True).stdout.strip()
                body = TMP / "waves.json"
                body.write_text(bench.canonical(5))
                total = {"statuses": {}, "targets": {}, "errors": {}}
                for i in range(rounds):
                    if i:
                        time.sleep(float(os.environ.get("WAVE_PAUSE_S", "5.0")))
                    out = json.loads(subprocess.run(
                        [str(LOAD), "--addr", f"127.0.0.1:{port}", "--connections", str(n), "--duration-s", "1",
                         "--body", str(body), "--header", f"Authorization: Bearer {token}", "--probe-every-ms", "0"],
                        capture_output=True, text=True, check=True).stdout)
                    for k, v in out["statuses"].items():
                        total["statuses"][k] = total["statuses"].get(k, 0) + v["count"]
                    for group in ("targets", "errors"):
                        for k, v in out[group].items():
                            total[group][k] = total[group].get(k, 0) + v
                t = total["targets"]
                other = {k: v for k, v in total["statuses"].items() if k != "207"}
                other.update(total["errors"])
                lines.append(f"| {idle:,} | {total['statuses'].get('207', 0):,} | {t.get('created', 0):,} / "
                             f"{t.get('failed', 0):,} / {t.get('unknown', 0):,} | {json.dumps(other) if other else '–'} |")
            finally:
                gateway.stop()
    finally:
        providers.stop()
    return "\n".join(lines) + "\n"


BODY_CASES = [
    # (name, limit MiB, callers, token, body): a caller whose token is refused; an authenticated
    # caller whose body is refused (a note of 60,000 characters); valid bodies padded to 60 KB.
    ("invalid token", 256, 5000, "invalid", "valid"),
    ("refused body", 64, 3000, "valid", "refused"),
    ("valid body", 64, 3000, "valid", "valid"),
]


def bodies():
    """Callers that send a 60 KB body in the same write as their head, on kept connections, by
    the thousand, against the gateway in a small memory cgroup (one core) whose five providers
    answer after OVERLOAD_DELAY_MS: per case, whether it lives, its peak, the answers, the
    probes. BODIES_BASELINE_BIN: another build of the gateway measured side by side (each case
    runs against both, one after the other)."""
    builds = [("this build", BIN)]
    if os.environ.get("BODIES_BASELINE_BIN"):
        builds.insert(0, ("baseline", pathlib.Path(os.environ["BODIES_BASELINE_BIN"])))
    upstream = bench.free_port()
    providers = bench.Process("bodies-providers", [str(BIN), "providers", "--bind", f"127.0.0.1:{upstream}",
                                                   "--workers", "1", "--no-uniqueness", "--delay-ms", str(DELAY_MS)],
                              upstream)
    valid = bench.canonical(1)
    refused = json.loads(valid)
    refused["client"]["note"] = "n" * 60_000
    payloads = {"valid": bench.canonical(1, size=60_000), "refused": json.dumps(refused)}
    lines = [f"Bodies with their heads (`python3 bench/overload.py bodies`, {time.strftime('%Y-%m-%d')}): "
             f"each caller sends a 60 KB body in the same write as its head, again and again on a kept connection, for {DURATION} s; "
             f"providers answer after {DELAY_MS} ms; `/healthz` on the ops listener every 200 ms (2 s timeout).", "",
             "| case | cgroup | callers | build | alive (OOM kills) | peak memory | answers by status | `/healthz` failed |",
             "|---|---|---|---|---|---|---|---|"]
    try:
        for name, limit_mb, callers, token_kind, body_kind in BODY_CASES:
            body_path = TMP / f"bodies-{body_kind}.json"
            body_path.write_text(payloads[body_kind])
            for build, binary in builds:
                port, ops = bench.free_port(), bench.free_port()
                config = TMP / "bodies.toml"
                text = bench.gateway_config(port, upstream).replace('log_level = "info"', 'log_level = "warn"')
                config.write_text(text.replace("[server]\n", f'[server]\nops_bind = "127.0.0.1:{ops}"\n', 1))
                cgroup = Cgroup(f"clients-gateway-bodies-{port}", limit_mb << 20)
                log = open(TMP / f"bodies-{port}.log", "w")
                gateway = subprocess.Popen([str(binary), "--config", str(config)], stdout=log,
                                           stderr=subprocess.STDOUT, preexec_fn=cgroup.join)
                try:
                    bench.wait_port(port)
                    token = "not.a.token" if token_kind == "invalid" else subprocess.run(
                        [str(BIN), "token", "--config", str(config), "--sub", "bodies"],
                        capture_output=True, text=True, check=True).stdout.strip()
                    out = json.loads(subprocess.run(
                        [str(LOAD), "--addr", f"127.0.0.1:{port}", "--connections", str(callers),
                         "--duration-s", str(DURATION), "--body", str(body_path),
                         "--header", f"Authorization: Bearer {token}", "--header", "Content-Type: application/json",
                         "--probe-addr", f"127.0.0.1:{ops}", "--probe-every-ms", "200", "--timeout-ms", "30000"],
                        capture_output=True, text=True, check=True).stdout)
                    alive = gateway.poll() is None
                    statuses = {k: v["count"] for k, v in out["statuses"].items()}
                    statuses.update(out.get("errors", {}))
                    probe = out.get("probes", {}).get(f"127.0.0.1:{ops}", {})
                    peak = cgroup.peak()
                    lines.append(f"| {name} | {limit_mb} MiB | {callers:,} | {build} | "
                                 f"{'yes' if alive else 'no'} ({cgroup.oom_kills()}) | "
                                 f"{(peak or 0) / 2**20:.0f} MiB | {json.dumps(statuses)} | "
                                 f"{probe.get('failed', '–')} of {probe.get('ok', 0) + probe.get('failed', 0)} |")
                    print(lines[-1], flush=True)
                finally:
                    gateway.terminate()
                    try:
                        gateway.wait(timeout=40)
                    except subprocess.TimeoutExpired:
                        gateway.kill()
                        gateway.wait()
                    cgroup.remove()
    finally:
        providers.stop()
    return "\n".join(lines) + "\n"


def main(out_path):
    pki = tls.make_certificates()
    ca = pki / "ca.pem"
    upstream = bench.free_port()
    providers = bench.Process("overload-providers", [
        str(BIN), "providers", "--bind", f"127.0.0.1:{upstream}", "--workers", "1", "--no-uniqueness",
        "--delay-ms", str(DELAY_MS), "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")],
        upstream)
    five = bench.canonical(5)
    body_path = TMP / "five.json"
    body_path.write_text(five)
    results = []
    if out_path == "bodies":
        providers.stop()
        print(bodies())
        return
    if out_path == "waves":
        providers.stop()
        print(waves())
        return
    if out_path == "calibrate":
        try:
            print(calibrate(upstream, ca, TMP))
        finally:
            providers.stop()
        return
    try:
        for protocol in PROTOCOLS:
            for callers in LEVELS:
                r = run_level(protocol, callers, upstream, ca, body_path, five)
                print(row(r), flush=True)
                results.append(r)
    finally:
        providers.stop()
    lines = [
        f"Measured with `python3 bench/overload.py` on {time.strftime('%Y-%m-%d')}: the gateway in a "
        f"{LIMIT_MB} MiB memory cgroup with a one-core CPU quota, five HTTPS providers answering after "
        f"{DELAY_MS} ms (`clients-gateway providers`), {DURATION} s per level, a fresh gateway per "
        "level, `/healthz` probed every 200 ms on a new connection (2 s timeout); callers "
        + ("honouring `Retry-After` (N s ± half)." if HONOUR else "sending again at once after a 503."),
        "",
        "| providers | callers | alive | peak memory | 207 answers | targets created / failed / unknown | "
        "503 overloaded | other | `/healthz`, ops listener | `/healthz`, main listener | in flight at most | admitted after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ] + [row(r) for r in results]
    text = "\n".join(lines) + "\n"
    (TMP / "overload.json").write_text(json.dumps(results, indent=1))
    if out_path:
        pathlib.Path(out_path).write_text(text)
    print(text)


if __name__ == "__main__":
    for path in (BIN, LOAD):
        if not path.exists():
            sys.exit(f"{path} is missing: cargo build --release --bin clients-gateway --example load")
    main(sys.argv[1] if len(sys.argv) > 1 else None)
