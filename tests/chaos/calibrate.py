#!/usr/bin/python3
"""Self-check of the chaos network lab (netns.py + netem.py).

    /usr/bin/python3 tests/chaos/calibrate.py [--profiles good4g,bad3g,edge,flaky]
        [--seconds 5] [--prefix pchk] [--check] [--json FILE]

Sets up a Lab in a temporary directory, calibrates every link at once (each
in its own thread: RTT, jitter, loss per direction, reordering, and the
delivered rate each way where the profile limits it), prints configured
against measured, tears the lab down and exits 0 (1 if something failed).

With --check it also verifies, before the calibration, what the harness
relies on:
  * a TCP connection works through every profile (20 kB each way);
  * link_down() makes TCP connects in that namespace fail at once, packets the
    broker sends meanwhile are lost (netem's write_errors), and link_up()
    brings the routes back and TCP works again;
  * heal() gives every link RTT < 2 ms (p50; p99 < 10 ms, the tail being
    CPU scheduling) and no loss; reshape() brings the delay back;
  * teardown() leaves no namespace with the prefix and no netem process.

The default prefix is "pchk", not the Lab's "pch", because setting up a lab
first removes whatever another lab with the same prefix left behind -- which
would be a harness run in progress.

Must run as root (namespaces, tun devices).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402

TCP_PORT = 18830
TCP_BYTES = 20000


# -- helpers run inside the namespaces (hidden modes of this script) ---------

def _tcp_server(args):
    """Echo every connection's bytes back; exit after --timeout seconds."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", args.port))
    srv.listen(64)
    print("ready", flush=True)
    deadline = time.monotonic() + args.timeout

    def serve(conn):
        conn.settimeout(max(deadline - time.monotonic(), 0.1))
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    while time.monotonic() < deadline:
        srv.settimeout(max(deadline - time.monotonic(), 0.1))
        try:
            conn, _ = srv.accept()
        except OSError:
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
    return 0


def _tcp_client(args):
    """Connect, send --bytes, read them back; print a JSON line."""
    t0 = time.monotonic()
    res = {"ok": False}
    try:
        conn = socket.create_connection((args.addr, args.port), timeout=args.timeout)
        res["connect_ms"] = round((time.monotonic() - t0) * 1000, 1)
        conn.settimeout(max(args.timeout - (time.monotonic() - t0), 0.1))
        payload = os.urandom(args.bytes)
        threading.Thread(target=conn.sendall, args=(payload,), daemon=True).start()
        got = bytearray()
        while len(got) < len(payload):
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += chunk
        conn.close()
        res["ok"] = bytes(got) == payload
        res["echoed"] = len(got)
    except OSError as e:
        res["error"] = "%s: %s" % (type(e).__name__, e)
    res["ms"] = round((time.monotonic() - t0) * 1000, 1)
    print(json.dumps(res))
    return 0


# -- checks ------------------------------------------------------------------

class Checker:
    def __init__(self):
        self.failures = []

    def expect(self, cond, what):
        print("  %s %s" % ("ok  " if cond else "FAIL", what), flush=True)
        if not cond:
            self.failures.append(what)


def _helper(lab, ns, mode_argv, timeout):
    """Run a hidden mode of this script in NS to completion (bounded); its JSON line."""
    proc = lab.popen(ns, [netns.PYTHON, os.path.abspath(__file__)] + mode_argv,
                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        netns._kill(proc, grace=0.5)
        return {"ok": False, "error": "helper timed out"}
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"ok": False, "error": "helper said: %s %s" % (out.strip(), err.strip())}


def _tcp(lab, i, timeout):
    return _helper(lab, lab.client_ns(i), ["_tcp-client", "--addr", lab.broker_addr(i), "--port",
                                           str(TCP_PORT), "--bytes", str(TCP_BYTES),
                                           "--timeout", str(timeout)], timeout + 3)


