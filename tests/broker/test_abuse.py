"""Hostile and careless clients: bans, per-address limits, flapping, publish rate limits, slow loris, connection
floods and overload. Each test checks the refusal the client sees and that well-behaved clients keep their
service. Extra source addresses (127.0.0.2, ...) are loopback aliases: every 127.0.0.0/8 address is local."""
import signal
import socket
import threading
import time

import pytest

from helpers import (CONNACK, PUBLISH, ConnectionClosed, RawClient, mqtt_connect, mqtt_publish, unique_id,
                     wait_for)


class SourceClient(RawClient):
    """A RawClient whose socket is bound to a chosen loopback source address."""

    def __init__(self, port, source, version=5, timeout=5):
        self.version = version
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pending = []


def closed_without_reply(port, source, timeout=3):
    """Connects from `source`, sends CONNECT, and returns True when the broker closes without a CONNACK."""
    c = SourceClient(port, source)
    try:
        c.send(mqtt_connect("probe", 5))
        c.recv(timeout)
        return False
    except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
        return True
    finally:
        c.close()


def test_banned_address_client_id_and_user(make_broker, clients):
    bans = ('address 127.0.0.3 reason="abuse"\n'
            "address 127.0.9.0/24\n"
            'clientid "bad device"\n'
            "username mallory until=2099-01-01T00:00:00Z\n"
            "username expired-ban until=2001-01-01T00:00:00Z\n")
    b = make_broker(auth='ban_file = "bans"', files={"bans": bans})
    assert closed_without_reply(b.port, "127.0.0.3")
    assert closed_without_reply(b.port, "127.0.9.77")
    assert not closed_without_reply(b.port, "127.0.0.4")

    c = clients.raw(b.port, version=5)
    assert c.connect("bad device", expect_reason=None).reason == 0x8A  # Banned
    c = clients.raw(b.port, version=4)
    assert c.connect("bad device", expect_reason=None).reason == 5  # 3.1.1: not authorized
    c = clients.raw(b.port, version=5)
    assert c.connect("ok-id", username="mallory", expect_reason=None).reason == 0x8A
    clients.raw(b.port, version=5).connect("ok-id2", username="expired-ban")  # an expired ban: allowed
    assert "banned address 127.0.0.3 (abuse)" in b.log()


def test_bad_ban_file_stops_the_broker_with_its_line(make_broker):
    with pytest.raises(RuntimeError, match=r"bans:2:"):
        make_broker(auth='ban_file = "bans"', files={"bans": "address 127.0.0.1\naddress 300.1.1.1\n"})


def test_per_address_connection_limit(make_broker, clients):
    b = make_broker(limits="max_connections_per_address = 3")
    held = []
    for i in range(3):
        c = SourceClient(b.port, "127.0.0.5")
        c.connect("held-%d" % i)
        held.append(c)
    assert closed_without_reply(b.port, "127.0.0.5")
    assert "too many connections from this address" in b.log()
    assert not closed_without_reply(b.port, "127.0.0.6")  # another address is not affected
    held.pop().close()
    # The slot comes back once the broker has seen the close.
    assert wait_for(lambda: not closed_without_reply(b.port, "127.0.0.5"), timeout=3)
    for c in held:
        c.close()


