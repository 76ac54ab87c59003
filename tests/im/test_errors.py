"""Errors a client gets and survives: bad payloads in each format, too large, rate limited, unknown
conversation, missing or invalid fields. The connection stays up and the broker keeps running."""
import json
import time

import msgpack

from imclient import Device, pb


def _still_works(dev, b):
    assert b.alive()
    assert dev.client.is_connected()
    dev.request(sync=pb.SyncReq())


def test_bad_payloads_get_bad_request_and_the_connection_stays(make_broker):
    b = make_broker()
    cases = [
        ("pb", "$im/v1/req", b"\x0a\xff\x01abc"),                  # a length past the end
        ("pb", "$im/v1/req", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),  # a varint too long
        ("json", "$im/v1/req/json", b"{not json"),
        ("json", "$im/v1/req/json", b"[1, 2, 3]"),
        ("json", "$im/v1/req/json", b'{"send": {"seq": "not a number"}}'),
        ("msgpack", "$im/v1/req/msgpack", b"\xc1"),                # a byte MsgPack never uses
        ("msgpack", "$im/v1/req/msgpack", b"\x92\x01"),            # an array cut short
        ("msgpack", "$im/v1/req/msgpack", msgpack.packb([1, 2])),  # valid MsgPack, not a request
    ]
    devs = {f: Device(b.port, "alice", "alice-" + f, fmt=f) for f in ("pb", "json", "msgpack")}
    for fmt, topic, payload in cases:
        d = devs[fmt]
        d.client.publish(topic, payload, qos=1)
        resp = d.wait_response("")
        assert resp.error.code == pb.ERR_BAD_REQUEST and resp.error.message, (fmt, payload, resp)
        _still_works(d, b)
    # A well-formed request that names no operation: its req_id is echoed.
    for fmt, d in devs.items():
        d.publish_request(pb.Request(req_id="empty-" + fmt))
        assert d.wait_response("empty-" + fmt).error.code == pb.ERR_BAD_REQUEST
        _still_works(d, b)
    # An empty payload.
    devs["pb"].client.publish("$im/v1/req", b"", qos=1)
    assert devs["pb"].wait_response("").error.code == pb.ERR_BAD_REQUEST
    _still_works(devs["pb"], b)
    for d in devs.values():
        d.close()


def test_invalid_utf8_text_is_refused_not_stored(make_broker):
    """A protobuf request whose text is not UTF-8 (proto3 strings must be): refused, so that every device,
    whatever its format, can decode what is stored."""
    b = make_broker()
    alice = Device(b.port, "alice", "alice-pb")
    bob = Device(b.port, "bob", "bob-json", fmt="json")
    conv = alice.open_direct("bob").conv_id
    req = pb.Request(req_id="utf", send=pb.SendReq(conv_id=conv, client_msg_id="u1", text="placeholder"))
    raw = req.SerializeToString().replace(b"placeholder", b"bad \xff\xfe ")
    alice.client.publish("$im/v1/req", raw, qos=1)
    # Refused while decoding (no req_id then) or after it.
    deadline = time.time() + 10
    while time.time() < deadline and not ({"", "utf"} & set(alice.responses)):
        time.sleep(0.02)
    resp = alice.responses.pop("utf", None) or alice.responses.pop("", None)
    assert resp is not None, "no answer"
    assert resp.HasField("error") and resp.error.code == pb.ERR_BAD_REQUEST, resp
    # Nothing was stored; bob's JSON device reads the stream fine.
    h = bob.history(conv)
    assert h.max_seq == 1
    assert bob.bad_frames == []
    _still_works(alice, b)
    alice.close()
    bob.close()


def test_too_large(make_broker):
    b = make_broker(extra="[im]\nmax_message_bytes = 100\nmax_mentions = 2\n")
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob").conv_id
    assert alice.send(conv, "x" * 100).seq == 2  # exactly the limit
    e = alice.expect_error(pb.ERR_TOO_LARGE, send=pb.SendReq(conv_id=conv, client_msg_id="big", text="x" * 101))
    assert "100" in e.message
    alice.expect_error(pb.ERR_TOO_LARGE, send=pb.SendReq(conv_id=conv, client_msg_id="big2", type=pb.MSG_CUSTOM,
                                                         body=b"\0" * 90, content_type="application/x-fifteen"))
    alice.expect_error(pb.ERR_TOO_LARGE, edit=pb.EditReq(conv_id=conv, seq=2, text="y" * 101))
    alice.expect_error(pb.ERR_TOO_LARGE, send=pb.SendReq(conv_id=conv, client_msg_id="m3", text="hi",
                                                         mentions=["a", "b", "c"]))
    # Nothing stored by the refusals; a refused client_msg_id is free to use.
    assert alice.history(conv).max_seq == 2
    assert not alice.send(conv, "small now", cmid="big").duplicate
    _still_works(alice, b)
    alice.close()


