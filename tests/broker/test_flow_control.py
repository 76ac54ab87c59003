"""Flow control and keep alive: the outbound window is the client's Receive Maximum, a client exceeding our
Receive Maximum is disconnected (0x93), Server Keep Alive caps the keep alive, keep alive is enforced at
1.5 times the interval."""
import time

import pytest

from helpers import (DISCONNECT, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, P_RECEIVE_MAXIMUM,
                     P_SERVER_KEEP_ALIVE, P_SESSION_EXPIRY, mqtt_ack, mqtt_pingreq, mqtt_publish, unique_id)


def publish_n(clients, broker, topic, n, qos=1):
    pub = clients(broker.port)
    for i in range(n):
        pub.publish(topic, b"%d" % i, qos=qos)
    return pub


def read_publishes(c, timeout):
    out = []
    while True:
        try:
            p = c.recv(timeout)
        except Exception:
            return out
        assert p.type == PUBLISH, p
        out.append(p)


# ---- outbound window ---------------------------------------------------------------------------------------

def test_outbound_window_is_client_receive_maximum(broker, clients):
    sub = clients.raw(broker.port)
    sub.connect("rm2", props=[(P_RECEIVE_MAXIMUM, 2)])
    sub.subscribe([("win/t", 1)])
    publish_n(clients, broker, "win/t", 6)
    first = read_publishes(sub, 0.5)
    assert [p.payload for p in first] == [b"0", b"1"]  # only 2 in flight
    sub.send(mqtt_ack(PUBACK, first[0].packet_id))
    more = read_publishes(sub, 0.4)
    assert [p.payload for p in more] == [b"2"]  # one ack, one more
    # Ack everything as it comes: the rest arrives, in order, never more than 2 unacknowledged.
    outstanding = [first[1].packet_id, more[0].packet_id]
    got = []
    while len(got) < 3:
        sub.send(mqtt_ack(PUBACK, outstanding.pop(0)))
        p = sub.expect(PUBLISH)
        got.append(p.payload)
        outstanding.append(p.packet_id)
        assert len(outstanding) <= 2
    assert got == [b"3", b"4", b"5"]


def test_outbound_window_qos2_counts_until_pubcomp(broker, clients):
    sub = clients.raw(broker.port)
    sub.connect("rm1q2", props=[(P_RECEIVE_MAXIMUM, 1)])
    sub.subscribe([("win2/t", 2)])
    publish_n(clients, broker, "win2/t", 2, qos=2)
    p = sub.expect(PUBLISH)
    sub.send(mqtt_ack(PUBREC, p.packet_id))
    assert sub.expect(PUBREL).packet_id == p.packet_id
    assert sub.no_packet(0.4)  # still in flight until PUBCOMP
    sub.send(mqtt_ack(PUBCOMP, p.packet_id))
    assert sub.expect(PUBLISH).payload == b"1"


def test_outbound_window_capped_by_max_inflight(make_broker, clients):
    b = make_broker(limits="max_inflight = 3")
    sub = clients.raw(b.port)
    sub.connect("cap3", props=[(P_RECEIVE_MAXIMUM, 100)])
    sub.subscribe([("cap/t", 1)])
    publish_n(clients, b, "cap/t", 5)
    assert len(read_publishes(sub, 0.5)) == 3


def test_paho_v311_gets_everything(broker, clients):
    """No Receive Maximum in 3.1.1: the window is the broker's max_inflight; all messages arrive."""
    from helpers import V311
    sub = clients(broker.port, version=V311)
    sub.subscribe("many/t", 1)
    publish_n(clients, broker, "many/t", 200)
    got = [m.payload for m in sub.get_n(200, 10)]
    assert got == [b"%d" % i for i in range(200)]


# ---- inbound: our Receive Maximum ---------------------------------------------------------------------------

def test_connack_receive_maximum_and_0x93(make_broker, clients):
    b = make_broker(limits="receive_maximum = 2")
    c = clients.raw(b.port)
    ack = c.connect("flood")
    assert ack.props[P_RECEIVE_MAXIMUM] == 2
    for pid in (1, 2):
        c.send(mqtt_publish("flood/t", b"x", qos=2, packet_id=pid))
        assert c.expect(PUBREC).packet_id == pid
    c.send(mqtt_publish("flood/t", b"x", qos=2, packet_id=3))  # third unreleased QoS 2 message
    d = c.expect(DISCONNECT)
    assert d.reason == 0x93
    assert c.is_closed()


def test_receive_maximum_released_by_pubrel(make_broker, clients):
    b = make_broker(limits="receive_maximum = 2")
    c = clients.raw(b.port)
    c.connect("polite")
    for pid in range(1, 8):  # at most one outstanding at a time: never exceeds 2
        assert c.publish("polite/t", b"x", qos=2, packet_id=pid).type == PUBCOMP
    c.send(mqtt_pingreq())
    assert c.expect(PINGRESP)


