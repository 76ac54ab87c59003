"""Backup under load with `parleyctl backup`, then `parleyctl restore` into a fresh data dir: a broker started
on it has every session, queued message and retained message that was acknowledged before the backup began."""
import os
import pathlib
import subprocess
import tempfile
import threading
import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import Broker, make_config
from helpers import V5, PahoClient, unique_id

ROOT = pathlib.Path(__file__).resolve().parents[2]
PARLEYCTL = os.environ.get("PARLEYCTL", str(ROOT / "build" / "tools" / "ctl" / "parleyctl"))


def persistent(port, cid):
    """A connected MQTT 5 client resuming (or creating) a session that outlives it by an hour."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    return PahoClient(port, client_id=cid, version=V5, clean=False, properties=props)


def ctl(b, *args, check=True):
    r = subprocess.run([PARLEYCTL, "--url", "http://127.0.0.1:%d" % b.admin_port, "--token", b.admin_token(), *args],
                       capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r


def test_backup_under_load_restores_everything_acknowledged_before_it(make_broker, clients):
    b = make_broker(limits="max_queued_messages = 100000")
    sessions = [unique_id("s%02d" % i) for i in range(10)]
    # Persistent sessions with a subscription, then offline (their messages queue on disk).
    for cid in sessions:
        s = persistent(b.port, cid)
        s.subscribe("load/#", qos=1)
        s.stop()
    retained = {"ret/%d" % i: ("value-%d" % i).encode() for i in range(50)}
    pub = clients(b.port, client_id=unique_id("pub"), version=V5)
    for t, v in retained.items():
        pub.publish(t, v, qos=1, retain=True)  # returns once the PUBACK arrived

    acked = []  # (seq, time acknowledged)
    stop = threading.Event()

    def load():
        seq = 0
        while not stop.is_set() and seq < 3000:
            seq += 1
            pub.publish("load/x", b"%d" % seq, qos=1)  # returns once the PUBACK arrived
            acked.append((seq, time.monotonic()))
            time.sleep(0.002)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(0.5)
    backup_dir = pathlib.Path(tempfile.mkdtemp(prefix="parley-backup-")) / "b1"
    began = time.monotonic()
    r = ctl(b, "backup", str(backup_dir))
    time.sleep(0.3)
    stop.set()
    t.join(10)
    before = [seq for seq, at in acked if at < began]
    assert len(before) > 20, "the load did not run before the backup"
    assert (backup_dir / "parley-backup.json").exists()
    assert "backup" in (r.stdout + r.stderr).lower()

    # The broker keeps running; restore into a fresh dir (offline) and start a second broker on it.
    tmp = tempfile.mkdtemp(prefix="parley-test-")
    fresh = pathlib.Path(tmp) / "data"  # where the second broker's fixture keeps its data
    r = subprocess.run([PARLEYCTL, "restore", str(backup_dir), "--data-dir", str(fresh)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, (r.stdout, r.stderr)
    b2 = Broker(make_config(limits="max_queued_messages = 100000"), tmp)
    try:
        for cid in sessions:
            s = persistent(b2.port, cid)
            assert s.session_present, cid
            got = set()
            deadline = time.time() + 20
            while time.time() < deadline and not set(before) <= got:
                try:
                    m = s.messages.get(timeout=1)
                except Exception:
                    continue
                if m.topic == "load/x":
                    got.add(int(m.payload))
            missing = sorted(set(before) - got)
            assert not missing, "%s lost %d acknowledged messages, first %s" % (cid, len(missing), missing[:5])
            s.stop()
        checker = PahoClient(b2.port, client_id=unique_id("chk"), version=V5)
        checker.subscribe("ret/#", qos=1)
        msgs = checker.get_n(len(retained), timeout=10)
        assert {m.topic: m.payload for m in msgs} == retained
        checker.stop()
    finally:
        b2.stop()


def test_restore_refuses_a_damaged_backup_and_a_busy_data_dir(make_broker):
    b = make_broker()
    backup_dir = pathlib.Path(tempfile.mkdtemp(prefix="parley-backup-")) / "b1"
    ctl(b, "backup", str(backup_dir))
    # Into the running broker's own data dir: refused, nothing touched.
    r = subprocess.run([PARLEYCTL, "restore", str(backup_dir), "--data-dir", str(b.dir / "data"), "--force"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    # A damaged file: refused, naming it; the target is not left half-restored.
    sst = sorted(p for p in backup_dir.iterdir() if p.name != "parley-backup.json" and p.stat().st_size > 0)[0]
    data = bytearray(sst.read_bytes())
    data[len(data) // 2] ^= 0xFF
    sst.write_bytes(bytes(data))
    target = pathlib.Path(tempfile.mkdtemp(prefix="parley-restore-")) / "data"
    r = subprocess.run([PARLEYCTL, "restore", str(backup_dir), "--data-dir", str(target)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert sst.name in r.stderr
    assert not target.exists() or not any(target.iterdir())
    # An existing backup dir: the API refuses (409 → exit 6).
    assert ctl(b, "backup", str(backup_dir), check=False).returncode == 6
