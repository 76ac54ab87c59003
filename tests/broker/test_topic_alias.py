"""Topic aliases (MQTT 5 3.3.2.3.4): client -> broker within our Topic Alias Maximum, broker -> client when the
client allows them, and DISCONNECT 0x94 / 0x82 for bad aliases."""
import pytest

from helpers import DISCONNECT, PUBLISH, P_TOPIC_ALIAS, P_TOPIC_ALIAS_MAXIMUM, mqtt_publish


def test_connack_advertises_topic_alias_maximum(broker, clients, make_broker):
    c = clients.raw(broker.port)
    assert c.connect("tam").props[P_TOPIC_ALIAS_MAXIMUM] == 64
    b = make_broker(limits="topic_alias_maximum = 3")
    c = clients.raw(b.port)
    assert c.connect("tam3").props[P_TOPIC_ALIAS_MAXIMUM] == 3


def test_client_to_broker_aliases(broker, clients):
    sub = clients(broker.port)
    sub.subscribe("ta/#", 1)
    pub = clients.raw(broker.port)
    pub.connect("aliaser")
    assert pub.publish("ta/x", b"1", qos=1, packet_id=1, props=[(P_TOPIC_ALIAS, 1)]).reason == 0
    assert pub.publish("", b"2", qos=1, packet_id=2, props=[(P_TOPIC_ALIAS, 1)]).reason == 0
    pub.publish("ta/y", b"3", qos=0, props=[(P_TOPIC_ALIAS, 2)])
    pub.publish("", b"4", qos=0, props=[(P_TOPIC_ALIAS, 2)])
    # Re-map alias 1 to another topic.
    pub.publish("ta/z", b"5", qos=1, packet_id=3, props=[(P_TOPIC_ALIAS, 1)])
    pub.publish("", b"6", qos=1, packet_id=4, props=[(P_TOPIC_ALIAS, 1)])
    got = [(m.topic, m.payload) for m in sub.get_n(6)]
    assert got == [("ta/x", b"1"), ("ta/x", b"2"), ("ta/y", b"3"), ("ta/y", b"4"), ("ta/z", b"5"), ("ta/z", b"6")]


def test_alias_is_stripped_before_forwarding(broker, clients):
    sub = clients.raw(broker.port)
    sub.connect("noalias-sub")  # no Topic Alias Maximum: must never receive an alias
    sub.subscribe([("strip/t", 0)])
    pub = clients.raw(broker.port)
    pub.connect("strip-pub")
    pub.publish("strip/t", b"a", props=[(P_TOPIC_ALIAS, 5)])
    pub.publish("", b"b", props=[(P_TOPIC_ALIAS, 5)])
    for payload in (b"a", b"b"):
        p = sub.expect(PUBLISH)
        assert (p.topic, p.payload) == ("strip/t", payload)
        assert P_TOPIC_ALIAS not in p.props


@pytest.mark.parametrize("alias", [0, 4, 65535])
def test_alias_out_of_range_disconnect_0x94(make_broker, clients, alias):
    b = make_broker(limits="topic_alias_maximum = 3")
    c = clients.raw(b.port)
    c.connect("bad-alias")
    c.send(mqtt_publish("x/y", b"p", qos=1, packet_id=1, props=[(P_TOPIC_ALIAS, alias)]))
    d = c.expect(DISCONNECT)
    assert d.reason == 0x94
    assert c.is_closed()


def test_alias_when_broker_allows_none(make_broker, clients):
    b = make_broker(limits="topic_alias_maximum = 0")
    c = clients.raw(b.port)
    ack = c.connect("zero-alias")
    assert ack.props.get(P_TOPIC_ALIAS_MAXIMUM, 0) == 0
    c.send(mqtt_publish("x/y", b"p", props=[(P_TOPIC_ALIAS, 1)]))
    assert c.expect(DISCONNECT).reason == 0x94


def test_unknown_alias_is_protocol_error(broker, clients):
    c = clients.raw(broker.port)
    c.connect("unknown-alias")
    c.send(mqtt_publish("", b"p", qos=1, packet_id=1, props=[(P_TOPIC_ALIAS, 7)]))
    assert c.expect(DISCONNECT).reason == 0x82
    assert c.is_closed()


def test_aliases_do_not_survive_reconnect(broker, clients):
    c = clients.raw(broker.port)
    c.connect("alias-reconnect", clean=False)
    c.publish("ar/t", b"p", props=[(P_TOPIC_ALIAS, 1)])
    c.disconnect()
    c = clients.raw(broker.port)
    c.connect("alias-reconnect", clean=False)
    c.send(mqtt_publish("", b"p", props=[(P_TOPIC_ALIAS, 1)]))
    assert c.expect(DISCONNECT).reason == 0x82


def test_broker_to_client_aliases(broker, clients):
    sub = clients.raw(broker.port)
    sub.connect("alias-sub", props=[(P_TOPIC_ALIAS_MAXIMUM, 2)])
    sub.subscribe([("out/#", 0)])
    pub = clients(broker.port)
    seq = ["out/a", "out/a", "out/b", "out/c", "out/b", "out/a", "out/c"]
    for i, t in enumerate(seq):
        pub.publish(t, b"%d" % i, qos=1)
    mapping = {}
    for i, t in enumerate(seq):
        p = sub.expect(PUBLISH)
        assert p.payload == b"%d" % i
        alias = p.props.get(P_TOPIC_ALIAS)
        if p.topic:
            assert p.topic == t
            if alias is not None:
                assert 1 <= alias <= 2
                mapping[alias] = p.topic
        else:
            assert alias is not None, "empty topic without alias"
            assert mapping[alias] == t
    # The broker used aliases and never more than the client allowed.
    assert set(mapping) <= {1, 2} and mapping
    # out/a and out/b were aliased on first use, so their repeats were sent with an empty topic.
    assert mapping == {1: "out/a", 2: "out/b"}


def test_broker_to_client_alias_on_repeat_has_empty_topic(broker, clients):
    sub = clients.raw(broker.port)
    sub.connect("alias-sub2", props=[(P_TOPIC_ALIAS_MAXIMUM, 1)])
    sub.subscribe([("rep/t", 1)])
    pub = clients(broker.port)
    pub.publish("rep/t", b"1", qos=1)
    pub.publish("rep/t", b"2", qos=1)
    p1, p2 = sub.expect(PUBLISH), sub.expect(PUBLISH)
    assert (p1.topic, p1.props.get(P_TOPIC_ALIAS)) == ("rep/t", 1)
    assert (p2.topic, p2.props.get(P_TOPIC_ALIAS), p2.payload) == ("", 1, b"2")


# Not tested with mosquitto_sub: libmosquitto 2.0.11 sends a Topic Alias Maximum when asked (-D connect
# topic-alias-maximum N) but rejects any PUBLISH with an empty topic as a protocol error, so it cannot
# take aliases from any broker (checked by hand against this one).
