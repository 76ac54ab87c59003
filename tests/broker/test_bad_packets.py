"""Bad input over raw sockets: malformed packets, protocol violations in each state, oversized packets,
CONNECT timeouts and garbage. Each case checks what the broker answers (v5: DISCONNECT with the reason
code of MQTT 5 section 4.13; 3.1.1: the connection is just closed), that the connection is closed, and that a
healthy client connected before the bad one keeps receiving messages (one client never affects another)."""
import random
import socket
import struct
import time

import pytest

from helpers import (CONNACK, DISCONNECT, PINGRESP, PUBACK, PUBREC, P_PAYLOAD_FORMAT, P_SESSION_EXPIRY,  # noqa
                     P_SUBSCRIPTION_ID, P_TOPIC_ALIAS, V5, clients, fixed, mqtt_ack, mqtt_connect, mqtt_disconnect,
                     mqtt_pingreq, mqtt_publish, mqtt_str, mqtt_subscribe, u16, unique_id, varint)


class Healthy:
    """A subscriber and a publisher connected before the misbehaving client; check() proves that both
    are still connected and that messages still flow between them."""

    def __init__(self, port, clients):
        self.topic = unique_id("healthy")
        self.sub = clients(port, client_id=unique_id("hsub"), version=V5)
        assert self.sub.subscribe(self.topic, qos=1) == [1]
        self.pub = clients(port, client_id=unique_id("hpub"), version=V5)
        self.n = 0

    def check(self):
        self.n += 1
        payload = "alive-%d" % self.n
        self.pub.publish(self.topic, payload, qos=1)
        m = self.sub.get(3)
        assert m.payload == payload.encode()
        assert self.sub.disconnect_rc is None and self.pub.disconnect_rc is None


@pytest.fixture
def healthy(broker, clients):
    return Healthy(broker.port, clients)


def connected_raw(clients, port, version=5, **kw):
    c = clients.raw(port, version=version)
    c.connect(unique_id("bad"), **kw)
    return c


def expect_disconnect(c, reason, timeout=3):
    """The broker sends exactly one DISCONNECT with `reason`, then closes the connection."""
    packets = c.recv_until_closed(timeout)
    assert [p.type for p in packets] == [DISCONNECT], packets
    assert packets[0].reason == reason, "DISCONNECT reason %#x, want %#x" % (packets[0].reason, reason)
    return packets[0]


def expect_silent_close(c, timeout=3):
    packets = c.recv_until_closed(timeout)
    assert packets == [], packets


def raw_publish(topic_bytes, payload=b"", flags=0, packet_id=None, props=b"\x00"):
    """A v5 PUBLISH from raw parts (topic given as bytes so it can be invalid UTF-8)."""
    body = struct.pack("!H", len(topic_bytes)) + topic_bytes
    if packet_id is not None:
        body += u16(packet_id)
    return fixed(3, flags, body + props + payload)


def props(*pairs):
    """A raw property block from (id, encoded value bytes) pairs."""
    body = b"".join(varint(pid) + val for pid, val in pairs)
    return varint(len(body)) + body


