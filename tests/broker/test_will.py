"""Will messages: published on abrupt close, not after a normal DISCONNECT, published after v5 DISCONNECT
0x04, Will Delay Interval (honoured, cancelled by resume, capped by session expiry), will retain and QoS."""
import time

import pytest

from helpers import (DISCONNECT, P_SESSION_EXPIRY, P_WILL_DELAY, V311, V5,
                     mqtt_connect, props, unique_id)
from paho.mqtt.packettypes import PacketTypes


def watcher(clients, broker, topic, qos=2):
    w = clients(broker.port)
    assert w.subscribe(topic, qos) == [qos]
    return w


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_will_on_abrupt_close(broker, clients, version):
    topic = unique_id("will")
    w = watcher(clients, broker, topic)
    c = clients(broker.port, version=version, client_id=unique_id("dies"),
                will=dict(topic=topic, payload=b"gone", qos=1))
    c.kill()  # RST, no DISCONNECT
    m = w.get(3)
    assert (m.topic, m.payload, m.qos, m.retain) == (topic, b"gone", 1, False)
    w.expect_none(0.3)


def test_will_on_fin_without_disconnect(broker, clients):
    topic = unique_id("willfin")
    w = watcher(clients, broker, topic)
    raw = clients.raw(broker.port)
    raw.connect("fin", will=dict(topic=topic, payload=b"fin", qos=0))
    raw.close()  # orderly TCP close, but no DISCONNECT packet
    assert w.get(3).payload == b"fin"


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_no_will_after_normal_disconnect(broker, clients, version):
    topic = unique_id("nowill")
    w = watcher(clients, broker, topic)
    c = clients(broker.port, version=version, will=dict(topic=topic, payload=b"x", qos=1))
    c.disconnect()
    w.expect_none(0.8)


def test_no_will_after_v5_disconnect_reason_0_raw(broker, clients):
    topic = unique_id("nowill")
    w = watcher(clients, broker, topic)
    raw = clients.raw(broker.port)
    raw.connect("normal", will=dict(topic=topic, payload=b"x"))
    raw.disconnect(reason=0x00)
    w.expect_none(0.8)


def test_will_after_v5_disconnect_with_will_message(broker, clients):
    topic = unique_id("will04")
    w = watcher(clients, broker, topic)
    raw = clients.raw(broker.port)
    raw.connect("with-will", will=dict(topic=topic, payload=b"asked-for", qos=2))
    raw.disconnect(reason=0x04)
    m = w.get(3)
    assert (m.payload, m.qos) == (b"asked-for", 2)


def test_will_after_protocol_error(broker, clients):
    topic = unique_id("willerr")
    w = watcher(clients, broker, topic)
    raw = clients.raw(broker.port)
    raw.connect("bad", will=dict(topic=topic, payload=b"err"))
    raw.send(mqtt_connect("bad"))  # a second CONNECT is a protocol error
    d = raw.expect(DISCONNECT)
    assert d.reason == 0x82
    assert w.get(3).payload == b"err"


def test_will_delay_honoured(broker, clients):
    topic = unique_id("delay")
    w = watcher(clients, broker, topic)
    raw = clients.raw(broker.port)
    raw.connect("delayed", props=[(P_SESSION_EXPIRY, 30)],
                will=dict(topic=topic, payload=b"late", props=[(P_WILL_DELAY, 1)]))
    t0 = time.time()
    raw.abort()
    w.expect_none(0.8)
    m = w.get(2)
    elapsed = time.time() - t0
    assert m.payload == b"late"
    assert 0.9 <= elapsed <= 2.0, elapsed


def test_will_delay_cancelled_by_resume(broker, clients):
    topic = unique_id("cancel")
    w = watcher(clients, broker, topic)
    raw = clients.raw(broker.port)
    raw.connect("resumer", props=[(P_SESSION_EXPIRY, 30)],
                will=dict(topic=topic, payload=b"never", props=[(P_WILL_DELAY, 1)]))
    raw.abort()
    time.sleep(0.2)
    again = clients.raw(broker.port)
    ack = again.connect("resumer", clean=False, props=[(P_SESSION_EXPIRY, 30)])
    assert ack.session_present
    w.expect_none(1.6)  # well past the 1 s delay
    again.disconnect()
    w.expect_none(0.3)


def test_will_delay_resume_with_clean_start_publishes_will(broker, clients):
    """Clean Start on the new connection ends the old session, and with it the will delay."""
    topic = unique_id("cleanend")
    w = watcher(clients, broker, topic)
    raw = clients.raw(broker.port)
    raw.connect("cleaner", props=[(P_SESSION_EXPIRY, 30)],
                will=dict(topic=topic, payload=b"now", props=[(P_WILL_DELAY, 30)]))
    raw.abort()
    time.sleep(0.2)
    w.expect_none(0.1)
    again = clients.raw(broker.port)
    ack = again.connect("cleaner", clean=True)
    assert not ack.session_present
    assert w.get(1).payload == b"now"


def test_will_delay_capped_by_session_expiry(broker, clients):
    topic = unique_id("cap")
    w = watcher(clients, broker, topic)
    raw = clients.raw(broker.port)
    raw.connect("capped", props=[(P_SESSION_EXPIRY, 1)],
                will=dict(topic=topic, payload=b"at-expiry", props=[(P_WILL_DELAY, 60)]))
    t0 = time.time()
    raw.abort()
    m = w.get(3)
    assert m.payload == b"at-expiry"
    assert 0.8 <= time.time() - t0 <= 2.0


def test_will_delay_with_session_expiry_zero_is_immediate(broker, clients):
    topic = unique_id("cap0")
    w = watcher(clients, broker, topic)
    raw = clients.raw(broker.port)
    raw.connect("cap0", will=dict(topic=topic, payload=b"now", props=[(P_WILL_DELAY, 60)]))
    t0 = time.time()
    raw.abort()
    assert w.get(1).payload == b"now"
    assert time.time() - t0 < 0.8


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_will_retain(broker, clients, version):
    topic = unique_id("wret")
    c = clients(broker.port, version=version, will=dict(topic=topic, payload=b"ret", qos=1, retain=True))
    live = watcher(clients, broker, topic, qos=1)
    c.kill()
    assert live.get(3).payload == b"ret"
    late = clients(broker.port, version=version)
    late.subscribe(topic, 1)
    m = late.get()
    assert (m.payload, m.retain, m.qos) == (b"ret", True, 1)


@pytest.mark.parametrize("will_qos,sub_qos", [(0, 2), (1, 2), (2, 2), (2, 1), (2, 0)])
def test_will_qos(broker, clients, will_qos, sub_qos):
    topic = unique_id("wq")
    w = watcher(clients, broker, topic, qos=sub_qos)
    c = clients(broker.port, will=dict(topic=topic, payload=b"q", qos=will_qos))
    c.kill()
    assert w.get(3).qos == min(will_qos, sub_qos)


def test_will_properties_pass_through(broker, clients):
    topic = unique_id("wprops")
    w = watcher(clients, broker, topic)
    wp = props(PacketTypes.WILLMESSAGE, ContentType="text/plain", UserProperty=[("why", "crash")],
               MessageExpiryInterval=100)
    c = clients(broker.port, will=dict(topic=topic, payload=b"p", qos=1, properties=wp))
    c.kill()
    m = w.get(3)
    assert m.prop("ContentType") == "text/plain"
    assert m.prop("UserProperty") == [("why", "crash")]
    assert 99 <= m.prop("MessageExpiryInterval") <= 100
