"""The HTTPS part of the benchmark (bench/run.sh runs it): providers over TLS, as in production.

Starts on loopback: a test CA and a server certificate (openssl), two TLS upstreams (the
gateway's simulated providers, `clients-gateway providers --tls-cert ... --tls-key ...`, serving
HTTP/2 and HTTP/1.1 by ALPN; one answering at once, one after 50 ms), gateways trusting the CA
through `tls.ca_file` (HTTP/2 by default, or `http2 = false` on every provider) and nginx
`proxy_pass`ing to the same HTTPS upstream (keepalive, `proxy_ssl_session_reuse on`).

On a 2-core machine each side gets the same share: the system under test (the gateway, or
nginx) has 1 worker pinned to core 0 (`taskset -c 0`); the upstreams and the load generator are
pinned to core 1. Throughput per core is requests per CPU-second of the system under test, read
from /proc: the figure that does not depend on whether core 1 or core 0 is the limit.

Writes a markdown fragment to the path given as the first argument (bench/bench.py puts it in
docs/benchmarks/throughput.md).
"""

import json
import os
import pathlib
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402  (the shared helpers: processes, oha, bodies)

TMP = bench.TMP
BIN = bench.BIN
DURATION = bench.DURATION
RUNS = bench.RUNS
FRONT, BACK = "0", "1"


def pinned(core, args):
    return ["taskset", "-c", core] + args


def make_certificates():
    """A test CA and a certificate for localhost/127.0.0.1 signed by it."""
    d = TMP / "pki"
    d.mkdir()

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "2", "-subj", "/CN=clients-gateway bench CA", "-keyout", str(d / "ca.key"),
        "-out", str(d / "ca.pem"))
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", "/CN=localhost", "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"))
    (d / "ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"), "-CAkey",
        str(d / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", str(d / "ext"),
        "-out", str(d / "server.pem"))
    return d


def gateway_config(port, upstream, ca, http2):
    text = bench.gateway_config(port, upstream).replace(
        f"http://127.0.0.1:{upstream}", f"https://localhost:{upstream}")
    text = text.replace(f"workers = {bench.WORKERS}", "workers = 1")
    text = text.replace("[providers.lucca]", f'[tls]\nca_file = "{ca}"\n\n[providers.lucca]')
    if not http2:
        text = text.replace("api_key = ", "http2 = false\napi_key = ")
        text = text.replace("access_token = ", "http2 = false\naccess_token = ")
        text = text.replace('client_id = "sandbox-missionx-client"',
                            'client_id = "sandbox-missionx-client"\nhttp2 = false')
    return text


def nginx_config(port, upstream, ca):
    return bench.nginx_config(port, upstream, workers=1, name="nginx-tls", scheme="https", upstream_tls=f"""
      proxy_ssl_trusted_certificate {ca};
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;""")


def tree_cpu(pid):
    """CPU seconds of a process and its live children (nginx's workers)."""
    ticks = os.sysconf(os.sysconf_names["SC_CLK_TCK"])
    total = 0
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def oha(url, body, headers, connections, **kw):
    """oha pinned to the back core; TLS to the upstream trusted without a CA file (oha has none)."""
    args = ["taskset", "-c", BACK, "oha", "--no-tui", "--output-format", "json", "-c",
            str(connections), "-m", "POST", "-T", "application/json", "-d", body, "--insecure"]
    if kw.get("http2"):
        args.append("--http2")
    for h in headers:
        args += ["-H", h]
    if kw.get("duration"):
        args += ["-z", f"{kw['duration']}s"]
    if kw.get("requests"):
        args += ["-n", str(kw["requests"])]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    summary, pct = data["summary"], data["latencyPercentiles"]
    if pct.get("p50") is None:
        raise RuntimeError(f"{url}: no answer: {data.get('statusCodeDistribution')} "
                           f"{data.get('errorDistribution')}")
    return {"rps": summary["requestsPerSec"], "p50": pct["p50"] * 1000, "p99": pct["p99"] * 1000,
            "ok": summary["successRate"], "codes": data.get("statusCodeDistribution", {}),
            "total": summary["total"]}


def measured(process, url, body, headers, connections, code, label):
    """One run against `process`: rate, latency, and requests per CPU-second of the process."""
    cpu0 = tree_cpu(process.pid)
    r = oha(url, body, headers, connections, duration=DURATION)
    cpu = tree_cpu(process.pid) - cpu0
    bench.check_codes(label, r, code)
    r["cpu"] = cpu / r["total"] if r["total"] else 0
    r["cores"] = cpu / DURATION
    r["per_core"] = r["rps"] / r["cores"] if r["cores"] else 0
    return r


