"""The IM layer's contract as a plain in-memory model, for tests/im/test_model.py.

The model knows nothing of counters: every number is computed by scanning the stream, the way IM.md defines
it, so the server's counter arithmetic (im/summary.cc: count - read_count - recalled - hidden) is checked
against the meaning it is supposed to have:

  unread(u)   = entries s with read_seq(u) < s <= max_seq that are countable (TEXT / FILE / CUSTOM),
                not sent by u, not recalled, and not deleted by u for themselves
  mentions(u) = of those, the ones whose mentions name u (mentions are counted only for members, and a
                member's read position is at least their join entry, so "after read_seq" covers that)
  read_seq(u) = forward-only max of: the join entry (for a member added later), every mark read clamped to
                max_seq at the time, and every message u sent (sending reads up to your own message)

Each conversation keeps its stream (seq 1.. without holes, including MSG_MEMBERS / MSG_EDIT / MSG_RECALL
entries) with every entry in its final state (text after edits, edited / version, the earlier versions,
recalled with its content removed), its members (role, join entry, read position) and per user the seqs they
deleted for themselves.
"""
from dataclasses import dataclass, field

from imclient import pb

COUNTABLE = (pb.MSG_TEXT, pb.MSG_FILE, pb.MSG_CUSTOM)
MAX_VERSIONS = 20  # im.max_versions (default)


@dataclass
class Entry:
    seq: int
    type: int
    sender: str
    sender_device: str
    client_msg_id: str = ""
    text: str = ""
    mentions: tuple = ()
    reply_to: int = 0
    edited: bool = False
    version: int = 0
    recalled: bool = False
    recalled_by: str = ""
    target_seq: int = 0
    change: tuple = None  # (kind, actor, users (sorted), role, name) for MSG_MEMBERS
    versions: list = field(default_factory=list)  # [(version, text)] earlier contents, oldest first

    def key(self, with_versions=False):
        k = (self.seq, self.type, self.sender, self.sender_device, self.client_msg_id, self.text, self.mentions,
             self.reply_to, self.edited, self.version, self.recalled, self.recalled_by, self.target_seq, self.change)
        return k + (tuple(self.versions),) if with_versions else k


def wire_key(m, with_versions=False):
    """The same tuple as Entry.key for a pb.Message from the server (or a device's copy of one)."""
    change = None
    if m.type == pb.MSG_MEMBERS:
        c = m.change
        change = (c.kind, c.actor, tuple(sorted(c.users)), c.role, c.name)
    k = (m.seq, m.type, m.sender, m.sender_device, m.client_msg_id, m.text, tuple(sorted(m.mentions)), m.reply_to,
         m.edited, m.version, m.recalled, m.recalled_by, m.target_seq, change)
    return k + (tuple((v.version, v.text) for v in m.versions),) if with_versions else k


KEY_FIELDS = ("seq", "type", "sender", "sender_device", "client_msg_id", "text", "mentions", "reply_to", "edited",
              "version", "recalled", "recalled_by", "target_seq", "change", "versions")


def describe_diff(want, got):
    """Which fields of two key tuples differ, for failure messages."""
    if want is None or got is None:
        return "want %s, got %s" % (want, got)
    diffs = []
    for name, a, b in zip(KEY_FIELDS, want, got):
        if a != b:
            diffs.append("%s: want %r got %r" % (name, a, b))
    return "; ".join(diffs) or "equal"


@dataclass
class Member:
    role: int
    join_seq: int
    read_seq: int = 0


