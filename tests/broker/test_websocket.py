"""MQTT over WebSocket (RFC 6455; MQTT section 6) on "ws" and "wss" listeners: subprotocols "mqtt" and
"mqttv3.1", the path, the Origin allow-list, the HTTP refusals (404, 403, 426, 400), and real clients:
Python Paho (transport="websockets", v3.1.1 and v5, plain and TLS) and MQTT.js (npm `mqtt`, tests/js)."""
import base64
import hashlib
import json
import os
import pathlib
import socket
import struct
import subprocess
import time

import pytest

from helpers import (CONNACK, PINGRESP, PUBACK, PUBLISH, SUBACK, V311, V5, Packet, clients,  # noqa: F401
                     js_dir, listener_ports, mqtt_connect, mqtt_pingreq, mqtt_publish, mqtt_subscribe, net_clients,
                     tls_socket, unique_id)

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_listener(name="ws", protocol="ws", path=None, origins=None, tls=False):
    text = '\n[[listener]]\nname = "%s"\nprotocol = "%s"\nport = 0\n' % (name, protocol)
    if tls:
        text += '[listener.tls]\ncert_file = "server.pem"\nkey_file = "server.key"\n'
    if path is not None or origins is not None:
        text += "[listener.websocket]\n"
        if path is not None:
            text += 'path = "%s"\n' % path
        if origins is not None:
            text += "allowed_origins = [%s]\n" % ", ".join('"%s"' % o for o in origins)
    return text


@pytest.fixture
def ws_broker(make_broker):
    """factory(path=None, origins=None, auth='') -> (broker, ws port)."""
    def factory(path=None, origins=None, auth="", files=None):
        b = make_broker(auth=auth, extra=ws_listener(path=path, origins=origins), files=files)
        ports = listener_ports(b)
        return b, ports["ws"]
    return factory


# ---------------------------------------------------------------------------------------------------------
# A raw WebSocket client: the handshake as bytes, frames by hand


class WsResponse:
    def __init__(self, sock, status, reason, headers, rest):
        self.sock, self.status, self.reason, self.headers, self.rest = sock, status, reason, headers, rest

    def header(self, name):
        return self.headers.get(name.lower())

    def read_rest_until_closed(self, timeout=3):
        """The rest of the response (a body) up to the broker's close; fails if it stays open."""
        data = bytearray(self.rest)
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            assert left > 0, "broker kept the connection open after %d %s" % (self.status, self.reason)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return bytes(data)
            if not chunk:
                return bytes(data)
            data += chunk


def ws_handshake(port, path="/mqtt", headers=None, drop=(), raw_request=None, sock=None, timeout=5):
    """Sends an HTTP upgrade request (default: a valid one offering "mqtt") and parses the response head.
    headers: extra or replacing headers (a list of pairs to allow repeats, or a dict); drop: header names to
    leave out. Returns a WsResponse (status, headers lower-cased, bytes after the head)."""
    key = base64.b64encode(os.urandom(16)).decode()
    base = {"Host": "127.0.0.1:%d" % port, "Upgrade": "websocket", "Connection": "Upgrade",
            "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13", "Sec-WebSocket-Protocol": "mqtt"}
    pairs = list((headers or {}).items()) if isinstance(headers, dict) else list(headers or [])
    for name, _ in pairs:
        base.pop(name, None)
    lines = ["GET %s HTTP/1.1" % path] + ["%s: %s" % kv for kv in base.items() if kv[0] not in drop]
    lines += ["%s: %s" % kv for kv in pairs]
    request = raw_request if raw_request is not None else ("\r\n".join(lines) + "\r\n\r\n").encode()
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    s.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, "connection closed before a response head: %r" % buf
        buf += chunk
        assert len(buf) < 65536
    head, rest = buf.split(b"\r\n\r\n", 1)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    proto, status, reason = (status_line.split(" ", 2) + [""])[:3]
    assert proto == "HTTP/1.1", status_line
    hdrs = {}
    for line in header_lines:
        k, v = line.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    r = WsResponse(s, int(status), reason, hdrs, rest)
    r.key = key
    return r


