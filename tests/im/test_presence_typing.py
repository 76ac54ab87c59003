"""Ephemeral signals: presence to direct peers (online, offline after presence_grace with last_seen, nothing for
a link that flaps within the grace period) and typing (QoS 0, throttled, small conversations only, never
stored)."""
import time

from imclient import Device, pb, wait_until


def _presence(e, user=None):
    return e.HasField("presence") and (user is None or e.presence.user == user)


def _typing(e, conv=None):
    return e.HasField("typing") and (conv is None or e.typing.conv_id == conv)


def test_presence_online_and_offline_after_grace(make_broker):
    b = make_broker(extra='[im]\npresence_grace = "200ms"\n')
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    alice.open_direct("bob")
    alice.close()
    bob.wait_event(lambda e: _presence(e, "alice") and not e.presence.online, timeout=5)
    bob.take_events()

    alice = Device(b.port, "alice", "alice-phone")
    ev = bob.wait_event(lambda e: _presence(e, "alice"), timeout=5)
    assert ev.presence.online
    t_close = time.time()
    alice.close()
    ev = bob.wait_event(lambda e: _presence(e, "alice"), timeout=5)
    t_event = time.time()
    assert not ev.presence.online
    assert abs(ev.presence.last_seen / 1000 - time.time()) < 60  # a recent wall-clock time (ms)
    assert t_event - t_close >= 0.15, "offline announced before the grace period"
    assert t_event - t_close < 3
    # Presence query agrees (the last_seen row is written as the event goes out: allow it a moment).
    p = wait_until(lambda: (lambda p: p if p.last_seen == ev.presence.last_seen else None)(
        bob.presence(["alice"]).users[0]), timeout=3, what="last_seen stored")
    assert not p.online
    # Presence events are QoS 0 and not for oneself.
    assert all(r.qos == 0 for r in bob.raw if _is_presence_payload(r.payload))
    bob.no_event(lambda e: _presence(e, "bob"), timeout=0.1)
    bob.close()


def _is_presence_payload(payload):
    f = pb.ServerFrame()
    try:
        f.ParseFromString(payload)
    except Exception:  # noqa: BLE001
        return False
    return f.HasField("event") and f.event.HasField("presence")


def test_presence_goes_to_direct_peers_only(make_broker):
    b = make_broker(extra='[im]\npresence_grace = "200ms"\n')
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    carol = Device(b.port, "carol", "carol-phone")
    eve = Device(b.port, "eve", "eve-phone")
    alice.open_direct("bob")
    carol.create_group("g", ["alice"])  # a group: no presence pushes
    for d in (bob, carol, eve):
        d.take_events()
    alice.close()
    bob.wait_event(lambda e: _presence(e, "alice") and not e.presence.online, timeout=5)
    for d in (carol, eve):
        d.no_event(lambda e: e.HasField("presence"), timeout=0.5)
    # A second device keeps the user online: closing one of two announces nothing.
    a1 = Device(b.port, "alice", "alice-phone")
    a2 = Device(b.port, "alice", "alice-tab")
    bob.wait_event(lambda e: _presence(e, "alice") and e.presence.online, timeout=5)
    a1.close()
    bob.no_event(lambda e: _presence(e, "alice"), timeout=0.8)
    assert bob.presence(["alice"]).users[0].online
    a2.close()
    bob.wait_event(lambda e: _presence(e, "alice") and not e.presence.online, timeout=5)
    for d in (bob, carol, eve):
        d.close()


def test_flapping_link_within_grace_announces_nothing(make_broker):
    b = make_broker(extra='[im]\npresence_grace = "2s"\n')
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    alice.open_direct("bob")
    bob.take_events()
    for _ in range(3):
        alice.drop()  # the link dies without DISCONNECT ...
        time.sleep(0.2)
        alice = Device(b.port, "alice", "alice-phone")  # ... and comes back quickly
    bob.no_event(lambda e: _presence(e, "alice"), timeout=2.5)
    assert bob.presence(["alice"]).users[0].online
    alice.close()
    bob.close()


