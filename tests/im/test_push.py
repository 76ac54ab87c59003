"""Push notifications (docs/push.md) against a local receiver on loopback that plays gorush (POST /api/push) or a
generic webhook: registration, payloads (conv_id + seq, badge, preview only when allowed), collapse of bursts,
mute and mentions, retry after a 500, the circuit breaker on a dead endpoint and its recovery, and MQTT / IM
latency while the provider hangs."""
import json
import pathlib
import socket
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from imclient import Device, pb

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "broker"))
from helpers import wait_for  # noqa: E402
import prom  # noqa: E402


class Receiver:
    """An HTTP receiver on 127.0.0.1: records every POST body; `mode` decides the answer: "ok" (200), "fail" (500
    for the next `fail_count` requests, then 200), "hang" (never answers until closed)."""

    def __init__(self, port=0):
        self.posts = []  # (time, path, parsed JSON)
        self.mode = "ok"
        self.fail_count = 0
        self.cond = threading.Condition()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.cond:
                    mode = outer.mode
                    if mode == "fail" and outer.fail_count > 0:
                        outer.fail_count -= 1
                        status = 500
                    else:
                        status = 200
                    if mode != "hang":
                        outer.posts.append((time.time(), self.path, json.loads(body), status))
                        outer.cond.notify_all()
                if mode == "hang":
                    outer.release.wait(30)
                    return
                out = b'{"counts":1,"logs":[],"success":"ok"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def items(self, field="notifications", ok_only=True):
        with self.cond:
            return [(t, it) for t, _, body, st in self.posts if (st == 200 or not ok_only) for it in body[field]]

    def wait_items(self, n, field="notifications", timeout=10):
        assert wait_for(lambda: len(self.items(field)) >= n, timeout=timeout), self.posts
        return [it for _, it in self.items(field)]

    def close(self):
        self.release.set()
        self.server.shutdown()


def metrics(b):
    status, _, text = prom.fetch(b.admin_port, token=b.admin_token())
    assert status == 200, text
    return prom.parse(text)


def push_broker(make_broker, receiver, kind="gorush", **push):
    settings = {"collapse_window": "1s", **push}
    lines = ["[push]"] + ["%s = %s" % (k, json.dumps(v)) for k, v in settings.items()]
    lines += ["[push.%s]" % kind, 'url = "http://127.0.0.1:%d"' % receiver.port, 'timeout = "2s"']
    if kind == "gorush":
        lines.append('topic = "com.example.parley"')
    return make_broker(extra="\n".join(lines) + "\n")


def register(dev, token, platform="ios", provider="gorush"):
    return dev.request(register_push=pb.RegisterPushReq(provider=provider, token=token, platform=platform))


def offline_bob(b, conv_peer="alice", token="tok-bob-1", platform="ios", provider="gorush"):
    """bob registers a token from his phone and goes offline; returns (alice's device, the conversation)."""
    bob = Device(b.port, "bob", "bob-phone")
    alice = Device(b.port, "alice", "alice-phone")
    conv = alice.open_direct("bob")
    register(bob, token, platform, provider)
    bob.close()
    return alice, conv


