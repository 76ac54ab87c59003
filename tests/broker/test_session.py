"""Sessions: clean start / clean session, session present, session expiry, offline queueing, resend of
unacknowledged messages with DUP on resume, QoS 2 exactly once across reconnects, client identifiers."""
import time

import pytest

from helpers import (CONNACK, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, DISCONNECT, P_ASSIGNED_CLIENT_ID,
                     P_SESSION_EXPIRY, V311, MosqSub, mosquitto_pub, mqtt_ack, mqtt_connect,
                     mqtt_publish, props, unique_id)
from paho.mqtt.packettypes import PacketTypes


def persistent(clients, broker, cid, expiry=30, version=5):
    """A raw client resuming (or starting) the session `cid` with clean start 0."""
    c = clients.raw(broker.port, version=version)
    c.connect_ack = c.connect(cid, clean=False, props=[(P_SESSION_EXPIRY, expiry)] if version == 5 else None)
    return c


# ---- clean start / session present ------------------------------------------------------------------------

def test_v5_clean_start_discards_session(broker, clients):
    c = persistent(clients, broker, "cs5")
    assert not c.connect_ack.session_present
    c.subscribe([("cs5/t", 1)])
    c.disconnect()
    c = persistent(clients, broker, "cs5")
    assert c.connect_ack.session_present
    c.disconnect()
    fresh = clients.raw(broker.port)
    ack = fresh.connect("cs5", clean=True, props=[(P_SESSION_EXPIRY, 30)])
    assert not ack.session_present
    pub = clients(broker.port)
    pub.publish("cs5/t", b"x", qos=1)
    assert fresh.no_packet(0.4)  # the old subscription went with the old session


def test_v311_clean_session_flag(broker, clients):
    c = persistent(clients, broker, "cs3", version=4)
    assert not c.connect_ack.session_present
    c.subscribe([("cs3/t", 1)])
    c.disconnect()
    c = persistent(clients, broker, "cs3", version=4)
    assert c.connect_ack.session_present
    c.disconnect()
    # Clean session 1: present 0, and the session is discarded on disconnect too.
    c = clients.raw(broker.port, version=4)
    assert not c.connect("cs3", clean=True).session_present
    c.disconnect()
    c = persistent(clients, broker, "cs3", version=4)
    assert not c.connect_ack.session_present


def test_v5_default_session_expiry_is_zero(broker, clients):
    c = clients.raw(broker.port)
    c.connect("noexp", clean=False)  # no Session Expiry Interval property
    c.subscribe([("noexp/t", 1)])
    c.disconnect()
    time.sleep(0.1)
    c = clients.raw(broker.port)
    assert not c.connect("noexp", clean=False).session_present


def test_paho_v311_persistent_session(broker, clients):
    cid = unique_id("paho311")
    c = clients(broker.port, version=V311, client_id=cid, clean=False)
    assert not c.session_present
    c.subscribe("p311/t", 1)
    c.disconnect()
    pub = clients(broker.port, version=V311)
    pub.publish("p311/t", b"while-away", qos=1)
    c = clients(broker.port, version=V311, client_id=cid, clean=False)
    assert c.session_present
    m = c.get()
    assert (m.payload, m.qos) == (b"while-away", 1)


def test_paho_v5_persistent_session(broker, clients):
    cid = unique_id("paho5")
    cp = props(PacketTypes.CONNECT, SessionExpiryInterval=60)
    c = clients(broker.port, client_id=cid, clean=False, properties=cp)
    assert not c.session_present
    c.subscribe("p5/t", 2)
    c.disconnect()
    pub = clients(broker.port)
    pub.publish("p5/t", b"q2-away", qos=2)
    c = clients(broker.port, client_id=cid, clean=False, properties=cp)
    assert c.session_present
    m = c.get()
    assert (m.payload, m.qos) == (b"q2-away", 2)


def test_mosquitto_sub_persistent_session(broker):
    cid = unique_id("mosqc")
    s = MosqSub(broker.port, "mc/t", qos=1, client_id=cid, extra=["-c"])
    s.stop()
    mosquitto_pub(broker.port, "mc/t", "queued", qos=1)
    s = MosqSub(broker.port, "mc/t", qos=1, client_id=cid, extra=["-c"])
    try:
        assert s.get() == dict(topic="mc/t", qos=1, retain=False, payload="queued")
    finally:
        s.stop()


# ---- session expiry ---------------------------------------------------------------------------------------

