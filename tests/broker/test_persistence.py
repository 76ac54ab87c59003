"""Durable state across restarts of parleyd (docs/reliability.md): persistent sessions, their queued and in-flight
QoS 1/2 messages and retained messages survive SIGTERM and kill -9; a data dir that is locked, corrupt or not a
directory stops the start with exit code 2 and leaves the dir untouched; `[storage] enabled = false` keeps
nothing; a full disk refuses new persistent work with 0x97 and recovers by itself when space returns."""
import hashlib
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import PARLEYD, Broker, make_config
from helpers import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, P_SESSION_EXPIRY, mqtt_ack, unique_id)

EXPIRY = 300


def restart(b, sig=signal.SIGTERM):
    """Stops `b` with `sig` and starts it again with the same arguments (so the same --data-dir); re-reads its
    port (the config says port 0, so it changes). The previous run's log is kept as broker.log.<n>:
    Broker.start() takes the port from the first "listening on" line of broker.log, so that must start empty."""
    data_arg = b.args[b.args.index("--data-dir") + 1]
    assert data_arg == str(b.dir / "data")
    rc = b.stop(sig=sig)
    assert rc == (0 if sig == signal.SIGTERM else -sig), "parleyd stopped with %s\n%s" % (rc, b.log()[-3000:])
    n = len(list(b.dir.glob("broker.log.*"))) + 1
    b.logfile.rename(b.dir / ("broker.log.%d" % n))
    b.start()
    assert b.args[b.args.index("--data-dir") + 1] == data_arg
    assert "opened data dir '%s'" % data_arg in b.log(), b.log()[-3000:]


def connect_persistent(clients, b, cid, version=5, expect_present=None):
    """A raw client resuming (or starting) session `cid` with clean start 0 (v5: Session Expiry 300)."""
    c = clients.raw(b.port, version=version)
    ack = c.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, EXPIRY)] if version == 5 else None)
    if expect_present is not None:
        assert ack.session_present == expect_present, "CONNACK %r" % ack
    return c


def receive_all(c, n, timeout=5):
    """Receives `n` PUBLISHes, completing each QoS 1/2 flow as a subscriber; returns [(topic, payload, qos)].
    Then asserts that nothing else arrives."""
    got, awaiting_rel = [], set()
    deadline = time.time() + timeout
    while len(got) < n or awaiting_rel:
        remaining = deadline - time.time()
        assert remaining > 0, "got %d of %d messages (%r), PUBREL missing for %r" % (len(got), n, got, awaiting_rel)
        p = c.recv(remaining)
        if p.type == PUBLISH:
            got.append((p.topic, p.payload, p.qos))
            if p.qos == 1:
                c.send(mqtt_ack(PUBACK, p.packet_id, version=c.version))
            elif p.qos == 2:
                awaiting_rel.add(p.packet_id)
                c.send(mqtt_ack(PUBREC, p.packet_id, version=c.version))
        else:
            assert p.type == PUBREL and p.packet_id in awaiting_rel, "unexpected %r" % p
            awaiting_rel.discard(p.packet_id)
            c.send(mqtt_ack(PUBCOMP, p.packet_id, version=c.version))
    assert c.no_packet(0.3)
    return got


def publisher(clients, b, version=5):
    pub = clients.raw(b.port, version=version)
    pub.connect(unique_id("pub"))
    return pub


