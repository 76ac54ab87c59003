#!/usr/bin/python3
"""kill -9 crash test for parleyd: nothing acknowledged is lost.

Starts parleyd on a loopback port with durable storage (`[storage] durability = "fsync"`), then:
  - persistent subscribers (fixed client ids; MQTT 5 with a long Session Expiry Interval and MQTT 3.1.1
    with clean session false) subscribe ONCE: QoS 1 on crash/q1/..., QoS 2 on crash/q2/...;
  - a few retained messages are published (QoS 1, acknowledged), one is replaced and one cleared;
  - publishers (persistent sessions too) publish QoS 1 and QoS 2 messages with unique payloads
    "<publisher>:<seq>:<qos>:<attempt>|..." continuously and record every acknowledgement the broker gives;
  - a driver kills the broker with SIGKILL at a seeded random moment of each round while traffic flows,
    restarts it on the same data dir and port, and the clients reconnect (clean start false, no resubscribe).
After the last round the publishers stop, the subscribers drain, and it checks:
  - every acknowledged QoS 1 message reached every subscriber at least once (duplicates counted, allowed);
  - every acknowledged QoS 2 message reached every subscriber exactly once;
  - every reconnect of a persistent client got Session Present = 1;
  - a fresh subscriber gets exactly the retained messages that were acknowledged;
  - the test was not vacuous: every round acknowledged messages and (by default) at least 90 % of the kills happened mid-traffic.
Exit code 0 = all held; 1 = a check failed (the first missing ids are printed); 2 = the harness itself failed.

Publishers are raw-socket MQTT clients (Paho 1.6 hides PUBREC and every ack reason code, sends PUBREL after a
refused PUBREC, and re-PUBLISHes PUBREC'd QoS 2 messages on reconnect when clean_session is true). What counts:
  QoS 1 acknowledged = PUBACK with reason < 0x80.
  QoS 2 acknowledged = PUBCOMP. The broker takes ownership at PUBREC (MQTT 4.3.3), so the check uses the
  superset "PUBREC with reason < 0x80"; both counts are reported. PUBCOMP 0x92 (packet id not found) to a
  resent PUBREL is legitimate (the first PUBCOMP was lost with the connection) and only counted.
A publisher never republishes a message under a new packet id while its session is present: after a
reconnect with Session Present = 1 it resends PUBLISH (DUP, same packet id) or PUBREL, as MQTT requires.
Only if the broker lost its session (itself a failure) does it republish, with <attempt> raised in the
payload, so duplicates caused by that are told apart ("excused") from broker duplicates.

Subscribers are Paho 1.6 clients (the receiving side of Paho is sound with persistent sessions: QoS 2 is
handed to the application on PUBREL, its packet-id state survives reconnects).

Controls of the harness itself: --fault drop cuts only the client connections (the broker keeps running), so
it must PASS on any correct broker, durable or not; --wipe-data-on-restart deletes the data dir before each
restart, so it must FAIL. tests/crash/test_crash.py runs both next to a short kill -9 run.

Run: /usr/bin/python3 tests/crash/crash_test.py --rounds 10 --seconds 5 --report
Human-readable progress and summary go to stderr; --report prints a JSON summary on stdout, --markdown a block
for docs/reliability.md.
"""
import argparse
import array
import collections
import datetime
import json
import os
import pathlib
import platform
import random
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_PARLEYD = os.environ.get("PARLEYD", str(ROOT / "build" / "broker" / "main" / "parleyd"))

SESSION_EXPIRY = 7 * 24 * 3600          # seconds; "large"
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14
RC_PACKET_ID_NOT_FOUND = 0x92
HOT_WINDOW = 0.5                        # a fault is "mid-traffic" if acks arrived within this many seconds before it

# Per-message status held by each publisher (one byte per sequence number).
ST_NONE, ST_SENT, ST_ACKED, ST_COMPLETED, ST_REFUSED = 0, 1, 2, 3, 4
# ST_ACKED: QoS 1 PUBACK ok, or QoS 2 PUBREC ok (broker owns it); ST_COMPLETED: QoS 2 PUBCOMP.

T0 = time.monotonic()


