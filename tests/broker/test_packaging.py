"""Operator packaging (docs/operations.md): the Grafana dashboard, the systemd unit and the Dockerfile.

- The dashboard parses, and every metric family its PromQL uses is exported by a running parleyd's /metrics
  (scraped with the admin bearer token, parsed with prometheus_client), with the labels its `by (...)`
  clauses group on.
- conf/parleyd.service passes `systemd-analyze verify` (skipped where systemd-analyze is absent).
- conf/Dockerfile's runtime packages exist in apt and provide every shared library parleyd and parleyctl
  link (skipped where apt-cache is absent).
"""
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request

import pytest
from paho.mqtt.packettypes import PacketTypes

from conftest import PARLEYD, ROOT
from helpers import clients, listener_ports, props, unique_id, wait_for  # noqa: F401

CONF = ROOT / "conf"
DASHBOARD = CONF / "grafana" / "parley-dashboard.json"
UNIT = CONF / "parleyd.service"
DOCKERFILE = CONF / "Dockerfile"

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labels a `by (...)` may name that parleyd does not export: Prometheus adds `instance` (and `job`), and
# `le` is a histogram's bucket label.
ADDED_LABELS = {"instance", "job", "le"}


# ---------------------------------------------------------------------------------------------------------
# The dashboard


def dashboard_queries():
    """Every PromQL string of the dashboard: panel targets and template variable queries.
    Returns (target expressions, variable queries)."""
    d = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                exprs.append(t["expr"])
            walk(p.get("panels", []))

    walk(d["panels"])
    variables = []
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]
            variables.append(q["query"] if isinstance(q, dict) else q)
    return exprs, variables


def metric_names(expr):
    return set(re.findall(r"\bparley_[a-zA-Z0-9_]+", expr))


def by_labels(expr):
    labels = set()
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        labels |= {x.strip() for x in group.split(",") if x.strip()}
    return labels - ADDED_LABELS


