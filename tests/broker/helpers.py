"""Shared helpers for the broker tests (additive: add, don't change existing signatures).

- `mqtt_*` functions build raw MQTT packets (v3.1.1 = level 4, v5 = level 5); `RawClient` sends them
  over a socket and parses what comes back into `Packet` values (byte-level tests).
- `PahoClient` wraps Paho (v3.1.1 or v5): connect() waits for CONNACK, received messages go into a
  queue, `get()` / `expect_none()` poll with deadlines.
- `wait_for(pred, timeout)` polls a condition.
"""
import pathlib
import queue
import shutil
import socket
import subprocess
import struct
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

# ---------------------------------------------------------------------------------------------------------
# Packet types
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

# MQTT 5 property identifiers
P_PAYLOAD_FORMAT = 0x01
P_MESSAGE_EXPIRY = 0x02
P_CONTENT_TYPE = 0x03
P_RESPONSE_TOPIC = 0x08
P_CORRELATION_DATA = 0x09
P_SUBSCRIPTION_ID = 0x0B
P_SESSION_EXPIRY = 0x11
P_ASSIGNED_CLIENT_ID = 0x12
P_SERVER_KEEP_ALIVE = 0x13
P_AUTH_METHOD = 0x15
P_AUTH_DATA = 0x16
P_REQUEST_PROBLEM_INFO = 0x17
P_WILL_DELAY = 0x18
P_REQUEST_RESPONSE_INFO = 0x19
P_RESPONSE_INFO = 0x1A
P_SERVER_REFERENCE = 0x1C
P_REASON_STRING = 0x1F
P_RECEIVE_MAXIMUM = 0x21
P_TOPIC_ALIAS_MAXIMUM = 0x22
P_TOPIC_ALIAS = 0x23
P_MAXIMUM_QOS = 0x24
P_RETAIN_AVAILABLE = 0x25
P_USER_PROPERTY = 0x26
P_MAXIMUM_PACKET_SIZE = 0x27
P_WILDCARD_SUB_AVAILABLE = 0x28
P_SUB_ID_AVAILABLE = 0x29
P_SHARED_SUB_AVAILABLE = 0x2A

