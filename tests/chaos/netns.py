#!/usr/bin/python3
"""The chaos harness's network lab: a broker namespace, one namespace per
simulated mobile link, and a shaped link between each of them and the broker.

Layout (prefix "pch", the default; link i uses 10.77.i.0):

    ns pch-b:   lo, pchb0 10.77.0.1 peer 10.77.0.2, pchb1 10.77.1.1 ...
    ns pch-c0:  lo, pchc0 10.77.0.2 peer 10.77.0.1, default route via pchc0
    ns pch-c1:  lo, pchc1 10.77.1.2 peer 10.77.1.1, default route via pchc1
    root ns:    netem.py, holding the fds of every tun pchcI / pchbI

Each link is a pair of tun devices joined by netem.py (this kernel has no
netem qdisc, so delay, jitter and reordering are done in user space; see
netem.py).  The rest of a profile is done by the kernel, inside the lab's own
namespaces only -- nothing touches the root namespace's routes, iptables or
interfaces:

* loss: iptables ``-m statistic --mode random --probability P -j DROP`` in
  the INPUT chain of the *receiving* namespace: the client namespace for
  download (-i pchcI), the broker namespace for upload (-i pchbI).  Both are
  inbound hooks on purpose: a DROP in OUTPUT (in the sender's own namespace)
  is not a loss -- the local sender is told at once (sendto() fails with
  EPERM, TCP keeps the segment and resends it), whereas a mobile network drops
  silently.  The rules live in a chain of their own ("<prefix>-loss", jumped
  to from INPUT) so heal() can flush them without touching rules a client
  program adds itself.
* rate: tbf on both tun egresses: the client tun in the client namespace
  shapes upload, the broker tun in the broker namespace shapes download.
  burst = 3000 bytes (two full-size packets: enough for one MTU-sized packet
  plus slack, small enough that the pacing is smooth at 256 kbit/s, where a
  1500-byte packet takes 47 ms); latency = 1000 ms, so the queue holds about
  one second of traffic (32 kB at 256 kbit/s) before it tail-drops -- the deep
  buffer of a real cellular link (bufferbloat: RTT grows under load rather
  than packets being dropped early).  tbf survives a link down/up.
* delay/jitter/reorder: netem.py, reconfigured by rewriting its config and
  sending it SIGHUP.

The client namespace gets a default route through its tun, so a client can
reach the broker at any of the broker namespace's addresses.

Lab.calibrate() measures what a link really does (RTT, jitter, loss,
reordering, rate) with a UDP echo server in the broker namespace and a prober
in the client namespace; both are modes of this file:
    netns.py echo --bind ADDR [--timeout S]
    netns.py probe --addr ADDR --port PORT --seconds S --drain S [--rate-kbit K]
"""

