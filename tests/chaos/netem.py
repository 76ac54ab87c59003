#!/usr/bin/python3
"""User-space netem: delay, jitter and reordering between pairs of tun devices.

Why this exists: the chaos harness shapes the link of each simulated mobile
client, but this machine's kernel has no ``sch_netem`` qdisc.  Loss and rate
limiting are left to the kernel (iptables ``statistic`` and ``tbf``, set up by
netns.py); delay, jitter and reordering are done here, in one small process.

How: for each link of the config this process creates two tun devices
(IFF_TUN | IFF_NO_PI, so every read or write is one bare IP packet) in the
namespace it runs in, prints ``ready`` and starts forwarding.  The caller then
moves one device into the client's namespace and the other into the broker's
and addresses them as a point-to-point pair; the file descriptors stay valid
across the move, so a packet read from the client's device is written, later,
to the broker's device and the other way round.  That is a routed (L3) link
with no ARP and no bridge, and nothing in the root namespace but the two
devices for the moment before they are moved.

Timing, per link and per direction: a packet read at time t is due at
t + delay + uniform(-jitter, +jitter), never before t, and never before the
packet read before it in the same direction (a link keeps its order, as a real
mobile link does) -- except that, with probability ``reorder``, a packet skips
that clamp and so may overtake those before it.  Delay and jitter are one-way
and the same for both directions, so RTT ~ 2 x delay.  Because of the FIFO
clamp, a jittered link carrying a steady stream sees a one-way delay nearer
delay + jitter than delay (each packet waits for the slowest before it).

Due packets sit in one heap; the loop sleeps in epoll until the next one is
due (1 ms timer resolution), a tun is readable, or a signal arrives.  Writes
are non-blocking; a failed write (EIO while a client's tun is down during a
link flap, ENOBUFS, ...) counts in ``write_errors`` and drops the packet.

Signals: SIGHUP re-reads the config (delay/jitter/reorder of links matched by
name; packets already scheduled keep their due time).  SIGTERM/SIGINT write
the stats and exit 0; the tun devices vanish with the process.  With
``--exit-with-stdin`` the process also exits when its standard input reaches
EOF, i.e. when the parent that holds the other end of the pipe dies, so a
crashed orchestrator does not leave it behind.  It exits on its own, too, once
every one of its tun devices has been destroyed (namespaces deleted).

Stats: every 0.5 s and at exit STATS is replaced atomically (write + rename,
from a thread of its own: on a busy disk that can block for a few hundred ms,
which must not stall forwarding) with
  {"t": unix time, "pid": ..., "generation": <config "generation">,
   "links": {NAME: {"up_bytes", "up_packets", "down_bytes", "down_packets",
                    "write_errors", "queued", "read_errors", "backlog_ms",
                    "late_1ms", "late_5ms", "late_20ms", "late_max_ms"}}}
("backlog_ms": how long until the packets already queued are all out)
"up" is client -> broker (read from client_if); bytes are IP packet lengths
as read from the tun (headers included).  A stats file is also written at
once after each SIGHUP, so a caller can wait for "generation" to know the new
config is in force.

Usage: /usr/bin/python3 netem.py --config CFG.json --stats STATS.json
       [--exit-with-stdin] [--tag TAG]
CFG: {"generation": 0, "links": [{"name": "bad3g", "client_if": "pchc1",
      "broker_if": "pchb1", "delay_ms": 150, "jitter_ms": 50, "reorder": 0.0}]}
"""

import argparse
import fcntl
import heapq
import json
import os
import random
import select
import signal
import struct
import sys
import threading
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

STATS_PERIOD_S = 0.5
READ_BATCH = 256          # packets read from one fd per wake-up, for fairness
MAX_PACKET = 65536
SLACK_S = 0.0005          # send packets due within this much of now together
UP, DOWN = 0, 1           # direction: client -> broker, broker -> client


def log(msg):
    sys.stderr.write("netem: %s\n" % msg)
    sys.stderr.flush()


