"""Access control, enforced by the server: members only, own device topics only, no anonymous IM, no forged
sender, presence only between users who share a conversation."""
import json
import time

import paho.mqtt.client as mqtt

from helpers import PUBACK, SUBACK, RawClient, mqtt_publish, mqtt_subscribe
from imclient import Device, pb


def test_non_member_can_do_nothing_in_a_conversation(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    eve = Device(b.port, "eve", "eve-phone")
    d = alice.open_direct("bob").conv_id
    g = alice.create_group("g", ["bob"]).conv_id
    s = alice.send(d, "private").seq
    alice.send(g, "private too")
    NM = pb.ERR_NOT_MEMBER
    for conv in (d, g):
        eve.expect_error(NM, send=pb.SendReq(conv_id=conv, client_msg_id="e1", text="let me in"))
        eve.expect_error(NM, history=pb.HistoryReq(conv_id=conv))
        eve.expect_error(NM, range=pb.RangeReq(conv_id=conv, from_seq=1, to_seq=3))
        eve.expect_error(NM, list_members=pb.ListMembersReq(conv_id=conv))
        eve.expect_error(NM, get_conversation=pb.GetConversationReq(conv_id=conv))
        eve.expect_error(NM, mark_read=pb.MarkReadReq(conv_id=conv, seq=2))
        eve.expect_error(NM, mark_delivered=pb.MarkDeliveredReq(conv_id=conv, seq=2))
        eve.expect_error(NM, edit=pb.EditReq(conv_id=conv, seq=2, text="x"))
        eve.expect_error(NM, recall=pb.RecallReq(conv_id=conv, seq=2))
        eve.expect_error(NM, delete_for_me=pb.DeleteForMeReq(conv_id=conv, seqs=[2]))
        eve.typing(conv)
    eve.expect_error(NM, add_members=pb.AddMembersReq(conv_id=g, users=["eve"]))
    eve.expect_error(NM, leave=pb.LeaveReq(conv_id=g))
    eve.expect_error(NM, dissolve=pb.DissolveReq(conv_id=g))
    # Unknown conversations are not found.
    NF = pb.ERR_NOT_FOUND
    for op in (dict(send=pb.SendReq(conv_id="g_nope", client_msg_id="x", text="x")),
               dict(history=pb.HistoryReq(conv_id="g_nope")),
               dict(range=pb.RangeReq(conv_id="g_nope", from_seq=1, to_seq=2)),
               dict(list_members=pb.ListMembersReq(conv_id="g_nope")),
               dict(mark_read=pb.MarkReadReq(conv_id="d_nope", seq=1))):
        eve.expect_error(NF, **op)
    # Nothing eve tried changed anything, and no typing reached anyone.
    h = alice.history(d)
    assert h.max_seq == s and [m.text for m in h.messages if m.type == pb.MSG_TEXT] == ["private"]
    assert alice.get_conversation(g).member_count == 2
    for dev in (alice, bob):
        dev.no_event(lambda e: e.HasField("typing"), timeout=0.3)
    eve.no_event(lambda e: True, timeout=0.1)
    for dev in (alice, bob, eve):
        dev.close()


def test_cannot_subscribe_to_other_devices_or_all_of_im(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    eve = Device(b.port, "eve", "eve-phone")
    for topic in ("$im/v1/d/bob-phone/pb", "$im/v1/d/bob-phone/#", "$im/#", "$im/v1/#", "$im/v1/d/+/pb",
                  "$im/v1/d/#", "$im/v1/req", "$im/v1/d/eve-phone", "$im/v1/d/eve-phonex/pb",
                  "$share/grp/$im/v1/d/bob-phone/pb", "$share/grp/$im/#"):
        assert eve.subscribe_topic(topic) == [0x80], topic
    # Her own topics are fine (any filter below them).
    assert eve.subscribe_topic("$im/v1/d/eve-phone/json") == [1]
    assert eve.subscribe_topic("$im/v1/d/eve-phone/#") == [1]
    # Plain wildcards do not match $ topics.
    assert eve.subscribe_topic("#") == [1]
    assert eve.subscribe_topic("+/v1/#") == [1]
    conv = alice.open_direct("bob").conv_id
    ack = alice.send(conv, "for bob only")
    bob.wait_message(conv, ack.seq)
    time.sleep(0.3)
    assert not any(b"for bob only" in r.payload for r in eve.raw), eve.raw
    for dev in (alice, bob, eve):
        dev.close()


def test_cannot_publish_to_a_device_topic(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    conv = alice.open_direct("bob").conv_id
    fake = pb.ServerFrame(event=pb.Event(message=pb.Message(conv_id=conv, seq=99, sender="alice",
                                                            type=pb.MSG_TEXT, text="forged")))
    # Paho v3.1.1: the broker drops it.
    eve = Device(b.port, "eve", "eve-phone")
    info = eve.client.publish("$im/v1/d/bob-phone/pb", fake.SerializeToString(), qos=1)
    info.wait_for_publish(5)
    # Raw MQTT 5: refused with 0x87 (not authorized).
    raw = RawClient(b.port, version=5)
    raw.connect("eve-raw", username="eve", expect_reason=0)
    for i, topic in enumerate(("$im/v1/d/bob-phone/pb", "$im/v1/d/eve-raw/pb", "$im/v1/req/xml", "$im/v2/req",
                               "$im/v1/d/bob-phone/json")):
        raw.send(mqtt_publish(topic, fake.SerializeToString(), qos=1, packet_id=10 + i))
        p = raw.expect(PUBACK)
        assert p.packet_id == 10 + i and p.reason == 0x87, (topic, p)
    raw.sock.close()
    time.sleep(0.3)
    assert not any(b"forged" in r.payload for r in bob.raw)
    assert len(bob.bad_frames) == 0
    for dev in (alice, bob, eve):
        dev.close()


def test_no_username_no_im(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    # Anonymous MQTT is allowed by this config, but not the IM topics.
    c = mqtt.Client(client_id="anon-dev", protocol=mqtt.MQTTv311)
    got = []
    c.on_message = lambda cl, ud, msg: got.append(msg)
    acks = {}
    c.on_subscribe = lambda cl, ud, mid, q: acks.__setitem__(mid, list(q))
    c.connect("127.0.0.1", b.port)
    c.loop_start()
    try:
        _, mid = c.subscribe("$im/v1/d/anon-dev/pb", qos=1)
        deadline = time.time() + 5
        while mid not in acks and time.time() < deadline:
            time.sleep(0.02)
        assert acks.get(mid) == [0x80]
        c.publish("$im/v1/req", pb.Request(req_id="anon", open_direct=pb.OpenDirectReq(peer="alice"))
                  .SerializeToString(), qos=1).wait_for_publish(5)
        time.sleep(0.3)
        assert got == []
    finally:
        c.loop_stop()
        c.disconnect()
    # An empty user name is no user either.
    raw = RawClient(b.port, version=5)
    raw.connect("empty-user", username="", expect_reason=None)
    raw.send(mqtt_subscribe(1, [("$im/v1/d/empty-user/pb", 1)]))
    p = raw.expect(SUBACK)
    assert p.reasons[0] >= 0x80
    raw.send(mqtt_publish("$im/v1/req", pb.Request(req_id="x", open_direct=pb.OpenDirectReq(peer="alice"))
                          .SerializeToString(), qos=1, packet_id=2))
    assert raw.expect(PUBACK).reason == 0x87
    raw.sock.close()
    # No conversation came into being.
    assert len(alice.sync().convs) == 0
    alice.close()


def test_sender_is_always_the_authenticated_user(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-json", fmt="json")
    conv = alice.open_direct("bob").conv_id
    # A JSON request that tries to name its sender and device: unknown fields are ignored.
    doc = {"reqId": "forge", "send": {"convId": conv, "clientMsgId": "f1", "text": "who am I?",
                                      "sender": "alice", "senderDevice": "alice-phone"}}
    bob.client.publish("$im/v1/req/json", json.dumps(doc).encode(), qos=1)
    ack = bob.wait_response("forge").ack
    m = alice.wait_message(conv, ack.seq)
    assert m.sender == "bob" and m.sender_device == "bob-json"
    # A device whose client id looks like someone else's is still its user.
    eve = Device(b.port, "eve", "alice-tab")
    c2 = eve.open_direct("bob").conv_id
    ack = eve.send(c2, "hi, eve here")
    hist = bob.history(c2).messages
    assert hist[-1].sender == "eve" and hist[-1].sender_device == "alice-tab"
    assert [x.conversation.conv_id for x in alice.sync().convs] == [conv]
    for dev in (alice, bob, eve):
        dev.close()


def test_client_id_takeover_by_another_user_does_not_leak_events(make_broker):
    """eve connects with bob's client id (MQTT lets a new connection take a client id over). She may subscribe to
    that device topic, since the id is hers now, but nothing of bob's may reach her there, and bob is no longer
    online through it. (Tried several times: the outcome must not depend on the order in which the broker
    reports the new connection and the end of the old one.)"""
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob").conv_id
    for i in range(6):
        cid = "bob-phone-%d" % i
        bob = Device(b.port, "bob", cid)
        bob.client.loop_stop()  # keep bob's Paho from reconnecting once it is kicked
        eve = Device(b.port, "eve", cid)
        time.sleep(0.1)
        alice.send(conv, "for bob's eyes only %d" % i)
        time.sleep(0.3)
        leaked = [r for r in eve.raw if b"eyes only" in r.payload]
        assert leaked == [], "attempt %d: bob's messages reached eve: %s" % (i, leaked)
        members = {m.user: m.online for m in alice.members(conv).members}
        assert members["bob"] is False, "attempt %d: bob still shown online through eve's connection" % i
        eve.close()
        bob.client.socket() and bob.client.socket().close()
    alice.close()


def test_presence_only_for_users_sharing_a_conversation(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    carol = Device(b.port, "carol", "carol-phone")
    Device(b.port, "eve", "eve-phone").close()
    alice.open_direct("bob")
    g = carol.create_group("g", ["bob"]).conv_id
    p = bob.presence(["alice", "carol", "eve", "nobody"])
    assert sorted(x.user for x in p.users) == ["alice", "carol"]
    assert all(x.online for x in p.users)
    p = alice.presence(["bob", "carol", "eve"])
    assert [x.user for x in p.users] == ["bob"]
    # Once bob leaves the group, carol and bob share nothing.
    bob.leave(g)
    assert [x.user for x in carol.presence(["bob"]).users] == []
    # Yourself: always.
    assert [x.user for x in carol.presence(["carol"]).users] == ["carol"]
    carol.expect_error(pb.ERR_TOO_LARGE, presence=pb.PresenceReq(users=["u%d" % i for i in range(101)]))
    for dev in (alice, bob, carol):
        dev.close()


def test_client_id_that_cannot_name_a_device_topic(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    for cid in ("bad/id", "bad+id", "bad#id"):
        raw = RawClient(b.port, version=5)
        raw.connect(cid, username="mallory", expect_reason=0)
        raw.send(mqtt_subscribe(1, [("$im/v1/d/bad/#", 1)]))
        assert raw.expect(SUBACK).reasons[0] >= 0x80
        raw.send(mqtt_publish("$im/v1/req", pb.Request(req_id="x", open_direct=pb.OpenDirectReq(peer="alice"))
                              .SerializeToString(), qos=1, packet_id=2))
        assert raw.expect(PUBACK).reason == 0x87, cid
        raw.sock.close()
    assert len(alice.sync().convs) == 0
    alice.close()
