"""Publish / subscribe: QoS 0/1/2 in both directions with mosquitto_pub/sub and Paho (v3.1.1 and v5),
QoS downgrade, overlapping subscriptions, wildcards, $-topics, No Local, Retain As Published, unsubscribe."""
import pytest

from helpers import (DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, P_PAYLOAD_FORMAT, P_SUBSCRIPTION_ID, V311, V5, MosqSub,
                     mosquitto_pub, mqtt_ack, mqtt_publish, props, unique_id)
from paho.mqtt.packettypes import PacketTypes

# Subscription options byte (MQTT 5 3.8.3.1).
NO_LOCAL = 0x04
RAP = 0x08


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_clients_roundtrip(broker, version, qos):
    topic = unique_id("mosq") + "/t"
    sub = MosqSub(broker.port, topic, qos=qos, version=version)
    try:
        mosquitto_pub(broker.port, topic, "hello-%d" % qos, qos=qos, version=version)
        m = sub.get()
        assert m == dict(topic=topic, qos=qos, retain=False, payload="hello-%d" % qos)
        sub.expect_none(0.3)
    finally:
        sub.stop()


def test_mosquitto_v311_publisher_to_v5_subscriber(broker):
    topic = unique_id("mix") + "/t"
    sub = MosqSub(broker.port, topic, qos=2, version="mqttv5")
    try:
        mosquitto_pub(broker.port, topic, "from-311", qos=2, version="mqttv311")
        assert sub.get() == dict(topic=topic, qos=2, retain=False, payload="from-311")
    finally:
        sub.stop()


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_roundtrip(broker, clients, version, qos):
    topic = unique_id("paho") + "/t"
    sub = clients(broker.port, version=version)
    assert sub.subscribe(topic, qos) == [qos]
    pub = clients(broker.port, version=version)
    pub.publish(topic, b"payload", qos=qos)  # waits for PUBACK / PUBCOMP
    m = sub.get()
    assert (m.topic, m.payload, m.qos, m.retain, m.dup) == (topic, b"payload", qos, False, False)
    sub.expect_none(0.3)


def test_raw_qos2_both_directions(broker, clients):
    """The whole QoS 2 exchange on the wire: PUBLISH/PUBREC/PUBREL/PUBCOMP in and out."""
    sub = clients.raw(broker.port)
    sub.connect("q2-sub")
    assert sub.subscribe([("q2/t", 2)]).reasons == [2]
    pub = clients.raw(broker.port)
    pub.connect("q2-pub")
    pub.send(mqtt_publish("q2/t", b"x", qos=2, packet_id=7))
    rec = pub.expect(PUBREC)
    assert (rec.packet_id, rec.reason) == (7, 0)
    p = sub.expect(PUBLISH)
    assert (p.topic, p.payload, p.qos, p.dup, p.retain) == ("q2/t", b"x", 2, False, False)
    pub.send(mqtt_ack(PUBREL, 7))
    comp = pub.expect(PUBCOMP)
    assert (comp.packet_id, comp.reason) == (7, 0)
    sub.send(mqtt_ack(PUBREC, p.packet_id))
    rel = sub.expect(PUBREL)
    assert rel.packet_id == p.packet_id and rel.flags == 0x2
    sub.send(mqtt_ack(PUBCOMP, p.packet_id))
    assert sub.no_packet(0.3)


def test_puback_no_matching_subscribers_v5(broker, clients):
    c = clients.raw(broker.port)
    c.connect("nomatch")
    ack = c.publish(unique_id("nobody"), b"x", qos=1, packet_id=3)
    assert (ack.type, ack.packet_id, ack.reason) == (PUBACK, 3, 0x10)


@pytest.mark.parametrize("sub_qos,pub_qos", [(0, 1), (0, 2), (1, 2), (2, 1), (1, 0), (2, 0)])
def test_qos_downgrade(broker, clients, sub_qos, pub_qos):
    """Delivered at min(publish QoS, subscription QoS) — never upgraded."""
    topic = unique_id("dg")
    sub = clients(broker.port)
    assert sub.subscribe(topic, sub_qos) == [sub_qos]
    pub = clients(broker.port)
    pub.publish(topic, b"d", qos=pub_qos)
    assert sub.get().qos == min(sub_qos, pub_qos)