def test_connection_flood_from_one_address_does_not_slow_others(make_broker, clients):
    """One address opens connections as fast as it can while a client elsewhere measures round trips."""
    b = make_broker(limits="connection_rate_per_address = 20\nconnection_burst_per_address = 20")
    sub = clients.raw(b.port)
    sub.connect("victim-sub")
    sub.subscribe([("lat/#", 0)])
    pub = clients.raw(b.port)
    pub.connect("victim-pub")

    stop = threading.Event()
    counts = {"opened": 0, "refused": 0}

    def flood():
        deadline = time.time() + 4
        while not stop.is_set() and time.time() < deadline and counts["opened"] < 3000:
            try:
                s = socket.create_connection(("127.0.0.1", b.port), timeout=2, source_address=("127.0.0.7", 0))
                counts["opened"] += 1
                s.sendall(mqtt_connect(unique_id("flood"), 4))
                s.settimeout(1)
                try:
                    if not s.recv(4):
                        counts["refused"] += 1
                except (ConnectionResetError, socket.timeout):
                    counts["refused"] += 1
                s.close()
            except OSError:
                counts["refused"] += 1

    t = threading.Thread(target=flood)
    t.start()
    rtts = []
    try:
        for i in range(100):
            t0 = time.time()
            pub.publish("lat/x", b"%d" % i, qos=0)
            p = sub.expect(PUBLISH, timeout=5)
            rtts.append(time.time() - t0)
            assert p.payload == b"%d" % i
            time.sleep(0.02)
    finally:
        stop.set()
        t.join()
    rtts.sort()
    p99 = rtts[98]
    print("flood: %(opened)d connections opened, %(refused)d refused;" % counts,
          "other client's round trip p50 %.2f ms, p99 %.2f ms" % (rtts[49] * 1000, p99 * 1000))
    assert counts["refused"] > 0, counts  # the rate limit refused part of the flood
    assert p99 < 0.25, "p99 round trip %.3f s during the flood (%r)" % (p99, counts)
    assert "connection rate exceeded for this address" in b.log()


def test_flapping_client_id_is_refused_for_a_while(make_broker, clients):
    b = make_broker(limits='flapping_max_connects = 3\nflapping_window = "60s"\nflapping_ban = "2s"')
    for _ in range(3):
        c = clients.raw(b.port)
        c.connect("flapper")
        c.disconnect()
    c = clients.raw(b.port)
    assert c.connect("flapper", expect_reason=None).reason == 0x9F  # Connection rate exceeded
    c = clients.raw(b.port, version=4)
    assert c.connect("flapper", expect_reason=None).reason == 3  # 3.1.1: server unavailable
    clients.raw(b.port).connect("someone-else")  # other client ids are not affected
    time.sleep(2.2)
    clients.raw(b.port).connect("flapper")  # the ban has ended
    assert "flapping" in b.log()


def test_publish_rate_limit_throttles_without_loss(make_broker, clients):
    b = make_broker(limits="publish_rate = 100\npublish_burst = 20")
    sub = clients.raw(b.port)
    sub.connect("rl-sub")
    sub.subscribe([("rl/#", 0)])
    pub = clients.raw(b.port)
    pub.connect("rl-pub")
    n = 120
    t0 = time.time()
    pub.send(b"".join(mqtt_publish("rl/x", b"%d" % i) for i in range(n)))
    got = []
    while len(got) < n:
        got.append(sub.expect(PUBLISH, timeout=5).payload)
    elapsed = time.time() - t0
    print("publish rate: %d messages at 100/s (burst 20) delivered in %.2f s" % (n, elapsed))
    assert got == [b"%d" % i for i in range(n)]  # all of them, in order
    # 20 at once, then 100 more at 100/s: about a second.
    assert elapsed > 0.8, elapsed
    assert elapsed < 3, elapsed


def test_slowloris_one_byte_at_a_time_times_out(make_broker):
    b = make_broker(limits='connect_timeout = "2s"')
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    packet = mqtt_connect("slow", 5)
    t0 = time.time()
    closed_at = None
    for i in range(len(packet)):
        try:
            s.sendall(packet[i:i + 1])
            s.settimeout(0.5)
            if s.recv(1) == b"":
                closed_at = time.time()
                break
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            closed_at = time.time()
            break
        if time.time() - t0 > 6:
            break
    s.close()
    assert closed_at is not None, "still open after %.1f s" % (time.time() - t0)
    assert 1.5 < closed_at - t0 < 4.5