# (id, bytes sent after a successful v5 CONNECT, expected DISCONNECT reason)
V5_CASES = [
    ("publish-wildcard-plus", mqtt_publish("a/+/c", b"x"), 0x90),
    ("publish-wildcard-hash", mqtt_publish("a/#", b"x", qos=1, packet_id=1), 0x90),
    ("publish-qos3", raw_publish(b"a", flags=0x06, packet_id=1), 0x81),
    ("publish-dup-qos0", raw_publish(b"a", flags=0x08), 0x81),
    ("publish-topic-invalid-utf8", raw_publish(b"a/\xff\xfe"), 0x81),
    ("publish-topic-nul", raw_publish(b"a\x00b"), 0x81),
    ("publish-topic-surrogate", raw_publish(b"a/\xed\xa0\x80"), 0x81),
    ("publish-topic-overlong-utf8", raw_publish(b"\xc0\xaf"), 0x81),
    ("publish-topic-longer-than-packet", fixed(3, 0, b"\x00\x20abc"), 0x81),
    ("publish-packet-id-0", mqtt_publish("a", b"x", qos=1, packet_id=0), 0x82),
    ("publish-empty-topic-no-alias", mqtt_publish("", b"x"), 0x82),
    ("publish-topic-alias-0", mqtt_publish("a", b"x", props=[(P_TOPIC_ALIAS, 0)]), 0x94),
    ("publish-topic-alias-too-big", mqtt_publish("a", b"x", props=[(P_TOPIC_ALIAS, 65)]), 0x94),
    ("publish-unknown-topic-alias", mqtt_publish("", b"x", props=[(P_TOPIC_ALIAS, 3)]), 0x82),
    ("publish-subscription-id", mqtt_publish("a", b"x", props=[(P_SUBSCRIPTION_ID, 4)]), 0x82),
    ("publish-duplicate-property", mqtt_publish("a", b"x", props=[(P_PAYLOAD_FORMAT, 0), (P_PAYLOAD_FORMAT, 0)]),
     0x82),
    ("publish-property-not-allowed", mqtt_publish("a", b"x", props=[(P_SESSION_EXPIRY, 5)]), 0x81),
    ("publish-unknown-property-id", raw_publish(b"a", props=props((0x7F, b"\x00"))), 0x81),
    ("publish-property-length-overflow", raw_publish(b"a", props=b"\x05\x01\x00"), 0x81),
    ("publish-payload-not-utf8", mqtt_publish("a", b"\xff\xff", props=[(P_PAYLOAD_FORMAT, 1)]), 0x99),
    ("publish-bad-payload-format-value", mqtt_publish("a", b"x", props=[(P_PAYLOAD_FORMAT, 2)]), 0x82),
    ("subscribe-reserved-flags", fixed(8, 0x00, u16(1) + b"\x00" + mqtt_str("a") + b"\x01"), 0x81),
    ("subscribe-no-filters", fixed(8, 0x02, u16(1) + b"\x00"), 0x82),
    ("subscribe-options-reserved-bits", mqtt_subscribe(1, [("a", 0xC1)]), 0x81),
    ("subscribe-qos3", mqtt_subscribe(1, [("a", 0x03)]), 0x81),
    ("subscribe-retain-handling-3", mqtt_subscribe(1, [("a", 0x30)]), 0x82),
    ("subscribe-packet-id-0", mqtt_subscribe(0, [("a", 0)]), 0x82),
    ("subscribe-subscription-id-0", mqtt_subscribe(1, [("a", 0)], props=[(P_SUBSCRIPTION_ID, 0)]), 0x82),
    ("subscribe-filter-invalid-utf8", fixed(8, 0x02, u16(1) + b"\x00" + b"\x00\x02\xff\xfe" + b"\x00"), 0x81),
    ("unsubscribe-reserved-flags", fixed(10, 0x00, u16(1) + b"\x00" + mqtt_str("a")), 0x81),
    ("unsubscribe-no-filters", fixed(10, 0x02, u16(1) + b"\x00"), 0x82),
    ("pubrel-reserved-flags", fixed(6, 0x00, u16(1)), 0x81),
    ("puback-bad-reason", mqtt_ack(PUBACK, 1, reason=0x05), 0x82),
    ("pingreq-with-body", fixed(12, 0, b"\x00"), 0x81),
    ("reserved-packet-type-0", b"\x00\x00", 0x81),
    ("remaining-length-5-bytes", b"\x30\xff\xff\xff\xff\x7f", 0x81),
    ("connack-from-client", fixed(2, 0, b"\x00\x00\x00"), 0x82),
    ("suback-from-client", fixed(9, 0, u16(1) + b"\x00\x00"), 0x82),
    ("pingresp-from-client", b"\xd0\x00", 0x82),
    ("auth-without-method", fixed(15, 0, b"\x00\x00"), 0x82),
    ("second-connect", mqtt_connect("again"), 0x82),
    ("disconnect-sets-session-expiry", mqtt_disconnect(0, props=[(P_SESSION_EXPIRY, 60)]), 0x82),
    ("disconnect-bad-reason", fixed(14, 0, b"\x03"), 0x82),
]


