"""Nothing acknowledged is lost across a broker restart (clean stop and kill -9): messages, seq continuity,
dedup, read state and unread counts all come back."""
import signal
import time

from imclient import Device, full_history, pb


def _ack_key(a):
    return (a.conv_id, a.seq, a.server_ts, a.msg_id)


def _restart(b, sig):
    rc = b.stop(sig)
    if sig == signal.SIGTERM:
        assert rc == 0, b.log()[-2000:]
    else:
        assert rc == -signal.SIGKILL
    b.start()


def _check_after_restart(b, conv, acks, texts, read_seq, sig):
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    hist = full_history(bob, conv)
    assert [m.seq for m in hist] == list(range(1, max(a.seq for a in acks.values()) + 1))
    by_seq = {m.seq: m for m in hist}
    for cmid, a in acks.items():
        m = by_seq[a.seq]
        assert m.client_msg_id == cmid and m.text == texts[cmid] and m.server_ts == a.server_ts
    # Read state and unread counts survived.
    s = bob.sync()
    c = s.convs[0].conversation
    n = len(acks)
    assert c.read_seq == read_seq and c.unread == n - (read_seq - 1) and s.total_unread == c.unread
    assert alice.sync().convs[0].conversation.unread == 0
    # Dedup still works: a resend gets the first ack.
    cmid = sorted(acks)[0]
    again = alice.request(send=pb.SendReq(conv_id=conv, client_msg_id=cmid, text=texts[cmid])).ack
    assert again.duplicate and _ack_key(again) == _ack_key(acks[cmid])
    # seq continues without a hole.
    nxt = alice.send(conv, "after restart")
    assert nxt.seq == c.max_seq + 1
    assert bob.wait_message(conv, nxt.seq).text == "after restart"
    assert bob.sync().convs[0].conversation.unread == c.unread + 1
    alice.close()
    bob.close()


def _scenario(make_broker, sig):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    conv = alice.open_direct("bob").conv_id
    acks, texts = {}, {}
    for i in range(10):
        cmid = "m%02d" % i
        texts[cmid] = "message %d" % i
        acks[cmid] = alice.send(conv, texts[cmid], cmid=cmid)
    read_seq = acks["m03"].seq
    assert bob.mark_read(conv, read_seq).read_seq == read_seq
    alice.drop()
    bob.drop()
    _restart(b, sig)
    _check_after_restart(b, conv, acks, texts, read_seq, sig)
    # And once more: a second restart changes nothing.
    _restart(b, sig)
    alice = Device(b.port, "alice", "alice-phone")
    assert alice.history(conv, limit=1).max_seq == acks["m09"].seq + 1
    alice.close()


def test_clean_restart_keeps_everything(make_broker):
    _scenario(make_broker, signal.SIGTERM)


def test_kill9_keeps_everything_acked(make_broker):
    _scenario(make_broker, signal.SIGKILL)


def test_kill9_under_load_loses_nothing_acked_and_duplicates_nothing(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob").conv_id
    n = 150
    rids = {}
    for i in range(n):
        cmid = "load-%03d" % i
        rids[cmid] = alice.request_async(send=pb.SendReq(conv_id=conv, client_msg_id=cmid, text="L%d" % i))
    # Kill as soon as some (not necessarily all) acks are in.
    deadline = time.time() + 10
    while time.time() < deadline:
        with alice.cond:
            got = sum(1 for r in rids.values() if r in alice.responses)
        if got >= 40:
            break
        time.sleep(0.005)
    b.stop(signal.SIGKILL)
    with alice.cond:
        acked = {cmid: alice.responses[r].ack for cmid, r in rids.items() if r in alice.responses}
    alice.drop()
    assert len(acked) >= 40
    for a in acked.values():
        assert a.seq >= 2
    b.start()

    alice = Device(b.port, "alice", "alice-phone")
    hist = full_history(alice, conv)
    seqs = [m.seq for m in hist]
    assert seqs == list(range(1, len(seqs) + 1)), "a hole in the stream"
    stored = {m.client_msg_id: m for m in hist if m.type == pb.MSG_TEXT}
    assert len(stored) == len(hist) - 1, "a client_msg_id stored twice"
    for cmid, a in acked.items():
        assert cmid in stored, "acked %s lost" % cmid
        assert stored[cmid].seq == a.seq and stored[cmid].server_ts == a.server_ts
    # The client resends everything it has no ack for (and, to be sure, everything): exactly one message each.
    resend = {}
    for i in range(n):
        cmid = "load-%03d" % i
        resend[cmid] = alice.request_async(send=pb.SendReq(conv_id=conv, client_msg_id=cmid, text="L%d" % i))
    for cmid, rid in resend.items():
        resp = alice.wait_response(rid)
        assert not resp.HasField("error"), resp
        a = resp.ack
        if cmid in stored:
            assert a.duplicate and a.seq == stored[cmid].seq
        else:
            assert not a.duplicate
    hist = full_history(alice, conv)
    assert [m.seq for m in hist] == list(range(1, n + 2))
    texts = sorted(m.text for m in hist if m.type == pb.MSG_TEXT)
    assert texts == sorted("L%d" % i for i in range(n))
    alice.close()


def test_group_membership_and_roles_survive_restart(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.create_group("team", ["bob", "carol"]).conv_id
    alice.set_role(conv, ["bob"], pb.ROLE_ADMIN)
    alice.remove_members(conv, ["carol"])
    alice.rename_group(conv, "team 2")
    alice.close()
    b.stop()
    b.start()
    alice = Device(b.port, "alice", "alice-phone")
    members = {m.user: m.role for m in alice.members(conv).members}
    assert members == {"alice": pb.ROLE_OWNER, "bob": pb.ROLE_ADMIN}
    c = alice.get_conversation(conv)
    assert c.name == "team 2" and c.member_count == 2 and c.owner == "alice"
    carol = Device(b.port, "carol", "carol-phone")
    carol.expect_error(pb.ERR_NOT_MEMBER, history=pb.HistoryReq(conv_id=conv))
    carol.expect_error(pb.ERR_NOT_MEMBER, send=pb.SendReq(conv_id=conv, client_msg_id="c", text="hi"))
    alice.close()
    carol.close()


def test_sync_cursor_from_before_a_restart_stays_incremental(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    d1 = alice.open_direct("bob").conv_id
    Device(b.port, "carol", "carol-phone").open_direct("bob")  # a second conversation that stays quiet
    alice.send(d1, "before")
    cursor = bob.sync().cursor
    alice.drop()
    bob.drop()
    b.stop(signal.SIGKILL)
    b.start()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    assert len(bob.sync(cursor=cursor).convs) == 0  # nothing changed
    ack = alice.send(d1, "after")
    s = bob.sync(cursor=cursor)
    assert not s.full and [c.conversation.conv_id for c in s.convs] == [d1]
    assert s.convs[0].messages[-1].seq == ack.seq and s.total_unread == 2
    assert s.cursor >= cursor
    alice.close()
    bob.close()
