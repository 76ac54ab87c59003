"""The admin API's operator endpoints against a running parleyd (docs/admin-api.md): authentication, health,
status, reload (SIGHUP and API) of a changed ACL, users, bans, log level, JSON logs, /metrics."""
import json
import signal
import subprocess
import time

import pytest

from helpers import V311, V5, unique_id, wait_for
from prom import parse_prometheus  # noqa: E402  (tests/broker/prom.py)


def test_health_is_public_everything_else_needs_the_token(make_broker):
    b = make_broker()
    assert b.admin_port
    assert b.api("GET", "/healthz", token="") == (200, {"status": "ok"})
    assert b.api("GET", "/readyz", token="") == (200, {"ready": True})
    status, body = b.api("GET", "/api/v1/status", token="")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = b.api("GET", "/api/v1/status", token="x" * 64)
    assert status == 401
    status, body = b.api("GET", "/metrics", token="")
    assert status == 401
    status, body = b.api("GET", "/api/v1/status")
    assert status == 200
    assert body["listeners"][0]["port"] == b.port
    assert body["workers"] >= 1 and body["version"]
    assert b.api("GET", "/api/v1/nope")[0] == 404
    assert b.api("DELETE", "/api/v1/status")[0] == 405
    # The token file is private, and never appears in the log.
    mode = (b.dir / "data" / "admin.token").stat().st_mode & 0o777
    assert mode == 0o600
    assert b.admin_token() not in b.log()


ACL_A = "user alice\ntopic write a/#\n"
ACL_B = "user alice\ntopic write b/#\n"


def publish_rc(port, clients, topic):
    """The PUBACK reason code alice gets for a QoS 1 PUBLISH to `topic` (MQTT 5), success (0x10, no
    subscribers) read as 0."""
    c = clients.raw(port, version=5)
    c.connect(unique_id("alice"), username="alice")
    rc = c.publish(topic, b"x", qos=1).reason
    c.disconnect()
    return 0 if rc == 0x10 else rc


def test_reload_applies_a_changed_acl_by_sighup_and_by_api(make_broker, clients):
    b = make_broker(auth='acl_file = "acl"', files={"acl": ACL_A})
    assert publish_rc(b.port, clients, "a/1") == 0
    assert publish_rc(b.port, clients, "b/1") == 0x87

    (b.dir / "acl").write_text(ACL_B)
    b.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload: applied auth.acl_file" in b.log())
    assert publish_rc(b.port, clients, "b/1") == 0
    assert publish_rc(b.port, clients, "a/1") == 0x87

    # Through the API: the answer lists what was applied and what needs a restart.
    (b.dir / "acl").write_text(ACL_A)
    cfg = b.config.read_text().replace("[limits]\n", "[limits]\nmax_qos = 1\n")
    b.config.write_text(cfg)
    status, check = b.api("GET", "/api/v1/config/check")
    assert status == 200 and check["ok"]
    assert {"key": "auth.acl_file", "reloadable": True} in check["changes"]
    assert {"key": "limits.max_qos", "reloadable": False} in check["changes"]
    assert publish_rc(b.port, clients, "b/1") == 0  # check applied nothing
    status, r = b.api("POST", "/api/v1/config/reload")
    assert status == 200, r
    assert "auth.acl_file" in r["applied"]
    assert r["restart_required"] == ["limits.max_qos"]
    assert publish_rc(b.port, clients, "a/1") == 0
    assert publish_rc(b.port, clients, "b/1") == 0x87

    # A broken file: 422 with the line, nothing applied, the broker keeps serving.
    b.config.write_text(cfg.replace("max_qos = 1", "max_qos = 9"))
    status, r = b.api("POST", "/api/v1/config/reload")
    assert status == 422
    assert any("limits.max_qos" in e and ":" in e for e in r["errors"]), r
    assert publish_rc(b.port, clients, "a/1") == 0


def test_users_through_the_api(make_broker, clients):
    b = make_broker(auth='allow_anonymous = false\npassword_file = "passwd"', files={"passwd": ""})
    assert b.api("GET", "/api/v1/users") == (200, {"users": [], "file": str(b.dir / "passwd")})
    status, body = b.api("POST", "/api/v1/users", {"username": "dave", "password": "s3cret"})
    assert (status, body) == (201, {"username": "dave"})
    assert b.api("POST", "/api/v1/users", {"username": "dave", "password": "x"})[0] == 409
    assert b.api("POST", "/api/v1/users", {"username": "dave"})[0] == 400
    assert b.api("POST", "/api/v1/users", {"username": "a:b", "password": "x"})[0] == 400
    c = clients(b.port, client_id=unique_id("d"), username="dave", password="s3cret", version=V311)
    assert c.connack[1] == 0
    assert b.api("PUT", "/api/v1/users/dave/password", {"password": "n3w"})[0] == 200
    refused = clients(b.port, client_id=unique_id("d"), username="dave", password="s3cret", version=V5, connect=False)
    refused.connect()
    assert refused.connack[1] == 0x86
    assert b.api("PUT", "/api/v1/users/nobody/password", {"password": "n3w"})[0] == 404
    assert b.api("GET", "/api/v1/users")[1]["users"] == [{"username": "dave"}]
    assert b.api("DELETE", "/api/v1/users/dave")[0] == 200
    assert b.api("DELETE", "/api/v1/users/dave")[0] == 404
    gone = clients(b.port, client_id=unique_id("d"), username="dave", password="n3w", version=V5, connect=False)
    gone.connect()
    assert gone.connack[1] == 0x86
    assert "n3w" not in b.log() and "s3cret" not in b.log()


def test_users_without_a_password_file_is_a_conflict(make_broker):
    b = make_broker()
    status, body = b.api("POST", "/api/v1/users", {"username": "x", "password": "y"})
    assert status == 409 and "password_file" in body["error"]["message"]


