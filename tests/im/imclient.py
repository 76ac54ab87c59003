"""A small IM client for the tests, written from docs/protocol.md the way an app would be: Paho MQTT (v3.1.1
or v5), one device topic, requests with req_id, responses matched by req_id, events collected in order.

The protobuf classes are generated from im/proto at import time (protoc into a temporary directory), so the
tests always use the schema in the tree.
"""
import base64
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import paho.mqtt.client as mqtt

ROOT = pathlib.Path(__file__).resolve().parents[2]
_gen = tempfile.mkdtemp(prefix="parley-im-pb-")
subprocess.run(["protoc", "-I", str(ROOT / "im" / "proto"), "--python_out", _gen, "im.proto"], check=True)
sys.path.insert(0, _gen)
import im_pb2 as pb  # noqa: E402
from google.protobuf import json_format  # noqa: E402

try:
    import msgpack  # noqa: E402
except ImportError:  # only the MsgPack tests need it
    msgpack = None

FORMATS = ("pb", "json", "msgpack")


def encode(msg, fmt):
    if fmt == "pb":
        return msg.SerializeToString()
    doc = json_format.MessageToJson(msg, indent=None)
    if fmt == "json":
        return doc.encode()
    return msgpack.packb(json.loads(doc))


def decode(payload, cls, fmt):
    out = cls()
    if fmt == "pb":
        out.ParseFromString(payload)
    elif fmt == "json":
        json_format.Parse(payload.decode(), out, ignore_unknown_fields=True)
    else:
        json_format.ParseDict(msgpack.unpackb(payload, raw=False), out, ignore_unknown_fields=True)
    return out


class Raw:
    """One PUBLISH as the device received it."""

    def __init__(self, topic, payload, qos, properties):
        self.topic, self.payload, self.qos, self.properties = topic, payload, qos, properties

    def __repr__(self):
        return "<Raw %s qos=%d %d bytes>" % (self.topic, self.qos, len(self.payload))


class ImError(Exception):
    def __init__(self, error):
        super().__init__("%s: %s" % (pb.ErrorCode.Name(error.code), error.message))
        self.code = error.code
        self.error = error


