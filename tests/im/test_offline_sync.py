"""Offline -> online: a device catches up from its sync cursor (full with cursor 0, then incremental), detects
gaps and fills them with range requests; has_more paging of sync (messages_per_conv, max_convs) and history."""
import time

from imclient import Device, full_history, pb


def _conv_map(sync):
    return {c.conversation.conv_id: c for c in sync.convs}


def test_messages_sent_while_offline_come_in_sync(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    conv = alice.open_direct("bob").conv_id
    first = bob.sync()
    assert first.full and first.cursor > 0
    assert [c.conversation.conv_id for c in first.convs] == [conv]
    bob.close()

    acks = [alice.send(conv, "offline %d" % i) for i in range(5)]
    assert [a.seq for a in acks] == [2, 3, 4, 5, 6]

    bob = Device(b.port, "bob", "bob-phone")
    # cursor 0: everything, full.
    full = bob.sync()
    assert full.full and len(full.convs) == 1
    c = full.convs[0]
    assert [m.seq for m in c.messages] == [1, 2, 3, 4, 5, 6]
    assert [m.text for m in c.messages[1:]] == ["offline %d" % i for i in range(5)]
    assert c.conversation.unread == 5 and full.total_unread == 5 and not c.has_more
    # Incremental from the first cursor: the same conversation, with the new messages.
    inc = bob.sync(cursor=first.cursor)
    assert not inc.full and [x.conversation.conv_id for x in inc.convs] == [conv]
    assert {m.seq for m in inc.convs[0].messages} >= {2, 3, 4, 5, 6}
    assert inc.cursor >= first.cursor
    # And from its own cursor: nothing changed since.
    again = bob.sync(cursor=inc.cursor)
    assert not again.full and list(again.convs) == [] and not again.has_more
    assert again.total_unread == 5
    alice.close()
    bob.close()


def test_cursor_returns_only_what_changed_after_it(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    carol = Device(b.port, "carol", "carol-phone")
    d_ab = alice.open_direct("bob").conv_id
    d_cb = carol.open_direct("bob").conv_id
    g = alice.create_group("g", ["bob", "carol"]).conv_id
    alice.send(d_ab, "one")
    carol.send(d_cb, "two")
    alice.send(g, "three")
    s0 = bob.sync()
    assert s0.full and set(_conv_map(s0)) == {d_ab, d_cb, g}
    assert s0.total_unread == 3

    # Only the group changes.
    ack = carol.send(g, "four")
    s1 = bob.sync(cursor=s0.cursor)
    assert not s1.full and set(_conv_map(s1)) == {g}
    cs = _conv_map(s1)[g]
    assert cs.messages[-1].seq == ack.seq and cs.messages[-1].text == "four"
    assert cs.conversation.unread == 2 and s1.total_unread == 4
    # Then only the direct conversation with carol; the group does not come again.
    ack = carol.send(d_cb, "five")
    s2 = bob.sync(cursor=s1.cursor)
    assert set(_conv_map(s2)) == {d_cb}
    assert _conv_map(s2)[d_cb].messages[-1].seq == ack.seq
    # A change that is not a message (bob read on another device) shows too.
    assert s2.total_unread == 5
    bob2 = Device(b.port, "bob", "bob-tab")
    bob2.mark_read(d_ab, 100)
    s3 = bob.sync(cursor=s2.cursor)
    assert set(_conv_map(s3)) == {d_ab}
    assert _conv_map(s3)[d_ab].conversation.unread == 0 and s3.total_unread == 4
    s4 = bob.sync(cursor=s3.cursor)
    assert len(s4.convs) == 0
    for d in (alice, bob, carol, bob2):
        d.close()


def test_reconnect_with_a_gap_is_filled_with_range_requests(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    conv = alice.open_direct("bob").conv_id
    seen = {}
    for i in range(3):
        ack = alice.send(conv, "live %d" % i)
        m = bob.wait_message(conv, ack.seq)
        seen[m.seq] = m.text
    cursor = bob.sync().cursor
    bob.drop()  # the link dies without a DISCONNECT

    texts = {}
    for i in range(30):
        ack = alice.send(conv, "gap %d" % i)
        texts[ack.seq] = "gap %d" % i
    newest = max(texts)

    bob = Device(b.port, "bob", "bob-phone")
    s = bob.sync(cursor=cursor, per_conv=5)
    cs = _conv_map(s)[conv]
    assert cs.conversation.max_seq == newest
    got = {m.seq: m.text for m in cs.messages}
    assert sorted(got) == list(range(newest - 4, newest + 1))
    assert cs.has_more  # older entries exist before messages[0]
    # The client sees a gap between what it had and what sync brought, and fills it explicitly.
    have = max(seen)
    lo, hi = have + 1, min(got) - 1
    assert hi - lo + 1 == 25
    while lo <= hi:
        page = bob.range(conv, lo, min(hi, lo + 9))
        assert page.max_seq == newest
        assert [m.seq for m in page.messages] == list(range(lo, min(hi, lo + 9) + 1))
        for m in page.messages:
            got[m.seq] = m.text
        lo += 10
    seen.update(got)
    assert sorted(seen) == list(range(2, newest + 1))  # no hole
    for seq, text in texts.items():
        assert seen[seq] == text
    alice.close()
    bob.close()


def test_sync_pages_with_small_messages_per_conv_and_max_convs(make_broker):
    b = make_broker()
    bob = Device(b.port, "bob", "bob-phone")
    bob.open_direct("zed")  # something committed before the cursor
    cursor = bob.sync().cursor
    assert cursor > 0
    peers = ["p%d" % i for i in range(5)]
    convs = {}
    for p in peers:
        d = Device(b.port, p, p + "-phone")
        convs[p] = d.open_direct("bob").conv_id
        for i in range(4):
            d.send(convs[p], "%s %d" % (p, i))
        d.close()

    # Incremental: at most 2 conversations per answer, has_more until all came.
    seen, rounds, c = {}, 0, cursor
    while True:
        s = bob.sync(cursor=c, per_conv=2, max_convs=2)
        rounds += 1
        assert len(s.convs) <= 2
        for cs in s.convs:
            assert cs.conversation.conv_id not in seen, "a conversation came twice"
            seen[cs.conversation.conv_id] = cs
            assert [m.seq for m in cs.messages] == [4, 5] and cs.has_more
            assert cs.conversation.unread == 4 and cs.conversation.max_seq == 5
        assert s.cursor >= c
        c = s.cursor
        if not s.has_more:
            break
        assert rounds < 10
    assert rounds == 3 and set(seen) == set(convs.values())
    assert len(bob.sync(cursor=c).convs) == 0

    # Full: every summary, messages only for the newest max_convs conversations.
    s = bob.sync(per_conv=3, max_convs=2)
    assert s.full and not s.has_more and len(s.convs) == 6 and s.total_unread == 20
    with_msgs = [cs for cs in s.convs if cs.messages]
    assert {cs.conversation.conv_id for cs in with_msgs} == {convs["p3"], convs["p4"]}
    for cs in with_msgs:
        assert [m.seq for m in cs.messages] == [3, 4, 5] and cs.has_more
    for cs in s.convs:
        if not cs.messages:
            assert cs.has_more and cs.conversation.max_seq in (1, 5)
    bob.close()


def test_history_pages_backwards_with_has_more(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob").conv_id
    for i in range(25):
        alice.send(conv, "h%d" % i)  # seqs 2..26
    page = alice.history(conv, limit=10)
    assert [m.seq for m in page.messages] == list(range(17, 27)) and page.has_more
    assert page.max_seq == 26 and page.min_seq == 1
    page = alice.history(conv, before=17, limit=10)
    assert [m.seq for m in page.messages] == list(range(7, 17)) and page.has_more
    page = alice.history(conv, before=7, limit=10)
    assert [m.seq for m in page.messages] == list(range(1, 7)) and not page.has_more
    # Exactly a page left: has_more is false, not a dangling empty page.
    page = alice.history(conv, before=11, limit=10)
    assert [m.seq for m in page.messages] == list(range(1, 11)) and not page.has_more
    all_ = full_history(alice, conv, page=7)
    assert [m.seq for m in all_] == list(range(1, 27))
    assert [m.text for m in all_[1:]] == ["h%d" % i for i in range(25)]
    # before_seq past the end is the same as 0.
    assert [m.seq for m in alice.history(conv, before=1000, limit=3).messages] == [24, 25, 26]
    alice.close()


def test_persistent_session_device_still_resyncs_everything(make_broker):
    """A v3.1.1 device with a persistent session comes back: its sync has all it missed (the session queue
    is only a fast path)."""
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone", clean=False)
    conv = alice.open_direct("bob").conv_id
    c = bob.sync().cursor
    bob.close()
    acks = [alice.send(conv, "while away %d" % i) for i in range(3)]
    bob = Device(b.port, "bob", "bob-phone", clean=False, subscribe=False)
    s = bob.sync(cursor=c)
    cs = _conv_map(s)[conv]
    assert [m.seq for m in cs.messages][-3:] == [a.seq for a in acks]
    assert cs.conversation.unread == 3
    alice.close()
    bob.close()


def test_cursor_older_than_inbox_retention_gets_a_full_sync(make_broker):
    b = make_broker(extra='[im]\ninbox_retention = "1s"\n')
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    d1 = alice.open_direct("bob").conv_id
    d2 = Device(b.port, "carol", "carol-phone").open_direct("bob").conv_id
    cursor = bob.sync().cursor
    assert not bob.sync(cursor=cursor).full
    time.sleep(1.5)
    alice.send(d1, "long after")
    s = bob.sync(cursor=cursor)
    assert s.full and {c.conversation.conv_id for c in s.convs} == {d1, d2}
    assert s.total_unread == 1
    alice.close()
    bob.close()


def test_sync_and_live_together_miss_nothing(make_broker):
    """A device syncs while messages keep coming: everything ends up either in a sync answer or live, and the
    next sync from the returned cursor brings whatever fell between."""
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob").conv_id
    bob = Device(b.port, "bob", "bob-phone")
    rids = [alice.request_async(send=pb.SendReq(conv_id=conv, client_msg_id="c%d" % i, text="c%d" % i))
            for i in range(60)]
    have = set()
    cursor = 0
    for _ in range(5):
        s = bob.sync(cursor=cursor, per_conv=200)
        for c in s.convs:
            have.update(m.seq for m in c.messages)
        cursor = s.cursor
    for r in rids:
        alice.wait_response(r)
    s = bob.sync(cursor=cursor, per_conv=200)
    for c in s.convs:
        have.update(m.seq for m in c.messages)
    have.update(e.message.seq for e in bob.take_events() if e.HasField("message"))
    assert have == set(range(1, 62))
    alice.close()
    bob.close()


def test_large_messages_page_by_size_without_gaps(make_broker):
    """Pages are cut by size (so an answer fits a client's packet limit); has_more says so and paging on
    brings every entry exactly once — in history, in range and in sync."""
    b = make_broker(extra="[im]\nsend_rate = 0\n")
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    cursor = bob.sync().cursor
    big = "x" * 60000
    convs = []
    for peer in ("p1", "p2", "p3"):
        d = Device(b.port, peer, peer + "-phone")
        conv = d.open_direct("bob").conv_id
        convs.append(conv)
        for i in range(8):
            d.send(conv, "%s-%d-%s" % (peer, i, big))
        d.close()
    conv = convs[0]
    # History, newest first, page by page.
    seen, before, pages = [], 0, 0
    while True:
        h = bob.history(conv, before=before, limit=50)
        pages += 1
        assert h.messages, "an empty page with has_more"
        seen = [m.seq for m in h.messages] + seen
        if not h.has_more:
            break
        before = h.messages[0].seq
        assert pages < 20
    assert seen == list(range(1, 10)) and pages > 1
    # Range, oldest first.
    got, lo = [], 1
    while True:
        r = bob.range(conv, lo, 9)
        got += [m.seq for m in r.messages]
        if not r.has_more:
            break
        lo = r.messages[-1].seq + 1
    assert got == list(range(1, 10))
    # Incremental sync: conversations come on in later answers when one is full, each exactly once.
    ids, c, rounds = [], cursor, 0
    while True:
        s = bob.sync(cursor=c, per_conv=200)
        rounds += 1
        ids += [x.conversation.conv_id for x in s.convs]
        for x in s.convs:
            assert x.messages and x.messages[-1].seq == 9
        c = s.cursor
        if not s.has_more:
            break
        assert rounds < 10
    assert sorted(ids) == sorted(convs)
    assert len(bob.sync(cursor=c).convs) == 0
    alice.close()
    bob.close()
