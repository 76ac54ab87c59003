"""Shared subscriptions ($share/<group>/<filter>, MQTT 5 4.8.2): one copy per group, spread round robin
across the members, every group and every plain subscriber gets its own copy, and messages held for a
member that leaves go to the members that remain."""

from helpers import (DISCONNECT, PINGRESP, PUBACK, PUBLISH, P_RECEIVE_MAXIMUM, P_SESSION_EXPIRY, V311, V5,
                     clients, mqtt_ack, mqtt_pingreq, mqtt_subscribe, unique_id, wait_for)  # noqa: F401


def drain(client, n, timeout=5):
    """n messages from a PahoClient as a list of payload strings."""
    return [m.payload.decode() for m in client.get_n(n, timeout)]


def collect_all(members, total, timeout=5):
    """Reads from every member until `total` messages arrived in all; returns {member index: [payloads]}."""
    got = {i: [] for i in range(len(members))}
    arrived = wait_for(lambda: sum(m.messages.qsize() for m in members) >= total, timeout)
    assert arrived, "only %d of %d messages arrived" % (sum(m.messages.qsize() for m in members), total)
    for i, m in enumerate(members):
        while not m.messages.empty():
            got[i].append(m.messages.get_nowait().payload.decode())
    return got


def test_each_message_goes_to_exactly_one_member_round_robin(broker, clients):
    topic = unique_id("sh")
    members = [clients(broker.port, client_id=unique_id("m%d" % i), version=V5 if i % 2 else V311)
               for i in range(3)]
    for m in members:
        assert m.subscribe("$share/g/" + topic, qos=1) == [1]
    pub = clients(broker.port)
    n = 30
    for i in range(n):
        pub.publish(topic, "m%d" % i, qos=1)
    got = collect_all(members, n)
    everything = [p for ps in got.values() for p in ps]
    assert sorted(everything) == sorted("m%d" % i for i in range(n))  # each exactly once
    for m in members:
        m.expect_none(0.3)  # and nothing more
    # Round robin over members that are all online: an even spread (10 each here).
    counts = sorted(len(ps) for ps in got.values())
    assert counts[0] >= 8 and counts[-1] <= 12, counts
    # Every member receives its share in publish order.
    for ps in got.values():
        assert ps == sorted(ps, key=lambda s: int(s[1:]))


def test_two_groups_and_a_plain_subscriber_each_get_a_copy(broker, clients):
    topic = unique_id("sh")
    g1 = [clients(broker.port) for _ in range(2)]
    g2 = [clients(broker.port) for _ in range(2)]
    plain = clients(broker.port)
    for c in g1:
        assert c.subscribe("$share/one/" + topic, qos=1) == [1]
    for c in g2:
        assert c.subscribe("$share/two/" + topic, qos=1) == [1]
    assert plain.subscribe(topic, qos=1) == [1]
    pub = clients(broker.port)
    n = 10
    for i in range(n):
        pub.publish(topic, "x%d" % i, qos=1)
    expected = sorted("x%d" % i for i in range(n))
    got1 = collect_all(g1, n)
    got2 = collect_all(g2, n)
    assert sorted(got1[0] + got1[1]) == expected
    assert sorted(got2[0] + got2[1]) == expected
    assert got1[0] and got1[1] and got2[0] and got2[1]  # both members of each group took part
    assert drain(plain, n) == ["x%d" % i for i in range(n)]
    for c in g1 + g2 + [plain]:
        c.expect_none(0.3)


def test_shared_wildcard_filter_and_publisher_in_group(broker, clients):
    # A wildcard share filter; the publisher itself is a member (no No Local on shared subscriptions,
    # so it may receive its own messages).
    base = unique_id("sh")
    a = clients(broker.port)
    b = clients(broker.port)
    assert a.subscribe("$share/w/%s/+/x" % base, qos=0) == [0]
    assert b.subscribe("$share/w/%s/+/x" % base, qos=0) == [0]
    for i in range(6):
        a.publish("%s/%d/x" % (base, i), "w%d" % i, qos=0)
    got = collect_all([a, b], 6)
    assert sorted(got[0] + got[1]) == sorted("w%d" % i for i in range(6))
    assert len(got[0]) == 3 and len(got[1]) == 3
    a.publish("%s/1/y" % base, "nomatch")
    a.expect_none(0.3)
    b.expect_none(0.1)


