"""An IM device that keeps a local view of its conversations the way a real app does, for test_model.py.

Built on imclient.Device (used as is), adding:
- a connection without Paho's automatic reconnect (the app decides when to reconnect), TCP_NODELAY (else Nagle
  and delayed ACKs add 40 ms to each request/response turn), and a drop that vanishes at once;
- the local view: per conversation the summary, the entries by seq (deduplicated, each kept in its newest
  state), the seqs deleted for this user, and the join floor; live events are applied to it, and every
  (re)connect subscribes, syncs from the stored cursor while has_more, drops hidden_seqs and fills gaps with
  range requests.

Merging rules (what an app must do because answers and events may cross): an entry's newer state wins
(recalled beats not recalled, a higher version beats a lower one); edits and recalls seen as stream entries
are applied to their target whenever both are present, whichever came first (a recall also empties the
MSG_EDIT entries of its target); a summary from an event replaces the stored one only if it is newer (a sync's
always does: its snapshot is newer than every event processed before it was asked for); a ReadState event
applies only if it moves read_seq forward; membership follows the newest information by seq. The app's own
sends are shown from their acks, its own edits and recalls by fetching their entry (none is echoed to the
device that made it).
"""
import socket
import threading
import time
from collections import Counter

import paho.mqtt.client as mqtt

from imclient import Device, ImError, pb

COUNTABLE = (pb.MSG_TEXT, pb.MSG_FILE, pb.MSG_CUSTOM)


def _copy(msg):
    out = type(msg)()
    out.CopyFrom(msg)
    return out


def _rank(m):
    return (m.recalled, m.version)


def _recall_content(m, by):
    m.recalled = True
    m.recalled_by = by
    m.edited = False
    m.version = 0
    m.edited_ts = 0
    m.text = ""
    m.body = b""
    m.content_type = ""
    del m.attachments[:]
    del m.mentions[:]
    del m.versions[:]


class LocalConv:
    def __init__(self, conv_id):
        self.id = conv_id
        self.summary = None        # pb.Conversation, newest known
        self.entries = {}          # seq -> pb.Message (newest state)
        self.hidden = set()        # seqs this user deleted for themselves
        self.floor = 1             # the join point: nothing below is ours to see
        self.member = True
        self.member_at = 0         # seq of the information `member` comes from
        self.edits = {}            # target seq -> (version, text) newest edit seen
        self.recalls = {}          # target seq -> recalled by

    def max_known(self):
        a = self.summary.max_seq if self.summary is not None else 0
        return max([a] + list(self.entries))


