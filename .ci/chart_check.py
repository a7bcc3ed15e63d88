"""Lints and renders the Helm chart with every values file in helm/ci/, validates each rendered
manifest against the Kubernetes schemas, and checks that the values meant to fail do fail with a
clear message. Writes the rendered manifests to the directory given as argument (for checkov)."""

import json
import pathlib
import subprocess
import sys

import helm_python
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "clients-gateway"
VALUES = ROOT / "helm" / "ci"
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]
# Kinds that are not in the Kubernetes schemas (CRDs), checked by shape instead.
CRDS = {"ServiceMonitor"}

GATEWAY = ROOT / "target" / "debug" / "clients-gateway"
SECRET_DIR = "/var/run/secrets/clients-gateway"
CA_DIR = "/etc/clients-gateway-ca"
# A CA certificate standing for the platform's bundle (a ConfigMap in a cluster).
PLATFORM_CA = ROOT / "helm" / "ci" / "platform-ca.pem"
SECRET_VALUES = {
    "redis-url": "redis://127.0.0.1:6379/0",
    "proxy-url": "http://egress:ci-proxy-password@proxy.internal:3128",
    "operations-key": "Y2ktb3BlcmF0aW9ucy1rZXktb2YtMzItYnl0ZXMhISE=",
    "operations-key-previous-0": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
}
# A webhook's signing secret (webhook-<name>): two lines, as during a rotation.
WEBHOOK_SECRET = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
                  "whsec_c2Vjb25kLXdlYmhvb2stc2VjcmV0LW9mLTMyLWJ5dGU=")


