"""Draining a node through the admin API (docs/admin-api.md, "Drain"): POST /api/v1/drain disconnects the connected
clients at the given rate — MQTT 5 clients with DISCONNECT 0x9C Use another server carrying the Server Reference,
3.1.1 clients by closing the connection — refuses new CONNECTs meanwhile (0x9C + reference / 3.1.1 code 3), makes
/readyz answer 503 and parley_draining 1; sessions are kept, so after a restart on the same data dir every
persistent session resumes (session present) and gets the QoS 1 messages queued for it while it was away."""
import json
import pathlib
import re
import signal
import socket
import tempfile
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from conftest import Broker
from helpers import (CONNACK, PUBACK, PUBLISH, P_SERVER_REFERENCE, P_SESSION_EXPIRY, V5, V311, PahoClient, RawClient,
                     mqtt_ack, props, unique_id, wait_for)

TOKEN = "drain-test-token-5f0c1a2b3c4d5e6f"
REFERENCE = "node-b.example:1883"
EXPIRY = 300
CLIENTS = 30
RATE = 10


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Admin:
    """The admin API over HTTP, with the bearer token."""

    def __init__(self, port, token=TOKEN):
        self.port, self.token = port, token

    def raw(self, method, path, body=None, token=True):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def call(self, method, path, body=None, token=True):
        status, text = self.raw(method, path, body, token)
        return status, (json.loads(text) if text else None)


def admin_config(admin_port, token_file):
    return textwrap.dedent("""\
        [log]
        level = "debug"

        [[listener]]
        name = "mqtt"
        bind = "127.0.0.1"
        port = 0

        [admin]
        enabled = true
        bind = "127.0.0.1"
        port = {port}
        token_file = "{token_file}"
        """).format(port=admin_port, token_file=token_file)


@pytest.fixture
def drained_broker():
    """A parleyd with persistent storage and the admin API on a known port; stopped at teardown."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="parley-drain-"))
    token_file = tmp / "admin.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    admin_port = free_port()
    b = Broker(admin_config(admin_port, token_file), tmp)
    b.admin = Admin(admin_port)
    yield b
    rc = b.stop()
    assert rc in (0, None) or rc == -signal.SIGKILL, "parleyd exited with %s\n%s" % (rc, b.log()[-3000:])


def wait_admin_up(b):
    """Until the admin listener answers (it may start after the MQTT listeners)."""
    m = re.search(r"admin API on https?://[^ ]+:(\d+)", b.log())
    if m:
        b.admin.port = int(m.group(1))

    def up():
        try:
            return b.admin.call("GET", "/healthz", token=False)[0] == 200
        except OSError:
            return False

    assert wait_for(up, timeout=10), "admin API not answering on %d\n%s" % (b.admin.port, b.log()[-3000:])


def restart(b):
    """SIGTERM, then start again with the same arguments (same --data-dir). The log starts afresh so that
    Broker.start() reads this run's "listening on" line."""
    rc = b.stop()
    assert rc == 0, "parleyd stopped with %s\n%s" % (rc, b.log()[-3000:])
    n = len(list(b.dir.glob("broker.log.*"))) + 1
    b.logfile.rename(b.dir / ("broker.log.%d" % n))
    b.start()
    wait_admin_up(b)


class Tracked(PahoClient):
    """A Paho client that records when, with which reason code and properties, it was disconnected."""

    def __init__(self, *args, **kwargs):
        self.disconnected_at = None
        super().__init__(*args, **kwargs)

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnected_at = time.time()
        super()._on_disconnect(client, userdata, rc, properties)