def test_typing_reaches_other_members_at_qos0_throttled(make_broker):
    b = make_broker(extra='[im]\ntyping_interval = "1s"\n')
    a1 = Device(b.port, "alice", "alice-phone")
    a2 = Device(b.port, "alice", "alice-tab")
    b1 = Device(b.port, "bob", "bob-phone")
    b2 = Device(b.port, "bob", "bob-tab", v5=True)
    conv = a1.open_direct("bob").conv_id
    for d in (a1, a2, b1, b2):
        d.take_events()
    a1.typing(conv)
    for d in (b1, b2):
        ev = d.wait_event(_typing, timeout=5)
        assert ev.typing.conv_id == conv and ev.typing.user == "alice"
    typing_raw = [r for d in (b1, b2) for r in d.raw if _is_typing_payload(r.payload)]
    assert typing_raw and all(r.qos == 0 for r in typing_raw)
    for d in (a1, a2):
        d.no_event(_typing, timeout=0.2)  # not to the typist's own devices
    # Throttled: more within the interval are dropped ...
    for _ in range(5):
        a1.typing(conv)
        a2.typing(conv)
    b1.no_event(_typing, timeout=0.5)
    # ... and after it one goes through again.
    time.sleep(0.7)
    a2.typing(conv, qos=1)  # QoS 1 typing is acknowledged, never answered
    assert b1.wait_event(_typing, timeout=5).typing.user == "alice"
    b1.no_event(_typing, timeout=0.3)
    # Never stored: the stream holds only the creation entry.
    h = b1.history(conv)
    assert h.max_seq == 1 and [m.type for m in h.messages] == [pb.MSG_MEMBERS]
    assert b1.get_conversation(conv).unread == 0
    assert not any(r.payload and _is_response(r.payload) for r in a2.raw), "typing was answered"
    for d in (a1, a2, b1, b2):
        d.close()


def _is_typing_payload(payload):
    f = pb.ServerFrame()
    try:
        f.ParseFromString(payload)
    except Exception:  # noqa: BLE001
        return False
    return f.HasField("event") and f.event.HasField("typing")


def _is_response(payload):
    f = pb.ServerFrame()
    try:
        f.ParseFromString(payload)
    except Exception:  # noqa: BLE001
        return False
    return f.HasField("response")


def test_typing_only_in_small_groups(make_broker):
    b = make_broker(extra="[im]\ntyping_max_members = 3\n")
    devs = {u: Device(b.port, u, u + "-phone") for u in ("alice", "bob", "carol", "dave")}
    small = devs["alice"].create_group("small", ["bob", "carol"]).conv_id
    big = devs["alice"].create_group("big", ["bob", "carol", "dave"]).conv_id
    for d in devs.values():
        d.take_events()
    devs["alice"].typing(small)
    for u in ("bob", "carol"):
        ev = devs[u].wait_event(_typing, timeout=5)
        assert ev.typing.conv_id == small and ev.typing.user == "alice"
    devs["dave"].no_event(_typing, timeout=0.2)
    devs["bob"].typing(big)
    for u in ("alice", "carol", "dave"):
        devs[u].no_event(lambda e: _typing(e, big), timeout=0.5)
    for d in devs.values():
        d.close()


def test_last_seen_survives_a_restart(make_broker):
    b = make_broker(extra='[im]\npresence_grace = "200ms"\n')
    alice = Device(b.port, "alice", "alice-phone")
    bob = Device(b.port, "bob", "bob-phone")
    alice.open_direct("bob")
    alice.close()
    last_seen = bob.wait_event(lambda e: _presence(e, "alice") and not e.presence.online,
                               timeout=5).presence.last_seen
    assert last_seen > 0
    bob.close()
    b.stop()
    b.start()
    bob = Device(b.port, "bob", "bob-phone")
    p = bob.presence(["alice"]).users
    assert len(p) == 1 and not p[0].online and p[0].last_seen == last_seen
    bob.close()