def check_config(values_name, toml_text):
    """The rendered configuration must be one the gateway accepts (it refuses unknown keys)."""
    import re
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        for key in set(re.findall(SECRET_DIR + r"/([a-z0-9-]+)", toml_text)):
            standin = WEBHOOK_SECRET if key.startswith("webhook-") else "x" * 40
            pathlib.Path(tmp, key).write_text(SECRET_VALUES.get(key, standin) + "\n")
        ca_dir = pathlib.Path(tmp, "ca")
        ca_dir.mkdir()
        for key in set(re.findall(CA_DIR + r"/([-._a-zA-Z0-9]+)", toml_text)):
            (ca_dir / key).write_text(PLATFORM_CA.read_text())
        config = pathlib.Path(tmp, "gateway.toml")
        config.write_text(toml_text.replace(SECRET_DIR, tmp).replace(CA_DIR, str(ca_dir)))
        result = subprocess.run([str(GATEWAY), "check-config", "--config", str(config)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            failures.append(f"{values_name}: the gateway refuses the rendered configuration: {result.stderr}")


def check_ops_port(values_name, values, doc):
    """The ops listener (probes, /metrics) is never reachable where the API is: not on the API's
    Service, and the network policy opens it only to named sources (the scraper)."""
    ops = ((values.get("config") or {}).get("server") or {}).get("opsPort", 8081)
    if doc["kind"] == "Service" and doc["metadata"]["labels"].get("app.kubernetes.io/component") != "metrics":
        if any(p.get("name") == "ops" or p.get("port") == ops for p in doc["spec"]["ports"]):
            failures.append(f"{values_name}: the API's Service {doc['metadata']['name']} exposes the ops port")
    if doc["kind"] == "NetworkPolicy":
        for rule in doc["spec"].get("ingress") or []:
            if any(p.get("port") == ops for p in rule.get("ports") or []) and not rule.get("from"):
                failures.append(f"{values_name}: the network policy opens the ops port to any source")


# Keys the chart sets on purpose to something other than the gateway's default, and why.
CHART_CHOICES = {
    "server.bind": "the container listens on every interface",
    "server.ops_bind": "the probes and the scraper have their own port in a pod",
    "telemetry.log_format": "JSON lines for the cluster's log pipeline",
    "providers.*.enabled": "a provider is switched on in the chart with its credential",
}


def chart_choice(path):
    parts = path.split(".")
    return path in CHART_CHOICES or (
        parts[0] == "providers" and ".".join(["providers", "*"] + parts[2:]) in CHART_CHOICES)


def same(default, value):
    """Equal, URLs compared without a trailing slash (the gateway stores them with one)."""
    if isinstance(default, str) and isinstance(value, str) and default.startswith("http"):
        return default.rstrip("/") == value.rstrip("/")
    return default == value


def reference_defaults():
    """Every key's default, as the gateway's own settings types give them."""
    out = subprocess.run([str(GATEWAY), "config-reference", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    return {k["path"]: k["default"] for k in json.loads(out)}


def check_defaults(values_name, toml_text):
    """The chart's defaults are the gateway's: every key the default values render equals the
    reference's default, but for the chart's documented choices."""
    import tomllib
    defaults = reference_defaults()
    rendered = tomllib.loads(toml_text)

    def walk(prefix, table):
        for key, value in table.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(path, value)
            elif key.endswith("_file"):
                continue  # where the chart mounts a secret, not a default
            elif path in defaults and not chart_choice(path) and not same(defaults[path], value):
                failures.append(f"{values_name}: the chart renders {path} = {value!r}, "
                                f"the gateway's default is {defaults[path]!r} "
                                "(change one, or list it in CHART_CHOICES with the reason)")
    walk("", rendered)


def expected_failure(values_file):
    """A must-fail values file starts with `# must fail with: <part of the message>`."""
    first = values_file.read_text().splitlines()[0]
    prefix = "# must fail with: "
    if not first.startswith(prefix):
        raise SystemExit(f"{values_file.name}: a must-fail file starts with '{prefix}...'")
    return first[len(prefix):].strip()


out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
failures = []

for values_file in sorted(VALUES.glob("*.yaml")):
    values = yaml.safe_load(values_file.read_text()) or {}
    must_fail = values_file.name.startswith("must-fail")
    try:
        lint = helm_python.lint(str(CHART), values, strict=True, namespace="gateway")
        rendered = helm_python.Chart.load(str(CHART)).render(values, name="cg", namespace="gateway", is_install=True)
    except helm_python.HelmError as e:
        if must_fail and expected_failure(values_file) in str(e):
            print(f"ok   {values_file.name}: refused as expected: {str(e).splitlines()[0][:160]}")
            continue
        failures.append(f"{values_file.name}: {e}")
        print(f"FAIL {values_file.name}: {e}")
        continue
    if must_fail:
        failures.append(f"{values_file.name}: rendered, but must be refused")
        continue
    messages = [m for m in (lint.get("messages") or []) if str(m.get("severity", "")).upper() not in ("INFO", "1")]
    if messages:
        failures.append(f"{values_file.name}: lint: {messages}")
    target = out / values_file.stem
    target.mkdir(exist_ok=True)
    documents = 0
    for template, text in rendered.items():
        if template.endswith("NOTES.txt"):
            if "swagger-ui" not in text:
                failures.append(f"{values_file.name}: NOTES.txt does not tell how to reach Swagger UI")
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            documents += 1
            name = f"{doc['kind']}-{doc['metadata']['name']}.yaml"
            path = target / name
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            if doc["kind"] == "ConfigMap":
                check_config(values_file.name, doc["data"]["gateway.toml"])
                if values_file.name == "defaults.yaml":
                    check_defaults(values_file.name, doc["data"]["gateway.toml"])
            check_ops_port(values_file.name, values, doc)
            if doc["kind"] in CRDS:
                ok = doc.get("apiVersion") == "monitoring.coreos.com/v1" and doc["spec"]["endpoints"][0]["path"] == "/metrics"
                if not ok:
                    failures.append(f"{values_file.name}: {name} is not a valid ServiceMonitor")
                continue
            for version in KUBERNETES_VERSIONS:
                result = subprocess.run(
                    ["kubernetes-validate", "--strict", "--quiet", "-k", version, str(path)],
                    capture_output=True, text=True)
                if result.returncode != 0:
                    failures.append(f"{values_file.name}: {name} (k8s {version}): {result.stdout}{result.stderr}")
    print(f"ok   {values_file.name}: {documents} manifests rendered and validated")

if failures:
    print("\n".join(["", "chart check failed:"] + failures))
    sys.exit(1)