def test_session_expiry_honoured(broker, clients):
    c = persistent(clients, broker, "exp1", expiry=1)
    c.subscribe([("exp1/t", 1)])
    c.disconnect()
    time.sleep(0.3)
    c = persistent(clients, broker, "exp1", expiry=1)
    assert c.connect_ack.session_present  # still within the 1 s
    c.disconnect()
    t0 = time.time()
    time.sleep(1.5)
    pub = clients.raw(broker.port)
    pub.connect("exp1-pub")
    # The expired session's subscription is gone from the tree: nobody matches.
    assert pub.publish("exp1/t", b"x", qos=1, packet_id=1).reason == 0x10
    c = persistent(clients, broker, "exp1", expiry=1)
    assert not c.connect_ack.session_present, "session outlived its expiry (%.1fs)" % (time.time() - t0)
    assert c.no_packet(0.3)


def test_session_expiry_changed_on_disconnect(broker, clients):
    c = persistent(clients, broker, "exp2", expiry=60)
    c.disconnect(reason=0, props=[(P_SESSION_EXPIRY, 0)])
    time.sleep(0.2)
    c = persistent(clients, broker, "exp2", expiry=60)
    assert not c.connect_ack.session_present


def test_session_expiry_set_on_disconnect_after_zero_is_protocol_error(broker, clients):
    c = clients.raw(broker.port)
    c.connect("exp3")  # expiry 0
    c.send(b"\xe0\x07\x00\x05\x11\x00\x00\x00\x0a")  # DISCONNECT 0x00, Session Expiry 10
    d = c.expect(DISCONNECT)
    assert d.reason == 0x82


def test_max_session_expiry_cap(make_broker, clients):
    b = make_broker(limits='max_session_expiry = "1s"')
    c = clients.raw(b.port)
    ack = c.connect("capme", clean=False, props=[(P_SESSION_EXPIRY, 3600)])
    assert ack.props[P_SESSION_EXPIRY] == 1
    c.disconnect()
    time.sleep(1.5)
    c = clients.raw(b.port)
    assert not c.connect("capme", clean=False, props=[(P_SESSION_EXPIRY, 3600)]).session_present


# ---- offline queueing ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_offline_queueing_qos1_qos2(broker, clients, version):
    c = persistent(clients, broker, "offq", version=version)
    c.subscribe([("offq/t", 2)])
    c.disconnect()
    pub = clients(broker.port)
    for i, q in enumerate([1, 0, 2, 1, 2]):
        pub.publish("offq/t", b"m%d-q%d" % (i, q), qos=q)
    c = persistent(clients, broker, "offq", version=version)
    assert c.connect_ack.session_present
    got, released = [], 0
    while len(got) < 4 or released < 2:
        p = c.recv()
        if p.type == PUBLISH:
            got.append((p.payload, p.qos, p.dup))
            c.send(mqtt_ack(PUBACK if p.qos == 1 else PUBREC, p.packet_id))
        else:
            assert p.type == PUBREL, p
            c.send(mqtt_ack(PUBCOMP, p.packet_id))
            released += 1
    # QoS 0 is not queued for offline sessions; QoS 1/2 arrive in publish order, first time (no DUP).
    assert got == [(b"m0-q1", 1, False), (b"m2-q2", 2, False), (b"m3-q1", 1, False), (b"m4-q2", 2, False)]
    assert c.no_packet(0.3)


# ---- resend on resume ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_unacked_qos1_resent_with_dup(broker, clients, version):
    c = persistent(clients, broker, "dup1", version=version)
    c.subscribe([("dup1/t", 1)])
    pub = clients(broker.port)
    pub.publish("dup1/t", b"unacked", qos=1)
    first = c.expect(PUBLISH)
    assert (first.qos, first.dup, first.payload) == (1, False, b"unacked")
    c.close()  # no PUBACK
    c = persistent(clients, broker, "dup1", version=version)
    assert c.connect_ack.session_present
    again = c.expect(PUBLISH)
    assert (again.dup, again.packet_id, again.payload, again.qos, again.topic) == \
        (True, first.packet_id, b"unacked", 1, "dup1/t")
    c.send(mqtt_ack(PUBACK, again.packet_id))
    assert c.no_packet(0.3)
    c.disconnect()
    c = persistent(clients, broker, "dup1", version=version)
    assert c.no_packet(0.4)  # acknowledged: not sent a third time


def test_unreceived_qos2_resent_with_dup(broker, clients):
    c = persistent(clients, broker, "dup2")
    c.subscribe([("dup2/t", 2)])
    pub = clients(broker.port)
    pub.publish("dup2/t", b"q2", qos=2)
    first = c.expect(PUBLISH)
    c.close()  # no PUBREC
    c = persistent(clients, broker, "dup2")
    again = c.expect(PUBLISH)
    assert (again.dup, again.packet_id, again.qos, again.payload) == (True, first.packet_id, 2, b"q2")


