"""$SYS/broker/... statistics topics ([sys] in the config): values, how often they are republished, and
that '#' / '+' subscriptions never match them (MQTT 4.7.2)."""
import re
import time

from helpers import V311, clients, unique_id, wait_for  # noqa: F401

SYS_1S = '[sys]\ninterval = "1s"'


class SysTopic:
    """A subscriber to one $SYS topic; `latest()` is the newest payload seen."""

    def __init__(self, clients, port, topic):
        self.c = clients(port, version=V311)
        assert self.c.subscribe(topic, qos=0) == [0]
        self.values = []

    def poll(self):
        while not self.c.messages.empty():
            self.values.append(self.c.messages.get_nowait())
        return self.values

    def wait_value(self, pred, timeout=4):
        """Waits for a payload (str) satisfying pred; returns it."""
        found = []

        def check():
            for m in self.poll():
                v = m.payload.decode()
                if pred(v):
                    found.append(v)
                    return True
            self.values.clear()
            return False
        assert wait_for(check, timeout, 0.05), "no matching value; last seen %r" % self.values[-1:]
        return found[0]

    def wait_updates(self, n, timeout=4):
        """Waits until n more publications of the topic arrived."""
        start = len(self.poll())
        assert wait_for(lambda: len(self.poll()) >= start + n, timeout, 0.05)


def num(s):
    return int(s.split()[0])


def test_version_and_retained_on_subscribe(broker, clients):
    # The default interval is 10 s, but the values are published at start and retained: a subscriber
    # gets them at once.
    time.sleep(0.3)
    c = clients(broker.port)
    assert c.subscribe("$SYS/broker/version", qos=0) == [0]
    m = c.get(2)
    assert m.topic == "$SYS/broker/version"
    assert re.fullmatch(r"parley \d+\.\d+\.\d+.*", m.payload.decode()), m.payload
    assert m.retain


def test_uptime_advances(make_broker, clients):
    b = make_broker(extra=SYS_1S)
    up = SysTopic(clients, b.port, "$SYS/broker/uptime")
    first = up.wait_value(lambda v: re.fullmatch(r"\d+ seconds", v) is not None)
    later = up.wait_value(lambda v: num(v) >= num(first) + 1, timeout=3)
    assert num(later) - num(first) <= 3


def test_interval_is_respected(make_broker, clients):
    b = make_broker(extra=SYS_1S)
    up = SysTopic(clients, b.port, "$SYS/broker/uptime")
    up.wait_updates(1)
    t0 = time.time()
    up.wait_updates(2, timeout=4)
    assert 1.5 <= time.time() - t0 <= 3.0  # two more publications about one second apart


def test_clients_connected_counts(make_broker, clients):
    b = make_broker(extra=SYS_1S)
    cc = SysTopic(clients, b.port, "$SYS/broker/clients/connected")
    base = num(cc.wait_value(lambda v: num(v) >= 1))
    assert base == 1  # the watcher itself
    extra = [clients(b.port, client_id=unique_id("cc")) for _ in range(3)]
    raw = clients.raw(b.port, version=4)
    raw.connect(unique_id("cc"))
    cc.wait_value(lambda v: num(v) == base + 4)
    for c in extra:
        c.disconnect()
    raw.disconnect()
    cc.wait_value(lambda v: num(v) == base)


def test_messages_received_and_sent(make_broker, clients):
    b = make_broker(extra=SYS_1S)
    rx = SysTopic(clients, b.port, "$SYS/broker/messages/received")
    tx = SysTopic(clients, b.port, "$SYS/broker/messages/sent")
    rx_base = num(rx.wait_value(lambda v: True))
    tx_base = num(tx.wait_value(lambda v: True))
    topic = unique_id("count")
    sub = clients(b.port)
    assert sub.subscribe(topic, qos=1) == [1]
    pub = clients(b.port)
    for i in range(5):
        pub.publish(topic, "c%d" % i, qos=1)
    sub.get_n(5)
    # Exactly our five PUBLISH packets were received from clients ($SYS publications are not).
    rx.wait_value(lambda v: num(v) == rx_base + 5)
    # Sent: our 5 plus the $SYS publications delivered to the watchers meanwhile.
    tx.wait_value(lambda v: num(v) >= tx_base + 5)


