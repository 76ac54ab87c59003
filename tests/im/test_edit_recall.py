"""Edit (sender only, within edit_window, versions kept), recall (sender within recall_window, group admins any
time), delete-for-me (per user, all of their devices); history shows each message in its final state."""
import time

from imclient import Device, full_history, is_msg, pb


def _setup(b):
    a1 = Device(b.port, "alice", "alice-phone")
    a2 = Device(b.port, "alice", "alice-tab", v5=True)
    b1 = Device(b.port, "bob", "bob-phone")
    b2 = Device(b.port, "bob", "bob-tab")
    conv = a1.open_direct("bob").conv_id
    return a1, a2, b1, b2, conv


def _by_seq(dev, conv, **kw):
    return {m.seq: m for m in dev.history(conv, **kw).messages}


def test_edit_is_seen_live_and_in_history_with_versions(make_broker):
    b = make_broker()
    a1, a2, b1, b2, conv = _setup(b)
    s = a1.send(conv, "helo").seq
    e1 = a1.edit(conv, s, "hello")
    e2 = a2.edit(conv, s, "hello!")  # the sender's other device may edit too
    assert e1.seq == s + 1 and e2.seq == s + 2
    for d in (a2, b1, b2):
        ev = d.wait_message(conv, e1.seq, mtype=pb.MSG_EDIT)
        assert ev.target_seq == s and ev.text == "hello" and ev.version == 1 and ev.sender == "alice"
    for d in (a1, b1, b2):
        ev = d.wait_message(conv, e2.seq, mtype=pb.MSG_EDIT)
        assert ev.target_seq == s and ev.text == "hello!" and ev.version == 2
    a1.no_event(is_msg(conv, e1.seq), timeout=0.3)  # not echoed to the editing device

    for d in (a1, b2):
        m = _by_seq(d, conv)[s]
        assert m.text == "hello!" and m.edited and m.version == 2 and m.edited_ts > 0
        assert len(m.versions) == 0  # only when asked for
    m = _by_seq(b1, conv, with_versions=True)[s]
    assert [(v.version, v.text) for v in m.versions] == [(0, "helo"), (1, "hello")]
    assert m.client_msg_id and m.sender == "alice"
    # range with versions too
    r = b1.request(range=pb.RangeReq(conv_id=conv, from_seq=s, to_seq=s, with_versions=True)).messages
    assert [v.text for v in r.messages[0].versions] == ["helo", "hello"]
    # Edits are not unread messages.
    assert b1.sync().convs[0].conversation.unread == 1
    for d in (a1, a2, b1, b2):
        d.close()


def test_only_the_sender_edits(make_broker):
    b = make_broker()
    a1, a2, b1, b2, conv = _setup(b)
    s = a1.send(conv, "mine").seq
    b1.expect_error(pb.ERR_FORBIDDEN, edit=pb.EditReq(conv_id=conv, seq=s, text="yours now"))
    # Not an editable entry: the creation event, a seq past the end.
    a1.expect_error(pb.ERR_CONFLICT, edit=pb.EditReq(conv_id=conv, seq=1, text="x"))
    a1.expect_error(pb.ERR_NOT_FOUND, edit=pb.EditReq(conv_id=conv, seq=99, text="x"))
    a1.expect_error(pb.ERR_BAD_REQUEST, edit=pb.EditReq(conv_id=conv, seq=s, text=""))
    # In a group an admin still may not edit someone else's message.
    g = a1.create_group("g", ["bob"]).conv_id
    gs = b1.send(g, "bob's").seq
    a1.expect_error(pb.ERR_FORBIDDEN, edit=pb.EditReq(conv_id=g, seq=gs, text="owner's now"))
    assert _by_seq(a1, conv)[s].text == "mine" and not _by_seq(a1, conv)[s].edited
    assert _by_seq(a1, g)[gs].text == "bob's"
    for d in (a1, a2, b1, b2):
        d.close()