def test_rate_limited(make_broker):
    b = make_broker(extra="[im]\nsend_rate = 1\nsend_burst = 2\n")
    alice = Device(b.port, "alice", "alice-phone")
    a2 = Device(b.port, "alice", "alice-tab")
    bob = Device(b.port, "bob", "bob-phone")
    conv = bob.open_direct("alice").conv_id  # bob's bucket pays for the creation
    first = alice.send(conv, "one", cmid="one")
    alice.send(conv, "two", cmid="two")
    e = alice.expect_error(pb.ERR_RATE_LIMITED, send=pb.SendReq(conv_id=conv, client_msg_id="three", text="3"))
    assert 0 < e.retry_after_ms <= 1001
    # Per user: alice's other device is limited too, bob is not.
    a2.expect_error(pb.ERR_RATE_LIMITED, send=pb.SendReq(conv_id=conv, client_msg_id="three-b", text="3"))
    bob.send(conv, "bob is fine")
    # A resend of an acknowledged message is answered from dedup, whatever the rate.
    again = alice.send(conv, "one", cmid="one")
    assert again.duplicate and again.seq == first.seq
    # After retry_after_ms the refused message goes through (it was not stored: not a duplicate).
    time.sleep(max(e.retry_after_ms, 1000) / 1000 + 0.1)
    ack = alice.send(conv, "3", cmid="three")
    assert not ack.duplicate
    texts = [m.text for m in alice.history(conv).messages if m.type == pb.MSG_TEXT]
    assert texts == ["one", "two", "bob is fine", "3"]
    _still_works(alice, b)
    for d in (alice, a2, bob):
        d.close()


def test_unknown_conversation_and_missing_fields(make_broker):
    b = make_broker()
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob").conv_id
    BR, NF = pb.ERR_BAD_REQUEST, pb.ERR_NOT_FOUND
    alice.expect_error(NF, send=pb.SendReq(conv_id="d_doesnotexist", client_msg_id="u", text="?"))
    alice.expect_error(NF, history=pb.HistoryReq(conv_id="g_doesnotexist"))
    alice.expect_error(NF, get_conversation=pb.GetConversationReq(conv_id="g_doesnotexist"))
    alice.expect_error(BR, send=pb.SendReq(conv_id=conv, text="no id"))
    alice.expect_error(BR, send=pb.SendReq(conv_id=conv, client_msg_id="x" * 65, text="long id"))
    alice.expect_error(BR, send=pb.SendReq(conv_id=conv, client_msg_id="e", text=""))
    alice.expect_error(BR, send=pb.SendReq(conv_id="", client_msg_id="c", text="no conv"))
    alice.expect_error(BR, send=pb.SendReq(conv_id=conv, client_msg_id="t", type=pb.MSG_EDIT, text="x"))
    alice.expect_error(BR, send=pb.SendReq(conv_id=conv, client_msg_id="s", type=pb.MSG_SYSTEM, text="x"))
    alice.expect_error(BR, send=pb.SendReq(conv_id=conv, client_msg_id="r", text="x", reply_to=99))
    alice.expect_error(BR, edit=pb.EditReq(conv_id=conv, text="no seq"))
    alice.expect_error(BR, recall=pb.RecallReq(conv_id=conv))
    alice.expect_error(BR, range=pb.RangeReq(conv_id=conv, from_seq=0, to_seq=5))
    alice.expect_error(BR, range=pb.RangeReq(conv_id=conv, from_seq=5, to_seq=4))
    alice.expect_error(BR, range=pb.RangeReq(conv_id=conv, from_seq=1, to_seq=201))
    alice.expect_error(BR, history=pb.HistoryReq())
    alice.expect_error(BR, open_direct=pb.OpenDirectReq(peer=""))
    alice.expect_error(BR, open_direct=pb.OpenDirectReq(peer="alice"))
    alice.expect_error(BR, create_group=pb.CreateGroupReq(name="n" * 257, members=["bob"]))
    alice.expect_error(BR, create_group=pb.CreateGroupReq(name="x", members=["bob", ""]))
    # None of it was stored; a valid send right after works, reply_to included.
    assert alice.history(conv).max_seq == 1
    ack = alice.send(conv, "fine", reply_to=1)
    assert ack.seq == 2
    assert alice.history(conv).messages[-1].reply_to == 1
    _still_works(alice, b)
    alice.close()


def test_json_errors_are_answered_in_json(make_broker):
    b = make_broker()
    d = Device(b.port, "alice", "alice-json", fmt="json")
    d.client.publish("$im/v1/req/json", json.dumps({"reqId": "j1", "history": {"convId": "g_nope"}}), qos=1)
    raw = d.wait_raw(lambda r: b"j1" in r.payload)
    doc = json.loads(raw.payload)
    assert doc["response"]["reqId"] == "j1"
    assert doc["response"]["error"]["code"] == "ERR_NOT_FOUND"
    d.close()