def test_overlapping_subscriptions_one_copy_at_max_qos_with_all_ids(broker, clients):
    sub = clients.raw(broker.port)
    sub.connect("overlap")
    assert sub.subscribe([("ov/+/c", 0)], packet_id=1, props=[(P_SUBSCRIPTION_ID, 11)]).reasons == [0]
    assert sub.subscribe([("ov/#", 2)], packet_id=2, props=[(P_SUBSCRIPTION_ID, 22)]).reasons == [2]
    assert sub.subscribe([("ov/b/c", 1)], packet_id=3).reasons == [1]  # no identifier
    pub = clients(broker.port)
    pub.publish("ov/b/c", b"once", qos=2)
    p = sub.expect(PUBLISH)
    assert (p.topic, p.payload, p.qos) == ("ov/b/c", b"once", 2)
    assert sorted(p.props[P_SUBSCRIPTION_ID]) == [11, 22]
    sub.send(mqtt_ack(PUBREC, p.packet_id))
    sub.expect(PUBREL)
    sub.send(mqtt_ack(PUBCOMP, p.packet_id))
    assert sub.no_packet(0.4)


def test_overlapping_subscriptions_paho_v311_one_copy(broker, clients):
    sub = clients(broker.port, version=V311)
    assert sub.subscribe([("ov3/+", 1), ("ov3/#", 0), ("ov3/x", 2)]) == [1, 0, 2]
    pub = clients(broker.port, version=V311)
    pub.publish("ov3/x", b"1", qos=2)
    m = sub.get()
    assert (m.topic, m.qos) == ("ov3/x", 2)
    sub.expect_none(0.4)


# filter -> topics it must match, among all the topics published below.
WILDCARD_CASES = {
    "sport/tennis/player1": {"sport/tennis/player1"},
    "sport/tennis/+": {"sport/tennis/player1", "sport/tennis/player2", "sport/tennis/"},
    "sport/+/player1": {"sport/tennis/player1", "sport/golf/player1"},
    "sport/#": {"sport", "sport/tennis/player1", "sport/tennis/player2", "sport/golf/player1",
                "sport/tennis/", "sport/"},
    "+/+": {"sport/", "/finance"},
    "/+": {"/finance"},
    "+": {"sport"},
    "#": {"sport", "sport/tennis/player1", "sport/tennis/player2", "sport/golf/player1", "sport/tennis/",
          "sport/", "/finance"},
    "+/tennis/#": {"sport/tennis/player1", "sport/tennis/player2", "sport/tennis/"},
}
WILDCARD_TOPICS = ["sport", "sport/tennis/player1", "sport/tennis/player2", "sport/golf/player1",
                   "sport/tennis/", "sport/", "/finance"]


def test_wildcards(broker, clients):
    """Each filter has its own subscription id; every publish must arrive once, carrying exactly the ids
    of the filters that match it."""
    sub = clients.raw(broker.port)
    sub.connect("wild")
    filters = list(WILDCARD_CASES)
    for i, f in enumerate(filters, start=1):
        assert sub.subscribe([(f, 0)], packet_id=i, props=[(P_SUBSCRIPTION_ID, i)]).reasons == [0]
    pub = clients(broker.port)
    for topic in WILDCARD_TOPICS:
        pub.publish(topic, topic.encode(), qos=1)
        p = sub.expect(PUBLISH)
        want = sorted(i for i, f in enumerate(filters, start=1) if topic in WILDCARD_CASES[f])
        assert (p.topic, p.payload) == (topic, topic.encode())
        assert sorted(p.props.get(P_SUBSCRIPTION_ID, [])) == want, (topic, p)
    assert sub.no_packet(0.3)


def test_invalid_filters_refused(broker, clients):
    sub = clients.raw(broker.port)
    sub.connect("badfilters")
    ack = sub.subscribe([("a/#/b", 0), ("a+/b", 1), ("ok/+", 1), ("#a", 0)])
    assert ack.reasons == [0x8F, 0x8F, 1, 0x8F]
    sub3 = clients.raw(broker.port, version=4)
    sub3.connect("badfilters3", props=None)
    assert sub3.subscribe([("a/#/b", 0), ("ok", 2)]).reasons == [0x80, 2]