def test_edit_window(make_broker):
    b = make_broker(extra='[im]\nedit_window = "1s"\n')
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob").conv_id
    s = alice.send(conv, "quick").seq
    alice.edit(conv, s, "quick edit")
    time.sleep(1.5)
    alice.expect_error(pb.ERR_WINDOW_EXPIRED, edit=pb.EditReq(conv_id=conv, seq=s, text="too late"))
    assert _by_seq(alice, conv)[s].text == "quick edit"
    alice.close()


def test_recall_by_sender_removes_content_everywhere(make_broker):
    b = make_broker()
    a1, a2, b1, b2, conv = _setup(b)
    keep = a1.send(conv, "keep").seq
    s = a1.send(conv, "oops, secret", mentions=["bob"]).seq
    assert b1.sync().convs[0].conversation.unread == 2
    assert b1.sync().total_mentions == 1
    r = a2.recall(conv, s)
    for d in (a1, b1, b2):
        ev = d.wait_message(conv, r.seq, mtype=pb.MSG_RECALL)
        assert ev.target_seq == s and ev.sender == "alice"
    for d in (a1, b2):
        m = _by_seq(d, conv, with_versions=True)[s]
        assert m.recalled and m.recalled_by == "alice"
        assert m.text == "" and m.body == b"" and len(m.versions) == 0 and len(m.mentions) == 0
    r2 = b1.range(conv, s, s)
    assert r2.messages[0].recalled and r2.messages[0].text == ""
    s_b = b1.sync()
    c = s_b.convs[0]
    assert c.conversation.unread == 1 and s_b.total_unread == 1 and s_b.total_mentions == 0
    assert [m.text for m in c.messages if m.seq == s] == [""]
    assert _by_seq(b1, conv)[keep].text == "keep"
    # Recalled messages can be neither edited nor recalled again.
    a1.expect_error(pb.ERR_CONFLICT, edit=pb.EditReq(conv_id=conv, seq=s, text="back"))
    a1.expect_error(pb.ERR_CONFLICT, recall=pb.RecallReq(conv_id=conv, seq=s))
    # The receiver may not recall the sender's message in a direct conversation.
    b1.expect_error(pb.ERR_FORBIDDEN, recall=pb.RecallReq(conv_id=conv, seq=keep))
    for d in (a1, a2, b1, b2):
        d.close()


def test_recall_removes_edited_content_from_the_whole_stream(make_broker):
    """An edited message is recalled: its content must not survive in the MSG_EDIT entries that carried it."""
    b = make_broker()
    a1, a2, b1, b2, conv = _setup(b)
    s = a1.send(conv, "first draft").seq
    a1.edit(conv, s, "oops, secret v1")
    a1.edit(conv, s, "oops, secret v2")
    a1.recall(conv, s)
    for d in (a1, b1):
        leaks = [m for m in full_history(d, conv) if "secret" in m.text or "draft" in m.text]
        assert leaks == [], "recalled content still readable in history: %s" % leaks
        leaks = [m for m in d.range(conv, 1, 50).messages if "secret" in m.text]
        assert leaks == [], "recalled content still readable in range: %s" % leaks
        leaks = [m for c in d.sync().convs for m in c.messages if "secret" in m.text]
        assert leaks == [], "recalled content still readable in sync: %s" % leaks
    for d in (a1, a2, b1, b2):
        d.close()


def test_recall_window_and_group_admins(make_broker):
    b = make_broker(extra='[im]\nrecall_window = "1s"\n')
    owner = Device(b.port, "olga", "olga-phone")
    admin = Device(b.port, "adam", "adam-phone")
    m1 = Device(b.port, "mia", "mia-phone")
    m2 = Device(b.port, "max", "max-phone")
    g = owner.create_group("g", ["adam", "mia", "max"]).conv_id
    owner.set_role(g, ["adam"], pb.ROLE_ADMIN)
    a = m1.send(g, "mia 1").seq
    bb = m1.send(g, "mia 2").seq
    c = m1.send(g, "mia 3").seq
    d = m2.send(g, "max 1").seq
    # A plain member cannot recall someone else's message.
    m2.expect_error(pb.ERR_FORBIDDEN, recall=pb.RecallReq(conv_id=g, seq=a))
    m1.recall(g, a)  # own, inside the window
    time.sleep(1.5)
    m1.expect_error(pb.ERR_WINDOW_EXPIRED, recall=pb.RecallReq(conv_id=g, seq=bb))
    # Admin and owner: any message, any time.
    admin.recall(g, bb)
    owner.recall(g, c)
    admin.recall(g, d)
    h = {m.seq: m for m in full_history(m2, g)}
    assert h[a].recalled_by == "mia" and h[bb].recalled_by == "adam" and h[c].recalled_by == "olga"
    assert h[d].recalled and h[d].text == ""
    # max has read nothing: all four countable messages are recalled (his own never counted).
    assert m2.get_conversation(g).unread == 0
    for dev in (owner, admin, m1, m2):
        dev.close()


