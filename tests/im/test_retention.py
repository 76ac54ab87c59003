"""Retention: with retention_max_count (and max_age) the sweep drops the oldest entries of each conversation;
min_seq moves up, the newest entry always stays, seq never goes back, unread counts stay consistent."""
from imclient import Device, full_history, pb, wait_until

RETAIN = '[im]\nretention_max_count = 5\nsweep_interval = "1s"\n'


def _visible_unread(dev, conv, user):
    """Unread computed the slow way, from what the user can still read."""
    c = dev.get_conversation(conv)
    return sum(1 for m in full_history(dev, conv)
               if m.seq > c.read_seq and m.type in (pb.MSG_TEXT, pb.MSG_FILE, pb.MSG_CUSTOM)
               and m.sender != user and not m.recalled)


def test_max_count_moves_min_seq_and_keeps_the_newest(make_broker):
    b = make_broker(extra=RETAIN)
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    conv = alice.open_direct("bob").conv_id
    seqs = [alice.send(conv, "r%d" % i).seq for i in range(12)]  # 2..13
    newest = seqs[-1]
    h = wait_until(lambda: (lambda h: h if h.min_seq == newest - 4 else None)(bob.history(conv)), timeout=5,
                   what="the sweep")
    assert [m.seq for m in h.messages] == list(range(newest - 4, newest + 1)) and not h.has_more
    assert h.max_seq == newest and h.messages[-1].text == "r11"
    assert len(bob.range(conv, 1, newest - 5).messages) == 0
    assert [m.seq for m in bob.range(conv, 1, newest).messages] == list(range(newest - 4, newest + 1))
    c = bob.get_conversation(conv)
    assert c.min_seq == newest - 4 and c.max_seq == newest
    # Unread counts only what is left.
    assert c.unread == 5 == _visible_unread(bob, conv, "bob")
    s = bob.sync()
    assert s.total_unread == 5 and [m.seq for m in s.convs[0].messages] == list(range(newest - 4, newest + 1))
    assert not s.convs[0].has_more
    # Reading below the floor changes nothing; reading inside it counts from there.
    assert bob.mark_read(conv, 3).unread == 5
    assert bob.mark_read(conv, newest - 2).unread == 2 == _visible_unread(bob, conv, "bob")
    # seq never goes back: the next message continues the stream.
    assert alice.send(conv, "after the sweep").seq == newest + 1
    alice.close()
    bob.close()


def test_unread_stays_consistent_with_recalls_and_deletes_across_the_floor(make_broker):
    b = make_broker(extra=RETAIN)
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    conv = alice.open_direct("bob").conv_id
    seqs = [alice.send(conv, "u%d" % i, mentions=["bob"] if i % 3 == 0 else []).seq for i in range(8)]
    alice.recall(conv, seqs[1])  # will fall below the floor
    bob.delete_for_me(conv, [seqs[2]])  # will fall below the floor
    alice.recall(conv, seqs[7])  # stays visible
    max_seq = alice.history(conv, limit=1).max_seq
    wait_until(lambda: bob.history(conv).min_seq == max_seq - 4, timeout=5, what="the sweep")
    c = bob.get_conversation(conv)
    assert c.unread == _visible_unread(bob, conv, "bob")
    s = bob.sync()
    assert s.total_unread == c.unread
    mentioned = sum(1 for m in full_history(bob, conv) if "bob" in m.mentions and not m.recalled)
    assert c.mentions == mentioned
    assert bob.mark_read(conv, max_seq).unread == 0
    alice.close()
    bob.close()


def test_max_age_keeps_only_the_newest(make_broker):
    b = make_broker(extra='[im]\nretention_max_age = "1s"\nsweep_interval = "1s"\n')
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    conv = alice.open_direct("bob").conv_id
    seqs = [alice.send(conv, "old %d" % i).seq for i in range(4)]
    newest = seqs[-1]
    h = wait_until(lambda: (lambda h: h if h.min_seq == newest else None)(bob.history(conv)), timeout=6,
                   what="the age sweep")
    assert [m.seq for m in h.messages] == [newest] and h.messages[0].text == "old 3"
    c = bob.get_conversation(conv)
    assert c.max_seq == newest and c.unread == 1 and c.last_message.seq == newest
    # After a restart the stream still knows where it is.
    alice.close()
    bob.close()
    b.stop()
    b.start()
    alice = Device(b.port, "alice", "alice-phone")
    assert alice.send(conv, "new").seq == newest + 1
    assert [m.seq for m in alice.history(conv).messages][-1] == newest + 1
    alice.close()


def test_group_join_floor_and_retention_floor_together(make_broker):
    b = make_broker(extra=RETAIN)
    alice = Device(b.port, "alice", "alice-phone")
    g = alice.create_group("g", ["bob"]).conv_id
    for i in range(3):
        alice.send(g, "early %d" % i)
    join = alice.add_members(g, ["carol"]).seq
    carol = Device(b.port, "carol", "carol-phone")
    for i in range(6):
        alice.send(g, "late %d" % i)
    max_seq = alice.history(g, limit=1).max_seq
    wait_until(lambda: alice.history(g).min_seq == max_seq - 4, timeout=5, what="the sweep")
    h = carol.history(g)
    assert h.min_seq == max(join, max_seq - 4) and h.messages[0].seq == h.min_seq
    c = carol.get_conversation(g)
    assert c.unread == _visible_unread(carol, g, "carol") == 5
    alice.close()
    carol.close()
