#!/usr/bin/python3
"""The chaos harness: Parley's IM contract on bad mobile networks, with numbers.

One command sets up network namespaces (netns.Lab: the broker in one, each network profile's phones in another,
joined through our user-space netem on /dev/net/tun, with iptables loss and tbf rate limits), calibrates every
link (measured RTT, loss, reordering, rate), starts parleyd in the broker namespace, creates the conversations,
and runs one mobile.py process per profile (two devices per user, behaving as docs/protocol.md asks an app to).

The run, in phases:
  traffic   users send, edit, recall, mark read; apps go to the background; NATs forget connections (silent
            blackholes until keep alive notices); the "flaky" link flaps; parleyd is killed with SIGKILL and
            restarted on its data dir at random moments
  quiesce   no new actions; every app drains its outbox over the still-bad links
  idle      nothing but keep alive: the wire cost of an idle device
  final     the network is healed; every device reconnects and drains; then every device catches up and takes
            the server's counters with a full sync

Then it checks the invariants against a model built from every acknowledged write (tests/im/im_model.py):
every acknowledged message is on every member device exactly once, in the conversation's order, in its final
state (edits and recalls applied); no client_msg_id is stored twice (acknowledged or not); no write is left
unacknowledged once the network is healed; every device's unread counts and read positions equal the model's;
parleyd's RSS and data dir stayed under their bounds. It prints the figures per profile and exits 1 on any
violation.

    /usr/bin/python3 tests/chaos/chaos.py --parleyd build/broker/main/parleyd              # ~4 minutes
    /usr/bin/python3 tests/chaos/chaos.py --parleyd build/broker/main/parleyd --long       # ~25 minutes

Needs root (namespaces, tun, iptables). docs/reliability.md ("Weak networks") has the figures.
"""
import argparse
import ctypes
import json
import math
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "im"))

import netns  # noqa: E402
from im_model import Entry, Model, describe_diff  # noqa: E402
from imclient import pb  # noqa: E402

PY = "/usr/bin/python3"
PORT = 1883

PRESETS = {
    # CI: a few minutes, one kill, everything exercised once or more.
    "small": dict(traffic=100, quiesce_max=90, idle=60, users=4, kills=1, keepalive=20, send_every=4.0,
                  background_every=60.0, nat_every=150.0, flap_every=(15, 30), flap_for=(2, 8), groups=2),
    # The long run behind its own command: the figures in docs/reliability.md.
    "long": dict(traffic=900, quiesce_max=300, idle=300, users=25, kills=6, keepalive=30, send_every=6.0,
                 background_every=180.0, nat_every=600.0, flap_every=(20, 60), flap_for=(2, 15), groups=6),
}