def test_dollar_topics_not_matched_by_leading_wildcards(broker, clients):
    sub = clients.raw(broker.port)
    sub.connect("dollar")
    for i, f in enumerate(["#", "+/x", "+/+"], start=1):
        sub.subscribe([(f, 0)], packet_id=i, props=[(P_SUBSCRIPTION_ID, i)])
    sub.subscribe([("$test/#", 0)], packet_id=9, props=[(P_SUBSCRIPTION_ID, 9)])
    # The broker's own $SYS topics (retained) must not reach '#' either.
    pub = clients(broker.port)
    pub.publish("$test/x", b"d", qos=1)
    pub.publish("plain/x", b"p", qos=1)
    got = []
    while True:
        try:
            got.append(sub.recv(0.5))
        except Exception:
            break
    pubs = [(p.topic, sorted(p.props.get(P_SUBSCRIPTION_ID, []))) for p in got if p.type == PUBLISH]
    assert ("$test/x", [9]) in pubs
    assert ("plain/x", [1, 2, 3]) in pubs
    assert all(not t.startswith("$SYS") for t, _ in pubs), pubs
    assert len(pubs) == 2, pubs


def test_sys_topics_explicit_subscription(broker, clients):
    first = clients(broker.port)
    first.subscribe("$SYS/broker/version", 0)
    first.get(3)  # live or retained, depending on whether the first $SYS round already ran
    c = clients(broker.port)
    c.subscribe("$SYS/broker/+", 0)
    topics = {}
    for m in c.get_n(2, 3):
        topics[m.topic] = m
    assert topics["$SYS/broker/version"].retain and topics["$SYS/broker/version"].payload.startswith(b"parley")
    assert topics["$SYS/broker/uptime"].retain
    c.expect_none(0.2)


def test_no_local(broker, clients):
    me = clients.raw(broker.port)
    me.connect("nolocal")
    me.subscribe([("nl/t", 1 | NO_LOCAL)])
    me.publish("nl/t", b"mine", qos=1, packet_id=5)
    assert me.no_packet(0.4)
    other = clients(broker.port)
    other.publish("nl/t", b"theirs", qos=1)
    p = me.expect(PUBLISH)
    assert (p.payload, p.qos) == (b"theirs", 1)


def test_no_local_with_overlapping_subscription(broker, clients):
    """Own messages come back once, through the subscription without No Local only."""
    me = clients.raw(broker.port)
    me.connect("nl-overlap")
    me.subscribe([("nlo/#", 2 | NO_LOCAL)], packet_id=1, props=[(P_SUBSCRIPTION_ID, 1)])
    me.subscribe([("nlo/t", 1)], packet_id=2, props=[(P_SUBSCRIPTION_ID, 2)])
    me.publish("nlo/t", b"mine", qos=2, packet_id=5)
    p = me.expect(PUBLISH)
    assert (p.payload, p.qos, p.props[P_SUBSCRIPTION_ID]) == (b"mine", 1, [2])
    me.send(mqtt_ack(PUBACK, p.packet_id))
    assert me.no_packet(0.3)


def test_without_no_local_own_messages_come_back(broker, clients):
    me = clients(broker.port)
    me.subscribe("loop/t", 1)
    me.publish("loop/t", b"echo", qos=1)
    assert me.get().payload == b"echo"


@pytest.mark.parametrize("rap", [False, True])
def test_retain_as_published(broker, clients, rap):
    topic = unique_id("rap")
    sub = clients.raw(broker.port)
    sub.connect("rap-%d" % rap)
    sub.subscribe([(topic, 0 | (RAP if rap else 0))])
    pub = clients(broker.port)
    pub.publish(topic, b"r", qos=1, retain=True)
    p = sub.expect(PUBLISH)
    assert p.payload == b"r" and p.retain is rap
    pub.publish(topic, b"n", qos=1, retain=False)
    assert sub.expect(PUBLISH).retain is False
    pub.publish(topic, b"", qos=1, retain=True)  # clean up


def test_v311_live_retained_message_has_retain_cleared(broker, clients):
    """3.1.1 (MQTT-3.3.1-9): a message forwarded to an existing subscription is sent with RETAIN 0."""
    topic = unique_id("r311")
    sub = clients(broker.port, version=V311)
    sub.subscribe(topic, 1)
    pub = clients(broker.port, version=V311)
    pub.publish(topic, b"x", qos=1, retain=True)
    m = sub.get()
    assert m.payload == b"x" and m.retain is False
    pub.publish(topic, b"", qos=1, retain=True)


