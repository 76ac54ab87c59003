"""CI wrapper for the chaos harness (chaos.py): the small preset (about 4 minutes), then checks that the checker
itself catches each kind of violation when a copy of the run's results is tampered with. The long run:
  /usr/bin/python3 tests/chaos/chaos.py --parleyd build/broker/main/parleyd --long
PARLEY_CHAOS_SEED=N replays a seed; every run prints it."""
import copy
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PARLEYD = os.environ.get("PARLEYD", str(ROOT / "build" / "broker" / "main" / "parleyd"))
SEED = os.environ.get("PARLEY_CHAOS_SEED", str(int(time.time()) % 100000))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("chaos")
    out = work / "summary.json"
    # Its own namespace prefix: a long run by hand ("pch") or calibrate.py ("pchk") may be going on beside it.
    cmd = ["/usr/bin/python3", str(HERE / "chaos.py"), "--parleyd", PARLEYD, "--seed", SEED, "--prefix", "pcht",
           "--workdir", str(work / "run"), "--json", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=840)
    except subprocess.TimeoutExpired:
        proc.terminate()  # chaos.py cleans up (broker, clients, namespaces) on SIGTERM
        stdout, stderr = proc.communicate(timeout=60)
    sys.stdout.write(stdout[-6000:])
    sys.stderr.write(stderr[-6000:])
    r = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    return r, json.loads(out.read_text()) if out.exists() else None, work / "run"


def test_small_run_keeps_the_im_contract(small_run):
    r, rep, _ = small_run
    assert rep is not None, "no summary:\n" + r.stdout[-3000:] + r.stderr[-3000:]
    assert r.returncode == 0, "chaos run failed (seed %s):\n%s" % (SEED, "\n".join(rep["failures"][:40]))
    s = rep["summary"]
    assert set(s) == {"good4g", "bad3g", "edge", "flaky"}
    for prof, f in s.items():
        assert f["acked"] >= 10, "%s: too little traffic to prove anything: %s" % (prof, f)
        assert f["lost"] == 0 and f["duplicated"] == 0 and f["mismatched"] == 0 and f["unread_wrong"] == 0
        assert f["delivered"] > 0
        cal = f["calibration"]
        want = 2 * f["shaping"]["delay_ms"]
        assert abs(cal["rtt_ms"]["p50"] - want) < max(15, 0.25 * want), "%s: calibration off: %s" % (prof, cal)
    # The faults happened: the kill dropped every device, NATs forgot connections and keep alive noticed.
    assert len(rep["restart_to_listening"]) == 1, "parleyd was not killed and restarted once"
    assert sum(f["drops"] for f in s.values()) >= sum(f["devices"] for f in s.values()) // 2
    assert sum(f["nat_forgotten"] for f in s.values()) > 0
    assert all(x is not None and x < 3 * 20 for f in s.values() for x in [f["nat_detect_max"]] if f["nat_forgotten"])


def _check(run_dir):
    sys.path.insert(0, str(HERE))
    import chaos

    class Run:
        pass
    run = Run()
    run.failures = []
    run.fail = run.failures.append
    run.plan = json.loads((run_dir / "plan.json").read_text())
    run.streams = json.loads((run_dir / "streams.json").read_text())
    run.results = {p.stem.split("-", 1)[1]: json.loads(p.read_text()) for p in run_dir.glob("result-*.json")}
    return run, chaos


def test_the_checker_catches_violations(small_run):
    """Each tampering with the clients' results must make the check fail: the harness can see what it claims to."""
    _, rep, run_dir = small_run
    assert rep is not None
    base, chaos = _check(run_dir)
    chaos.check(base)
    assert base.failures == [], base.failures

    def tampered(change):
        run, _ = _check(run_dir)
        run.results = copy.deepcopy(base.results)
        change(run.results, run.streams)
        chaos.check(run)
        return run.failures

    def any_device(results):
        for res in results.values():
            for d in res["devices"].values():
                for cid, view in d["views"].items():
                    texts = [e for e in view if e[1] == 1 and e[5]]  # MSG_TEXT with text
                    if texts:
                        return d, cid, view, texts
        raise AssertionError("no text message in any view")

    def lose(results, streams):
        d, cid, view, texts = any_device(results)
        view.remove(texts[-1])

    def stored_twice(results, streams):
        d, cid, view, texts = any_device(results)
        extra = list(texts[-1])
        extra[0] = max(e[0] for e in view) + 1
        view.append(extra)

    def stale_edit(results, streams):
        d, cid, view, texts = any_device(results)
        texts[0][5] = texts[0][5] + " (old)"

    def wrong_unread(results, streams):
        d, cid, view, texts = any_device(results)
        d["final"]["convs"][cid]["unread"] += 1

    def unacked(results, streams):
        d, cid, view, texts = any_device(results)
        d["outbox"].append({"kind": "send", "cmid": "x"})

    def ack_lost_but_stored(results, streams):  # a stored write no client holds an ack for
        for res in results.values():
            sends = [w for w in res["writes"] if w["kind"] == "send" and not w.get("replay")]
            if sends:
                res["writes"] = [w for w in res["writes"] if w["cmid"] != sends[-1]["cmid"]]
                return
        raise AssertionError("no send")

    def server_kept_old_text(results, streams):  # the server's stored entry differs, the views do not
        for conv in streams.values():
            for e in conv["entries"]:
                if e[1] == 1 and e[5]:
                    e[5] = "stale"
                    return
        raise AssertionError("no stored text")

    def read_mark_cut(results, streams):
        for res in results.values():
            if res["reads"]:
                res["reads"][0]["answered"] = res["reads"][0]["read_seq"] - 1
                return
        raise AssertionError("no read mark")

    for change, words in ((lose, "missing"), (stored_twice, "several seqs"), (stale_edit, "differs"),
                          (wrong_unread, "unread"), (unacked, "never acknowledged"),
                          (ack_lost_but_stored, "stored stream"), (server_kept_old_text, "stored stream"),
                          (read_mark_cut, "the answer says")):
        failures = tampered(change)
        assert any(words in f for f in failures), "%s went unnoticed: %s" % (change.__name__, failures)
