"""Message Expiry Interval (MQTT 5 3.3.2.3.3): counted down while a message waits, expired messages are not
delivered."""
import time

from helpers import (PUBACK, PUBLISH, P_MESSAGE_EXPIRY, P_SESSION_EXPIRY, mqtt_ack, props)
from paho.mqtt.packettypes import PacketTypes


def offline_subscriber(clients, broker, cid, filt, version=5):
    c = clients.raw(broker.port, version=version)
    c.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 60)] if version == 5 else None)
    c.subscribe([(filt, 1)])
    c.disconnect()


def resume(clients, broker, cid, version=5):
    c = clients.raw(broker.port, version=version)
    ack = c.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, 60)] if version == 5 else None)
    assert ack.session_present
    return c


def test_live_delivery_carries_expiry(broker, clients):
    sub = clients.raw(broker.port)
    sub.connect("live-exp")
    sub.subscribe([("le/t", 1)])
    pub = clients(broker.port)
    pub.publish("le/t", b"x", qos=1, properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    pub.publish("le/t", b"y", qos=1)
    p = sub.expect(PUBLISH)
    assert p.props[P_MESSAGE_EXPIRY] in (59, 60)
    p = sub.expect(PUBLISH)
    assert P_MESSAGE_EXPIRY not in p.props  # none set, none sent


def test_queued_message_expiry_counted_down(broker, clients):
    offline_subscriber(clients, broker, "cd", "cd/t")
    pub = clients.raw(broker.port)
    pub.connect("cd-pub")
    pub.publish("cd/t", b"waiting", qos=1, packet_id=1, props=[(P_MESSAGE_EXPIRY, 10)])
    time.sleep(1.3)
    c = resume(clients, broker, "cd")
    p = c.expect(PUBLISH)
    assert p.payload == b"waiting"
    assert p.props[P_MESSAGE_EXPIRY] in (8, 9), p.props  # 10 minus the ~1.3 s it waited


def test_expired_messages_not_delivered(broker, clients):
    offline_subscriber(clients, broker, "gone", "gone/t")
    pub = clients.raw(broker.port)
    pub.connect("gone-pub")
    pub.publish("gone/t", b"short", qos=1, packet_id=1, props=[(P_MESSAGE_EXPIRY, 1)])
    pub.publish("gone/t", b"long", qos=1, packet_id=2, props=[(P_MESSAGE_EXPIRY, 60)])
    pub.publish("gone/t", b"forever", qos=2, packet_id=3)
    pub.publish("gone/t", b"short2", qos=2, packet_id=4, props=[(P_MESSAGE_EXPIRY, 1)])
    time.sleep(1.2)
    c = resume(clients, broker, "gone")
    got = []
    while True:
        try:
            p = c.recv(0.5)
        except Exception:
            break
        if p.type == PUBLISH:
            got.append((p.payload, p.props.get(P_MESSAGE_EXPIRY)))
            if p.qos == 1:
                c.send(mqtt_ack(PUBACK, p.packet_id))
    assert [g[0] for g in got] == [b"long", b"forever"]
    assert 58 <= got[0][1] <= 59 and got[1][1] is None


def test_expired_messages_not_delivered_v311(broker, clients):
    offline_subscriber(clients, broker, "gone3", "gone3/t", version=4)
    pub = clients.raw(broker.port)
    pub.connect("gone3-pub")
    pub.publish("gone3/t", b"short", qos=1, packet_id=1, props=[(P_MESSAGE_EXPIRY, 1)])
    pub.publish("gone3/t", b"long", qos=1, packet_id=2, props=[(P_MESSAGE_EXPIRY, 60)])
    time.sleep(1.2)
    c = resume(clients, broker, "gone3", version=4)
    p = c.expect(PUBLISH)
    assert p.payload == b"long"
    c.send(mqtt_ack(PUBACK, p.packet_id))
    assert c.no_packet(0.4)


def test_expiry_while_waiting_for_window(broker, clients):
    """A message stuck behind a full in-flight window is still subject to expiry."""
    from helpers import P_RECEIVE_MAXIMUM
    sub = clients.raw(broker.port)
    sub.connect("window-exp", props=[(P_RECEIVE_MAXIMUM, 1)])
    sub.subscribe([("we/t", 1)])
    pub = clients.raw(broker.port)
    pub.connect("we-pub")
    pub.publish("we/t", b"first", qos=1, packet_id=1)
    pub.publish("we/t", b"expires", qos=1, packet_id=2, props=[(P_MESSAGE_EXPIRY, 1)])
    pub.publish("we/t", b"last", qos=1, packet_id=3)
    first = sub.expect(PUBLISH)
    assert first.payload == b"first"
    time.sleep(1.2)
    sub.send(mqtt_ack(PUBACK, first.packet_id))
    p = sub.expect(PUBLISH)
    assert p.payload == b"last"
