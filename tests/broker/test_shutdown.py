"""Process life cycle: SIGTERM (v5 clients told 0x8B, prompt exit 0), and refusing to start on a busy port
or a bad configuration, with a message that says what is wrong and where."""
import pathlib
import signal
import socket
import subprocess
import tempfile
import textwrap
import time

import pytest

from conftest import PARLEYD
from helpers import DISCONNECT, V5, clients, mqtt_connect, unique_id  # noqa: F401


def test_sigterm_sends_0x8b_to_v5_clients_and_exits_0(make_broker, clients):
    b = make_broker()
    v5 = clients.raw(b.port, version=5)
    v5.connect(unique_id("v5"))
    v5b = clients.raw(b.port, version=5)
    v5b.connect(unique_id("v5b"), props={0x11: 300})  # a persistent session changes nothing here
    v4 = clients.raw(b.port, version=4)
    v4.connect(unique_id("v4"))
    paho5 = clients(b.port, version=V5)
    paho_rcs = []  # Paho reports the server's DISCONNECT, then the closed socket (rc 7): keep both
    chained = paho5.client.on_disconnect

    def record(client, userdata, rc, properties=None):
        paho_rcs.append(int(getattr(rc, "value", rc)))
        chained(client, userdata, rc, properties)
    paho5.client.on_disconnect = record
    idle = b.connect_raw()  # TCP only, no CONNECT yet
    t0 = time.time()
    b.proc.send_signal(signal.SIGTERM)
    for c in (v5, v5b):
        packets = c.recv_until_closed(3)
        assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, 0x8B)], packets
    assert v4.recv_until_closed(3) == []  # 3.1.1 has no server DISCONNECT: just closed
    assert paho5.wait_disconnected(3)
    assert paho_rcs[0] == 0x8B, paho_rcs
    assert b.proc.wait(5) == 0
    assert time.time() - t0 < 3.0
    assert "shutting down" in b.log()
    idle.close()


def test_sigterm_with_no_clients_exits_promptly(make_broker):
    b = make_broker()
    t0 = time.time()
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(5) == 0
    assert time.time() - t0 < 1.0


def test_sigint_also_stops(make_broker):
    b = make_broker()
    b.proc.send_signal(signal.SIGINT)
    assert b.proc.wait(5) == 0


def test_sigterm_with_stalled_reader(make_broker, clients):
    # A client that never reads and never closes does not hold the process up for long.
    b = make_broker()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", b.port))
    s.sendall(mqtt_connect("stalled", version=5))
    time.sleep(0.1)
    t0 = time.time()
    b.proc.send_signal(signal.SIGTERM)
    assert b.proc.wait(6) == 0
    assert time.time() - t0 < 4.0
    s.close()


def test_sighup_does_not_stop(make_broker, clients):
    b = make_broker()
    b.proc.send_signal(signal.SIGHUP)
    time.sleep(0.2)
    assert b.alive()
    c = clients.raw(b.port)
    c.connect(unique_id("hup"))


def run_parleyd(config_text, *args, files=None, timeout=10):
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="parley-test-"))
    for name, content in (files or {}).items():
        (tmp / name).write_text(content)
    cfg = tmp / "parley.toml"
    cfg.write_text(textwrap.dedent(config_text))
    p = subprocess.run([PARLEYD, "--config", str(cfg), "--data-dir", str(tmp / "data"), *args],
                       capture_output=True, text=True, timeout=timeout)
    return p, cfg


LISTENER = """\
[[listener]]
name = "front-door"
bind = "127.0.0.1"
port = 0
"""


def test_port_in_use_refused():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        p, _ = run_parleyd(LISTENER, "--port", str(port))
    finally:
        blocker.close()
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "front-door" in out, out
    assert "127.0.0.1:%d" % port in out, out
    assert "in use" in out.lower(), out


