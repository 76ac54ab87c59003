"""Simulated mobile apps for the chaos harness (tests/chaos/chaos.py): one process per network profile, run
inside that profile's client network namespace, driving every device of the users on that network.

Each device is what docs/protocol.md ("Client checklist") asks an app to be, built on the test suite's
model_client.AppDevice (its local view: entries deduplicated by (conv_id, seq), edits and recalls applied to their
targets whichever arrives first, summaries and read state merged newest-wins):

- it connects with its own stable client id (phones MQTT 5, tablets MQTT 3.1.1, clean sessions), keep alive
  `--keepalive`, subscribes to its device topic, syncs from its stored cursor while has_more and fills gaps with
  `range`, then resends everything in its outbox with the original client_msg_id;
- the user sends, now and then edits or recalls one of their own messages (from either of their two devices),
  and marks conversations read; every write stays in the device's outbox until its ack arrives (retryable
  errors and timeouts keep it there; a refusal such as ERR_CONFLICT — a recall by the other device won the race —
  marks it failed);
- a lost connection (socket error, keep alive expired, a request unanswered for `--req-timeout`) is dropped and
  retried with exponential backoff and jitter; the app also goes to the background now and then (DISCONNECT, gone
  for a while, then the full reconnect routine);
- "NAT forgets": now and then a device's current TCP connection is silently blackholed with iptables rules on its
  source port inside this namespace, so neither end hears anything until a keep alive expires.

The orchestrator steers the phases through a control file (traffic → quiesce → idle → final) and reads a status
file; at the end every device reconnects on the healed network, catches up, and the process writes what it saw:
acknowledged writes, read positions, each device's final view and summaries, timings. chaos.py checks them.
"""
import argparse
import json
import os
import pathlib
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import deque

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "im"))

from imclient import FORMATS, ImError, decode, pb  # noqa: E402
from im_model import wire_key  # noqa: E402
from model_client import AppDevice  # noqa: E402

# Errors after which a write is retried with the same client_msg_id (protocol.md, "Client checklist").
RETRYABLE = {pb.ERR_RATE_LIMITED, pb.ERR_UNAVAILABLE, pb.ERR_INTERNAL}
REPLAY_SHARE = 0.03  # of acknowledged sends, sent once more as if the app had crashed before saving the ack


class Trouble(Exception):
    """The connection is unusable: drop it and reconnect."""


