"""parleyd started on a Mosquitto mosquitto.conf (docs/migrating-from-mosquitto.md): translated options work
(listeners, TLS, passwords from mosquitto_passwd, the ACL file, persistence), unsupported ones are logged as
warnings naming file:line, and bad values stop the broker with file:line errors. Driven by Mosquitto's own
clients (mosquitto_pub / mosquitto_sub / mosquitto_passwd)."""
import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest

from helpers import MosqSub, unique_id
from tls_certs import make_tls_certs

ROOT = pathlib.Path(__file__).resolve().parents[2]
PARLEYD = os.environ.get("PARLEYD", str(ROOT / "build" / "broker" / "main" / "parleyd"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Parleyd:
    """parleyd -c <mosquitto.conf>; waits for the "started" line. `log()` is everything it printed."""

    def __init__(self, conf, args=()):
        self.conf = pathlib.Path(conf)
        self.logfile = self.conf.parent / "parleyd.log"
        self.args = [PARLEYD, "-c", str(self.conf), *args]
        self.proc = None
        self.start()

    def start(self):
        offset = self.logfile.stat().st_size if self.logfile.exists() else 0
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if " started with " in self.log()[offset:]:
                return
            if self.proc.poll() is not None:
                raise RuntimeError("parleyd exited with %s:\n%s" % (self.proc.returncode, self.log()))
            time.sleep(0.02)
        raise RuntimeError("parleyd did not start:\n" + self.log())

    def log(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def parleyd():
    started = []

    def factory(conf, args=()):
        p = Parleyd(conf, args)
        started.append(p)
        return p

    yield factory
    for p in started:
        rc = p.stop()
        assert rc in (0, None), "parleyd exited with %s\n%s" % (rc, p.log()[-3000:])


def mosquitto_passwd(path, users):
    first = True
    for name, password in users.items():
        subprocess.run(["mosquitto_passwd", *(["-c"] if first else []), "-b", str(path), name, password],
                       check=True, capture_output=True)
        first = False


def pub(port, topic, message, *args, qos=1, version="mqttv311"):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", version, "-q", str(qos),
                           "-t", topic, "-m", message, *args], capture_output=True, timeout=10)


# ---------------------------------------------------------------------------------------------------------
# A realistic mosquitto.conf: passwords, ACL, limits, persistence, and options Parley does not have.

CONF = """\
# /etc/mosquitto/mosquitto.conf, as migrated.
pid_file /run/mosquitto/mosquitto.pid
user mosquitto

persistence true
persistence_location {state}
autosave_interval 1800

log_dest syslog
log_dest stdout
log_type error
log_type warning
log_type notice
log_type information

allow_anonymous false
password_file passwd
acl_file {dir}/acl

max_queued_messages 100
max_inflight_messages 10

listener {port} 127.0.0.1

connection cloud
address 192.0.2.1:1883
topic sensors/# out 1
remote_username site-17
"""

ACL = """\
user alice
topic readwrite sensors/#
topic read private/#

user bob
topic read sensors/#
"""


@pytest.fixture
def site(tmp_path):
    """A directory with mosquitto.conf, passwd (made by mosquitto_passwd) and acl; returns (conf, port)."""
    port = free_port()
    mosquitto_passwd(tmp_path / "passwd", {"alice": "alice-pw", "bob": "bob pw"})
    (tmp_path / "acl").write_text(ACL)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(CONF.format(state=tmp_path / "state", dir=tmp_path, port=port))
    return conf, port


def line_of(conf, text):
    """1-based number of the line of `conf` that starts with `text`."""
    for n, line in enumerate(pathlib.Path(conf).read_text().splitlines(), 1):
        if line.startswith(text):
            return n
    raise AssertionError(text)


def test_starts_and_logs_each_unsupported_option_with_file_and_line(site, parleyd):
    conf, port = site
    b = parleyd(conf)
    log = b.log()
    assert "listening on 127.0.0.1:%d (listener-%d, mqtt)" % (port, port) in log
    for option, text in [("pid_file", "ignored: parleyd writes no pid file"),
                         ("user", "ignored: parleyd does not switch users"),
                         ("persistence", 'Parley keeps its own store in "%s" and does not read Mosquitto\'s '
                                         "mosquitto.db" % (conf.parent / "state" / "parley")),
                         ("autosave_interval", "ignored: Parley writes every change to disk"),
                         ("log_dest syslog", "not supported: Parley logs to standard output"),
                         ("connection", 'bridges are not supported: bridge "cloud" to "192.0.2.1:1883"')]:
        name = option.split()[0]
        expected = "config: %s:%d: %s: %s" % (conf, line_of(conf, option), name, text)
        assert expected in log, expected + "\n--- log:\n" + log
    # The translated options raise no warning.
    for quiet in ("allow_anonymous", "password_file", "acl_file", "max_queued_messages", "listener",
                  "log_dest stdout"):
        assert "%s:%d: " % (conf, line_of(conf, quiet)) not in log
    # persistence true + persistence_location: Parley's store lives in <location>/parley.
    assert (conf.parent / "state" / "parley" / "CURRENT").exists()


def test_passwords_and_acl_from_mosquitto_files(site, parleyd):
    conf, port = site
    parleyd(conf)
    topic = unique_id("sensors/t")
    bob = MosqSub(port, "sensors/#", qos=1, extra=["-u", "bob", "-P", "bob pw"])
    alice = MosqSub(port, "sensors/#", qos=1, extra=["-u", "alice", "-P", "alice-pw"])
    try:
        # alice may write sensors/#, and both may read it.
        r = pub(port, topic, "from alice", "-u", "alice", "-P", "alice-pw")
        assert r.returncode == 0, r.stderr
        assert (bob.get()["payload"], alice.get()["payload"]) == ("from alice", "from alice")
        # bob may only read: his publish is dropped (MQTT 5: PUBACK 0x87, which mosquitto_pub reports).
        r = pub(port, unique_id("sensors/b"), "from bob", "-u", "bob", "-P", "bob pw", version="mqttv5")
        alice.expect_none(0.5)
        bob.expect_none(0.1)
    finally:
        bob.stop()
        alice.stop()
    # A subscription outside bob's rules is refused in the SUBACK (0x80 = 128).
    refused = MosqSub(port, "private/#", qos=1, extra=["-u", "bob", "-P", "bob pw"])
    try:
        time.sleep(0.2)
        assert any("Subscribed" in line and "128" in line for line in refused.lines), refused.lines
    finally:
        refused.stop()


def test_wrong_password_and_anonymous_are_refused(site, parleyd):
    conf, port = site
    parleyd(conf)
    for args in (["-u", "alice", "-P", "wrong"], ["-u", "nobody", "-P", "alice-pw"], []):
        r = pub(port, "sensors/x", "x", *args)
        assert r.returncode != 0, args
        assert b"not authorised" in r.stderr.lower() or b"refused" in r.stderr.lower(), r.stderr
    assert pub(port, "sensors/x", "x", "-u", "alice", "-P", "alice-pw").returncode == 0


def test_persistence_true_keeps_retained_messages_across_a_restart(site, parleyd):
    conf, port = site
    b = parleyd(conf)
    topic = unique_id("sensors/retained")
    r = pub(port, topic, "kept", "-u", "alice", "-P", "alice-pw", "-r")
    assert r.returncode == 0, r.stderr
    assert b.stop() == 0
    b.start()
    sub = MosqSub(port, topic, qos=1, extra=["-u", "bob", "-P", "bob pw"])
    try:
        m = sub.get()
        assert (m["topic"], m["payload"], m["retain"]) == (topic, "kept", True)
    finally:
        sub.stop()


# ---------------------------------------------------------------------------------------------------------
# TLS listeners: a server certificate (clients use --cafile), and client certificates as user names.

TLS_CONF = """\
allow_anonymous false
password_file passwd

# TLS, users with passwords.
listener {tls_port} 127.0.0.1
certfile pki/server.pem
keyfile pki/server.key
cafile pki/ca.pem
tls_version tlsv1.2

# Mutual TLS: the client certificate's CN is the user name.
listener {mtls_port} 127.0.0.1
certfile pki/server.pem
keyfile pki/server.key
cafile pki/ca.pem
require_certificate true
use_identity_as_username true
"""


def test_tls_listeners_with_mosquitto_clients(tmp_path, parleyd):
    certs = make_tls_certs(tmp_path / "pki")
    mosquitto_passwd(tmp_path / "passwd", {"alice": "alice-pw"})
    tls_port, mtls_port = free_port(), free_port()
    while mtls_port == tls_port:
        mtls_port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(TLS_CONF.format(tls_port=tls_port, mtls_port=mtls_port))
    b = parleyd(conf)
    assert "listening on 127.0.0.1:%d (listener-%d, mqtts)" % (tls_port, tls_port) in b.log()
    assert "listening on 127.0.0.1:%d (listener-%d, mqtts)" % (mtls_port, mtls_port) in b.log()
    assert "config: %s" % conf not in b.log()  # everything in this file has a Parley equivalent: no warning

    topic = unique_id("tls")
    server_tls = ["--cafile", certs.ca, "-h", "localhost"]
    sub = MosqSub(tls_port, topic, qos=1, version="mqttv5", extra=[*server_tls, "-u", "alice", "-P", "alice-pw"])
    try:
        # The client certificate (CN=alice) is the credential on the mTLS listener: no password.
        client_cert = [*server_tls, "--cert", certs.client, "--key", certs.client_key]
        r = subprocess.run(["mosquitto_pub", "-p", str(mtls_port), "-t", topic, "-m", "by certificate", "-q", "1",
                            *client_cert], capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr
        assert sub.get()["payload"] == "by certificate"
        # Without a certificate there, or with a password only: refused.
        r = subprocess.run(["mosquitto_pub", "-p", str(mtls_port), "-t", topic, "-m", "x", *server_tls,
                            "-u", "alice", "-P", "alice-pw"], capture_output=True, timeout=10)
        assert r.returncode != 0
        # Plain MQTT on the TLS port does not get through.
        assert pub(tls_port, topic, "plain", "-u", "alice", "-P", "alice-pw").returncode != 0
        sub.expect_none(0.3)
    finally:
        sub.stop()


# ---------------------------------------------------------------------------------------------------------
# Defaults and errors.


def test_no_listener_is_mosquittos_local_only_mode(tmp_path, parleyd):
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("# no listener: local only mode\nallow_anonymous false\n")
    port = free_port()
    b = parleyd(conf, ["--port", str(port)])  # instead of 1883, which another broker may hold
    assert "listening on 127.0.0.1:%d (listener-1883, mqtt)" % port in b.log()
    assert "config: %s:2: allow_anonymous: ignored without a listener" % conf in b.log()
    topic = unique_id("local")
    sub = MosqSub(port, topic, qos=1)
    try:
        assert pub(port, topic, "anonymous").returncode == 0
        assert sub.get()["payload"] == "anonymous"
    finally:
        sub.stop()


def test_bad_values_stop_parleyd_naming_file_and_line(tmp_path):
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener %d 127.0.0.1\nmax_keepalive 5\nallow_anonymous maybe\nlistener 1884 broker.lan\n"
                    % free_port())
    r = subprocess.run([PARLEYD, "-c", str(conf)], capture_output=True, timeout=10)
    assert r.returncode == 2
    err = r.stderr.decode()
    expected = ("parleyd: %s:2: max_keepalive: must be between 10 and 65535 (got 5)\n"
                "%s:3: allow_anonymous: must be true or false (got \"maybe\")\n"
                "%s:4: listener: must be an IP address such as 127.0.0.1, ::1, 0.0.0.0 or :: (got "
                "\"broker.lan\"; host names are not resolved)\n" % (conf, conf, conf))
    assert expected in err, err
    assert "listening on" not in r.stdout.decode()