import argparse
import atexit
import json
import math
import os
import re
import select
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NETEM = os.path.join(HERE, "netem.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# name -> shaping.  delay/jitter: one-way, ms, each direction (RTT ~ 2 x delay);
# loss: per direction, 0..1; rate_kbit: per direction, 0 = unlimited;
# reorder: probability that a packet may overtake those before it.
PROFILES = {
    "good4g": dict(delay_ms=25, jitter_ms=5, loss=0.001, rate_kbit=0, reorder=0.0),
    "bad3g": dict(delay_ms=150, jitter_ms=50, loss=0.03, rate_kbit=0, reorder=0.0),
    "edge": dict(delay_ms=400, jitter_ms=100, loss=0.15, rate_kbit=256, reorder=0.05),
    "flaky": dict(delay_ms=40, jitter_ms=10, loss=0.005, rate_kbit=0, reorder=0.0),  # flapped by the orchestrator
}

TBF_BURST_BYTES = 3000
TBF_LATENCY_MS = 1000
SUBNET = "10.77"
IP_UDP_HEADERS = 28            # IPv4 + UDP header bytes, to count bytes on the wire


class LabError(RuntimeError):
    pass


def _run(argv, check=True, timeout=15, input=None):
    """Run a command to completion (bounded); raise LabError when it fails and check."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired:
        raise LabError("timed out: %s" % " ".join(argv))
    if check and p.returncode != 0:
        raise LabError("%s: exit %d: %s" % (" ".join(argv), p.returncode, p.stderr.strip()))
    return p


def _kill(proc, grace=2.0):
    """Stop a Popen we started: SIGTERM, then SIGKILL after GRACE seconds; always reaped."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f:
            try:
                f.close()
            except OSError:
                pass


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _kill_pids(pids, grace=2.0):
    """SIGTERM the given pids, SIGKILL those still there after GRACE seconds."""
    pids = [p for p in pids if p != os.getpid()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _pid_alive(p)]
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _read_line(stream, timeout):
    """One line from a pipe within TIMEOUT seconds, or None."""
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        return None
    return stream.readline()


class Lab:
    """A set of namespaces joined by shaped links; see the module docstring.

    lab = Lab(["good4g", "edge"], "/tmp/run1"); lab.setup()
    lab.popen(lab.broker_ns, ["./parleyd", ...]); lab.popen(lab.client_ns(1), [...])
    lab.link_down(1); lab.link_up(1); lab.heal(); lab.reshape(); lab.teardown()
    """

    def __init__(self, profiles, workdir, prefix="pch"):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", prefix):
            raise ValueError("prefix: 1-8 lower-case letters/digits, starting with a letter")
        for name in profiles:
            if name not in PROFILES:
                raise ValueError("unknown profile %r (known: %s)" % (name, ", ".join(PROFILES)))
        if not 1 <= len(profiles) <= 256:
            raise ValueError("1 to 256 links")
        self.profiles = list(profiles)
        self.workdir = os.path.abspath(workdir)
        self.prefix = prefix
        self.broker_ns = "%s-b" % prefix
        self.loss_chain = "%s-loss" % prefix
        self.config_path = os.path.join(self.workdir, "netem-config.json")
        self.stats_path = os.path.join(self.workdir, "netem-stats.json")
        self.netem_log = os.path.join(self.workdir, "netem.log")
        self._netem = None
        self._generation = 0
        self._timers = []
        self._lock = threading.Lock()

    # -- names and addresses -------------------------------------------------
    def client_ns(self, i):
        return "%s-c%d" % (self.prefix, i)

    def client_if(self, i):
        return "%sc%d" % (self.prefix, i)

    def broker_if(self, i):
        return "%sb%d" % (self.prefix, i)

    def broker_addr(self, i):
        return "%s.%d.1" % (SUBNET, i)

    def client_addr(self, i):
        return "%s.%d.2" % (SUBNET, i)

    def link_name(self, i):
        """The link's name in netem's stats: the profile name, or "profile-i"
        when several links share a profile."""
        name = self.profiles[i]
        return name if self.profiles.count(name) == 1 else "%s-%d" % (name, i)

    def profile(self, i):
        return PROFILES[self.profiles[i]]

    def _namespaces(self):
        return [self.broker_ns] + [self.client_ns(i) for i in range(len(self.profiles))]

    # -- life cycle ------------------------------------------------------------
    def setup(self):
        """Build the lab (after removing whatever an earlier run with the same
        prefix left behind) and apply the profiles."""
        os.makedirs(self.workdir, exist_ok=True)
        self._remove_leftovers()
        atexit.register(self.teardown)
        try:
            for ns in self._namespaces():
                _run(["ip", "netns", "add", ns])
                _run(["ip", "-n", ns, "link", "set", "lo", "up"])
                # No IPv6: keeps router solicitations and the like off the links
                # (and out of the byte counters).
                _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                      "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
                _run(["ip", "netns", "exec", ns, "iptables", "-w", "-N", self.loss_chain])
                _run(["ip", "netns", "exec", ns, "iptables", "-w", "-I", "INPUT", "-j", self.loss_chain])
            self._write_netem_config(heal=False)
            self._start_netem()
            moves = []
            for i in range(len(self.profiles)):
                moves.append("link set %s netns %s" % (self.client_if(i), self.client_ns(i)))
                moves.append("link set %s netns %s" % (self.broker_if(i), self.broker_ns))
            _run(["ip", "-batch", "-"], input="\n".join(moves) + "\n")
            broker = []
            for i in range(len(self.profiles)):
                broker.append("addr add %s peer %s dev %s" % (self.broker_addr(i), self.client_addr(i), self.broker_if(i)))
                broker.append("link set %s up" % self.broker_if(i))
                self._client_link_up(i)
            _run(["ip", "-n", self.broker_ns, "-batch", "-"], input="\n".join(broker) + "\n")
            self._apply_kernel_shaping()
        except BaseException:
            self.teardown()
            raise

    def teardown(self):
        """Stop netem and delete the lab's namespaces (killing what still runs
        in them).  Idempotent; also runs at exit."""
        with self._lock:
            for t in self._timers:
                t.cancel()
            self._timers = []
            _kill(self._netem, grace=3.0)
            self._netem = None
        self._remove_leftovers()
        try:
            atexit.unregister(self.teardown)
        except Exception:
            pass

    def _remove_leftovers(self):
        # A netem started by an earlier run with this prefix (found by its --tag).
        strays = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    argv = f.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            if (any(a.endswith("netem.py") for a in argv[:3]) and "--tag" in argv
                    and argv.index("--tag") + 1 < len(argv)
                    and argv[argv.index("--tag") + 1] == self.prefix):
                strays.append(int(entry))
        _kill_pids(strays)
        # The namespaces, and whatever still runs in them (it would keep them alive).
        pattern = re.compile(r"%s-(b|c\d+)$" % re.escape(self.prefix))
        listing = _run(["ip", "netns", "list"], check=False).stdout
        for line in listing.splitlines():
            ns = line.split()[0] if line.split() else ""
            if not pattern.match(ns):
                continue
            pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
            _kill_pids([int(p) for p in pids if p.isdigit()])
            _run(["ip", "netns", "del", ns], check=False)

    # -- netem -----------------------------------------------------------------
    def _write_netem_config(self, heal):
        links = []
        for i, name in enumerate(self.profiles):
            p = PROFILES[name]
            links.append({
                "name": self.link_name(i), "client_if": self.client_if(i), "broker_if": self.broker_if(i),
                "delay_ms": 0 if heal else p["delay_ms"], "jitter_ms": 0 if heal else p["jitter_ms"],
                "reorder": 0.0 if heal else p["reorder"],
            })
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"generation": self._generation, "links": links}, f, indent=1)
        os.replace(tmp, self.config_path)

    def _start_netem(self):
        with open(self.netem_log, "ab") as log:
            self._netem = subprocess.Popen(
                [PYTHON, NETEM, "--config", self.config_path, "--stats", self.stats_path,
                 "--exit-with-stdin", "--tag", self.prefix],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        line = _read_line(self._netem.stdout, 10.0)
        if line != "ready\n":
            _kill(self._netem)
            self._netem = None
            raise LabError("netem did not start (see %s)" % self.netem_log)

    def _reconfigure_netem(self, heal, timeout=3.0):
        """Rewrite netem's config, SIGHUP it and wait until its stats show the
        new generation (netem writes them right after a reload)."""
        if self._netem is None or self._netem.poll() is not None:
            raise LabError("netem is not running (see %s)" % self.netem_log)
        self._generation += 1
        self._write_netem_config(heal)
        self._netem.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = self._read_stats()
            if stats.get("generation") == self._generation:
                return stats
            time.sleep(0.02)
        raise LabError("netem did not take its new config within %.0f s" % timeout)

    def _read_stats(self):
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def counters(self):
        """netem's latest counters, by link name (see link_name()):
        {name: {up_bytes, up_packets, down_bytes, down_packets, write_errors,
        read_errors, queued, backlog_ms}}; "up" is client -> broker; bytes are
        IP packet lengths; at most 0.5 s old."""
        return self._read_stats().get("links", {})

    # -- kernel shaping --------------------------------------------------------
    def _ns_run(self, ns, argv, check=True):
        return _run(["ip", "netns", "exec", ns] + argv, check=check)

    def _apply_kernel_shaping(self):
        self._clear_kernel_shaping()
        for i, name in enumerate(self.profiles):
            p = PROFILES[name]
            if p["loss"] > 0:
                prob = "%.6f" % p["loss"]
                self._ns_run(self.client_ns(i), [
                    "iptables", "-w", "-A", self.loss_chain, "-i", self.client_if(i), "-m", "statistic",
                    "--mode", "random", "--probability", prob, "-j", "DROP"])
                self._ns_run(self.broker_ns, [
                    "iptables", "-w", "-A", self.loss_chain, "-i", self.broker_if(i), "-m", "statistic",
                    "--mode", "random", "--probability", prob, "-j", "DROP"])
            if p["rate_kbit"] > 0:
                for ns, dev in ((self.client_ns(i), self.client_if(i)), (self.broker_ns, self.broker_if(i))):
                    _run(["tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf",
                          "rate", "%dkbit" % p["rate_kbit"], "burst", str(TBF_BURST_BYTES),
                          "latency", "%dms" % TBF_LATENCY_MS])

    def _clear_kernel_shaping(self):
        for ns in self._namespaces():
            self._ns_run(ns, ["iptables", "-w", "-F", self.loss_chain])
        for i in range(len(self.profiles)):
            for ns, dev in ((self.client_ns(i), self.client_if(i)), (self.broker_ns, self.broker_if(i))):
                out = _run(["tc", "-n", ns, "qdisc", "show", "dev", dev, "root"], check=False).stdout
                if out.startswith("qdisc tbf"):
                    _run(["tc", "-n", ns, "qdisc", "del", "dev", dev, "root"])

    def heal(self):
        """Every link perfect: no loss rules, no tbf, no delay/jitter/reorder, up.

        Returns once the packets netem had already scheduled with the old delay
        are out (at most delay + jitter, 0.5 s for "edge"): until then a new
        packet would still queue behind them, links keeping their order."""
        for i in range(len(self.profiles)):
            self.link_up(i)
        self._clear_kernel_shaping()
        stats = self._reconfigure_netem(heal=True)
        backlog = max([l.get("backlog_ms", 0.0) for l in stats.get("links", {}).values()] + [0.0])
        time.sleep(min(backlog / 1000.0 + 0.005, 2.0))

    def reshape(self):
        """Apply the profiles again (after heal())."""
        self._apply_kernel_shaping()
        self._reconfigure_netem(heal=False)

    # -- link flaps ------------------------------------------------------------
    def link_down(self, i):
        """Take link i down on the client side, as a phone losing coverage: in
        the client namespace connect()/send() fail at once (ENETUNREACH) and
        the default route goes; whatever the broker sends is lost on the way
        (netem counts the failed writes in write_errors).  Returns at once."""
        _run(["ip", "-n", self.client_ns(i), "link", "set", self.client_if(i), "down"])

    def link_up(self, i):
        """Bring link i back: device up, address and routes restored (the
        kernel drops the default route with the device; the peer route comes
        back by itself)."""
        self._client_link_up(i)

    def _client_link_up(self, i):
        dev = self.client_if(i)
        cmds = [
            "addr replace %s peer %s dev %s" % (self.client_addr(i), self.broker_addr(i), dev),
            "link set %s up" % dev,
            "route replace default dev %s src %s" % (dev, self.client_addr(i)),
        ]
        _run(["ip", "-n", self.client_ns(i), "-batch", "-"], input="\n".join(cmds) + "\n")

    def flap(self, i, down_s):
        """link_down(i) now and link_up(i) DOWN_S seconds later, from a timer
        thread; returns at once (the threading.Timer, which can be cancelled)."""
        self.link_down(i)
        timer = threading.Timer(down_s, self._flap_up, args=(i,))
        timer.daemon = True
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()
        return timer

    def _flap_up(self, i):
        try:
            self.link_up(i)
        except LabError as e:
            sys.stderr.write("netns: link_up(%d) after a flap failed: %s\n" % (i, e))

    # -- processes ---------------------------------------------------------------
    def popen(self, ns, argv, **kw):
        """Start ARGV in namespace NS.  `ip netns exec` execs the program, so
        the Popen's pid is the program's own."""
        return subprocess.Popen(["ip", "netns", "exec", ns] + list(argv), **kw)

    # -- calibration -------------------------------------------------------------
    def calibrate(self, i, seconds=5):
        """Measure link i as it is now (shaped or healed): RTT, jitter, loss,
        reordering and, when the profile limits the rate, the delivered rate
        each way.  Takes at most seconds + 5 s; its helpers are always killed.
        Safe to run for several links at once from threads."""
        p = self.profile(i)
        one_way_max = (p["delay_ms"] + p["jitter_ms"]) / 1000.0
        drain = min(1.5, 2 * one_way_max * 1.2 + 0.3)
        budget = seconds + 5.0
        start = time.monotonic()
        echo = probe = None
        try:
            echo = self.popen(self.broker_ns, [
                PYTHON, os.path.abspath(__file__), "echo", "--bind", self.broker_addr(i),
                "--timeout", str(budget)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
            line = _read_line(echo.stdout, 3.0) or ""
            if not line.startswith("ready "):
                raise LabError("calibration echo server did not start: %r %s" % (
                    line, echo.stderr.read() if echo.poll() is not None else ""))
            port = int(line.split()[1])
            argv = [PYTHON, os.path.abspath(__file__), "probe", "--addr", self.broker_addr(i),
                    "--port", str(port), "--seconds", str(seconds), "--drain", "%.3f" % drain]
            if p["rate_kbit"] > 0:
                argv += ["--rate-kbit", str(p["rate_kbit"])]
            probe = self.popen(self.client_ns(i), argv, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            left = budget - (time.monotonic() - start) - 0.2
            try:
                out, err = probe.communicate(timeout=max(left, 0.5))
            except subprocess.TimeoutExpired:
                raise LabError("calibration of link %d overran its %.0f s" % (i, budget))
            if probe.returncode != 0:
                raise LabError("prober failed: %s" % err.strip())
            result = json.loads(out)
        finally:
            _kill(probe, grace=0.5)
            _kill(echo, grace=0.5)
        result["profile"] = self.profiles[i]
        result["link"] = self.link_name(i)
        result["configured"] = dict(p)
        result["elapsed_s"] = round(time.monotonic() - start, 2)
        return result


# ---------------------------------------------------------------------------
# Calibration helpers, run in the namespaces by Lab.calibrate().
#
# UDP, one socket each side.  Messages (first byte):
#   P seq send_ns pad       probe, echoed as is (64 bytes)
#   D id n size             prober asks for a download blast of n packets
#   d id seq pad            one packet of a download blast (size bytes)
#   U id seq n pad          one packet of an upload blast
#   r json                  the echo server's report on an upload blast,
#                           sent (3 times) once the blast has been quiet 0.3 s
# ---------------------------------------------------------------------------

PROBE_FMT = "!cIQ"
BLAST_FMT = "!cII"
PROBE_SIZE = 64
PROBE_RATE = 50.0
BLAST_SIZE = 1000
BLAST_QUIET_S = 0.3


def _rate_from_arrivals(arrivals, size):
    """Link rate and goodput (kbit/s, IP bytes) from [(arrival time, seq)] of one blast.

    rate: the least-squares slope of arrival time against sequence number, so
    packets lost after the shaper (the random drop) still count: the rate the
    shaper delivered, comparable with the profile.  goodput: the bytes that
    actually arrived over the same span.  The first arrivals are skipped:
    netem's FIFO clamp lets the first packets of a burst through with less
    added delay than those behind them, which would bend the line."""
    arrivals = sorted(arrivals)
    skip = min(5, len(arrivals) // 4)
    pts = arrivals[skip:]
    if len(pts) < 4:
        return None, None
    n = len(pts)
    mean_s = sum(s for _, s in pts) / n
    mean_t = sum(t for t, _ in pts) / n
    sxx = sum((s - mean_s) ** 2 for _, s in pts)
    sxt = sum((s - mean_s) * (t - mean_t) for t, s in pts)
    span = pts[-1][0] - pts[0][0]
    if sxx <= 0 or sxt <= 0 or span <= 0:
        return None, None
    wire = size + IP_UDP_HEADERS
    rate = wire * 8 / (sxt / sxx) / 1000.0
    goodput = (n - 1) * wire * 8 / span / 1000.0
    return round(rate, 1), round(goodput, 1)


def _echo_main(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((args.bind, 0))
    print("ready %d" % sock.getsockname()[1], flush=True)
    deadline = time.monotonic() + args.timeout
    served = set()
    uploads = {}      # id -> {"peer", "arrivals": [(t, seq)], "last", "reported"}
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.05)
        now = time.monotonic()
        if ready:
            for _ in range(256):
                try:
                    data, peer = sock.recvfrom(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                kind = data[:1]
                try:
                    if kind == b"P":
                        sock.sendto(data, peer)
                    elif kind == b"D":
                        _, bid, n, size = struct.unpack("!cIHH", data[:9])
                        if bid not in served:
                            served.add(bid)
                            for seq in range(n):
                                pkt = struct.pack(BLAST_FMT, b"d", bid, seq)
                                sock.sendto(pkt + bytes(size - len(pkt)), peer)
                    elif kind == b"U":
                        _, bid, seq = struct.unpack(BLAST_FMT, data[:9])
                        u = uploads.setdefault(bid, {"peer": peer, "arrivals": [], "reported": False})
                        u["arrivals"].append((now, seq))
                        u["last"] = now
                        u["size"] = len(data)
                except OSError:
                    pass
        for bid, u in uploads.items():
            if not u["reported"] and now - u["last"] >= BLAST_QUIET_S:
                u["reported"] = True
                rate, goodput = _rate_from_arrivals(u["arrivals"], u["size"])
                msg = b"r" + json.dumps({"id": bid, "received": len(u["arrivals"]),
                                         "rate_kbit": rate, "goodput_kbit": goodput}).encode()
                for _ in range(3):
                    try:
                        sock.sendto(msg, u["peer"])
                    except OSError:
                        pass
    return 0


def _percentile(sorted_values, q):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(math.ceil(q * len(sorted_values))) - 1))
    return sorted_values[k]


def _probe_main(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    dest = (args.addr, args.port)
    rtts = {}             # seq -> ms
    order = []            # probe seqs in arrival order
    send_errors = 0
    down, up_report = [], None
    blast_id = os.getpid() & 0xFFFFFFF

    def receive(until):
        nonlocal up_report
        while True:
            left = until - time.monotonic()
            ready, _, _ = select.select([sock], [], [], max(left, 0))
            if not ready:
                return
            for _ in range(256):
                try:
                    data = sock.recv(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError:
                    continue      # e.g. ECONNREFUSED from an ICMP error
                now = time.monotonic()
                kind = data[:1]
                if kind == b"P" and len(data) >= 13:
                    _, seq, sent_ns = struct.unpack(PROBE_FMT, data[:13])
                    if seq not in rtts:
                        rtts[seq] = (time.monotonic_ns() - sent_ns) / 1e6
                        order.append(seq)
                elif kind == b"d":
                    _, bid, seq = struct.unpack(BLAST_FMT, data[:9])
                    down.append((now, seq))
                elif kind == b"r":
                    up_report = json.loads(data[1:])
            if time.monotonic() >= until:
                return

    def send(pkt):
        nonlocal send_errors
        try:
            sock.sendto(pkt, dest)
        except OSError:
            send_errors += 1

    # 1. probes at PROBE_RATE for args.seconds, then wait for the stragglers.
    start = time.monotonic()
    n = int(args.seconds * PROBE_RATE)
    for seq in range(n):
        receive(start + seq / PROBE_RATE)
        pkt = struct.pack(PROBE_FMT, b"P", seq, time.monotonic_ns())
        send(pkt + bytes(PROBE_SIZE - len(pkt)))
    receive(time.monotonic() + args.drain)

    # 2. rate: a download blast (asked for, re-asked while nothing arrives)
    # and an upload blast, both at once; each ~1 s of traffic at the rate.
    rate = {}
    if args.rate_kbit > 0:
        nblast = max(20, min(300, int(args.rate_kbit * 1000 / 8 / (BLAST_SIZE + IP_UDP_HEADERS))))
        phase_end = time.monotonic() + 2.8
        ask = struct.pack("!cIHH", b"D", blast_id, nblast, BLAST_SIZE)
        # The ask goes first (the upload blast would queue it ~1 s in the
        # upload shaper), three times over (the server ignores repeats).
        for _ in range(3):
            send(ask)
        for seq in range(nblast):
            pkt = struct.pack(BLAST_FMT, b"U", blast_id, seq)
            send(pkt + bytes(BLAST_SIZE - len(pkt)))
        next_ask = time.monotonic() + 0.4
        while time.monotonic() < phase_end:
            receive(min(phase_end, time.monotonic() + 0.05))
            now = time.monotonic()
            if not down and now >= next_ask:
                send(ask)
                next_ask = now + 0.4
            down_done = down and now - max(t for t, _ in down) >= BLAST_QUIET_S
            if down_done and up_report is not None:
                break
        rate_down, goodput_down = _rate_from_arrivals(down, BLAST_SIZE)
        rate = {
            "blast_packets": nblast,
            "down_received": len(down), "rate_down_kbit": rate_down, "goodput_down_kbit": goodput_down,
            "up_received": up_report and up_report["received"],
            "rate_up_kbit": up_report and up_report["rate_kbit"],
            "goodput_up_kbit": up_report and up_report["goodput_kbit"],
        }

    values = sorted(rtts.values())
    received = len(values)
    rt_loss = 1.0 - received / n if n else 0.0
    # reorder: probes answered after a later probe (one packet that jumps
    # ahead of k others makes k of them late); overtakes: places where the
    # arrival order steps back, about one per packet that jumped ahead.
    out_of_order, overtakes, highest, previous = 0, 0, -1, -1
    for seq in order:
        if seq < highest:
            out_of_order += 1
        if seq < previous:
            overtakes += 1
        highest = max(highest, seq)
        previous = seq
    result = {
        "sent": n, "received": received, "send_errors": send_errors,
        "rtt_ms": {
            "min": values and round(values[0], 2), "max": values and round(values[-1], 2),
            "p50": values and round(_percentile(values, 0.5), 2),
            "p99": values and round(_percentile(values, 0.99), 2),
            "mean": values and round(statistics.fmean(values), 2),
        },
        "jitter_ms": round(statistics.pstdev(values), 2) if values else None,
        "rt_loss": round(rt_loss, 4),
        "loss_per_dir": round(1.0 - math.sqrt(1.0 - rt_loss), 4),
        "reorder": round(out_of_order / received, 4) if received else None,
        "overtakes": round(overtakes / received, 4) if received else None,
    }
    result.update(rate)
    print(json.dumps(result))
    return 0


def main():
    ap = argparse.ArgumentParser(description="calibration helpers of the chaos lab (see netns.py)")
    sub = ap.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("echo", help="UDP echo server (broker namespace)")
    e.add_argument("--bind", required=True)
    e.add_argument("--timeout", type=float, default=15.0, help="exit after this many seconds")
    p = sub.add_parser("probe", help="prober (client namespace); prints a JSON result")
    p.add_argument("--addr", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--drain", type=float, default=1.0)
    p.add_argument("--rate-kbit", type=int, default=0)
    args = ap.parse_args()
    return _echo_main(args) if args.mode == "echo" else _probe_main(args)


if __name__ == "__main__":
    sys.exit(main())
