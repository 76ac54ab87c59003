"""Randomised model test of the IM layer (TESTING.md §4; IM.md "Guarantees" and "Model").

Four users with two devices each (protobuf, JSON and MsgPack payloads; MQTT 3.1.1 and 5; persistent and clean
sessions; different sync page sizes) share direct conversations and two groups. Each round is one random operation: send (with
mentions and replies, alone or as a burst of concurrent sends from several devices), edit, recall (own; any
message for group owners and admins), delete-for-me, mark read (any seq, often backwards), resend of an old
client_msg_id, group changes (roles, rename, add / remove / leave: join floors), opening a direct
conversation, device disconnects (graceful and dropped), reconnects, syncs, reinstalls, and broker restarts
(SIGTERM and SIGKILL with sends in flight; every send whose ack did not arrive is resent with its
client_msg_id and must make exactly one message). Requests that must fail are checked for their error code.

tests/im/im_model.py holds the contract (streams, final states, read positions, unread / mentions computed
by scanning); tests/im/model_client.py is the app: its local view fed by live events, syncs from its cursor
and range requests. At checkpoints every device comes online, quiesces and must equal the model: the same
conversations, every visible entry in order without holes or duplicates in its final state, and the sync
summaries (unread, mentions, read_seq, max_seq, ... and the totals). History paged backwards must equal the
model too.

IM_MODEL_SEED (default fixed) picks the operations; IM_MODEL_ROUNDS sets their number (a longer soak:
IM_MODEL_ROUNDS=2000 pytest tests/im/test_model.py -s). The operations are the seed's; the server's
interleaving of concurrent sends and what a kill catches in flight are the machine's.
"""
import os
import random
import signal
import tempfile
import time
import uuid
from collections import Counter

from im_model import COUNTABLE, Model, describe_diff, summary_fields, wire_key
from imclient import pb
from model_client import AppDevice

SEED = int(os.environ.get("IM_MODEL_SEED", "1128"))
ROUNDS = int(os.environ.get("IM_MODEL_ROUNDS", "1000"))
CHECK_EVERY = int(os.environ.get("IM_MODEL_CHECK_EVERY", "50"))
TIMEOUT = 10  # seconds, for every answer we wait for

USERS = ("ann", "ben", "cat", "dan")
# (format, MQTT 5, clean session, messages per conversation in a sync page) for device 0 and 1 of each user.
DEVICE_KINDS = (("pb", False, False, 0), ("json", True, True, 3), ("msgpack", False, False, 10),
                ("pb", True, True, 5), ("json", False, False, 0), ("msgpack", True, True, 2),
                ("pb", False, True, 8), ("json", True, False, 0))
# No rate limit, generous edit / recall windows, and a fan-out threshold of 3 members: the four-member group
# is a "large" conversation (no inbox pointers; syncs find it by its newest stamp) and the other group turns
# large and small again as members come and go.
CONFIG = '[im]\nsend_rate = 0\nedit_window = "7d"\nrecall_window = "7d"\ninbox_fanout_max = 3\n'

WEIGHTS = {
    "send": 30, "burst": 6, "edit": 9, "recall": 7, "delete": 7, "read": 14, "resend": 2, "group": 4,
    "open": 1, "bad": 3, "disconnect": 4, "reconnect": 5, "sync": 4, "reinstall": 1, "restart": 1.5,
}
WORDS = ("hi", "ok", "lunch?", "see you", "on my way", "héllo", "👋", "tomorrow", "ça va", "done", "late", "why")


class Failure(AssertionError):
    pass