class Device:
    """One device (MQTT client id) of one user."""

    def __init__(self, port, user, device, fmt="pb", v5=False, clean=True, subscribe=True, connect=True):
        self.port, self.user, self.device, self.fmt, self.v5, self.clean = port, user, device, fmt, v5, clean
        self.subscribe_on_connect = subscribe
        self.responses = {}
        self.events = []
        self.frames = 0
        self.raw = []  # every PUBLISH received: Raw(topic, payload, qos, properties)
        self.bad_frames = []  # payloads that did not decode as a ServerFrame
        self._suback = {}  # mid -> reason codes
        self.cond = threading.Condition()
        self.client = None
        if connect:
            self.connect()

    # ---- connection
    def connect(self, timeout=5):
        if self.v5:
            c = mqtt.Client(client_id=self.device, protocol=mqtt.MQTTv5)
        else:
            c = mqtt.Client(client_id=self.device, clean_session=self.clean, protocol=mqtt.MQTTv311)
        c.username_pw_set(self.user)
        c.on_message = self._on_message
        connected = threading.Event()
        subscribed = threading.Event()
        c.on_connect = lambda *a, **k: connected.set()
        c.on_subscribe = self._on_subscribe
        self._subscribed_event = subscribed
        if self.v5:
            from paho.mqtt.properties import Properties
            from paho.mqtt.packettypes import PacketTypes
            props = Properties(PacketTypes.CONNECT)
            if not self.clean:
                props.SessionExpiryInterval = 3600
            c.connect("127.0.0.1", self.port, keepalive=30, clean_start=self.clean, properties=props)
        else:
            c.connect("127.0.0.1", self.port, keepalive=30)
        sock = c.socket()
        if sock is not None:  # Nagle would hold a request behind an unacknowledged one for ~40 ms
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.loop_start()
        assert connected.wait(timeout), "no CONNACK"
        self.client = c
        if self.subscribe_on_connect:
            c.subscribe(self.topic, qos=1)
            assert subscribed.wait(timeout), "no SUBACK"
        return self

    @property
    def topic(self):
        return "$im/v1/d/%s/%s" % (self.device, self.fmt)

    def close(self):
        if self.client:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None

    def drop(self):
        """Vanish without DISCONNECT (like a phone losing its link)."""
        if self.client:
            self.client.loop_stop()
            sock = self.client.socket()
            if sock is not None:  # None when the broker already went away
                sock.close()
            self.client = None

    def _on_subscribe(self, client, userdata, mid, codes, properties=None):
        out = []
        for c in codes:
            out.append(c.value if hasattr(c, "value") else int(c))
        with self.cond:
            self._suback[mid] = out
            self.cond.notify_all()
        ev = getattr(self, "_subscribed_event", None)
        if ev is not None:
            ev.set()

    def subscribe_topic(self, topic, qos=1, timeout=5):
        """Subscribes to `topic`; returns the SUBACK's reason codes (granted QoS, or >= 0x80 for a refusal)."""
        rc, mid = self.client.subscribe(topic, qos=qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, "subscribe failed locally: %s" % rc
        deadline = time.time() + timeout
        with self.cond:
            while mid not in self._suback:
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError("no SUBACK for %s on %s" % (topic, self.device))
                self.cond.wait(left)
            return self._suback.pop(mid)

    def _on_message(self, client, userdata, msg):
        fmt = msg.topic.rsplit("/", 1)[-1]
        if fmt not in FORMATS:
            fmt = self.fmt
        raw = Raw(msg.topic, bytes(msg.payload), msg.qos, getattr(msg, "properties", None))
        try:
            frame = decode(msg.payload, pb.ServerFrame, fmt)
        except Exception:  # noqa: BLE001 - recorded for the test to look at
            with self.cond:
                self.raw.append(raw)
                self.bad_frames.append(raw)
                self.cond.notify_all()
            return
        with self.cond:
            self.raw.append(raw)
            self.frames += 1
            if frame.HasField("response"):
                self.responses[frame.response.req_id] = frame.response
            elif frame.HasField("event"):
                self.events.append(frame.event)
            self.cond.notify_all()

    # ---- requests
    def publish_request(self, req, qos=1, fmt=None, topic=None, properties=None):
        fmt = fmt or self.fmt
        if topic is None:
            topic = "$im/v1/req" if fmt == "pb" else "$im/v1/req/" + fmt
        info = self.client.publish(topic, encode(req, fmt), qos=qos, properties=properties)
        return info

    def request(self, timeout=10, raise_error=True, qos=1, **op):
        """request(send=pb.SendReq(...)) -> the Response's result (or raises ImError)."""
        req = pb.Request(req_id=uuid.uuid4().hex, **op)
        self.publish_request(req, qos=qos)
        resp = self.wait_response(req.req_id, timeout)
        if raise_error and resp.HasField("error") and resp.error.code != pb.OK:
            raise ImError(resp.error)
        return resp

    def wait_response(self, req_id, timeout=10):
        deadline = time.time() + timeout
        with self.cond:
            while req_id not in self.responses:
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError("no response to %s on %s" % (req_id, self.device))
                self.cond.wait(left)
            return self.responses.pop(req_id)

    def wait_event(self, pred, timeout=10):
        """The first collected event matching pred (consumed), waiting for it."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for i, ev in enumerate(self.events):
                    if pred(ev):
                        return self.events.pop(i)
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError("no matching event on %s; have %s" % (self.device, self.events))
                self.cond.wait(left)

    def take_events(self):
        with self.cond:
            out, self.events = self.events, []
            return out

    # ---- conveniences
    def open_direct(self, peer):
        return self.request(open_direct=pb.OpenDirectReq(peer=peer)).conversation

    def create_group(self, name, members, cmid=""):
        return self.request(create_group=pb.CreateGroupReq(name=name, members=members, client_msg_id=cmid)).conversation

    def send(self, conv_id, text, cmid=None, **kw):
        return self.request(send=pb.SendReq(conv_id=conv_id, client_msg_id=cmid or uuid.uuid4().hex, text=text,
                                            **kw)).ack

    def sync(self, cursor=0, per_conv=0, max_convs=0):
        return self.request(sync=pb.SyncReq(cursor=cursor, messages_per_conv=per_conv, max_convs=max_convs)).sync

    def history(self, conv_id, before=0, limit=0, with_versions=False):
        return self.request(history=pb.HistoryReq(conv_id=conv_id, before_seq=before, limit=limit,
                                                  with_versions=with_versions)).messages

    def range(self, conv_id, lo, hi):
        return self.request(range=pb.RangeReq(conv_id=conv_id, from_seq=lo, to_seq=hi)).messages

    def mark_read(self, conv_id, seq):
        return self.request(mark_read=pb.MarkReadReq(conv_id=conv_id, seq=seq)).read

    def edit(self, conv_id, seq, text, cmid=""):
        return self.request(edit=pb.EditReq(conv_id=conv_id, seq=seq, text=text, client_msg_id=cmid)).ack

    def recall(self, conv_id, seq, cmid=""):
        return self.request(recall=pb.RecallReq(conv_id=conv_id, seq=seq, client_msg_id=cmid)).ack

    # ---- more conveniences (additive)
    def expect_error(self, code, timeout=10, **op):
        """Sends the request and asserts it fails with `code`; returns the Error."""
        resp = self.request(timeout=timeout, raise_error=False, **op)
        assert resp.HasField("error") and resp.error.code == code, "expected %s, got %s" % (
            pb.ErrorCode.Name(code), resp)
        return resp.error

    def request_async(self, qos=1, **op):
        """Publishes a request without waiting; returns its req_id (collect with wait_response)."""
        req = pb.Request(req_id=uuid.uuid4().hex, **op)
        self.publish_request(req, qos=qos)
        return req.req_id

    def mark_delivered(self, conv_id, seq):
        return self.request(mark_delivered=pb.MarkDeliveredReq(conv_id=conv_id, seq=seq)).read

    def delete_for_me(self, conv_id, seqs):
        return self.request(delete_for_me=pb.DeleteForMeReq(conv_id=conv_id, seqs=seqs))

    def get_conversation(self, conv_id):
        return self.request(get_conversation=pb.GetConversationReq(conv_id=conv_id)).conversation

    def members(self, conv_id):
        return self.request(list_members=pb.ListMembersReq(conv_id=conv_id)).members

    def rename_group(self, conv_id, name):
        return self.request(rename_group=pb.RenameGroupReq(conv_id=conv_id, name=name)).ack

    def add_members(self, conv_id, users):
        return self.request(add_members=pb.AddMembersReq(conv_id=conv_id, users=users)).ack

    def remove_members(self, conv_id, users):
        return self.request(remove_members=pb.RemoveMembersReq(conv_id=conv_id, users=users)).ack

    def leave(self, conv_id):
        return self.request(leave=pb.LeaveReq(conv_id=conv_id)).ack

    def dissolve(self, conv_id):
        return self.request(dissolve=pb.DissolveReq(conv_id=conv_id)).ack

    def set_role(self, conv_id, users, role):
        return self.request(set_role=pb.SetRoleReq(conv_id=conv_id, users=users, role=role)).ack

    def typing(self, conv_id, qos=0):
        """Fire and forget (typing is never answered)."""
        self.publish_request(pb.Request(req_id=uuid.uuid4().hex, typing=pb.TypingReq(conv_id=conv_id)), qos=qos)

    def presence(self, users):
        return self.request(presence=pb.PresenceReq(users=users)).presence

    def wait_message(self, conv_id, seq=None, mtype=None, timeout=10):
        """The first Message event of `conv_id` (with `seq` / `mtype` if given)."""
        def pred(e):
            if not e.HasField("message") or e.message.conv_id != conv_id:
                return False
            return (seq is None or e.message.seq == seq) and (mtype is None or e.message.type == mtype)
        return self.wait_event(pred, timeout).message

    def no_event(self, pred, timeout=0.5):
        """Asserts that no collected event matches pred within `timeout` (none is consumed)."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for ev in self.events:
                    assert not pred(ev), "unexpected event on %s: %s" % (self.device, ev)
                left = deadline - time.time()
                if left <= 0:
                    return
                self.cond.wait(left)

    def wait_raw(self, pred, timeout=10):
        """The first received PUBLISH (Raw) matching pred (not consumed)."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for r in self.raw:
                    if pred(r):
                        return r
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError("no matching PUBLISH on %s; have %s" % (self.device, self.raw))
                self.cond.wait(left)


def is_msg(conv_id=None, seq=None, mtype=None):
    """A predicate for wait_event / no_event: a Message event (of that conversation, seq, type)."""
    def pred(e):
        if not e.HasField("message"):
            return False
        m = e.message
        return ((conv_id is None or m.conv_id == conv_id) and (seq is None or m.seq == seq)
                and (mtype is None or m.type == mtype))
    return pred


def wait_until(pred, timeout=10, interval=0.05, what="condition"):
    """Polls pred() until it returns something truthy; returns that value."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(interval)


def full_history(dev, conv_id, page=50):
    """Every visible entry of a conversation, ascending, by paging history backwards."""
    out = []
    before = 0
    while True:
        page_ = dev.history(conv_id, before=before, limit=page)
        out = list(page_.messages) + out
        if not page_.has_more or not page_.messages:
            return out
        before = page_.messages[0].seq
