"""Fixtures for broker tests: each test gets its own parleyd on a free loopback port.

Tests drive it with real clients (mosquitto_pub/sub, Python Paho v3.1.1 and v5) and raw sockets.
Run with: /usr/bin/python3 -m pytest tests/broker   (PARLEYD=path/to/parleyd to pick a binary)
"""
import os
import pathlib
import re
import signal
import socket
import subprocess
import tempfile
import textwrap
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PARLEYD = os.environ.get("PARLEYD", str(ROOT / "build" / "broker" / "main" / "parleyd"))


class Broker:
    """A running parleyd. `port` is its MQTT port; `log()` returns what it printed so far."""

    def __init__(self, config_text, tmpdir, extra_args=(), preexec_fn=None):
        self.dir = pathlib.Path(tmpdir)
        self.config = self.dir / "parley.toml"
        self.config.write_text(config_text)
        self.logfile = self.dir / "broker.log"
        self.args = [PARLEYD, "--config", str(self.config), "--port", "0", "--admin-port", "0",
                     "--files-port", "0",
                     "--data-dir", str(self.dir / "data"), *extra_args]
        self.admin_port = None
        self.files_port = None  # the file upload/download listener (IM files), when enabled
        self.proc = None
        self.port = None
        self.preexec_fn = preexec_fn  # run in the child before exec (e.g. to lower its open-file limit)
        self.start()

    def start(self):
        # The log is appended to across restarts: look for "listening on" only in what this run writes.
        offset = self.logfile.stat().st_size if self.logfile.exists() else 0
        self._log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=self.preexec_fn)
        deadline = time.time() + 10
        while time.time() < deadline:
            text = self.log()[offset:]
            m = re.search(r"listening on [^ ]+:(\d+)", text)
            if m and ("parleyd " in text and " started with " in text):
                self.port = int(m.group(1))
                a = re.search(r"admin API on https?://[^ ]+:(\d+)", text)
                self.admin_port = int(a.group(1)) if a else None
                f = re.search(r"files on https?://[^ ]+:(\d+)", text)
                self.files_port = int(f.group(1)) if f else None
                return
            if self.proc.poll() is not None:
                raise RuntimeError("parleyd exited: " + self.log())
            time.sleep(0.02)
        raise RuntimeError("parleyd did not start: " + self.log())

    def log(self):
        return self.logfile.read_text(errors="replace")

    def admin_token(self):
        """The admin API's bearer token (created by parleyd in its data dir unless the config names a file)."""
        m = re.search(r'token_file\s*=\s*"([^"]+)"', self.config.read_text())
        path = pathlib.Path(m.group(1)) if m else self.dir / "data" / "admin.token"
        if not path.is_absolute():
            path = self.dir / path
        return path.read_text().strip()

    def api(self, method, path, body=None, token=None, timeout=10):
        """Calls the admin API; returns (status, parsed JSON or text)."""
        import json
        import urllib.error
        import urllib.request
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin_port, path), data=data, method=method)
        req.add_header("Authorization", "Bearer " + (token if token is not None else self.admin_token()))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, raw, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            return status, json.loads(raw)
        return status, raw.decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def alive(self):
        return self.proc.poll() is None

    def connect_raw(self, timeout=5):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s


def make_config(limits="", auth="", extra=""):
    """A minimal config; `limits`/`auth`/`extra` are TOML lines added to those tables."""
    return textwrap.dedent("""\
        [log]
        level = "debug"

        [[listener]]
        name = "mqtt"
        bind = "127.0.0.1"
        port = 0

        [limits]
        {limits}

        [auth]
        {auth}

        {extra}
        """).format(limits=limits, auth=auth, extra=extra)


@pytest.fixture
def make_broker():
    """Factory: make_broker(limits='max_qos = 1', auth='...', extra='...', files={'acl': '...'})."""
    started = []

    def factory(limits="", auth="", extra="", files=None, config_text=None, preexec_fn=None):
        tmp = tempfile.mkdtemp(prefix="parley-test-")
        for name, content in (files or {}).items():
            (pathlib.Path(tmp) / name).write_text(content)
        b = Broker(config_text or make_config(limits, auth, extra), tmp, preexec_fn=preexec_fn)
        started.append(b)
        return b

    yield factory
    for b in started:
        rc = b.stop()
        assert rc in (0, None) or rc == -signal.SIGKILL, "parleyd exited with %s\n%s" % (rc, b.log()[-3000:])


@pytest.fixture
def broker(make_broker):
    """A broker with the default configuration (anonymous access)."""
    return make_broker()


# The `clients` factory fixture (connected Paho clients and raw sockets, closed at teardown) lives in
# helpers.py; registering it here makes it available to every test file without an import.
from helpers import clients  # noqa: E402,F401