def test_second_broker_on_same_port_refused(make_broker):
    a = make_broker()
    p, _ = run_parleyd(LISTENER.replace('"front-door"', '"mqtt"'), "--port", str(a.port))
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "listener mqtt" in out and "in use" in out.lower(), out
    assert a.alive()  # SO_REUSEPORT did not let the second one share the port


@pytest.mark.parametrize("body,line,key,words", [
    ("[limits]\nmax_qos = 3\n", 7, "limits.max_qos", "0, 1 or 2"),
    ("[limits]\nmax_qso = 1\n", 7, "limits.max_qso", "unknown key"),
    ('[limits]\nconnect_timeout = 10\n', 7, "limits.connect_timeout", "unit"),
    ('[limits]\nconnect_timeout = "10 s"\n', 7, "limits.connect_timeout", ""),
    ('[limits]\nmax_packet_size = "2GiB"\n', 7, "limits.max_packet_size", "between"),
    ("[auth]\nallow_anonymous = 1\n", 7, "auth.allow_anonymous", "true or false"),
    ('[sys]\ninterval = "1500ms"\n', 7, "sys.interval", "whole"),
    ('[log]\nlevel = "INFO"\n', 7, "log.level", ""),
], ids=["max_qos", "typo", "bare-duration", "duration-space", "size-range", "bool", "whole-seconds", "log-level"])
def test_invalid_config_names_key_and_line(body, line, key, words):
    text = LISTENER + "\n" + body
    p, cfg = run_parleyd(text)
    assert p.returncode != 0
    out = p.stderr
    want = "%s:%d: %s" % (cfg, line, key)
    assert want in out, out
    assert words in out, out
    assert "listening" not in p.stdout + p.stderr


def test_invalid_config_reports_every_problem_in_line_order():
    text = LISTENER + "\n[limits]\nmax_qos = 7\nreceive_maximum = 0\n[auth]\ncolour = \"blue\"\n"
    p, cfg = run_parleyd(text)
    assert p.returncode != 0
    lines = [l for l in p.stderr.splitlines() if str(cfg) in l]
    keys = [l.split(": ")[1] if ": " in l else l for l in lines]
    assert any("%s:7: limits.max_qos" % cfg in l for l in lines), p.stderr
    assert any("%s:8: limits.receive_maximum" % cfg in l for l in lines), p.stderr
    assert any("%s:10: auth.colour" % cfg in l for l in lines), p.stderr
    order = [int(l.split(str(cfg) + ":")[1].split(":")[0]) for l in lines]
    assert order == sorted(order), keys


def test_toml_syntax_error_names_line_and_column():
    p, cfg = run_parleyd(LISTENER + "\n[limits\nmax_qos = 1\n")
    assert p.returncode != 0
    assert "%s:6:" % cfg in p.stderr and "TOML syntax error" in p.stderr, p.stderr


def test_missing_listener_refused():
    p, cfg = run_parleyd("[limits]\nmax_qos = 1\n")
    assert p.returncode != 0
    assert "listener" in p.stderr and str(cfg) in p.stderr, p.stderr


def test_bad_bind_address_refused():
    p, cfg = run_parleyd(LISTENER.replace("127.0.0.1", "localhost"))
    assert p.returncode != 0
    assert "listener[0].bind" in p.stderr or "bind" in p.stderr, p.stderr


def test_bad_acl_file_refused():
    p, cfg = run_parleyd(LISTENER + '\n[auth]\nacl_file = "acl"\n', files={"acl": "topic read a/#\nfrobnicate x\n"})
    assert p.returncode != 0
    assert "acl:2" in p.stderr and "frobnicate" in p.stderr, p.stderr


def test_missing_password_file_refused():
    p, cfg = run_parleyd(LISTENER + '\n[auth]\npassword_file = "nope"\n')
    assert p.returncode != 0
    assert "nope" in p.stderr, p.stderr


def test_missing_config_file_refused():
    p = subprocess.run([PARLEYD, "--config", "/nonexistent/parley.toml"], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode != 0
    assert "/nonexistent/parley.toml" in p.stdout + p.stderr
