"""Limits from [limits] in the config: bounded session queues (and the drop counter in $SYS), QoS 0 dropped
first, Maximum Packet Size in both directions, client id / topic length and depth, subscription quota,
outbound window, keep alive and session expiry caps, slow readers."""
import re
import socket
import time

import pytest

from helpers import (DISCONNECT, PUBACK, PUBLISH, P_MAXIMUM_PACKET_SIZE, P_RECEIVE_MAXIMUM, P_SESSION_EXPIRY,
                     V311, ConnectionClosed, RawClient, clients, mqtt_ack, mqtt_connect, mqtt_publish, mqtt_subscribe,  # noqa: F401
                     props, unique_id, wait_for)

SYS_1S = '[sys]\ninterval = "1s"'


class SysWatcher:
    """Follows one numeric $SYS topic (republished every second with [sys] interval = "1s")."""

    def __init__(self, port, clients, topic):
        self.c = clients(port, version=V311)
        assert self.c.subscribe(topic, qos=0) == [0]
        self.last = None

    def value(self):
        while not self.c.messages.empty():
            self.last = int(self.c.messages.get_nowait().payload.split()[0])
        return self.last

    def wait_at_least(self, n, timeout=4):
        ok = wait_for(lambda: self.value() is not None and self.last >= n, timeout, 0.05)
        assert ok, "counter at %r, expected >= %d" % (self.last, n)
        return self.last


def test_offline_queue_bounded_and_drops_counted(make_broker, clients):
    b = make_broker(limits="max_queued_messages = 5", extra=SYS_1S)
    dropped = SysWatcher(b.port, clients, "$SYS/broker/messages/dropped")
    assert dropped.wait_at_least(0) == 0
    topic = unique_id("q")
    cid = unique_id("offline")
    sub = clients(b.port, client_id=cid, version=V311, clean=False)
    assert sub.subscribe(topic, qos=1) == [1]
    sub.disconnect()
    pub = clients(b.port)
    for i in range(12):
        pub.publish(topic, "m%d" % i, qos=1)  # every one is acknowledged to the publisher
    sub = clients(b.port, client_id=cid, version=V311, clean=False)
    assert sub.session_present
    got = [m.payload.decode() for m in sub.get_n(5)]
    assert got == ["m%d" % i for i in range(5)]  # the oldest are kept, newer ones dropped
    sub.expect_none(0.5)
    assert dropped.wait_at_least(7) == 7


def test_v5_offline_queue_bounded(make_broker, clients):
    b = make_broker(limits="max_queued_messages = 3")
    topic = unique_id("q")
    cid = unique_id("offline5")
    sub = clients(b.port, client_id=cid, properties=props(SessionExpiryInterval=60))
    assert sub.subscribe(topic, qos=2) == [2]
    sub.disconnect()
    pub = clients(b.port)
    for i in range(3):
        pub.publish(topic, "zero%d" % i, qos=0)  # QoS 0 is not queued for offline sessions
    for i in range(6):
        pub.publish(topic, "m%d" % i, qos=2 if i % 2 else 1)
    # (The QoS 1/2 handshakes also prove the broker handled the QoS 0 messages before we reconnect.)
    sub = clients(b.port, client_id=cid, clean=False, properties=props(SessionExpiryInterval=60))
    assert sub.session_present
    # Paho hands a QoS 2 message over only after PUBREL, so compare without order.
    assert sorted(m.payload for m in sub.get_n(3)) == [b"m0", b"m1", b"m2"]
    sub.expect_none(0.5)


def test_queue_bytes_bounded(make_broker, clients):
    b = make_broker(limits='max_queued_bytes = "4KiB"')
    topic = unique_id("q")
    cid = unique_id("bytes")
    sub = clients(b.port, client_id=cid, version=V311, clean=False)
    assert sub.subscribe(topic, qos=1) == [1]
    sub.disconnect()
    pub = clients(b.port)
    for i in range(20):
        pub.publish(topic, bytes([65 + i]) * 1000, qos=1)
    sub = clients(b.port, client_id=cid, version=V311, clean=False)
    got = []
    while True:
        try:
            got.append(sub.get(0.7).payload)
        except AssertionError:
            break
    assert 1 <= len(got) <= 4, len(got)  # 4 KiB holds at most 4 payloads of 1000 bytes
    assert got == [bytes([65 + i]) * 1000 for i in range(len(got))]