def main(out_path):
    procs = []
    try:
        pki = make_certificates()
        cert = ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")]
        ca = pki / "ca.pem"
        fast_up, slow_up = bench.free_port(), bench.free_port()
        procs.append(bench.Process("tls-upstream-fast", pinned(BACK, [
            str(BIN), "providers", "--bind", f"127.0.0.1:{fast_up}", "--workers", "1",
            "--no-uniqueness"] + cert), fast_up))
        procs.append(bench.Process("tls-upstream-50ms", pinned(BACK, [
            str(BIN), "providers", "--bind", f"127.0.0.1:{slow_up}", "--workers", "1",
            "--no-uniqueness", "--delay-ms", "50"] + cert), slow_up))
        gateways = {}
        for name, upstream, http2 in (("h2", fast_up, True), ("h1", fast_up, False),
                                      ("h2-50ms", slow_up, True), ("h1-50ms", slow_up, False)):
            port = bench.free_port()
            path = TMP / f"gateway-tls-{name}.toml"
            path.write_text(gateway_config(port, upstream, ca, http2))
            gateways[name] = bench.Process(f"gateway-tls-{name}", pinned(FRONT, [
                str(BIN), "--config", str(path)]), port)
            procs.append(gateways[name])
        nginx_port = bench.free_port()
        (TMP / "nginx-tls.conf").write_text(nginx_config(nginx_port, fast_up, ca))
        nginx = bench.Process("nginx-tls", pinned(FRONT, [
            "nginx", "-c", str(TMP / "nginx-tls.conf"), "-p", str(TMP / "nginx-tls")]), nginx_port)
        procs.append(nginx)
        token = subprocess.run([str(BIN), "token", "--config", str(TMP / "gateway-tls-h2.toml"),
                                "--sub", "bench", "--ttl", "2h"], capture_output=True, text=True,
                               check=True).stdout.strip()
        auth = [f"Authorization: Bearer {token}"]
        idle = {k: gateways[k].status("VmRSS") for k in ("h2-50ms", "h1-50ms")}

        five, one = bench.canonical(5), bench.canonical(1)
        clockify_wire = json.dumps({"name": "Nova Consulting Ltd", "email": "billing@nova.example"})
        clockify_auth = ["X-Api-Key: sandbox-clockify-api-key"]
        clockify_path = f"/clockify/api/v1/workspaces/{bench.WORKSPACE}/clients"
        lucca_wire = json.dumps({"name": "Nova Consulting Ltd", "code": "NOVA", "organizationId": 12})
        lucca_auth = ["Authorization: lucca application=sandbox-lucca-api-key"]

        # Warm-up: connections, TLS sessions, the missionX token.
        for name in ("h2", "h1", "h2-50ms", "h1-50ms"):
            oha(f"http://127.0.0.1:{gateways[name].port}/clients", five, auth, 10, requests=200)
        oha(f"http://127.0.0.1:{nginx_port}{clockify_path}", clockify_wire, clockify_auth, 10, requests=200)

        # 1. Throughput per core, one target, 50 connections.
        sides = {
            "gateway, HTTP/2 to the upstream": (gateways["h2"], f"http://127.0.0.1:{gateways['h2'].port}/clients", one, auth, "207"),
            "gateway, HTTP/1.1 to the upstream": (gateways["h1"], f"http://127.0.0.1:{gateways['h1'].port}/clients", one, auth, "207"),
            "nginx proxy_pass (HTTP/1.1 to the upstream)": (nginx, f"http://127.0.0.1:{nginx_port}{clockify_path}", clockify_wire, clockify_auth, "201"),
        }
        throughput = {k: [] for k in sides}
        for _ in range(RUNS):
            for label, (proc, url, body, headers, code) in sides.items():
                throughput[label].append(measured(proc, url, body, headers, 50, code, label))

        # 2. Fan-out latency: five targets at 50 ms, 50 callers, against the upstream's own.
        # The upstream alone is measured twice: with the callers' 50 connections, and with the
        # 250 calls in flight the gateway's 50 five-target requests put on it (its latency at
        # the load it has behind the gateway).
        fan = {"gw": [], "up": [], "up250": []}
        for _ in range(RUNS):
            r = oha(f"http://127.0.0.1:{gateways['h2-50ms'].port}/clients", five, auth, 50, duration=DURATION)
            bench.check_codes("tls fan-out", r, "207")
            fan["gw"].append(r)
            for key, connections in (("up", 50), ("up250", 250)):
                r = oha(f"https://localhost:{slow_up}/lucca/timmi-project/api/v4/clients", lucca_wire,
                        lucca_auth, connections, duration=DURATION, http2=True)
                bench.check_codes("tls upstream", r, "201")
                fan[key].append(r)

        # 3. 1,000 concurrent five-target requests, 50 ms upstreams: memory and latency, HTTP/2
        # then HTTP/1.1 (each gateway's own peak), and the upstream's own latency at 1,000.
        load = {}
        for name in ("h2-50ms", "h1-50ms"):
            r = oha(f"http://127.0.0.1:{gateways[name].port}/clients", five, auth, 1000, duration=DURATION)
            bench.check_codes(f"1000 connections {name}", r, "207")
            load[name] = {"run": r, "idle_kib": idle[name], "peak_kib": gateways[name].status("VmHWM")}
        up_load = oha(f"https://localhost:{slow_up}/lucca/timmi-project/api/v4/clients", lucca_wire,
                      lucca_auth, 1000, duration=DURATION, http2=True)
        bench.check_codes("upstream at 1000", up_load, "201")

        write(out_path, throughput, fan, load, up_load)
    finally:
        for p in reversed(procs):
            p.stop()


