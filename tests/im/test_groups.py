"""Groups: create, rename, add, remove, leave (ownership hand-over), dissolve, roles and their permissions,
the join floor, the member limit, removed members, idempotent creation, and a 1,000-member ("large") group."""
import time

from imclient import Device, full_history, is_msg, pb


def _devices(b, *users):
    return [Device(b.port, u, u + "-phone") for u in users]


def _roles(dev, conv):
    return {m.user: m.role for m in dev.members(conv).members}


def _close(*devs):
    for d in devs:
        d.close()


def test_create_rename_add_remove(make_broker):
    b = make_broker()
    alice, bob, carol, dave = _devices(b, "alice", "bob", "carol", "dave")
    c = alice.create_group("team", ["bob", "carol", "alice"])  # naming yourself is harmless
    g = c.conv_id
    assert c.type == pb.CONV_GROUP and c.owner == "alice" and c.my_role == pb.ROLE_OWNER
    assert c.member_count == 3 and c.name == "team" and c.member and c.max_seq == 1
    for d in (bob, carol):
        ev = d.wait_event(lambda e: e.HasField("conversation") and e.conversation.conv_id == g)
        assert ev.conversation.member and ev.conversation.my_role == pb.ROLE_MEMBER
        m = d.wait_message(g, 1)
        assert m.type == pb.MSG_MEMBERS and m.change.kind == pb.MemberChange.CREATED
        assert sorted(m.change.users) == ["alice", "bob", "carol"] and m.change.actor == "alice"
    dave.no_event(lambda e: True, timeout=0.2)
    assert _roles(bob, g) == {"alice": pb.ROLE_OWNER, "bob": pb.ROLE_MEMBER, "carol": pb.ROLE_MEMBER}

    ack = alice.rename_group(g, "team 2")
    for d in (bob, carol):
        m = d.wait_message(g, ack.seq)
        assert m.change.kind == pb.MemberChange.RENAMED and m.change.name == "team 2"
    assert carol.get_conversation(g).name == "team 2"

    ack = alice.add_members(g, ["dave", "bob"])  # bob is already in: only dave is added
    ev = dave.wait_event(lambda e: e.HasField("conversation") and e.conversation.conv_id == g)
    assert ev.conversation.member and ev.conversation.name == "team 2"
    m = dave.wait_message(g, ack.seq)
    assert m.change.kind == pb.MemberChange.ADDED and list(m.change.users) == ["dave"]
    assert bob.wait_message(g, ack.seq).change.users == ["dave"]
    assert alice.get_conversation(g).member_count == 4
    alice.expect_error(pb.ERR_CONFLICT, add_members=pb.AddMembersReq(conv_id=g, users=["bob"]))

    ack = alice.remove_members(g, ["carol"])
    ev = carol.wait_event(lambda e: e.HasField("conversation") and e.conversation.conv_id == g)
    assert not ev.conversation.member
    m = carol.wait_message(g, ack.seq)  # the removed member hears of it
    assert m.change.kind == pb.MemberChange.REMOVED and list(m.change.users) == ["carol"]
    for d in (bob, dave):
        d.wait_message(g, ack.seq)
    s = alice.send(g, "after carol left").seq
    carol.no_event(is_msg(g, s), timeout=0.3)
    assert set(_roles(alice, g)) == {"alice", "bob", "dave"}
    alice.expect_error(pb.ERR_CONFLICT, remove_members=pb.RemoveMembersReq(conv_id=g, users=["carol"]))
    _close(alice, bob, carol, dave)