def test_recall_of_unread_message_lowers_unread(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    conv = alice.open_direct("bob").conv_id
    seqs = [alice.send(conv, "m%d" % i).seq for i in range(4)]
    bob.mark_read(conv, seqs[0])
    assert bob.get_conversation(conv).unread == 3
    alice.recall(conv, seqs[2])
    assert bob.get_conversation(conv).unread == 2
    # Recalling one already read changes nothing.
    alice.recall(conv, seqs[0])
    assert bob.get_conversation(conv).unread == 2
    st = bob.sync()
    assert st.total_unread == 2
    # Reading past the recall entries gets to zero.
    rs = bob.mark_read(conv, 1000)
    assert rs.unread == 0 and bob.sync().total_unread == 0
    alice.close()
    bob.close()


def test_delete_for_me_hides_on_all_my_devices_only(make_broker):
    b = make_broker()
    a1, a2, b1, b2, conv = _setup(b)
    seqs = [a1.send(conv, "d%d" % i).seq for i in range(3)]
    cursor = b2.sync().cursor
    assert b1.get_conversation(conv).unread == 3
    b1.delete_for_me(conv, [seqs[1]])
    ev = b2.wait_event(lambda e: e.HasField("hidden"))
    assert ev.hidden.conv_id == conv and list(ev.hidden.seqs) == [seqs[1]]
    b1.no_event(lambda e: e.HasField("hidden"), timeout=0.3)
    for d in (b1, b2):
        assert seqs[1] not in _by_seq(d, conv)
        assert [m.seq for m in d.range(conv, seqs[0], seqs[2]).messages] == [seqs[0], seqs[2]]
    # An unread message deleted for me is no longer unread.
    assert b1.get_conversation(conv).unread == 2
    # A device that syncs from an older cursor learns which entries to drop.
    s = b2.sync(cursor=cursor)
    cs = [c for c in s.convs if c.conversation.conv_id == conv][0]
    assert list(cs.hidden_seqs) == [seqs[1]]
    assert seqs[1] not in [m.seq for m in cs.messages]
    # alice (both devices) still sees it; she got no Hidden event.
    for d in (a1, a2):
        assert _by_seq(d, conv)[seqs[1]].text == "d1"
        d.no_event(lambda e: e.HasField("hidden"), timeout=0.1)
    # Deleting your own message for yourself hides it from you only.
    own = b1.send(conv, "bob's own").seq
    b1.delete_for_me(conv, [own])
    assert own not in _by_seq(b2, conv) and _by_seq(a1, conv)[own].text == "bob's own"
    # Bad requests.
    b1.expect_error(pb.ERR_BAD_REQUEST, delete_for_me=pb.DeleteForMeReq(conv_id=conv, seqs=[]))
    b1.expect_error(pb.ERR_BAD_REQUEST, delete_for_me=pb.DeleteForMeReq(conv_id=conv, seqs=list(range(1, 102))))
    for d in (a1, a2, b1, b2):
        d.close()


def test_max_versions_keeps_the_newest_versions(make_broker):
    b = make_broker(extra="[im]\nmax_versions = 2\n")
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob").conv_id
    s = alice.send(conv, "v0").seq
    for i in range(1, 5):
        alice.edit(conv, s, "v%d" % i)
    m = _by_seq(alice, conv, with_versions=True)[s]
    assert m.text == "v4" and m.version == 4
    assert [(v.version, v.text) for v in m.versions] == [(2, "v2"), (3, "v3")]
    alice.close()
