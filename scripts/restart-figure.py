#!/usr/bin/python3
"""Restart figure: how long parleyd takes to serve again with many persistent sessions holding queued messages.

Builds the state with raw MQTT 3.1.1 clients on loopback: SESSIONS persistent sessions (clean session = false,
each subscribed QoS 1 to its own topic and to one shared topic), then MESSAGES QoS 1 messages per session
(half distinct per session, half fanned out to all, so both body sharing and distinct bodies are exercised),
all acknowledged by the broker while the sessions are offline. Then kill -9, restart on the same data dir,
and measure: time until the port accepts connections and the first resumed session (Session Present = 1)
has its first queued message; time until every sampled session received all its messages; RSS after load;
the data dir size.

Usage: scripts/restart-figure.py [--sessions 100000] [--messages 10] [--parleyd build/broker/main/parleyd]
Bounded: every wait has a deadline; the broker is killed on exit.
"""
import argparse
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time


def enc_str(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def enc_len(n):
    out = bytearray()
    while True:
        d = n % 128
        n //= 128
        out.append(d | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first, body):
    return bytes([first]) + enc_len(len(body)) + body


def connect(cid, clean=False):
    flags = 0x02 if clean else 0x00
    return packet(0x10, enc_str("MQTT") + bytes([4, flags]) + struct.pack("!H", 600) + enc_str(cid))


def subscribe(pid, topic, qos=1):
    return packet(0x82, struct.pack("!H", pid) + enc_str(topic) + bytes([qos]))


def publish(topic, payload, pid, qos=1):
    return packet(0x30 | (qos << 1), enc_str(topic) + struct.pack("!H", pid) + payload)


DISCONNECT = b"\xe0\x00"


class Reader:
    """Parses MQTT packets from a socket."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def packets(self, deadline):
        while True:
            pkt = self._one()
            if pkt:
                yield pkt
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no packet before the deadline")
            self.sock.settimeout(left)
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("broker closed the connection")
            self.buf += data

    def _one(self):
        if len(self.buf) < 2:
            return None
        n, mult, i = 0, 1, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            n += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        if len(self.buf) < i + n:
            return None
        pkt = (self.buf[0], self.buf[i:i + n])
        self.buf = self.buf[i + n:]
        return pkt


def open_sock(port, deadline):
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def expect(reader, deadline, types):
    got = []
    for first, body in reader.packets(deadline):
        got.append((first, body))
        if len(got) == len(types):
            break
    for (first, _), t in zip(got, types):
        if first >> 4 != t:
            raise RuntimeError(f"expected packet type {t}, got {first >> 4}")
    return got


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=100_000)
    ap.add_argument("--messages", type=int, default=10)
    ap.add_argument("--parleyd", default=os.path.join(os.path.dirname(__file__), "..", "build/broker/main/parleyd"))
    ap.add_argument("--port", type=int, default=18870)
    ap.add_argument("--durability", default="fsync")
    ap.add_argument("--sample", type=int, default=200, help="sessions drained after the restart to check contents")
    ap.add_argument("--keep", help="copy the data dir, as the kill left it, to this path (for profiling a load)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="parley-restart-")
    conf = os.path.join(work, "parley.toml")
    with open(conf, "w") as f:
        f.write(f'workers = 2\ndata_dir = "{work}/data"\n[[listener]]\nname = "mqtt"\nbind = "127.0.0.1"\n'
                f'port = {args.port}\n[storage]\ndurability = "{args.durability}"\n[sys]\nenabled = false\n')
    log = open(os.path.join(work, "parley.log"), "w")
    broker = None

    def start():
        return subprocess.Popen([args.parleyd, "--config", conf, "--log-level", "info"], stdout=log, stderr=log)

    try:
        broker = start()
        deadline = time.monotonic() + 600
        t0 = time.monotonic()
        # 1. Sessions, in parallel batches of sockets.
        batch = 500
        for base in range(0, args.sessions, batch):
            socks = []
            for i in range(base, min(base + batch, args.sessions)):
                s = open_sock(args.port, deadline)
                s.sendall(connect(f"s-{i}") + subscribe(1, f"own/{i}") + subscribe(2, "all/x"))
                socks.append(s)
            for s in socks:
                expect(Reader(s), deadline, [2, 9, 9])
                s.sendall(DISCONNECT)
                s.close()
        t_sessions = time.monotonic() - t0
        print(f"[{t_sessions:.1f}s] {args.sessions} sessions created", file=sys.stderr, flush=True)

        # 2. Messages: half fanned out to all sessions (one body each), half distinct per session.
        t0 = time.monotonic()
        fan = args.messages // 2
        distinct = args.messages - fan
        pub = open_sock(args.port, deadline)
        pub.sendall(connect("publisher", clean=True))
        reader = Reader(pub)
        expect(reader, deadline, [2])
        for k in range(fan):
            pub.sendall(publish("all/x", b"fan-%d" % k, k + 1))
            expect(reader, deadline, [4])  # each PUBACK waits for every session's row on disk
            print(f"fan-out message {k + 1}/{fan} acknowledged", file=sys.stderr, flush=True)
        pid, window, outstanding = fan, 64, 0
        for i in range(args.sessions):
            for k in range(distinct):
                pid = pid % 65535 + 1
                pub.sendall(publish(f"own/{i}", b"own-%d-%d" % (i, k), pid))
                outstanding += 1
                if outstanding >= window:
                    expect(reader, deadline, [4])
                    outstanding -= 1
        while outstanding:
            expect(reader, deadline, [4])
            outstanding -= 1
        pub.close()
        t_messages = time.monotonic() - t0
        rss_before = rss_kb(broker.pid)

        # 3. kill -9 and restart.
        broker.send_signal(signal.SIGKILL)
        broker.wait()
        size = du(os.path.join(work, "data"))
        if args.keep:
            shutil.copytree(os.path.join(work, "data"), args.keep)
        t0 = time.monotonic()
        broker = start()
        s = open_sock(args.port, time.monotonic() + 300)
        t_accept = time.monotonic() - t0
        s.sendall(connect("s-0"))
        r = Reader(s)
        first = expect(r, time.monotonic() + 300, [2, 3])
        if first[0][1][0] != 1:
            raise RuntimeError("session s-0 was not present after the restart")
        t_first = time.monotonic() - t0
        s.close()
        rss_after = rss_kb(broker.pid)

        # 4. Contents: a sample of sessions gets every message, in order, with the same topics.
        t0 = time.monotonic()
        sample = random.Random(1).sample(range(args.sessions), min(args.sample, args.sessions))
        for i in sample:
            s = open_sock(args.port, deadline)
            s.sendall(connect(f"s-{i}"))
            r = Reader(s)
            got = expect(r, time.monotonic() + 30, [2] + [3] * args.messages)
            if got[0][1][0] != 1:
                raise RuntimeError(f"session s-{i} was not present after the restart")
            payloads = []
            for first_byte, body in got[1:]:
                tl = struct.unpack("!H", body[:2])[0]
                payloads.append(body[2 + tl + 2:])
                s.sendall(packet(0x40, body[2 + tl:2 + tl + 2]))  # PUBACK
            want = [b"fan-%d" % k for k in range(fan)] + [b"own-%d-%d" % (i, k) for k in range(distinct)]
            if payloads != want:
                raise RuntimeError(f"session s-{i}: got {payloads[:4]}..., want {want[:4]}...")
            s.sendall(DISCONNECT)
            s.close()
        t_sample = time.monotonic() - t0

        print(f"sessions: {args.sessions}, queued messages per session: {args.messages} "
              f"({fan} fanned out to all, {distinct} distinct), durability {args.durability}")
        print(f"setup: sessions {t_sessions:.1f} s, messages {t_messages:.1f} s "
              f"({args.sessions * args.messages / t_messages:,.0f} queued deliveries/s); "
              f"RSS before the kill {rss_before / 1024:.0f} MiB; data dir {size / 1e6:.0f} MB")
        print(f"restart after kill -9: accepting connections after {t_accept:.2f} s; first resumed session got "
              f"its first queued message after {t_first:.2f} s; RSS after load {rss_after / 1024:.0f} MiB")
        print(f"checked {len(sample)} sessions: every message present, in order ({t_sample:.1f} s)")
        with open(os.path.join(work, "parley.log")) as f:
            for line in f:
                if "loaded" in line:
                    print("log:", line.strip())
    finally:
        if broker and broker.poll() is None:
            broker.kill()
            broker.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