def test_permissions(make_broker):
    b = make_broker()
    owner, admin, admin2, mem, mem2, out = _devices(b, "owner", "admin", "admin2", "mem", "mem2", "out")
    g = owner.create_group("perm", ["admin", "admin2", "mem", "mem2"]).conv_id
    owner.set_role(g, ["admin", "admin2"], pb.ROLE_ADMIN)
    F = pb.ERR_FORBIDDEN
    # A member can do none of these.
    mem.expect_error(F, add_members=pb.AddMembersReq(conv_id=g, users=["out"]))
    mem.expect_error(F, remove_members=pb.RemoveMembersReq(conv_id=g, users=["mem2"]))
    mem.expect_error(F, rename_group=pb.RenameGroupReq(conv_id=g, name="mine"))
    mem.expect_error(F, dissolve=pb.DissolveReq(conv_id=g))
    mem.expect_error(F, set_role=pb.SetRoleReq(conv_id=g, users=["mem2"], role=pb.ROLE_ADMIN))
    # An admin adds, removes members and renames, but cannot remove an admin (or the owner), set roles or
    # dissolve.
    admin.rename_group(g, "renamed by admin")
    admin.add_members(g, ["out"])
    admin.remove_members(g, ["out"])
    admin.expect_error(F, remove_members=pb.RemoveMembersReq(conv_id=g, users=["admin2"]))
    admin.expect_error(F, remove_members=pb.RemoveMembersReq(conv_id=g, users=["owner"]))
    admin.expect_error(F, set_role=pb.SetRoleReq(conv_id=g, users=["mem"], role=pb.ROLE_ADMIN))
    admin.expect_error(F, dissolve=pb.DissolveReq(conv_id=g))
    # The owner can remove an admin; nobody removes themselves (leave is for that).
    owner.expect_error(pb.ERR_BAD_REQUEST, remove_members=pb.RemoveMembersReq(conv_id=g, users=["owner"]))
    owner.remove_members(g, ["admin2"])
    assert _roles(mem, g) == {"owner": pb.ROLE_OWNER, "admin": pb.ROLE_ADMIN, "mem": pb.ROLE_MEMBER,
                              "mem2": pb.ROLE_MEMBER}
    assert mem.get_conversation(g).name == "renamed by admin"
    # Role changes: demote, and an explicit ownership transfer.
    ack = owner.set_role(g, ["admin"], pb.ROLE_MEMBER)
    m = mem.wait_message(g, ack.seq)
    assert m.change.kind == pb.MemberChange.ROLE and m.change.role == pb.ROLE_MEMBER
    admin.expect_error(F, add_members=pb.AddMembersReq(conv_id=g, users=["out"]))
    owner.expect_error(pb.ERR_NOT_MEMBER, set_role=pb.SetRoleReq(conv_id=g, users=["out"], role=pb.ROLE_ADMIN))
    owner.expect_error(pb.ERR_BAD_REQUEST, set_role=pb.SetRoleReq(conv_id=g, users=["owner"],
                                                                 role=pb.ROLE_MEMBER))
    owner.set_role(g, ["mem"], pb.ROLE_OWNER)
    assert _roles(mem, g)["mem"] == pb.ROLE_OWNER and _roles(mem, g)["owner"] == pb.ROLE_ADMIN
    assert mem.get_conversation(g).owner == "mem"
    owner.expect_error(F, dissolve=pb.DissolveReq(conv_id=g))
    # Group operations make no sense in a direct conversation.
    d = mem.open_direct("mem2").conv_id
    mem.expect_error(F, rename_group=pb.RenameGroupReq(conv_id=d, name="x"))
    _close(owner, admin, admin2, mem, mem2, out)


def test_leave_hands_over_ownership(make_broker):
    b = make_broker()
    alice, bob, carol, dave = _devices(b, "alice", "bob", "carol", "dave")
    g = alice.create_group("g", ["bob", "carol"]).conv_id
    alice.add_members(g, ["dave"])  # joined later than bob and carol
    alice.set_role(g, ["dave"], pb.ROLE_ADMIN)
    ack = alice.leave(g)
    m = dave.wait_message(g, ack.seq)
    assert m.change.kind == pb.MemberChange.LEFT and m.change.actor == "alice"
    assert list(m.change.users) == ["dave"] and m.change.role == pb.ROLE_OWNER  # the admin inherits
    assert dave.get_conversation(g).owner == "dave"
    assert _roles(bob, g) == {"bob": pb.ROLE_MEMBER, "carol": pb.ROLE_MEMBER, "dave": pb.ROLE_OWNER}
    alice.expect_error(pb.ERR_NOT_MEMBER, send=pb.SendReq(conv_id=g, client_msg_id="x", text="x"))
    # With no admin left, the longest-standing member inherits (bob and carol joined together: by name).
    dave.leave(g)
    assert _roles(carol, g) == {"bob": pb.ROLE_OWNER, "carol": pb.ROLE_MEMBER}
    # A member leaving hands nothing over.
    carol.leave(g)
    assert _roles(bob, g) == {"bob": pb.ROLE_OWNER}
    c = bob.get_conversation(g)
    assert c.member_count == 1 and c.owner == "bob"
    _close(alice, bob, carol, dave)