@pytest.mark.parametrize("data,reason", [c[1:] for c in V5_CASES], ids=[c[0] for c in V5_CASES])
def test_v5_bad_packet_gets_disconnect_with_reason(broker, clients, healthy, data, reason):
    c = connected_raw(clients, broker.port)
    c.send(data)
    expect_disconnect(c, reason)
    healthy.check()


def raw_publish4(topic_bytes, payload=b"", flags=0, packet_id=None):
    body = struct.pack("!H", len(topic_bytes)) + topic_bytes
    if packet_id is not None:
        body += u16(packet_id)
    return fixed(3, flags, body + payload)


# (id, bytes sent after a successful 3.1.1 CONNECT): each closes the connection, with nothing sent back.
V311_CASES = [
    ("publish-wildcard-plus", mqtt_publish("a/+/c", b"x", version=4)),
    ("publish-wildcard-hash", mqtt_publish("#", b"x", qos=1, packet_id=1, version=4)),
    ("publish-qos3", raw_publish4(b"a", flags=0x06, packet_id=1)),
    ("publish-dup-qos0", raw_publish4(b"a", flags=0x08)),
    ("publish-topic-invalid-utf8", raw_publish4(b"a/\xff\xfe")),
    ("publish-topic-nul", raw_publish4(b"a\x00b")),
    ("publish-topic-surrogate", raw_publish4(b"a/\xed\xa0\x80")),
    ("publish-topic-longer-than-packet", fixed(3, 0, b"\x00\x20abc")),
    ("publish-packet-id-0", mqtt_publish("a", b"x", qos=1, packet_id=0, version=4)),
    ("publish-empty-topic", mqtt_publish("", b"x", version=4)),
    ("subscribe-reserved-flags", fixed(8, 0x00, u16(1) + mqtt_str("a") + b"\x01")),
    ("subscribe-no-filters", fixed(8, 0x02, u16(1))),
    ("subscribe-options-reserved-bits", mqtt_subscribe(1, [("a", 0x04)], version=4)),
    ("subscribe-qos3", mqtt_subscribe(1, [("a", 0x03)], version=4)),
    ("subscribe-packet-id-0", mqtt_subscribe(0, [("a", 0)], version=4)),
    ("subscribe-filter-invalid-utf8", fixed(8, 0x02, u16(1) + b"\x00\x02\xff\xfe" + b"\x00")),
    ("unsubscribe-reserved-flags", fixed(10, 0x00, u16(1) + mqtt_str("a"))),
    ("unsubscribe-no-filters", fixed(10, 0x02, u16(1))),
    ("pubrel-reserved-flags", fixed(6, 0x00, u16(1))),
    ("puback-with-reason", fixed(4, 0, u16(1) + b"\x00")),
    ("pingreq-with-body", fixed(12, 0, b"\x00")),
    ("reserved-packet-type-0", b"\x00\x00"),
    ("auth-packet", fixed(15, 0, b"\x00\x00")),
    ("remaining-length-5-bytes", b"\x30\xff\xff\xff\xff\x7f"),
    ("connack-from-client", fixed(2, 0, b"\x00\x00")),
    ("pingresp-from-client", b"\xd0\x00"),
    ("second-connect", mqtt_connect("again", version=4)),
    ("disconnect-with-body", fixed(14, 0, b"\x00")),
]


@pytest.mark.parametrize("data", [c[1] for c in V311_CASES], ids=[c[0] for c in V311_CASES])
def test_v311_bad_packet_closes_connection(broker, clients, healthy, data):
    c = connected_raw(clients, broker.port, version=4)
    c.send(data)
    expect_silent_close(c)
    healthy.check()