def open_tun(name):
    """Create tun device NAME (IP packets, no packet-info header); non-blocking fd."""
    if not name or len(name.encode()) > 15:
        raise ValueError("bad interface name %r" % name)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class Link:
    """One shaped link: two tun fds, the shaping parameters and the counters."""

    def __init__(self, spec):
        self.name = spec["name"]
        self.client_if = spec["client_if"]
        self.broker_if = spec["broker_if"]
        self.configure(spec)
        self.fd = [-1, -1]             # [client fd (read: up), broker fd (read: down)]
        self.last_due = [0.0, 0.0]     # due time of the last FIFO packet, per direction
        self.packets = [0, 0]
        self.bytes = [0, 0]
        self.write_errors = 0
        self.read_errors = 0
        self.queued = 0
        self.max_due = 0.0             # latest due time of any packet queued so far
        self.late = [0, 0, 0]          # packets written > 1 ms, > 5 ms, > 20 ms after their due time
        self.late_max = 0.0            # the latest a packet was written after its due time (s)

    def configure(self, spec):
        self.delay = max(0.0, float(spec.get("delay_ms", 0))) / 1000.0
        self.jitter = max(0.0, float(spec.get("jitter_ms", 0))) / 1000.0
        self.reorder = min(1.0, max(0.0, float(spec.get("reorder", 0.0))))

    def stats(self, now):
        return {
            "up_bytes": self.bytes[UP], "up_packets": self.packets[UP],
            "down_bytes": self.bytes[DOWN], "down_packets": self.packets[DOWN],
            "write_errors": self.write_errors, "read_errors": self.read_errors,
            "queued": self.queued,
            # How long until every packet already scheduled is out: after a
            # SIGHUP to delay 0, new packets still queue behind these (FIFO).
            "backlog_ms": round(max(0.0, self.max_due - now) * 1000, 1) if self.queued else 0.0,
            # netem's own error: how late queued packets went out (a busy machine delays this process).
            "late_1ms": self.late[0], "late_5ms": self.late[1], "late_20ms": self.late[2],
            "late_max_ms": round(self.late_max * 1000, 1),
        }


def load_config(path):
    with open(path) as f:
        cfg = json.load(f)
    links = cfg.get("links")
    if not isinstance(links, list):
        raise ValueError("config: 'links' must be a list")
    names = set()
    for spec in links:
        for key in ("name", "client_if", "broker_if"):
            if not isinstance(spec.get(key), str) or not spec[key]:
                raise ValueError("config: link needs a string %r: %r" % (key, spec))
        if spec["name"] in names:
            raise ValueError("config: duplicate link name %r" % spec["name"])
        names.add(spec["name"])
    return cfg


class StatsWriter(threading.Thread):
    """Writes the stats file from a thread of its own.

    The file is small, but on a busy disk the write + rename can block for
    hundreds of milliseconds (seen on ext4 here), and the forwarding loop must
    not stall meanwhile.  Only the latest snapshot is kept."""

    def __init__(self, path):
        super().__init__(name="stats", daemon=True)
        self.path = path
        self.cond = threading.Condition()
        self.pending = None
        self.closing = False

    def submit(self, doc):
        with self.cond:
            self.pending = doc
            self.cond.notify()

    def close(self, timeout=5.0):
        """Write what is pending, then stop (waits at most TIMEOUT seconds)."""
        with self.cond:
            self.closing = True
            self.cond.notify()
        self.join(timeout)

    def run(self):
        while True:
            with self.cond:
                while self.pending is None and not self.closing:
                    self.cond.wait()
                doc, self.pending = self.pending, None
            if doc is not None:
                self.write(doc)
            elif self.closing:
                return

    def write(self, doc):
        tmp = "%s.tmp%d" % (self.path, os.getpid())
        try:
            with open(tmp, "w") as f:
                json.dump(doc, f)
            os.replace(tmp, self.path)
        except OSError as e:
            log("stats not written: %s" % e)