class Device(AppDevice):
    def __init__(self, sim, user, device, v5):
        super().__init__(sim.port, user, device, fmt="pb", v5=v5, clean=True)
        self.sim = sim
        self.host = sim.host
        self.keepalive = sim.keepalive
        self.rng = random.Random("%s/%s" % (sim.seed, device))
        self.outbox = []          # writes not acknowledged yet: dicts (see new_write)
        self.read_pending = {}    # conv_id -> seq to mark read (forward-only; one call covers all before it)
        self.raw = deque(maxlen=32)  # imclient keeps every PUBLISH for its tests; the last few are enough here
        self.seen_at = {}         # "conv:seq" -> (unix time this device first held the entry, came live)
        self.arrived = {}         # "conv:seq" -> when a live event for it arrived (Paho's thread)
        self.connected_at = None
        self.dropped_at = None    # when the current outage began: the drop, the blackhole, the end of a background
        self.background_until = 0.0
        self.nat_rules = []       # source ports of blackholed connections whose rules are in force
        self.timings = {"connect_to_synced": [], "outage_to_synced": [], "nat_detect": []}
        self.nat_pending = None   # when the current connection was blackholed
        self.final = None
        self.done = False
        self.error = None

    # ---- connection (model_client.AppDevice.connect, to this host, with this keep alive) ---------------
    def connect(self, timeout=None):
        return super().connect(timeout or self.sim.req_timeout)

    def connect_failed(self, why):
        raise Trouble(why)  # the run loop hangs up and retries with backoff

    def _on_message(self, client, userdata, msg):
        """As Device._on_message; also notes when a live entry arrived (for send→delivery latency: the device
        thread may apply it later, after a request it is waiting for)."""
        now = time.time()
        fmt = msg.topic.rsplit("/", 1)[-1]
        try:
            frame = decode(msg.payload, pb.ServerFrame, fmt if fmt in FORMATS else self.fmt)
            if frame.HasField("event") and frame.event.HasField("message"):
                m = frame.event.message
                with self.cond:
                    self.arrived.setdefault("%s:%d" % (m.conv_id, m.seq), now)
        except Exception:  # noqa: BLE001 - Device._on_message records undecodable frames
            pass
        super()._on_message(client, userdata, msg)

    def wait_response(self, req_id, timeout=None):
        """As Device.wait_response, but gives up at once when the connection is lost."""
        deadline = time.time() + (timeout or self.sim.req_timeout)
        with self.cond:
            while req_id not in self.responses:
                if self.lost_connection.is_set():
                    raise Trouble("connection lost while waiting for %s" % req_id)
                left = deadline - time.time()
                if left <= 0:
                    raise Trouble("no response to a request in %.0f s" % self.sim.req_timeout)
                self.cond.wait(min(left, 0.2))
            return self.responses.pop(req_id)

    def request(self, timeout=None, raise_error=True, qos=1, **op):
        if self.client is None:
            raise Trouble("offline")
        return super().request(timeout=timeout or self.sim.req_timeout, raise_error=raise_error, qos=qos, **op)

    def hang_up(self, clean=False):
        """Leaves the current connection: DISCONNECT when `clean` (the app goes to the background), else the
        socket just goes (a lost link)."""
        c = self.client
        if c is None:
            return
        if clean:
            try:
                c.disconnect()  # Paho's thread sends DISCONNECT and then ends
                thread = getattr(c, "_thread", None)
                end = time.time() + 1.0
                while thread is not None and thread.is_alive() and time.time() < end:
                    time.sleep(0.02)
            except Exception:  # noqa: BLE001 - the link may be gone already
                pass
        self.drop()  # AppDevice: the socket goes, Paho's thread stops
        with self.cond:
            self.responses.clear()  # answers to requests of the old connection are of no use now
        if self.dropped_at is None:
            self.dropped_at = self.nat_pending or time.time()  # a blackhole's outage began when the NAT forgot
        self.nat_pending = None
        self.clear_nat()  # the NAT has forgotten that connection; the next one gets a new mapping
        self.connected_at = None

    # ---- the local view: remember when each entry first arrived -------------------------------------
    def merge(self, lc, m, live=False):
        key = "%s:%d" % (m.conv_id, m.seq)
        with self.cond:
            at = self.arrived.pop(key, None)
        if key not in self.seen_at:
            # live: as an event (stamped when it arrived), else from a sync or range (stamped now)
            self.seen_at[key] = ((at if live and at else time.time()), live)
        super().merge(lc, m, live=live)

    def has_gap(self):
        for lc in self.member_convs().values():
            lo = max(lc.floor, lc.summary.min_seq)
            for s in range(max(lo, lc.max_known() - 50), lc.max_known() + 1):  # recent part: cheap
                if s not in lc.entries and s not in lc.hidden:
                    return True
        return False

    # ---- the app's routine on every connect ---------------------------------------------------------
    def come_online(self):
        t0 = time.time()
        self.connect()
        self.stats["connects"] += 1
        self.sync_all()
        self.fill_gaps()
        self.process_events()
        now = time.time()
        self.timings["connect_to_synced"].append(now - t0)
        if self.dropped_at is not None:
            self.timings["outage_to_synced"].append(now - self.dropped_at)
        self.dropped_at = None
        self.connected_at = now
        self.drain()

    def drain(self):
        """Sends every unacknowledged write (oldest first; one answered with a retryable error waits for its
        backoff), then the pending read marks."""
        now = time.time()
        for w in list(self.outbox):
            if w.get("next_attempt", 0) <= now:
                self.attempt(w)
        for conv_id, seq in list(self.read_pending.items()):
            r = self.request(mark_read=pb.MarkReadReq(conv_id=conv_id, seq=seq), raise_error=False)
            if r.HasField("error") and r.error.code != pb.OK:
                if r.error.code in RETRYABLE:
                    continue
                self.sim.record_failed("mark_read", self, {"conv": conv_id, "target": seq}, r.error.code)
            else:
                # The model is built from what was asked, not from the answer: a server that ignored or cut
                # a mark would otherwise be agreed with. The answer must cover it (marks are forward-only).
                self.sim.record_read(self.user, conv_id, seq, r.read.read_seq)
                self.record_read(r.read)
            if self.read_pending.get(conv_id) == seq:
                del self.read_pending[conv_id]

    def attempt(self, w):
        kind = w["kind"]
        if kind == "send":
            op = {"send": pb.SendReq(conv_id=w["conv"], client_msg_id=w["cmid"], text=w["text"])}
        elif kind == "edit":
            op = {"edit": pb.EditReq(conv_id=w["conv"], seq=w["target"], text=w["text"], client_msg_id=w["cmid"])}
        else:
            op = {"recall": pb.RecallReq(conv_id=w["conv"], seq=w["target"], client_msg_id=w["cmid"])}
        w["attempts"] += 1
        if w["attempts"] > 1:
            self.stats["resends"] += 1
        r = self.request(raise_error=False, **op)
        if r.HasField("error") and r.error.code != pb.OK:
            if r.error.code in RETRYABLE:
                self.stats["retryable_errors"] += 1
                w["next_attempt"] = time.time() + min(8.0, 0.5 * 2 ** w["attempts"]) * self.rng.uniform(0.5, 1.5)
                return
            self.outbox.remove(w)
            self.sim.record_failed(kind, self, w, r.error.code)
            return
        ack = r.ack
        self.outbox.remove(w)
        w.update(seq=ack.seq, acked=time.time(), duplicate=ack.duplicate, device=self.device)
        if ack.duplicate:
            self.stats["duplicate_acks"] += 1
        self.sim.record_write(w)
        if w.get("replay"):
            return
        if kind == "send":
            self.record_own_send(w["conv"], ack, w["cmid"], w["text"], [], 0)
            self.sim.add_own(self.user, (w["conv"], ack.seq))
            if self.rng.random() < REPLAY_SHARE:  # the app "crashed" before it saved this ack: it sends again
                self.outbox.append(dict(w, attempts=0, replay=True, created=time.time()))
        else:
            try:
                self.record_own_change(w["conv"], ack.seq)
            except ImError:
                pass  # the next sync brings it

    # ---- what the user does while the app is open ---------------------------------------------------
    def new_write(self, kind, conv, target=0):
        w = {"kind": kind, "cmid": uuid.uuid4().hex, "conv": conv, "target": target, "user": self.user,
             "text": "%s %s %s" % (kind, self.device, uuid.uuid4().hex[:8]) if kind != "recall" else "",
             "created": time.time(), "attempts": 0}
        self.outbox.append(w)
        self.drain()  # behind anything older still waiting

    def act(self):
        sim, rng = self.sim, self.rng
        if rng.random() < sim.tick / sim.send_every:
            mine = sim.own_messages(self.user)
            roll = rng.random()
            if mine and roll < 0.08:
                picked = sim.pick_own(self.user, rng)
                if picked:
                    self.new_write("edit", *picked)
            elif mine and roll < 0.12:
                picked = sim.take_own(self.user, rng)
                if picked:
                    self.new_write("recall", *picked)
            else:
                self.new_write("send", rng.choice(sim.convs_of[self.user]))
        if rng.random() < sim.tick / sim.read_every:
            for cid, lc in self.member_convs().items():
                newest = max(lc.entries) if lc.entries else 0
                if lc.summary is not None and newest > lc.summary.read_seq:
                    self.read_pending[cid] = max(self.read_pending.get(cid, 0), newest)
        if sim.background_every and rng.random() < sim.tick / sim.background_every:
            self.stats["backgrounded"] += 1
            self.background_until = time.time() + rng.uniform(*sim.background_for)
            self.hang_up(clean=True)
            self.dropped_at = self.background_until  # away on purpose: the outage starts when the user returns
            return
        if sim.nat_every and sim.broker_ns and self.nat_pending is None and rng.random() < sim.tick / sim.nat_every:
            self.forget_nat()

    def nat_rules_for(self, port):
        """The blackhole of one connection, where a NAT between phone and broker would drop it: packets to the
        phone's port arriving here, and the phone's packets arriving at the broker's namespace. (A DROP in OUTPUT
        would not be silent: the sender's own stack would see the refusal.)"""
        return [
            ["iptables", "-w"], ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"],
            ["ip", "netns", "exec", self.sim.broker_ns, "iptables", "-w"],
            ["INPUT", "-p", "tcp", "-s", self.sim.client_addr, "--sport", str(port), "-j", "DROP"],
        ]

    def forget_nat(self):
        sock = self.client.socket() if self.client else None
        if sock is None:
            return
        port = sock.getsockname()[1]
        cmd = self.nat_rules_for(port)
        for i in (0, 2):
            subprocess.run(cmd[i] + ["-I"] + cmd[i + 1], check=True, timeout=15)
        self.nat_rules.append(port)
        self.nat_pending = time.time()
        self.stats["nat_forgotten"] += 1

    def clear_nat(self):
        for port in self.nat_rules:
            cmd = self.nat_rules_for(port)
            for i in (0, 2):
                subprocess.run(cmd[i] + ["-D"] + cmd[i + 1], check=False, stderr=subprocess.DEVNULL, timeout=15)
        self.nat_rules = []

    # ---- the device's thread ------------------------------------------------------------------------
    def run(self):
        """Phases (set by the orchestrator): traffic (the user acts, the app drains its outbox), quiesce (no new
        actions; drain), idle (stay connected, nothing else: the keep-alive cost), final (the network is healed:
        reconnect, drain; `drained` tells the orchestrator), report (everyone has drained: catch up, take the
        server's counters, hang up)."""
        backoff = 0.5
        try:
            while not self.sim.stopping():
                phase = self.sim.phase
                if phase == "report":
                    self.finish()
                    return
                if phase == "final" and self.nat_rules:
                    self.clear_nat()
                if self.client is None:
                    if time.time() < self.background_until and phase == "traffic":
                        time.sleep(self.sim.tick)
                        continue
                    try:
                        self.come_online()
                        backoff = 0.5
                    except (Trouble, ImError, OSError):
                        self.stats["connect_failures"] += 1
                        self.hang_up()
                        time.sleep(backoff * self.rng.uniform(0.5, 1.5))
                        backoff = min(backoff * 2, 8.0)
                    continue
                try:
                    if self.lost_connection.is_set():
                        raise Trouble("connection lost")
                    self.process_events()
                    if self.has_gap():
                        self.fill_gaps()
                    if phase == "traffic":
                        self.act()
                    if phase != "idle" and self.client is not None:
                        self.drain()
                except (Trouble, ImError, OSError) as e:
                    self.note_drop(str(e))
                    continue
                time.sleep(self.sim.tick)
        except Exception as e:  # noqa: BLE001 - reported, the orchestrator fails the run
            import traceback
            self.error = "%s: %s" % (e, traceback.format_exc())
        finally:
            self.done = True

    def note_drop(self, why):
        self.stats["drops"] += 1
        if self.nat_pending is not None:
            self.timings["nat_detect"].append(time.time() - self.nat_pending)
        self.hang_up()

    def finish(self):
        """Every device of every process has drained its outbox on the healed network: reconnect if needed,
        catch up, then a full sync for the server's counters (what the orchestrator checks against its model)."""
        self.clear_nat()
        deadline = time.time() + self.sim.final_timeout
        while True:
            try:
                if self.client is None or self.lost_connection.is_set():
                    self.hang_up()
                    self.come_online()
                self.drain()
                self.process_events()
                self.sync_all()
                self.fill_gaps()
                self.process_events()
                full = self.sync(cursor=0, per_conv=1, max_convs=200)
                break
            except (Trouble, ImError, OSError) as e:
                if time.time() > deadline:
                    raise RuntimeError("%s: could not finish on the healed network: %s" % (self.device, e))
                self.hang_up()
                time.sleep(0.5)
        self.final = {
            "total_unread": full.total_unread,
            "convs": {cs.conversation.conv_id: {"unread": cs.conversation.unread, "read_seq": cs.conversation.read_seq,
                                                 "max_seq": cs.conversation.max_seq}
                      for cs in full.convs},
        }
        self.hang_up(clean=True)

    def report(self):
        return {
            "user": self.user,
            "v5": self.v5,
            "stats": dict(self.stats),
            "timings": self.timings,
            "views": {cid: [list(wire_key(m)) for m in self.view(cid)] for cid in self.member_convs()},
            "hidden": {cid: sorted(lc.hidden) for cid, lc in self.convs.items() if lc.hidden},
            "seen_at": self.seen_at,
            "final": self.final,
            "outbox": [dict(w) for w in self.outbox],
            "read_pending": self.read_pending,
            "anomalies": self.anomalies,
            "error": self.error,
        }


