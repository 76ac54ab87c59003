"""CI wrapper for the kill -9 crash test (crash_test.py): a small run, plus two controls of the harness itself.

Run with: /usr/bin/python3 -m pytest tests/crash -q   (PARLEYD=path/to/parleyd picks the binary;
PARLEY_CRASH_SEED=N replays a seed; every run prints its seed; PARLEY_CRASH_ARGS adds options, e.g.
"--durability omit" for a parleyd that predates [storage]). About 60-90 s in all.
"""
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PARLEYD = os.environ.get("PARLEYD", str(ROOT / "build" / "broker" / "main" / "parleyd"))
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable   # Debian's Paho
SEED = os.environ.get("PARLEY_CRASH_SEED", str(int(time.time()) % 100000))
EXTRA = shlex.split(os.environ.get("PARLEY_CRASH_ARGS", ""))


def crash_test(tmp_path, *args, timeout=240):
    """Runs crash_test.py (work dir under pytest's tmp_path); returns (exit code, JSON report or None, stderr)."""
    cmd = [PYTHON, str(HERE / "crash_test.py"), "--parleyd", PARLEYD, "--seed", SEED, "--report",
           "--data-dir", str(tmp_path / "work"), *args, *EXTRA]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(r.stderr)          # shown by pytest when the test fails
    try:
        report = json.loads(r.stdout)
    except ValueError:
        report = None
    return r.returncode, report, r.stderr


def test_kill9_loses_nothing_acknowledged(tmp_path):
    """SIGKILL mid-traffic, restart on the same data dir: every acknowledged QoS 1 message delivered at least
    once and every acknowledged QoS 2 message exactly once to each persistent subscriber; sessions and retained
    messages survive."""
    rc, rep, err = crash_test(tmp_path, "--rounds", "6", "--seconds", "3", "--publishers", "4", "--subscribers", "3")
    assert rep is not None, err[-3000:]
    assert rc == 0, "crash test failed (seed %s):\n%s" % (SEED, "\n".join(rep["failures"])[:4000])
    assert rep["restarts"] == 6 and rep["faults_mid_traffic"] == 6
    assert rep["lost"] == 0 and rep["duplicated"]["qos2"] == 0
    assert rep["session_present_0_on_reconnect"] == 0
    assert rep["acked"]["total"] >= 6 * 50


def test_harness_passes_when_only_connections_drop(tmp_path):
    """Positive control: the same clients and checks, but the broker keeps running and only the client
    connections are cut mid-traffic (resends of PUBLISH/PUBREL with the same packet ids). Holds on any
    correct broker, durable or not, so a failure here is a harness bug or a session bug, not a storage bug."""
    rc, rep, err = crash_test(tmp_path, "--fault", "drop", "--rounds", "3", "--seconds", "1.5", "--rate", "0",
                              "--publishers", "2", "--subscribers", "2", "--drain-idle", "3")
    assert rep is not None, err[-3000:]
    assert rc == 0, "\n".join(rep["failures"])[:4000]
    assert rep["faults_mid_traffic"] == 3 and rep["lost"] == 0
    assert rep["resent_after_reconnect"]["publish_dup"] + rep["resent_after_reconnect"]["pubrel"] > 0


def test_harness_detects_lost_state(tmp_path):
    """Negative control: deleting the data dir before the restart must be reported as lost sessions and lost
    acknowledged messages (exit code 1), i.e. the main test cannot pass vacuously."""
    rc, rep, err = crash_test(tmp_path, "--rounds", "1", "--seconds", "1", "--publishers", "2", "--subscribers", "2",
                              "--wipe-data-on-restart", "--drain-idle", "2")
    assert rep is not None, err[-3000:]
    assert rc == 1, "the crash test did not notice a wiped data dir:\n" + err[-3000:]
    assert rep["lost"] > 0
    assert rep["session_present_0_on_reconnect"] > 0
    assert rep["retained"]["problems"]
