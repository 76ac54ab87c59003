"""CI wrapper for the IM kill -9 crash test (im_crash_test.py): a small run. The long one:
  /usr/bin/python3 tests/crash/im_crash_test.py --parleyd build/broker/main/parleyd --rounds 50 --seconds 5
PARLEY_CRASH_SEED=N replays a seed; every run prints it."""
import json
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PARLEYD = os.environ.get("PARLEYD", str(ROOT / "build" / "broker" / "main" / "parleyd"))
SEED = os.environ.get("PARLEY_CRASH_SEED", str(int(time.time()) % 100000))


def test_im_kill9_loses_nothing_acknowledged_and_stores_nothing_twice(tmp_path):
    cmd = ["/usr/bin/python3", str(HERE / "im_crash_test.py"), "--parleyd", PARLEYD, "--seed", SEED, "--report",
           "--data-dir", str(tmp_path / "work"), "--rounds", "4", "--seconds", "2", "--senders", "4"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    sys.stderr.write(r.stderr)
    rep = json.loads(r.stdout)
    assert r.returncode == 0, "IM crash test failed (seed %s):\n%s" % (SEED, "\n".join(rep["failures"]))
    assert rep["kills"] == 4
    assert rep["acked"] == rep["sent"] == rep["stored"] and rep["acked"] >= 4 * 50
    assert rep["lost"] == 0 and rep["stored_twice"] == 0 and rep["holes"] == 0 and rep["phantoms"] == 0
    assert rep["resent"] > 0, "no send was in flight at any kill: the test proved nothing"
