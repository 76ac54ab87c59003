"""Payload formats: JSON end to end with the mosquitto command-line clients (no Paho), MsgPack requests and
device topics, the MQTT 5 Content Type overriding the request topic's format, and a device subscribed to two
formats getting every event in both."""
import base64
import json
import queue
import subprocess
import threading
import time

import msgpack
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from imclient import Device, decode, pb


class Sub:
    """A mosquitto_sub process; JSON payload lines go to a queue (debug lines tell when it has subscribed)."""

    def __init__(self, port, user, client_id, topic, version="mqttv311"):
        self.proc = subprocess.Popen(
            ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", version, "-i", client_id, "-u", user,
             "-q", "1", "-t", topic, "-d"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        self.subscribed = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.subscribed.wait(10), "mosquitto_sub did not subscribe"

    def _read(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("{"):
                self.lines.put(json.loads(line))
            elif "received SUBACK" in line:
                self.subscribed.set()

    def next(self, pred=lambda d: True, timeout=10):
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no matching line from mosquitto_sub")
            try:
                doc = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if pred(doc):
                return doc

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


def _pub(port, user, client_id, topic, doc):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-i", client_id, "-u", user, "-q", "1",
                    "-t", topic, "-m", json.dumps(doc)], check=True, timeout=10)


def _rr(port, user, client_id, doc, version="5"):
    """One request, one response, with mosquitto_rr. MQTT 5: a response topic below the device's prefix;
    v3.1.1 has none, so it waits on the device topic itself."""
    resp_topic = "$im/v1/d/%s/%s" % (client_id, "rr" if version == "5" else "json")
    out = subprocess.run(["mosquitto_rr", "-h", "127.0.0.1", "-p", str(port), "-V", version, "-i", client_id,
                          "-u", user, "-t", "$im/v1/req/json", "-e", resp_topic, "-W", "10",
                          "-m", json.dumps(doc)], check=True, timeout=15, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_json_end_to_end_with_mosquitto_clients(make_broker):
    b = make_broker()
    bob = Sub(b.port, "bob", "bob-sub", "$im/v1/d/bob-sub/json")
    alice_other = Sub(b.port, "alice", "alice-sub", "$im/v1/d/alice-sub/json")
    try:
        # alice (mosquitto_pub, device alice-pub) opens a direct conversation with bob.
        _pub(b.port, "alice", "alice-pub", "$im/v1/req/json", {"reqId": "o1", "openDirect": {"peer": "bob"}})
        ev = bob.next(lambda d: "conversation" in d.get("event", {}))
        conv = ev["event"]["conversation"]
        assert conv["type"] == "CONV_DIRECT" and conv["peers"] == ["alice"] and conv["member"] is True
        conv_id = conv["convId"]
        created = bob.next(lambda d: "message" in d.get("event", {}))["event"]["message"]
        assert created["type"] == "MSG_MEMBERS" and created["change"]["kind"] == "CREATED"
        assert created["seq"] == "1"  # 64-bit integers are strings in protobuf's JSON mapping

        _pub(b.port, "alice", "alice-pub", "$im/v1/req/json",
             {"reqId": "s1", "send": {"convId": conv_id, "clientMsgId": "cli-1", "text": "héllo from a shell ✓"}})
        for sub in (bob, alice_other):  # bob, and alice's other device
            m = sub.next(lambda d: d.get("event", {}).get("message", {}).get("type") == "MSG_TEXT")["event"]["message"]
            assert m["text"] == "héllo from a shell ✓" and m["sender"] == "alice"
            assert m["senderDevice"] == "alice-pub" and m["seq"] == "2" and m["clientMsgId"] == "cli-1"
            assert m["msgId"] == "%s:2" % conv_id and int(m["serverTs"]) > 0
        # The same client_msg_id again from the shell: no second message.
        _pub(b.port, "alice", "alice-pub", "$im/v1/req/json",
             {"reqId": "s2", "send": {"convId": conv_id, "clientMsgId": "cli-1", "text": "héllo from a shell ✓"}})

        # bob syncs with mosquitto_rr (request / response) and marks it read.
        resp = _rr(b.port, "bob", "bob-rr", {"reqId": "sync-1", "sync": {}})["response"]
        assert resp["reqId"] == "sync-1"
        s = resp["sync"]
        assert s["full"] is True and s["totalUnread"] == "1"
        c = s["convs"][0]
        assert c["conversation"]["convId"] == conv_id and c["conversation"]["unread"] == "1"
        assert [m["seq"] for m in c["messages"]] == ["1", "2"]
        resp = _rr(b.port, "bob", "bob-rr", {"reqId": "r1", "markRead": {"convId": conv_id, "seq": "2"}})
        assert resp["response"]["read"]["readSeq"] == "2" and resp["response"]["read"].get("unread", "0") == "0"
        # ... which the other bob device hears about (ReadState event), and alice as a receipt.
        rs = bob.next(lambda d: "read" in d.get("event", {}))["event"]["read"]
        assert rs["convId"] == conv_id and rs["readSeq"] == "2"
        rc = alice_other.next(lambda d: "receipt" in d.get("event", {}))["event"]["receipt"]
        assert rc["user"] == "bob" and rc["readSeq"] == "2"
        # The v3.1.1 mosquitto_rr gets its answer on the device topic.
        resp = _rr(b.port, "bob", "bob-rr311", {"reqId": "h1", "history": {"convId": conv_id}}, version="mqttv311")
        assert [m["seq"] for m in resp["response"]["messages"]["messages"]] == ["1", "2"]
    finally:
        bob.stop()
        alice_other.stop()


def test_msgpack_requests_and_device_topic(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-mp", fmt="msgpack")
    bob = Device(b.port, "bob", "bob-mp", fmt="msgpack", v5=True)
    conv = alice.open_direct("bob").conv_id
    ack = alice.send(conv, "packed", mentions=["bob"])
    m = bob.wait_message(conv, ack.seq)
    assert m.text == "packed" and list(m.mentions) == ["bob"]
    # On the wire: MsgPack maps of protobuf's JSON mapping.
    raw = [r for r in bob.raw if r.topic == "$im/v1/d/bob-mp/msgpack"]
    assert raw
    docs = [msgpack.unpackb(r.payload, raw=False) for r in raw]
    ev = [d for d in docs if d.get("event", {}).get("message", {}).get("type") == "MSG_TEXT"][0]
    assert ev["event"]["message"]["text"] == "packed" and ev["event"]["message"]["convId"] == conv
    # A raw MsgPack request built by hand.
    bob.client.publish("$im/v1/req/msgpack", msgpack.packb({"reqId": "mp1", "history": {"convId": conv}}), qos=1)
    resp = bob.wait_response("mp1")
    assert [x.seq for x in resp.messages.messages] == [1, ack.seq]
    r = [x for x in bob.raw if b"mp1" in x.payload][0]
    assert msgpack.unpackb(r.payload, raw=False)["response"]["reqId"] == "mp1"
    alice.close()
    bob.close()


def test_content_type_overrides_the_topic_format(make_broker):
    b = make_broker()
    d = Device(b.port, "alice", "alice-v5", v5=True, fmt="pb")
    assert d.subscribe_topic("$im/v1/d/alice-v5/json") == [1]
    assert d.subscribe_topic("$im/v1/d/alice-v5/msgpack") == [1]

    def publish(topic, payload, content_type):
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = content_type
        d.client.publish(topic, payload, qos=1, properties=props)

    # JSON on the protobuf request topic, declared as JSON: understood, answered in JSON.
    publish("$im/v1/req", json.dumps({"reqId": "ct-json", "openDirect": {"peer": "bob"}}).encode(),
            "application/json")
    r = d.wait_raw(lambda x: b"ct-json" in x.payload)
    assert r.topic == "$im/v1/d/alice-v5/json"
    assert json.loads(r.payload)["response"]["conversation"]["peers"] == ["bob"]
    # Protobuf on the JSON topic, declared as protobuf (with a parameter).
    req = pb.Request(req_id="ct-pb", sync=pb.SyncReq())
    publish("$im/v1/req/json", req.SerializeToString(), "application/x-protobuf; charset=binary")
    r = d.wait_raw(lambda x: b"ct-pb" in x.payload)
    assert r.topic == "$im/v1/d/alice-v5/pb"
    assert pb.ServerFrame.FromString(r.payload).response.sync.full
    # MsgPack declared on the protobuf topic.
    publish("$im/v1/req", msgpack.packb({"reqId": "ct-mp", "sync": {}}), "application/msgpack")
    r = d.wait_raw(lambda x: b"ct-mp" in x.payload)
    assert r.topic == "$im/v1/d/alice-v5/msgpack"
    assert msgpack.unpackb(r.payload, raw=False)["response"]["reqId"] == "ct-mp"
    # An unknown content type leaves the topic's format in charge.
    publish("$im/v1/req/json", json.dumps({"reqId": "ct-other", "sync": {}}).encode(), "text/plain")
    r = d.wait_raw(lambda x: b"ct-other" in x.payload)
    assert r.topic == "$im/v1/d/alice-v5/json"
    d.close()


def test_device_subscribed_to_two_formats_gets_each_event_in_both(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-two", fmt="pb")
    assert bob.subscribe_topic("$im/v1/d/bob-two/json") == [1]
    conv = alice.open_direct("bob").conv_id
    ack = alice.send(conv, "twice, once per format")
    bob.wait_raw(lambda r: r.topic.endswith("/json") and b"twice" in r.payload)
    bob.wait_raw(lambda r: r.topic.endswith("/pb") and b"twice" in r.payload)
    time.sleep(0.2)
    copies = [r for r in bob.raw if b"twice, once per format" in r.payload]
    assert sorted(r.topic for r in copies) == ["$im/v1/d/bob-two/json", "$im/v1/d/bob-two/pb"]
    by_fmt = {r.topic.rsplit("/", 1)[1]: decode(r.payload, pb.ServerFrame, r.topic.rsplit("/", 1)[1])
              for r in copies}
    assert by_fmt["pb"] == by_fmt["json"]
    assert by_fmt["pb"].event.message.seq == ack.seq
    # Unsubscribing one format stops that copy.
    bob.client.unsubscribe("$im/v1/d/bob-two/json")
    time.sleep(0.3)
    ack = alice.send(conv, "pb only now")
    bob.wait_raw(lambda r: r.topic.endswith("/pb") and b"pb only now" in r.payload)
    time.sleep(0.3)
    assert not any(r.topic.endswith("/json") and b"pb only now" in r.payload for r in bob.raw)
    alice.close()
    bob.close()


def test_persistent_session_keeps_its_formats(make_broker):
    """A v3.1.1 device with a persistent session reconnects without subscribing again: events still come in the
    format it subscribed to before."""
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-keep", fmt="json", clean=False)
    conv = alice.open_direct("bob").conv_id
    bob.close()
    bob = Device(b.port, "bob", "bob-keep", fmt="json", clean=False, subscribe=False)
    ack = alice.send(conv, "you kept your subscription")
    m = bob.wait_message(conv, ack.seq)
    assert m.text == "you kept your subscription"
    assert [r.topic for r in bob.raw if b"kept" in r.payload] == ["$im/v1/d/bob-keep/json"]
    alice.close()
    bob.close()


def test_binary_body_and_attachments_cross_formats(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-pb")
    bob_json = Device(b.port, "bob", "bob-json", fmt="json")
    bob_mp = Device(b.port, "bob", "bob-mp", fmt="msgpack")
    conv = alice.open_direct("bob").conv_id
    body = bytes(range(256))
    ack = alice.request(send=pb.SendReq(
        conv_id=conv, client_msg_id="bin", type=pb.MSG_CUSTOM, body=body, content_type="application/x-game",
        attachments=[pb.Attachment(file_id="f1", name="ü.png", size=2 ** 40, sha256="ab" * 32)])).ack
    for d in (bob_json, bob_mp):
        m = d.wait_message(conv, ack.seq)
        assert m.body == body and m.type == pb.MSG_CUSTOM and m.content_type == "application/x-game"
        assert m.attachments[0].name == "ü.png" and m.attachments[0].size == 2 ** 40
    raw = bob_json.wait_raw(lambda r: b"x-game" in r.payload)
    doc = json.loads(raw.payload)["event"]["message"]
    assert doc["attachments"][0]["size"] == str(2 ** 40) and doc["type"] == "MSG_CUSTOM"
    # JSON sends binary as base64 and it arrives intact in protobuf.
    bob_json.client.publish("$im/v1/req/json", json.dumps({"reqId": "jb", "send": {
        "convId": conv, "clientMsgId": "jb", "type": "MSG_CUSTOM", "body": base64.b64encode(b"\x00\xffok").decode(),
        "contentType": "x/y"}}), qos=1)
    seq = bob_json.wait_response("jb").ack.seq
    assert alice.wait_message(conv, seq).body == b"\x00\xffok"
    for d in (alice, bob_json, bob_mp):
        d.close()