_BYTE_PROPS = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_U16_PROPS = {0x13, 0x21, 0x22, 0x23}
_U32_PROPS = {0x02, 0x11, 0x18, 0x27}
_STR_PROPS = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
_BIN_PROPS = {0x09, 0x16}
_VARINT_PROPS = {0x0B}


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def mqtt_str(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack("!H", len(s)) + s


def u16(n):
    return struct.pack("!H", n)


def encode_props(props):
    """props: list of (id, value) pairs or a dict {id: value}; user property value = (key, val).
    Returns the encoded property block including its length varint."""
    if props is None:
        props = []
    if isinstance(props, dict):
        props = list(props.items())
    body = bytearray()
    for pid, val in props:
        body += varint(pid)
        if pid in _BYTE_PROPS:
            body += bytes([val])
        elif pid in _U16_PROPS:
            body += struct.pack("!H", val)
        elif pid in _U32_PROPS:
            body += struct.pack("!I", val)
        elif pid in _STR_PROPS or pid in _BIN_PROPS:
            body += mqtt_str(val)
        elif pid in _VARINT_PROPS:
            body += varint(val)
        elif pid == P_USER_PROPERTY:
            body += mqtt_str(val[0]) + mqtt_str(val[1])
        else:
            raise ValueError("unknown property %#x" % pid)
    return varint(len(body)) + bytes(body)


def fixed(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def mqtt_connect(client_id="", version=5, clean=True, keepalive=60, props=None, will=None,
                 username=None, password=None):
    """will: dict(topic=, payload=b'', qos=0, retain=False, props=None)."""
    flags = 0
    if clean:
        flags |= 0x02
    payload = mqtt_str(client_id)
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
        if version == 5:
            payload += encode_props(will.get("props"))
        payload += mqtt_str(will["topic"]) + mqtt_str(will.get("payload", b""))
    if username is not None:
        flags |= 0x80
        payload += mqtt_str(username)
    if password is not None:
        flags |= 0x40
        payload += mqtt_str(password)
    var = mqtt_str("MQTT") + bytes([version, flags]) + u16(keepalive)
    if version == 5:
        var += encode_props(props)
    return fixed(CONNECT, 0, var + payload)


def mqtt_publish(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None, props=None, version=5):
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    var = mqtt_str(topic)
    if qos > 0:
        var += u16(packet_id if packet_id is not None else 1)
    if version == 5:
        var += encode_props(props)
    return fixed(PUBLISH, flags, var + payload)


def mqtt_ack(ptype, packet_id, reason=None, props=None, version=5):
    """PUBACK/PUBREC/PUBREL/PUBCOMP. PUBREL gets its mandatory flags 0b0010."""
    body = u16(packet_id)
    if version == 5 and (reason is not None or props):
        body += bytes([reason or 0])
        if props:
            body += encode_props(props)
    return fixed(ptype, 0x02 if ptype == PUBREL else 0, body)


def mqtt_subscribe(packet_id, filters, props=None, version=5):
    """filters: list of (filter, options_byte) or filter strings (options 0)."""
    body = u16(packet_id)
    if version == 5:
        body += encode_props(props)
    for f in filters:
        if isinstance(f, str):
            f = (f, 0)
        body += mqtt_str(f[0]) + bytes([f[1]])
    return fixed(SUBSCRIBE, 0x02, body)


def mqtt_unsubscribe(packet_id, filters, version=5):
    body = u16(packet_id)
    if version == 5:
        body += encode_props(None)
    for f in filters:
        body += mqtt_str(f)
    return fixed(UNSUBSCRIBE, 0x02, body)


def mqtt_pingreq():
    return b"\xc0\x00"


def mqtt_disconnect(reason=None, props=None, version=5):
    if version != 5 or (reason is None and not props):
        return b"\xe0\x00"
    body = bytes([reason])
    if props:
        body += encode_props(props)
    return fixed(DISCONNECT, 0, body)


# ---------------------------------------------------------------------------------------------------------
# Parsing


def decode_props(data, pos):
    """Returns (dict, new_pos). Repeated properties (user property, subscription id) become lists."""
    length, pos = _read_varint(data, pos)
    end = pos + length
    props = {}
    while pos < end:
        pid, pos = _read_varint(data, pos)
        if pid in _BYTE_PROPS:
            val = data[pos]
            pos += 1
        elif pid in _U16_PROPS:
            val = struct.unpack_from("!H", data, pos)[0]
            pos += 2
        elif pid in _U32_PROPS:
            val = struct.unpack_from("!I", data, pos)[0]
            pos += 4
        elif pid in _STR_PROPS or pid in _BIN_PROPS:
            n = struct.unpack_from("!H", data, pos)[0]
            val = bytes(data[pos + 2:pos + 2 + n])
            if pid in _STR_PROPS:
                val = val.decode()
            pos += 2 + n
        elif pid in _VARINT_PROPS:
            val, pos = _read_varint(data, pos)
        elif pid == P_USER_PROPERTY:
            n = struct.unpack_from("!H", data, pos)[0]
            k = bytes(data[pos + 2:pos + 2 + n]).decode()
            pos += 2 + n
            n = struct.unpack_from("!H", data, pos)[0]
            v = bytes(data[pos + 2:pos + 2 + n]).decode()
            pos += 2 + n
            val = (k, v)
        else:
            raise ValueError("unknown property %#x" % pid)
        if pid in (P_USER_PROPERTY, P_SUBSCRIPTION_ID):
            props.setdefault(pid, []).append(val)
        else:
            props[pid] = val
    return props, end


def _read_varint(data, pos):
    mult, val = 1, 0
    while True:
        b = data[pos]
        pos += 1
        val += (b & 0x7F) * mult
        if not b & 0x80:
            return val, pos
        mult *= 128


class Packet:
    """A parsed packet. Always: type, flags, body. Filled in by type (v5 fields only for version 5):
    CONNACK: session_present, reason, props; PUBLISH: topic, payload, qos, retain, dup, packet_id, props;
    acks: packet_id, reason (0 if absent), props; SUBACK/UNSUBACK: packet_id, reasons, props;
    DISCONNECT: reason, props."""

    def __init__(self, ptype, flags, body, version):
        self.type, self.flags, self.body = ptype, flags, body
        self.props = {}
        self.reason = None
        b = body
        if ptype == CONNACK:
            self.session_present = bool(b[0] & 1)
            self.reason = b[1]
            if version == 5 and len(b) > 2:
                self.props, _ = decode_props(b, 2)
        elif ptype == PUBLISH:
            self.qos = (flags >> 1) & 3
            self.retain = bool(flags & 1)
            self.dup = bool(flags & 8)
            n = struct.unpack_from("!H", b, 0)[0]
            self.topic = bytes(b[2:2 + n]).decode()
            pos = 2 + n
            self.packet_id = None
            if self.qos:
                self.packet_id = struct.unpack_from("!H", b, pos)[0]
                pos += 2
            if version == 5:
                self.props, pos = decode_props(b, pos)
            self.payload = bytes(b[pos:])
        elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.packet_id = struct.unpack_from("!H", b, 0)[0]
            self.reason = b[2] if len(b) > 2 else 0
            if version == 5 and len(b) > 3:
                self.props, _ = decode_props(b, 3)
        elif ptype in (SUBACK, UNSUBACK):
            self.packet_id = struct.unpack_from("!H", b, 0)[0]
            pos = 2
            if version == 5:
                self.props, pos = decode_props(b, pos)
            self.reasons = list(b[pos:])
        elif ptype == DISCONNECT:
            self.reason = b[0] if len(b) > 0 else 0
            if version == 5 and len(b) > 1:
                self.props, _ = decode_props(b, 1)

    def __repr__(self):
        names = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
                 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
                 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}
        extra = {k: v for k, v in self.__dict__.items() if k not in ("type", "flags", "body")}
        return "<%s %r>" % (names.get(self.type, self.type), extra)


class ConnectionClosed(Exception):
    pass


class RawClient:
    """A raw MQTT connection. `recv()` returns the next Packet, or raises socket.timeout / ConnectionClosed."""

    def __init__(self, port, version=5, timeout=5):
        self.version = version
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pending = []

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.time()
        if remaining <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            raise ConnectionClosed("reset")
        if not chunk:
            raise ConnectionClosed("closed")
        self.buf += chunk

    def recv(self, timeout=5):
        """Next packet: first any that subscribe()/publish()/... set aside while awaiting their ack."""
        if self.pending:
            return self.pending.pop(0)
        return self._recv_wire(timeout)

    def _recv_wire(self, timeout=5):
        deadline = time.time() + timeout
        while True:
            if len(self.buf) >= 2:
                # Try to parse a complete packet.
                mult, length, pos = 1, 0, 1
                complete_header = False
                while pos < len(self.buf) and pos <= 4:
                    b = self.buf[pos]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    pos += 1
                    if not b & 0x80:
                        complete_header = True
                        break
                if complete_header and len(self.buf) >= pos + length:
                    first = self.buf[0]
                    body = bytes(self.buf[pos:pos + length])
                    del self.buf[:pos + length]
                    return Packet(first >> 4, first & 0x0F, body, self.version)
            self._fill(deadline)

    def expect(self, ptype, timeout=5):
        """Next packet, asserted to be of `ptype`."""
        p = self.recv(timeout)
        assert p.type == ptype, "expected packet type %d, got %r" % (ptype, p)
        return p

    def recv_until_closed(self, timeout=5):
        """Reads packets until the broker closes the connection; returns them. Raises on timeout."""
        out = []
        while True:
            try:
                out.append(self.recv(timeout))
            except ConnectionClosed:
                return out

    def is_closed(self, timeout=2):
        """True when the broker closes the connection within `timeout` (any packets before are discarded)."""
        try:
            self.recv_until_closed(timeout)
            return True
        except socket.timeout:
            return False

    def no_packet(self, timeout=0.5):
        """True when nothing arrives within `timeout` (and the connection stays open)."""
        try:
            p = self.recv(timeout)
        except socket.timeout:
            return True
        raise AssertionError("unexpected packet %r" % p)

    def connect(self, client_id="", clean=True, keepalive=60, props=None, will=None, username=None,
                password=None, expect_reason=0):
        """Sends CONNECT and returns the CONNACK (asserting its reason code when expect_reason is not None)."""
        self.send(mqtt_connect(client_id, self.version, clean, keepalive, props, will, username, password))
        p = self.expect(CONNACK)
        if expect_reason is not None:
            assert p.reason == expect_reason, "CONNACK %r" % p
        return p

    def subscribe(self, filters, packet_id=1, props=None):
        """Sends SUBSCRIBE and returns the SUBACK. Other packets received first are kept in `self.pending`
        and returned by the next recv() calls."""
        self.send(mqtt_subscribe(packet_id, filters, props, self.version))
        return self._await(SUBACK)

    def unsubscribe(self, filters, packet_id=1):
        self.send(mqtt_unsubscribe(packet_id, filters, self.version))
        return self._await(UNSUBACK)

    def publish(self, topic, payload=b"", qos=0, retain=False, packet_id=1, props=None, dup=False):
        """Sends PUBLISH and completes the QoS 1/2 flow; returns the PUBACK/PUBCOMP (None for QoS 0)."""
        self.send(mqtt_publish(topic, payload, qos, retain, dup, packet_id, props, self.version))
        if qos == 1:
            return self._await(PUBACK)
        if qos == 2:
            rec = self._await(PUBREC)
            if rec.reason >= 0x80:
                return rec
            self.send(mqtt_ack(PUBREL, packet_id, version=self.version))
            return self._await(PUBCOMP)
        return None

    def _await(self, ptype, timeout=5):
        deadline = time.time() + timeout
        while True:
            p = self._recv_wire(max(0.01, deadline - time.time()))
            if p.type == ptype:
                return p
            self.pending.append(p)

    def disconnect(self, reason=None, props=None):
        try:
            self.send(mqtt_disconnect(reason, props, self.version))
        finally:
            self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self):
        """Closes the socket with an RST (no FIN handshake), like a killed client."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()


# ---------------------------------------------------------------------------------------------------------
# Paho wrapper

V311 = paho.MQTTv311
V5 = paho.MQTTv5


class Message:
    def __init__(self, m):
        self.topic = m.topic
        self.payload = m.payload
        self.qos = m.qos
        self.retain = bool(m.retain)
        self.dup = bool(m.dup)
        self.mid = m.mid
        self.properties = getattr(m, "properties", None)

    def prop(self, name, default=None):
        """A v5 property by Paho's attribute name, e.g. 'SubscriptionIdentifier', 'MessageExpiryInterval'."""
        if self.properties is None:
            return default
        return getattr(self.properties, name, default)

    def __repr__(self):
        return "<Message %s %r qos=%d retain=%s>" % (self.topic, self.payload, self.qos, self.retain)