def test_default_receive_maximum_exceeded(broker, clients):
    """As the Paho v5 suite does it: Receive Maximum + 1 QoS 2 messages without PUBREL."""
    c = clients.raw(broker.port)
    ack = c.connect("flood64")
    rm = ack.props.get(P_RECEIVE_MAXIMUM, 65535)
    assert rm == 64
    for pid in range(1, rm + 2):
        c.send(mqtt_publish("flood64/t", b"x", qos=2, packet_id=pid))
    pkts = c.recv_until_closed(5)
    assert [p.type for p in pkts] == [PUBREC] * rm + [DISCONNECT]
    assert pkts[-1].reason == 0x93


# ---- keep alive ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("asked,expected", [(120, 5), (0, 5), (3, None), (5, None)])
def test_server_keep_alive_cap(make_broker, clients, asked, expected):
    b = make_broker(limits='max_keep_alive = "5s"')
    c = clients.raw(b.port)
    ack = c.connect("ska", keepalive=asked)
    assert ack.props.get(P_SERVER_KEEP_ALIVE) == expected


def test_server_keep_alive_enforced(make_broker, clients):
    b = make_broker(limits='max_keep_alive = "1s"')
    c = clients.raw(b.port)
    ack = c.connect("ska-enforced", keepalive=60)
    assert ack.props[P_SERVER_KEEP_ALIVE] == 1
    t0 = time.time()
    d = c.expect(DISCONNECT, timeout=4)
    assert d.reason == 0x8D
    assert 1.4 <= time.time() - t0 <= 2.7


def test_keep_alive_timeout_disconnects_and_publishes_will(broker, clients):
    topic = unique_id("ka-will")
    w = clients(broker.port)
    w.subscribe(topic, 1)
    c = clients.raw(broker.port)
    c.connect("sleeper", keepalive=1, will=dict(topic=topic, payload=b"timed-out", qos=1))
    t0 = time.time()
    d = c.expect(DISCONNECT, timeout=4)
    elapsed = time.time() - t0
    assert d.reason == 0x8D
    assert 1.4 <= elapsed <= 2.7, elapsed
    assert c.is_closed()
    m = w.get(2)
    assert (m.payload, m.qos) == (b"timed-out", 1)


def test_keep_alive_timeout_v311(broker, clients):
    c = clients.raw(broker.port, version=4)
    c.connect("sleeper311", keepalive=1)
    t0 = time.time()
    assert c.recv_until_closed(4) == []  # no DISCONNECT in 3.1.1
    assert 1.4 <= time.time() - t0 <= 2.7


def test_pingreq_keeps_connection_alive(broker, clients):
    c = clients.raw(broker.port)
    c.connect("pinger", keepalive=1)
    deadline = time.time() + 3
    while time.time() < deadline:
        c.send(mqtt_pingreq())
        assert c.expect(PINGRESP, timeout=1)
        time.sleep(0.5)
    c.send(mqtt_pingreq())
    assert c.expect(PINGRESP, timeout=1)


def test_resume_resend_respects_new_receive_maximum(broker, clients):
    """MQTT 5 4.9: unacknowledged messages resent on resume count against the new connection's Receive
    Maximum; the rest follow, with DUP and their packet ids, as acks make room."""
    c = clients.raw(broker.port)
    c.connect("resume-rm", clean=False, props=[(P_SESSION_EXPIRY, 60), (P_RECEIVE_MAXIMUM, 5)])
    c.subscribe([("rrm/t", 1)])
    publish_n(clients, broker, "rrm/t", 7)
    first = read_publishes(c, 0.5)
    assert [p.payload for p in first] == [b"0", b"1", b"2", b"3", b"4"]
    ids = {p.payload: p.packet_id for p in first}
    c.close()  # nothing acknowledged
    c = clients.raw(broker.port)
    c.connect("resume-rm", clean=False, props=[(P_SESSION_EXPIRY, 60), (P_RECEIVE_MAXIMUM, 2)])
    again = read_publishes(c, 0.5)
    assert [(p.payload, p.dup, p.packet_id) for p in again] == [(b"0", True, ids[b"0"]), (b"1", True, ids[b"1"])]
    got, outstanding = [], [p.packet_id for p in again]
    while len(got) < 5:
        c.send(mqtt_ack(PUBACK, outstanding.pop(0)))
        p = c.expect(PUBLISH)
        got.append((p.payload, p.dup))
        outstanding.append(p.packet_id)
        assert len(outstanding) <= 2
        if p.dup:
            assert p.packet_id == ids[p.payload]
    assert got == [(b"2", True), (b"3", True), (b"4", True), (b"5", False), (b"6", False)]