class Conv:
    def __init__(self, conv_id, type_, name="", owner="", peers=()):
        self.id = conv_id
        self.type = type_
        self.name = name
        self.owner = owner
        self.peers = sorted(peers)
        self.entries = {}  # seq -> Entry
        self.members = {}  # user -> Member
        self.hidden = {}   # user -> set of seqs deleted for themselves (survives leaving and re-joining)

    # ---- the stream
    @property
    def max_seq(self):
        return max(self.entries) if self.entries else 0

    def insert(self, e):
        """Places an entry at the seq the server gave it (acks may come back out of order)."""
        assert e.seq >= 1, "seq must be >= 1: %r" % (e,)
        assert e.seq not in self.entries, "two entries acked at %s:%d:\n  %r\n  %r" % (
            self.id, e.seq, self.entries[e.seq], e)
        self.entries[e.seq] = e

    def holes(self):
        return [s for s in range(1, self.max_seq + 1) if s not in self.entries]

    # ---- per user
    def visible_from(self, user):
        return max(self.members[user].join_seq, 1)

    def visible(self, user):
        """The entries `user` sees in history, ascending."""
        lo = self.visible_from(user)
        hid = self.hidden.get(user, set())
        return [self.entries[s] for s in range(lo, self.max_seq + 1) if s not in hid]

    def unread(self, user):
        m = self.members[user]
        hid = self.hidden.get(user, set())
        unread = mentions = 0
        for s in range(m.read_seq + 1, self.max_seq + 1):
            e = self.entries[s]
            if e.type not in COUNTABLE or e.sender == user or e.recalled or s in hid:
                continue
            unread += 1
            if user in e.mentions:
                mentions += 1
        return unread, mentions

    def summary(self, user):
        """The fields of a Conversation summary for a member, as the contract defines them."""
        m = self.members[user]
        unread, mentions = self.unread(user)
        out = {
            "type": self.type,
            "member": True,
            "max_seq": self.max_seq,
            "min_seq": self.visible_from(user),
            "read_seq": m.read_seq,
            "unread": unread,
            "mentions": mentions,
            "my_role": m.role,
            "member_count": len(self.members),
        }
        if self.type == pb.CONV_GROUP:
            out["name"] = self.name
            out["owner"] = self.owner
        else:
            peer = [p for p in self.peers if p != user][0]
            out["peers"] = (peer,)
            out["peer_read_seq"] = self.members[peer].read_seq
        return out


def summary_fields(conv, keys):
    """A pb.Conversation reduced to the fields a model summary names."""
    out = {}
    for k in keys:
        v = getattr(conv, k)
        out[k] = tuple(v) if k == "peers" else v
    return out


