"""Session takeover: a second connection with the same client id ends the first (v5: DISCONNECT 0x8E);
with clean start 0 the session (subscriptions, queued and in-flight messages) carries over."""
import pytest

from helpers import (DISCONNECT, PUBACK, PUBLISH, P_SESSION_EXPIRY, P_WILL_DELAY, V311, V5, mqtt_ack,
                     unique_id)


def test_v5_first_connection_gets_disconnect_0x8e(broker, clients):
    first = clients.raw(broker.port)
    first.connect("same")
    second = clients.raw(broker.port)
    assert second.connect("same").reason == 0
    d = first.expect(DISCONNECT)
    assert d.reason == 0x8E
    assert first.is_closed()
    # The new connection works.
    second.subscribe([("same/t", 1)])
    assert second.publish("same/t", b"x", qos=1, packet_id=2).reason == 0
    assert second.expect(PUBLISH).payload == b"x"


def test_v311_first_connection_closed(broker, clients):
    first = clients.raw(broker.port, version=4)
    first.connect("same311")
    second = clients.raw(broker.port, version=4)
    assert second.connect("same311").reason == 0
    assert first.recv_until_closed(3) == []  # closed, and no DISCONNECT in 3.1.1


def test_paho_takeover_v311_by_v5(broker, clients):
    cid = unique_id("mix")
    first = clients(broker.port, version=V311, client_id=cid)
    second = clients(broker.port, version=V5, client_id=cid)
    assert second.connack[1] == 0
    assert first.wait_disconnected(3)


def test_paho_v5_takeover(broker, clients):
    # Paho 1.6.1 reads a DISCONNECT reason code only when the packet also has a property length
    # (remaining length > 2), so it reports the 0x8E DISCONNECT (remaining length 1, as Mosquitto sends
    # it too) as a lost connection; the reason code itself is checked on the wire above.
    cid = unique_id("p5")
    first = clients(broker.port, client_id=cid)
    second = clients(broker.port, client_id=cid)
    assert first.wait_disconnected(3)
    topic = unique_id("p5t")
    second.subscribe(topic, 1)
    second.publish(topic, b"ok", qos=1)
    assert second.get().payload == b"ok"


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_session_carried_over_with_clean_start_false(broker, clients, version):
    exp = [(P_SESSION_EXPIRY, 60)] if version == 5 else None
    first = clients.raw(broker.port, version=version)
    first.connect("carry", clean=False, props=exp)
    first.subscribe([("carry/t", 1)])
    second = clients.raw(broker.port, version=version)
    ack = second.connect("carry", clean=False, props=exp)
    assert ack.session_present
    assert first.is_closed()
    pub = clients(broker.port)
    pub.publish("carry/t", b"to-second", qos=1)
    p = second.expect(PUBLISH)
    assert p.payload == b"to-second"


def test_takeover_of_expiry_zero_session_starts_fresh(broker, clients):
    """A session with expiry 0 ends with its connection; a takeover ends that connection, so even a
    clean start 0 CONNECT gets a new session (MQTT 5 3.1.2.11.2), and the old subscription is gone."""
    first = clients.raw(broker.port)
    first.connect("zero-exp")  # expiry 0
    first.subscribe([("zx/t", 1)])
    second = clients.raw(broker.port)
    assert not second.connect("zero-exp", clean=False).session_present
    assert first.expect(DISCONNECT).reason == 0x8E
    pub = clients(broker.port)
    pub.publish("zx/t", b"gone", qos=1)
    assert second.no_packet(0.4)


def test_takeover_with_clean_start_discards_session(broker, clients):
    first = clients.raw(broker.port)
    first.connect("discard", clean=False, props=[(P_SESSION_EXPIRY, 60)])
    first.subscribe([("discard/t", 1)])
    second = clients.raw(broker.port)
    ack = second.connect("discard", clean=True, props=[(P_SESSION_EXPIRY, 60)])
    assert not ack.session_present
    assert first.expect(DISCONNECT).reason == 0x8E
    pub = clients(broker.port)
    pub.publish("discard/t", b"x", qos=1)
    assert second.no_packet(0.4)


def test_inflight_message_carried_over(broker, clients):
    first = clients.raw(broker.port)
    first.connect("inflight", clean=False, props=[(P_SESSION_EXPIRY, 60)])
    first.subscribe([("if/t", 1)])
    pub = clients(broker.port)
    pub.publish("if/t", b"pending", qos=1)
    p1 = first.expect(PUBLISH)  # never acknowledged by the first connection
    second = clients.raw(broker.port)
    assert second.connect("inflight", clean=False, props=[(P_SESSION_EXPIRY, 60)]).session_present
    p2 = second.expect(PUBLISH)
    assert (p2.payload, p2.packet_id, p2.dup) == (b"pending", p1.packet_id, True)
    second.send(mqtt_ack(PUBACK, p2.packet_id))
    assert second.no_packet(0.3)


def test_late_ack_on_old_connection_is_ignored(broker, clients):
    """An ack arriving on the old connection must not complete the new connection's in-flight message."""
    first = clients.raw(broker.port)
    first.connect("late", clean=False, props=[(P_SESSION_EXPIRY, 60)])
    first.subscribe([("late/t", 1)])
    pub = clients(broker.port)
    pub.publish("late/t", b"m", qos=1)
    p1 = first.expect(PUBLISH)
    second = clients.raw(broker.port)
    second.connect("late", clean=False, props=[(P_SESSION_EXPIRY, 60)])
    second.expect(PUBLISH)
    try:
        first.send(mqtt_ack(PUBACK, p1.packet_id))
    except OSError:
        pass
    second.close()  # no ack from the new connection either
    third = clients.raw(broker.port)
    third.connect("late", clean=False, props=[(P_SESSION_EXPIRY, 60)])
    p3 = third.expect(PUBLISH)
    assert (p3.payload, p3.dup) == (b"m", True)


def test_will_of_taken_over_connection(broker, clients):
    topic = unique_id("tw")
    w = clients(broker.port)
    w.subscribe(topic, 1)
    first = clients.raw(broker.port)
    first.connect("willy", will=dict(topic=topic, payload=b"taken-over", qos=1))
    second = clients.raw(broker.port)
    second.connect("willy")
    assert w.get(3).payload == b"taken-over"


def test_delayed_will_not_sent_when_session_resumed_by_takeover(broker, clients):
    topic = unique_id("tw2")
    w = clients(broker.port)
    w.subscribe(topic, 1)
    first = clients.raw(broker.port)
    first.connect("willy2", clean=False, props=[(P_SESSION_EXPIRY, 60)],
                  will=dict(topic=topic, payload=b"no", qos=1, props=[(P_WILL_DELAY, 1)]))
    second = clients.raw(broker.port)
    second.connect("willy2", clean=False, props=[(P_SESSION_EXPIRY, 60)])
    first.expect(DISCONNECT)
    w.expect_none(1.5)


def test_repeated_takeovers_leave_one_connection(broker, clients):
    conns = []
    for i in range(5):
        c = clients.raw(broker.port)
        assert c.connect("flip", clean=False, props=[(P_SESSION_EXPIRY, 60)]).session_present == (i > 0)
        if i == 0:
            c.subscribe([("flip/t", 1)])
        conns.append(c)
    for c in conns[:-1]:
        assert c.is_closed(3)
    pub = clients(broker.port)
    pub.publish("flip/t", b"last", qos=1)
    assert conns[-1].expect(PUBLISH).payload == b"last"