def ws_frame(payload, opcode=2, fin=True, mask=True):
    """A client frame (masked, as RFC 6455 5.3 requires of clients)."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class WsConn:
    """Frames over an upgraded connection: send MQTT bytes in binary frames, read server frames."""

    def __init__(self, resp, version=5):
        self.sock = resp.sock
        self.buf = bytearray(resp.rest)
        self.version = version
        self.mqtt = bytearray()

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise socket.timeout("timed out")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def frame(self, timeout=5):
        """(fin, opcode, payload) of the next server frame; server frames must not be masked."""
        deadline = time.time() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not b1 & 0x80, "server frame is masked"
        n, pos = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, pos = struct.unpack_from("!H", self.buf, 2)[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, pos = struct.unpack_from("!Q", self.buf, 2)[0], 10
        self._need(pos + n, deadline)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def send_mqtt(self, data, split=None):
        """MQTT bytes in one binary frame, or fragmented at the offsets in `split` (continuation frames)."""
        if not split:
            self.sock.sendall(ws_frame(data))
            return
        cuts = [0, *split, len(data)]
        out = b""
        for i in range(len(cuts) - 1):
            out += ws_frame(data[cuts[i]:cuts[i + 1]], opcode=2 if i == 0 else 0, fin=i == len(cuts) - 2)
        self.sock.sendall(out)

    def packet(self, timeout=5):
        """The next MQTT packet from the binary frames (a packet may span frames)."""
        deadline = time.time() + timeout
        while True:
            if len(self.mqtt) >= 2:
                mult, length, pos = 1, 0, 1
                while pos < len(self.mqtt) and pos <= 4:
                    b = self.mqtt[pos]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    pos += 1
                    if not b & 0x80:
                        break
                if len(self.mqtt) >= pos + length:
                    first = self.mqtt[0]
                    body = bytes(self.mqtt[pos:pos + length])
                    del self.mqtt[:pos + length]
                    return Packet(first >> 4, first & 0x0F, body, self.version)
            fin, opcode, payload = self.frame(max(0.01, deadline - time.time()))
            assert opcode in (0, 2), "expected a binary frame, got opcode %d %r" % (opcode, payload)
            self.mqtt += payload


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


# ---------------------------------------------------------------------------------------------------------
# Python Paho over WebSocket


@pytest.mark.parametrize("version", [V311, V5])
def test_paho_websocket_pubsub(ws_broker, clients, net_clients, version):
    b, port = ws_broker()
    topic = unique_id("ws")
    ws_sub = net_clients(port, transport="websockets", version=version, client_id=unique_id("wssub"))
    tcp = clients(b.port, version=version)
    assert ws_sub.subscribe(topic + "/#", qos=2) == [2]
    assert tcp.subscribe(topic + "/from-ws", qos=1) == [1]
    ws_pub = net_clients(port, transport="websockets", version=version)
    # TCP -> WebSocket, every QoS, and a payload spanning many WebSocket frames / TCP segments.
    for qos in (0, 1, 2):
        tcp.publish("%s/%d" % (topic, qos), "q%d" % qos, qos=qos)
    got = sorted((m.topic, m.payload, m.qos) for m in ws_sub.get_n(3))
    assert got == [("%s/%d" % (topic, q), b"q%d" % q, q) for q in (0, 1, 2)]
    big = os.urandom(200 * 1024)
    tcp.publish(topic + "/big", big, qos=1)
    assert ws_sub.get().payload == big
    # WebSocket -> TCP (and to the WebSocket subscriber).
    ws_pub.publish(topic + "/from-ws", "hello over ws", qos=1)
    assert tcp.get().payload == b"hello over ws"
    m = ws_sub.get()
    assert (m.topic, m.payload) == (topic + "/from-ws", b"hello over ws")


def test_paho_websocket_custom_path(ws_broker, net_clients):
    b, port = ws_broker(path="/custom/mqtt")
    c = net_clients(port, transport="websockets", ws_path="/custom/mqtt")
    topic = unique_id("path")
    assert c.subscribe(topic, qos=1) == [1]
    c.publish(topic, "ok", qos=1)
    assert c.get().payload == b"ok"
    with pytest.raises(Exception) as e:  # Paho's WebsocketConnectionError: the broker answered 404
        net_clients(port, transport="websockets", ws_path="/mqtt", connect=False).connect(3)
    print("default path on a /custom/mqtt listener ->", repr(e.value))
    assert b.alive()


def test_paho_websocket_with_allowed_origin(ws_broker, net_clients):
    b, port = ws_broker(origins=["https://ok.example", "https://also.example"])
    c = net_clients(port, transport="websockets", ws_headers={"Origin": "https://also.example"})
    topic = unique_id("origin")
    assert c.subscribe(topic, qos=0) == [0]
    c.publish(topic, "x")
    assert c.get().payload == b"x"
    # Paho's own Origin (https://127.0.0.1:<port>) is not on the list.
    with pytest.raises(Exception):
        net_clients(port, transport="websockets", connect=False).connect(3)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    from tls_certs import make_tls_certs
    return make_tls_certs(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize("version", [V311, V5])
def test_paho_secure_websocket(make_broker, certs, clients, net_clients, version):
    files = {"server.pem": pathlib.Path(certs.server).read_text(),
             "server.key": pathlib.Path(certs.server_key).read_text()}
    b = make_broker(extra=ws_listener("wss", "wss", tls=True) + ws_listener("ws", "ws"), files=files)
    ports = listener_ports(b)
    assert set(ports) == {"mqtt", "wss", "ws"}
    topic = unique_id("wss")
    sub = net_clients(ports["wss"], transport="websockets", tls=dict(ca_certs=certs.ca), version=version,
                      host="localhost")
    assert sub.subscribe(topic, qos=1) == [1]
    pub = net_clients(ports["ws"], transport="websockets", version=version)
    pub.publish(topic, "ws to wss", qos=1)
    assert sub.get().payload == b"ws to wss"
    sub.publish(topic, "wss to itself", qos=1)
    assert sub.get().payload == b"wss to itself"
    # The wss port speaks TLS first: a plain WebSocket request gets no 101.
    s = socket.create_connection(("127.0.0.1", ports["wss"]), timeout=3)
    try:
        s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(3)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        assert b"101" not in data
    finally:
        s.close()
    # A raw TLS + WebSocket handshake sees the upgrade.
    r = ws_handshake(ports["wss"], sock=tls_socket(ports["wss"], ca=certs.ca))
    assert r.status == 101 and r.header("sec-websocket-protocol") == "mqtt"
    r.sock.close()


# ---------------------------------------------------------------------------------------------------------
# The handshake, byte by byte


@pytest.mark.parametrize("offer,chosen", [("mqtt", "mqtt"), ("mqttv3.1", "mqttv3.1"), ("foo, mqtt", "mqtt"),
                                          ("mqttv3.1, mqtt", "mqttv3.1")])
def test_handshake_subprotocols(ws_broker, offer, chosen):
    _, port = ws_broker()
    r = ws_handshake(port, headers={"Sec-WebSocket-Protocol": offer})
    try:
        assert (r.status, r.reason) == (101, "Switching Protocols"), (r.status, r.reason, r.headers)
        assert r.header("upgrade").lower() == "websocket"
        assert r.header("connection").lower() == "upgrade"
        assert r.header("sec-websocket-accept") == accept_for(r.key)
        assert r.header("sec-websocket-protocol") == chosen
        # MQTT 3.1.1 over it, the CONNECT split across a fragmented message.
        ws = WsConn(r, version=4)
        connect = mqtt_connect(unique_id("raw"), 4)
        ws.send_mqtt(connect, split=[3, 10])
        ack = ws.packet()
        assert (ack.type, ack.reason) == (CONNACK, 0)
        # Two packets in one frame, then one packet byte by byte in frames of one byte each.
        topic = unique_id("raw")
        ws.send_mqtt(mqtt_subscribe(1, [(topic, 1)], version=4) + mqtt_pingreq())
        assert ws.packet().type == SUBACK
        assert ws.packet().type == PINGRESP
        pub = mqtt_publish(topic, b"fragmented", qos=1, packet_id=2, version=4)
        ws.send_mqtt(pub, split=list(range(1, len(pub))))
        got = {ws.packet().type: None, ws.packet().type: None}
        assert set(got) == {PUBACK, PUBLISH}
        # RFC 6455 control frames: a ping is answered with a pong carrying the same data; a close is echoed.
        r.sock.sendall(ws_frame(b"are you there", opcode=0x9))
        assert ws.frame() == (True, 0xA, b"are you there")
        r.sock.sendall(ws_frame(struct.pack("!H", 1000), opcode=0x8))
        fin, opcode, payload = ws.frame()
        assert opcode == 0x8 and payload[:2] == struct.pack("!H", 1000)
    finally:
        r.sock.close()


def test_handshake_mqtt5_and_server_frames_unmasked(ws_broker, clients):
    b, port = ws_broker()
    r = ws_handshake(port)
    assert r.status == 101
    ws = WsConn(r, version=5)
    ws.send_mqtt(mqtt_connect(unique_id("raw5"), 5))
    assert ws.packet().reason == 0  # WsConn.frame() asserts the server frame is not masked
    topic = unique_id("raw5")
    ws.send_mqtt(mqtt_subscribe(1, [(topic, 1)]))
    assert ws.packet().type == SUBACK
    tcp = clients(b.port)
    tcp.publish(topic, b"x" * 70000, qos=1)  # a frame with a 64-bit length
    p = ws.packet()
    assert (p.type, p.topic, len(p.payload)) == (PUBLISH, topic, 70000)
    r.sock.close()


@pytest.mark.parametrize("case,status", [
    ("wrong path", 404),
    ("origin not allowed", 403),
    ("no origin", 403),
    ("version 8", 426),
    ("no upgrade header", 400),
    ("subprotocol foo only", 400),
    ("bad key", 400),
    ("POST", 400),
])
def test_handshake_refusals(ws_broker, clients, case, status):
    b, port = ws_broker(origins=["https://ok.example"])
    ok = {"Origin": "https://ok.example"}
    args = {
        "wrong path": dict(path="/nope", headers=ok),
        "origin not allowed": dict(headers={"Origin": "https://evil.example"}),
        "no origin": dict(),
        "version 8": dict(headers={**ok, "Sec-WebSocket-Version": "8"}),
        "no upgrade header": dict(headers=ok, drop=("Upgrade",)),
        "subprotocol foo only": dict(headers={**ok, "Sec-WebSocket-Protocol": "foo"}),
        "bad key": dict(headers={**ok, "Sec-WebSocket-Key": "short"}),
        "POST": dict(raw_request=("POST /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                                  "Origin: https://ok.example\r\nContent-Length: 0\r\n\r\n").encode()),
    }[case]
    r = ws_handshake(port, **args)
    try:
        assert r.status == status, (case, r.status, r.reason, r.headers)
        assert "sec-websocket-accept" not in r.headers
        if status == 426:
            assert r.header("sec-websocket-version") == "13"
        body = r.read_rest_until_closed()  # and the broker closes the connection
        print(case, "->", r.status, r.reason, body[:200])
    finally:
        r.sock.close()
    # The same request done right is upgraded, and the broker is unaffected.
    good = ws_handshake(port, headers=ok)
    assert good.status == 101
    good.sock.close()
    assert b.alive()
    clients(b.port)


def test_text_frame_closes_with_1003(ws_broker):
    _, port = ws_broker()
    r = ws_handshake(port)
    assert r.status == 101
    ws = WsConn(r)
    r.sock.sendall(ws_frame(mqtt_connect(unique_id("text"), 5), opcode=0x1))  # MQTT needs binary frames
    fin, opcode, payload = ws.frame()
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1003, payload
    r.sock.close()


# ---------------------------------------------------------------------------------------------------------
# MQTT.js (npm `mqtt`, pinned in tests/js/package.json)


@pytest.fixture(scope="session")
def mqttjs():
    """Path of tests/js with its node_modules installed."""
    return js_dir("mqtt")


def run_mqttjs(js_dir, **cfg):
    r = subprocess.run(["node", str(js_dir / "ws_pubsub.js"), json.dumps(cfg)], cwd=js_dir, capture_output=True,
                       text=True, timeout=30)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, "ws_pubsub.js printed no result (exit %d):\n%s\n%s" % (r.returncode, r.stdout, r.stderr)
    out = json.loads(lines[-1])
    out["exit"] = r.returncode
    out["stderr"] = r.stderr
    return out


@pytest.mark.parametrize("protocol_version", [4, 5])
def test_mqttjs_over_websocket(ws_broker, clients, mqttjs, protocol_version):
    b, port = ws_broker()
    prefix = unique_id("mqttjs")
    py = clients(b.port, version=V311)
    assert py.subscribe(prefix + "/js", qos=1) == [1]
    py.publish(prefix + "/py", "retained from paho", qos=1, retain=True)
    out = run_mqttjs(mqttjs, url="ws://127.0.0.1:%d/mqtt" % port, protocolVersion=protocol_version,
                     prefix=prefix, expect=["py"])
    assert out["ok"] and out["exit"] == 0, out
    assert out["connack"] == {"sessionPresent": False, "reasonCode": 0}, out
    assert out["granted"] == [1], out
    got = {m["topic"]: m for m in out["received"]}
    assert got[prefix + "/py"] == {"topic": prefix + "/py", "payload": "retained from paho", "qos": 1,
                                   "retain": True}
    assert got[prefix + "/js"]["payload"] == "from mqtt.js v%d" % protocol_version
    assert got[prefix + "/js"]["qos"] == 1 and not got[prefix + "/js"]["retain"]
    m = py.get()
    assert (m.topic, m.payload) == (prefix + "/js", b"from mqtt.js v%d" % protocol_version)
    py.publish(prefix + "/py", b"", qos=1, retain=True)


def test_mqttjs_over_secure_websocket_with_origin(make_broker, certs, mqttjs):
    files = {"server.pem": pathlib.Path(certs.server).read_text(),
             "server.key": pathlib.Path(certs.server_key).read_text()}
    b = make_broker(extra=ws_listener("wss", "wss", tls=True, origins=["https://app.example"]), files=files)
    port = listener_ports(b)["wss"]
    out = run_mqttjs(mqttjs, url="wss://localhost:%d/mqtt" % port, protocolVersion=5, prefix=unique_id("js"),
                     ca=certs.ca, headers={"Origin": "https://app.example"})
    assert out["ok"], out
    refused = run_mqttjs(mqttjs, url="wss://localhost:%d/mqtt" % port, protocolVersion=5,
                         prefix=unique_id("js"), ca=certs.ca, headers={"Origin": "https://other.example"},
                         timeoutMs=5000)
    # MQTT.js reports the 403 only as a closed connection (no 'error' event): what counts is no CONNACK.
    assert not refused["ok"] and refused["connack"] is None and not refused["received"], refused