def test_qos0_dropped_first_when_queue_full(make_broker, clients):
    b = make_broker(limits="max_queued_messages = 4", extra=SYS_1S)
    dropped = SysWatcher(b.port, clients, "$SYS/broker/messages/dropped")
    topic = unique_id("mix")
    # A v5 subscriber with Receive Maximum 1 that does not ack yet: after its first message everything
    # else queues in its (online) session.
    sub = clients.raw(b.port)
    sub.connect(unique_id("slow"), props={P_RECEIVE_MAXIMUM: 1})
    assert sub.subscribe([(topic, 1)]).reasons == [1]
    pub = clients.raw(b.port)
    pub.connect(unique_id("pub"))
    pid = iter(range(1, 100))
    pub.publish(topic, b"m1", qos=1, packet_id=next(pid))
    first = sub.expect(PUBLISH)
    assert first.payload == b"m1"
    # Queue (limit 4): m2 q1 q2 m3 -> m4 evicts q1 -> m5 evicts q2 -> q3 dropped -> m6 dropped.
    for payload, qos in [(b"m2", 1), (b"q1", 0), (b"q2", 0), (b"m3", 1), (b"m4", 1), (b"m5", 1), (b"q3", 0),
                         (b"m6", 1)]:
        pub.publish(topic, payload, qos=qos, packet_id=next(pid))
    got = [first.payload]
    last = first
    while True:
        sub.send(mqtt_ack(PUBACK, last.packet_id))
        try:
            last = sub.expect(PUBLISH, timeout=0.7)
        except socket.timeout:
            break
        got.append(last.payload)
    assert got == [b"m1", b"m2", b"m3", b"m4", b"m5"]
    assert dropped.wait_at_least(4) == 4


def test_max_inflight_caps_outbound_window(make_broker, clients):
    b = make_broker(limits="max_inflight = 2")
    topic = unique_id("win")
    sub = clients.raw(b.port)
    sub.connect(unique_id("w"), props={P_RECEIVE_MAXIMUM: 50})
    assert sub.subscribe([(topic, 1)]).reasons == [1]
    pub = clients(b.port)
    for i in range(5):
        pub.publish(topic, "w%d" % i, qos=1)
    p1 = sub.expect(PUBLISH)
    p2 = sub.expect(PUBLISH)
    assert sub.no_packet(0.4)  # window of 2
    sub.send(mqtt_ack(PUBACK, p1.packet_id))
    p3 = sub.expect(PUBLISH)
    assert sub.no_packet(0.3)
    for p in (p2, p3):
        sub.send(mqtt_ack(PUBACK, p.packet_id))
    p4, p5 = sub.expect(PUBLISH), sub.expect(PUBLISH)
    assert [p.payload for p in (p1, p2, p3, p4, p5)] == [b"w%d" % i for i in range(5)]


def test_client_maximum_packet_size_respected(broker, clients):
    topic = unique_id("mps")
    small = clients(broker.port, properties=props(MaximumPacketSize=200))
    assert small.subscribe(topic, qos=1) == [1]
    normal = clients(broker.port)
    assert normal.subscribe(topic, qos=1) == [1]
    pub = clients(broker.port)
    pub.publish(topic, b"a" * 50, qos=1)
    pub.publish(topic, b"B" * 500, qos=1)  # too large for `small`: discarded for it (MQTT-3.1.2-25)
    pub.publish(topic, b"c" * 60, qos=0)
    pub.publish(topic, b"D" * 300, qos=0)
    pub.publish(topic, b"e" * 70, qos=1)
    assert [m.payload for m in small.get_n(3)] == [b"a" * 50, b"c" * 60, b"e" * 70]
    small.expect_none(0.4)
    assert [len(m.payload) for m in normal.get_n(5)] == [50, 500, 60, 300, 70]