def _parallel(fn, items):
    results = {}

    def run(item):
        try:
            results[item] = fn(item)
        except Exception as e:  # reported, not raised from a thread
            results[item] = {"error": "%s: %s" % (type(e).__name__, e)}

    threads = [threading.Thread(target=run, args=(item,)) for item in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def run_checks(lab, chk):
    n = len(lab.profiles)
    server = lab.popen(lab.broker_ns, [netns.PYTHON, os.path.abspath(__file__), "_tcp-server",
                                       "--port", str(TCP_PORT), "--timeout", "120"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        chk.expect(netns._read_line(server.stdout, 5.0) == "ready\n", "TCP echo server started in %s" % lab.broker_ns)

        print("TCP through every profile (%d bytes each way):" % TCP_BYTES)
        res = _parallel(lambda i: _tcp(lab, i, 25), range(n))
        for i in range(n):
            r = res[i]
            chk.expect(r.get("ok"), "%-8s connect %s ms, echo done in %s ms %s" % (
                lab.profiles[i], r.get("connect_ms"), r.get("ms"), r.get("error", "")))

        i = n - 1 if "flaky" not in lab.profiles else lab.profiles.index("flaky")
        print("link_down / link_up on link %d (%s):" % (i, lab.profiles[i]))
        before = lab.counters().get(lab.link_name(i), {}).get("write_errors", 0)
        lab.link_down(i)
        r = _tcp(lab, i, 5)
        chk.expect(not r.get("ok") and r.get("ms", 1e9) < 500,
                   "while down: TCP fails in %s ms (%s)" % (r.get("ms"), r.get("error")))
        # The broker keeps sending to the client: netem's writes fail, packets lost.
        lab.popen(lab.broker_ns, [netns.PYTHON, "-c",
                                  "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                                  "for _ in range(20): s.sendto(b'x' * 100, ('%s', 9))" % lab.client_addr(i)]).wait(10)
        time.sleep(1.2)   # the link's delay, then the next stats write
        after = lab.counters().get(lab.link_name(i), {}).get("write_errors", 0)
        chk.expect(after - before >= 15, "while down: broker -> client packets lost (write_errors +%d)" % (after - before))
        lab.link_up(i)
        routes = netns._run(["ip", "-n", lab.client_ns(i), "route"]).stdout
        chk.expect(("%s dev %s" % (lab.broker_addr(i), lab.client_if(i))) in routes and "default dev" in routes,
                   "after up: peer and default routes back")
        r = _tcp(lab, i, 25)
        chk.expect(r.get("ok"), "after up: TCP works (connect %s ms)" % r.get("connect_ms"))
        timer = lab.flap(i, 0.5)
        r = _tcp(lab, i, 5)
        chk.expect(not r.get("ok"), "flap(): down at once (%s)" % r.get("error"))
        timer.join(3)
        r = _tcp(lab, i, 25)
        chk.expect(r.get("ok"), "flap(): up again after 0.5 s")
    finally:
        netns._kill(server, grace=0.5)

    print("heal():")
    t0 = time.monotonic()
    lab.heal()
    print("  (took %.2f s)" % (time.monotonic() - t0))
    res = _parallel(lambda i: lab.calibrate(i, seconds=2), range(n))
    for i in range(n):
        r = res[i]
        rtt = r.get("rtt_ms", {})
        # p50 is the healed link; the tail is CPU scheduling on a busy 2-core box
        # (8 helper interpreters start at once), so it only has to show no stall.
        chk.expect(r.get("received") == r.get("sent") and (rtt.get("p50") or 99) < 2.0
                   and (rtt.get("p99") or 99) < 10.0,
                   "%-8s healed: RTT p50 %s p99 %s max %s ms, lost %s of %s" % (
                       lab.profiles[i], rtt.get("p50"), rtt.get("p99"), rtt.get("max"),
                       (r.get("sent") or 0) - (r.get("received") or 0), r.get("sent")))
    print("reshape():")
    lab.reshape()
    r = lab.calibrate(0, seconds=1)
    want = 2 * lab.profile(0)["delay_ms"]
    chk.expect((r["rtt_ms"]["p50"] or 0) >= 0.8 * want,
               "%s shaped again: RTT p50 %s ms (configured %d)" % (lab.profiles[0], r["rtt_ms"]["p50"], want))


def check_teardown(lab, chk):
    listing = netns._run(["ip", "netns", "list"]).stdout.split()
    left = [ns for ns in listing if ns.startswith(lab.prefix + "-")]
    chk.expect(not left, "teardown: no namespace left with prefix %s %s" % (lab.prefix, left or ""))
    strays = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(b"netem.py") for a in argv) and lab.prefix.encode() in argv:
                strays.append(entry)
    chk.expect(not strays, "teardown: no netem process left %s" % (strays or ""))
    links = netns._run(["ip", "-br", "link"]).stdout
    chk.expect(not any(l.split()[0].startswith(lab.prefix) for l in links.splitlines() if l.split()),
               "teardown: no %s* device in the root namespace" % lab.prefix)


# -- report --------------------------------------------------------------------

def _fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def print_table(results):
    head = ("profile", "RTT cfg", "p50", "p99", "min", "jitter", "loss/dir cfg", "meas",
            "reorder cfg", "meas", "overtakes", "rate cfg", "down", "up", "secs")
    rows = []
    for r in results:
        c = r["configured"]
        rtt = r["rtt_ms"]
        rows.append((
            r["link"], "%d±%d" % (2 * c["delay_ms"], 2 * c["jitter_ms"]),
            _fmt(rtt["p50"], "%.1f"), _fmt(rtt["p99"], "%.1f"), _fmt(rtt["min"], "%.1f"),
            _fmt(r["jitter_ms"], "%.1f"),
            "%.1f%%" % (100 * c["loss"]), "%.1f%%" % (100 * r["loss_per_dir"]),
            "%.0f%%" % (100 * c["reorder"]), _fmt(r["reorder"] and 100 * r["reorder"], "%.1f%%"),
            _fmt(r["overtakes"] and 100 * r["overtakes"], "%.1f%%"),
            "%d" % c["rate_kbit"] if c["rate_kbit"] else "-",
            _fmt(r.get("rate_down_kbit")), _fmt(r.get("rate_up_kbit")),
            "%.1f" % r["elapsed_s"],
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    print(line(head))
    for row in rows:
        print(line(row))
    print("RTT in ms (configured 2 x one-way delay ± 2 x jitter); loss per direction = "
          "1 - sqrt(1 - round-trip loss) of %s probes; reorder: probes answered after a later one; "
          "overtakes: steps back in the arrival order; rate (down/up) in kbit/s at the IP layer" %
          "/".join(str(r["sent"]) for r in results))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profiles", default=",".join(netns.PROFILES))
    ap.add_argument("--seconds", type=float, default=5.0, help="probing time per link")
    ap.add_argument("--prefix", default="pchk", help="namespace/device prefix (not the harness's)")
    ap.add_argument("--check", action="store_true", help="also run the functional checks")
    ap.add_argument("--json", help="write the raw calibration results here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    if len(sys.argv) > 1 and sys.argv[1].startswith("_tcp-"):
        hp = argparse.ArgumentParser()
        hp.add_argument("mode")
        hp.add_argument("--addr")
        hp.add_argument("--port", type=int)
        hp.add_argument("--bytes", type=int, default=TCP_BYTES)
        hp.add_argument("--timeout", type=float, default=20)
        hargs = hp.parse_args()
        return _tcp_server(hargs) if hargs.mode == "_tcp-server" else _tcp_client(hargs)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("calibrate.py: must run as root", file=sys.stderr)
        return 2
    profiles = [p for p in args.profiles.split(",") if p]
    workdir = tempfile.mkdtemp(prefix="parley-chaos-cal-")
    lab = netns.Lab(profiles, workdir, prefix=args.prefix)
    chk = Checker()
    try:
        t0 = time.monotonic()
        lab.setup()
        print("lab up in %.2f s: %s" % (time.monotonic() - t0, ", ".join(
            "%s=%s" % (lab.client_ns(i), p) for i, p in enumerate(profiles))), flush=True)
        if args.check:
            run_checks(lab, chk)
            lab.heal()
            lab.reshape()
        print("calibrating %d link(s) for %.0f s each, in parallel ..." % (len(profiles), args.seconds), flush=True)
        res = _parallel(lambda i: lab.calibrate(i, seconds=args.seconds), range(len(profiles)))
        results = []
        for i in range(len(profiles)):
            if "error" in res[i] and "rtt_ms" not in res[i]:
                chk.expect(False, "calibrate %s: %s" % (profiles[i], res[i]["error"]))
            else:
                results.append(res[i])
                chk.expect(res[i]["elapsed_s"] <= args.seconds + 5,
                           "calibrate %s bounded: %.1f s" % (profiles[i], res[i]["elapsed_s"]))
        if results:
            print_table(results)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)
        print("netem counters:", json.dumps(lab.counters()))
    finally:
        lab.teardown()
    if args.check:
        check_teardown(lab, chk)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    if chk.failures:
        print("%d check(s) failed" % len(chk.failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