def test_a_ban_disconnects_the_client_and_refuses_it_until_lifted(make_broker, clients):
    b = make_broker(auth='ban_file = "bans"')
    victim_id = unique_id("victim")
    victim = clients(b.port, client_id=victim_id, version=V5)
    other = clients(b.port, client_id=unique_id("other"), version=V5)
    status, body = b.api("POST", "/api/v1/bans", {"kind": "clientid", "value": victim_id, "reason": "test"})
    assert status == 201, body
    assert body["kicked"] == 1
    assert victim.wait_disconnected(3)
    assert victim.disconnect_rc == 0x98
    other.publish("t", b"still here", qos=1)  # waits for the PUBACK
    again = clients(b.port, client_id=victim_id, version=V5, connect=False)
    again.connect()
    assert again.connack[1] == 0x8A
    bans = b.api("GET", "/api/v1/bans")[1]["bans"]
    assert bans == [{"kind": "clientid", "value": victim_id, "until_ms": None, "reason": "test"}]
    assert victim_id in (b.dir / "bans").read_text()  # persisted
    assert b.api("DELETE", "/api/v1/bans/clientid/" + victim_id)[0] == 200
    assert b.api("DELETE", "/api/v1/bans/clientid/" + victim_id)[0] == 404
    ok = clients(b.port, client_id=victim_id, version=V5)
    assert ok.connack[1] == 0
    # Address bans match connected clients by address; a ban with a duration expires.
    status, body = b.api("POST", "/api/v1/bans", {"kind": "address", "value": "127.0.0.0/8", "duration_seconds": 2})
    assert status == 201 and body["kicked"] >= 2 and body["ban"]["until_ms"]
    assert b.api("POST", "/api/v1/bans", {"kind": "address", "value": "300.1.1.1"})[0] == 400
    assert b.api("POST", "/api/v1/bans", {"kind": "planet", "value": "x"})[0] == 400
    time.sleep(2.2)
    late = clients(b.port, client_id=unique_id("late"), version=V5)
    assert late.connack[1] == 0


def test_log_level_at_run_time(make_broker, clients):
    b = make_broker()
    assert b.api("GET", "/api/v1/log/level") == (200, {"level": "debug"})
    assert b.api("PUT", "/api/v1/log/level", {"level": "warn"}) == (200, {"level": "warn"})
    assert b.api("PUT", "/api/v1/log/level", {"level": "loud"})[0] == 400
    marker = unique_id("quiet")
    clients(b.port, client_id=marker, version=V5).disconnect()
    time.sleep(0.3)
    assert marker not in b.log()  # connect lines are info: not logged at warn
    assert b.api("PUT", "/api/v1/log/level", {"level": "info"})[0] == 200
    loud = unique_id("loud")
    clients(b.port, client_id=loud, version=V5).disconnect()
    assert wait_for(lambda: loud in b.log())


def test_json_log_lines_parse_and_carry_connect_and_disconnect(make_broker, clients):
    b = make_broker(extra='')
    b.stop()
    b.config.write_text(b.config.read_text().replace('level = "debug"', 'level = "info"\nformat = "json"'))
    b.start()
    cid = unique_id('we"ird\n')
    c = clients(b.port, client_id=cid, username='u"1', version=V5)
    c.disconnect()
    time.sleep(0.3)
    lines = [l for l in b.log().splitlines() if l.startswith("{")]
    objs = [json.loads(l) for l in lines]  # every JSON line parses, quotes and newlines included
    assert all({"ts", "level", "msg"} <= set(o) for o in objs)
    msgs = [o["msg"] for o in objs]
    # Client-chosen values are quoted with " and \ escaped and control characters as \xNN (docs/metrics.md,
    # "Connection logs"), so they cannot break the key=value pairs in the text format either.
    quoted_id = 'client_id="%s"' % cid.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\x0a")
    assert any(m.startswith("connect ") and quoted_id in m and 'user="u\\"1"' in m for m in msgs), msgs[-5:]
    assert any(m.startswith("disconnect ") and quoted_id in m for m in msgs), msgs[-5:]


def test_metrics_are_prometheus_text_with_the_documented_families(make_broker, clients):
    b = make_broker()
    sub = clients(b.port, client_id=unique_id("s"), version=V5)
    sub.subscribe("m/#", qos=1)
    pub = clients(b.port, client_id=unique_id("p"), version=V311)
    for i in range(5):
        pub.publish("m/%d" % i, b"x", qos=1)
    assert len(sub.get_n(5)) == 5
    status, text = b.api("GET", "/metrics")
    assert status == 200
    samples = parse_prometheus(text)
    assert samples[("parley_messages_received_total", (("qos", "1"),))] >= 5
    assert samples[("parley_messages_sent_total", (("qos", "1"),))] >= 5
    conns = {k: v for k, v in samples.items() if k[0] == "parley_connections"}
    by_version = {dict(k[1])["version"]: v for k, v in conns.items()}
    assert by_version.get("5.0") == 1 and by_version.get("3.1.1") == 1, conns
    assert samples[("parley_sessions", (("state", "online"),))] == 2
    # The JSON view agrees.
    status, j = b.api("GET", "/api/v1/metrics?prefix=parley_connections")
    assert status == 200 and all(m["name"].startswith("parley_connections") for m in j["metrics"])


def test_readyz_reports_overload(make_broker):
    b = make_broker(extra='[overload]\nmemory_high = "1MiB"\n')
    assert wait_for(lambda: b.api("GET", "/readyz", token="")[0] == 503, timeout=5)
    status, body = b.api("GET", "/readyz", token="")
    assert body == {"ready": False, "reasons": ["overloaded"]}