def test_client_maximum_packet_size_exact_boundary(broker, clients):
    topic = "mps/" + unique_id("b")
    sub = clients.raw(broker.port)
    sub.connect(unique_id("edge"), props={P_MAXIMUM_PACKET_SIZE: 100})
    assert sub.subscribe([(topic, 0)]).reasons == [0]
    pub = clients(broker.port)
    # QoS 0 v5 PUBLISH to sub: 1 + 1 (remaining length) + 2 + len(topic) + 1 (no properties) + payload.
    fit = 100 - (1 + 1 + 2 + len(topic) + 1)
    pub.publish(topic, b"x" * (fit + 1), qos=0)
    pub.publish(topic, b"y" * fit, qos=0)
    p = sub.expect(PUBLISH)
    assert p.payload == b"y" * fit
    assert sub.no_packet(0.3)


def test_retained_too_large_for_client_not_sent(broker, clients):
    topic = unique_id("ret")
    pub = clients(broker.port)
    pub.publish(topic + "/big", b"R" * 1000, qos=1, retain=True)
    pub.publish(topic + "/small", b"r", qos=1, retain=True)
    sub = clients(broker.port, properties=props(MaximumPacketSize=300))
    assert sub.subscribe(topic + "/#", qos=1) == [1]
    m = sub.get()
    assert (m.topic, m.payload) == (topic + "/small", b"r")
    sub.expect_none(0.4)
    pub.publish(topic + "/big", b"", qos=1, retain=True)
    pub.publish(topic + "/small", b"", qos=1, retain=True)


def test_max_client_id_length(make_broker, clients):
    b = make_broker(limits="max_client_id_length = 23")
    clients.raw(b.port).connect("c" * 23)
    clients.raw(b.port, version=4).connect("d" * 23)
    clients.raw(b.port).connect("e" * 24, expect_reason=0x85)
    c = clients.raw(b.port, version=4)
    c.connect("f" * 24, expect_reason=0x02)
    assert c.is_closed(2)
    # An id the broker assigns is not subject to the limit the client's own id is.
    ack = clients.raw(b.port).connect("")
    assert ack.props.get(0x12, "").startswith("parley-")


def test_topic_length_and_levels(make_broker, clients):
    b = make_broker(limits="max_topic_length = 32\nmax_topic_levels = 4")
    c = clients.raw(b.port)
    c.connect(unique_id("lim"))
    ack = c.subscribe([("a/b/c/d", 1), ("a/b/c/d/e", 1), ("a/+/+/#", 0), ("+/+/+/+/#", 0), ("x" * 32, 1),
                       ("x" * 33, 1), ("$share/g/a/b/c/d", 1), ("$share/g/a/b/c/d/e", 1)], packet_id=2)
    assert ack.reasons == [1, 0x8F, 0, 0x8F, 1, 0x8F, 1, 0x8F]
    assert c.publish("a/b/c/d", b"ok", qos=1, packet_id=3).reason in (0, 0x10)
    assert c.publish("x" * 32, b"ok", qos=1, packet_id=4).reason in (0, 0x10)
    c.send(mqtt_publish("a/b/c/d/e", b"deep", qos=1, packet_id=5))
    packets = c.recv_until_closed(3)
    assert [(p.type, p.reason) for p in packets if p.type != PUBLISH] == [(DISCONNECT, 0x90)]
    c2 = clients.raw(b.port)
    c2.connect(unique_id("lim"))
    c2.send(mqtt_publish("y" * 33, b"long", qos=0))
    assert [(p.type, p.reason) for p in c2.recv_until_closed(3)] == [(DISCONNECT, 0x90)]
    c3 = clients.raw(b.port, version=4)
    c3.connect(unique_id("lim"))
    assert c3.subscribe([("a/b/c/d/e", 1), ("a/b", 1)]).reasons == [0x80, 1]
    c3.send(mqtt_publish("a/b/c/d/e", b"deep", version=4))
    assert c3.recv_until_closed(3) == []