class Run:
    def __init__(self, make_broker, seed, rounds):
        self.seed, self.rounds = seed, rounds
        self.rng = random.Random(seed)
        self.b = make_broker(extra=CONFIG)
        self.model = Model()
        self.devices = []
        self.by_user = {}
        for i, u in enumerate(USERS):
            self.by_user[u] = []
            for j in range(2):
                fmt, v5, clean, per_conv = DEVICE_KINDS[2 * i + j]
                d = AppDevice(self.b.port, u, "%s-%d" % (u, j), fmt=fmt, v5=v5, clean=clean, per_conv=per_conv)
                self.devices.append(d)
                self.by_user[u].append(d)
        self.ops = Counter()
        self.restarts = Counter()
        self.log = []
        self.errors = []
        self.round = 0
        self.n = 0
        self.sent = []  # (user, cmid, conv_id, text, mentions, reply_to) of acked sends, for resends
        self.groups = []
        self.checkpoints = 0
        self.resent = Counter()

    # ---- helpers ---------------------------------------------------------------------------------------
    def note(self, text):
        self.log.append("r%d %s" % (self.round, text))

    def bad(self, text):
        self.errors.append("round %d: %s" % (self.round, text))

    def fail(self, text):
        """A finding the model cannot continue past (the server's state left the contract)."""
        self.bad(text)
        raise Failure(self.report())

    def cmid(self, kind="m"):
        self.n += 1
        return "%s%d-%d" % (kind, self.seed, self.n)

    def text(self):
        self.n += 1
        return "%s %d" % (" ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(1, 3))), self.n)

    def short(self, conv_id):
        return conv_id[:8]

    def call(self, dev, want=None, **op):
        """One request; checks that it fails with `want` (an ErrorCode) or succeeds (want None)."""
        resp = dev.request(timeout=TIMEOUT, raise_error=False, **op)
        code = resp.error.code if resp.HasField("error") else pb.OK
        if code == pb.OK and want not in (None, pb.OK):
            # The server did something the contract forbids: the model cannot follow it any further.
            self.fail("%s by %s: expected %s, it succeeded: %s" % (
                list(op)[0], dev.device, pb.ErrorCode.Name(want), resp))
        if code != pb.OK and code != want:
            self.bad("%s by %s: expected %s, got %s (%s) for %s" % (
                list(op)[0], dev.device, "success" if want is None else pb.ErrorCode.Name(want),
                pb.ErrorCode.Name(code), resp.error.message, op))
            return None
        return resp if code == pb.OK else False

    def online(self, user=None):
        return [d for d in self.devices if d.online and (user is None or d.user == user)]

    def pick_device(self, user=None):
        on = self.online(user)
        if on:
            d = self.rng.choice(on)
        else:
            d = self.rng.choice(self.by_user[user] if user else self.devices)
            self.reconnect(d)
        d.process_events()
        return d

    def reconnect(self, d):
        d.reconnect(self.b.port)
        self.note("reconnect %s" % d.device)
        self.check_sync_answers(d)

    def check_ack(self, what, ack, conv, want_seq):
        if ack.conv_id != conv.id or ack.seq != want_seq or ack.msg_id != "%s:%d" % (conv.id, want_seq) \
                or ack.duplicate:
            self.fail("%s in %s: expected a fresh ack at seq %d, got %s" % (what, conv.id, want_seq, ack))

    def mentions_for(self, conv, user):
        if self.rng.random() >= 0.35:
            return []
        pool = sorted(conv.members)
        out = self.rng.sample(pool, k=min(len(pool), self.rng.randint(1, 2)))
        if self.rng.random() < 0.15:
            out.append(self.rng.choice(USERS))  # maybe a non-member, maybe yourself: neither counts
        return out

    # ---- setup -----------------------------------------------------------------------------------------
    def setup(self):
        for d in self.devices:
            d.reconnect(self.b.port)
        for a, b in (("ann", "ben"), ("ann", "cat"), ("ben", "dan"), ("cat", "dan")):
            self.open_direct(self.by_user[a][0], b)
        self.create_group(self.by_user["ann"][0], "all four", ["ben", "cat", "dan"])
        self.create_group(self.by_user["ben"][0], "three", ["ann", "cat"])
        g1, g2 = self.groups
        self.change_group(self.by_user["ann"][0], g1, "role", users=["ben"], role=pb.ROLE_ADMIN)
        # Creating a group again with the same client_msg_id is the same group, no new entry.
        again = self.call(self.by_user["ben"][1] if self.by_user["ben"][1].online else self.by_user["ben"][0],
                          create_group=pb.CreateGroupReq(name="three", members=["ann", "cat"],
                                                         client_msg_id="g%d-%s" % (self.seed, "three")))
        if again is not None and (again.conversation.conv_id != g2 or again.conversation.max_seq != 1):
            self.bad("create_group with a used client_msg_id: %s" % again.conversation)
        for d in self.devices:
            d.catch_up()

    def open_direct(self, d, peer):
        existing = [c for c in self.model.convs.values()
                    if c.type == pb.CONV_DIRECT and sorted((d.user, peer)) == c.peers]
        resp = self.call(d, open_direct=pb.OpenDirectReq(peer=peer))
        if not resp:
            return
        conv = resp.conversation
        if existing:
            c = existing[0]
            if conv.conv_id != c.id:
                self.fail("open_direct %s-%s: a second conversation %s (have %s)" % (d.user, peer, conv.conv_id, c.id))
        else:
            if conv.conv_id in self.model.convs or conv.max_seq != 1:
                self.fail("open_direct %s-%s: new conversation %s" % (d.user, peer, conv))
            c = self.model.create_direct(conv.conv_id, d.user, d.device, peer, 1)
        self.compare_summary("open_direct answer to %s" % d.device, c, d.user, conv)
        self.note("open %s %s-%s" % (self.short(c.id), d.user, peer))

    def create_group(self, d, name, members):
        cmid = "g%d-%s" % (self.seed, name)
        resp = self.call(d, create_group=pb.CreateGroupReq(name=name, members=members, client_msg_id=cmid))
        conv = resp.conversation
        c = self.model.create_group(conv.conv_id, d.user, d.device, name, members, cmid, 1)
        self.compare_summary("create_group answer", c, d.user, conv)
        self.groups.append(c.id)
        self.note("group %s %r by %s with %s" % (self.short(c.id), name, d.user, members))

    # ---- operations ------------------------------------------------------------------------------------
    def op_send(self):
        d = self.pick_device()
        c = self.rng.choice(self.model.convs_of(d.user))
        text = self.text()
        mentions = self.mentions_for(c, d.user)
        reply_to = self.rng.randint(1, c.max_seq) if self.rng.random() < 0.15 else 0
        cmid = self.cmid()
        resp = self.call(d, send=pb.SendReq(conv_id=c.id, client_msg_id=cmid, text=text, mentions=mentions,
                                            reply_to=reply_to))
        if not resp:
            return
        self.check_ack("send", resp.ack, c, c.max_seq + 1)
        self.model.send(c.id, d.user, d.device, cmid, text, mentions, reply_to, resp.ack.seq)
        self.sent.append((d.user, cmid, c.id, text, mentions, reply_to))
        d.record_own_send(c.id, resp.ack, cmid, text, mentions, reply_to)
        self.note("send %s %s:%d %r @%s re%d" % (d.device, self.short(c.id), resp.ack.seq, text, mentions, reply_to))

    def publish_send(self, d, c):
        text = self.text()
        mentions = self.mentions_for(c, d.user)
        cmid = self.cmid()
        req = pb.Request(req_id=uuid.uuid4().hex,
                         send=pb.SendReq(conv_id=c.id, client_msg_id=cmid, text=text, mentions=mentions))
        d.publish_request(req)
        return {"dev": d, "conv": c, "req": req, "cmid": cmid, "text": text, "mentions": mentions}

    def apply_sends(self, items, what):
        """Puts acknowledged concurrent sends into the model at the seqs the server chose, checking that each
        conversation's new seqs are exactly the next ones (no hole, no seq given twice)."""
        before = {it["conv"].id: it["conv"].max_seq for it in items}
        per_conv = Counter(it["conv"].id for it in items)
        for it in sorted(items, key=lambda it: (it["conv"].id, it["ack"].seq)):
            ack, c = it["ack"], it["conv"]
            if ack.conv_id != c.id or ack.msg_id != "%s:%d" % (c.id, ack.seq):
                self.fail("%s: ack %s for a send to %s" % (what, ack, c.id))
            self.model.send(c.id, it["dev"].user, it["dev"].device, it["cmid"], it["text"], it["mentions"], 0, ack.seq)
            it["dev"].record_own_send(c.id, ack, it["cmid"], it["text"], it["mentions"], 0)
        for it in items:  # in the order sent, not acked: the next operations stay the seed's
            self.sent.append((it["dev"].user, it["cmid"], it["conv"].id, it["text"], it["mentions"], 0))
        for cid, n in per_conv.items():
            c = self.model.convs[cid]
            want = list(range(before[cid] + 1, before[cid] + n + 1))
            got = sorted(s for s in c.entries if s > before[cid])
            if got != want or c.holes():
                self.fail("%s: %d sends to %s took seqs %s, expected %s" % (what, n, cid, got, want))

    def op_burst(self):
        if not self.online():
            self.reconnect(self.rng.choice(self.devices))
        on = self.online()  # no reconnect (and its sync check) while sends are in flight
        items = []
        for _ in range(self.rng.randint(2, 5)):
            d = self.rng.choice(on)
            d.process_events()
            items.append(self.publish_send(d, self.rng.choice(self.model.convs_of(d.user))))
        for it in items:
            resp = it["dev"].wait_response(it["req"].req_id, TIMEOUT)
            if resp.HasField("error") and resp.error.code != pb.OK:
                self.fail("burst send by %s failed: %s" % (it["dev"].device, resp.error))
            it["ack"] = resp.ack
            if resp.ack.duplicate:
                self.fail("burst send by %s: a fresh client_msg_id answered as a duplicate" % it["dev"].device)
        self.apply_sends(items, "burst")
        self.note("burst %s" % ", ".join("%s>%s:%d" % (it["dev"].device, self.short(it["conv"].id), it["ack"].seq)
                                         for it in items))

    def own_targets(self, c, user, admin_any=False):
        lo = c.visible_from(user)
        out = [e for e in c.entries.values() if e.seq >= lo and e.type in COUNTABLE and not e.recalled
               and (e.sender == user or admin_any)]
        return sorted(out, key=lambda e: (e.sender, e.client_msg_id))  # not by seq: bursts order them freely

    def op_edit(self):
        d = self.pick_device()
        c = self.rng.choice(self.model.convs_of(d.user))
        mine = self.own_targets(c, d.user)
        if mine and self.rng.random() < 0.8:
            seq = self.rng.choice(mine).seq
        else:
            seq = self.rng.randint(1, c.max_seq + 2)
        want = self.model.edit_error(c.id, d.user, seq)
        text = "edited: " + self.text()
        cmid = self.cmid("e") if self.rng.random() < 0.8 else ""
        resp = self.call(d, want, edit=pb.EditReq(conv_id=c.id, seq=seq, client_msg_id=cmid, text=text))
        self.note("edit %s %s:%d %r -> %s" % (d.device, self.short(c.id), seq, text,
                                              resp.ack.seq if resp else pb.ErrorCode.Name(want or 0)))
        if not resp:
            return
        self.check_ack("edit", resp.ack, c, c.max_seq + 1)
        self.model.edit(c.id, d.user, d.device, cmid, seq, text, resp.ack.seq)
        d.record_own_change(c.id, resp.ack.seq)

    def op_recall(self):
        d = self.pick_device()
        c = self.rng.choice(self.model.convs_of(d.user))
        admin = c.type == pb.CONV_GROUP and c.members[d.user].role in (pb.ROLE_ADMIN, pb.ROLE_OWNER)
        pool = self.own_targets(c, d.user, admin_any=admin)
        if pool and self.rng.random() < 0.75:
            seq = self.rng.choice(pool).seq
        else:
            seq = self.rng.randint(1, c.max_seq + 2)
        want = self.model.recall_error(c.id, d.user, seq)
        cmid = self.cmid("r") if self.rng.random() < 0.8 else ""
        resp = self.call(d, want, recall=pb.RecallReq(conv_id=c.id, seq=seq, client_msg_id=cmid))
        self.note("recall %s %s:%d -> %s" % (d.device, self.short(c.id), seq,
                                             resp.ack.seq if resp else pb.ErrorCode.Name(want or 0)))
        if not resp:
            return
        self.check_ack("recall", resp.ack, c, c.max_seq + 1)
        self.model.recall(c.id, d.user, d.device, cmid, seq, resp.ack.seq)
        d.record_own_change(c.id, resp.ack.seq)

    def op_delete(self):
        d = self.pick_device()
        c = self.rng.choice(self.model.convs_of(d.user))
        seqs = [self.rng.randint(1, c.max_seq + 1) for _ in range(self.rng.randint(1, 3))]
        resp = self.call(d, delete_for_me=pb.DeleteForMeReq(conv_id=c.id, seqs=seqs))
        self.note("delete %s %s:%s" % (d.device, self.short(c.id), seqs))
        if resp is None:
            return
        took = self.model.delete_for_me(c.id, d.user, seqs)
        d.record_hidden(c.id, took)

    def op_read(self):
        d = self.pick_device()
        c = self.rng.choice(self.model.convs_of(d.user))
        m = c.members[d.user]
        x = self.rng.random()
        if x < 0.45:
            seq = c.max_seq
        elif x < 0.65:
            seq = self.rng.randint(0, m.read_seq)  # backwards: changes nothing
        else:
            seq = self.rng.randint(0, c.max_seq + 3)
        resp = self.call(d, mark_read=pb.MarkReadReq(conv_id=c.id, seq=seq))
        if not resp:
            return
        self.model.mark_read(c.id, d.user, seq)
        want = {"read_seq": m.read_seq}
        want["unread"], want["mentions"] = c.unread(d.user)
        got = {k: getattr(resp.read, k) for k in want}
        self.note("read %s %s:%d -> %s" % (d.device, self.short(c.id), seq, got))
        if resp.read.conv_id != c.id or got != want:
            self.bad("mark read %s:%d by %s answered %s, the model says %s" % (c.id, seq, d.device, got, want))
        d.record_read(resp.read)

    def op_resend(self):
        if not self.sent:
            return self.op_send()
        user, cmid, conv_id, text, mentions, reply_to = self.rng.choice(self.sent)
        d = self.pick_device(user)
        resp = self.call(d, send=pb.SendReq(conv_id=conv_id, client_msg_id=cmid, text=text, mentions=mentions,
                                            reply_to=reply_to))
        self.note("resend %s %s" % (d.device, cmid))
        if not resp:
            return
        want = self.model.cmids[(user, cmid)]
        if (resp.ack.conv_id, resp.ack.seq) != want or not resp.ack.duplicate:
            self.fail("resend of %s by %s: expected the first ack %s (duplicate), got %s" % (cmid, user, want, resp.ack))

    def change_group(self, d, conv_id, kind, users=(), role=0, name="", want=None):
        c = self.model.convs[conv_id]
        if kind == "role":
            op = {"set_role": pb.SetRoleReq(conv_id=conv_id, users=users, role=role)}
            k = pb.MemberChange.ROLE
        elif kind == "rename":
            op = {"rename_group": pb.RenameGroupReq(conv_id=conv_id, name=name)}
            k = pb.MemberChange.RENAMED
        elif kind == "add":
            op = {"add_members": pb.AddMembersReq(conv_id=conv_id, users=users)}
            k = pb.MemberChange.ADDED
        elif kind == "remove":
            op = {"remove_members": pb.RemoveMembersReq(conv_id=conv_id, users=users)}
            k = pb.MemberChange.REMOVED
        else:
            op = {"leave": pb.LeaveReq(conv_id=conv_id)}
            k = pb.MemberChange.LEFT
        resp = self.call(d, want, **op)
        self.note("group %s %s %s %s %s %r -> %s" % (kind, d.device, self.short(conv_id), list(users), role, name,
                                                    resp.ack.seq if resp else pb.ErrorCode.Name(want or 0)))
        if not resp:
            return
        self.check_ack("group " + kind, resp.ack, c, c.max_seq + 1)
        self.model.group_change(conv_id, d.user, d.device, k, users, role, name, resp.ack.seq)
        if kind == "leave":
            lc = d.conv(conv_id)
            d._set_member(lc, False, resp.ack.seq)

    def op_group(self):
        gid = self.rng.choice(self.groups)
        c = self.model.convs[gid]
        members = sorted(c.members)
        admins = [u for u in members if c.members[u].role in (pb.ROLE_ADMIN, pb.ROLE_OWNER)]
        kind = self.rng.choice(("role", "rename", "add", "remove", "leave") if gid == self.groups[1]
                               else ("role", "rename"))
        x = self.rng.random()
        actor = self.rng.choice(admins) if x < 0.7 else self.rng.choice(members) if x < 0.95 else \
            self.rng.choice(USERS)
        d = self.pick_device(actor)
        if actor not in c.members:
            return self.change_group(d, gid, "rename", name="x", want=pb.ERR_NOT_MEMBER)
        me = c.members[actor]
        is_admin = me.role in (pb.ROLE_ADMIN, pb.ROLE_OWNER)
        others = [u for u in members if u != actor]
        if kind == "role":
            targets = [u for u in others if c.members[u].role != pb.ROLE_OWNER]
            if not targets:
                return
            t = self.rng.choice(targets)
            role = pb.ROLE_MEMBER if c.members[t].role == pb.ROLE_ADMIN else pb.ROLE_ADMIN
            want = None if me.role == pb.ROLE_OWNER else pb.ERR_FORBIDDEN
            return self.change_group(d, gid, "role", users=[t], role=role, want=want)
        if kind == "rename":
            self.n += 1
            return self.change_group(d, gid, "rename", name="%s %d" % (c.name.split(" #")[0] + " #", self.n),
                                     want=None if is_admin else pb.ERR_FORBIDDEN)
        if kind == "add":
            outside = [u for u in USERS if u not in c.members]
            users = [self.rng.choice(outside)] if outside else [self.rng.choice(members)]
            want = None if is_admin and outside else pb.ERR_FORBIDDEN if not is_admin else pb.ERR_CONFLICT
            return self.change_group(d, gid, "add", users=users, want=want)
        if kind == "remove":
            if not others:
                return
            t = self.rng.choice(others)
            tr = c.members[t].role
            want = None
            if not is_admin or tr == pb.ROLE_OWNER or (tr == pb.ROLE_ADMIN and me.role != pb.ROLE_OWNER):
                want = pb.ERR_FORBIDDEN
            return self.change_group(d, gid, "remove", users=[t], want=want)
        if me.role == pb.ROLE_OWNER:  # the owner stays (no ownership hand-over in this test)
            return
        return self.change_group(d, gid, "leave")

    def op_open(self):
        a, b = self.rng.sample(USERS, 2)
        self.open_direct(self.pick_device(a), b)

    def op_bad(self):
        """Requests that must be refused, with nothing changing."""
        d = self.pick_device()
        x = self.rng.random()
        outside = [c for c in self.model.convs.values() if d.user not in c.members]
        if outside and x < 0.4:
            c = self.rng.choice(sorted(outside, key=lambda c: c.id))
            y = self.rng.random()
            if y < 0.4:
                self.call(d, pb.ERR_NOT_MEMBER, send=pb.SendReq(conv_id=c.id, client_msg_id=self.cmid("x"), text="no"))
            elif y < 0.7:
                self.call(d, pb.ERR_NOT_MEMBER, history=pb.HistoryReq(conv_id=c.id))
            else:
                self.call(d, pb.ERR_NOT_MEMBER, mark_read=pb.MarkReadReq(conv_id=c.id, seq=1))
            self.note("bad %s outsider of %s" % (d.device, self.short(c.id)))
            return
        c = self.rng.choice(self.model.convs_of(d.user))
        if x < 0.7:
            self.call(d, pb.ERR_BAD_REQUEST, send=pb.SendReq(conv_id=c.id, client_msg_id=self.cmid("x"), text="re",
                                                             reply_to=c.max_seq + 1))
            self.note("bad %s reply_to past the end of %s" % (d.device, self.short(c.id)))
        else:
            self.call(d, pb.ERR_BAD_REQUEST, send=pb.SendReq(conv_id=c.id, client_msg_id=self.cmid("x"), text=""))
            self.note("bad %s empty text in %s" % (d.device, self.short(c.id)))

    def op_disconnect(self):
        on = self.online()
        if not on:
            return
        d = self.rng.choice(on)
        d.process_events()
        if self.rng.random() < 0.5:
            d.close()
            self.note("close %s" % d.device)
        else:
            d.drop()
            self.note("drop %s" % d.device)

    def op_reconnect(self):
        off = [d for d in self.devices if not d.online]
        if off:
            self.reconnect(self.rng.choice(off))

    def op_sync(self):
        d = self.pick_device()
        d.catch_up()
        self.note("sync %s" % d.device)
        self.check_sync_answers(d)

    def check_sync_answers(self, d):
        """Every earlier operation is acknowledged, so a sync answer (a snapshot taken after them) must show
        the model's numbers now, quiescent or not."""
        for convs, total_unread, total_mentions in d.last_sync:
            for conv in convs:
                c = self.model.convs.get(conv.conv_id)
                if c is None:
                    self.bad("%s: sync lists unknown conversation %s" % (d.device, conv.conv_id))
                elif d.user in c.members:
                    self.compare_summary("sync answer to %s" % d.device, c, d.user, conv)
                elif conv.member:
                    self.bad("%s: sync says member of %s, the model says not" % (d.device, c.id))
            if (total_unread, total_mentions) != self.model.totals(d.user):
                self.bad("%s: sync totals (unread, mentions) %s, the model says %s" % (
                    d.device, (total_unread, total_mentions), self.model.totals(d.user)))

    def op_reinstall(self):
        d = self.rng.choice(self.devices)
        d.reinstall()
        self.note("reinstall %s" % d.device)
        if d.online:
            d.catch_up()
        else:
            self.reconnect(d)

    def op_restart(self):
        sig = signal.SIGKILL if self.rng.random() < 0.6 else signal.SIGTERM
        items = []
        for _ in range(self.rng.randint(0, 5)):
            on = self.online()
            if not on:
                break
            d = self.rng.choice(on)
            items.append(self.publish_send(d, self.rng.choice(self.model.convs_of(d.user))))
        if items:
            time.sleep(self.rng.choice((0, 0, 0.001, 0.003, 0.01)))
        was_online = self.online()
        rc = self.b.stop(sig)
        if sig == signal.SIGTERM and rc != 0:
            self.fail("parleyd exited with %s on SIGTERM\n%s" % (rc, self.b.log()[-3000:]))
        for d in self.devices:
            d.lost()
        for it in items:
            with it["dev"].cond:
                it["resp"] = it["dev"].responses.pop(it["req"].req_id, None)
        self.b.start()
        for d in self.devices:
            d.port = self.b.port
        for d in was_online:
            d.reconnect(self.b.port)
        name = "kill" if sig == signal.SIGKILL else "term"
        self.restarts[name] += 1
        for it in items:
            resp = it["resp"]
            if resp is not None and not (resp.HasField("error") and resp.error.code != pb.OK):
                it["ack"] = resp.ack
                continue
            if resp is not None and resp.error.code != pb.ERR_UNAVAILABLE:
                self.fail("a send in flight at a restart was refused: %s" % resp.error)
            # No ack: the app sends it again, same client_msg_id. It must make exactly one message.
            d = it["dev"]
            if not d.online:
                d.reconnect(self.b.port)
            resp = self.call(d, send=it["req"].send)
            if not resp:
                self.fail("resend after %s of %s failed" % (name, it["cmid"]))
            it["ack"] = resp.ack
            self.resent["duplicate" if resp.ack.duplicate else "new"] += 1
        self.apply_sends(items, "sends across a %s" % name)
        self.note("restart %s with %s" % (name, ", ".join(
            "%s>%s:%d%s" % (it["dev"].device, self.short(it["conv"].id), it["ack"].seq,
                            "" if it["resp"] is not None else " (resent)") for it in items)))

    # ---- checkpoints -----------------------------------------------------------------------------------
    def settle(self, quiet=0.15, limit=5.0):
        """Waits until no frame has arrived at any device for `quiet` seconds."""
        deadline = time.time() + limit
        last = sum(d.frames for d in self.devices)
        since = time.time()
        while time.time() < deadline:
            time.sleep(0.02)
            cur = sum(d.frames for d in self.devices)
            if cur != last:
                last, since = cur, time.time()
            elif time.time() - since >= quiet:
                return
        self.bad("frames kept arriving for %.0f s with nothing in flight" % limit)

    def compare_summary(self, what, c, user, conv):
        want = c.summary(user)
        got = summary_fields(conv, want)
        if got != want:
            diff = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
            self.bad("%s: summary of %s for %s differs (field: (model, server)): %s" % (what, c.id, user, diff))

    def checkpoint(self, final=False):
        self.checkpoints += 1
        for d in self.devices:
            if not d.online:
                d.reconnect(self.b.port)
        self.settle()
        for _ in range(6):
            changed = 0
            for d in self.devices:
                d.process_events()
                changed += d.sync_all()
                d.fill_gaps()
                d.process_events()
            if changed == 0:
                break
        else:
            self.bad("syncs kept returning changed conversations with nothing in flight")
        for d in self.devices:
            self.compare_device(d)
        for u in USERS:
            self.check_history(u, with_versions=final)
        for c in sorted(self.model.convs.values(), key=lambda c: c.id):
            if c.holes():
                self.bad("model stream of %s has holes %s" % (c.id, c.holes()))
        self.note("checkpoint %d" % self.checkpoints)
        if self.errors:
            raise Failure(self.report())

    def compare_device(self, d):
        for a in d.anomalies:
            self.bad("%s: %s" % (d.device, a))
        d.anomalies.clear()
        with d.cond:
            for raw in d.bad_frames:
                self.bad("%s: a frame that does not decode: %r %r" % (d.device, raw, raw.payload[:80]))
            d.bad_frames.clear()
            d.raw.clear()  # imclient keeps every PUBLISH; this test does not need them
        want = {c.id: c for c in self.model.convs_of(d.user)}
        have = d.member_convs()
        if set(want) != set(have):
            self.bad("%s sees conversations %s, the model says %s" % (d.device, sorted(have), sorted(want)))
        for cid in sorted(set(want) & set(have)):
            c, lc = want[cid], have[cid]
            self.compare_summary("%s after sync" % d.device, c, d.user, lc.summary)
            last = lc.summary.last_message
            if c.max_seq and wire_key(last) != c.entries[c.max_seq].key():
                self.bad("%s: last_message of %s is %s, the newest entry is %s" % (
                    d.device, cid, wire_key(last), c.entries[c.max_seq].key()))
            self.compare_stream("%s's view" % d.device, c, d.user, d.view(cid))
        t = (self.model.totals(d.user))
        if d.totals != t:
            self.bad("%s: sync totals (unread, mentions) %s, the model says %s" % (d.device, d.totals, t))

    def compare_stream(self, what, c, user, msgs, with_versions=False):
        want = [e.key(with_versions) for e in c.visible(user)]
        got = [wire_key(m, with_versions) for m in msgs]
        if want == got:
            return
        ws = [k[0] for k in want]
        gs = [k[0] for k in got]
        if ws != gs:
            missing = sorted(set(ws) - set(gs))
            extra = sorted(set(gs) - set(ws))
            dups = sorted(s for s in set(gs) if gs.count(s) > 1)
            self.bad("%s of %s for %s: seqs differ: missing %s, unexpected %s, duplicated %s" % (
                what, c.id, user, missing, extra, dups))
        by_seq = {k[0]: k for k in got}
        for k in want:
            g = by_seq.get(k[0])
            if g is not None and g != k:
                e = c.entries[k[0]]
                kind = pb.MsgType.Name(e.type)
                if e.target_seq:
                    t = c.entries[e.target_seq]
                    kind += " of seq %d (%s)" % (t.seq, "recalled" if t.recalled else "version %d" % t.version)
                self.bad("%s of %s for %s: seq %d, %s, differs: %s" % (
                    what, c.id, user, k[0], kind, describe_diff(k, g)))

    def check_history(self, user, with_versions=False):
        d = self.by_user[user][0]
        for c in self.model.convs_of(user):
            limit = self.rng.randint(1, 40)
            before, got = 0, []
            for _ in range(1000):
                page = d.request(timeout=TIMEOUT, history=pb.HistoryReq(
                    conv_id=c.id, before_seq=before, limit=limit, with_versions=with_versions)).messages
                seqs = [m.seq for m in page.messages]
                if seqs != sorted(set(seqs)) or (before and seqs and seqs[-1] >= before) or len(seqs) > limit:
                    self.bad("history page of %s before %d limit %d: seqs %s" % (c.id, before, limit, seqs))
                if page.min_seq != c.visible_from(user) or page.max_seq != c.max_seq:
                    self.bad("history of %s for %s: min_seq/max_seq %d/%d, the model says %d/%d" % (
                        c.id, user, page.min_seq, page.max_seq, c.visible_from(user), c.max_seq))
                got = list(page.messages) + got
                if not page.has_more:
                    break
                if not seqs:  # a page may be short (size budget), never empty while has_more
                    self.bad("history of %s: has_more with an empty page before %d" % (c.id, before))
                    break
                before = seqs[0]
            self.compare_stream("history (page %d%s)" % (limit, ", with versions" if with_versions else ""),
                                c, user, got, with_versions)
        for c in self.model.convs.values():
            if user not in c.members:
                self.call(d, pb.ERR_NOT_MEMBER, history=pb.HistoryReq(conv_id=c.id))

    # ---- the run ---------------------------------------------------------------------------------------
    def report(self):
        path = os.path.join(tempfile.gettempdir(), "im-model-%d-%d.log" % (self.seed, os.getpid()))
        with open(path, "w") as f:
            f.write("\n".join(self.log + self.errors) + "\n")
        head = "IM model test failed (IM_MODEL_SEED=%d IM_MODEL_ROUNDS=%d; every operation: %s), %d finding(s):" % (
            self.seed, self.rounds, path, len(self.errors))
        errs = self.errors[:40] + (["... %d more" % (len(self.errors) - 40)] if len(self.errors) > 40 else [])
        return "\n".join([head] + ["  " + e for e in errs] + ["last operations:"] + ["  " + l for l in self.log[-40:]])

    def run(self):
        started = time.time()
        kinds = sorted(WEIGHTS)
        weights = [WEIGHTS[k] for k in kinds]
        try:
            self.setup()
            for self.round in range(1, self.rounds + 1):
                kind = self.rng.choices(kinds, weights)[0]
                self.ops[kind] += 1
                getattr(self, "op_" + kind)()
                if self.round % CHECK_EVERY == 0 and self.round != self.rounds:
                    self.checkpoint()
            self.checkpoint(final=True)
        except Failure:
            raise
        except Exception as e:
            raise Failure("%s: %s\n%s" % (type(e).__name__, e, self.report())) from e
        finally:
            self.summary(time.time() - started)
            for d in self.devices:
                d.drop()

    def summary(self, elapsed):
        st = Counter()
        for d in self.devices:
            st.update(d.stats)
        entries = [e for c in self.model.convs.values() for e in c.entries.values()]
        print("\nIM model test: seed %d, %d of %d rounds in %.1f s, %d checkpoints" % (
            self.seed, self.round, self.rounds, elapsed, self.checkpoints))
        print("  operations: %s" % ", ".join("%s %d" % kv for kv in sorted(self.ops.items())))
        print("  restarts: %d (SIGKILL %d, SIGTERM %d); sends resent after a restart: %d (already stored %d)" % (
            sum(self.restarts.values()), self.restarts["kill"], self.restarts["term"], sum(self.resent.values()),
            self.resent["duplicate"]))
        print("  stream entries: %d in %d conversations (%d messages, %d edited, %d recalled)" % (
            len(entries), len(self.model.convs), sum(1 for e in entries if e.type in COUNTABLE),
            sum(1 for e in entries if e.edited), sum(1 for e in entries if e.recalled)))
        print("  devices: %d syncs (%d full), %d ranges, %d connects; live entries %d new / %d dup, "
              "fetched %d new / %d dup" % (st["syncs"], st["full_syncs"], st["ranges"], st["connects"],
                                           st["live_new"], st["live_dup"], st["fetched_new"], st["fetched_dup"]))


def test_model(make_broker):
    Run(make_broker, SEED, ROUNDS).run()


def test_hidden_recall_notice_does_not_hide_the_recall(make_broker):
    """The model test's finding in its smallest form (seeds 18 and 25 at 2000 rounds hit it at random): a user
    deletes-for-themselves the MSG_RECALL entry ("ann recalled a message") on one device while another of
    their devices is offline. That device then does what the protocol says (sync from its cursor, drop
    hidden_seqs, fill gaps) and must show the message recalled, as history does; it must not keep the
    recalled content. The same holds for a hidden MSG_EDIT entry and the edited content. (The server now
    refuses to hide such entries: only messages can be deleted for oneself.)"""
    b = make_broker(extra=CONFIG)
    ann = AppDevice(b.port, "ann", "ann-0")
    ben0 = AppDevice(b.port, "ben", "ben-0")
    ben1 = AppDevice(b.port, "ben", "ben-1", per_conv=3)
    for d in (ann, ben0, ben1):
        d.reconnect()
    conv = ann.open_direct("ben").conv_id                          # seq 1
    ann.send(conv, "secret", cmid="secret")                        # seq 2: recalled below
    ann.send(conv, "typo", cmid="typo")                            # seq 3: edited below
    for i in range(3):
        ann.send(conv, "filler %d" % i, cmid="filler%d" % i)       # seq 4..6
    ben1.catch_up()
    assert ben1.convs[conv].entries[2].text == "secret" and ben1.convs[conv].entries[3].text == "typo"
    ben1.close()                                                   # ben's second phone goes offline
    recall = ann.recall(conv, 2, cmid="recall").seq                # seq 7
    edit = ann.edit(conv, 3, "fixed", cmid="edit").seq             # seq 8
    ben0.request(delete_for_me=pb.DeleteForMeReq(conv_id=conv, seqs=[recall, edit]))
    ben1.reconnect()
    final = {m.seq: m for m in ben1.history(conv).messages}
    assert final[2].recalled and final[2].text == "" and final[3].text == "fixed"  # the server's own view
    got = ben1.convs[conv].entries
    assert (got[2].recalled, got[2].text) == (True, ""), \
        "ben-1 still shows the recalled message %r: nothing in its sync told it seq 2 changed" % got[2].text
    assert got[3].text == "fixed", "ben-1 still shows seq 3 as %r, not its edit" % got[3].text
    for d in (ann, ben0, ben1):
        d.drop()