def test_gorush_payload_badge_and_preview_setting(make_broker):
    r = Receiver()
    b = push_broker(make_broker, r)
    alice, conv = offline_bob(b)
    ack = alice.send(conv.conv_id, "the secret plan")
    n = r.wait_items(1)[0]
    assert r.posts[0][1] == "/api/push"
    assert n["tokens"] == ["tok-bob-1"] and n["platform"] == 1 and n["topic"] == "com.example.parley"
    assert n["badge"] == 1
    assert n["data"]["conv_id"] == conv.conv_id and int(n["data"]["seq"]) == ack.seq
    assert "secret" not in json.dumps(n) and "alice" not in json.dumps(n)  # no preview unless bob allows it
    assert n.get("collapse_id") == conv.conv_id or n.get("thread_id") == conv.conv_id

    # bob allows previews (from another device); the next push carries sender and text; badge counts 2.
    bob2 = Device(b.port, "bob", "bob-tablet")
    s = bob2.request(push_settings=pb.PushSettingsReq(preview=True)).push_settings
    assert s.preview and not s.mentions_when_muted
    bob2.close()
    time.sleep(1.2)  # past the collapse window of the first push
    alice.send(conv.conv_id, "second message")
    n = r.wait_items(2)[1]
    assert "second message" in json.dumps(n) and "alice" in json.dumps(n)
    assert n["badge"] == 2

    # Online: no push. Unregistered: no push.
    bob = Device(b.port, "bob", "bob-phone")
    time.sleep(1.2)
    alice.send(conv.conv_id, "while online")
    time.sleep(1.5)
    assert len(r.items()) == 2
    bob.request(unregister_push=pb.UnregisterPushReq(token="tok-bob-1"))
    bob.close()
    alice.send(conv.conv_id, "after unregistering")
    time.sleep(1.5)
    assert len(r.items()) == 2
    # An unknown provider, a bad platform: refused.
    alice.expect_error(pb.ERR_UNSUPPORTED, register_push=pb.RegisterPushReq(provider="webhook", token="t",
                                                                             platform="ios"))
    alice.expect_error(pb.ERR_BAD_REQUEST, register_push=pb.RegisterPushReq(provider="gorush", token="t",
                                                                             platform="nokia"))
    alice.close()
    r.close()


def test_generic_webhook_payload(make_broker):
    r = Receiver()
    b = push_broker(make_broker, r, kind="webhook")
    alice, conv = offline_bob(b, token="web-tok", platform="android", provider="webhook")
    ack = alice.send(conv.conv_id, "hello")
    p = r.wait_items(1, field="pushes")[0]
    assert p["user"] == "bob" and p["tokens"] == [{"token": "web-tok", "platform": "android"}]
    assert p["conv_id"] == conv.conv_id and p["seq"] == ack.seq and p["badge"] == 1
    assert "preview" not in p and "sender" not in p
    alice.close()
    r.close()


def test_a_token_has_one_owner(make_broker):
    """The same phone, a new account: registering its token for carol stops bob's pushes (and previews) on it."""
    r = Receiver()
    b = push_broker(make_broker, r, collapse_window="0s")
    alice, conv_b = offline_bob(b, token="shared-phone")
    carol = Device(b.port, "carol", "carol-phone")
    conv_c = alice.open_direct("carol")
    register(carol, "shared-phone")
    carol.close()
    alice.send(conv_b.conv_id, "for bob")
    ack = alice.send(conv_c.conv_id, "for carol")
    n = r.wait_items(1)[0]
    time.sleep(1)
    assert len(r.items()) == 1 and n["data"]["conv_id"] == conv_c.conv_id and int(n["data"]["seq"]) == ack.seq
    assert (prom.total(metrics(b), "parley_push_jobs_total", outcome="no_token") or 0) >= 1  # bob has none now
    alice.close()
    r.close()


def test_burst_collapses(make_broker):
    r = Receiver()
    b = push_broker(make_broker, r, collapse_window="2s")
    alice, conv = offline_bob(b)
    acks = [alice.send(conv.conv_id, "m%d" % i) for i in range(6)]
    items = r.wait_items(2, timeout=10)
    time.sleep(2.5)  # nothing more comes after the window
    items = [it for _, it in r.items()]
    assert len(items) == 2, items
    assert int(items[0]["data"]["seq"]) == acks[0].seq  # the first at once
    assert int(items[1]["data"]["seq"]) == acks[-1].seq and items[1]["badge"] == 6  # then one for the rest
    m = metrics(b)
    assert (prom.total(m, "parley_push_jobs_total", outcome="collapsed") or 0) >= 4
    alice.close()
    r.close()