def log(msg):
    sys.stderr.write("[%7.2fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


class HarnessError(Exception):
    """The test could not run (exit 2)."""


class BrokerFailure(Exception):
    """The broker misbehaved in a way that stops the run, e.g. it did not come back after a kill (exit 1)."""


class Interrupted(Exception):
    pass


# ---------------------------------------------------------------------------------------------------------
# Minimal MQTT encoding/decoding for the raw publishers


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def encode_connect(client_id, version, clean, keepalive, session_expiry):
    var = mstr("MQTT") + bytes([version, 0x02 if clean else 0]) + struct.pack("!H", keepalive)
    if version == 5:
        props = b"\x11" + struct.pack("!I", session_expiry)
        var += varint(len(props)) + props
    return packet(CONNECT, 0, var + mstr(client_id))


def encode_publish(topic, payload, qos, pid, version, dup=False, retain=False):
    var = mstr(topic)
    if qos:
        var += struct.pack("!H", pid)
    if version == 5:
        var += b"\x00"
    return packet(PUBLISH, (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0), var + payload)


def encode_pubrel(pid):
    return packet(PUBREL, 0x02, struct.pack("!H", pid))


def encode_disconnect():
    return b"\xe0\x00"


class PacketReader:
    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data

    def packets(self):
        while len(self.buf) >= 2:
            val, mult, pos = 0, 1, 1
            while True:
                if pos >= len(self.buf):
                    return
                b = self.buf[pos]
                pos += 1
                val += (b & 0x7F) * mult
                mult *= 128
                if not b & 0x80:
                    break
                if pos > 4:
                    raise ConnectionError("malformed remaining length from broker")
            if len(self.buf) < pos + val:
                return
            hdr = self.buf[0]
            body = bytes(self.buf[pos:pos + val])
            del self.buf[:pos + val]
            yield hdr >> 4, hdr & 0x0F, body


def connack_receive_maximum(body):
    """Receive Maximum from an MQTT 5 CONNACK body, or None."""
    try:
        pos = 2
        length, mult = 0, 1
        while True:
            b = body[pos]
            pos += 1
            length += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                break
        end = pos + length
        while pos < end:
            pid = body[pos]
            pos += 1
            if pid == 0x21:
                return struct.unpack_from("!H", body, pos)[0]
            if pid in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
                pos += 1
            elif pid in (0x13, 0x22, 0x23):
                pos += 2
            elif pid in (0x02, 0x11, 0x18, 0x27):
                pos += 4
            elif pid in (0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F, 0x09, 0x16):
                pos += 2 + struct.unpack_from("!H", body, pos)[0]
            elif pid == 0x26:
                pos += 2 + struct.unpack_from("!H", body, pos)[0]
                pos += 2 + struct.unpack_from("!H", body, pos)[0]
            elif pid == 0x0B:
                while body[pos] & 0x80:
                    pos += 1
                pos += 1
            else:
                return None
    except (IndexError, struct.error):
        return None
    return None


class RawConn:
    """One blocking MQTT connection (timeouts on every call)."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = PacketReader()
        self.pending = collections.deque()

    def send(self, data):
        self.sock.sendall(data)

    def poll(self, timeout):
        """Returns the packets that arrived within `timeout` (possibly none). Raises ConnectionError on EOF."""
        out = list(self.pending)
        self.pending.clear()
        if out:
            return out
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if r:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed by broker")
            self.reader.feed(data)
            out.extend(self.reader.packets())
        return out

    def expect(self, ptype, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.poll(deadline - time.monotonic())
            for i, p in enumerate(got):
                if p[0] == ptype:
                    self.pending.extend(got[i + 1:])      # keep what came after it for later
                    return p
        raise ConnectionError("no packet type %d within %.1fs" % (ptype, timeout))

    def close(self, linger_rst=False):
        try:
            if linger_rst:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass


def probe_connack(port, timeout, alive=lambda: True):
    """Connects (clean, MQTT 5, no session) until a CONNACK with reason 0 arrives; returns seconds or None."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline and alive():
        c = None
        try:
            c = RawConn(port, timeout=1.0)
            c.send(encode_connect("crash-probe", 5, True, 10, 0))
            _, _, body = c.expect(CONNACK, 2.0)
            if len(body) >= 2 and body[1] == 0:
                t = time.monotonic() - start
                try:
                    c.send(encode_disconnect())
                except OSError:
                    pass
                return t
        except (OSError, ConnectionError):
            pass
        finally:
            if c:
                c.close()
        time.sleep(0.01)
    return None


# ---------------------------------------------------------------------------------------------------------
# Publishers


class Publisher(threading.Thread):
    """A raw-socket MQTT publisher with a persistent session and exact bookkeeping of the broker's acks."""

    def __init__(self, idx, version, port, args, stop_publishing, stop_all, hard_deadline):
        super().__init__(name="pub-%d" % idx, daemon=True)
        self.idx = idx
        self.version = version
        self.client_id = "crash-pub-%d" % idx
        self.port = port
        self.rate = args.rate
        self.window = args.window
        self.pad = max(0, args.payload_size)
        self.rng = random.Random("%s-pub-%d" % (args.seed, idx))
        self.stop_publishing = stop_publishing
        self.stop_all = stop_all
        self.hard_deadline = hard_deadline
        self.reconnect_timeout = args.reconnect_timeout
        # bookkeeping (written by this thread only; read by the driver)
        self.qos_of = bytearray()           # seq -> 1 or 2
        self.status = bytearray()           # seq -> ST_*
        self.ack_round = array.array("H")   # seq -> round in which the broker acknowledged it
        self.republished = set()            # seqs re-published under a new session (only after session loss)
        self.inflight = collections.OrderedDict()   # packet id -> [seq, qos, phase 'pub'|'rel', attempt]
        self.round = 0
        self.sent_packets = 0
        self.resent_publish = 0
        self.resent_pubrel = 0
        self.puback_ok = 0
        self.pubrec_ok = 0
        self.pubcomp_ok = 0
        self.pubcomp_unknown = 0            # PUBCOMP 0x92: the broker no longer knew the QoS 2 packet id
        self.refused = collections.Counter()  # (packet, reason) -> n
        self.anomalies = collections.Counter()
        self.connacks = []                  # (monotonic time, session_present, reason)
        self.session_lost = []              # monotonic times of reconnects with Session Present = 0
        self.connected = False
        self.done = False
        self.error = None
        self.conn = None
        self.next_pid = 1
        self.receive_maximum = None

    # -- counters read by the driver
    def ack_events(self):
        return self.puback_ok + self.pubrec_ok + self.pubcomp_ok

    @property
    def published(self):
        return len(self.status)

    def run(self):
        try:
            self._run()
        except Interrupted:
            pass
        except Exception:
            self.error = traceback.format_exc()
        finally:
            self.connected = False
            if self.conn:
                self.conn.close()

    def _alloc_pid(self):
        for _ in range(65535):
            pid = self.next_pid
            self.next_pid = pid % 65535 + 1
            if pid not in self.inflight:
                return pid
        raise RuntimeError("no free packet id")

    def _payload(self, seq, qos, attempt):
        head = b"%d:%d:%d:%d|" % (self.idx, seq, qos, attempt)
        return head + b"x" * max(0, self.pad - len(head))

    def _topic(self, qos):
        return "crash/q%d/p%d" % (qos, self.idx)

    def _connect(self, first):
        conn = RawConn(self.port, timeout=3.0)
        try:
            # MQTT 5: clean start on the first connect only, the session outlives the connection (expiry).
            # MQTT 3.1.1: clean session 0 from the first connect (clean session 1 would end the session with
            # the connection, so the first reconnect would rightly get Session Present = 0).
            conn.send(encode_connect(self.client_id, self.version, first and self.version == 5, 30, SESSION_EXPIRY))
            _, _, body = conn.expect(CONNACK, 5.0)
        except Exception:
            conn.close()
            raise
        if len(body) < 2:
            conn.close()
            raise ConnectionError("short CONNACK")
        sp, reason = bool(body[0] & 1), body[1]
        self.connacks.append((time.monotonic(), sp, reason))
        if reason != 0:
            conn.close()
            raise ConnectionError("CONNACK reason %#x" % reason)
        if self.version == 5:
            self.receive_maximum = connack_receive_maximum(body)
        if not first and not sp:
            # The broker lost this publisher's session (a failure, reported). MQTT says the client must
            # discard its session state: QoS 2 messages already PUBREC'd are the broker's (they stay
            # "acknowledged" and will be checked); unacknowledged ones are re-published as new messages,
            # marked by a higher attempt number so duplicates they cause are told apart.
            self.session_lost.append(time.monotonic())
            for pid in list(self.inflight):
                seq, qos, phase, attempt = self.inflight[pid]
                if phase == "rel":
                    del self.inflight[pid]
                else:
                    self.inflight[pid] = [seq, qos, "new", attempt + 1]
                    self.republished.add(seq)
        self.conn = conn
        # Resend what the session still has in flight, in order (MQTT 4.4): PUBLISH with DUP and the same
        # packet id, or PUBREL.
        for pid, (seq, qos, phase, attempt) in list(self.inflight.items()):
            if phase == "pub":
                conn.send(encode_publish(self._topic(qos), self._payload(seq, qos, attempt), qos, pid,
                                         self.version, dup=True))
                self.resent_publish += 1
            elif phase == "rel":
                conn.send(encode_pubrel(pid))
                self.resent_pubrel += 1
            else:  # "new" after a session loss
                self.inflight[pid][2] = "pub"
                conn.send(encode_publish(self._topic(qos), self._payload(seq, qos, attempt), qos, pid,
                                         self.version))
                self.resent_publish += 1
        self.connected = True

    def _window(self):
        w = self.window
        if self.receive_maximum:
            w = min(w, self.receive_maximum)
        return w

    def _send_new(self):
        seq = len(self.status)
        qos = 2 if self.rng.random() < 0.5 else 1
        pid = self._alloc_pid()
        self.qos_of.append(qos)
        self.status.append(ST_SENT)
        self.ack_round.append(0)
        self.inflight[pid] = [seq, qos, "pub", 0]
        self.conn.send(encode_publish(self._topic(qos), self._payload(seq, qos, 0), qos, pid, self.version))
        self.sent_packets += 1

    def _handle(self, ptype, flags, body):
        if ptype in (PUBACK, PUBREC, PUBCOMP):
            if len(body) < 2:
                self.anomalies["short ack"] += 1
                return
            pid = struct.unpack_from("!H", body, 0)[0]
            reason = body[2] if len(body) > 2 else 0
            entry = self.inflight.get(pid)
            want = {PUBACK: (1, "pub"), PUBREC: (2, "pub"), PUBCOMP: (2, "rel")}[ptype]
            if entry is None or (entry[1], entry[2]) != want:
                self.anomalies["unexpected %s for packet id %d" % (
                    {PUBACK: "PUBACK", PUBREC: "PUBREC", PUBCOMP: "PUBCOMP"}[ptype], pid)] += 1
                return
            seq = entry[0]
            if ptype == PUBACK:
                del self.inflight[pid]
                if reason < 0x80:
                    self.status[seq] = ST_ACKED
                    self.ack_round[seq] = self.round
                    self.puback_ok += 1
                else:
                    self.status[seq] = ST_REFUSED
                    self.refused[("PUBACK", reason)] += 1
            elif ptype == PUBREC:
                if reason < 0x80:
                    self.status[seq] = ST_ACKED
                    self.ack_round[seq] = self.round
                    self.pubrec_ok += 1
                    entry[2] = "rel"
                    self.conn.send(encode_pubrel(pid))
                else:
                    del self.inflight[pid]
                    self.status[seq] = ST_REFUSED
                    self.refused[("PUBREC", reason)] += 1
            else:
                del self.inflight[pid]
                self.status[seq] = ST_COMPLETED
                self.pubcomp_ok += 1
                if reason == RC_PACKET_ID_NOT_FOUND:
                    self.pubcomp_unknown += 1
        elif ptype == PINGRESP:
            pass
        elif ptype == DISCONNECT:
            raise ConnectionError("DISCONNECT from broker (reason %s)" % (body[0] if body else 0))
        else:
            self.anomalies["unexpected packet type %d" % ptype] += 1

    def _run(self):
        first = True
        backoff = 0.05
        down_since = None
        while True:
            if self.stop_all.is_set() or time.monotonic() > self.hard_deadline:
                raise Interrupted()
            if self.conn is None:
                try:
                    self._connect(first)
                    first = False
                    backoff = 0.05
                    down_since = None
                except (OSError, ConnectionError):
                    self.connected = False
                    if self.conn:
                        self.conn.close()
                        self.conn = None
                    down_since = down_since or time.monotonic()
                    if time.monotonic() - down_since > self.reconnect_timeout:
                        raise RuntimeError("could not reconnect within %ss" % self.reconnect_timeout)
                    time.sleep(backoff * (0.5 + self.rng.random()))
                    backoff = min(backoff * 2, 1.0)
                    continue
                next_send = time.monotonic()
                last_out = time.monotonic()
            try:
                now = time.monotonic()
                if self.stop_publishing.is_set():
                    if not self.inflight:
                        self.conn.send(encode_disconnect())
                        self.conn.close()
                        self.conn = None
                        self.connected = False
                        self.done = True
                        return
                else:
                    while len(self.inflight) < self._window() and (self.rate <= 0 or now >= next_send):
                        self._send_new()
                        last_out = now
                        if self.rate > 0:
                            next_send = max(next_send + 1.0 / self.rate, now - 0.1)
                if now - last_out > 15:
                    self.conn.send(b"\xc0\x00")
                    last_out = now
                wait = 0.05
                if self.rate > 0 and len(self.inflight) < self._window():
                    wait = min(wait, max(0.0, next_send - time.monotonic()))
                for p in self.conn.poll(wait):
                    self._handle(*p)
            except (OSError, ConnectionError):
                self.conn.close(linger_rst=True)
                self.conn = None
                self.connected = False
                down_since = time.monotonic()


# ---------------------------------------------------------------------------------------------------------
# Subscribers (Paho 1.6)


class Subscriber:
    """A persistent Paho subscriber: subscribes once, then only reconnects (clean start false)."""

    def __init__(self, idx, version, port, npub):
        self.idx = idx
        self.version = version
        self.client_id = "crash-sub-%d" % idx
        self.port = port
        # distinct topic patterns per QoS: even subscribers use '#', odd ones '+'
        w = "#" if idx % 2 == 0 else "+"
        self.filters = [("crash/q1/" + w, 1), ("crash/q2/" + w, 2)]
        self.counts = [bytearray() for _ in range(npub)]   # [publisher][seq] -> deliveries (capped 255)
        self.deliveries = 0
        self.distinct = 0
        self.dup_flag = 0
        self.qos_mismatch = []
        self.unknown = []
        self.errors = []
        self.connacks = []        # (monotonic time, session_present, reason)
        self.session_lost = []
        self.disconnects = 0
        self.connected = threading.Event()
        self._suback = threading.Event()
        self.granted = None
        if version == 5:
            self.client = paho.Client(client_id=self.client_id, protocol=paho.MQTTv5)
        else:
            self.client = paho.Client(client_id=self.client_id, clean_session=False, protocol=paho.MQTTv311)
        self.client.reconnect_delay_set(0.05, 1.0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    @property
    def label(self):
        return "%s (MQTT %s)" % (self.client_id, "5" if self.version == 5 else "3.1.1")

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        reason = int(getattr(rc, "value", rc))
        sp = bool(flags.get("session present"))
        self.connacks.append((time.monotonic(), sp, reason))
        if reason == 0:
            if len([c for c in self.connacks if c[2] == 0]) > 1 and not sp:
                self.session_lost.append(time.monotonic())
            self.connected.set()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.connected.clear()
        self.disconnects += 1

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        self.granted = [int(getattr(g, "value", g)) for g in granted]
        self._suback.set()

    def _on_message(self, client, userdata, m):
        # An exception escaping a Paho 1.6 callback ends its network thread (the client would silently stop
        # receiving), so everything is caught and recorded as a failure.
        try:
            self._count(m)
        except Exception:
            self.errors.append(traceback.format_exc())

    def _count(self, m):
        try:
            head = m.payload.split(b"|", 1)[0].split(b":")
            pub, seq, qos = int(head[0]), int(head[1]), int(head[2])
            if pub < 0 or seq < 0:
                raise ValueError()
            arr = self.counts[pub]
        except (ValueError, IndexError):
            if len(self.unknown) < 100:
                self.unknown.append((m.topic, m.payload[:40]))
            return
        if seq >= len(arr):
            arr.extend(bytes(seq - len(arr) + 4096))
        c = arr[seq]
        if c == 0:
            self.distinct += 1
        if c < 255:
            arr[seq] = c + 1
        self.deliveries += 1
        if m.dup:
            self.dup_flag += 1
        if m.qos != qos and len(self.qos_mismatch) < 100:
            self.qos_mismatch.append((pub, seq, qos, m.qos))

    def start(self, timeout):
        kw = {}
        if self.version == 5:
            p = Properties(PacketTypes.CONNECT)
            p.SessionExpiryInterval = SESSION_EXPIRY
            # Paho's default MQTT_CLEAN_START_FIRST_ONLY: clean start on this first connect only; every
            # reconnect is clean start false. (Passing clean_start=True would make EVERY reconnect clean.)
            kw = dict(clean_start=paho.MQTT_CLEAN_START_FIRST_ONLY, properties=p)
        self.client.connect("127.0.0.1", self.port, 30, **kw)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise HarnessError("%s: no CONNACK" % self.label)
        if self.version == 5:
            opts = [(f, paho.SubscribeOptions(qos=q)) for f, q in self.filters]
            rc, _ = self.client.subscribe(opts)
        else:
            rc, _ = self.client.subscribe(self.filters)
        if rc != 0 or not self._suback.wait(timeout):
            raise HarnessError("%s: no SUBACK" % self.label)
        if self.granted != [1, 2]:
            raise HarnessError("%s: SUBACK granted %r, wanted [1, 2]" % (self.label, self.granted))

    def last_connack_after(self, t):
        for ct, sp, reason in self.connacks:
            if ct >= t and reason == 0:
                return ct
        return None

    def stop(self):
        try:
            self.client.disconnect()
        except Exception:
            pass
        try:
            self.client.loop_stop()
        except Exception:
            pass


def collect_retained(port, version, timeout=5.0, expect=None):
    """A fresh (clean, no session) Paho subscriber on crash/retained/#; returns [(topic, payload, retain)]."""
    got = []
    done = threading.Event()
    suback = threading.Event()
    connected = threading.Event()
    if version == 5:
        c = paho.Client(client_id="crash-retained-check-5", protocol=paho.MQTTv5)
    else:
        c = paho.Client(client_id="crash-retained-check-3", clean_session=True, protocol=paho.MQTTv311)
    c.on_connect = lambda *a, **k: connected.set()
    c.on_subscribe = lambda *a, **k: suback.set()

    def on_message(client, userdata, m):
        got.append((m.topic, bytes(m.payload), bool(m.retain)))
        if expect is not None and len(got) >= expect:
            done.set()
    c.on_message = on_message
    try:
        if version == 5:
            c.connect("127.0.0.1", port, 10, clean_start=True)
        else:
            c.connect("127.0.0.1", port, 10)
        c.loop_start()
        if not connected.wait(timeout):
            raise BrokerFailure("retained check: no CONNACK")
        c.subscribe("crash/retained/#", 1)
        if not suback.wait(timeout):
            raise BrokerFailure("retained check: no SUBACK")
        done.wait(timeout)
        time.sleep(0.5)          # anything extra (a message that should have been cleared) shows up here
    finally:
        try:
            c.disconnect()
        except Exception:
            pass
        c.loop_stop()
    return list(got)


def publish_retained(port, items, timeout=5.0):
    """Publishes [(topic, payload)] retained at QoS 1 (MQTT 5) and waits for each PUBACK; returns the acked ones."""
    acked = []
    conn = RawConn(port, timeout=timeout)
    try:
        conn.send(encode_connect("crash-retained-pub", 5, True, 30, 0))
        _, _, body = conn.expect(CONNACK, timeout)
        if body[1] != 0:
            raise HarnessError("retained publisher: CONNACK %#x" % body[1])
        for i, (topic, payload) in enumerate(items):
            pid = i + 1
            conn.send(encode_publish(topic, payload, 1, pid, 5, retain=True))
            _, _, ack = conn.expect(PUBACK, timeout)
            if struct.unpack_from("!H", ack)[0] != pid:
                raise HarnessError("retained publisher: PUBACK for the wrong packet id")
            if (ack[2] if len(ack) > 2 else 0) >= 0x80:
                raise HarnessError("retained publisher: PUBACK reason %#x" % ack[2])
            acked.append((topic, payload))
        conn.send(encode_disconnect())
    finally:
        conn.close()
    return acked


# ---------------------------------------------------------------------------------------------------------
# Broker process


class Broker:
    def __init__(self, parleyd, workdir, port, durability, log_level):
        self.parleyd = parleyd
        self.workdir = workdir
        self.port = port
        self.datadir = workdir / "data"
        self.config = workdir / "parley.toml"
        self.logfile = workdir / "broker.log"
        text = (
            'workers = 2\n'
            'data_dir = "%s"\n'
            '\n[log]\nlevel = "%s"\n'
            '\n[[listener]]\nname = "mqtt"\nbind = "127.0.0.1"\nport = %d\n'
            '\n[limits]\nmax_queued_messages = 1000000\nmax_queued_bytes = "4GiB"\n'
            % (self.datadir, log_level, port))
        if durability != "omit":
            text += '\n[storage]\ndurability = "%s"\n' % durability
        self.config.write_text(text)
        self.proc = None
        self.expected_alive = False
        self.starts = 0
        self._log = None

    def start(self):
        self._log = open(self.logfile, "ab")
        self._log.write(b"\n===== crash_test: start %d =====\n" % (self.starts + 1))
        self._log.flush()
        cmd = [self.parleyd, "--config", str(self.config)]
        if shutil.which("setpriv"):
            # parleyd gets SIGKILL if this process dies (even by SIGKILL): nothing is left running
            cmd = ["setpriv", "--pdeathsig", "KILL", "--"] + cmd
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.expected_alive = True
        self.starts += 1
        return time.monotonic()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        self.expected_alive = False
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self, timeout=15):
        """SIGTERM, then SIGKILL; returns the exit code."""
        if self.proc is None:
            return None
        self.expected_alive = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log and not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def ensure_dead(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def log_tail(self, n=30):
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def free_port(rng):
    """A free loopback port BELOW the kernel's ephemeral range. The broker restarts on the same port while
    clients keep trying to connect; a port from the ephemeral range could meanwhile be taken as the source
    port of one of those attempts (even a TCP self-connect to 127.0.0.1:port), and the restart would fail."""
    try:
        low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    lo, hi = (10000, low - 1) if low > 11000 else (low // 2, low - 1)
    for _ in range(200):
        port = rng.randint(lo, hi)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise HarnessError("no free loopback port in %d..%d" % (lo, hi))


# ---------------------------------------------------------------------------------------------------------
# The driver


class Run:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random("%s-driver" % args.seed)
        self.failures = []          # strings; any entry = exit 1
        self.rounds = []            # per-round dicts
        self.restarts = []          # per-restart dicts
        self.pubs = []
        self.subs = []
        self.broker = None
        self.stop_publishing = threading.Event()
        self.stop_all = threading.Event()
        self.retained_expected = {}
        self.retained_result = None
        self.started = time.monotonic()
        self.completed = False
        self.verifying = False
        self.hard_deadline = self.started + (args.duration or args.rounds * (args.seconds + 40)) + 600

    def fail(self, msg):
        self.failures.append(msg)
        if not self.verifying:           # verify()'s findings are printed once, in the summary
            log("FAIL: " + msg)

    def total_ack_events(self):
        return sum(p.ack_events() for p in self.pubs)

    def check_threads(self):
        b = self.broker
        if b is not None and b.expected_alive and not b.alive():
            b.expected_alive = False
            raise BrokerFailure("parleyd died on its own (exit code %s):\n%s" % (b.proc.returncode, b.log_tail()))
        for p in self.pubs:
            if p.error:
                raise BrokerFailure("publisher %s stopped: %s" % (p.client_id, p.error.strip().splitlines()[-1]))

    def sleep(self, seconds):
        end = time.monotonic() + seconds
        while True:
            self.check_threads()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while not pred():
            self.check_threads()
            if time.monotonic() > deadline:
                raise BrokerFailure("timed out after %.0fs waiting for %s" % (
                    timeout, what() if callable(what) else what))
            time.sleep(0.02)

    def start_broker(self, first):
        t_spawn = self.broker.start()
        dt = probe_connack(self.broker.port, self.args.start_timeout, self.broker.alive)
        if dt is None or not self.broker.alive():
            msg = "parleyd did not %s (%s):\n%s" % (
                "start" if first else "come back after kill -9",
                "exited with %s" % self.broker.proc.returncode if not self.broker.alive()
                else "no CONNACK within %ss" % self.args.start_timeout, self.broker.log_tail())
            raise HarnessError(msg) if first else BrokerFailure(msg)
        return t_spawn, dt

    def drop_connections(self):
        """--fault drop: cut every client's TCP connection; the broker keeps running (a positive control:
        sessions live in memory, so the checks must pass whether or not the broker persists anything)."""
        for p in self.pubs:
            c = p.conn
            if c is not None:
                try:
                    c.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        for s in self.subs:
            sock = s.client.socket()
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def not_reconnected_after(self, t):
        out = [p.client_id for p in self.pubs
               if not p.connected or not any(c[0] >= t and c[2] == 0 for c in p.connacks)]
        out += [s.client_id for s in self.subs if not s.connected.is_set() or s.last_connack_after(t) is None]
        return out

    def all_reconnected_after(self, t):
        times = []
        for p in self.pubs:
            ct = next((c[0] for c in p.connacks if c[0] >= t and c[2] == 0), None)
            if ct is None or not p.connected:
                return None
            times.append(ct)
        for s in self.subs:
            ct = s.last_connack_after(t)
            if ct is None or not s.connected.is_set():
                return None
            times.append(ct)
        return times

    def run(self):
        a = self.args
        if a.data_dir:
            workdir = pathlib.Path(a.data_dir).resolve()
            workdir.mkdir(parents=True, exist_ok=True)
            if (workdir / "data").exists() and any((workdir / "data").iterdir()):
                raise HarnessError("%s/data is not empty; the test needs fresh broker state" % workdir)
        else:
            workdir = pathlib.Path(tempfile.mkdtemp(prefix="parley-crash-"))
        self.workdir = workdir
        port = a.port or free_port(random.Random())
        log("parleyd %s, work dir %s, port %d, seed %s" % (a.parleyd, workdir, port, a.seed))
        self.broker = Broker(a.parleyd, workdir, port, a.durability, a.log_level)

        # -- setup: broker, persistent subscribers (subscribe once), retained messages, publishers
        t_spawn, dt = self.start_broker(first=True)
        log("broker up (first CONNACK after %.0f ms)" % (dt * 1000))
        npub = a.publishers
        for i in range(a.subscribers):
            version = 4 if i % 2 == 1 else 5              # sub 1, 3, ... are MQTT 3.1.1 (clean session false)
            s = Subscriber(i, version, port, npub)
            self.subs.append(s)
            s.start(10)
            if s.connacks[0][1]:
                self.fail("%s: Session Present = 1 on its first connect to a fresh data dir" % s.label)
        items = [("crash/retained/%d" % i, b"retained %d v1 seed %s" % (i, str(a.seed).encode()))
                 for i in range(a.retained)]
        if len(items) >= 2:
            items.append((items[0][0], b"retained 0 v2 (replaced) seed %s" % str(a.seed).encode()))
            items.append((items[1][0], b""))               # clears retained/1
        for topic, payload in publish_retained(port, items):
            if payload:
                self.retained_expected[topic] = payload
            else:
                self.retained_expected.pop(topic, None)
        log("%d subscribers subscribed; %d retained messages acknowledged" % (len(self.subs), len(items)))
        for i in range(npub):
            version = 4 if i % 2 == 1 else 5               # protocol level: 4 = MQTT 3.1.1
            p = Publisher(i, version, port, a, self.stop_publishing, self.stop_all, self.hard_deadline)
            self.pubs.append(p)
            p.start()

        # -- rounds: traffic, kill -9 at a random moment, restart on the same data dir and port
        round_no = 0
        since = t_spawn
        while round_no < a.rounds:
            if a.duration and time.monotonic() - self.started > a.duration and round_no >= 1:
                break
            round_no += 1
            for p in self.pubs:
                p.round = round_no
            self.wait_for(lambda: self.all_reconnected_after(since) is not None, a.reconnect_timeout,
                          lambda: "every client to reconnect (round %d; missing: %s)" % (
                              round_no, ", ".join(self.not_reconnected_after(since))))
            reconnected = self.all_reconnected_after(since)
            acks0 = self.total_ack_events()
            t_traffic0 = time.monotonic()
            self.wait_for(lambda: self.total_ack_events() - acks0 >= a.min_round_acks, 30,
                          "%d acknowledgements in round %d" % (a.min_round_acks, round_no))
            delay = self.rng.uniform(min(0.2, a.seconds), a.seconds)
            samples = collections.deque()
            end = time.monotonic() + delay
            while True:
                now = time.monotonic()
                samples.append((now, self.total_ack_events()))
                while len(samples) > 2 and samples[1][0] <= now - HOT_WINDOW:
                    samples.popleft()
                if now >= end:
                    break
                self.sleep(min(0.02, end - now))
            # samples[0] is the newest sample at least HOT_WINDOW old (or the first one of this wait)
            acks_recent = samples[-1][1] - samples[0][1]
            inflight = sum(len(p.inflight) for p in self.pubs)
            t_kill = time.monotonic()
            if a.fault == "kill9":
                self.broker.kill9()
            else:
                self.drop_connections()
            round_acks = self.total_ack_events() - acks0
            hot = acks_recent > 0
            self.rounds.append(dict(round=round_no, ack_events=round_acks, fault_after_s=round(delay, 3),
                                    traffic_s=round(t_kill - t_traffic0, 3),
                                    acks_recent=acks_recent, inflight_at_fault=inflight, mid_traffic=hot,
                                    clients_reconnected_ms=round((max(reconnected) - since) * 1000, 1)
                                    if round_no > 1 else None))
            log("round %d: %s after %.2fs of traffic; %d acks this round, %d in the last %.1fs, %d in flight" % (
                round_no, "kill -9" if a.fault == "kill9" else "all client connections dropped",
                t_kill - t_traffic0, round_acks, acks_recent, HOT_WINDOW, inflight))
            if a.fault == "kill9":
                if a.wipe_data_on_restart:
                    shutil.rmtree(self.broker.datadir, ignore_errors=True)      # negative control
                since, dt = self.start_broker(first=False)
                self.restarts.append(dict(restart=round_no, first_connack_ms=round(dt * 1000, 1)))
                log("restart %d: first CONNACK after %.0f ms" % (round_no, dt * 1000))
            else:
                since = t_kill

        # -- after the last restart: traffic resumes, then publishers stop and subscribers drain
        for p in self.pubs:
            p.round = round_no + 1
        self.wait_for(lambda: self.all_reconnected_after(since) is not None, a.reconnect_timeout,
                      lambda: "every client to reconnect after the last fault (missing: %s)" % ", ".join(
                          self.not_reconnected_after(since)))
        times = self.all_reconnected_after(since)
        self.rounds.append(dict(round=round_no + 1, final=True,
                                clients_reconnected_ms=round((max(times) - since) * 1000, 1)))
        acks0 = self.total_ack_events()
        self.wait_for(lambda: self.total_ack_events() - acks0 >= min(a.min_round_acks, 10), 30,
                      "traffic after the last restart")
        self.sleep(0.5)
        self.stop_publishing.set()
        self.wait_for(lambda: all(p.done for p in self.pubs), a.drain_timeout,
                      "publishers to finish their in-flight messages")
        log("publishers stopped; draining subscribers")
        self.drain()

        # -- retained messages after the last restart
        got = collect_retained(port, 5, expect=len(self.retained_expected))
        self.check_retained(got)

        for s in self.subs:
            s.stop()
        rc = self.broker.stop()
        self.broker_exit = rc
        if rc != 0:
            self.fail("parleyd exited with %s on SIGTERM at the end" % rc)
        self.completed = True

    def must_deliver(self, p):
        """Publisher p's sequence numbers that the broker acknowledged (QoS 1 PUBACK, QoS 2 PUBREC)."""
        st = p.status
        return [i for i in range(len(st)) if st[i] == ST_ACKED or st[i] == ST_COMPLETED]

    def missing_count(self):
        n = 0
        for p in self.pubs:
            need = self.must_deliver(p)
            for s in self.subs:
                arr = s.counts[p.idx]
                ln = len(arr)
                n += sum(1 for i in need if i >= ln or arr[i] == 0)
        return n

    def drain(self):
        a = self.args
        start = time.monotonic()
        last_change, last_deliveries = start, -1
        need = sum(len(self.must_deliver(p)) for p in self.pubs)
        while True:
            # the exact count is costly for big runs; skip it while some subscriber cannot be complete yet
            if any(s.distinct < need for s in self.subs) and time.monotonic() - last_change < a.drain_idle:
                missing = -1
            else:
                missing = self.missing_count()
            d = sum(s.deliveries for s in self.subs)
            if d != last_deliveries:
                last_deliveries, last_change = d, time.monotonic()
            if missing == -1:
                pass
            elif missing == 0:
                log("subscribers drained in %.1fs" % (time.monotonic() - start))
                time.sleep(1.0)   # late duplicates, if any, land in the counts
                return
            elif time.monotonic() - last_change > a.drain_idle:
                log("drain: nothing arrived for %.0fs, %d deliveries still missing" % (a.drain_idle, missing))
                return
            if time.monotonic() - start > a.drain_timeout:
                log("drain: gave up after %.0fs, %d deliveries still missing" % (a.drain_timeout,
                                                                                   self.missing_count()))
                return
            time.sleep(0.5)

    def check_retained(self, got):
        exp = self.retained_expected
        seen = collections.Counter(t for t, _, _ in got)
        problems = []
        for topic, payload in sorted(exp.items()):
            mine = [(pl, r) for t, pl, r in got if t == topic]
            if not mine:
                problems.append("%s missing" % topic)
            elif mine[0][0] != payload:
                problems.append("%s has %r, expected %r" % (topic, mine[0][0][:40], payload[:40]))
            elif not mine[0][1]:
                problems.append("%s delivered without the retain flag" % topic)
        for topic, n in seen.items():
            if topic not in exp:
                problems.append("%s delivered but should not exist (cleared or never published)" % topic)
            elif n > 1:
                problems.append("%s delivered %d times" % (topic, n))
        self.retained_result = dict(expected=len(exp), received=len(got), problems=problems)
        if problems:
            self.fail("retained messages after the last restart: " + "; ".join(problems[:5]))
        else:
            log("retained: a fresh subscriber got exactly the %d acknowledged retained messages" % len(exp))

    # -- verification and report
    def verify(self):
        self.verifying = True
        a = self.args
        rep = collections.OrderedDict()
        pubs, subs = self.pubs, self.subs
        published = {1: 0, 2: 0}
        acked = {1: 0, 2: 0}         # QoS 1: PUBACK ok; QoS 2: PUBCOMP
        accepted2 = 0                # QoS 2: PUBREC ok (superset of PUBCOMP'd)
        refused = collections.Counter()
        for p in pubs:
            for i in range(len(p.status)):
                q = p.qos_of[i]
                published[q] += 1
                st = p.status[i]
                if q == 1 and st == ST_ACKED:
                    acked[1] += 1
                if q == 2 and st in (ST_ACKED, ST_COMPLETED):
                    accepted2 += 1
                if q == 2 and st == ST_COMPLETED:
                    acked[2] += 1
            refused.update(p.refused)
        lost_total, dup1_total, dup2_total, dup2_excused = 0, 0, 0, 0
        missing_examples, dup2_examples = [], []
        lost_messages = set()        # (publisher, seq) missing at one subscriber or more
        per_sub = []
        for s in subs:
            lost = {1: 0, 2: 0}
            dup1 = dup2 = exc = 0
            unacked_delivered = 0
            for p in pubs:
                arr = s.counts[p.idx]
                ln = len(arr)
                for i in range(len(p.status)):
                    c = arr[i] if i < ln else 0
                    st = p.status[i]
                    q = p.qos_of[i]
                    must = st == ST_ACKED or st == ST_COMPLETED
                    if must and c == 0:
                        lost[q] += 1
                        lost_messages.add((p.idx, i))
                        if len(missing_examples) < 10:
                            missing_examples.append("%s: missing %d:%d (QoS %d, acknowledged in round %d)" % (
                                s.label, p.idx, i, q, p.ack_round[i]))
                    if c and not must:
                        unacked_delivered += 1
                    if c > 1:
                        if q == 1:
                            dup1 += c - 1
                        elif i in p.republished:
                            exc += c - 1
                        else:
                            dup2 += c - 1
                            if len(dup2_examples) < 10:
                                dup2_examples.append("%s: %d:%d (QoS 2) delivered %d times" % (s.label, p.idx, i, c))
                for i in range(len(p.status), ln):
                    if arr[i]:
                        s.unknown.append(("seq beyond published", "%d:%d" % (p.idx, i)))
            lost_total += lost[1] + lost[2]
            dup1_total += dup1
            dup2_total += dup2
            dup2_excused += exc
            per_sub.append(collections.OrderedDict(
                client=s.label, deliveries=s.deliveries, distinct=s.distinct, lost_qos1=lost[1],
                lost_qos2=lost[2], dup_qos1=dup1, dup_qos2=dup2, dup_qos2_after_session_loss=exc,
                delivered_unacknowledged=unacked_delivered, dup_flag_seen=s.dup_flag,
                reconnects=len([c for c in s.connacks if c[2] == 0]) - 1,
                session_present_0_on_reconnect=len(s.session_lost),
                qos_mismatch=len(s.qos_mismatch), unknown=len(s.unknown)))
            if s.qos_mismatch:
                self.fail("%s received messages at the wrong QoS, e.g. %r" % (s.label, s.qos_mismatch[:3]))
            if s.errors:
                self.fail("%s: exception in the message callback: %s" % (s.label, s.errors[0]))
            if s.unknown:
                self.fail("%s received messages nobody published, e.g. %r" % (s.label, s.unknown[:3]))
            if s.session_lost:
                self.fail("%s: Session Present = 0 on %d reconnect(s): the broker lost its session" % (
                    s.label, len(s.session_lost)))
        for p in pubs:
            if p.session_lost:
                self.fail("%s: Session Present = 0 on %d reconnect(s): the broker lost its session" % (
                    p.client_id, len(p.session_lost)))
            if p.anomalies:
                self.fail("%s: protocol anomalies %r" % (p.client_id, dict(list(p.anomalies.items())[:5])))
        if lost_total:
            self.fail("%d acknowledged message deliveries LOST%s; first:\n  %s" % (
                lost_total, "" if self.completed else " (run aborted before the drain)",
                "\n  ".join(missing_examples)))
        if dup2_total:
            self.fail("%d duplicate QoS 2 deliveries; first:\n  %s" % (dup2_total, "\n  ".join(dup2_examples)))
        # not vacuous
        kills = [r for r in self.rounds if not r.get("final")]
        hot = sum(1 for r in kills if r["mid_traffic"])
        # By default 90 % (rounded up) of the faults must land while acks flow: on a busy machine a kill now
        # and then falls into a pause (a slow restart, a scheduler hiccup) without making the run vacuous.
        min_hot = a.min_hot_kills if a.min_hot_kills is not None else -(-len(kills) * 9 // 10)
        if len(kills) < 1:
            self.fail("no fault was injected")
        if hot < min_hot:
            self.fail("only %d of %d faults happened mid-traffic (wanted >= %d)" % (hot, len(kills), min_hot))
        for r in kills:
            if r["ack_events"] < a.min_round_acks:
                self.fail("round %d acknowledged only %d messages" % (r["round"], r["ack_events"]))
        if acked[1] + accepted2 == 0:
            self.fail("nothing was acknowledged")

        fc = [r["first_connack_ms"] for r in self.restarts]
        rc = [r["clients_reconnected_ms"] for r in self.rounds if r.get("clients_reconnected_ms") is not None]
        rep["result"] = "PASS" if not self.failures else "FAIL"
        rep["completed"] = self.completed
        rep["parleyd"] = self.args.parleyd
        rep["seed"] = a.seed
        rep["params"] = dict(rounds=a.rounds, seconds=a.seconds, duration=a.duration, publishers=a.publishers,
                             subscribers=a.subscribers, rate_per_publisher=a.rate, window=a.window,
                             payload_size=a.payload_size, durability=a.durability,
                             fault=a.fault, wipe_data_on_restart=a.wipe_data_on_restart)
        rep["elapsed_s"] = round(time.monotonic() - self.started, 1)
        rep["restarts"] = len(self.restarts)
        rep["fault"] = a.fault
        rep["faults"] = len(kills)
        rep["faults_mid_traffic"] = hot
        # Disk use at the end (after every restart and the drain): shows whether the data dir stays bounded.
        rep["data_dir_bytes"] = (sum(f.stat().st_size for f in self.broker.datadir.rglob("*") if f.is_file())
                                 if self.broker and self.broker.datadir.exists() else None)
        rep["published"] = dict(qos1=published[1], qos2=published[2], total=published[1] + published[2])
        rep["acked"] = dict(qos1_puback=acked[1], qos2_pubcomp=acked[2], qos2_pubrec=accepted2,
                            total=acked[1] + acked[2])
        rep["refused"] = {"%s 0x%02x" % k: v for k, v in refused.items()}
        rep["resent_after_reconnect"] = dict(publish_dup=sum(p.resent_publish for p in pubs),
                                             pubrel=sum(p.resent_pubrel for p in pubs))
        rep["pubcomp_packet_id_not_found"] = sum(p.pubcomp_unknown for p in pubs)
        rep["delivered"] = dict(deliveries=sum(s.deliveries for s in subs), distinct=sum(s.distinct for s in subs))
        rep["lost"] = lost_total
        rep["lost_messages"] = len(lost_messages)
        rep["duplicated"] = dict(qos1=dup1_total, qos2=dup2_total, qos2_after_session_loss=dup2_excused)
        rep["session_present_0_on_reconnect"] = sum(len(s.session_lost) for s in subs) + sum(
            len(p.session_lost) for p in pubs)
        rep["restart_to_first_connack_ms"] = dict(
            median=round(statistics.median(fc), 1) if fc else None, max=max(fc) if fc else None)
        rep["restart_to_all_clients_reconnected_ms"] = dict(
            median=round(statistics.median(rc), 1) if rc else None, max=max(rc) if rc else None)
        rep["retained"] = self.retained_result
        rep["broker_exit_on_sigterm"] = getattr(self, "broker_exit", None)
        rep["rounds"] = self.rounds
        rep["subscribers"] = per_sub
        rep["publishers"] = [dict(client="%s (MQTT %s)" % (p.client_id, "5" if p.version == 5 else "3.1.1"),
                                  published=p.published, puback=p.puback_ok, pubrec=p.pubrec_ok,
                                  pubcomp=p.pubcomp_ok, reconnects=len([c for c in p.connacks if c[2] == 0]) - 1,
                                  session_present_0_on_reconnect=len(p.session_lost))
                             for p in pubs]
        rep["failures"] = list(self.failures)
        return rep


def summary_lines(rep):
    pub, ack, dl, dup = rep["published"], rep["acked"], rep["delivered"], rep["duplicated"]
    fc, rc = rep["restart_to_first_connack_ms"], rep["restart_to_all_clients_reconnected_ms"]
    ret = rep["retained"] or {}
    return [
        "result: %s  (seed %s, %.0fs)" % (rep["result"], rep["seed"], rep["elapsed_s"]),
        "%s: %d (mid-traffic: %d)" % ("restarts after kill -9" if rep["fault"] == "kill9" else
                                      "client connections dropped (broker kept running)", rep["faults"],
                                      rep["faults_mid_traffic"]),
        "published: %d (QoS 1 %d, QoS 2 %d)" % (pub["total"], pub["qos1"], pub["qos2"]),
        "acknowledged: %d (QoS 1 PUBACK %d, QoS 2 PUBCOMP %d; QoS 2 PUBREC %d)" % (
            ack["total"], ack["qos1_puback"], ack["qos2_pubcomp"], ack["qos2_pubrec"]),
        "delivered: %d deliveries to %d subscribers (%d distinct)" % (
            dl["deliveries"], len(rep["subscribers"]), dl["distinct"]),
        "lost (acknowledged, never delivered): %d deliveries (%d distinct messages)" % (
            rep["lost"], rep["lost_messages"]),
        "duplicated: QoS 1 %d (allowed), QoS 2 %d (must be 0)%s" % (
            dup["qos1"], dup["qos2"], ", QoS 2 after a lost publisher session %d" % dup["qos2_after_session_loss"]
            if dup["qos2_after_session_loss"] else ""),
        "Session Present = 0 on reconnect: %d" % rep["session_present_0_on_reconnect"],
        "data dir at the end: %s" % ("%.1f MB" % (rep["data_dir_bytes"] / 1e6) if rep["data_dir_bytes"] is not None
                                     else "n/a"),
        "retained after the last restart: %s" % ("exact (%d)" % ret.get("expected", 0) if ret and not ret.get(
            "problems") else ret.get("problems")),
        "restart -> first CONNACK: median %s ms, max %s ms; -> all clients reconnected: median %s ms, max %s ms" % (
            fc["median"], fc["max"], rc["median"], rc["max"]) if rep["fault"] == "kill9" else
        "drop -> all clients reconnected: median %s ms, max %s ms" % (rc["median"], rc["max"]),
    ]


def markdown(rep, argv):
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except Exception:
        commit = "?"
    p = rep["params"]
    pub, ack, dl, dup = rep["published"], rep["acked"], rep["delivered"], rep["duplicated"]
    fc, rc = rep["restart_to_first_connack_ms"], rep["restart_to_all_clients_reconnected_ms"]
    rows = [
        ("result", "**%s**" % rep["result"]),
        ("kill -9 + restart" if rep["fault"] == "kill9" else "connection drops",
         "%d (mid-traffic: %s)" % (rep["faults"], "all" if rep["faults_mid_traffic"] == rep["faults"]
                                   else "%d" % rep["faults_mid_traffic"])),
        ("published", "%d (QoS 1 %d, QoS 2 %d)" % (pub["total"], pub["qos1"], pub["qos2"])),
        ("acknowledged", "%d (PUBACK %d, PUBCOMP %d; PUBREC %d)" % (
            ack["total"], ack["qos1_puback"], ack["qos2_pubcomp"], ack["qos2_pubrec"])),
        ("delivered", "%d to %d persistent subscribers" % (dl["deliveries"], p["subscribers"])),
        ("**lost** (acknowledged, never delivered)", "**%d** deliveries (%d messages)" % (
            rep["lost"], rep["lost_messages"])),
        ("duplicated QoS 1 (allowed)", "%d" % dup["qos1"]),
        ("**duplicated QoS 2**", "**%d**" % dup["qos2"]),
        ("Session Present = 0 on reconnect", "%d" % rep["session_present_0_on_reconnect"]),
        ("data dir at the end", "%.1f MB" % (rep["data_dir_bytes"] / 1e6) if rep["data_dir_bytes"] is not None
         else "n/a"),
        ("retained after last restart", "exact" if rep["retained"] and not rep["retained"]["problems"]
         else "; ".join((rep["retained"] or {}).get("problems", ["not checked"])[:3])),
        ("restart → first CONNACK", "median %s ms, max %s ms" % (fc["median"], fc["max"])),
        ("restart → all clients reconnected" if rep["fault"] == "kill9" else "drop → all clients reconnected",
         "median %s ms, max %s ms" % (rc["median"], rc["max"])),
    ]
    if rep["fault"] != "kill9":
        rows = [r for r in rows if not r[0].startswith("restart")]
    out = [
        "### %s, %s" % ("kill -9 crash test" if rep["fault"] == "kill9" else
                        "connection-drop control (no kill)", datetime.date.today().isoformat()),
        "",
        "`%s` — commit %s; %s, %d CPUs; %d publishers × %d msg/s (window %d, %d-byte payloads), "
        "%d subscribers (MQTT 5 and 3.1.1), `durability = \"%s\"`, seed %s, %.0f s." % (
            " ".join(["tests/crash/crash_test.py"] + argv), commit, platform.platform(terse=True),
            os.cpu_count() or 0, p["publishers"], p["rate_per_publisher"], p["window"], p["payload_size"],
            p["subscribers"], p["durability"], rep["seed"], rep["elapsed_s"]),
        "",
        "| | |",
        "|---|---|",
    ]
    out += ["| %s | %s |" % r for r in rows]
    if rep["failures"]:
        out += ["", "Failures:", ""] + ["- " + f.split("\n")[0] + (" (...)" if "\n" in f else "")
                                        for f in rep["failures"][:10]]
    return "\n".join(out)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parleyd", default=DEFAULT_PARLEYD, help="broker binary (default $PARLEYD or build/...)")
    ap.add_argument("--rounds", type=int, default=5, help="kill -9 / restart cycles (default 5)")
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="upper bound of the random traffic time before each kill (default 5)")
    ap.add_argument("--duration", type=float, default=0,
                    help="stop starting new rounds after this many seconds (0 = only --rounds counts)")
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--subscribers", type=int, default=3, help="persistent subscribers; odd ones are MQTT 3.1.1")
    ap.add_argument("--seed", default=None, help="random seed (default: time-based, printed)")
    ap.add_argument("--data-dir", default=None,
                    help="work dir for the config, broker.log and the broker's data (DIR/data, must be empty); "
                         "default a fresh temp dir, removed when the test passes")
    ap.add_argument("--port", type=int, default=0, help="MQTT port (default: a free loopback port)")
    ap.add_argument("--report", action="store_true", help="print a JSON summary on stdout")
    ap.add_argument("--markdown", action="store_true", help="print a summary block for docs/reliability.md")
    ap.add_argument("--rate", type=float, default=200, help="messages/s per publisher (0 = as fast as acks allow)")
    ap.add_argument("--window", type=int, default=16, help="QoS 1/2 messages in flight per publisher")
    ap.add_argument("--payload-size", type=int, default=64)
    ap.add_argument("--retained", type=int, default=5, help="retained messages published at the start")
    ap.add_argument("--durability", default="fsync",
                    help='[storage] durability written to the config; "omit" leaves the section out')
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--min-round-acks", type=int, default=50,
                    help="acknowledgements each round must reach before the kill may happen")
    ap.add_argument("--min-hot-kills", type=int, default=None,
                    help="faults that must land while acks flow (default: 90 %% of them, rounded up)")
    ap.add_argument("--reconnect-timeout", type=float, default=30)
    ap.add_argument("--start-timeout", type=float, default=30, help="seconds for parleyd to answer a CONNECT")
    ap.add_argument("--drain-timeout", type=float, default=30)
    ap.add_argument("--drain-idle", type=float, default=5,
                    help="stop draining when nothing arrived for this long")
    ap.add_argument("--fault", choices=("kill9", "drop"), default="kill9",
                    help="kill9 (default): SIGKILL and restart the broker; drop: only cut the clients' connections "
                         "(a positive control for the harness; must pass even on a memory-only broker)")
    ap.add_argument("--wipe-data-on-restart", action="store_true",
                    help="negative control: delete the data dir before each restart (the test must then FAIL)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir even when the test passes")
    a = ap.parse_args(argv)
    if a.seed is None:
        a.seed = str(int(time.time()) % 100000)
    if a.rounds < 1 or a.publishers < 1 or a.subscribers < 1 or a.seconds <= 0:
        ap.error("--rounds, --publishers, --subscribers and --seconds must be positive")
    if a.window < 1 or a.window > 65000:
        ap.error("--window out of range")
    a.parleyd = str(pathlib.Path(a.parleyd).resolve())
    return a


def main(argv):
    a = parse_args(argv)
    if not os.access(a.parleyd, os.X_OK):
        log("parleyd not found or not executable: %s" % a.parleyd)
        return 2

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)      # also when started in the background, where SIGINT is ignored

    run = Run(a)
    code = 2
    rep = None
    try:
        try:
            run.run()
        except BrokerFailure as e:
            run.fail(str(e))
        run.stop_all.set()                # the publisher threads stop before their bookkeeping is read
        for p in run.pubs:
            p.join(5)
        rep = run.verify()
        code = 0 if not run.failures else 1
    except HarnessError as e:
        log("HARNESS ERROR: %s" % e)
        code = 2
    except KeyboardInterrupt:
        log("interrupted")
        code = 130
    except Exception:
        log("HARNESS ERROR:\n" + traceback.format_exc())
        code = 2
    finally:
        run.stop_all.set()
        run.stop_publishing.set()
        if run.broker:
            run.broker.ensure_dead()
        for s in run.subs:
            s.stop()
        for p in run.pubs:
            p.join(5)
    if rep is not None:
        log("---- summary")
        for line in summary_lines(rep):
            log(line)
        if run.failures:
            log("FAILED checks:")
            for f in run.failures:
                log("  - " + f)
        if a.report:
            print(json.dumps(rep, indent=2))
        if a.markdown:
            print(markdown(rep, argv))
    wd = getattr(run, "workdir", None)
    if wd is not None:
        if code == 0 and not a.keep and not a.data_dir:
            shutil.rmtree(wd, ignore_errors=True)
        else:
            log("work dir kept: %s (broker.log, parley.toml, data/)" % wd)
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