def test_subscription_and_session_counts(make_broker, clients):
    b = make_broker(extra=SYS_1S)
    subs = SysTopic(clients, b.port, "$SYS/broker/subscriptions/count")
    base = num(subs.wait_value(lambda v: num(v) >= 1))
    c = clients(b.port)
    c.subscribe([(unique_id("s"), 0), (unique_id("s"), 1), ("$share/g/" + unique_id("s"), 0)])
    subs.wait_value(lambda v: num(v) == base + 3)
    total = SysTopic(clients, b.port, "$SYS/broker/clients/total")
    total.wait_value(lambda v: num(v) == 3)  # sessions: the two watchers and c


def test_dropped_counter_present(make_broker, clients):
    b = make_broker(extra=SYS_1S)
    d = SysTopic(clients, b.port, "$SYS/broker/messages/dropped")
    assert num(d.wait_value(lambda v: True)) == 0


def test_wildcards_do_not_match_sys(make_broker, clients):
    b = make_broker(extra=SYS_1S)
    everything = clients(b.port)
    assert everything.subscribe([("#", 0), ("+/broker/#", 0), ("+/+/uptime", 0)]) == [0, 0, 0]
    plus3 = clients(b.port, version=V311)
    assert plus3.subscribe("+/broker/version", 0) == [0]
    uptime = SysTopic(clients, b.port, "$SYS/broker/uptime")
    uptime.wait_updates(2)  # the retained copy, then a live round published after the subscriptions
    # '#' saw no $SYS message, neither live nor retained; yet it is a working subscription.
    topic = unique_id("plain")
    everything.publish(topic, "ordinary", qos=1)
    m = everything.get()
    assert (m.topic, m.payload) == (topic, b"ordinary")
    everything.expect_none(0.2)
    plus3.expect_none(0.1)


def test_sys_disabled(make_broker, clients):
    b = make_broker(extra='[sys]\nenabled = false\ninterval = "1s"')
    c = clients(b.port)
    assert c.subscribe("$SYS/#", qos=0) == [0]
    c.expect_none(1.5)


def test_mosquitto_load_averages_and_totals(make_broker, clients):
    """Mosquitto's $SYS names beyond the basics: clients/maximum and /disconnected, publish/messages/*, and
    the 1/5/15-minute load averages (messages per minute)."""
    b = make_broker(extra=SYS_1S)
    received = SysTopic(clients, b.port, "$SYS/broker/load/messages/received/1min")
    received.wait_value(lambda v: re.fullmatch(r"\d+\.\d\d", v) is not None, timeout=5)  # the baseline is set
    pub = clients(b.port, client_id=unique_id("loadpub"))
    for i in range(30):
        pub.publish("load/x", b"x", qos=1)
    value = received.wait_value(lambda v: float(v) > 0, timeout=5)
    assert re.fullmatch(r"\d+\.\d\d", value), value
    for topic in ("$SYS/broker/load/messages/sent/5min", "$SYS/broker/load/bytes/received/15min",
                  "$SYS/broker/load/connections/1min", "$SYS/broker/clients/maximum",
                  "$SYS/broker/clients/disconnected", "$SYS/broker/publish/messages/received"):
        SysTopic(clients, b.port, topic).wait_value(lambda v: re.fullmatch(r"\d+(\.\d\d)?", v) is not None)
    maximum = SysTopic(clients, b.port, "$SYS/broker/clients/maximum")
    assert num(maximum.wait_value(lambda v: num(v) >= 2)) >= 2
