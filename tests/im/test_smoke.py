"""The shortest path through the IM contract: open a direct conversation, send, receive, sync."""
from imclient import Device, pb


def test_direct_send_is_acked_delivered_and_synced(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    conv = alice.open_direct("bob")
    assert conv.type == pb.CONV_DIRECT and list(conv.peers) == ["bob"]
    ack = alice.send(conv.conv_id, "hi bob", cmid="m1")
    assert ack.seq == 2 and ack.msg_id == "%s:2" % conv.conv_id and not ack.duplicate
    ev = bob.wait_event(lambda e: e.HasField("message") and e.message.type == pb.MSG_TEXT)
    assert ev.message.text == "hi bob" and ev.message.seq == 2 and ev.message.sender == "alice"
    again = alice.send(conv.conv_id, "hi bob", cmid="m1")
    assert again.duplicate and again.seq == 2
    s = bob.sync()
    assert s.full and len(s.convs) == 1
    c = s.convs[0]
    assert c.conversation.unread == 1 and c.conversation.max_seq == 2
    assert [m.seq for m in c.messages] == [1, 2]
    alice.close()
    bob.close()
