"""Several devices per user: live delivery to every online device of every member except the sending one, and
the MQTT 5 request/response extras (response topic inside the device's own topics, correlation data)."""
import uuid

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from imclient import Device, is_msg, pb


def _four(b):
    """alice and bob, each with a Paho v3.1.1 phone and a Paho v5 tablet."""
    return (Device(b.port, "alice", "alice-phone"), Device(b.port, "alice", "alice-tab", v5=True),
            Device(b.port, "bob", "bob-phone"), Device(b.port, "bob", "bob-tab", v5=True))


def test_send_reaches_every_device_but_the_sending_one(make_broker):
    b = make_broker()
    a1, a2, b1, b2 = _four(b)
    conv = a1.open_direct("bob").conv_id
    for d in (a1, a2, b1, b2):
        d.take_events()

    ack = a1.send(conv, "from alice's phone", cmid="p1")
    for d in (a2, b1, b2):
        m = d.wait_message(conv, ack.seq)
        assert m.text == "from alice's phone" and m.sender == "alice" and m.sender_device == "alice-phone"
        assert m.msg_id == ack.msg_id and m.server_ts == ack.server_ts and m.type == pb.MSG_TEXT
    a1.no_event(is_msg(conv), timeout=0.5)

    # The other way round, from a v5 device.
    ack2 = b2.send(conv, "from bob's tablet", cmid="t1")
    assert ack2.seq == ack.seq + 1
    for d in (a1, a2, b1):
        assert d.wait_message(conv, ack2.seq).text == "from bob's tablet"
    b2.no_event(is_msg(conv, ack2.seq), timeout=0.5)
    # Exactly one copy per device.
    for d in (a1, a2, b1, b2):
        extra = [e for e in d.take_events() if e.HasField("message") and e.message.seq in (ack.seq, ack2.seq)]
        assert extra == [], (d.device, extra)
    for d in (a1, a2, b1, b2):
        d.close()


def test_group_send_reaches_all_devices_of_all_members(make_broker):
    b = make_broker()
    a1, a2, b1, b2 = _four(b)
    c1 = Device(b.port, "carol", "carol-phone")
    conv = a2.create_group("trio", ["bob", "carol"]).conv_id
    ack = b1.send(conv, "hello group")
    for d in (a1, a2, b2, c1):
        assert d.wait_message(conv, ack.seq).text == "hello group"
    b1.no_event(is_msg(conv, ack.seq), timeout=0.5)
    for d in (a1, a2, b1, b2, c1):
        d.close()


def test_a_device_that_connects_later_gets_later_messages_live(make_broker):
    b = make_broker()
    a1 = Device(b.port, "alice", "alice-phone")
    b1 = Device(b.port, "bob", "bob-phone")
    conv = a1.open_direct("bob").conv_id
    a1.send(conv, "before the tablet")
    b2 = Device(b.port, "bob", "bob-tab", v5=True)
    ack = a1.send(conv, "after the tablet")
    assert b2.wait_message(conv, ack.seq).text == "after the tablet"
    assert b1.wait_message(conv, ack.seq).text == "after the tablet"
    # A device that went away gets nothing more (and the others still do).
    b1.close()
    ack = a1.send(conv, "phone is off")
    assert b2.wait_message(conv, ack.seq).text == "phone is off"
    for d in (a1, b2):
        d.close()


def _v5_request(dev, req, response_topic, correlation):
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    dev.publish_request(req, qos=1, properties=props)


def test_mqtt5_response_topic_and_correlation_data(make_broker):
    b = make_broker()
    a2 = Device(b.port, "alice", "alice-tab", v5=True)
    Device(b.port, "bob", "bob-phone").close()
    # A custom response topic below the device's own prefix: it may subscribe there.
    reply_topic = "$im/v1/d/alice-tab/replies/1"
    assert a2.subscribe_topic(reply_topic) == [1]
    req = pb.Request(req_id="r-open", open_direct=pb.OpenDirectReq(peer="bob"))
    _v5_request(a2, req, reply_topic, b"corr-42")
    raw = a2.wait_raw(lambda r: r.topic == reply_topic)
    frame = pb.ServerFrame.FromString(raw.payload)
    assert frame.response.req_id == "r-open" and frame.response.conversation.type == pb.CONV_DIRECT
    assert raw.properties is not None and raw.properties.CorrelationData == b"corr-42"
    assert raw.properties.ContentType == "application/x-protobuf"
    # The answer went to the response topic only, not also to the device topic.
    assert a2.wait_response("r-open", timeout=2) is not None  # decoded from the reply topic
    assert [r for r in a2.raw if r.topic == a2.topic and pb.ServerFrame.FromString(r.payload).response.req_id
            == "r-open"] == []

    # A send with correlation data answered on the same response topic, correlation echoed.
    conv = frame.response.conversation.conv_id
    req = pb.Request(req_id="r-send", send=pb.SendReq(conv_id=conv, client_msg_id="c1", text="hi"))
    _v5_request(a2, req, reply_topic, b"\x00\x01binary\xff")
    raw = a2.wait_raw(lambda r: r.topic == reply_topic and
                      pb.ServerFrame.FromString(r.payload).response.req_id == "r-send")
    assert raw.properties.CorrelationData == b"\x00\x01binary\xff"
    assert pb.ServerFrame.FromString(raw.payload).response.ack.seq == 2
    a2.close()


