"""Idempotent sends: one message per (user, client_msg_id), whatever the retry path (QoS 1, QoS 2, a DUP
resend, a new MQTT session under another client id), identical acks, `duplicate` on the resends; the dedup
window from the configuration."""
import time

from helpers import PUBACK, PUBLISH, SUBACK, RawClient, mqtt_publish, mqtt_subscribe
from imclient import Device, full_history, is_msg, pb


def _ack_key(a):
    return (a.conv_id, a.seq, a.server_ts, a.msg_id)


def _texts(dev, conv):
    return [(m.seq, m.text) for m in full_history(dev, conv) if m.type == pb.MSG_TEXT]


def test_same_client_msg_id_three_ways_is_one_message(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    conv = alice.open_direct("bob").conv_id
    req = pb.SendReq(conv_id=conv, client_msg_id="same-1", text="only once")

    first = alice.request(qos=1, send=req).ack
    assert not first.duplicate and first.seq == 2
    second = alice.request(qos=2, send=req).ack
    # A new MQTT session, another client id of the same user (the app was reinstalled, or a second device).
    other = Device(b.port, "alice", "alice-tab", v5=True)
    third = other.request(qos=1, send=req).ack
    assert second.duplicate and third.duplicate
    assert _ack_key(first) == _ack_key(second) == _ack_key(third)
    # A resend with a different body is still the first message (the id decides).
    changed = alice.request(send=pb.SendReq(conv_id=conv, client_msg_id="same-1", text="edited?")).ack
    assert changed.duplicate and _ack_key(changed) == _ack_key(first)

    assert _texts(bob, conv) == [(2, "only once")]
    bob.wait_message(conv, 2)
    bob.no_event(is_msg(conv, mtype=pb.MSG_TEXT), timeout=0.5)  # delivered live once
    s = bob.sync()
    assert s.convs[0].conversation.unread == 1 and s.convs[0].conversation.max_seq == 2
    # The next new message gets the next seq: the duplicates took none.
    assert alice.send(conv, "next").seq == 3
    for d in (alice, bob, other):
        d.close()


def test_resends_in_flight_together_get_one_message(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob").conv_id
    rids = [alice.request_async(send=pb.SendReq(conv_id=conv, client_msg_id="burst", text="x")) for _ in range(5)]
    acks = [alice.wait_response(r).ack for r in rids]
    assert len({_ack_key(a) for a in acks}) == 1
    assert sum(1 for a in acks if not a.duplicate) == 1
    assert _texts(alice, conv) == [(2, "x")]
    alice.close()


def test_qos1_dup_resend_of_the_same_packet(make_broker):
    """A raw v3.1.1 client resends the very same PUBLISH (same packet id, DUP set), as after a lost PUBACK."""
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob").conv_id
    raw = RawClient(b.port, version=4)
    raw.connect("alice-raw", username="alice", expect_reason=0)
    raw.send(mqtt_subscribe(1, [("$im/v1/d/alice-raw/pb", 1)], version=4))
    assert raw.expect(SUBACK).reasons == [1]
    payload = pb.Request(req_id="dup", send=pb.SendReq(conv_id=conv, client_msg_id="raw-1", text="once")
                         ).SerializeToString()
    raw.send(mqtt_publish("$im/v1/req", payload, qos=1, packet_id=7, version=4))
    raw.send(mqtt_publish("$im/v1/req", payload, qos=1, packet_id=7, dup=True, version=4))
    acks, pubacks = [], 0
    deadline = time.time() + 10
    while (len(acks) < 2 or pubacks < 2) and time.time() < deadline:
        p = raw.recv(timeout=max(0.1, deadline - time.time()))
        if p.type == PUBACK:
            assert p.packet_id == 7
            pubacks += 1
        elif p.type == PUBLISH:
            if p.qos:
                raw.send(bytes([PUBACK << 4, 2]) + p.packet_id.to_bytes(2, "big"))
            f = pb.ServerFrame.FromString(p.payload)
            if f.HasField("response"):
                assert f.response.req_id == "dup" and not f.response.HasField("error"), f
                acks.append(f.response.ack)
    assert pubacks == 2 and len(acks) == 2
    assert _ack_key(acks[0]) == _ack_key(acks[1])
    assert sorted(a.duplicate for a in acks) == [False, True]
    assert _texts(alice, conv) == [(2, "once")]
    raw.sock.close()
    alice.close()


def test_different_users_may_reuse_a_client_msg_id(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    conv = alice.create_group("g", ["bob"]).conv_id
    a = alice.send(conv, "from alice", cmid="shared-id")
    bb = bob.send(conv, "from bob", cmid="shared-id")
    assert not a.duplicate and not bb.duplicate and bb.seq == a.seq + 1
    # And the same user may reuse it in another conversation only as a duplicate (it is per user).
    d = alice.open_direct("bob").conv_id
    again = alice.request(send=pb.SendReq(conv_id=d, client_msg_id="shared-id", text="elsewhere")).ack
    assert again.duplicate and _ack_key(again) == _ack_key(a)
    assert _texts(alice, conv) == [(a.seq, "from alice"), (bb.seq, "from bob")]
    assert _texts(alice, d) == []
    alice.close()
    bob.close()


def test_edit_and_recall_with_client_msg_id_are_idempotent(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob").conv_id
    s1 = alice.send(conv, "v0").seq
    s2 = alice.send(conv, "to recall").seq
    e1 = alice.edit(conv, s1, "v1", cmid="edit-1")
    e2 = alice.edit(conv, s1, "v1", cmid="edit-1")
    assert not e1.duplicate and e2.duplicate and _ack_key(e1) == _ack_key(e2)
    r1 = alice.recall(conv, s2, cmid="recall-1")
    r2 = alice.recall(conv, s2, cmid="recall-1")
    assert not r1.duplicate and r2.duplicate and _ack_key(r1) == _ack_key(r2)
    h = alice.history(conv, with_versions=True)
    assert h.max_seq == r1.seq  # one edit entry, one recall entry
    target = [m for m in h.messages if m.seq == s1][0]
    assert target.text == "v1" and target.version == 1 and len(target.versions) == 1
    alice.close()


def test_dedup_window_expires(make_broker):
    b = make_broker(extra='[im]\ndedup_window = "2s"\nsweep_interval = "1s"\n')
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob").conv_id
    first = alice.send(conv, "first", cmid="w-1")
    assert alice.send(conv, "first", cmid="w-1").duplicate  # inside the window
    time.sleep(3.0)
    later = alice.send(conv, "first again", cmid="w-1")
    assert not later.duplicate and later.seq == first.seq + 1
    # The new one is deduplicated from now on.
    assert _ack_key(alice.send(conv, "x", cmid="w-1")) == _ack_key(later)
    assert _texts(alice, conv) == [(first.seq, "first"), (later.seq, "first again")]
    alice.close()


def test_repeated_creations_are_answered_only_once_durable(make_broker):
    """create_group with the same client_msg_id, or open_direct of an existing pair, while the first creation is
    still being written: the answer must not come before the conversation is stored, so that whatever the client
    does next (history, sync) finds it. A backlog of large sends keeps the first creation in flight a while."""
    b = make_broker(extra="[im]\nsend_rate = 0\n")
    alice = Device(b.port, "alice", "alice-phone")
    filler = alice.open_direct("zed").conv_id
    problems = []
    for i in range(8):
        backlog = [alice.request_async(send=pb.SendReq(conv_id=filler, client_msg_id="f%d-%d" % (i, j),
                                                       text="x" * 60000)) for j in range(60)]
        if i % 2 == 0:
            op = dict(create_group=pb.CreateGroupReq(name="g", members=["bob"], client_msg_id="grp-%d" % i))
        else:
            op = dict(open_direct=pb.OpenDirectReq(peer="peer-%d" % i))
        first = alice.request_async(**op)
        again = alice.request_async(**op)
        conv = alice.wait_response(again).conversation
        h = alice.request(raise_error=False, history=pb.HistoryReq(conv_id=conv.conv_id))
        if h.HasField("error"):
            problems.append((list(op)[0], pb.ErrorCode.Name(h.error.code)))
        assert alice.wait_response(first).conversation.conv_id == conv.conv_id
        for r in backlog:
            alice.wait_response(r)
    assert problems == [], "answered before durable, then not found: %s" % problems
    alice.close()