def test_dissolve(make_broker):
    b = make_broker()
    alice, bob = _devices(b, "alice", "bob")
    g = alice.create_group("g", ["bob"]).conv_id
    bob.send(g, "before")
    ack = alice.dissolve(g)
    m = bob.wait_message(g, ack.seq)
    assert m.change.kind == pb.MemberChange.DISSOLVED and m.change.actor == "alice"
    for d in (alice, bob):
        d.expect_error(pb.ERR_DISSOLVED, send=pb.SendReq(conv_id=g, client_msg_id="after", text="after"))
    alice.expect_error(pb.ERR_DISSOLVED, add_members=pb.AddMembersReq(conv_id=g, users=["carol"]))
    alice.expect_error(pb.ERR_DISSOLVED, rename_group=pb.RenameGroupReq(conv_id=g, name="zombie"))
    s = bob.sync()
    c = [x.conversation for x in s.convs if x.conversation.conv_id == g][0]
    assert c.dissolved and c.max_seq == ack.seq
    # History stays readable.
    assert [m.text for m in bob.history(g).messages if m.type == pb.MSG_TEXT] == ["before"]
    _close(alice, bob)


def test_new_member_history_starts_at_join(make_broker):
    b = make_broker()
    alice, bob, carol = _devices(b, "alice", "bob", "carol")
    g = alice.create_group("g", ["bob"]).conv_id
    old = [alice.send(g, "old %d" % i).seq for i in range(3)]
    join = alice.add_members(g, ["carol"]).seq
    new = bob.send(g, "new").seq
    h = carol.history(g)
    assert [m.seq for m in h.messages] == [join, new] and h.min_seq == join and not h.has_more
    assert h.messages[0].change.kind == pb.MemberChange.ADDED
    assert len(carol.range(g, 1, join - 1).messages) == 0
    assert [m.seq for m in carol.range(g, 1, new).messages] == [join, new]
    c = carol.get_conversation(g)
    assert c.min_seq == join and c.unread == 1 and c.max_seq == new
    s = carol.sync()
    cs = [x for x in s.convs if x.conversation.conv_id == g][0]
    assert [m.seq for m in cs.messages] == [join, new] and not cs.has_more
    # Nothing before the join can be acted on.
    carol.expect_error(pb.ERR_NOT_FOUND, recall=pb.RecallReq(conv_id=g, seq=old[0]))
    assert carol.mark_read(g, old[0]).unread == 1  # below the join: nothing changes
    _close(alice, bob, carol)


def test_member_limit(make_broker):
    b = make_broker(extra="[im]\nmax_group_members = 4\n")
    alice, = _devices(b, "alice")
    alice.expect_error(pb.ERR_GROUP_FULL, create_group=pb.CreateGroupReq(name="x", members=["b", "c", "d", "e"]))
    g = alice.create_group("four", ["b", "c", "d"]).conv_id
    assert alice.get_conversation(g).member_count == 4
    alice.expect_error(pb.ERR_GROUP_FULL, add_members=pb.AddMembersReq(conv_id=g, users=["e"]))
    alice.remove_members(g, ["d"])
    alice.expect_error(pb.ERR_GROUP_FULL, add_members=pb.AddMembersReq(conv_id=g, users=["e", "f"]))
    alice.add_members(g, ["e"])
    assert set(_roles(alice, g)) == {"alice", "b", "c", "e"}
    alice.close()