def dir_snapshot(d):
    """{relative path: (size, sha256)} of every file under `d`."""
    d = pathlib.Path(d)
    return {str(p.relative_to(d)): (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(d.rglob("*")) if p.is_file()}


def run_parleyd(args, timeout=10):
    """Runs parleyd to completion (it is expected to refuse to start); returns (CompletedProcess, seconds)."""
    t0 = time.time()
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return p, time.time() - t0


# ---- restart keeps state ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_restart_keeps_sessions_queued_messages_and_retained(make_broker, clients, sig):
    b = make_broker()
    subs = {5: unique_id("rs5"), 4: unique_id("rs311")}
    granted = {"rs/q1": 1, "rs/q2": 2}
    for version, cid in subs.items():
        c = connect_persistent(clients, b, cid, version, expect_present=False)
        assert c.subscribe(list(granted.items())).reasons == [1, 2]
        c.disconnect()
    pub = publisher(clients, b)
    plan = [("rs/q1", 1), ("rs/q2", 2), ("rs/q2", 1), ("rs/q1", 2), ("rs/q2", 2), ("rs/q1", 1)]
    expected = []
    for i, (topic, qos) in enumerate(plan):
        payload = b"m%d-q%d" % (i, qos)
        ack = pub.publish(topic, payload, qos=qos, packet_id=i + 1)
        assert (ack.type, ack.packet_id, ack.reason) == ((PUBACK if qos == 1 else PUBCOMP), i + 1, 0), ack
        expected.append((topic, payload, min(qos, granted[topic])))
    ack = pub.publish("rs/retained", b"kept", qos=1, retain=True, packet_id=100)
    assert ack.reason in (0x00, 0x10), ack  # 0x10: no subscriber yet, but retained
    pub.disconnect()

    restart(b, sig)

    assert "restored 2 sessions" in b.log(), b.log()[-2000:]
    for version, cid in subs.items():
        c = connect_persistent(clients, b, cid, version, expect_present=True)
        assert receive_all(c, len(expected)) == expected, "v%d subscriber" % version
        c.disconnect()
    fresh = clients.raw(b.port)
    fresh.connect(unique_id("fresh"))
    assert fresh.subscribe([("rs/retained", 1)]).reasons == [1]
    r = fresh.expect(PUBLISH)
    assert (r.topic, r.payload, r.qos, r.retain) == ("rs/retained", b"kept", 1, True)
    fresh.send(mqtt_ack(PUBACK, r.packet_id))
    assert fresh.no_packet(0.3)


# ---- QoS 2 in flight across kill -9 -------------------------------------------------------------------------

def test_qos2_after_pubrec_kill9_resends_pubrel_not_publish(make_broker, clients):
    b = make_broker()
    cid = unique_id("q2rel")
    sub = connect_persistent(clients, b, cid, expect_present=False)
    assert sub.subscribe([("q2k/rel", 2)]).reasons == [2]
    pub = publisher(clients, b)
    assert pub.publish("q2k/rel", b"exactly-once", qos=2, packet_id=5).reason == 0
    p = sub.expect(PUBLISH)
    assert (p.payload, p.qos) == (b"exactly-once", 2)
    sub.send(mqtt_ack(PUBREC, p.packet_id))
    assert sub.expect(PUBREL).packet_id == p.packet_id  # "PUBREC seen" is on disk from here on

    restart(b, signal.SIGKILL)

    sub = connect_persistent(clients, b, cid, expect_present=True)
    rel = sub.expect(PUBREL)
    assert rel.packet_id == p.packet_id
    sub.send(mqtt_ack(PUBCOMP, p.packet_id))
    assert sub.no_packet(0.5)  # and never the PUBLISH again


def test_qos2_before_pubrec_kill9_resends_publish_same_id(make_broker, clients):
    b = make_broker()
    cid = unique_id("q2pub")
    sub = connect_persistent(clients, b, cid, expect_present=False)
    assert sub.subscribe([("q2k/pub", 2)]).reasons == [2]
    pub = publisher(clients, b)
    assert pub.publish("q2k/pub", b"not-yet-received", qos=2, packet_id=6).reason == 0
    p = sub.expect(PUBLISH)
    assert (p.payload, p.qos) == (b"not-yet-received", 2)
    # no PUBREC

    restart(b, signal.SIGKILL)

    sub = connect_persistent(clients, b, cid, expect_present=True)
    again = sub.expect(PUBLISH)
    assert (again.packet_id, again.topic, again.payload, again.qos) == \
        (p.packet_id, "q2k/pub", b"not-yet-received", 2)
    sub.send(mqtt_ack(PUBREC, again.packet_id))
    assert sub.expect(PUBREL).packet_id == p.packet_id
    sub.send(mqtt_ack(PUBCOMP, p.packet_id))
    assert sub.no_packet(0.5)


def test_qos2_before_pubrec_kill9_resend_has_dup(make_broker, clients):
    b = make_broker()
    cid = unique_id("q2dup")
    sub = connect_persistent(clients, b, cid, expect_present=False)
    assert sub.subscribe([("q2k/dup", 2)]).reasons == [2]
    pub = publisher(clients, b)
    assert pub.publish("q2k/dup", b"sent-once", qos=2, packet_id=7).reason == 0
    p = sub.expect(PUBLISH)
    assert (p.payload, p.dup) == (b"sent-once", False)

    restart(b, signal.SIGKILL)

    sub = connect_persistent(clients, b, cid, expect_present=True)
    again = sub.expect(PUBLISH)
    assert (again.packet_id, again.payload) == (p.packet_id, b"sent-once")
    assert again.dup, "re-delivery after the restart without DUP: %r" % again


# ---- refusing to start --------------------------------------------------------------------------------------

def test_data_dir_locked_by_another_broker(make_broker, clients):
    a = make_broker()
    data = a.dir / "data"
    p, took = run_parleyd([PARLEYD, "--config", str(a.config), "--port", "0", "--data-dir", str(data)])
    out = p.stdout + p.stderr
    assert p.returncode == 2, out
    assert took < 5, "took %.1fs to give up" % took
    assert str(data) in out, out
    assert "busy" in out.lower() or "in use" in out.lower(), out
    assert "pid %d" % a.proc.pid in out, out  # docs/reliability.md: "(LOCK held by pid N)"
    assert "listening on" not in out, out
    # Broker A is unaffected.
    assert a.alive()
    sub = clients.raw(a.port)
    sub.connect(unique_id("lock-sub"))
    assert sub.subscribe([("lock/t", 1)]).reasons == [1]
    pub = publisher(clients, a)
    assert pub.publish("lock/t", b"still-serving", qos=1).reason == 0
    assert sub.expect(PUBLISH).payload == b"still-serving"


def _make_state(make_broker, clients):
    """A data dir with a persistent session, a queued message and a retained message; the broker stopped."""
    b = make_broker()
    c = connect_persistent(clients, b, unique_id("state"))
    c.subscribe([("state/t", 1)])
    c.disconnect()
    pub = publisher(clients, b)
    assert pub.publish("state/t", b"queued", qos=1).reason == 0
    assert pub.publish("state/r", b"retained", qos=1, retain=True, packet_id=2).reason in (0x00, 0x10)
    pub.disconnect()
    assert b.stop() == 0
    return b


def _garble_current(data):
    """Overwrites CURRENT (the name of the live MANIFEST) with garbage; returns the file's name."""
    (data / "CURRENT").write_bytes(b"\x00garbage\xff\n")
    return "CURRENT"


def _truncate_manifest(data):
    """Cuts the live MANIFEST down to its first 10 bytes; returns the file's name."""
    manifest = data / (data / "CURRENT").read_text().strip()
    with open(manifest, "r+b") as f:
        f.truncate(10)
    return manifest.name


@pytest.mark.parametrize("corrupt", [_garble_current, _truncate_manifest], ids=["CURRENT", "MANIFEST"])
def test_corrupt_data_dir_refused_and_untouched(make_broker, clients, corrupt):
    b = _make_state(make_broker, clients)
    data = b.dir / "data"
    damaged = corrupt(data)
    before = dir_snapshot(data)
    p, _ = run_parleyd(b.args)
    out = p.stdout + p.stderr
    assert p.returncode == 2, out[-3000:]
    assert "corrupt" in out.lower(), out[-3000:]
    assert str(data) in out, out[-3000:]
    assert damaged in out, out[-3000:]  # docs/reliability.md: "naming the file"
    assert "listening on" not in out, out[-3000:]
    assert dir_snapshot(data) == before


def test_data_dir_is_a_regular_file(tmp_path):
    cfg = tmp_path / "parley.toml"
    cfg.write_text(make_config())
    data = tmp_path / "data"
    data.write_bytes(b"not a directory\n")
    p, _ = run_parleyd([PARLEYD, "--config", str(cfg), "--port", "0", "--data-dir", str(data)])
    out = p.stdout + p.stderr
    assert p.returncode == 2, out
    assert str(data) in out and "not a directory" in out, out
    assert "listening on" not in out, out
    assert data.read_bytes() == b"not a directory\n"


# ---- memory-only mode ---------------------------------------------------------------------------------------

def test_storage_disabled_keeps_nothing_across_restart(make_broker, clients):
    b = make_broker(extra="[storage]\nenabled = false\n")
    cid = unique_id("mem")
    c = connect_persistent(clients, b, cid, expect_present=False)
    c.subscribe([("mem/t", 1)])
    c.disconnect()
    c = connect_persistent(clients, b, cid, expect_present=True)  # sessions still live in memory
    c.disconnect()
    pub = publisher(clients, b)
    assert pub.publish("mem/t", b"lost-at-restart", qos=1).reason == 0
    assert pub.publish("mem/r", b"retained", qos=1, retain=True, packet_id=2).reason in (0x00, 0x10)
    pub.disconnect()

    assert b.stop() == 0
    b.logfile.rename(b.dir / "broker.log.1")  # see restart(); that one also checks the data dir was opened
    b.start()

    c = connect_persistent(clients, b, cid, expect_present=False)
    assert c.no_packet(0.3)
    fresh = clients.raw(b.port)
    fresh.connect(unique_id("mem-fresh"))
    fresh.subscribe([("mem/r", 1)])
    assert fresh.no_packet(0.3)  # no retained message either
    data = b.dir / "data"
    # Only the admin API's token lives there (docs/admin-api.md): no broker state.
    assert not data.exists() or [p.name for p in data.iterdir()] in ([], ["admin.token"]), sorted(os.listdir(data))


# ---- full disk ----------------------------------------------------------------------------------------------

# RocksDB preallocates ~19 MB (WAL + MANIFEST) at open, and clears a no-space error only once 16 MiB (its write
# buffer) are free again: with 24 MiB, deleting the filler frees ~7 MB and writes never resume.
TMPFS_SIZE = "48m"
HEADROOM = 3 << 20       # left free after the filler
PAYLOAD = 64 << 10


@pytest.fixture
def small_tmpfs():
    """A TMPFS_SIZE tmpfs mounted on a temp dir (skips when mounting is not possible); unmounted afterwards."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="parley-full-"))
    mnt = root / "mnt"
    mnt.mkdir()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + TMPFS_SIZE, "tmpfs", str(mnt)],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        r = None
        why = str(e)
    if r is None or r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip("cannot mount a tmpfs: %s" % (why if r is None else r.stderr.strip()))
    try:
        yield root, mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _fill(path, free_to_leave):
    """Writes a file that leaves `free_to_leave` bytes free on its file system."""
    st = os.statvfs(path.parent)
    size = st.f_bavail * st.f_frsize - free_to_leave
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        while size > 0:
            f.write(chunk[:min(size, len(chunk))])
            size -= len(chunk)
    return path


def test_full_disk_refuses_persistent_work_and_recovers(small_tmpfs, clients):
    root, mnt = small_tmpfs
    (mnt / "data").mkdir()
    (root / "data").symlink_to(mnt / "data")  # Broker uses <dir>/data; its log and config stay off the tmpfs
    b = Broker(make_config(extra='[storage]\ndurability = "fsync"\n'), root)
    try:
        _full_disk_scenario(b, mnt, clients)
    finally:
        b.stop()


def _full_disk_scenario(b, mnt, clients):
    sub_id, other_id = unique_id("full-sub"), unique_id("full-other")
    sub = connect_persistent(clients, b, sub_id, expect_present=False)
    assert sub.subscribe([("full/q", 1)]).reasons == [1]
    sub.disconnect()  # offline: messages queue for it (on disk)
    other = connect_persistent(clients, b, other_id, expect_present=False)  # stays connected, persistent
    pub = publisher(clients, b)

    filler = _fill(mnt / "filler", HEADROOM)
    accepted, refused, pid = [], [], 0
    deadline = time.time() + 20

    def publish(i):
        nonlocal pid
        pid = pid % 65535 + 1
        payload = b"%06d|" % i + os.urandom(PAYLOAD)
        ack = pub.publish("full/q", payload, qos=1, packet_id=pid)
        assert ack.type == PUBACK and ack.packet_id == pid and ack.reason in (0x00, 0x97), ack
        (accepted if ack.reason == 0 else refused).append(i)
        return ack.reason

    i = 0
    while not refused:
        assert i < 1500 and time.time() < deadline, \
            "no 0x97 after %d messages of %d KiB\n%s" % (i, PAYLOAD >> 10, b.log()[-2000:])
        publish(i)
        i += 1
    assert "disk full" in b.log()

    # Still serving what needs no disk: a clean session, QoS 1.
    clean = clients.raw(b.port)
    clean.connect(unique_id("full-clean"))
    assert clean.subscribe([("full/clean", 1)]).reasons == [1]
    ack = pub.publish("full/clean", b"no-disk-needed", qos=1, packet_id=60000)
    assert (ack.packet_id, ack.reason) == (60000, 0x00)
    m = clean.expect(PUBLISH)
    assert (m.topic, m.payload, m.qos) == ("full/clean", b"no-disk-needed", 1)
    clean.send(mqtt_ack(PUBACK, m.packet_id))
    # ...but a persistent session cannot subscribe.
    assert other.subscribe([("full/other", 1)]).reasons == [0x97]

    # Space returns: writes resume by themselves.
    filler.unlink()
    t0 = time.time()
    while True:
        if publish(i) == 0x00:
            i += 1
            break
        i += 1
        assert time.time() - t0 < 30, "still 0x97 %.0fs after space returned\n%s" % (
            time.time() - t0, b.log()[-2000:])
        time.sleep(0.5)
    assert other.subscribe([("full/other", 1)], packet_id=2).reasons == [1]
    publish(i)  # one more after recovery
    assert accepted[-1] == i

    # Every message acknowledged with 0x00 reaches the persistent subscriber, in order.
    sub = connect_persistent(clients, b, sub_id, expect_present=True)
    got = []
    deadline = time.time() + 20
    while not got or got[-1] != accepted[-1]:
        assert time.time() < deadline, "received %d messages, last %r; accepted %d, last %d" % (
            len(got), got[-1:] or None, len(accepted), accepted[-1])
        p = sub.recv(max(0.01, deadline - time.time()))
        assert p.type == PUBLISH and p.topic == "full/q" and p.qos == 1, p
        got.append(int(p.payload[:6]))
        sub.send(mqtt_ack(PUBACK, p.packet_id))
    assert sub.no_packet(0.3)
    missing = sorted(set(accepted) - set(got))
    assert not missing, "acknowledged with 0x00 but not delivered: %r" % missing
    assert got == sorted(got) and len(set(got)) == len(got), "out of order or repeated: %r" % got
