"""Read state: forward-only read and delivered positions, synced to the user's other devices, receipts to the
peer (direct) and to other members (small groups); unread and mention counts per conversation and in total."""
from imclient import Device, pb


def test_mark_read_is_forward_only_and_clamped(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    conv = alice.open_direct("bob").conv_id
    seqs = [alice.send(conv, "m%d" % i).seq for i in range(5)]  # 2..6
    rs = bob.mark_read(conv, seqs[3])
    assert rs.conv_id == conv and rs.read_seq == seqs[3] and rs.unread == 1
    rs = bob.mark_read(conv, seqs[1])  # lower: nothing changes
    assert rs.read_seq == seqs[3] and rs.unread == 1
    c = bob.get_conversation(conv)
    assert c.read_seq == seqs[3] and c.unread == 1
    rs = bob.mark_read(conv, 10_000)  # clamped to max_seq
    assert rs.read_seq == seqs[-1] and rs.unread == 0
    assert bob.get_conversation(conv).read_seq == seqs[-1]
    # Reading moves the delivered position along.
    assert rs.recv_seq == seqs[-1]
    alice.close()
    bob.close()


def test_read_state_is_synced_to_my_other_devices(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    b1 = Device(b.port, "bob", "bob-phone")
    b2 = Device(b.port, "bob", "bob-tab", v5=True)
    conv = alice.open_direct("bob").conv_id
    seqs = [alice.send(conv, "m%d" % i).seq for i in range(3)]
    b1.mark_read(conv, seqs[1])
    ev = b2.wait_event(lambda e: e.HasField("read"))
    assert ev.read.conv_id == conv and ev.read.read_seq == seqs[1] and ev.read.unread == 1
    b1.no_event(lambda e: e.HasField("read"), timeout=0.3)  # the reading device has its answer
    # A no-op read (lower seq) sends no event.
    b1.mark_read(conv, seqs[0])
    b2.no_event(lambda e: e.HasField("read"), timeout=0.3)
    # The other device's sync agrees.
    s = b2.sync()
    assert s.convs[0].conversation.read_seq == seqs[1] and s.total_unread == 1
    for d in (alice, b1, b2):
        d.close()


def test_read_and_delivered_receipts_in_direct(make_broker):
    b = make_broker()
    a1 = Device(b.port, "alice", "alice-phone")
    a2 = Device(b.port, "alice", "alice-tab")
    bob = Device(b.port, "bob", "bob-phone")
    conv = a1.open_direct("bob").conv_id
    seqs = [a1.send(conv, "m%d" % i).seq for i in range(3)]
    for d in (a1, a2):
        d.take_events()

    rs = bob.mark_delivered(conv, seqs[2])
    assert rs.recv_seq == seqs[2]
    for d in (a1, a2):
        ev = d.wait_event(lambda e: e.HasField("receipt"))
        assert ev.receipt.conv_id == conv and ev.receipt.user == "bob"
        assert ev.receipt.recv_seq == seqs[2] and ev.receipt.read_seq == 0
    bob.no_event(lambda e: e.HasField("receipt"), timeout=0.2)
    c = a1.get_conversation(conv)
    assert c.peer_recv_seq == seqs[2] and c.peer_read_seq == 0
    # Delivered is forward-only too.
    assert bob.mark_delivered(conv, seqs[0]).recv_seq == seqs[2]
    a1.no_event(lambda e: e.HasField("receipt"), timeout=0.3)

    bob.mark_read(conv, seqs[1])
    for d in (a1, a2):
        ev = d.wait_event(lambda e: e.HasField("receipt"))
        assert ev.receipt.user == "bob" and ev.receipt.read_seq == seqs[1]
    c = a1.get_conversation(conv)
    assert c.peer_read_seq == seqs[1] and c.peer_recv_seq == seqs[2]
    # alice's incremental sync shows the receipt position too.
    s = a1.sync()
    assert s.convs[0].conversation.peer_read_seq == seqs[1]
    for d in (a1, a2, bob):
        d.close()


def test_read_receipts_in_small_groups_only(make_broker):
    b = make_broker(extra="[im]\nreceipts_max_members = 3\n")
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    carol = Device(b.port, "carol", "carol-phone")
    dave = Device(b.port, "dave", "dave-phone")
    small = alice.create_group("small", ["bob", "carol"]).conv_id
    big = alice.create_group("big", ["bob", "carol", "dave"]).conv_id
    s1 = alice.send(small, "hi small").seq
    s2 = alice.send(big, "hi big").seq
    for d in (alice, bob, carol, dave):
        d.take_events()
    bob.mark_read(small, s1)
    for d in (alice, carol):
        ev = d.wait_event(lambda e: e.HasField("receipt"))
        assert ev.receipt.conv_id == small and ev.receipt.user == "bob" and ev.receipt.read_seq == s1
    members = {m.user: m.read_seq for m in carol.members(small).members}
    assert members["bob"] == s1
    bob.mark_read(big, s2)
    for d in (alice, carol, dave):
        d.no_event(lambda e: e.HasField("receipt") and e.receipt.conv_id == big, timeout=0.5)
    members = {m.user: m.read_seq for m in carol.members(big).members}
    assert members["bob"] == 0  # not shown above receipts_max_members
    for d in (alice, bob, carol, dave):
        d.close()


def test_unread_and_mentions_per_conversation_and_in_total(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    carol = Device(b.port, "carol", "carol-phone")
    d = alice.open_direct("bob").conv_id
    g = carol.create_group("g", ["alice", "bob"]).conv_id
    for i in range(3):
        alice.send(d, "direct %d" % i)
    carol.send(g, "hey @bob", mentions=["bob"])
    carol.send(g, "hey all", mentions=["alice", "nobody-here", "carol"])
    m3 = alice.send(g, "and @bob again", mentions=["bob", "bob"]).seq

    s = bob.sync()
    by = {c.conversation.conv_id: c.conversation for c in s.convs}
    assert (by[d].unread, by[d].mentions) == (3, 0)
    assert (by[g].unread, by[g].mentions) == (3, 2)
    assert (s.total_unread, s.total_mentions) == (6, 2)
    sa = alice.sync()
    bya = {c.conversation.conv_id: c.conversation for c in sa.convs}
    # alice: her own messages are never unread; carol's second message mentions her, then she sent m3.
    assert bya[d].unread == 0 and bya[g].unread == 0 and bya[g].mentions == 0
    sc = carol.sync()
    byc = {c.conversation.conv_id: c.conversation for c in sc.convs}
    assert byc[g].unread == 1 and byc[g].mentions == 0  # she mentioned herself: no count

    # Reading up to the first mention leaves one mention.
    rs = bob.mark_read(g, m3 - 1)
    assert (rs.unread, rs.mentions) == (1, 1)
    s = bob.sync()
    assert (s.total_unread, s.total_mentions) == (4, 1)
    bob.mark_read(g, m3)
    bob.mark_read(d, 100)
    s = bob.sync()
    assert (s.total_unread, s.total_mentions) == (0, 0)
    for c in s.convs:
        assert c.conversation.unread == 0 and c.conversation.mentions == 0
    for dev in (alice, bob, carol):
        dev.close()


def test_own_messages_are_never_unread(make_broker):
    b = make_broker()
    a1 = Device(b.port, "alice", "alice-phone")
    a2 = Device(b.port, "alice", "alice-tab")
    bob = Device(b.port, "bob", "bob-phone")
    conv = a1.open_direct("bob").conv_id
    for i in range(3):
        a1.send(conv, "a%d" % i)
        a2.send(conv, "b%d" % i)
    for d in (a1, a2):
        s = d.sync()
        assert s.convs[0].conversation.unread == 0 and s.total_unread == 0
    assert bob.get_conversation(conv).unread == 6
    # Types other than text count too (file, custom), system-like entries do not.
    a1.request(send=pb.SendReq(conv_id=conv, client_msg_id="f1", type=pb.MSG_FILE, attachments=[
        pb.Attachment(file_id="f", name="x.png", size=3)]))
    a1.request(send=pb.SendReq(conv_id=conv, client_msg_id="c1", type=pb.MSG_CUSTOM, body=b"\x01",
                               content_type="app/x"))
    assert bob.get_conversation(conv).unread == 8
    assert a1.get_conversation(conv).unread == 0
    # bob replies: alice has one unread, on both devices' view.
    bob.send(conv, "reply")
    assert a1.get_conversation(conv).unread == 1 and a2.sync().total_unread == 1
    for d in (a1, a2, bob):
        d.close()