def test_packet_too_large_gets_0x95(make_broker, clients):
    b = make_broker(limits="max_packet_size = 1024")
    h = Healthy(b.port, clients)
    c = clients.raw(b.port)
    ack = c.connect(unique_id("big"))
    assert ack.props[0x27] == 1024  # Maximum Packet Size advertised
    # Only the fixed header is sent: the broker refuses on the announced length, without the body.
    c.send(b"\x30" + varint(2000))
    expect_disconnect(c, 0x95)
    # Exactly at the limit is fine; one byte more is not.
    ok = clients.raw(b.port)
    ok.connect(unique_id("edge"))
    body_len = 1024 - 1 - len(varint(1021))
    pkt = mqtt_publish("edge", b"", qos=1, packet_id=3)
    pad = body_len - (len(pkt) - 2)
    pkt = mqtt_publish("edge", b"e" * pad, qos=1, packet_id=3)
    assert len(pkt) == 1024
    assert ok.send(pkt) is None and ok.expect(PUBACK).packet_id == 3
    ok.send(mqtt_publish("edge", b"e" * (pad + 1), qos=1, packet_id=4))
    expect_disconnect(ok, 0x95)
    # 3.1.1: closed.
    c4 = clients.raw(b.port, version=4)
    c4.connect(unique_id("big4"))
    c4.send(mqtt_publish("t", b"x" * 2000, version=4))
    expect_silent_close(c4)
    h.check()


def test_oversized_connect_is_refused(make_broker, clients):
    b = make_broker(limits="max_packet_size = 1024")
    h = Healthy(b.port, clients)
    s = b.connect_raw()
    s.sendall(mqtt_connect("x" * 2000))
    s.settimeout(3)
    # No version is known yet when the size check fires: no CONNACK, just closed.
    assert _read_all(s) == b""
    h.check()


def test_receive_maximum_exceeded_gets_0x93(make_broker, clients):
    b = make_broker(limits="receive_maximum = 3")
    h = Healthy(b.port, clients)
    c = clients.raw(b.port)
    ack = c.connect(unique_id("rm"))
    assert ack.props[0x21] == 3
    for pid in range(1, 4):
        c.send(mqtt_publish("rm", b"x", qos=2, packet_id=pid))
        assert c.expect(PUBREC).packet_id == pid
    c.send(mqtt_publish("rm", b"x", qos=2, packet_id=4))  # a fourth unreleased QoS 2 message
    expect_disconnect(c, 0x93)
    h.check()


def test_qos_not_supported_gets_0x9b(make_broker, clients):
    b = make_broker(limits="max_qos = 1")
    c = clients.raw(b.port)
    assert c.connect(unique_id("q")).props[0x24] == 1  # Maximum QoS
    c.send(mqtt_publish("t", b"x", qos=2, packet_id=1))
    expect_disconnect(c, 0x9B)


# ---------------------------------------------------------------------------------------------------------
# Before CONNECT


def _read_all(s, timeout=3):
    """Everything the broker sends until it closes the connection."""
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