class Model:
    def __init__(self):
        self.convs = {}  # conv_id -> Conv
        self.cmids = {}  # (user, client_msg_id) -> (conv_id, seq): what a resend must be answered with

    def convs_of(self, user):
        return sorted((c for c in self.convs.values() if user in c.members), key=lambda c: c.id)

    def totals(self, user):
        u = m = 0
        for c in self.convs_of(user):
            a, b = c.unread(user)
            u += a
            m += b
        return u, m

    def entry_count(self):
        return sum(len(c.entries) for c in self.convs.values())

    def remember_cmid(self, user, cmid, conv_id, seq):
        if not cmid:
            return
        key = (user, cmid)
        assert key not in self.cmids, "client_msg_id %r of %s used twice by the test" % (cmid, user)
        self.cmids[key] = (conv_id, seq)

    # ---- conversations
    def create_direct(self, conv_id, actor, device, peer, seq):
        c = Conv(conv_id, pb.CONV_DIRECT, peers=(actor, peer))
        for u in c.peers:
            c.members[u] = Member(pb.ROLE_MEMBER, 1, 0)
        c.insert(Entry(seq, pb.MSG_MEMBERS, actor, device,
                       change=(pb.MemberChange.CREATED, actor, tuple(c.peers), 0, "")))
        self.convs[conv_id] = c
        return c

    def create_group(self, conv_id, owner, device, name, members, cmid, seq):
        users = sorted(set(members) | {owner})
        c = Conv(conv_id, pb.CONV_GROUP, name=name, owner=owner)
        for u in users:
            c.members[u] = Member(pb.ROLE_OWNER if u == owner else pb.ROLE_MEMBER, 1, 0)
        c.insert(Entry(seq, pb.MSG_MEMBERS, owner, device,
                       change=(pb.MemberChange.CREATED, owner, tuple(users), 0, name)))
        self.convs[conv_id] = c
        return c

    # ---- messages
    def send(self, conv_id, user, device, cmid, text, mentions, reply_to, seq):
        c = self.convs[conv_id]
        c.insert(Entry(seq, pb.MSG_TEXT, user, device, cmid, text, tuple(sorted(set(mentions))), reply_to))
        m = c.members[user]
        m.read_seq = max(m.read_seq, seq)  # your own messages are never unread
        self.remember_cmid(user, cmid, conv_id, seq)

    def edit_error(self, conv_id, user, seq):
        """The error an edit must get, or None (the server's order of checks: im/writer.cc Edit)."""
        c = self.convs[conv_id]
        if user not in c.members:
            return pb.ERR_NOT_MEMBER
        e = c.entries.get(seq)
        if e is None or seq < c.visible_from(user):
            return pb.ERR_NOT_FOUND
        if e.sender != user:
            return pb.ERR_FORBIDDEN
        if e.type not in COUNTABLE or e.recalled:
            return pb.ERR_CONFLICT
        return None

    def edit(self, conv_id, user, device, cmid, target, text, seq):
        c = self.convs[conv_id]
        t = c.entries[target]
        t.versions.append((t.version, t.text))
        del t.versions[:-MAX_VERSIONS]
        t.text = text
        t.edited = True
        t.version += 1
        c.insert(Entry(seq, pb.MSG_EDIT, user, device, cmid, text, version=t.version, target_seq=target))
        self.remember_cmid(user, cmid, conv_id, seq)

    def recall_error(self, conv_id, user, seq):
        c = self.convs[conv_id]
        if user not in c.members:
            return pb.ERR_NOT_MEMBER
        e = c.entries.get(seq)
        if e is None or seq < c.visible_from(user):
            return pb.ERR_NOT_FOUND
        if e.type not in COUNTABLE or e.recalled:
            return pb.ERR_CONFLICT
        admin = c.type == pb.CONV_GROUP and c.members[user].role in (pb.ROLE_ADMIN, pb.ROLE_OWNER)
        if not admin and e.sender != user:
            return pb.ERR_FORBIDDEN
        return None

    def recall(self, conv_id, user, device, cmid, target, seq):
        c = self.convs[conv_id]
        t = c.entries[target]
        # Recalled for everyone: the content goes, from the message, its kept versions and the MSG_EDIT entries
        # that carried its later contents (those are marked recalled too).
        t.recalled = True
        t.recalled_by = user
        t.text = ""
        t.mentions = ()
        t.versions = []
        t.edited = False  # and so do the marks of its edits
        t.version = 0
        for e in c.entries.values():
            if e.type == pb.MSG_EDIT and e.target_seq == target:
                e.text = ""
                e.version = 0
                e.recalled = True
                e.recalled_by = user
        c.insert(Entry(seq, pb.MSG_RECALL, user, device, cmid, target_seq=target))
        self.remember_cmid(user, cmid, conv_id, seq)

    def delete_for_me(self, conv_id, user, seqs):
        """Returns the seqs the server hides (and tells the user's other devices about). Only messages can be
        hidden: edit, recall and membership entries carry changes every device needs, and are left alone."""
        c = self.convs[conv_id]
        lo = c.visible_from(user)
        hideable = (pb.MSG_TEXT, pb.MSG_FILE, pb.MSG_CUSTOM, pb.MSG_SYSTEM)
        took = sorted(s for s in set(seqs) if lo <= s <= c.max_seq and s in c.entries and c.entries[s].type in hideable)
        c.hidden.setdefault(user, set()).update(took)
        return took

    def mark_read(self, conv_id, user, seq):
        c = self.convs[conv_id]
        m = c.members[user]
        m.read_seq = max(m.read_seq, min(seq, c.max_seq))

    # ---- groups
    def group_change(self, conv_id, actor, device, kind, users, role, name, seq):
        """Applies an acknowledged group change (kind as MemberChange.Kind) at `seq`."""
        c = self.convs[conv_id]
        users = sorted(set(users))
        if kind == pb.MemberChange.RENAMED:
            c.name = name
        elif kind == pb.MemberChange.ADDED:
            for u in users:
                c.members[u] = Member(pb.ROLE_MEMBER, seq, seq)
        elif kind == pb.MemberChange.REMOVED:
            for u in users:
                del c.members[u]
        elif kind == pb.MemberChange.LEFT:
            del c.members[actor]
            users = []
        elif kind == pb.MemberChange.ROLE:
            for u in users:
                c.members[u].role = role
        else:
            raise AssertionError("the model does not do %s" % kind)
        c.insert(Entry(seq, pb.MSG_MEMBERS, actor, device, change=(kind, actor, tuple(users), role, name)))