def log(msg):
    print("[chaos %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def pct(values, q):
    """Nearest-rank percentile (p99 of fewer than 100 values is the maximum)."""
    if not values:
        return None
    v = sorted(values)
    return v[max(0, min(len(v) - 1, math.ceil(q / 100.0 * len(v)) - 1))]


def ms(v):
    return "-" if v is None else ("%.0f" % (v * 1000))


# ---- the broker ------------------------------------------------------------------------------------------
class Broker:
    """parleyd in the broker namespace, on a fixed port so that restarts keep the address."""

    def __init__(self, lab, binary, workdir):
        self.lab, self.binary, self.dir = lab, binary, pathlib.Path(workdir)
        self.data = self.dir / "data"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "parley.toml"
        self.config.write_text(
            '[[listener]]\nname = "mqtt"\nbind = "0.0.0.0"\nport = %d\n'
            '[im]\nsend_rate = 0\n'
            '[files]\nenabled = false\n' % PORT)
        self.logfile = self.dir / "broker.log"
        self.proc = None

    def start(self):
        """Starts parleyd; returns the seconds until it listened."""
        offset = self.logfile.stat().st_size if self.logfile.exists() else 0
        t0 = time.time()
        with open(self.logfile, "ab") as out:
            self.proc = self.lab.popen(self.lab.broker_ns, [self.binary, "--config", str(self.config),
                                                            "--data-dir", str(self.data)],
                                       stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        deadline = time.time() + 30
        while time.time() < deadline:
            if re.search(r"listening on [^ ]+:%d" % PORT, self.logfile.read_text(errors="replace")[offset:]):
                return time.time() - t0
            if self.proc.poll() is not None:
                raise RuntimeError("parleyd exited:\n" + self.logfile.read_text(errors="replace")[-3000:])
            time.sleep(0.02)
        raise RuntimeError("parleyd did not start")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "hung on SIGTERM"

    def rss_mib(self):
        try:
            for line in open("/proc/%d/status" % self.proc.pid):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return None

    def disk_mib(self):
        total = 0
        for p in self.data.rglob("*"):
            try:
                if p.is_file():
                    total += p.stat().st_size
            except OSError:
                pass
        return total / 1048576.0


# ---- the plan: users, conversations ------------------------------------------------------------------------
def make_plan(profiles, users_per_profile, groups, rng):
    users = {p: ["%s%02d" % (p[:4], i) for i in range(users_per_profile)] for p in profiles}
    everyone = [u for p in profiles for u in users[p]]
    directs = set()
    for u in everyone:  # each user talks directly with two others, mostly on other networks
        for v in rng.sample([x for x in everyone if x != u], 2):
            directs.add(tuple(sorted((u, v))))
    group_list = []
    for g in range(groups):
        members = rng.sample(everyone, min(len(everyone), rng.randint(3, 6)))
        group_list.append({"name": "group %d" % g, "owner": members[0], "members": members[1:]})
    return {"users": users, "directs": sorted(directs), "groups": group_list}


def create_conversations(lab, plan, workdir):
    """Runs setup.py in the broker namespace (loopback, no shaping): creates every conversation."""
    spec = pathlib.Path(workdir) / "spec.json"
    out = pathlib.Path(workdir) / "plan.json"
    spec.write_text(json.dumps(plan))
    p = lab.popen(lab.broker_ns, [PY, str(HERE / "setup.py"), "create", "--port", str(PORT), "--plan", str(spec),
                                  "--out", str(out)], preexec_fn=die_with_parent)
    if p.wait(120) != 0:
        raise RuntimeError("creating the conversations failed")
    return json.loads(out.read_text())


def dump_streams(lab, workdir):
    """Runs setup.py dump in the broker namespace: every conversation as the server stores it."""
    out = pathlib.Path(workdir) / "streams.json"
    p = lab.popen(lab.broker_ns, [PY, str(HERE / "setup.py"), "dump", "--port", str(PORT),
                                  "--plan", str(pathlib.Path(workdir) / "plan.json"), "--out", str(out)],
                  preexec_fn=die_with_parent)
    if p.wait(300) != 0:
        raise RuntimeError("reading the streams back failed")
    return json.loads(out.read_text())


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when this process dies, however it dies (prctl PR_SET_PDEATHSIG
    survives the exec of `ip netns exec` and of the program it execs)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


# ---- the run ---------------------------------------------------------------------------------------------
class Run:
    def __init__(self, args, preset):
        self.args, self.p = args, preset
        self.rng = random.Random(args.seed)
        self.work = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="parley-chaos-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.profiles = args.profiles.split(",")
        self.lab = netns.Lab(self.profiles, str(self.work / "lab"), prefix=args.prefix)
        self.failures = []
        self.rss = []        # (t, MiB)
        self.disk_samples = []  # (t, MiB)
        self.sims = {}       # profile -> Popen
        self.phase_bytes = {}
        self.restart_to_listening = []  # after each kill -9

    def fail(self, msg):
        self.failures.append(msg)
        log("FAIL: " + msg)

    def set_phase(self, phase):
        log("phase: " + phase)
        for prof in self.profiles:
            ctl = self.work / ("ctl-%s.json" % prof)
            tmp = ctl.with_suffix(".tmp")
            tmp.write_text(json.dumps({"phase": phase}))
            os.replace(tmp, ctl)
        self.phase_bytes[phase] = (time.time(), self.lab.counters())

    def statuses(self):
        out = {}
        for prof in self.profiles:
            try:
                out[prof] = json.loads((self.work / ("status-%s.json" % prof)).read_text())
            except (OSError, ValueError):
                out[prof] = None
        return out

    def sample(self):
        r = self.broker.rss_mib()
        if r is not None:
            self.rss.append((time.time(), r))
        if not self.disk_samples or time.time() - self.disk_samples[-1][0] >= 5:
            self.disk_samples.append((time.time(), self.broker.disk_mib()))

    def in_phase(self, phase, pred):
        """pred holds for every client process's status, and every one of them is in `phase` (a status written
        before it saw the phase change says nothing about it)."""
        st = self.statuses()
        return all(v and v["phase"] == phase and pred(v) for v in st.values())

    def sleep_sampling(self, seconds, until=None):
        end = time.time() + seconds
        while time.time() < end:
            self.sample()
            for prof, proc in self.sims.items():
                if proc.poll() is not None and self.phase_name != "report":
                    raise RuntimeError("the %s clients exited early (%s)" % (prof, proc.returncode))
            if until is not None and until():
                return True
            time.sleep(min(0.5, max(0.0, end - time.time())))
        return False

    def start_sims(self, plan):
        p = self.p
        for prof in self.profiles:
            users = plan["users"][prof]
            (self.work / ("ctl-%s.json" % prof)).write_text(json.dumps({"phase": "traffic"}))
            argv = [PY, str(HERE / "mobile.py"), "--host", self.lab.broker_addr(self.profiles.index(prof)),
                    "--port", str(PORT), "--broker-ns", self.lab.broker_ns,
                    "--client-addr", self.lab.client_addr(self.profiles.index(prof)), "--users", ",".join(users), "--plan", str(self.work / "plan.json"),
                    "--control", str(self.work / ("ctl-%s.json" % prof)),
                    "--status", str(self.work / ("status-%s.json" % prof)),
                    "--out", str(self.work / ("result-%s.json" % prof)),
                    "--seed", "%s/%s" % (self.args.seed, prof), "--keepalive", str(p["keepalive"]),
                    "--send-every", str(p["send_every"]), "--background-every", str(p["background_every"]),
                    "--nat-every", str(p["nat_every"]),
                    "--max-seconds", str(p["traffic"] + p["quiesce_max"] + p["idle"] + 900)]
            log_file = open(self.work / ("mobile-%s.log" % prof), "wb")
            self.sims[prof] = self.lab.popen(self.lab.client_ns(self.profiles.index(prof)), argv,
                                             stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
            log_file.close()

    def chaos_schedule(self):
        """When, during traffic, parleyd is killed and the flaky link flaps."""
        p, t = self.p, self.p["traffic"]
        kills = sorted(self.rng.uniform(0.15 * t, 0.85 * t) for _ in range(p["kills"]))
        flaps = []
        if "flaky" in self.profiles:
            at = self.rng.uniform(*p["flap_every"])
            while at < t - 5:
                flaps.append((at, self.rng.uniform(*p["flap_for"])))
                at += self.rng.uniform(*p["flap_every"])
        return kills, flaps

    def traffic(self):
        kills, flaps = self.chaos_schedule()
        start = time.time()
        todo = sorted([(k, "kill", 0) for k in kills] + [(a, "flap", d) for a, d in flaps])
        flaky = self.profiles.index("flaky") if "flaky" in self.profiles else None
        ups = []  # (time, profile index) of links to bring back up
        while time.time() - start < self.p["traffic"]:
            now = time.time() - start
            while todo and todo[0][0] <= now:
                _, what, arg = todo.pop(0)
                if what == "kill":
                    log("kill -9 parleyd")
                    self.broker.kill9()
                    time.sleep(self.rng.uniform(0.2, 2.0))
                    self.restart_to_listening.append(self.broker.start())
                else:
                    log("flap: flaky link down for %.1f s" % arg)
                    self.lab.link_down(flaky)
                    ups.append((time.time() + arg, flaky))
            for item in [u for u in ups if u[0] <= time.time()]:
                self.lab.link_up(item[1])
                ups.remove(item)
            self.sleep_sampling(0.25)
        for _, i in ups:
            self.lab.link_up(i)

    def execute(self):
        p = self.p
        self.phase_name = "setup"
        log("work dir %s" % self.work)
        self.lab.setup()
        log("calibrating %s" % ", ".join(self.profiles))
        cal, errors = {}, []

        def calibrate(i, prof):
            try:
                cal[prof] = self.lab.calibrate(i, seconds=5)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("%s: %s" % (prof, e))
        threads = [threading.Thread(target=calibrate, args=(i, prof)) for i, prof in enumerate(self.profiles)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError("calibration failed: " + "; ".join(errors))
        self.calibration = cal
        for prof in self.profiles:
            log("  %-7s %s" % (prof, json.dumps(cal.get(prof))))
        self.broker = Broker(self.lab, self.args.parleyd, self.work / "broker")
        self.broker.start()
        plan = make_plan(self.profiles, p["users"], p["groups"], self.rng)
        self.plan = create_conversations(self.lab, plan, self.work)
        log("%d users, %d conversations" % (sum(len(v) for v in plan["users"].values()), len(self.plan["convs"])))
        self.rss_baseline = self.broker.rss_mib()
        self.start_sims(self.plan)
        self.phase_name = "traffic"
        self.set_phase("traffic")
        self.traffic()
        self.phase_name = "quiesce"
        self.set_phase("quiesce")
        if not self.sleep_sampling(p["quiesce_max"], until=lambda: self.in_phase(
                "quiesce", lambda v: v["outbox"] == 0 and v["read_pending"] == 0)):
            log("quiesce: outboxes not empty after %d s (%s); going on" % (p["quiesce_max"], self.statuses()))
        self.phase_name = "idle"
        self.set_phase("idle")
        # The idle window starts once every device is connected (after a reconnect's sync, if any).
        if not self.sleep_sampling(60, until=lambda: self.in_phase("idle", lambda v: v["online"] == v["devices"])):
            log("idle: not every device online after 60 s: %s" % self.statuses())
        self.idle_start = (time.time(), self.lab.counters(), self.statuses())
        self.rss_idle_start = self.broker.rss_mib()
        self.sleep_sampling(p["idle"])
        self.idle_end = (time.time(), self.lab.counters(), self.statuses())
        self.rss_idle_end = self.broker.rss_mib()
        self.phase_name = "final"
        self.set_phase("final")
        self.lab.heal()
        if not self.sleep_sampling(180, until=lambda: self.in_phase("final", lambda v: (
                v["outbox"] == 0 and v["read_pending"] == 0 and v["online"] == v["devices"]))):
            self.fail("after healing, not every device was back online with an empty outbox in 180 s: %s"
                      % self.statuses())
        self.phase_name = "report"
        self.set_phase("report")
        deadline = time.time() + 300
        for prof, proc in self.sims.items():
            try:
                proc.wait(max(1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self.fail("the %s clients did not finish" % prof)
        self.sample()
        self.final_rss = self.broker.rss_mib()
        self.disk = self.broker.disk_mib()
        # What the server stores, read back raw after one more restart (a clean one this time).
        rc = self.broker.stop()
        if rc != 0:
            self.fail("parleyd exited with %s on SIGTERM" % rc)
        self.broker.start()
        self.streams = dump_streams(self.lab, self.work)
        rc = self.broker.stop()
        if rc != 0:
            self.fail("parleyd exited with %s on SIGTERM after the read-back" % rc)
        self.results = {}
        for prof in self.profiles:
            path = self.work / ("result-%s.json" % prof)
            if not path.exists():
                self.fail("no results from the %s clients (see %s)" % (prof, self.work / ("mobile-%s.log" % prof)))
                continue
            self.results[prof] = json.loads(path.read_text())


# ---- checking ----------------------------------------------------------------------------------------------
def build_model(plan, results, fail):
    """The model from every acknowledged write, applied in seq order (the order the server applied them in).
    Checks on the way: every (user, client_msg_id) has one seq, however often it was acknowledged (a replayed
    send must be answered as a duplicate of the first); each acknowledged edit or recall was allowed at its
    place in the stream; no seq is held by two writes; no seq is stored that no client holds an ack for."""
    model = Model()
    for c in plan["convs"]:
        if c["type"] == "direct":
            model.create_direct(c["id"], c["creator"], c["device"], c["peer"], c["seq"])
        else:
            model.create_group(c["id"], c["creator"], c["device"], c["name"], c["members"], c["cmid"], c["seq"])
    first = {}
    writes = []
    for prof, res in results.items():
        for w in res["writes"]:
            w["profile"] = prof
            key = (w["user"], w["cmid"])
            if w.get("replay") and not w["duplicate"]:
                fail("a replayed send of %s (client_msg_id %s) was not answered as a duplicate" % (w["user"], w["cmid"]))
            if key in first:
                if first[key]["seq"] != w["seq"] or first[key]["conv"] != w["conv"]:
                    fail("client_msg_id %s of %s acknowledged with different seqs: %s:%d and %s:%d" % (
                        w["cmid"], w["user"], first[key]["conv"], first[key]["seq"], w["conv"], w["seq"]))
                continue
            first[key] = w
            writes.append(w)
    writes.sort(key=lambda w: (w["conv"], w["seq"]))
    for w in writes:
        try:
            if w["kind"] == "send":
                model.send(w["conv"], w["user"], w["device"], w["cmid"], w["text"], (), 0, w["seq"])
            elif w["kind"] == "edit":
                err = model.edit_error(w["conv"], w["user"], w["target"])
                if err is not None:
                    fail("an edit was acknowledged that should have failed with %s: %s" % (pb.ErrorCode.Name(err), w))
                    continue
                model.edit(w["conv"], w["user"], w["device"], w["cmid"], w["target"], w["text"], w["seq"])
            else:
                err = model.recall_error(w["conv"], w["user"], w["target"])
                if err is not None:
                    fail("a recall was acknowledged that should have failed with %s: %s" % (pb.ErrorCode.Name(err), w))
                    continue
                model.recall(w["conv"], w["user"], w["device"], w["cmid"], w["target"], w["seq"])
        except (AssertionError, KeyError) as e:
            fail("an acknowledged write does not fit the stream: %s (%s)" % (w, e))
    for res in results.values():
        for r in res["reads"]:
            if r["answered"] < r["read_seq"]:
                fail("%s marked %s read up to %d; the answer says %d" % (r["user"], r["conv"], r["read_seq"], r["answered"]))
            model.mark_read(r["conv"], r["user"], r["read_seq"])
    for c in model.convs.values():
        holes = c.holes()
        if holes:
            fail("%s: seqs %s are in the stream but no client holds an ack for them" % (c.id, holes[:20]))
            for h in holes:  # stand-ins (no type), so that what follows still compares the rest
                c.entries[h] = Entry(h, -1, "?", "?")
    return model, writes


def allowed_failure(model, f):
    """The one refusal the harness provokes on purpose: an edit that lost the race with a recall of its target
    from the user's other device."""
    if f["kind"] != "edit" or f["code"] != "ERR_CONFLICT":
        return False
    conv = model.convs.get(f["conv"])
    target = conv and conv.entries.get(f["target"])
    return bool(target and target.recalled)


def check(run):
    """Every invariant; returns (model, writes, per-profile counts)."""
    fail = run.fail
    model, writes = build_model(run.plan, run.results, fail)
    created = {(w["conv"], w["seq"]): w for w in writes}
    figures = {}
    for prof, res in run.results.items():
        if res.get("timed_out"):
            fail("%s: the client process hit its time bound" % prof)
        for f in res["failed"]:
            if not allowed_failure(model, f):
                fail("%s: a %s failed with %s: %s" % (prof, f["kind"], f["code"], f))
    # The server's own stream, read back raw after a restart, must be the model, entry by entry (with the
    # kept versions): the devices' views below are merged client-side and could hide a stale stored state.
    for conv in model.convs.values():
        got = (getattr(run, "streams", None) or {}).get(conv.id)
        want = [json.loads(json.dumps(conv.entries[s].key(with_versions=True))) for s in sorted(conv.entries)]
        if got is None:
            fail("%s: not read back from the server" % conv.id)
        elif got["entries"] != want:
            stored = {e[0]: e for e in got["entries"]}
            model_seqs = {e[0]: e for e in want}
            what = ["seq %d: %s" % (q, describe_diff(model_seqs.get(q), stored.get(q)))
                    for q in sorted(set(stored) | set(model_seqs)) if stored.get(q) != model_seqs.get(q)]
            fail("%s: the stored stream differs from the model: %s" % (conv.id, "; ".join(what[:3])))
    for prof, res in run.results.items():
        fig = figures.setdefault(prof, {"delivered": 0, "lost": 0, "duplicated": 0, "mismatched": 0,
                                        "deliver_lat": [], "live_lat": [], "unread_wrong": 0, "order": 0})
        for dev, d in res["devices"].items():
            user = d["user"]
            if d.get("error"):
                fail("%s: %s" % (dev, d["error"][-2000:]))
                continue
            if d["outbox"]:
                fail("%s: %d writes never acknowledged after healing: %s" % (dev, len(d["outbox"]), d["outbox"][:3]))
            if d["read_pending"]:
                fail("%s: read marks never answered after healing: %s" % (dev, d["read_pending"]))
            if d["anomalies"]:
                fail("%s: protocol anomalies: %s" % (dev, d["anomalies"][:5]))
            if d["hidden"]:
                fail("%s: entries hidden from the device though nobody deleted any: %s" % (dev, d["hidden"]))
            final = d["final"] or {"convs": {}, "total_unread": None}
            for conv in model.convs_of(user):
                want = [json.loads(json.dumps(e.key())) for e in conv.visible(user)]
                got = d["views"].get(conv.id, [])
                got_by_seq = {g[0]: g for g in got}
                cmids = {}
                for g in got:
                    if g[4]:
                        cmids.setdefault((g[2], g[4]), []).append(g[0])
                dups = [k for k, v in cmids.items() if len(v) > 1]
                if dups:
                    fig["duplicated"] += len(dups)
                    fail("%s %s: one client_msg_id stored at several seqs: %s" % (dev, conv.id, dups[:3]))
                for e in want:
                    g = got_by_seq.get(e[0])
                    if g is None:
                        fig["lost"] += 1
                        if fig["lost"] <= 5:
                            fail("%s %s: seq %d missing on the device" % (dev, conv.id, e[0]))
                        continue
                    if g != e:
                        fig["mismatched"] += 1
                        if fig["mismatched"] <= 5:
                            fail("%s %s:%d differs from the model: %s" % (dev, conv.id, e[0], describe_diff(e, g)))
                    if e[1] == pb.MSG_TEXT and e[3] != dev:
                        fig["delivered"] += 1
                        w = created.get((conv.id, e[0]))
                        seen = d["seen_at"].get("%s:%d" % (conv.id, e[0]))
                        if w and seen:
                            fig["deliver_lat"].append(max(0.0, seen[0] - w["created"]))
                            if seen[1]:
                                fig["live_lat"].append(max(0.0, seen[0] - w["created"]))
                extra = sorted(set(got_by_seq) - {e[0] for e in want})
                if extra:
                    fail("%s %s: entries the model does not have: %s" % (dev, conv.id, extra[:10]))
                fc = final["convs"].get(conv.id)
                unread, _ = conv.unread(user)
                read_seq = conv.members[user].read_seq
                if fc is None or (fc["unread"], fc["read_seq"], fc["max_seq"]) != (unread, read_seq, conv.max_seq):
                    fig["unread_wrong"] += 1
                    fail("%s %s: the server says unread %s, read_seq %s, max_seq %s; the model %d, %d, %d" % (
                        dev, conv.id, fc and fc["unread"], fc and fc["read_seq"], fc and fc["max_seq"], unread,
                        read_seq, conv.max_seq))
            if final["total_unread"] != model.totals(user)[0]:
                fail("%s: total_unread %s, model %d" % (dev, final["total_unread"], model.totals(user)[0]))
    # Order as one device saw it: a send made after the previous send's ack comes after it in the stream.
    by_device = {}
    for w in writes:
        if w["kind"] == "send":
            by_device.setdefault((w["device"], w["conv"]), []).append(w)
    for (dev, conv_id), ws in by_device.items():
        ws.sort(key=lambda w: w["created"])
        for a, b in zip(ws, ws[1:]):
            if b["created"] > a["acked"] and b["seq"] < a["seq"]:
                figures[a["profile"]]["order"] += 1
                fail("%s %s: a send made after seq %d was acknowledged got seq %d" % (dev, conv_id, a["seq"], b["seq"]))
    return model, writes, figures


def check_bounds(run, args):
    """parleyd's memory and disk stayed bounded: under the absolute limits, flat while idle, and the data dir
    proportional to what was stored."""
    peak = max(r for _, r in run.rss) if run.rss else 0
    if peak > args.rss_limit:
        run.fail("parleyd's RSS reached %.1f MiB (limit %.0f)" % (peak, args.rss_limit))
    if run.rss_idle_start and run.rss_idle_end and run.rss_idle_end > run.rss_idle_start + 8:
        run.fail("parleyd's RSS grew while idle: %.1f -> %.1f MiB" % (run.rss_idle_start, run.rss_idle_end))
    entries = sum(len(c["entries"]) for c in (getattr(run, "streams", None) or {}).values())
    disk_peak = max(d for _, d in run.disk_samples) if run.disk_samples else 0
    disk_limit = min(args.disk_limit, 64 + entries * 16 / 1024.0)  # 64 MiB of RocksDB overhead + 16 KiB per entry
    if disk_peak > disk_limit:
        run.fail("the data dir reached %.1f MiB (limit %.1f for %d entries)" % (disk_peak, disk_limit, entries))
    return peak, disk_peak


def summarize(run, writes, figures):
    """Per profile: the figures docs/reliability.md reports."""
    out = {}
    t_traffic, c_traffic = run.phase_bytes["traffic"]
    t_idle, c_idle_phase = run.phase_bytes["idle"]
    i0, i1 = run.idle_start, run.idle_end
    for prof, res in run.results.items():
        mine = [w for w in writes if w["profile"] == prof]
        sends = [w for w in mine if w["kind"] == "send"]
        timings = {"connect_to_synced": [], "outage_to_synced": [], "nat_detect": []}
        stats = {}
        seen_in_window = 0
        for d in res["devices"].values():
            for k in timings:
                timings[k] += d.get("timings", {}).get(k, [])
            for k, v in d.get("stats", {}).items():
                stats[k] = stats.get(k, 0) + v
            seen_in_window += sum(1 for t, _ in d.get("seen_at", {}).values() if t_traffic <= t < t_idle)
        ndev = len(res["devices"])

        def total(c):
            x = c.get(prof, {})
            return x.get("up_bytes", 0) + x.get("down_bytes", 0)
        # Wire bytes (IP layer, both directions) of traffic + quiesce, per message handled in that window: a
        # send acknowledged to one of this profile's devices, or an entry first arriving at one of them.
        handled = sum(1 for w in mine if t_traffic <= w["acked"] < t_idle) + seen_in_window
        online0 = (i0[2].get(prof) or {}).get("online", 0)
        online1 = (i1[2].get(prof) or {}).get("online", 0)
        fig = figures.get(prof, {})
        ack_lat = [w["acked"] - w["created"] for w in sends]
        out[prof] = {
            "devices": ndev,
            "sent": len(sends) + len([f for f in res["failed"] if f["kind"] == "send"]),
            "acked": len(sends),
            "edits": len([w for w in mine if w["kind"] == "edit"]),
            "recalls": len([w for w in mine if w["kind"] == "recall"]),
            "replays": len([w for w in res["writes"] if w.get("replay")]),
            "failed": len(res["failed"]),
            "delivered": fig.get("delivered", 0),
            "duplicated": fig.get("duplicated", 0),
            "lost": fig.get("lost", 0),
            "mismatched": fig.get("mismatched", 0),
            "unread_wrong": fig.get("unread_wrong", 0),
            "ack_n": len(ack_lat), "ack_p50": pct(ack_lat, 50), "ack_p99": pct(ack_lat, 99),
            "deliver_n": len(fig.get("deliver_lat", [])),
            "deliver_p50": pct(fig.get("deliver_lat", []), 50),
            "deliver_p99": pct(fig.get("deliver_lat", []), 99),
            "live_share": len(fig.get("live_lat", [])) / len(fig["deliver_lat"]) if fig.get("deliver_lat") else None,
            "live_p50": pct(fig.get("live_lat", []), 50),
            "live_p99": pct(fig.get("live_lat", []), 99),
            "synced_n": len(timings["connect_to_synced"]),
            "synced_p50": pct(timings["connect_to_synced"], 50),
            "synced_p99": pct(timings["connect_to_synced"], 99),
            "outage_n": len(timings["outage_to_synced"]),
            "outage_p50": pct(timings["outage_to_synced"], 50),
            "outage_p99": pct(timings["outage_to_synced"], 99),
            "nat_detect_p50": pct(timings["nat_detect"], 50),
            "nat_detect_max": max(timings["nat_detect"]) if timings["nat_detect"] else None,
            "connects": stats.get("connects", 0),
            "drops": stats.get("drops", 0),
            "connect_failures": stats.get("connect_failures", 0),
            "resends": stats.get("resends", 0),
            "duplicate_acks": stats.get("duplicate_acks", 0),
            "backgrounded": stats.get("backgrounded", 0),
            "nat_forgotten": stats.get("nat_forgotten", 0),
            "live_dup": stats.get("live_dup", 0),
            "bytes_per_message": (total(c_idle_phase) - total(c_traffic)) / handled if handled else None,
            "idle_bytes_per_device_hour": ((total(i1[1]) - total(i0[1])) / online0 / (i1[0] - i0[0]) * 3600
                                           if online0 else None),
            "idle_online": (online0, online1),
            "netem_late": {k: (i1[1].get(prof) or {}).get(k) for k in ("late_5ms", "late_20ms", "late_max_ms")},
            "netem_packets": (i1[1].get(prof) or {}).get("up_packets", 0) + (i1[1].get(prof) or {}).get("down_packets", 0),
            "calibration": run.calibration.get(prof),
            "shaping": netns.PROFILES.get(prof),
        }
    return out


def print_report(run, summary):
    rows = [
        ("devices", "devices", str),
        ("messages sent / acked", None, lambda s: "%d / %d" % (s["sent"], s["acked"])),
        ("edits / recalls acked", None, lambda s: "%d / %d" % (s["edits"], s["recalls"])),
        ("sends replayed after an ack (answered as duplicates)", "replays", str),
        ("deliveries (message × member device)", "delivered", str),
        ("duplicated / lost / wrong state", None, lambda s: "%d / %d / %d" % (s["duplicated"], s["lost"], s["mismatched"])),
        ("unread counts wrong", "unread_wrong", str),
        ("send→ack p50 / p99 ms", None, lambda s: "%s / %s" % (ms(s["ack_p50"]), ms(s["ack_p99"]))),
        ("send→delivery p50 / p99 ms, all", None, lambda s: "%s / %s" % (ms(s["deliver_p50"]), ms(s["deliver_p99"]))),
        ("delivered live (not by sync)", None, lambda s: "-" if s["live_share"] is None else "%.0f %%" % (100 * s["live_share"])),
        ("send→delivery p50 / p99 ms, live", None, lambda s: "%s / %s" % (ms(s["live_p50"]), ms(s["live_p99"]))),
        ("connect→synced p50 / p99 ms", None, lambda s: "%s / %s" % (ms(s["synced_p50"]), ms(s["synced_p99"]))),
        ("outage→synced p50 / p99 ms", None, lambda s: "%s / %s" % (ms(s["outage_p50"]), ms(s["outage_p99"]))),
        ("NAT blackholes / noticed p50, max s", None, lambda s: "%d / %s, %s" % (
            s["nat_forgotten"], "-" if s["nat_detect_p50"] is None else "%.1f" % s["nat_detect_p50"],
            "-" if s["nat_detect_max"] is None else "%.1f" % s["nat_detect_max"])),
        ("connects / drops / failed connects", None, lambda s: "%d / %d / %d" % (s["connects"], s["drops"], s["connect_failures"])),
        ("resends / answered as duplicate", None, lambda s: "%d / %d" % (s["resends"], s["duplicate_acks"])),
        ("wire bytes per message handled", None, lambda s: "-" if s["bytes_per_message"] is None else "%.0f" % s["bytes_per_message"]),
        ("idle bytes per device-hour", None, lambda s: "-" if s["idle_bytes_per_device_hour"] is None else "%.0f" % s["idle_bytes_per_device_hour"]),
        ("devices online at idle start / end", None, lambda s: "%s / %s" % tuple(s["idle_online"])),
        ("samples: acks / deliveries / syncs / outages", None, lambda s: "%d / %d / %d / %d" % (
            s["ack_n"], s["deliver_n"], s["synced_n"], s["outage_n"])),
        ("measured RTT p50 / p99 ms", None, lambda s: cal(s, "rtt")),
        ("measured loss per direction", None, lambda s: cal(s, "loss")),
        ("measured reordering / rate", None, lambda s: cal(s, "reorder")),
        ("netem: packets / > 5 ms late / > 20 ms late / max ms", None, lambda s: "%d / %s / %s / %s" % (
            s["netem_packets"], s["netem_late"]["late_5ms"], s["netem_late"]["late_20ms"], s["netem_late"]["late_max_ms"])),
    ]
    profs = list(summary)
    lines = ["| | " + " | ".join(profs) + " |", "|---|" + "---|" * len(profs)]
    for label, key, fmt in rows:
        vals = [fmt(summary[p][key]) if key else fmt(summary[p]) for p in profs]
        lines.append("| %s | %s |" % (label, " | ".join(vals)))
    print("\n".join(lines))
    print()
    print("kills: %d; parleyd restart to listening: %s s; RSS baseline %.1f MiB, peak %.1f MiB, idle %.1f -> %.1f "
          "MiB, at the end %.1f MiB; data dir peak %.1f MiB, at the end %.1f MiB" % (
              len(run.restart_to_listening), ", ".join("%.2f" % x for x in run.restart_to_listening) or "-",
              run.rss_baseline or 0, max(r for _, r in run.rss) if run.rss else 0, run.rss_idle_start or 0,
              run.rss_idle_end or 0, run.final_rss or 0,
              max(d for _, d in run.disk_samples) if run.disk_samples else 0, run.disk))


def cal(s, what):
    c = s.get("calibration") or {}
    try:
        if what == "rtt":
            return "%.0f / %.0f" % (c["rtt_ms"]["p50"], c["rtt_ms"]["p99"])
        if what == "loss":
            return "%.1f %%" % (100 * c["loss_per_dir"])
        rate = c.get("rate_down_kbit")
        return "%.1f %% / %s" % (100 * (c.get("reorder") or 0), "%.0f kbit/s" % rate if rate else "-")
    except (KeyError, TypeError):
        return "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parleyd", default=os.environ.get("PARLEYD", str(HERE.parents[1] / "build/broker/main/parleyd")))
    ap.add_argument("--long", action="store_true", help="the long run (about 25 minutes)")
    ap.add_argument("--profiles", default="good4g,bad3g,edge,flaky")
    ap.add_argument("--seed", default=str(int(time.time())))
    ap.add_argument("--workdir", help="keep everything here (default: a temporary dir, removed on success)")
    ap.add_argument("--traffic", type=float, help="seconds of traffic (overrides the preset)")
    ap.add_argument("--users", type=int, help="users per profile (overrides the preset)")
    ap.add_argument("--kills", type=int, help="kill -9 count (overrides the preset)")
    ap.add_argument("--idle", type=float, help="seconds of idle (overrides the preset)")
    ap.add_argument("--rss-limit", type=float, default=400.0, help="MiB parleyd may not exceed")
    ap.add_argument("--disk-limit", type=float, default=512.0, help="MiB the data dir may not exceed")
    ap.add_argument("--json", help="write the summary as JSON here")
    ap.add_argument("--prefix", default="pch", help="namespace name prefix (two runs at once need different ones)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("chaos.py needs root (network namespaces, tun, iptables)", file=sys.stderr)
        return 2
    # SIGTERM (a CI timeout, a kill by hand) unwinds like an exception, so the broker, the clients and the
    # namespaces are cleaned up below.
    def on_term(*_):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second one must not interrupt the cleanup
        sys.exit(143)
    signal.signal(signal.SIGTERM, on_term)
    preset = dict(PRESETS["long" if args.long else "small"])
    for k in ("traffic", "users", "kills", "idle"):
        if getattr(args, k) is not None:
            preset[k] = getattr(args, k)
    log("seed %s, preset %s" % (args.seed, json.dumps(preset)))
    run = Run(args, preset)
    try:
        run.execute()
        _, writes, figures = check(run)
        summary = summarize(run, writes, figures)
    finally:
        if getattr(run, "broker", None) and run.broker.proc and run.broker.proc.poll() is None:
            run.broker.proc.kill()
        for proc in run.sims.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        run.lab.teardown()
    peak, disk_peak = check_bounds(run, args)
    print_report(run, summary)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({
            "seed": args.seed, "preset": preset, "summary": summary, "failures": run.failures,
            "rss": {"baseline": run.rss_baseline, "peak": peak, "idle_start": run.rss_idle_start,
                    "idle_end": run.rss_idle_end, "end": run.final_rss},
            "disk_mib": {"peak": disk_peak, "end": run.disk},
            "restart_to_listening": run.restart_to_listening}, indent=1, default=str))
    if run.failures:
        print("\n%d invariant violation(s):" % len(run.failures))
        for f in run.failures[:40]:
            print("  - " + f)
        print("work dir kept: %s" % run.work)
        return 1
    print("\nall invariants held (seed %s)" % args.seed)
    if not args.workdir:
        shutil.rmtree(run.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