@pytest.mark.parametrize("version,reason", [(5, 0x89), (4, 3)])
def test_overload_refuses_new_connections(make_broker, clients, version, reason):
    # A memory watermark far below what any broker uses: overloaded from its first check on.
    b = make_broker(extra='[overload]\nmemory_high = "1MiB"')
    assert wait_for(lambda: "overloaded" in b.log(), timeout=4)
    c = clients.raw(b.port, version=version)
    assert c.connect("late", expect_reason=None).reason == reason


def _asan_built():
    """True for a parleyd built with AddressSanitizer: its allocator keeps freed memory in quarantine (up to
    256 MiB by default), so resident memory says nothing about what the broker holds."""
    from conftest import PARLEYD
    with open(PARLEYD, "rb") as f:
        return b"__asan_init" in f.read()


def _rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def test_client_that_never_reads_is_cut_off_with_memory_bounded(make_broker, clients):
    """A subscriber that stops reading: its queue stays bounded (drops), the broker's memory does not grow with
    what is published to it, and once a write has waited write_timeout it is disconnected. Others are served."""
    b = make_broker(limits='write_timeout = "2s"\nmax_queued_bytes = "4MiB"')
    other = clients.raw(b.port)
    other.connect("reader")
    other.subscribe([("nr/#", 0)])
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", b.port))
    s.sendall(mqtt_connect("never-reads", 4))
    s.settimeout(3)
    assert s.recv(4) == b"\x20\x02\x00\x00"
    s.sendall(bytes([0x82, 9, 0, 1, 0, 4]) + b"nr/#" + bytes([0]))  # SUBSCRIBE nr/# QoS 0
    time.sleep(0.2)
    pub = clients.raw(b.port)
    pub.connect("flooder")
    base_rss = _rss_bytes(b.proc.pid)
    payload = b"x" * 16384
    sent = 0
    t0 = time.time()
    # 64 MiB towards the reader that takes nothing (16 times its queue limit), then wait for the cut.
    while sent < 4096 and time.time() - t0 < 20:
        pub.send(b"".join(mqtt_publish("nr/x", payload) for _ in range(64)))
        sent += 64
        while True:  # the good reader keeps up
            try:
                other.recv(0.001)
            except socket.timeout:
                break
    peak = _rss_bytes(b.proc.pid)
    assert wait_for(lambda: "a write pending for more than 2000 ms" in b.log(), timeout=6), b.log()[-2000:]
    growth = peak - base_rss
    print("never-reads: %d MiB published, broker RSS growth %.1f MiB" % (sent * 16384 >> 20, growth / 2**20))
    if not _asan_built():
        assert growth < 48 * 1024 * 1024, "RSS grew by %d MiB while 64 MiB were published" % (growth >> 20)
    s.settimeout(3)
    closed = False
    try:
        while s.recv(65536):  # what the kernel buffered, then the end
            pass
        closed = True
    except ConnectionResetError:
        closed = True
    except socket.timeout:
        pass  # still open
    s.close()
    assert closed, "the non-reading client was not disconnected"
    pub.publish("nr/end", b"end", qos=1)
    while other.expect(PUBLISH, timeout=5).payload != b"end":
        pass
    assert b.alive()


def test_ban_file_reloaded_on_sighup(make_broker, clients):
    b = make_broker(auth='ban_file = "bans"', files={"bans": "clientid first\n"})
    assert clients.raw(b.port).connect("second", expect_reason=None).reason == 0
    (b.dir / "bans").write_text("clientid first\nclientid second\n")
    b.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "bans reloaded: 2 rules" in b.log(), timeout=3)
    assert clients.raw(b.port).connect("second", expect_reason=None).reason == 0x8A
    # A broken file is refused with its line; the bans in force stay.
    (b.dir / "bans").write_text("clientid first\nbogus line\n")
    b.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "the previous contents stay in force" in b.log(), timeout=3)
    assert "bans:2:" in b.log()
    assert clients.raw(b.port).connect("second", expect_reason=None).reason == 0x8A