def test_removed_member_sees_member_false_and_cannot_read(make_broker):
    b = make_broker()
    alice, bob, carol = _devices(b, "alice", "bob", "carol")
    g = alice.create_group("g", ["bob", "carol"]).conv_id
    alice.send(g, "one")
    cursor = carol.sync().cursor
    carol.close()
    alice.remove_members(g, ["carol"])
    alice.send(g, "secret after removal")
    carol = Device(b.port, "carol", "carol-phone")
    s = carol.sync(cursor=cursor)
    cs = [x for x in s.convs if x.conversation.conv_id == g]
    assert len(cs) == 1 and not cs[0].conversation.member and len(cs[0].messages) == 0
    assert cs[0].conversation.unread == 0
    assert s.total_unread == 0
    NM = pb.ERR_NOT_MEMBER
    carol.expect_error(NM, history=pb.HistoryReq(conv_id=g))
    carol.expect_error(NM, range=pb.RangeReq(conv_id=g, from_seq=1, to_seq=5))
    carol.expect_error(NM, list_members=pb.ListMembersReq(conv_id=g))
    carol.expect_error(NM, get_conversation=pb.GetConversationReq(conv_id=g))
    carol.expect_error(NM, send=pb.SendReq(conv_id=g, client_msg_id="c", text="let me back"))
    carol.expect_error(NM, mark_read=pb.MarkReadReq(conv_id=g, seq=3))
    # A full sync no longer lists the group.
    assert g not in [x.conversation.conv_id for x in carol.sync().convs]
    # Nothing after the removal reached her in any sync.
    for x in s.convs:
        for m in x.messages:
            assert "secret" not in m.text
    _close(alice, bob, carol)


def test_create_group_with_client_msg_id_is_idempotent(make_broker):
    b = make_broker()
    alice, bob = _devices(b, "alice", "bob")
    c1 = alice.create_group("once", ["bob"], cmid="grp-1")
    c2 = alice.create_group("once", ["bob"], cmid="grp-1")
    tab = Device(b.port, "alice", "alice-tab")
    c3 = tab.create_group("once", ["bob"], cmid="grp-1")
    assert c1.conv_id == c2.conv_id == c3.conv_id
    assert c2.max_seq == 1 and c2.member_count == 2
    other = alice.create_group("once", ["bob"], cmid="grp-2")
    assert other.conv_id != c1.conv_id
    # bob's cmid "grp-1" is his own.
    mine = bob.create_group("bob's", ["alice"], cmid="grp-1")
    assert mine.conv_id != c1.conv_id and mine.owner == "bob"
    # Without a cmid every creation is a new group.
    assert alice.create_group("x", ["bob"]).conv_id != alice.create_group("x", ["bob"]).conv_id
    ids = [x.conversation.conv_id for x in bob.sync().convs]
    assert ids.count(c1.conv_id) == 1 and len(ids) == 5
    assert len(full_history(bob, c1.conv_id)) == 1
    _close(alice, bob, tab)


def test_group_turning_large_and_small_again_still_syncs(make_broker):
    b = make_broker(extra="[im]\ninbox_fanout_max = 3\n")
    alice, bob = _devices(b, "alice", "bob")
    g = alice.create_group("g", ["bob", "carol"]).conv_id
    c0 = bob.sync().cursor
    alice.add_members(g, ["dave"])  # now 4 > 3: large
    m1 = alice.send(g, "while large").seq
    s1 = bob.sync(cursor=c0)
    cs = [x for x in s1.convs if x.conversation.conv_id == g]
    assert len(cs) == 1 and cs[0].messages[-1].seq == m1 and cs[0].conversation.unread == 1
    m2 = alice.send(g, "still large").seq
    alice.remove_members(g, ["dave"])  # small again
    s2 = bob.sync(cursor=s1.cursor)
    cs = [x for x in s2.convs if x.conversation.conv_id == g]
    assert len(cs) == 1 and m2 in [m.seq for m in cs[0].messages] and cs[0].conversation.unread == 2
    m3 = alice.send(g, "small").seq
    s3 = bob.sync(cursor=s2.cursor)
    cs = [x for x in s3.convs if x.conversation.conv_id == g]
    assert len(cs) == 1 and cs[0].messages[-1].seq == m3 and cs[0].conversation.unread == 3
    assert len(bob.sync(cursor=s3.cursor).convs) == 0
    _close(alice, bob)