@pytest.mark.parametrize("first", [
    mqtt_pingreq(),
    mqtt_publish("t", b"x", version=4),
    mqtt_subscribe(1, ["t"], version=4),
    mqtt_disconnect(),
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["pingreq", "publish", "subscribe", "disconnect", "http"])
def test_first_packet_not_connect_closed_without_connack(broker, clients, healthy, first):
    s = broker.connect_raw()
    s.sendall(first)
    assert _read_all(s) == b""
    healthy.check()


@pytest.mark.parametrize("name,level", [("MQTT", 6), ("MQTT", 3), ("MQIsdp", 3), ("MQTT", 0)])
def test_unsupported_protocol_gets_v311_connack_0x01(broker, clients, healthy, name, level):
    body = mqtt_str(name) + bytes([level, 0x02]) + u16(60) + mqtt_str("cid")
    s = broker.connect_raw()
    s.sendall(fixed(1, 0, body))
    assert _read_all(s) == b"\x20\x02\x00\x01"
    healthy.check()


def test_malformed_connect_v5_gets_connack_0x81(broker, clients, healthy):
    good = mqtt_connect("cid", version=5)
    bad = bytearray(good)
    bad[2 + 6 + 1] |= 0x01  # CONNECT flags: reserved bit
    s = broker.connect_raw()
    s.sendall(bytes(bad))
    data = _read_all(s)
    assert data[:1] == b"\x20" and data[3] == 0x81, data
    healthy.check()


@pytest.mark.parametrize("connect", [
    bytes(b ^ (0x01 if i == 9 else 0) for i, b in enumerate(mqtt_connect("cid", version=4))),  # reserved flag
    fixed(1, 0, mqtt_str("MQTT") + b"\x04\x02" + u16(60) + b"\x00\x02\xff\xfe"),  # client id not UTF-8
    fixed(1, 0, mqtt_str("MQTT") + b"\x04\x42" + u16(60) + mqtt_str("c") + mqtt_str("pw")),  # pw w/o user
    fixed(1, 0, mqtt_str("MQTT") + b"\x04\x1a" + u16(60) + mqtt_str("c")),  # will QoS 3
    fixed(1, 0, mqtt_str("MQTT") + b"\x04"),  # truncated variable header
    fixed(1, 0x01, mqtt_str("MQTT") + b"\x04\x02" + u16(60) + mqtt_str("c")),  # fixed header flags
], ids=["reserved-flag", "client-id-utf8", "password-without-user", "will-qos3", "truncated", "header-flags"])
def test_malformed_connect_v311_closed_without_connack(broker, clients, healthy, connect):
    s = broker.connect_raw()
    s.sendall(connect)
    assert _read_all(s) == b""
    healthy.check()


def test_v311_empty_client_id_without_clean_session_gets_0x02(broker, clients, healthy):
    s = broker.connect_raw()
    s.sendall(mqtt_connect("", version=4, clean=False))
    assert _read_all(s) == b"\x20\x02\x00\x02"
    healthy.check()


def test_connect_split_into_single_bytes_is_accepted(broker, clients):
    s = broker.connect_raw()
    for b in mqtt_connect("bytewise", version=5, props=[(0x21, 10)]):
        s.sendall(bytes([b]))
        time.sleep(0.002)
    s.settimeout(3)
    head = s.recv(2)
    assert head[0] == 0x20
    s.close()


@pytest.fixture
def quick_broker(make_broker):
    return make_broker(limits='connect_timeout = "1s"')


def test_silent_connection_closed_after_connect_timeout(quick_broker, clients):
    h = Healthy(quick_broker.port, clients)
    t0 = time.time()
    s = quick_broker.connect_raw()
    assert _read_all(s, timeout=5) == b""
    elapsed = time.time() - t0
    assert 0.9 <= elapsed <= 3.0, elapsed
    h.check()  # the healthy clients connected long before are not subject to the CONNECT timeout


def test_half_connect_closed_after_connect_timeout(quick_broker, clients):
    h = Healthy(quick_broker.port, clients)
    t0 = time.time()
    s = quick_broker.connect_raw()
    connect = mqtt_connect("half", version=5)
    s.sendall(connect[:7])
    time.sleep(0.3)
    s.sendall(connect[7:10])  # trickling bytes does not extend the deadline
    assert _read_all(s, timeout=5) == b""
    elapsed = time.time() - t0
    assert 0.9 <= elapsed <= 3.0, elapsed
    h.check()


def test_connect_in_time_is_not_cut(quick_broker, clients):
    s = quick_broker.connect_raw()
    time.sleep(0.5)
    s.sendall(mqtt_connect("late-but-ok", version=4))
    s.settimeout(3)
    assert s.recv(4) == b"\x20\x02\x00\x00"
    time.sleep(1.5)  # past the CONNECT timeout: a connected client stays
    s.sendall(mqtt_pingreq())
    assert s.recv(2) == b"\xd0\x00"
    s.close()


def test_garbage_flood_does_not_hurt_the_broker(broker, clients, healthy):
    rng = random.Random(1234)
    socks = []
    for i in range(40):
        s = broker.connect_raw()
        s.settimeout(3)
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096)))
        if i % 4 == 0:
            junk = mqtt_connect("junk%d" % i, version=5) + junk  # garbage after a good CONNECT
        elif i % 4 == 1:
            junk = mqtt_connect("junk%d" % i, version=4) + junk
        try:
            s.sendall(junk)
        except OSError:
            pass
        socks.append(s)
    closed = 0
    for s in socks:
        try:
            s.settimeout(3)
            while s.recv(65536):
                pass
            closed += 1
        except ConnectionResetError:
            closed += 1
        except socket.timeout:
            pass  # a random prefix that is still an incomplete packet: cut by the CONNECT timeout later
        s.close()
    assert closed >= 30, closed
    assert broker.alive()
    healthy.check()
    # Still accepting and serving new clients.
    c = clients.raw(broker.port)
    c.connect(unique_id("after"))
    c.send(mqtt_pingreq())
    c.expect(PINGRESP)