def test_drain_disconnects_at_the_rate_refuses_new_clients_and_keeps_sessions(drained_broker):
    b = drained_broker
    wait_admin_up(b)
    api = b.admin

    # 30 clients: every other one MQTT 5 with a Session Expiry Interval, the rest 3.1.1 with clean session off.
    clients = []
    try:
        for i in range(CLIENTS):
            v5 = i % 2 == 0
            cid = unique_id("drain%02d" % i)
            c = Tracked(b.port, client_id=cid, version=V5 if v5 else V311, clean=False,
                        properties=props(SessionExpiryInterval=EXPIRY) if v5 else None, connect=False)
            clients.append(c)
            assert c.connect() == 0
            assert c.subscribe("drain/" + cid, qos=1) == [1]
        status, body = api.call("GET", "/api/v1/drain")
        assert status == 200 and body["drain"]["active"] is False, body
        status, body = api.call("GET", "/readyz", token=False)
        assert status == 200 and body == {"ready": True}, body
        status, _ = api.call("POST", "/api/v1/drain", {"rate": RATE}, token=False)
        assert status == 401

        # ---- drain
        started = time.time()
        status, body = api.call("POST", "/api/v1/drain", {"rate": RATE, "server_reference": REFERENCE})
        assert status == 202, body
        d = body["drain"]
        assert d["active"] is True and d["rate"] == RATE and d["server_reference"] == REFERENCE, d
        assert isinstance(d["started_at_ms"], int)

        # Meanwhile: not ready, parley_draining 1, and new CONNECTs are refused.
        status, body = api.call("GET", "/readyz", token=False)
        assert status == 503 and body["ready"] is False and "draining" in body["reasons"], body
        status, text = api.raw("GET", "/metrics")
        assert status == 200
        assert re.search(rb"^parley_draining 1(\.0)?$", text, re.M), text[-2000:]
        late = RawClient(b.port, version=5)
        ack = late.connect(unique_id("late"), expect_reason=None)
        assert ack.type == CONNACK and ack.reason == 0x9C, ack
        assert ack.props.get(P_SERVER_REFERENCE) == REFERENCE, ack
        late.close()
        late3 = RawClient(b.port, version=4)
        ack = late3.connect(unique_id("late3"), expect_reason=None)
        assert ack.reason == 3, ack  # 3.1.1: Server unavailable
        late3.close()
        # Paced: one second in, about RATE clients are gone, not all of them.
        time.sleep(max(0.0, started + 1.0 - time.time()))
        early = sum(1 for c in clients if c.disconnected_at is not None)
        assert early <= RATE + 5, "%d of %d disconnected after 1 s at %d/s" % (early, CLIENTS, RATE)
        status, body = api.call("GET", "/api/v1/drain")
        assert status == 200 and body["drain"]["remaining"] >= CLIENTS - RATE - 5, body

        assert wait_for(lambda: all(c.disconnected_at is not None for c in clients), timeout=15), \
            "%d of %d disconnected" % (sum(1 for c in clients if c.disconnected_at), CLIENTS)
        times = sorted(c.disconnected_at for c in clients)
        span = times[-1] - times[0]
        print("drain: %d clients disconnected over %.2f s (first after %.2f s)" % (CLIENTS, span, times[0] - started))
        # 30 clients at 10/s: about 2.9 s from the first disconnect to the last.
        assert 2.0 <= span <= 6.0, "disconnects spread over %.2f s" % span
        for i, c in enumerate(clients):
            if i % 2 == 0:
                assert c.disconnect_rc == 0x9C, (c.client._client_id, c.disconnect_rc)
                ref = getattr(c.disconnect_props, "ServerReference", None)
                assert ref == REFERENCE, (c.client._client_id, c.disconnect_props)
            else:
                assert c.disconnect_rc != 0  # 3.1.1: the connection was closed (no DISCONNECT exists)

        def drained():
            s, body = api.call("GET", "/api/v1/drain")
            return body["drain"]["remaining"] == 0 and body["drain"]["disconnected"] == CLIENTS and body

        body = wait_for(drained, timeout=5)
        assert body, api.call("GET", "/api/v1/drain")

        # Every session is kept, offline.
        def offline():
            s, body = api.call("GET", "/api/v1/sessions?state=offline&limit=1000")
            return len(body["sessions"]) >= CLIENTS and body

        body = wait_for(offline, timeout=10)
        assert body, api.call("GET", "/api/v1/sessions?limit=1000")
        ids = {s["client_id"] for s in body["sessions"]}
        assert all(c.client._client_id.decode() in ids for c in clients)

        # ---- stop draining: ready again, new clients accepted
        status, body = api.call("DELETE", "/api/v1/drain")
        assert status == 200 and body["drain"]["active"] is False, body
        status, body = api.call("GET", "/readyz", token=False)
        assert status == 200, body

        # A QoS 1 message for each session while its client is away.
        pub = RawClient(b.port, version=5)
        pub.connect(unique_id("pub"))
        for n, c in enumerate(clients, start=1):
            ack = pub.publish("drain/" + c.client._client_id.decode(), b"queued-%d" % n, qos=1, packet_id=n)
            assert ack.type == PUBACK and ack.reason == 0, ack
        pub.disconnect()
    finally:
        for c in clients:
            c.stop()

    # ---- restart on the same data dir: every session resumes with its message
    restart(b)
    for n, c in enumerate(clients, start=1):
        cid = c.client._client_id.decode()
        v5 = c.version == V5
        r = RawClient(b.port, version=5 if v5 else 4)
        ack = r.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, EXPIRY)] if v5 else None)
        assert ack.session_present, (cid, ack)
        p = r.expect(PUBLISH)
        assert p.topic == "drain/" + cid and p.payload == b"queued-%d" % n and p.qos == 1, p
        r.send(mqtt_ack(PUBACK, p.packet_id, version=r.version))
        r.disconnect()