class Sim:
    def __init__(self, args, plan):
        self.host, self.port = args.host, args.port
        self.broker_ns, self.client_addr = args.broker_ns, args.client_addr
        self.seed = args.seed
        self.keepalive = args.keepalive
        self.req_timeout = args.req_timeout
        self.tick = 0.1
        self.send_every = args.send_every
        self.read_every = args.read_every
        self.background_every = args.background_every
        self.background_for = (args.background_min, args.background_max)
        self.nat_every = args.nat_every
        self.final_timeout = args.final_timeout
        self.control = pathlib.Path(args.control)
        self.status = pathlib.Path(args.status)
        self.phase = "traffic"
        self._stop = False
        self.lock = threading.Lock()
        self.writes, self.reads, self.failed = [], [], []
        self.convs_of = {u: plan["convs_of"][u] for u in args.users.split(",")}
        self._own = {u: [] for u in self.convs_of}
        self.devices = []
        for u in self.convs_of:
            self.devices.append(Device(self, u, u + "-phone", v5=True))
            self.devices.append(Device(self, u, u + "-tablet", v5=False))

    def stopping(self):
        return self._stop

    def own_messages(self, user):
        return self._own[user]

    def add_own(self, user, item):
        with self.lock:
            self._own[user].append(item)

    def pick_own(self, user, rng):
        """One of the user's acknowledged messages (to edit), or None."""
        with self.lock:
            mine = self._own[user]
            return rng.choice(mine) if mine else None

    def take_own(self, user, rng):
        """One of the user's messages, no longer offered for edits (it is being recalled), or None."""
        with self.lock:
            mine = self._own[user]
            return mine.pop(rng.randrange(len(mine))) if mine else None

    def record_write(self, w):
        with self.lock:
            self.writes.append(dict(w))

    def record_read(self, user, conv_id, asked, answered):
        with self.lock:
            self.reads.append({"user": user, "conv": conv_id, "read_seq": asked, "answered": answered})

    def record_failed(self, kind, dev, w, code):
        with self.lock:
            self.failed.append({"kind": kind, "device": dev.device, "cmid": w.get("cmid", ""), "conv": w["conv"],
                                "target": w.get("target", 0), "replay": w.get("replay", False),
                                "code": pb.ErrorCode.Name(code)})

    def run(self, out_path, deadline):
        threads = [threading.Thread(target=d.run, name=d.device, daemon=True) for d in self.devices]
        for t in threads:
            t.start()
        while time.time() < deadline:
            try:
                ctl = json.loads(self.control.read_text())
                self.phase = ctl.get("phase", self.phase)
            except (OSError, ValueError):
                pass
            status = {
                "phase": self.phase,
                "online": sum(1 for d in self.devices if d.client is not None and d.connected_at is not None),
                "devices": len(self.devices),
                "outbox": sum(len(d.outbox) for d in self.devices),
                "read_pending": sum(len(d.read_pending) for d in self.devices),
                "done": sum(1 for d in self.devices if d.done),
                "errors": [d.device + ": " + d.error for d in self.devices if d.error],
                "writes": len(self.writes),
            }
            tmp = self.status.with_suffix(".tmp")
            tmp.write_text(json.dumps(status))
            os.replace(tmp, self.status)
            if status["done"] == len(self.devices):
                break
            time.sleep(0.25)
        self._stop = True
        for t in threads:
            t.join(timeout=5)
        reports = {}
        for d in self.devices:
            try:
                d.hang_up()
                reports[d.device] = d.report()
            except Exception as e:  # noqa: BLE001 - a device thread still running (the time bound hit)
                reports[d.device] = {"user": d.user, "error": "no report: %r" % e}
        result = {
            "devices": reports,
            "writes": self.writes,
            "reads": self.reads,
            "failed": self.failed,
            "timed_out": time.time() >= deadline,
        }
        tmp = pathlib.Path(out_path).with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        os.replace(tmp, out_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--broker-ns", help="the broker's network namespace (for NAT blackholes)")
    ap.add_argument("--client-addr", help="this namespace's address as the broker sees it")
    ap.add_argument("--users", required=True, help="comma-separated user names (two devices each)")
    ap.add_argument("--plan", required=True, help="JSON: {convs_of: {user: [conv_id]}}")
    ap.add_argument("--control", required=True)
    ap.add_argument("--status", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", default="1")
    ap.add_argument("--keepalive", type=int, default=30)
    ap.add_argument("--req-timeout", type=float, default=20.0)
    ap.add_argument("--send-every", type=float, default=4.0, help="mean seconds between writes per device")
    ap.add_argument("--read-every", type=float, default=6.0, help="mean seconds between read marks per device")
    ap.add_argument("--background-every", type=float, default=60.0, help="mean s between trips to the background (0: never)")
    ap.add_argument("--background-min", type=float, default=3.0)
    ap.add_argument("--background-max", type=float, default=20.0)
    ap.add_argument("--nat-every", type=float, default=240.0, help="mean s between NAT blackholes per device (0: never)")
    ap.add_argument("--final-timeout", type=float, default=120.0)
    ap.add_argument("--max-seconds", type=float, default=3600.0, help="hard bound on the process's life")
    args = ap.parse_args()
    plan = json.loads(pathlib.Path(args.plan).read_text())
    Sim(args, plan).run(args.out, time.time() + args.max_seconds)


if __name__ == "__main__":
    main()