def test_disconnect_storm_of_half_open_connections(broker, clients, healthy):
    # Clients that connect and reset (RST) mid-packet, again and again.
    for i in range(50):
        s = broker.connect_raw()
        s.sendall(mqtt_connect("rst%d" % i, version=5)[:9])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    assert broker.alive()
    healthy.check()


def _connect5(flags, props_block=b"\x00", payload=None):
    return fixed(1, 0, mqtt_str("MQTT") + bytes([5, flags]) + u16(60) + props_block +
                 (payload if payload is not None else mqtt_str("c5")))


@pytest.mark.parametrize("connect,reason", [
    (_connect5(0x03), 0x81),                                                  # reserved flag
    (_connect5(0x1e, payload=mqtt_str("c") + b"\x00" + mqtt_str("w") + mqtt_str("x")), 0x81),  # will QoS 3
    (_connect5(0x22), 0x81),                                                  # will retain without will
    (_connect5(0x06, payload=mqtt_str("c") + b"\x00" + mqtt_str("w/#") + mqtt_str("x")), 0x90),  # will topic
    (_connect5(0x02, props((0x21, b"\x00\x00"))), 0x82),                      # Receive Maximum 0
    (_connect5(0x02, props((0x27, b"\x00\x00\x00\x00"))), 0x82),              # Maximum Packet Size 0
    (_connect5(0x02, props((0x11, b"\x00\x00\x00\x01"), (0x11, b"\x00\x00\x00\x01"))), 0x82),  # duplicate
    (_connect5(0x02, props((0x23, b"\x00\x01"))), 0x81),                      # Topic Alias: not a CONNECT prop
    (_connect5(0x02, props((0x16, b"\x00\x01x"))), 0x82),                     # auth data without method
    (_connect5(0x02, props((0x15, mqtt_str("SCRAM-SHA-1")))), 0x8C),          # unsupported auth method
    (_connect5(0x02, payload=b"\x00\x02\xc3\x28"), 0x81),                     # client id not UTF-8
], ids=["reserved-flag", "will-qos3", "will-retain-no-will", "will-topic-wildcard", "receive-max-0",
        "max-packet-0", "duplicate-prop", "wrong-prop", "auth-data-no-method", "auth-method", "client-id-utf8"])
def test_bad_v5_connect_gets_connack_reason(broker, clients, healthy, connect, reason):
    c = clients.raw(broker.port)
    c.send(connect)
    packets = c.recv_until_closed(3)
    assert [(p.type, p.reason) for p in packets] == [(CONNACK, reason)], packets
    healthy.check()


def test_invalid_filters_refused_per_entry_connection_stays(broker, clients, healthy):
    c = connected_raw(clients, broker.port)
    ack = c.subscribe([("a/#/b", 1), ("a+", 1), ("#/a", 0), ("", 1), ("ok/+/#", 1)], packet_id=5)
    assert ack.reasons == [0x8F, 0x8F, 0x8F, 0x8F, 1]
    c4 = connected_raw(clients, broker.port, version=4)
    assert c4.subscribe([("a/#/b", 1), ("ok", 2)]).reasons == [0x80, 2]
    healthy.check()


def test_packets_after_refused_connect_are_ignored(broker, clients, healthy):
    # A refused CONNECT and a PUBLISH in the same segment: the PUBLISH must not be routed.
    s = broker.connect_raw()
    s.sendall(_connect5(0x02, props((0x15, mqtt_str("nope")))) +
              mqtt_publish(healthy.topic, b"smuggled", qos=0))
    data = _read_all(s)
    assert data[:1] == b"\x20" and data[3] == 0x8C, data
    healthy.sub.expect_none(0.3)
    healthy.check()