def test_max_subscriptions_per_client(make_broker, clients):
    b = make_broker(limits="max_subscriptions_per_client = 2")
    c = clients.raw(b.port)
    c.connect(unique_id("quota"))
    assert c.subscribe([("a", 1), ("b", 1), ("c", 1)], packet_id=1).reasons == [1, 1, 0x97]
    assert c.subscribe([("a", 2)], packet_id=2).reasons == [2]  # replacing one is not a new one
    assert c.unsubscribe(["b"], packet_id=3).reasons == [0]
    assert c.subscribe([("c", 0)], packet_id=4).reasons == [0]
    c4 = clients.raw(b.port, version=4)
    c4.connect(unique_id("quota"))
    assert c4.subscribe([("a", 1), ("b", 1), ("c", 1)]).reasons == [1, 1, 0x80]


def test_server_keep_alive_and_session_expiry_caps(make_broker, clients):
    b = make_broker(limits='max_keep_alive = "60s"\nmax_session_expiry = "10s"')
    c = clients.raw(b.port)
    ack = c.connect(unique_id("caps"), keepalive=120, props={P_SESSION_EXPIRY: 100})
    assert ack.props[0x13] == 60  # Server Keep Alive
    assert ack.props[P_SESSION_EXPIRY] == 10
    c2 = clients.raw(b.port)
    ack = c2.connect(unique_id("caps"), keepalive=30, props={P_SESSION_EXPIRY: 5})
    assert 0x13 not in ack.props and P_SESSION_EXPIRY not in ack.props


def test_keep_alive_timeout(broker, clients):
    c = clients.raw(broker.port)
    c.connect(unique_id("ka"), keepalive=1)
    t0 = time.time()
    packets = c.recv_until_closed(5)
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, 0x8D)]
    assert 1.4 <= time.time() - t0 <= 3.5


@pytest.mark.parametrize("size", [65536, 2048])
def test_slow_reader_cut_off_without_hurting_others(make_broker, clients, size):
    b = make_broker(limits='max_outbound_buffer = "64KiB"')
    topic = unique_id("flood")
    other = clients(b.port)
    assert other.subscribe(topic, qos=0) == [0]
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", b.port))
    s.sendall(mqtt_connect("never-reads", version=4))
    s.settimeout(3)
    assert s.recv(4) == b"\x20\x02\x00\x00"
    s.sendall(mqtt_subscribe(1, [(topic, 0)], version=4))
    time.sleep(0.2)
    pub = clients(b.port)
    payload = b"z" * size
    sent = 0
    batch = (1 << 20) // size
    # Up to 24 MB towards a reader that takes nothing (the kernel alone buffers up to ~4 MB per socket).
    while sent < 24 * batch and "not reading" not in b.log():
        for _ in range(batch):
            pub.publish(topic, payload, qos=0, wait=False)
        pub.publish(topic, b"sync", qos=1)
        sent += batch + 1
    assert wait_for(lambda: "not reading" in b.log(), 3), b.log()[-2000:]
    assert _read_until_closed(s), "the slow reader's connection was not closed"
    # The other subscriber got everything.
    pub.publish(topic, b"end", qos=1)
    n = 0
    while other.get(5).payload != b"end":
        n += 1
    assert n == sent
    assert b.alive()


def _read_until_closed(s, timeout=5):
    s.settimeout(timeout)
    try:
        while s.recv(1 << 20):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_listener_max_connections(make_broker, clients):
    b = make_broker(config_text="""\
[[listener]]
name = "mqtt"
bind = "127.0.0.1"
port = 0
max_connections = 2
""")
    c1 = clients.raw(b.port)
    c1.connect(unique_id("mc"))
    c2 = clients.raw(b.port)
    c2.connect(unique_id("mc"))
    c3 = clients.raw(b.port)
    c3.send(mqtt_connect(unique_id("mc"), version=5))
    try:
        packets = c3.recv_until_closed(3)
    except socket.timeout:
        raise AssertionError("third connection accepted although listener.max_connections = 2")
    assert all(p.type != 2 or p.reason != 0 for p in packets), packets
    c1.disconnect()
    time.sleep(0.2)
    c4 = clients.raw(b.port)
    c4.connect(unique_id("mc"))