def test_dashboard_parses_and_is_self_consistent():
    d = json.loads(DASHBOARD.read_text())
    assert d["title"] and d["uid"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"
    rows = [p["title"] for p in d["panels"] if p["type"] == "row"]
    for wanted in ("Connections", "Messages", "Storage", "IM", "Process", "Alerts"):
        assert wanted in rows, rows
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs, _ = dashboard_queries()
    assert len(exprs) > 30
    for p in d["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            e = t["expr"]
            assert e.count("(") == e.count(")"), e
            # One family per query, so a `by (...)` is checked against that family's labels below.
            assert len(metric_names(e)) == 1, e
            assert 'instance=~"$instance"' in e, "every query follows the instance variable: " + e
            # Counters are read through rate(), histograms through histogram_quantile over _bucket.
            for name in metric_names(e):
                if name.endswith("_total"):
                    assert "rate(" + name in e, e
                if name.endswith("_bucket"):
                    assert e.startswith("histogram_quantile(") and "le)" in e, e


# ---------------------------------------------------------------------------------------------------------
# /metrics of a running broker against the dashboard


def admin_port_of(broker, timeout=5):
    """The admin API's port: the fixture's (it starts parleyd with --admin-port 0), else the log's
    "admin API on http://ADDR:PORT" line."""
    if getattr(broker, "admin_port", None):
        return broker.admin_port
    found = wait_for(lambda: re.search(r"admin API on https?://\S+:(\d+)", broker.log()), timeout)
    assert found, "no 'admin API on' line in the log:\n" + broker.log()[-3000:]
    return int(found.group(1))


class WebhookReceiver:
    """A local HTTP server that records the bodies POSTed to it (the alert webhook's target)."""

    def __init__(self):
        bodies = self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                bodies.append(self.rfile.read(n))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/alert" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook():
    w = WebhookReceiver()
    yield w
    w.close()


def http_get(url, token=None, timeout=5):
    """(status, body text) of a GET; HTTP errors are returned, not raised (status 0: no connection)."""
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:  # not listening (yet)
        return 0, str(e)


def scrape(base, token):
    # Debian's python3-prometheus-client (scripts/deps.sh test installs it).
    parser = pytest.importorskip("prometheus_client.parser")
    status, text = http_get(base + "/metrics", token)
    assert status == 200, (status, text[:500])
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def family_of(name, families):
    """The parsed family a PromQL metric name refers to, or None. prometheus_client names a counter's
    family without `_total` and a histogram's without `_bucket` / `_sum` / `_count`."""
    if name in families:
        return families[name]
    if name.endswith("_total") and name[: -len("_total")] in families:
        f = families[name[: -len("_total")]]
        return f if f.type == "counter" else None
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in families:
            f = families[name[: -len(suffix)]]
            return f if f.type == "histogram" else None
    return None


def value(families, name, **labels):
    """The sum of the samples named `name` (as in the text format) with these labels; 0 when there are none."""
    f = family_of(name, families)
    if f is None:
        return 0
    return sum(s.value for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_dashboard_metric_families_are_exported(make_broker, clients, webhook, tmp_path):
    # The token file must not be readable by others (parleyd refuses it otherwise).
    token = "packaging-test-" + os.urandom(16).hex()
    token_file = tmp_path / "admin.token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (token + "\n").encode())
    os.close(fd)
    extra = """\
[admin]
enabled = true
bind = "127.0.0.1"
port = 0
token_file = "{token_file}"

[alerts]
interval = "1s"
webhook_url = "{url}"
webhook_timeout = "2s"

[[alerts.rule]]
name = "packaging-always"
metric = "parley_workers"
function = "value"
op = ">="
threshold = 1
for = "0s"
severity = "info"
description = "always fires: gives the dashboard's Alerts row something to show"
""".format(url=webhook.url, token_file=token_file)
    b = make_broker(extra=extra)
    mqtt_port = listener_ports(b)["mqtt"]
    base = "http://127.0.0.1:%d" % admin_port_of(b)
    assert wait_for(lambda: http_get(base + "/healthz")[0] == 200, timeout=10), \
        "the admin API did not answer /healthz:\n" + b.log()[-3000:]

    # Traffic for the panels: a persistent MQTT 5 subscriber (its SUBSCRIBE is a durable write), a QoS 1
    # message to it, and an IM request (sync) from a user.
    topic = "packaging/" + unique_id()
    sub = clients(mqtt_port, client_id=unique_id("sub"), clean=False,
                  properties=props(PacketTypes.CONNECT, SessionExpiryInterval=300))
    assert sub.subscribe(topic, qos=1) == [1]
    pub = clients(mqtt_port, client_id=unique_id("pub"))
    pub.publish(topic, b"hello", qos=1)
    assert sub.get().payload == b"hello"
    im = clients(mqtt_port, client_id=unique_id("im-dev"), username="packaging-user")
    im.publish("$im/v1/req/json", json.dumps({"reqId": "1", "sync": {}}).encode(), qos=1)

    # /metrics needs the token.
    assert http_get(base + "/metrics")[0] == 401
    assert http_get(base + "/metrics", "wrong-" + token)[0] == 401

    # Wait until the alert rule fired and its webhook call was counted, so every family has had a chance
    # to get a sample.
    def settled():
        fams = scrape(base, token)
        firing = value(fams, "parley_alerts_firing", rule="packaging-always")
        calls = value(fams, "parley_webhook_requests_total", target="alert")
        return fams if firing == 1 and calls else None

    families = wait_for(settled, timeout=15, interval=0.5) or scrape(base, token)

    exprs, variable_queries = dashboard_queries()
    missing = sorted({n for e in exprs + variable_queries for n in metric_names(e) if family_of(n, families) is None})
    assert not missing, "families the dashboard uses that /metrics lacks: %s\nexported: %s" % (
        missing, sorted(families))

    # Each `by (...)` groups on labels the family's samples carry (checked where the family has samples).
    for e in exprs:
        wanted = by_labels(e)
        for n in metric_names(e):
            f = family_of(n, families)
            have = set()
            for s in f.samples:
                have |= set(s.labels)
            if f.samples:
                assert wanted <= have, "%s: by %s, but %s samples have labels %s" % (e, wanted, f.name, have)

    # The traffic above shows up where the dashboard looks for it.
    assert value(families, "parley_connections", listener="mqtt", protocol="mqtt", version="5.0") >= 3
    assert value(families, "parley_connects_total", listener="mqtt") >= 3
    assert value(families, "parley_messages_received_total", qos="1") >= 1
    assert value(families, "parley_messages_sent_total", qos="1") >= 1
    assert value(families, "parley_storage_write_seconds_count") >= 1
    assert value(families, "parley_build_info") == 1
    assert value(families, "parley_alerts_firing", rule="packaging-always") == 1, b.log()[-2000:]
    assert value(families, "parley_webhook_requests_total", target="alert", outcome="ok") >= 1, \
        "webhook bodies received: %r" % webhook.bodies
    assert wait_for(lambda: value(scrape(base, token), "parley_im_requests_total", op="sync") >= 1, 5)


# ---------------------------------------------------------------------------------------------------------
# systemd


def unit_lines():
    out = []
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, val = line.partition("=")
            out.append((key.strip(), val.strip()))
    return out


def test_systemd_unit_settings():
    settings = {}
    for k, v in unit_lines():
        settings.setdefault(k, []).append(v)
    assert settings["Type"] == ["exec"]  # parleyd does not call sd_notify
    assert settings["ExecStart"][0].startswith("/usr/local/bin/parleyd ")
    assert "-HUP $MAINPID" in settings["ExecReload"][0]
    assert settings["KillSignal"] == ["SIGTERM"]
    assert settings["LimitNOFILE"] == ["1048576"]
    assert settings["Restart"] == ["on-failure"]
    assert "parley" in settings["StateDirectory"][0].split()
    assert settings["NoNewPrivileges"] == ["yes"] and settings["ProtectSystem"] == ["strict"]
    assert settings["CapabilityBoundingSet"] == [""]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path):
    # `verify` also checks that ExecStart's program exists: point it at the parleyd under test (or any
    # executable) instead of /usr/local/bin/parleyd, which a build machine need not have.
    exe = PARLEYD if os.access(PARLEYD, os.X_OK) else shutil.which("true")
    unit = tmp_path / "parleyd.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/parleyd", exe))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "parleyd.service" not in out, "warnings about the unit:\n" + out