def test_unsubscribe(broker, clients):
    c = clients.raw(broker.port)
    c.connect("unsub")
    c.subscribe([("u/a", 1), ("u/b", 1)])
    ack = c.unsubscribe(["u/a", "u/none"], packet_id=4)
    assert ack.packet_id == 4 and ack.reasons == [0x00, 0x11]
    pub = clients(broker.port)
    pub.publish("u/a", b"gone", qos=1)
    pub.publish("u/b", b"kept", qos=1)
    p = c.expect(PUBLISH)
    assert (p.topic, p.payload) == ("u/b", b"kept")
    assert c.no_packet(0.3)


def test_unsubscribe_paho_v311(broker, clients):
    c = clients(broker.port, version=V311)
    c.subscribe("u3/t", 1)
    c.unsubscribe("u3/t")
    pub = clients(broker.port, version=V311)
    pub.publish("u3/t", b"x", qos=1)
    c.expect_none(0.4)


def test_resubscribe_replaces_options(broker, clients):
    c = clients(broker.port)
    assert c.subscribe("rs/t", 2) == [2]
    assert c.subscribe("rs/t", 0) == [0]
    pub = clients(broker.port)
    pub.publish("rs/t", b"x", qos=2)
    assert c.get().qos == 0
    c.expect_none(0.3)


def test_properties_and_binary_payload_pass_through(broker, clients):
    payload = bytes(range(256)) * 1000  # 256 KB, every byte value
    sub = clients(broker.port)
    sub.subscribe("props/t", 1)
    pub = clients(broker.port)
    p = props(PacketTypes.PUBLISH, ContentType="application/octet-stream", ResponseTopic="props/reply",
              CorrelationData=b"\x00\x01corr", UserProperty=[("k1", "v1"), ("k1", "v2"), ("k2", "")])
    pub.publish("props/t", payload, qos=1, properties=p)
    m = sub.get(5)
    assert m.payload == payload
    assert m.prop("ContentType") == "application/octet-stream"
    assert m.prop("ResponseTopic") == "props/reply"
    assert m.prop("CorrelationData") == b"\x00\x01corr"
    assert m.prop("UserProperty") == [("k1", "v1"), ("k1", "v2"), ("k2", "")]


def test_payload_format_indicator_checked(broker, clients):
    sub = clients.raw(broker.port)
    sub.connect("pfi-sub")
    sub.subscribe([("pfi/t", 1)])
    pub = clients.raw(broker.port)
    pub.connect("pfi-pub")
    # Either answer is allowed (MQTT-3.3.2-... / 4.13): PUBACK 0x99, or DISCONNECT 0x99. Nothing is routed.
    pub.send(mqtt_publish("pfi/t", b"\xff\xfe", qos=1, packet_id=2, props=[(P_PAYLOAD_FORMAT, 1)]))
    answer = pub.recv()
    assert answer.type in (PUBACK, DISCONNECT) and answer.reason == 0x99, answer
    if answer.type == DISCONNECT:
        assert pub.is_closed()
        pub = clients.raw(broker.port)
        pub.connect("pfi-pub")
    ack = pub.publish("pfi/t", "héllo".encode(), qos=1, packet_id=3, props=[(P_PAYLOAD_FORMAT, 1)])
    assert ack.reason == 0
    p = sub.expect(PUBLISH)
    assert p.payload == "héllo".encode() and p.props[P_PAYLOAD_FORMAT] == 1
    assert sub.no_packet(0.3)


def test_paho_v5_subscription_identifiers(broker, clients):
    from paho.mqtt.client import SubscribeOptions
    sub = clients(broker.port)
    sub.subscribe("sid/+", options=SubscribeOptions(qos=1),
                  properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
    sub.subscribe("sid/#", options=SubscribeOptions(qos=0),
                  properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=300000))
    pub = clients(broker.port)
    pub.publish("sid/a", b"x", qos=1)
    m = sub.get()
    assert m.qos == 1 and sorted(m.prop("SubscriptionIdentifier")) == [7, 300000]
    pub.publish("sid/a/b", b"y", qos=1)
    m = sub.get()
    assert m.qos == 0 and m.prop("SubscriptionIdentifier") == [300000]
    sub.expect_none(0.3)