def write(out_path, throughput, fan, load, up_load):
    med = bench.median
    lines = [
        "## 1. Over HTTPS, as in production",
        "",
        "The upstream stand-in serves TLS (a CA made by the script; the gateway trusts it through "
        "`tls.ca_file`, nginx through `proxy_ssl_trusted_certificate`) with HTTP/2 and HTTP/1.1 by "
        "ALPN. Each system under test — a gateway, or nginx — has **1 worker pinned to core 0**; the "
        "upstream and oha are pinned to core 1. nginx keeps upstream connections alive (`keepalive "
        "128`) and reuses TLS sessions (`proxy_ssl_session_reuse on`); nginx speaks HTTP/1.1 to "
        "upstreams. *Per core*: requests per CPU-second of the system under test (from /proc), "
        "which does not depend on which core is the limit.",
        "",
        "### 1.1 Throughput, one target, 50 connections",
        "",
        "| system under test | requests/s | CPU used (cores) | requests per CPU-second | p50 (ms) | p99 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    per_core = {}
    for label, runs in throughput.items():
        per_core[label] = med(runs, "per_core")
        lines.append(f"| {label} | {med(runs, 'rps'):.0f} | {med(runs, 'cores'):.2f} | "
                     f"{per_core[label]:.0f} | {med(runs, 'p50'):.2f} | {med(runs, 'p99'):.2f} |")
    labels = list(throughput)
    nginx = per_core[labels[2]]
    lines += [
        "",
        f"- per core, gateway / nginx: **{per_core[labels[0]] / nginx:.2f}** with HTTP/2, "
        f"**{per_core[labels[1]] / nginx:.2f}** with HTTP/1.1 (target ≥ 0.7)",
        "",
        "### 1.2 Fan-out latency: five targets at 50 ms each (HTTP/2), 50 callers",
        "",
        "| | p50 (ms) | p99 (ms) |",
        "|---|---|---|",
        f"| gateway, 5 targets | {med(fan['gw'], 'p50'):.1f} | {med(fan['gw'], 'p99'):.1f} |",
        f"| one upstream directly, 50 connections (HTTP/2) | {med(fan['up'], 'p50'):.1f} | {med(fan['up'], 'p99'):.1f} |",
        f"| one upstream directly, 250 connections: the load behind the gateway | {med(fan['up250'], 'p50'):.1f} | {med(fan['up250'], 'p99'):.1f} |",
        f"| ratio gateway / upstream at 50 | {med(fan['gw'], 'p50') / med(fan['up'], 'p50'):.3f} | "
        f"{med(fan['gw'], 'p99') / med(fan['up'], 'p99'):.3f} |",
        f"| **ratio gateway / upstream at the same load (250)** | **{med(fan['gw'], 'p50') / med(fan['up250'], 'p50'):.3f}** | "
        f"**{med(fan['gw'], 'p99') / med(fan['up250'], 'p99'):.3f}** |",
        "",
        "Target: p50 ratio ≤ 1.05. Behind the gateway the upstream (one worker, on the core it "
        "shares with oha) serves five calls per request; its own latency at that load is the "
        "fair baseline, the 50-connection one is shown too.",
        "",
        "### 1.3 1,000 concurrent five-target requests, 50 ms HTTPS upstreams",
        "",
        "| gateway → upstream | requests/s | p50 (ms) | p99 (ms) | idle RSS (MiB) | peak RSS (MiB) | "
        "bytes per provider call in flight |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in (("h2-50ms", "HTTP/2"), ("h1-50ms", "HTTP/1.1")):
        x = load[name]
        r = x["run"]
        per_call = (x["peak_kib"] - x["idle_kib"]) * 1024 / 5000
        lines.append(f"| {label} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | "
                     f"{x['idle_kib'] / 1024:.1f} | **{x['peak_kib'] / 1024:.1f}** | {per_call:.0f} |")
    h2 = load["h2-50ms"]["run"]
    lines += [
        f"| upstream directly, 1,000 connections (HTTP/2) | {up_load['rps']:.0f} | "
        f"{up_load['p50']:.0f} | {up_load['p99']:.0f} | | | |",
        "",
        f"- peak RSS with HTTP/2: **{load['h2-50ms']['peak_kib'] / 1024:.1f} MiB** (target ≤ 64 MiB); "
        f"HTTP/1.1: {load['h1-50ms']['peak_kib'] / 1024:.1f} MiB",
        f"- p99 gateway / upstream's own p99 at 1,000 connections: **{h2['p99'] / up_load['p99']:.2f}** "
        "(target ≤ 1.2)",
        "- bytes per provider call in flight: (peak − idle RSS) / 5,000 calls (1,000 requests × 5 "
        "targets), everything the load adds counted.",
        "",
    ]
    pathlib.Path(out_path).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    if not BIN.exists():
        sys.exit(f"{BIN} is missing: run bench/run.sh")
    main(sys.argv[1])
