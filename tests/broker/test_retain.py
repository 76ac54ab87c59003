"""Retained messages: set, replace, clear, delivery on subscribe (flag, QoS), Retain Handling 0/1/2,
wildcard matching, message expiry of retained messages."""
import time

from helpers import (DISCONNECT, PUBACK, PUBLISH, P_MESSAGE_EXPIRY, P_RETAIN_AVAILABLE, P_SUBSCRIPTION_ID, V311,
                     MosqSub, mosquitto_pub, mqtt_ack, mqtt_publish, props)
from paho.mqtt.packettypes import PacketTypes


def rh(n):
    """Subscription options bits for Retain Handling n."""
    return n << 4


def drain_publishes(raw, timeout=0.4):
    out = []
    while True:
        try:
            p = raw.recv(timeout)
        except Exception:
            return out
        if p.type == PUBLISH:
            if p.qos == 1:
                raw.send(mqtt_ack(PUBACK, p.packet_id))
            out.append(p)


def test_retained_delivered_on_subscribe_with_flag(broker, clients):
    pub = clients(broker.port)
    pub.publish("r/set", b"kept", qos=1, retain=True)
    sub = clients.raw(broker.port)
    sub.connect("r-sub")
    ack = sub.subscribe([("r/set", 1)])
    assert ack.reasons == [1]
    p = sub.expect(PUBLISH)
    assert (p.topic, p.payload, p.retain, p.qos) == ("r/set", b"kept", True, 1)


def test_retained_v311_and_mosquitto_sub(broker, clients):
    mosquitto_pub(broker.port, "r/m", "via-mosq", qos=1, retain=True)
    sub = clients(broker.port, version=V311)
    sub.subscribe("r/m", 2)
    m = sub.get()
    assert (m.payload, m.retain, m.qos) == (b"via-mosq", True, 1)
    ms = MosqSub(broker.port, "r/m", qos=1, version="mqttv5")
    try:
        assert ms.get() == dict(topic="r/m", qos=1, retain=True, payload="via-mosq")
    finally:
        ms.stop()


def test_retained_qos_is_min_of_stored_and_granted(broker, clients):
    pub = clients(broker.port)
    pub.publish("r/q2", b"two", qos=2, retain=True)
    pub.publish("r/q0", b"zero", qos=0, retain=True)
    sub = clients(broker.port)
    sub.subscribe("r/q2", 1)
    m = sub.get()
    assert (m.payload, m.qos, m.retain) == (b"two", 1, True)
    sub.subscribe("r/q0", 2)
    m = sub.get()
    assert (m.payload, m.qos, m.retain) == (b"zero", 0, True)


def test_retained_replace(broker, clients):
    pub = clients(broker.port)
    pub.publish("r/rep", b"first", qos=1, retain=True)
    pub.publish("r/rep", b"second", qos=1, retain=True)
    sub = clients(broker.port)
    sub.subscribe("r/rep", 1)
    assert sub.get().payload == b"second"
    sub.expect_none(0.3)


def test_non_retained_publish_leaves_retained_alone(broker, clients):
    pub = clients(broker.port)
    pub.publish("r/keep", b"retained", qos=1, retain=True)
    pub.publish("r/keep", b"live", qos=1, retain=False)
    sub = clients(broker.port)
    sub.subscribe("r/keep", 1)
    m = sub.get()
    assert (m.payload, m.retain) == (b"retained", True)


def test_retained_clear_with_empty_payload(broker, clients):
    pub = clients(broker.port)
    pub.publish("r/clr", b"x", qos=1, retain=True)
    live = clients(broker.port)
    live.subscribe("r/clr", 1)
    assert live.get().payload == b"x"
    pub.publish("r/clr", b"", qos=1, retain=True)
    # Existing subscribers still get the (empty) message.
    m = live.get()
    assert m.payload == b"" and m.topic == "r/clr"
    late = clients(broker.port)
    late.subscribe("r/clr", 1)
    late.subscribe("r/#", 1)
    late.expect_none(0.4)