class PahoClient:
    """Paho client with a background network loop. Messages go into `self.messages` (a queue of Message)."""

    def __init__(self, port, client_id="", version=V5, clean=True, keepalive=60, properties=None,
                 will=None, username=None, password=None, connect=True, timeout=5):
        self.port = port
        self.version = version
        kwargs = dict(client_id=client_id, protocol=version, reconnect_on_failure=False)
        if version != V5:
            kwargs["clean_session"] = clean
        self.client = paho.Client(**kwargs)
        self.clean = clean
        self.keepalive = keepalive
        self.properties = properties
        self.messages = queue.Queue()
        self.connack = None          # (flags dict, reason code int, properties)
        self.disconnect_rc = None
        self.disconnect_props = None
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._acks = {}
        self._acks_lock = threading.Lock()
        self._ack_events = {}
        self.suback = {}
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.on_publish = self._on_publish
        if username is not None:
            self.client.username_pw_set(username, password)
        if will:
            self.client.will_set(will["topic"], will.get("payload"), will.get("qos", 0), will.get("retain", False),
                                 properties=will.get("properties"))
        if connect:
            self.connect(timeout)

    # callbacks -------------------------------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connack = (flags, int(getattr(rc, "value", rc)), properties)
        self._connected.set()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnect_rc = int(getattr(rc, "value", rc))
        self.disconnect_props = properties
        self._disconnected.set()

    def _on_message(self, client, userdata, m):
        self.messages.put(Message(m))

    def _signal(self, mid, value):
        with self._acks_lock:
            self._acks[mid] = value
            ev = self._ack_events.setdefault(mid, threading.Event())
        ev.set()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        codes = [int(getattr(g, "value", g)) for g in granted]
        self._signal(("sub", mid), codes)

    def _on_unsubscribe(self, client, userdata, mid, *rest):
        self._signal(("unsub", mid), rest[1] if len(rest) > 1 else None)

    def _on_publish(self, client, userdata, mid):
        self._signal(("pub", mid), True)

    def _wait(self, key, timeout):
        with self._acks_lock:
            ev = self._ack_events.setdefault(key, threading.Event())
        assert ev.wait(timeout), "timed out waiting for %r" % (key,)
        return self._acks[key]

    # actions ---------------------------------------------------------------------------------------------
    def connect(self, timeout=5):
        """Connects and waits for CONNACK; returns its reason code (0 = success)."""
        kwargs = {}
        if self.version == V5:
            kwargs["clean_start"] = self.clean
            if self.properties is not None:
                kwargs["properties"] = self.properties
        self._connected.clear()
        self._disconnected.clear()
        self.client.connect("127.0.0.1", self.port, self.keepalive, **kwargs)
        self.client.loop_start()
        assert self._connected.wait(timeout), "no CONNACK"
        return self.connack[1]

    @property
    def session_present(self):
        return bool(self.connack[0].get("session present"))

    def subscribe(self, topic, qos=0, options=None, properties=None, timeout=5):
        """Subscribes and waits for SUBACK; returns the list of granted QoS / reason codes.
        topic may be a list of (topic, qos) or (topic, SubscribeOptions) for several filters."""
        if self.version == V5:
            if isinstance(topic, list):
                rc, mid = self.client.subscribe(topic, properties=properties)
            else:
                opts = options or paho.SubscribeOptions(qos=qos)
                rc, mid = self.client.subscribe(topic, options=opts, properties=properties)
        else:
            if isinstance(topic, list):
                rc, mid = self.client.subscribe(topic)
            else:
                rc, mid = self.client.subscribe(topic, qos)
        assert rc == 0, rc
        return self._wait(("sub", mid), timeout)

    def unsubscribe(self, topic, timeout=5):
        rc, mid = self.client.unsubscribe(topic)
        assert rc == 0, rc
        return self._wait(("unsub", mid), timeout)

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, wait=True, timeout=5):
        """Publishes; with wait=True waits for the QoS 1/2 flow to finish (QoS 0: until written)."""
        info = self.client.publish(topic, payload, qos, retain, properties=properties)
        if wait:
            self._wait(("pub", info.mid), timeout)
        return info

    def get(self, timeout=3):
        """The next received Message; fails the test on timeout."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message within %ss" % timeout)

    def get_n(self, n, timeout=3):
        deadline = time.time() + timeout
        out = []
        while len(out) < n:
            out.append(self.get(max(0.01, deadline - time.time())))
        return out

    def expect_none(self, timeout=0.5):
        """Asserts that no message arrives within `timeout`."""
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError("unexpected message %r" % m)

    def wait_disconnected(self, timeout=5):
        return self._disconnected.wait(timeout)

    def disconnect(self, properties=None, reasoncode=None):
        kwargs = {}
        if self.version == V5:
            if properties is not None:
                kwargs["properties"] = properties
            if reasoncode is not None:
                from paho.mqtt.reasoncodes import ReasonCodes
                kwargs["reasoncode"] = ReasonCodes(PacketTypes.DISCONNECT, identifier=reasoncode)
        self.client.disconnect(**kwargs)
        self.wait_disconnected(3)
        self.client.loop_stop()

    def kill(self):
        """Drops the TCP connection without DISCONNECT (RST), as if the client process died."""
        c = self.client
        c._thread_terminate = True            # Paho 1.6 internals: stop the loop thread without a DISCONNECT
        if c._sockpairW is not None:
            try:
                c._sockpairW.send(b"0")       # wake its select()
            except OSError:
                pass
        if c._thread is not None:
            c._thread.join()
            c._thread = None
        sock = c.socket()
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            sock.close()

    def stop(self):
        """Best-effort cleanup for finally blocks."""
        try:
            self.client.disconnect()
            self.client.loop_stop()
        except Exception:
            pass


def props(packet_type=PacketTypes.CONNECT, **kw):
    """Paho Properties: props(PacketTypes.PUBLISH, MessageExpiryInterval=10, UserProperty=[('a','b')])."""
    p = Properties(packet_type)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


@pytest.fixture
def clients():
    """Factory fixture (import it into a test module: `from helpers import clients`):
    clients(port, **PahoClient kwargs) -> connected PahoClient; clients.raw(port, version=5) -> RawClient.
    Everything it made is closed at teardown."""
    made = []

    def factory(port, **kw):
        connect = kw.pop("connect", True)
        timeout = kw.pop("timeout", 5)
        c = PahoClient(port, connect=False, **kw)
        made.append(c)
        if connect:
            c.connect(timeout)
        return c

    def raw(port, version=5, timeout=5):
        r = RawClient(port, version, timeout)
        made.append(r)
        return r

    factory.raw = raw
    yield factory
    for c in made:
        if isinstance(c, RawClient):
            c.close()
        else:
            c.stop()


def wait_for(pred, timeout=5, interval=0.02):
    """Polls pred() until it returns a truthy value (returned) or the deadline passes (returns the last value)."""
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v or time.time() >= deadline:
            return v
        time.sleep(interval)


def unique_id(prefix="t"):
    """A client id / topic component unique within the test run."""
    unique_id.n += 1
    return "%s-%d-%d" % (prefix, int(time.time() * 1000) % 100000000, unique_id.n)


unique_id.n = 0


# ---------------------------------------------------------------------------------------------------------
# mosquitto_sub / mosquitto_pub


class MosqSub:
    """A running mosquitto_sub. Started with -d so it can wait for the SUBACK; each received message is
    parsed from a fixed -F format into a dict(topic=, qos=, retain=, payload=) in `self.messages`."""

    FORMAT = "MSG<%t|%q|%r|%p>"

    def __init__(self, port, topics, qos=0, version="mqttv311", client_id=None, extra=(), wait_suback=True,
                 timeout=5):
        import subprocess
        if isinstance(topics, str):
            topics = [topics]
        args = ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-q", str(qos), "-V", version, "-d",
                "-F", self.FORMAT]
        for t in topics:
            args += ["-t", t]
        if client_id:
            args += ["-i", client_id]
        args += list(extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.messages = queue.Queue()
        self.lines = []
        self._subacked = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if wait_suback:
            assert self._subacked.wait(timeout), "mosquitto_sub got no SUBACK: %r" % self.lines

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if "received SUBACK" in line:
                self._subacked.set()
            if line.startswith("MSG<") and line.endswith(">"):
                topic, qos, retain, payload = line[4:-1].split("|", 3)
                self.messages.put(dict(topic=topic, qos=int(qos), retain=retain == "1", payload=payload))

    def get(self, timeout=3):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("mosquitto_sub got no message within %ss: %r" % (timeout, self.lines[-20:]))

    def expect_none(self, timeout=0.5):
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError("unexpected message %r" % m)

    def wait_exit(self, timeout=5):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except Exception:
                self.proc.kill()
                self.proc.wait()


def mosquitto_pub(port, topic, payload, qos=0, version="mqttv311", retain=False, extra=(), timeout=10):
    """Runs mosquitto_pub to completion; returns the CompletedProcess (asserts exit code 0)."""
    import subprocess
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-m", payload, "-q", str(qos),
            "-V", version]
    if retain:
        args.append("-r")
    args += list(extra)
    r = subprocess.run(args, capture_output=True, timeout=timeout)
    assert r.returncode == 0, "mosquitto_pub failed: %r %r" % (r.stdout, r.stderr)
    return r


# ---------------------------------------------------------------------------------------------------------
# Listeners besides the first (TLS, WebSocket), MQTT 5 AUTH packets, Paho over TLS / WebSocket.
# (Used by test_tls.py, test_websocket.py, test_token_auth.py.)


def listener_ports(broker, timeout=5):
    """{listener name: port} from the broker's `listening on <addr>:<port> (<name>, <protocol>)` log lines,
    one per listener in config order (the latest line per name, so it follows restarts). Waits for the
    "started" line that follows the last of them."""
    import re
    found = {}

    def scan():
        log = broker.log()
        last = None
        for m in re.finditer(r"listening on \S+:(\d+) \(([^,()]+), ([a-z]+)\)", log):
            found[m.group(2)] = int(m.group(1))
            last = m
        return last is not None and " started with " in log[last.end():]

    assert wait_for(scan, timeout), "no 'listening on' / 'started' lines in the log:\n" + broker.log()[-3000:]
    return dict(found)


def mqtt_auth(reason=0x18, props=None):
    """An MQTT 5 AUTH packet. props: as encode_props (e.g. {P_AUTH_METHOD: 'SCRAM-SHA-256', P_AUTH_DATA: b'...'})."""
    if reason == 0 and not props:
        return fixed(AUTH, 0, b"")
    return fixed(AUTH, 0, bytes([reason]) + encode_props(props))


def auth_fields(packet):
    """(reason code, properties) of a received AUTH Packet (Packet does not parse AUTH bodies itself)."""
    assert packet.type == AUTH, "expected AUTH, got %r" % (packet,)
    b = packet.body
    if not b:
        return 0, {}
    if len(b) == 1:
        return b[0], {}
    props, _ = decode_props(b, 1)
    return b[0], props


class SocketRawClient(RawClient):
    """A RawClient over a socket the caller made and connected (e.g. an ssl.SSLSocket)."""

    def __init__(self, sock, version=5):  # noqa: super().__init__ would open its own TCP connection
        self.version = version
        self.sock = sock
        self.buf = bytearray()
        self.pending = []


def tls_socket(port, ca=None, cert=None, key=None, min_version=None, max_version=None,
               server_hostname="localhost", timeout=5):
    """A TLS connection to 127.0.0.1:port, handshake done (raises ssl.SSLError / OSError if it fails).
    ca: a CA file to verify the server with (None = no verification); cert/key: a client certificate;
    min_version/max_version: ssl.TLSVersion values."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