def _slow_member(clients, port, group_filter, client_id, expiry=0):
    """A raw v5 member with Receive Maximum 1 that never acks: after its first message, the broker
    must queue everything else the group hands it."""
    a = clients.raw(port)
    props = {P_RECEIVE_MAXIMUM: 1}
    if expiry:
        props[P_SESSION_EXPIRY] = expiry
    a.connect(client_id, props=props)
    ack = a.subscribe([(group_filter, 1)])
    assert ack.reasons == [1]
    return a


def _publish_batch(clients, port, topic, n, prefix):
    pub = clients(port)
    for i in range(n):
        pub.publish(topic, "%s%d" % (prefix, i), qos=1)
    return ["%s%d" % (prefix, i) for i in range(n)]


def test_messages_queued_for_member_that_unsubscribes_go_to_remaining_member(broker, clients):
    topic = unique_id("sh")
    group = "$share/g/" + topic
    a = _slow_member(clients, broker.port, group, unique_id("slow"))
    b = clients(broker.port)
    assert b.subscribe(group, qos=1) == [1]

    sent = _publish_batch(clients, broker.port, topic, 20, "u")
    # Round robin: half went to A; A holds one in flight (window 1) and the rest are queued.
    first = a.expect(PUBLISH)
    assert first.payload.decode() in sent
    assert a.no_packet(0.3)  # window of 1: nothing more until A acks
    b_first = wait_for(lambda: b.messages.qsize() >= 10, 3)
    assert b_first, b.messages.qsize()

    a.unsubscribe([group], packet_id=7)
    # B now receives everything A had queued; A keeps only the message it already has in flight.
    got_b = drain(b, len(sent) - 1, timeout=5)
    b.expect_none(0.3)
    assert sorted(got_b + [first.payload.decode()]) == sorted(sent)
    # A acks its message and is no longer served by the group.
    a.send(mqtt_ack(PUBACK, first.packet_id))
    assert a.no_packet(0.3)


def test_messages_held_by_member_whose_session_ends_go_to_remaining_member(broker, clients):
    topic = unique_id("sh")
    group = "$share/g/" + topic
    a = _slow_member(clients, broker.port, group, unique_id("slow"))  # session expiry 0
    b = clients(broker.port)
    assert b.subscribe(group, qos=1) == [1]

    sent = _publish_batch(clients, broker.port, topic, 20, "e")
    a.expect(PUBLISH)  # in flight, never acked
    assert wait_for(lambda: b.messages.qsize() >= 10, 3)

    a.disconnect()  # normal DISCONNECT; session expiry 0 ends the session now
    # Nothing is lost: the queued messages and the unacknowledged one all reach B.
    got_b = drain(b, len(sent), timeout=5)
    b.expect_none(0.3)
    assert sorted(got_b) == sorted(sent)


def test_member_dropped_without_disconnect_hands_on_its_messages(broker, clients):
    topic = unique_id("sh")
    group = "$share/g/" + topic
    a = _slow_member(clients, broker.port, group, unique_id("slow"))
    b = clients(broker.port)
    assert b.subscribe(group, qos=1) == [1]
    sent = _publish_batch(clients, broker.port, topic, 10, "k")
    a.expect(PUBLISH)
    assert wait_for(lambda: b.messages.qsize() >= 5, 3)
    a.abort()  # TCP reset, no DISCONNECT
    got_b = drain(b, len(sent), timeout=5)
    assert sorted(got_b) == sorted(sent)


def test_offline_persistent_member_is_skipped_while_another_is_online(broker, clients):
    topic = unique_id("sh")
    group = "$share/g/" + topic
    cid = unique_id("persist")
    a = _slow_member(clients, broker.port, group, cid, expiry=300)
    a.disconnect()
    b = clients(broker.port)
    assert b.subscribe(group, qos=1) == [1]
    sent = _publish_batch(clients, broker.port, topic, 10, "o")
    # Online members are preferred: B gets all of them, and A's session holds nothing.
    assert drain(b, 10) == sent
    a2 = clients.raw(broker.port)
    ack = a2.connect(cid, clean=False, props={P_SESSION_EXPIRY: 300})
    assert ack.session_present
    assert a2.no_packet(0.5)


def test_messages_for_only_member_offline_are_queued_until_it_returns(broker, clients):
    topic = unique_id("sh")
    group = "$share/g/" + topic
    cid = unique_id("persist")
    a = clients(broker.port, client_id=cid, version=V311, clean=False)
    assert a.subscribe(group, qos=1) == [1]
    a.disconnect()
    sent = _publish_batch(clients, broker.port, topic, 5, "q")
    a = clients(broker.port, client_id=cid, version=V311, clean=False)
    assert a.session_present
    assert drain(a, 5) == sent