# ---------------------------------------------------------------------------------------------------------
# Docker


def runtime_packages():
    """The packages the runtime stage (the last FROM) installs with apt-get."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM\s", text, flags=re.M)
    runtime = stages[-1]
    m = re.search(r"apt-get install ((?:\s*-\S+)*)\s+([^&]+)", runtime)
    assert m, "no apt-get install in the runtime stage"
    return m.group(2).split()


def test_dockerfile_shape():
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM debian:12-slim|^FROM \$\{DEBIAN_IMAGE\}", text, flags=re.M)) == 2
    assert "ARG DEBIAN_IMAGE=debian:12-slim" in text
    assert "-DPARLEY_TESTS=OFF" in text and "scripts/deps.sh build" in text
    for line in ("USER parley", "VOLUME /var/lib/parley", "EXPOSE 1883 8080", "STOPSIGNAL SIGTERM"):
        assert re.search("^" + re.escape(line) + "$", text, flags=re.M), line
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, flags=re.M)
    assert (CONF / "docker.toml").exists() and "COPY conf/docker.toml /etc/parley/parley.toml" in text
    docker_toml = (CONF / "docker.toml").read_text()
    assert 'data_dir = "/var/lib/parley/data"' in docker_toml and 'bind = "0.0.0.0"' in docker_toml


def package_owners(paths):
    """{path: Debian package} for the files dpkg knows (one dpkg -S call; usrmerge: tried under /lib too)."""
    owners = {}
    todo = {p: [p, p.replace("/usr/lib/", "/lib/", 1)] for p in paths}
    for attempt in range(2):
        ask = {cands[attempt]: p for p, cands in todo.items() if p not in owners}
        if not ask:
            break
        r = subprocess.run(["dpkg", "-S", *ask], capture_output=True, text=True, timeout=60)
        for line in r.stdout.splitlines():
            pkg, _, path = line.partition(": ")
            if path in ask:
                owners[ask[path]] = pkg.split(":")[0].split(",")[0]
    return owners


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="apt-cache is not installed")
def test_dockerfile_runtime_packages_exist_and_cover_parleyd():
    pkgs = runtime_packages()
    assert "librocksdb7.8" in pkgs and "curl" in pkgs
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *pkgs], capture_output=True, text=True, timeout=120)
    found = set(re.findall(r"^Package: (\S+)$", r.stdout, flags=re.M))
    assert found == set(pkgs), "apt has no package %s: %s" % (sorted(set(pkgs) - found), r.stderr)

    # Every shared library parleyd and parleyctl link comes from one of them or their dependencies (or the base
    # image). parleyctl is looked for in the build dir parleyd comes from.
    parleyctl = os.path.join(os.path.dirname(PARLEYD), "..", "..", "tools", "ctl", "parleyctl")
    binaries = [b for b in (PARLEYD, parleyctl) if os.access(b, os.X_OK)]
    if not (binaries and shutil.which("ldd") and shutil.which("dpkg")):
        return
    r = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
                        "--no-breaks", "--no-replaces", "--no-enhances", *pkgs],
                       capture_output=True, text=True, timeout=120)
    closure = {line.split(":")[0] for line in r.stdout.splitlines() if line and not line.startswith((" ", "<"))}
    paths = set()
    for binary in binaries:
        libs = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=60).stdout
        paths |= {os.path.realpath(m.group(1)) for m in re.finditer(r"=>\s+(/\S+)", libs)}
    uncovered = []
    for path, pkg in sorted(package_owners(paths).items()):
        if re.match(r"lib(asan|ubsan|tsan|lsan)\d*$", pkg):
            continue  # sanitizer builds only
        if pkg in ("libc6", "libgcc-s1", "zlib1g"):
            continue  # in debian:12-slim already
        if pkg not in closure:
            uncovered.append((path, pkg))
    # A library no package owns (a local build) is not checked.
    assert not uncovered, "the binaries need libraries the runtime stage does not install: %s" % uncovered