class NetPahoClient(PahoClient):
    """A PahoClient over TLS and/or WebSocket.
    transport: "tcp" | "websockets"; tls: None or tls_set() kwargs (ca_certs=, certfile=, keyfile=,
    tls_version=); ws_path / ws_headers: ws_set_options(); host: what Paho connects to (and checks the server
    certificate against, and sends as the WebSocket Host)."""

    def __init__(self, port, transport="tcp", tls=None, ws_path="/mqtt", ws_headers=None, host="127.0.0.1",
                 connect=True, timeout=5, **kw):
        super().__init__(port, connect=False, **kw)
        self.host = host
        # Paho 1.6 takes the transport only in Client(); PahoClient made that Client already, and Client()
        # does nothing with the value but store it here.
        self.client._transport = transport.lower()
        if transport == "websockets":
            self.client.ws_set_options(path=ws_path, headers=ws_headers)
        if tls is not None:
            import ssl
            # PROTOCOL_TLS_CLIENT (verifies the server and its name) unless the test picks another.
            self.client.tls_set(**{"tls_version": ssl.PROTOCOL_TLS_CLIENT, **tls})
        if connect:
            self.connect(timeout)

    def connect(self, timeout=5):
        kwargs = {}
        if self.version == V5:
            kwargs["clean_start"] = self.clean
            if self.properties is not None:
                kwargs["properties"] = self.properties
        self._connected.clear()
        self._disconnected.clear()
        self.client.connect(self.host, self.port, self.keepalive, **kwargs)  # TLS / WS handshakes happen here
        self.client.loop_start()
        assert self._connected.wait(timeout), "no CONNACK"
        return self.connack[1]


@pytest.fixture
def net_clients():
    """Factory fixture like `clients`, for NetPahoClient: net_clients(port, transport=, tls=, ...)."""
    made = []

    def factory(port, **kw):
        connect = kw.pop("connect", True)
        timeout = kw.pop("timeout", 5)
        c = NetPahoClient(port, connect=False, **kw)
        made.append(c)
        if connect:
            c.connect(timeout)
        return c

    yield factory
    for c in made:
        c.stop()


# ---------------------------------------------------------------------------------------------------------
# Node.js clients (tests/js: MQTT.js, tus-js-client; pinned in package.json / package-lock.json)

JS_DIR = pathlib.Path(__file__).resolve().parents[1] / "js"


def js_dir(module):
    """tests/js with its node_modules installed (npm ci from package-lock.json when `module` is missing)."""
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: the Node.js client tests need Node.js (>= 18)")
    if not (JS_DIR / "node_modules" / module / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is not on PATH: cannot install tests/js (npm ci)")
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, capture_output=True, text=True,
                           timeout=600)
        if r.returncode != 0:
            pytest.fail("npm ci in %s failed (exit %d):\n%s\n%s" % (JS_DIR, r.returncode, r.stdout, r.stderr))
    return JS_DIR