def test_mute_and_mentions(make_broker):
    r = Receiver()
    b = push_broker(make_broker, r, collapse_window="0s")
    bob = Device(b.port, "bob", "bob-phone")
    alice = Device(b.port, "alice", "alice-phone")
    g = alice.create_group("team", ["bob"])
    register(bob, "tok-bob")
    conv = bob.request(mute=pb.MuteReq(conv_id=g.conv_id, until=-1)).conversation
    assert conv.muted_until > 2 ** 62
    bob.close()
    alice.send(g.conv_id, "muted, no push")
    alice.send(g.conv_id, "@bob muted, but a mention", mentions=["bob"])
    time.sleep(1.5)
    assert r.items() == []  # mentions push in muted conversations only if bob says so
    bob = Device(b.port, "bob", "bob-phone")
    bob.request(push_settings=pb.PushSettingsReq(mentions_when_muted=True))
    bob.close()
    ack = alice.send(g.conv_id, "@bob now it pushes", mentions=["bob"])
    n = r.wait_items(1)[0]
    assert int(n["data"]["seq"]) == ack.seq
    # Unmute: ordinary messages push again.
    bob = Device(b.port, "bob", "bob-phone")
    assert bob.request(mute=pb.MuteReq(conv_id=g.conv_id, until=0)).conversation.muted_until == 0
    bob.close()
    ack = alice.send(g.conv_id, "unmuted")
    assert int(r.wait_items(2)[1]["data"]["seq"]) == ack.seq
    alice.close()
    r.close()


def test_retry_after_500(make_broker):
    r = Receiver()
    r.mode, r.fail_count = "fail", 1
    b = push_broker(make_broker, r)
    alice, conv = offline_bob(b)
    ack = alice.send(conv.conv_id, "retry me")
    assert wait_for(lambda: len(r.items()) == 1, timeout=15), r.posts
    assert [st for _, _, _, st in r.posts] == [500, 200]
    assert int(r.items()[0][1]["data"]["seq"]) == ack.seq
    alice.close()
    r.close()


def test_breaker_opens_on_dead_endpoint_and_closes_on_recovery(make_broker):
    # A port nothing listens on: every attempt is refused; the breaker opens; pushes wait (newest per user).
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()

    class Dead:
        port = dead_port
    b = push_broker(make_broker, Dead)
    alice, conv = offline_bob(b)
    for i in range(3):
        alice.send(conv.conv_id, "into the void %d" % i)

    def outcome(o):
        return prom.total(metrics(b), "parley_webhook_requests_total", target="push_gorush", outcome=o) or 0
    assert wait_for(lambda: outcome("network_error") >= 1, timeout=10)
    assert wait_for(lambda: outcome("breaker_open") >= 1, timeout=60), metrics(b)
    # The receiver comes back on that port: the breaker's probe gets through, the newest push arrives.
    r = Receiver(port=dead_port)
    items = r.wait_items(1, timeout=120)
    assert items[-1]["badge"] == 3
    assert wait_for(lambda: outcome("ok") >= 1, timeout=10)
    alice.close()
    r.close()


def test_a_hanging_provider_does_not_slow_the_broker(make_broker):
    r = Receiver()
    r.mode = "hang"
    b = push_broker(make_broker, r, collapse_window="0s")

    def ack_latencies(alice, conv, n):
        out = []
        for i in range(n):
            t0 = time.perf_counter()
            alice.send(conv.conv_id, "m%d" % i)
            out.append(time.perf_counter() - t0)
        return out

    # bob (offline, registered) gets a push job per message; carol's conversation with alice pushes nothing.
    alice, conv = offline_bob(b)
    carol = Device(b.port, "carol", "carol-phone")
    conv_c = alice.open_direct("carol")
    quiet = ack_latencies(alice, conv_c, 100)   # carol is online: no pushes
    pushing = ack_latencies(alice, conv, 100)   # every send queues a push to the hanging provider
    q50, p50 = statistics.median(quiet), statistics.median(pushing)
    q99, p99 = sorted(quiet)[98], sorted(pushing)[98]
    print("send-to-ack ms, no push / push to a hanging provider: p50 %.2f / %.2f, p99 %.2f / %.2f" % (
        q50 * 1e3, p50 * 1e3, q99 * 1e3, p99 * 1e3))
    assert p50 < q50 * 2 + 0.005 and p99 < q99 * 3 + 0.02, (q50, p50, q99, p99)
    carol.close()
    alice.close()
    r.close()