class AppDevice(Device):
    def __init__(self, port, user, device, fmt="pb", v5=False, clean=True, per_conv=0):
        super().__init__(port, user, device, fmt=fmt, v5=v5, clean=clean, connect=False)
        self.per_conv = per_conv
        self.cursor = 0
        self.convs = {}
        self.totals = None  # (total_unread, total_mentions) of the newest sync
        self.last_sync = []
        self.stats = Counter()
        self.anomalies = []  # protocol-level findings (unsorted pages, answers outside the asked range)
        self.lost_connection = threading.Event()

    # ---- connection ------------------------------------------------------------------------------------
    @property
    def online(self):
        return self.client is not None

    host = "127.0.0.1"  # the chaos harness's devices (tests/chaos/mobile.py) connect across namespaces
    keepalive = 30

    def connect(self, timeout=5):
        if self.v5:
            c = mqtt.Client(client_id=self.device, protocol=mqtt.MQTTv5, reconnect_on_failure=False)
        else:
            c = mqtt.Client(client_id=self.device, clean_session=self.clean, protocol=mqtt.MQTTv311,
                            reconnect_on_failure=False)
        c._connect_timeout = timeout  # Paho 1.6 has no setter (TCP connect; the default is 5 s)
        c.username_pw_set(self.user)
        c.on_message = self._on_message
        connected = threading.Event()
        subscribed = threading.Event()
        refused = []

        def on_connect(client, userdata, flags, rc, *rest):
            if rc != 0:
                refused.append(rc)
            connected.set()

        def on_disconnect(*a, **k):
            with self.cond:
                self.lost_connection.set()
                self.cond.notify_all()  # wakes a request waiting for its answer

        c.on_connect = on_connect
        c.on_subscribe = lambda *a, **k: subscribed.set()
        c.on_disconnect = on_disconnect
        self.lost_connection.clear()
        try:
            if self.v5:
                from paho.mqtt.packettypes import PacketTypes
                from paho.mqtt.properties import Properties
                props = Properties(PacketTypes.CONNECT)
                if not self.clean:
                    props.SessionExpiryInterval = 3600
                c.connect(self.host, self.port, keepalive=self.keepalive, clean_start=self.clean, properties=props)
            else:
                c.connect(self.host, self.port, keepalive=self.keepalive)
        except OSError as e:
            self.connect_failed("connect: %s" % e)
        c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.loop_start()
        self.client = c
        if not self._wait_for(connected, timeout) or refused:
            self.connect_failed("no CONNACK or refused (%s)" % refused)
        if self.subscribe_on_connect:
            c.subscribe(self.topic, qos=1)
            if not self._wait_for(subscribed, timeout):
                self.connect_failed("no SUBACK")
        return self

    def _wait_for(self, event, timeout):
        """event.wait(timeout), giving up early when the connection is lost."""
        deadline = time.time() + timeout
        while not event.is_set():
            if self.lost_connection.is_set() or time.time() > deadline:
                return False
            event.wait(0.05)
        return True

    def connect_failed(self, why):
        """The connection could not be set up: the tests fail here (the chaos harness retries instead)."""
        self.drop()
        raise AssertionError("%s: %s" % (self.device, why))

    def drop(self):
        """Vanish without DISCONNECT (a phone losing its link), without waiting for Paho's loop timeout."""
        if self.client:
            c, self.client = self.client, None
            sock = c.socket()
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            c.loop_stop()
            if c.socket() is not None:
                c.socket().close()

    def lost(self):
        """The broker went away: forget the dead client."""
        self.drop()

    def reconnect(self, port=None):
        """(Re)connect, subscribe, sync from the stored cursor, fill gaps: what an app does on every connect."""
        if port is not None:
            self.port = port
        if self.online:
            self.close()
        self.connect()
        self.stats["connects"] += 1
        self.catch_up()

    def catch_up(self):
        self.process_events()
        self.sync_all()
        self.fill_gaps()
        self.process_events()

    def reinstall(self):
        """The app's data is wiped: start again from cursor 0."""
        self.cursor = 0
        self.convs = {}
        self.totals = None
        self.take_events()
        self.stats["reinstalls"] += 1

    # ---- local view ------------------------------------------------------------------------------------
    def conv(self, conv_id):
        lc = self.convs.get(conv_id)
        if lc is None:
            lc = self.convs[conv_id] = LocalConv(conv_id)
        return lc

    def member_convs(self):
        return {cid: lc for cid, lc in self.convs.items() if lc.member and lc.summary is not None}

    def view(self, conv_id):
        """The visible entries of a conversation, ascending."""
        lc = self.convs[conv_id]
        return [lc.entries[s] for s in sorted(lc.entries) if s >= lc.floor and s not in lc.hidden]

    def _set_member(self, lc, member, at, floor=None, force=False):
        """Membership from information about stream position `at`; older information is ignored unless it
        comes from a sync (whose snapshot is newer than every event processed before it was asked for)."""
        if at < lc.member_at and not force:
            return
        lc.member_at = max(lc.member_at, at)
        if not member:
            lc.member = False
            lc.entries.clear()
            lc.edits.clear()
            lc.recalls.clear()
            return
        if not lc.member:
            lc.member = True
        if floor is not None:
            self._raise_floor(lc, floor)

    def _raise_floor(self, lc, floor):
        if floor > lc.floor:
            lc.floor = floor
            for s in [s for s in lc.entries if s < floor]:
                del lc.entries[s]

    def _hide(self, lc, seq):
        lc.hidden.add(seq)
        lc.entries.pop(seq, None)

    def _take_summary(self, lc, conv):
        """A summary from an event: taken only if it is newer than the stored one (a sync's always is)."""
        old = lc.summary
        if old is None or (conv.max_seq >= old.max_seq and conv.read_seq >= old.read_seq
                           and (conv.max_seq, conv.read_seq) != (old.max_seq, old.read_seq)):
            lc.summary = _copy(conv)

    def merge(self, lc, m, live=False):
        """One stream entry (from an event, a sync, a range): dedup by seq, keep the newest state."""
        if not lc.member or m.seq < lc.floor:
            return
        if m.seq in lc.hidden:
            # Not ours to show any more, but what it did to another entry (an edit, a recall) still holds.
            cur = _copy(m)
        else:
            old = lc.entries.get(m.seq)
            if old is None:
                cur = lc.entries[m.seq] = _copy(m)
                self.stats["live_new" if live else "fetched_new"] += 1
            else:
                self.stats["live_dup" if live else "fetched_dup"] += 1
                if _rank(m) > _rank(old):
                    cur = lc.entries[m.seq] = _copy(m)
                else:
                    cur = old
        # Edits and recalls: apply to the target, whichever of the two arrived first.
        if cur.type == pb.MSG_EDIT:
            t = cur.target_seq
            if cur.recalled:  # a recall emptied this edit: its target is recalled
                lc.recalls.setdefault(t, cur.recalled_by)
            elif lc.edits.get(t, (-1, ""))[0] < cur.version:
                lc.edits[t] = (cur.version, cur.text)
            if t in lc.recalls and not cur.recalled:
                _recall_content(cur, lc.recalls[t])
        elif cur.type == pb.MSG_RECALL:
            t = cur.target_seq
            lc.recalls[t] = cur.sender
            for e in lc.entries.values():
                if e.type == pb.MSG_EDIT and e.target_seq == t and not e.recalled:
                    _recall_content(e, cur.sender)
        elif cur.type == pb.MSG_MEMBERS:
            ch = cur.change
            if ch.kind in (pb.MemberChange.ADDED, pb.MemberChange.CREATED) and self.user in ch.users:
                self._set_member(lc, True, cur.seq, floor=cur.seq if ch.kind == pb.MemberChange.ADDED else None)
            elif (ch.kind == pb.MemberChange.REMOVED and self.user in ch.users) or (
                    ch.kind == pb.MemberChange.LEFT and ch.actor == self.user):
                self._set_member(lc, False, cur.seq)
                return
        for t in ([cur.seq] if cur.type in COUNTABLE else [cur.target_seq] if cur.target_seq else []):
            e = lc.entries.get(t)
            if e is None or e.type not in COUNTABLE:
                continue
            if t in lc.recalls and not e.recalled:
                _recall_content(e, lc.recalls[t])
            ed = lc.edits.get(t)
            if ed and e.version < ed[0] and not e.recalled:  # a recalled message keeps no edit marks
                e.version = ed[0]
                e.edited = True
                e.text = ed[1]

    # ---- events ----------------------------------------------------------------------------------------
    def process_events(self):
        for ev in self.take_events():
            kind = ev.WhichOneof("kind")
            self.stats["ev_" + kind] += 1
            if kind == "message":
                m = ev.message
                lc = self.conv(m.conv_id)
                if m.type == pb.MSG_MEMBERS and self.user in m.change.users and m.change.kind in (
                        pb.MemberChange.ADDED, pb.MemberChange.CREATED):
                    self._set_member(lc, True, m.seq,
                                     floor=m.seq if m.change.kind == pb.MemberChange.ADDED else None)
                self.merge(lc, m, live=True)
            elif kind == "read":
                r = ev.read
                lc = self.convs.get(r.conv_id)
                if lc and lc.summary is not None and r.read_seq > lc.summary.read_seq:
                    lc.summary.read_seq = r.read_seq
                    lc.summary.unread = r.unread
                    lc.summary.mentions = r.mentions
                    lc.summary.recv_seq = r.recv_seq
            elif kind == "conversation":
                c = ev.conversation
                lc = self.conv(c.conv_id)
                if c.max_seq < lc.member_at:
                    continue  # older than what we know
                self._set_member(lc, c.member, c.max_seq, floor=c.min_seq if c.member else None)
                if c.member:
                    self._take_summary(lc, c)
                else:
                    lc.summary = _copy(c)
            elif kind == "hidden":
                lc = self.conv(ev.hidden.conv_id)
                for s in ev.hidden.seqs:
                    self._hide(lc, s)

    # ---- sync ------------------------------------------------------------------------------------------
    def _check_page(self, what, conv_id, msgs, lo=None, hi=None):
        seqs = [m.seq for m in msgs]
        if seqs != sorted(set(seqs)):
            self.anomalies.append("%s %s: seqs not strictly ascending: %s" % (what, conv_id, seqs))
        for m in msgs:
            if m.conv_id != conv_id:
                self.anomalies.append("%s %s: entry of another conversation %s:%d" % (what, conv_id, m.conv_id, m.seq))
            if (lo is not None and m.seq < lo) or (hi is not None and m.seq > hi):
                self.anomalies.append("%s %s: seq %d outside [%s, %s]" % (what, conv_id, m.seq, lo, hi))

    def sync_all(self, limit=50):
        """Sync from the stored cursor while has_more. Returns how many conversation entries came back."""
        self.process_events()
        n = 0
        self.last_sync = []  # [(conversation summaries, total_unread, total_mentions)] of each page
        for _ in range(limit):
            r = self.sync(cursor=self.cursor, per_conv=self.per_conv)
            self.last_sync.append(([cs.conversation for cs in r.convs], r.total_unread, r.total_mentions))
            self.stats["syncs"] += 1
            if r.full:
                self.stats["full_syncs"] += 1
                listed = {cs.conversation.conv_id for cs in r.convs}
                for cid, lc in self.convs.items():
                    if lc.member and cid not in listed:  # a full answer lists every conversation you are in
                        self._set_member(lc, False, lc.max_known(), force=True)
            elif r.cursor < self.cursor:
                self.anomalies.append("sync cursor went back from %d to %d" % (self.cursor, r.cursor))
            for cs in r.convs:
                self._apply_conv_sync(cs)
            n += len(r.convs)
            self.totals = (r.total_unread, r.total_mentions)
            self.cursor = r.cursor
            if not r.has_more:
                return n
        raise AssertionError("%s: sync still has_more after %d rounds" % (self.device, limit))

    def _apply_conv_sync(self, cs):
        c = cs.conversation
        lc = self.conv(c.conv_id)
        self._set_member(lc, c.member, c.max_seq, floor=c.min_seq if c.member else None, force=True)
        lc.summary = _copy(c)
        if not c.member:
            return
        for s in cs.hidden_seqs:
            self._hide(lc, s)
        self._check_page("sync", c.conv_id, cs.messages, c.min_seq, c.max_seq)
        for m in cs.messages:
            self.merge(lc, m)

    def fill_gaps(self):
        """Fetch every seq between the join floor and the newest known one that is neither here nor hidden."""
        for cid, lc in list(self.member_convs().items()):
            lo = max(lc.floor, lc.summary.min_seq)
            hi = lc.max_known()
            missing = [s for s in range(lo, hi + 1) if s not in lc.entries and s not in lc.hidden]
            spans = []
            for s in missing:
                if spans and s == spans[-1][1] + 1 and s - spans[-1][0] < 200:
                    spans[-1][1] = s
                else:
                    spans.append([s, s])
            for a, b in spans:
                while a <= b:
                    try:
                        r = self.range(cid, a, b)
                    except ImError as e:
                        if e.code == pb.ERR_NOT_MEMBER:
                            self._set_member(lc, False, lc.max_known(), force=True)
                            return self.fill_gaps()
                        raise
                    self.stats["ranges"] += 1
                    self._check_page("range", cid, r.messages, a, b)
                    got = set()
                    for m in r.messages:
                        got.add(m.seq)
                        self.merge(lc, m)
                    # No holes in the stream: what an explicit range leaves out is deleted for us (up to
                    # where a range cut short by the size budget stopped).
                    end = min(b, r.max_seq)
                    if r.has_more:
                        if not r.messages:
                            self.anomalies.append("range %s %d..%d: has_more with no entries" % (cid, a, b))
                            break
                        end = r.messages[-1].seq
                    for s in range(max(a, r.min_seq), end + 1):
                        if s not in got:
                            self._hide(lc, s)
                    a = end + 1 if r.has_more else b + 1

    # ---- own operations --------------------------------------------------------------------------------
    def record_own_send(self, conv_id, ack, cmid, text, mentions, reply_to):
        """The app shows its own message at once from the ack (the server does not echo it to this device)."""
        lc = self.conv(conv_id)
        m = pb.Message(conv_id=conv_id, seq=ack.seq, msg_id=ack.msg_id, sender=self.user, sender_device=self.device,
                       client_msg_id=cmid, server_ts=ack.server_ts, type=pb.MSG_TEXT, text=text,
                       mentions=sorted(set(mentions)), reply_to=reply_to)
        self.merge(lc, m)

    def record_own_change(self, conv_id, seq):
        """After an own edit or recall (not echoed to this device): fetch its stream entry, which applies to
        the target."""
        r = self.range(conv_id, seq, seq)
        self._check_page("range", conv_id, r.messages, seq, seq)
        lc = self.conv(conv_id)
        for m in r.messages:
            self.merge(lc, m)

    def record_read(self, read):
        lc = self.convs.get(read.conv_id)
        if lc and lc.summary is not None and read.read_seq >= lc.summary.read_seq:
            lc.summary.read_seq = read.read_seq
            lc.summary.unread = read.unread
            lc.summary.mentions = read.mentions

    def record_hidden(self, conv_id, seqs):
        lc = self.conv(conv_id)
        for s in seqs:
            self._hide(lc, s)
