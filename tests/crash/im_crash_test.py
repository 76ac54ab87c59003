#!/usr/bin/python3
"""kill -9 crash test for the IM layer: nothing acknowledged is lost, nothing is stored twice.

Senders (one device each) send IM messages with pipelined QoS 1 requests into direct conversations with a
"sink" user and into one group, while parleyd is SIGKILLed at a random moment mid-traffic and restarted on the
same data dir. After each restart every sender resends, with the same client_msg_id, every message it sent but
never saw acknowledged — as a real app does. At the end the stream of every conversation is read back with
range requests and checked:
  - seqs run 1..max with no hole;
  - every acknowledged client_msg_id is there exactly once, at the seq its ack named;
  - no client_msg_id is there twice (resends after a crash deduplicated), and nothing is there we never sent;
  - every message was eventually acknowledged.
Prints a JSON report with --report. Usage: im_crash_test.py --parleyd PATH [--rounds N] [--seconds S]
[--senders N] [--window W] [--seed N] [--data-dir DIR]. Exit status 0 when every check holds.
"""
import argparse
import json
import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "im"))
from imclient import Device, pb  # noqa: E402


class Parleyd:
    def __init__(self, binary, workdir):
        self.binary, self.dir = binary, pathlib.Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "parley.toml"
        self.config.write_text('[[listener]]\nname = "mqtt"\nbind = "127.0.0.1"\nport = 0\n'
                               '[im]\nsend_rate = 0\n')
        self.logfile = self.dir / "broker.log"
        self.proc = None
        self.port = None

    def start(self):
        offset = self.logfile.stat().st_size if self.logfile.exists() else 0
        log = open(self.logfile, "ab")
        self.proc = subprocess.Popen([self.binary, "--config", str(self.config), "--data-dir", str(self.dir / "data")],
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            m = re.search(r"listening on [^ ]+:(\d+)", self.logfile.read_text(errors="replace")[offset:])
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                raise RuntimeError("parleyd exited:\n" + self.logfile.read_text(errors="replace")[-3000:])
            time.sleep(0.02)
        raise RuntimeError("parleyd did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


class Sender:
    """One user with one device; remembers every message it sent and which were acknowledged."""

    def __init__(self, name, convs, window):
        self.name, self.convs, self.window = name, convs, window
        self.sent = {}       # cmid -> conv
        self.acked = {}      # cmid -> (conv, seq)
        self.duplicate_acks = 0
        self.resent = 0
        self.pending = {}    # req_id -> cmid (this connection)
        self.dev = None
        self.n = 0

    def attach(self, port):
        self.dev = Device(port, self.name, self.name + "-dev")
        self.pending = {}

    def detach(self):
        if self.dev:
            self.dev.drop()
            self.dev = None

    def _publish(self, cmid, conv):
        req = pb.Request(req_id=uuid.uuid4().hex, send=pb.SendReq(conv_id=conv, client_msg_id=cmid, text=cmid))
        self.pending[req.req_id] = cmid
        self.dev.publish_request(req)

    def _collect(self):
        with self.dev.cond:
            got = {rid: self.dev.responses.pop(rid) for rid in list(self.pending) if rid in self.dev.responses}
        for rid, resp in got.items():
            cmid = self.pending.pop(rid)
            if resp.HasField("error") and resp.error.code != pb.OK:
                raise AssertionError("%s: send %s refused: %s" % (self.name, cmid, resp.error))
            if cmid in self.acked and self.acked[cmid] != (resp.ack.conv_id, resp.ack.seq):
                raise AssertionError("%s: %s acked twice differently: %s then %s" %
                                     (self.name, cmid, self.acked[cmid], (resp.ack.conv_id, resp.ack.seq)))
            self.acked[cmid] = (resp.ack.conv_id, resp.ack.seq)
            self.duplicate_acks += resp.ack.duplicate

    def resend_unacked(self, timeout):
        for cmid, conv in self.sent.items():
            if cmid not in self.acked:
                self.resent += 1
                self._publish(cmid, conv)
        deadline = time.time() + timeout
        while self.pending and time.time() < deadline:
            self._collect()
            time.sleep(0.01)

    def traffic(self, stop, rng):
        try:
            while not stop.is_set():
                self._collect()
                if len(self.pending) < self.window:
                    self.n += 1
                    cmid = "%s-%d" % (self.name, self.n)
                    conv = rng.choice(self.convs)
                    self.sent[cmid] = conv
                    self._publish(cmid, conv)
                else:
                    time.sleep(0.001)
        except Exception:  # the broker died under us: what was not acknowledged is resent next round
            pass


def read_stream(dev, conv):
    """Every entry of `conv`, ascending, by range requests; and the stream's max seq."""
    out, lo, max_seq = [], 1, None
    while max_seq is None or lo <= max_seq:
        page = dev.request(range=pb.RangeReq(conv_id=conv, from_seq=lo, to_seq=lo + 199)).messages
        max_seq = page.max_seq
        out.extend(page.messages)
        lo = page.messages[-1].seq + 1 if page.messages else lo + 200
    return out, max_seq


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parleyd", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--report", action="store_true")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work = a.data_dir or tempfile.mkdtemp(prefix="parley-im-crash-")
    print("im crash test: seed %d, work dir %s" % (a.seed, work), file=sys.stderr)
    broker = Parleyd(a.parleyd, work)
    broker.start()

    # Conversations: sender_i <-> sink, and one group of everyone.
    names = ["s%d" % i for i in range(a.senders)]
    sink = Device(broker.port, "sink", "sink-dev")
    directs = {}
    for n in names:
        d = Device(broker.port, n, n + "-setup")
        directs[n] = d.open_direct("sink").conv_id
        d.close()
    group = sink.create_group("crash", names, cmid="crash-group").conv_id
    senders = [Sender(n, [directs[n], group], a.window) for n in names]
    sink.close()

    kills = 0
    for rnd in range(a.rounds):
        for s in senders:
            s.attach(broker.port)
            s.resend_unacked(timeout=20)
        stop = threading.Event()
        threads = [threading.Thread(target=s.traffic, args=(stop, random.Random(rng.random()))) for s in senders]
        for t in threads:
            t.start()
        time.sleep(a.seconds * rng.uniform(0.3, 0.9))
        broker.kill()  # mid-traffic
        kills += 1
        stop.set()
        for t in threads:
            t.join(30)
        for s in senders:
            s._collect()  # answers that arrived before the kill still count
            s.detach()
        broker.start()

    # Settle: everything sent is eventually acknowledged (resends deduplicated or stored now).
    for s in senders:
        s.attach(broker.port)
        s.resend_unacked(timeout=30)
    failures = []
    for s in senders:
        missing = [c for c in s.sent if c not in s.acked]
        if missing:
            failures.append("%s: %d messages never acknowledged, e.g. %s" % (s.name, len(missing), missing[:3]))

    reader = Device(broker.port, "sink", "sink-check")
    acked_at = {}
    for s in senders:
        for cmid, (conv, seq) in s.acked.items():
            acked_at[cmid] = (conv, seq)
    seen = {}
    holes = doubles = phantoms = misplaced = 0
    for conv in set(directs.values()) | {group}:
        entries, max_seq = read_stream(reader, conv)
        seqs = [m.seq for m in entries]
        if seqs != list(range(1, max_seq + 1)):
            holes += 1
            failures.append("%s: seqs are not 1..%d without holes: %s" % (conv, max_seq, seqs[:20]))
        for m in entries:
            if m.type != pb.MSG_TEXT:
                continue
            if m.client_msg_id in seen:
                doubles += 1
                failures.append("%s stored twice: %s and %s" % (m.client_msg_id, seen[m.client_msg_id], (conv, m.seq)))
            seen[m.client_msg_id] = (conv, m.seq)
            if m.client_msg_id not in acked_at:
                phantoms += 1
                failures.append("%s stored but never sent/acked" % m.client_msg_id)
            elif acked_at[m.client_msg_id] != (conv, m.seq):
                misplaced += 1
                failures.append("%s acked at %s but stored at %s" % (m.client_msg_id, acked_at[m.client_msg_id],
                                                                     (conv, m.seq)))
    lost = [c for c in acked_at if c not in seen]
    for c in lost[:10]:
        failures.append("acknowledged %s at %s is gone" % (c, acked_at[c]))
    reader.close()
    for s in senders:
        s.detach()
    rc = broker.stop()
    if rc not in (0, None):
        failures.append("parleyd exited with %s at the end" % rc)

    report = {
        "seed": a.seed, "rounds": a.rounds, "kills": kills, "senders": a.senders,
        "sent": sum(len(s.sent) for s in senders), "acked": len(acked_at), "resent": sum(s.resent for s in senders),
        "duplicate_acks": sum(s.duplicate_acks for s in senders), "stored": len(seen), "lost": len(lost),
        "stored_twice": doubles, "holes": holes, "phantoms": phantoms, "misplaced": misplaced,
        "failures": failures[:50],
    }
    print(json.dumps(report) if a.report else json.dumps(report, indent=2))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
