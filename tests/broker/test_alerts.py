"""Alert rules end to end: a rule over parley_connections fires and resolves as real clients come and go; the
webhook receiver (a Python http.server on loopback) gets both notifications in the documented format
(broker/admin/alerts.cc, AlertEventJson; docs/operations.md "Alerts"), GET /api/v1/alerts shows the state, and
parleyd logs the firing at warn.
"""
import http.server
import json
import os
import queue
import re
import secrets
import threading
import time

import pytest

from helpers import wait_for

TOKEN = secrets.token_hex(16)


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST; answers from `script` (status codes) first, then
    200. `alerts` is a queue of the alert objects received, in order."""

    def __init__(self, script=()):
        self.alerts = queue.Queue()
        self.posts = []  # (path, headers, parsed body)
        self.script = list(script)
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    status = outer.script.pop(0) if outer.script else 200
                    try:
                        doc = json.loads(body)
                    except ValueError:
                        doc = None
                    outer.posts.append((self.path, dict(self.headers), doc, status))
                if status == 200 and isinstance(doc, dict):
                    for a in doc.get("alerts", []):
                        outer.alerts.put(a)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def next_alert(self, timeout=15):
        try:
            return self.alerts.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no webhook notification within %ss (posts so far: %r)" % (timeout, self.posts))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def factory(script=()):
        r = Receiver(script)
        made.append(r)
        return r

    yield factory
    for r in made:
        r.close()


def alert_config(token_file, webhook_url, threshold=3, for_="0s"):
    return """
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
name = "many-connections"
metric = "parley_connections"
function = "value"
op = ">="
threshold = {threshold}
for = "{for_}"
severity = "critical"
description = "three or more clients connected"
""".format(token_file=token_file, url=webhook_url, threshold=threshold, for_=for_)


def token_file(tmp_path):
    path = tmp_path / "admin.token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o600)  # parleyd refuses a token others may read
    return path


def rule(b, name="many-connections"):
    status, body = b.api("GET", "/api/v1/alerts")
    assert status == 200, body
    for r in body["rules"]:
        if r["name"] == name:
            return r, body
    raise AssertionError("no rule %s in %r" % (name, body))


def test_rule_fires_and_resolves_with_webhook_and_admin_api(make_broker, clients, receiver, tmp_path):
    rx = receiver()
    b = make_broker(extra=alert_config(token_file(tmp_path), rx.url()))
    assert b.admin_port, "no 'admin API on' line in the log:\n" + b.log()[-2000:]

    # Before: the rule is there, ok; the API needs the token.
    status, _ = b.api("GET", "/api/v1/alerts", token="wrong-token-wrong-token")
    assert status == 401
    r, body = rule(b)
    assert r["state"] == "ok"
    assert r["metric"] == "parley_connections" and r["function"] == "value"
    assert r["op"] == ">=" and r["threshold"] == 3 and r["for_seconds"] == 0
    assert body["webhook"]["url_set"] is True

    # Three clients: the rule fires within an interval or two.
    conns = [clients(b.port, client_id="alert-%d" % i) for i in range(3)]
    fired = rx.next_alert()
    assert fired["name"] == "many-connections"
    assert fired["state"] == "firing"
    assert fired["metric"] == "parley_connections"
    assert fired["function"] == "value"
    assert fired["op"] == ">="
    assert fired["threshold"] == 3
    assert fired["value"] >= 3
    assert fired["severity"] == "critical"
    assert fired["description"] == "three or more clients connected"
    assert isinstance(fired["since_ms"], int) and isinstance(fired["at_ms"], int)
    assert abs(fired["at_ms"] - time.time() * 1000) < 60_000
    path, headers, doc, _ = rx.posts[0]
    assert path == "/hook"
    assert headers.get("Content-Type") == "application/json"
    assert headers.get("User-Agent", "").startswith("parley/")
    assert doc["version"] and doc["node"]

    r, body = rule(b)
    assert r["state"] == "firing"
    assert r["value"] >= 3
    assert r["since_ms"] == fired["since_ms"]
    assert wait_for(lambda: b.api("GET", "/api/v1/alerts")[1]["webhook"]["sent"] >= 1)
    status, st = b.api("GET", "/api/v1/status")
    assert status == 200 and st.get("alerts_firing") == 1

    # The firing is logged at warn, in the documented form.
    assert wait_for(lambda: re.search(r"alert firing: many-connections parley_connections value=3 >= 3", b.log())), \
        b.log()[-3000:]
    assert re.search(r"\[(warning|warn)\] alert firing: many-connections", b.log()), b.log()[-3000:]

    # The clients leave: resolved, for the same episode.
    for c in conns:
        c.disconnect()
    resolved = rx.next_alert()
    assert resolved["name"] == "many-connections"
    assert resolved["state"] == "resolved"
    assert resolved["value"] < 3
    assert resolved["since_ms"] == fired["since_ms"]
    assert resolved["at_ms"] >= fired["at_ms"]
    assert wait_for(lambda: rule(b)[0]["state"] == "ok")
    assert "alert resolved: many-connections" in b.log()

    # Metrics: the rule's gauge and the webhook's counter.
    status, text = b.api("GET", "/metrics")
    assert status == 200
    assert re.search(r'parley_alerts_firing\{rule="many-connections"\} 0', text), text
    assert re.search(r'parley_webhook_requests_total\{target="alert",outcome="ok"\} [2-9]', text), text


def test_webhook_retries_a_failing_receiver(make_broker, clients, receiver, tmp_path):
    rx = receiver(script=[500])
    b = make_broker(extra=alert_config(token_file(tmp_path), rx.url(), threshold=1))
    clients(b.port, client_id="one")
    fired = rx.next_alert(timeout=20)  # after the 500, a retry (about a second later) delivers it
    assert fired["state"] == "firing"
    assert [p[3] for p in rx.posts[:2]] == [500, 200]
    assert rx.posts[0][2] == rx.posts[1][2]  # the same body
    status, text = b.api("GET", "/metrics")
    assert re.search(r'parley_webhook_requests_total\{target="alert",outcome="http_error"\} 1', text), text


def test_pending_until_for_has_passed(make_broker, clients, receiver, tmp_path):
    rx = receiver()
    b = make_broker(extra=alert_config(token_file(tmp_path), rx.url(), threshold=1, for_="3s"))
    clients(b.port, client_id="one")
    assert wait_for(lambda: rule(b)[0]["state"] == "pending", timeout=10)
    pending_since = rule(b)[0]["since_ms"]
    with pytest.raises(queue.Empty):
        rx.alerts.get(timeout=1.5)  # not yet
    fired = rx.next_alert(timeout=15)
    assert fired["state"] == "firing"
    assert fired["since_ms"] == pending_since
    assert fired["at_ms"] - fired["since_ms"] >= 3000