def test_qos2_outbound_pubrel_resent_not_publish(broker, clients):
    """Exactly once towards a subscriber: after PUBREC the broker must resend only PUBREL."""
    c = persistent(clients, broker, "q2out")
    c.subscribe([("q2out/t", 2)])
    pub = clients(broker.port)
    pub.publish("q2out/t", b"once", qos=2)
    p = c.expect(PUBLISH)
    c.send(mqtt_ack(PUBREC, p.packet_id))
    assert c.expect(PUBREL).packet_id == p.packet_id
    c.close()  # no PUBCOMP
    c = persistent(clients, broker, "q2out")
    rel = c.expect(PUBREL)
    assert rel.packet_id == p.packet_id
    c.send(mqtt_ack(PUBCOMP, p.packet_id))
    assert c.no_packet(0.4)
    c.disconnect()
    c = persistent(clients, broker, "q2out")
    assert c.no_packet(0.4)


def test_qos2_inbound_exactly_once_across_reconnect(broker, clients):
    """A publisher that lost its connection after PUBREC resends with DUP: the broker must not route it twice."""
    sub = clients.raw(broker.port)
    sub.connect("q2in-sub")
    sub.subscribe([("q2in/t", 1)])
    c = persistent(clients, broker, "q2in-pub")
    c.send(mqtt_publish("q2in/t", b"exactly-once", qos=2, packet_id=42))
    assert c.expect(PUBREC).packet_id == 42
    c.close()  # no PUBREL
    c = persistent(clients, broker, "q2in-pub")
    assert c.connect_ack.session_present
    c.send(mqtt_publish("q2in/t", b"exactly-once", qos=2, packet_id=42, dup=True))
    rec = c.expect(PUBREC)
    assert (rec.packet_id, rec.reason) == (42, 0)
    c.send(mqtt_ack(PUBREL, 42))
    comp = c.expect(PUBCOMP)
    assert (comp.packet_id, comp.reason) == (42, 0)
    p = sub.expect(PUBLISH)
    assert p.payload == b"exactly-once"
    sub.send(mqtt_ack(PUBACK, p.packet_id))
    assert sub.no_packet(0.4)
    # The id is free again: a new message with id 42 is a new message.
    c.send(mqtt_publish("q2in/t", b"second", qos=2, packet_id=42))
    c.expect(PUBREC)
    c.send(mqtt_ack(PUBREL, 42))
    c.expect(PUBCOMP)
    assert sub.expect(PUBLISH).payload == b"second"


def test_qos2_inbound_pubrel_after_reconnect(broker, clients):
    sub = clients.raw(broker.port)
    sub.connect("q2rel-sub")
    sub.subscribe([("q2rel/t", 2)])
    c = persistent(clients, broker, "q2rel-pub")
    c.send(mqtt_publish("q2rel/t", b"m", qos=2, packet_id=9))
    c.expect(PUBREC)
    c.close()
    c = persistent(clients, broker, "q2rel-pub")
    c.send(mqtt_ack(PUBREL, 9))
    comp = c.expect(PUBCOMP)
    assert (comp.packet_id, comp.reason) == (9, 0)
    assert sub.expect(PUBLISH).payload == b"m"


def test_pubrel_unknown_id(broker, clients):
    c = clients.raw(broker.port)
    c.connect("unknownrel")
    c.send(mqtt_ack(PUBREL, 77))
    comp = c.expect(PUBCOMP)
    assert (comp.packet_id, comp.reason) == (77, 0x92)


# ---- client identifiers -------------------------------------------------------------------------------------

def test_server_assigned_client_id_v5(broker, clients):
    c = clients.raw(broker.port)
    ack = c.connect("")
    assert ack.reason == 0
    cid = ack.props[P_ASSIGNED_CLIENT_ID]
    assert cid and len(cid) <= 65535
    c2 = clients.raw(broker.port)
    assert c2.connect("").props[P_ASSIGNED_CLIENT_ID] != cid
    c3 = clients.raw(broker.port)
    assert P_ASSIGNED_CLIENT_ID not in c3.connect("named").props


def test_paho_v5_assigned_client_id(broker, clients):
    c = clients(broker.port, client_id="")
    assert c.connack[1] == 0
    assert getattr(c.connack[2], "AssignedClientIdentifier", "")


def test_v311_empty_client_id_clean_session_accepted(broker, clients):
    c = clients.raw(broker.port, version=4)
    ack = c.connect("", clean=True)
    assert (ack.reason, ack.session_present, len(ack.body)) == (0, False, 2)
    c.subscribe([("anon/t", 0)])


def test_v311_empty_client_id_persistent_refused(broker, clients):
    c = clients.raw(broker.port, version=4)
    c.send(mqtt_connect("", version=4, clean=False))
    ack = c.expect(CONNACK)
    assert ack.reason == 0x02 and not ack.session_present
    assert c.is_closed()