def test_broker_wide_max_connections_across_listeners(make_broker, clients):
    b = make_broker(config_text="""\
[[listener]]
name = "a"
bind = "127.0.0.1"
port = 0
[[listener]]
name = "b"
bind = "127.0.0.1"
port = 0
[limits]
max_connections = 2
""")
    ports = [int(p) for p in re.findall(r"listening on 127\.0\.0\.1:(\d+)", b.log())]
    assert len(ports) == 2
    c1 = clients.raw(ports[0])
    c1.connect(unique_id("mc"))
    c2 = clients.raw(ports[1])
    c2.connect(unique_id("mc"))
    c3 = clients.raw(ports[1])
    c3.send(mqtt_connect(unique_id("mc"), version=5))
    assert c3.is_closed(3), "a third connection accepted although limits.max_connections = 2"
    assert "the broker holds its limit of 2 connections" in b.log()
    c1.disconnect()
    assert wait_for(lambda: _connects(ports[1]), timeout=3)


def _connects(port):
    c = RawClient(port)
    try:
        c.send(mqtt_connect(unique_id("mc"), version=5))
        return c.recv(2).reason == 0
    except (ConnectionClosed, socket.timeout):
        return False
    finally:
        c.close()


def _nofile(soft, hard):
    def apply():
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return apply


def test_open_file_limit_raised_to_hard_limit(make_broker):
    """A soft open-file limit below the hard one would cap connections for nothing: parleyd raises it."""
    b = make_broker(preexec_fn=_nofile(100, 200))
    assert "open files: limit raised from 100 to 200" in b.log()
    with open("/proc/%d/limits" % b.proc.pid) as f:
        line = next(ln for ln in f if ln.startswith("Max open files"))
    assert line.split()[3:5] == ["200", "200"], line


def _ubsan_vptr_checked():
    """True for a parleyd built with UBSan's vptr check. That check, on a cache miss, probes memory through a
    pipe: with no file descriptor left it reports a valid object as having an "invalid vptr" (a known
    sanitizer limitation, not a broker bug), so descriptor exhaustion cannot be tested under it."""
    from conftest import PARLEYD
    with open(PARLEYD, "rb") as f:
        return b"__ubsan_handle_dynamic_type_cache_miss" in f.read()


@pytest.mark.skipif(_ubsan_vptr_checked(), reason="UBSan's vptr check needs free file descriptors (false positives)")
def test_connections_beyond_open_file_limit_refused_broker_serves_on(make_broker, clients):
    """More connections than file descriptors: the extra ones are closed (or wait while the listener pauses), a
    warning says why, the broker keeps serving the clients it has and accepts new ones once descriptors are free
    again. Bounded: every socket operation has a short timeout and the flood stops after 10 s."""
    # Only the MQTT listener: the files listener's loop and socket would take descriptors of the 64 too.
    b = make_broker(extra="[files]\nenabled = false\n", preexec_fn=_nofile(64, 64))
    keeper = clients(b.port, version=V311)
    assert keeper.subscribe("fd/t", qos=1) == [1]
    socks, refused = [], 0
    deadline = time.time() + 10
    for i in range(120):
        if time.time() > deadline:
            break
        try:
            s = b.connect_raw(timeout=0.5)
            s.sendall(mqtt_connect("fd-%03d" % i, version=V311))
            socks.append(s)
        except OSError:
            refused += 1
    for s in socks:  # an accepted one answers CONNACK; a refused one reads EOF or a reset, or nothing
        try:
            s.settimeout(0.5)
            if s.recv(4)[:1] != b"\x20":
                refused += 1
        except OSError:
            refused += 1
    assert refused > 0, "the limit of 64 descriptors should have refused some of 120 connections"
    assert wait_for(lambda: "near the open-file limit" in b.log() or "cannot accept" in b.log(), 3, 0.05), \
        b.log()[-2000:]
    assert b.alive()
    # Once descriptors are free again (a paused listener resumes on the next tick), a new client connects, and
    # the first one still gets its messages.
    for s in socks:
        s.close()
    pub = None
    deadline = time.time() + 15
    while pub is None:
        try:
            pub = clients(b.port, version=V311)
        except (OSError, AssertionError):
            assert time.time() < deadline, "no connection accepted after the flood ended\n" + b.log()[-2000:]
            time.sleep(0.2)
    pub.publish("fd/t", b"after", qos=1).wait_for_publish(5)
    m = keeper.messages.get(timeout=5)
    assert m.payload == b"after"