def test_mqtt5_response_topic_outside_own_prefix_is_ignored(make_broker):
    b = make_broker()
    a2 = Device(b.port, "alice", "alice-tab", v5=True)
    victim = Device(b.port, "bob", "bob-tab", v5=True)
    conv = a2.open_direct("bob").conv_id
    victim.take_events()
    # alice may subscribe to a plain topic, but a response topic there is not honoured.
    assert a2.subscribe_topic("replies/alice") in ([1], [0])
    cases = [
        ("$im/v1/d/bob-tab/pb", b"c-victim"),      # another device's topic
        ("$im/v1/d/alice-tabx/pb", b"c-prefix"),    # a device id that merely starts like ours
        ("replies/alice", b"c-plain"),              # outside $im altogether
        ("$im/v1/d/alice-tab/", b"c-empty"),        # the bare prefix, no topic below it
    ]
    for i, (topic, corr) in enumerate(cases):
        rid = "r%d" % i
        req = pb.Request(req_id=rid, send=pb.SendReq(conv_id=conv, client_msg_id="m%d" % i, text="x%d" % i))
        _v5_request(a2, req, topic, corr)
        # The answer comes on the device's own topic.
        raw = a2.wait_raw(lambda r: r.topic == a2.topic and
                          pb.ServerFrame.FromString(r.payload).response.req_id == rid)
        assert pb.ServerFrame.FromString(raw.payload).response.ack.seq == 2 + i
        assert not any(r.topic == topic for r in a2.raw), "answered on %s" % topic
    # bob's device saw alice's messages as events, but never one of her responses.
    for i in range(len(cases)):
        victim.wait_message(conv, 2 + i)
    assert not any(pb.ServerFrame.FromString(r.payload).HasField("response") for r in victim.raw)
    a2.close()
    victim.close()


def test_v311_device_gets_responses_on_its_device_topic(make_broker):
    b = make_broker()
    a1 = Device(b.port, "alice", "alice-phone")
    rid = a1.request_async(open_direct=pb.OpenDirectReq(peer="bob"))
    resp = a1.wait_response(rid)
    assert resp.conversation.peers == ["bob"]
    raw = a1.wait_raw(lambda r: True)
    assert raw.topic == "$im/v1/d/alice-phone/pb"
    # Requests at QoS 0 are answered too.
    rid = uuid.uuid4().hex
    a1.publish_request(pb.Request(req_id=rid, get_conversation=pb.GetConversationReq(
        conv_id=resp.conversation.conv_id)), qos=0)
    assert a1.wait_response(rid).conversation.conv_id == resp.conversation.conv_id
    a1.close()


def test_one_direct_conversation_per_pair_from_any_side_and_device(make_broker):
    b = make_broker()
    a1, a2, b1, b2 = _four(b)
    ids = {a1.open_direct("bob").conv_id, b2.open_direct("alice").conv_id, a2.open_direct("bob").conv_id,
           b1.open_direct("alice").conv_id}
    assert len(ids) == 1
    conv = ids.pop()
    assert a2.history(conv).max_seq == 1  # created once
    assert b1.get_conversation(conv).peers == ["alice"] and a1.get_conversation(conv).peers == ["bob"]
    for d in (a1, a2, b1, b2):
        d.close()


def test_live_events_arrive_in_seq_order_without_holes(make_broker):
    """Two senders at once (pipelined requests): every other device sees one ordered stream."""
    b = make_broker()
    a1, a2, b1, b2 = _four(b)
    conv = a1.create_group("busy", ["bob"]).conv_id
    for d in (a2, b1, b2):
        d.wait_message(conv, 1)
    for d in (a1, a2, b1, b2):
        d.take_events()
    rids = []
    for i in range(40):
        rids.append((a1, a1.request_async(send=pb.SendReq(conv_id=conv, client_msg_id="a%d" % i, text="a%d" % i))))
        rids.append((b1, b1.request_async(send=pb.SendReq(conv_id=conv, client_msg_id="b%d" % i, text="b%d" % i))))
    seqs = sorted(d.wait_response(r).ack.seq for d, r in rids)
    assert seqs == list(range(2, 82))
    for d in (a2, b2):
        d.wait_message(conv, 81)
        got = [e.message.seq for e in d.events if e.HasField("message") and e.message.conv_id == conv]
        got.append(81)
        assert got == list(range(2, 82)), d.device
    # Each sender's own order is kept too.
    hist = [m for m in a2.history(conv, limit=200).messages if m.type == pb.MSG_TEXT]
    for p in ("a", "b"):
        mine = [int(m.text[1:]) for m in hist if m.text.startswith(p)]
        assert mine == list(range(40))
    for d in (a1, a2, b1, b2):
        d.close()