def test_thousand_member_group(make_broker):
    b = make_broker(extra="[im]\ninbox_fanout_max = 500\n")
    members = ["u%04d" % i for i in range(999)]  # + the owner = 1,000
    boss = Device(b.port, "boss", "boss-phone")
    online = [Device(b.port, u, u + "-phone") for u in ("u0001", "u0500", "u0998")]
    offline_user = "u0700"
    off = Device(b.port, offline_user, offline_user + "-phone")
    t0 = time.time()
    c = boss.request(timeout=60, create_group=pb.CreateGroupReq(name="town hall", members=members)).conversation
    assert c.member_count == 1000
    g = c.conv_id
    cursor = off.sync().cursor
    assert g in [x.conversation.conv_id for x in off.sync().convs]
    off.close()
    for d in online:
        d.wait_message(g, 1, timeout=30)
        d.take_events()

    t0 = time.time()
    ack = boss.send(g, "hello, everyone")
    ack_time = time.time() - t0
    assert ack.seq == 2
    assert ack_time < 3.0, "send ack took %.2fs" % ack_time
    for d in online:
        m = d.wait_message(g, 2, timeout=10)
        assert m.text == "hello, everyone" and m.sender == "boss"
    # The offline member catches up: incremental from the old cursor, and a full sync alike.
    off = Device(b.port, offline_user, offline_user + "-phone")
    for s in (off.sync(cursor=cursor), off.sync()):
        cs = [x for x in s.convs if x.conversation.conv_id == g]
        assert len(cs) == 1, s
        assert cs[0].conversation.unread == 1 and cs[0].conversation.max_seq == 2
        assert cs[0].messages[-1].text == "hello, everyone"
        assert s.total_unread == 1
    # Read state works as in any group (no receipts above receipts_max_members).
    assert off.mark_read(g, 2).unread == 0
    assert len(off.members(g).members) == 1000
    _close(boss, off, *online)


def test_removed_then_added_again_starts_over(make_broker):
    b = make_broker()
    alice, carol = _devices(b, "alice", "carol")
    g = alice.create_group("g", ["carol"]).conv_id
    alice.send(g, "seen once")
    alice.send(g, "unread before removal", mentions=["carol"])
    carol.mark_read(g, 2)
    alice.remove_members(g, ["carol"])
    for i in range(3):
        alice.send(g, "while she was out %d" % i)
    rejoin = alice.add_members(g, ["carol"]).seq
    last = alice.send(g, "welcome back", mentions=["carol"]).seq
    c = carol.get_conversation(g)
    assert c.member and c.min_seq == rejoin and c.unread == 1 and c.mentions == 1
    h = carol.history(g)
    assert [m.seq for m in h.messages] == [rejoin, last]
    assert all("while she was out" not in m.text for m in h.messages)
    s = carol.sync()
    assert s.total_unread == 1 and s.total_mentions == 1
    _close(alice, carol)


def test_request_size_limit_on_membership_changes(make_broker):
    b = make_broker()
    alice, = _devices(b, "alice")
    g = alice.create_group("g", ["bob"]).conv_id
    alice.expect_error(pb.ERR_TOO_LARGE, add_members=pb.AddMembersReq(conv_id=g, users=["x%d" % i for i in range(1001)]))
    alice.add_members(g, ["x%d" % i for i in range(1000)])
    assert alice.get_conversation(g).member_count == 1002
    alice.close()


def test_added_to_a_large_group_finds_it_in_incremental_sync(make_broker):
    b = make_broker(extra="[im]\ninbox_fanout_max = 3\n")
    alice, dave = _devices(b, "alice", "dave")
    g = alice.create_group("g", ["bob", "carol", "erin"]).conv_id  # 4 > 3: large from the start
    cursor = dave.sync().cursor
    dave.close()
    alice.add_members(g, ["dave"])
    alice.send(g, "hi dave")
    dave = Device(b.port, "dave", "dave-phone")
    s = dave.sync(cursor=cursor)
    cs = [x for x in s.convs if x.conversation.conv_id == g]
    assert len(cs) == 1 and cs[0].conversation.member and cs[0].conversation.unread == 1
    assert cs[0].messages[-1].text == "hi dave"
    # ... and when removed from it, hears of that too.
    cursor = s.cursor
    alice.remove_members(g, ["dave"])
    s = dave.sync(cursor=cursor)
    cs = [x for x in s.convs if x.conversation.conv_id == g]
    assert len(cs) == 1 and not cs[0].conversation.member
    _close(alice, dave)