def test_retain_handling(broker, clients):
    pub = clients(broker.port)
    for t in ("rh/0", "rh/1", "rh/2"):
        pub.publish(t, t.encode(), qos=1, retain=True)
    sub = clients.raw(broker.port)
    sub.connect("rh-sub")
    for n in (0, 1, 2):
        sub.subscribe([("rh/%d" % n, 1 | rh(n))], packet_id=1 + n)
    got = sorted(p.topic for p in drain_publishes(sub))
    assert got == ["rh/0", "rh/1"]  # 2: never on subscribe
    # Subscribe again to existing subscriptions: 0 sends again, 1 only for a new subscription, 2 never.
    for n in (0, 1, 2):
        sub.subscribe([("rh/%d" % n, 1 | rh(n))], packet_id=10 + n)
    assert [p.topic for p in drain_publishes(sub)] == ["rh/0"]
    # Retain handling 1 after an unsubscribe is a new subscription again.
    sub.unsubscribe(["rh/1"], packet_id=20)
    sub.subscribe([("rh/1", 1 | rh(1))], packet_id=21)
    ps = drain_publishes(sub)
    assert [(p.topic, p.retain) for p in ps] == [("rh/1", True)]


def test_retained_wildcard_match(broker, clients):
    pub = clients(broker.port)
    topics = ["w", "w/a", "w/b", "w/a/x", "w/a/y/z", "other/a", "$priv/a"]
    for t in topics:
        pub.publish(t, t.encode(), qos=1, retain=True)
    sub = clients.raw(broker.port)
    sub.connect("rw-sub")
    cases = {
        "w/+": {"w/a", "w/b"},
        "w/#": {"w", "w/a", "w/b", "w/a/x", "w/a/y/z"},
        "+/a": {"w/a", "other/a"},
        "w/+/x": {"w/a/x"},
        "+": {"w"},
        "#": {"w", "w/a", "w/b", "w/a/x", "w/a/y/z", "other/a"},  # not $priv/a
        "$priv/+": {"$priv/a"},
        "+/+/+/+": {"w/a/y/z"},
        "nomatch/#": set(),
    }
    for i, (f, want) in enumerate(cases.items(), start=1):
        sub.subscribe([(f, 1)], packet_id=i, props=[(P_SUBSCRIPTION_ID, i)])
        got = drain_publishes(sub, 0.3)
        assert sorted(p.topic for p in got) == sorted(want), f
        assert all(p.retain and p.props.get(P_SUBSCRIPTION_ID) == [i] for p in got), got
        assert all(p.payload == p.topic.encode() for p in got)
        sub.unsubscribe([f], packet_id=100 + i)


def test_retained_properties_kept(broker, clients):
    pub = clients(broker.port)
    p = props(PacketTypes.PUBLISH, UserProperty=[("a", "1")], ContentType="text/plain")
    pub.publish("r/props", b"p", qos=1, retain=True, properties=p)
    sub = clients(broker.port)
    sub.subscribe("r/props", 1)
    m = sub.get()
    assert m.prop("UserProperty") == [("a", "1")] and m.prop("ContentType") == "text/plain"


def test_retained_expiry(broker, clients):
    pub = clients.raw(broker.port)
    pub.connect("rexp-pub")
    pub.publish("r/exp/short", b"s", qos=1, packet_id=1, retain=True, props=[(P_MESSAGE_EXPIRY, 1)])
    pub.publish("r/exp/long", b"l", qos=1, packet_id=2, retain=True, props=[(P_MESSAGE_EXPIRY, 100)])
    t0 = time.time()
    sub = clients.raw(broker.port)
    sub.connect("rexp-sub1")
    sub.subscribe([("r/exp/#", 1)])
    got = {p.topic: p for p in drain_publishes(sub, 0.3)}
    assert set(got) == {"r/exp/short", "r/exp/long"}
    assert got["r/exp/short"].props[P_MESSAGE_EXPIRY] == 1
    assert 99 <= got["r/exp/long"].props[P_MESSAGE_EXPIRY] <= 100
    time.sleep(max(0, t0 + 1.2 - time.time()))
    sub2 = clients.raw(broker.port)
    sub2.connect("rexp-sub2")
    sub2.subscribe([("r/exp/#", 1)])
    got = drain_publishes(sub2, 0.3)
    assert [p.topic for p in got] == ["r/exp/long"]
    assert 98 <= got[0].props[P_MESSAGE_EXPIRY] <= 99  # counted down


def test_retain_not_available(make_broker, clients):
    b = make_broker(limits="retain_available = false")
    c = clients.raw(b.port)
    ack = c.connect("noretain")
    assert ack.props[P_RETAIN_AVAILABLE] == 0
    c.send(mqtt_publish("r/x", b"x", qos=1, packet_id=1, retain=True))
    d = c.expect(DISCONNECT)
    assert d.reason == 0x9A
    assert c.is_closed()