def test_invalid_share_names_refused_with_0x8f(broker, clients):
    c = clients.raw(broker.port)
    c.connect(unique_id("bad"))
    bad = ["$share/g", "$share//t", "$share/g+/t", "$share/g#/t", "$share/g/", "$share/g/a/#/b",
           "$share/g/a+"]
    ack = c.subscribe([(f, 1) for f in bad] + [("$share/ok/t", 1)], packet_id=3)
    assert ack.packet_id == 3
    assert ack.reasons == [0x8F] * len(bad) + [1]
    # The connection stays usable.
    c.send(mqtt_pingreq())
    c.expect(PINGRESP)


def test_invalid_share_names_refused_with_0x80_on_v311(broker, clients):
    c = clients.raw(broker.port, version=4)
    c.connect(unique_id("bad311"))
    ack = c.subscribe([("$share/g", 1), ("$share//t", 0), ("$share/ok/t", 2)], packet_id=9)
    assert ack.reasons == [0x80, 0x80, 2]


def test_no_local_on_shared_subscription_is_a_protocol_error(broker, clients):
    healthy = clients(broker.port)
    topic = unique_id("sh")
    assert healthy.subscribe(topic, qos=1) == [1]
    c = clients.raw(broker.port)
    c.connect(unique_id("nolocal"))
    c.send(mqtt_subscribe(2, [("$share/g/" + topic, 0x04 | 1)]))
    packets = c.recv_until_closed(3)
    assert [p.type for p in packets] == [DISCONNECT], packets
    assert packets[0].reason == 0x82
    # Nobody else was affected.
    pub = clients(broker.port)
    pub.publish(topic, "still here", qos=1)
    assert healthy.get().payload == b"still here"


def test_shared_subscriptions_disabled_refused_with_0x9e(make_broker, clients):
    b = make_broker(limits="shared_subscriptions = false")
    c = clients.raw(b.port)
    ack = c.connect(unique_id("nosh"))
    assert ack.props.get(0x2A) == 0  # Shared Subscription Available = 0
    assert c.subscribe([("$share/g/t", 1), ("t", 1)]).reasons == [0x9E, 1]


def test_retained_messages_not_sent_on_shared_subscribe(broker, clients):
    # MQTT 5 3.3.1.3: retained messages are not sent for a shared subscription.
    topic = unique_id("sh")
    pub = clients(broker.port)
    pub.publish(topic, "retained", qos=1, retain=True)
    m = clients(broker.port)
    assert m.subscribe("$share/g/" + topic, qos=1) == [1]
    m.expect_none(0.5)
    pub.publish(topic, "live", qos=1)
    assert m.get().payload == b"live"
    pub.publish(topic, b"", qos=1, retain=True)  # clear it


def test_messages_of_offline_member_go_to_others_when_its_session_expires(broker, clients):
    # A persistent member that goes offline may keep what it holds until it returns (MQTT 5 4.8.2); when
    # its session expires instead, the messages go to the remaining members.
    topic = unique_id("sh")
    group = "$share/g/" + topic
    a = _slow_member(clients, broker.port, group, unique_id("expiring"), expiry=1)
    b = clients(broker.port)
    assert b.subscribe(group, qos=1) == [1]
    sent = _publish_batch(clients, broker.port, topic, 10, "x")
    a.expect(PUBLISH)
    assert wait_for(lambda: b.messages.qsize() >= 5, 3)
    a.disconnect()
    got_b = drain(b, len(sent), timeout=5)  # 5 at once, the other 5 once A's session expired (1 s)
    b.expect_none(0.3)
    assert sorted(got_b) == sorted(sent)


def test_round_robin_stays_even_with_an_offline_member(broker, clients):
    # An offline persistent member is skipped; the online members still share the load evenly.
    topic = unique_id("sh")
    group = "$share/g/" + topic
    off = clients(broker.port, client_id=unique_id("off"), version=V311, clean=False)
    assert off.subscribe(group, qos=1) == [1]
    off.disconnect()
    members = [clients(broker.port) for _ in range(2)]
    for m in members:
        assert m.subscribe(group, qos=1) == [1]
    sent = _publish_batch(clients, broker.port, topic, 30, "r")
    got = collect_all(members, 30)
    assert sorted(got[0] + got[1]) == sorted(sent)
    counts = sorted(len(v) for v in got.values())
    assert counts[0] >= 12, counts  # 15 / 15 ideally; a 10 / 20 split means the skip skews the rotation