class Netem:
    def __init__(self, config_path, stats_path, exit_with_stdin):
        self.config_path = config_path
        self.stats_path = stats_path
        self.exit_with_stdin = exit_with_stdin
        cfg = load_config(config_path)
        self.generation = cfg.get("generation", 0)
        self.links = [Link(spec) for spec in cfg["links"]]
        self.route = {}      # fd -> (link, direction of packets read from it, out fd)
        self.heap = []       # (due, seq, out_fd, packet, link, direction)
        self.seq = 0
        self.stop = False
        self.reload = False
        self.rand = random.Random()
        self.ep = select.epoll()
        self.stats_writer = StatsWriter(stats_path)
        self.stats_writer.start()

    # -- setup -------------------------------------------------------------
    def open_devices(self):
        for link in self.links:
            link.fd[UP] = open_tun(link.client_if)
            link.fd[DOWN] = open_tun(link.broker_if)
            self.route[link.fd[UP]] = (link, UP, link.fd[DOWN])
            self.route[link.fd[DOWN]] = (link, DOWN, link.fd[UP])
            self.ep.register(link.fd[UP], select.EPOLLIN)
            self.ep.register(link.fd[DOWN], select.EPOLLIN)

    def install_signals(self):
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_r = rfd
        signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        self.ep.register(rfd, select.EPOLLIN)

        def on_stop(signum, frame):
            self.stop = True

        def on_hup(signum, frame):
            self.reload = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        if self.exit_with_stdin:
            os.set_blocking(0, False)
            self.ep.register(0, select.EPOLLIN)

    # -- work --------------------------------------------------------------
    def do_reload(self):
        self.reload = False
        try:
            cfg = load_config(self.config_path)
        except (OSError, ValueError) as e:
            log("SIGHUP: config not reloaded: %s" % e)
            return
        by_name = {spec["name"]: spec for spec in cfg["links"]}
        for link in self.links:
            spec = by_name.pop(link.name, None)
            if spec is None:
                log("SIGHUP: link %s is no longer in the config; its shaping is kept" % link.name)
            else:
                link.configure(spec)
        for name in by_name:
            log("SIGHUP: new link %s ignored (devices are created at start only)" % name)
        self.generation = cfg.get("generation", self.generation)
        self.write_stats()

    def read_from(self, fd, now):
        link, direction, out_fd = self.route[fd]
        heap, rand = self.heap, self.rand
        for _ in range(READ_BATCH):
            try:
                pkt = os.read(fd, MAX_PACKET)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError as e:
                # EBADFD: the device was destroyed (its namespace deleted).
                link.read_errors += 1
                log("%s: read error on %s: %s; fd dropped" % (
                    link.name, link.client_if if direction == UP else link.broker_if, e))
                self.drop_fd(fd)
                return
            if not pkt:
                return
            link.packets[direction] += 1
            link.bytes[direction] += len(pkt)
            due = now + link.delay
            if link.jitter:
                due += rand.uniform(-link.jitter, link.jitter)
                if due < now:
                    due = now
            if not (link.reorder and rand.random() < link.reorder):
                if due < link.last_due[direction]:
                    due = link.last_due[direction]
                link.last_due[direction] = due
            if due <= now:
                # Nothing of this direction can be waiting ahead of it (that
                # would have a due <= now and been written already): send now.
                self.send(out_fd, pkt, link)
            else:
                self.seq += 1
                link.queued += 1
                if due > link.max_due:
                    link.max_due = due
                heapq.heappush(heap, (due, self.seq, out_fd, pkt, link))

    def send(self, out_fd, pkt, link):
        try:
            os.write(out_fd, pkt)
        except OSError:
            # EIO: the other device is down (link flap); EAGAIN/ENOBUFS:
            # its queue is full; EBADFD: destroyed.  A lost packet, not a fault.
            link.write_errors += 1

    def flush_due(self, now):
        heap = self.heap
        limit = now + SLACK_S
        while heap and heap[0][0] <= limit:
            due, _, out_fd, pkt, link = heapq.heappop(heap)
            link.queued -= 1
            late = now - due
            if late > 0.001:
                link.late[0] += 1
                if late > 0.005:
                    link.late[1] += 1
                    if late > 0.020:
                        link.late[2] += 1
                if late > link.late_max:
                    link.late_max = late
            self.send(out_fd, pkt, link)

    def drop_fd(self, fd):
        if fd in self.route:
            del self.route[fd]
            try:
                self.ep.unregister(fd)
            except OSError:
                pass

    def write_stats(self):
        """Hand a snapshot of the counters to the writer thread."""
        now = time.monotonic()
        self.stats_writer.submit({
            "t": time.time(), "pid": os.getpid(), "generation": self.generation,
            "links": {link.name: link.stats(now) for link in self.links},
        })

    def run(self):
        next_stats = time.monotonic() + STATS_PERIOD_S
        route, heap, ep = self.route, self.heap, self.ep
        while not self.stop:
            now = time.monotonic()
            self.flush_due(now)
            if now >= next_stats:
                self.write_stats()
                next_stats = now + STATS_PERIOD_S
            if self.reload:
                self.do_reload()
            if not route:
                log("every tun device is gone; exiting")
                break
            timeout = next_stats - now
            if heap and heap[0][0] - now < timeout:
                timeout = heap[0][0] - now
            # epoll rounds the timeout up to whole milliseconds: no busy loop.
            events = ep.poll(max(timeout, 0.0))
            now = time.monotonic()
            # Send what fell due during the wait before reading anything new,
            # so a packet sent at once (due <= now) never overtakes one queued.
            self.flush_due(now)
            for fd, ev in events:
                if fd in route:
                    if ev & select.EPOLLIN:
                        self.read_from(fd, now)
                    elif ev & (select.EPOLLERR | select.EPOLLHUP):
                        self.read_from(fd, now)   # reports the error, drops the fd
                        self.drop_fd(fd)
                elif fd == self.wake_r:
                    try:
                        while os.read(self.wake_r, 256):
                            pass
                    except BlockingIOError:
                        pass
                elif fd == 0:
                    try:
                        data = os.read(0, 4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        log("stdin closed; exiting")
                        self.stop = True
        self.write_stats()
        self.stats_writer.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="links (JSON); re-read on SIGHUP")
    ap.add_argument("--stats", required=True, help="counters (JSON), replaced every 0.5 s")
    ap.add_argument("--exit-with-stdin", action="store_true",
                    help="exit when standard input reaches EOF (the parent died)")
    ap.add_argument("--tag", default="", help="free text, lets a caller find its own process")
    args = ap.parse_args()
    try:
        netem = Netem(args.config, args.stats, args.exit_with_stdin)
        netem.install_signals()
        netem.open_devices()
    except (OSError, ValueError) as e:
        log("cannot start: %s" % e)
        return 2
    netem.write_stats()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    netem.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
