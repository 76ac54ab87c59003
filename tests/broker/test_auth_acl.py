"""Authentication (allow_anonymous, mosquitto_passwd password files) and access control (mosquitto ACL
files) as docs/authentication.md describes them: CONNACK codes, PUBACK 0x87, SUBACK 0x80, %u / %c
patterns, and the read check at delivery."""
import pathlib
import subprocess
import tempfile

import pytest

from helpers import (PUBACK, PUBCOMP, PUBREC, V311, clients, mqtt_connect, mqtt_publish,  # noqa: F401
                     unique_id)

# ---------------------------------------------------------------------------------------------------------
# Authentication


def make_passwd(users, algo=None):
    """A password file written by Mosquitto's own mosquitto_passwd. users: {name: password}."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="parley-pw-")) / "passwd"
    first = True
    for name, pw in users.items():
        cmd = ["mosquitto_passwd"]
        if algo:
            cmd += ["-H", algo]
        if first:
            cmd.append("-c")
        cmd += ["-b", str(path), name, pw]
        subprocess.run(cmd, check=True, capture_output=True)
        first = False
    return path.read_text()


@pytest.fixture(scope="module")
def passwd_text():
    text = make_passwd({"alice": "secret-1", "bob": "b0b pass"})
    text += make_passwd({"carol": "c4rol"}, algo="sha512")  # the Mosquitto 1.6 format
    assert "alice:$7$" in text and "carol:$6$" in text
    return text


def test_anonymous_refused_when_disabled(make_broker, clients):
    b = make_broker(auth="allow_anonymous = false")
    c5 = clients.raw(b.port, version=5)
    ack = c5.connect(unique_id("anon"), expect_reason=0x87)  # Not authorized
    assert c5.is_closed(2)
    c4 = clients.raw(b.port, version=4)
    ack = c4.connect(unique_id("anon"), expect_reason=5)  # 3.1.1: not authorized
    assert ack.body == b"\x00\x05"
    assert c4.is_closed(2)
    # A user name with no credential store to vouch for it is refused as a bad user name or password.
    c = clients.raw(b.port, version=5)
    c.connect(unique_id("anon"), username="someone", password=b"x", expect_reason=0x86)


def test_anonymous_allowed_by_default(broker, clients):
    c = clients.raw(broker.port)
    c.connect(unique_id("anon"))
    c = clients.raw(broker.port, version=4)
    c.connect(unique_id("anon"), username="anyone")  # no credential store: any user name is accepted


@pytest.fixture
def pw_broker(make_broker, passwd_text):
    return make_broker(auth='allow_anonymous = false\npassword_file = "passwd"', files={"passwd": passwd_text})


def test_password_file_right_password_accepted(pw_broker, clients):
    for version in (4, 5):
        c = clients.raw(pw_broker.port, version=version)
        c.connect(unique_id("pw"), username="alice", password=b"secret-1")
        c = clients.raw(pw_broker.port, version=version)
        c.connect(unique_id("pw"), username="bob", password=b"b0b pass")
        c = clients.raw(pw_broker.port, version=version)
        c.connect(unique_id("pw"), username="carol", password=b"c4rol")  # $6$ hash
    # And a real client, end to end.
    p = clients(pw_broker.port, username="alice", password="secret-1")
    topic = unique_id("pw")
    assert p.subscribe(topic, qos=1) == [1]
    p.publish(topic, "hello", qos=1)
    assert p.get().payload == b"hello"


@pytest.mark.parametrize("username,password", [
    ("alice", b"wrong"),
    ("alice", b"secret-"),
    ("alice", b"secret-1x"),
    ("alice", None),
    ("Alice", b"secret-1"),   # names are case-sensitive
    ("mallory", b"secret-1"),  # not in the file
    ("carol", b"wrong"),
])
def test_password_file_wrong_credentials_refused(pw_broker, clients, username, password):
    c4 = clients.raw(pw_broker.port, version=4)
    ack = c4.connect(unique_id("pw"), username=username, password=password, expect_reason=4)
    assert not ack.session_present
    assert c4.is_closed(2)
    c5 = clients.raw(pw_broker.port, version=5)
    c5.connect(unique_id("pw"), username=username, password=password, expect_reason=0x86)
    assert c5.is_closed(2)


def test_password_file_no_username_follows_allow_anonymous(make_broker, passwd_text, clients):
    closed = make_broker(auth='allow_anonymous = false\npassword_file = "passwd"', files={"passwd": passwd_text})
    clients.raw(closed.port).connect(unique_id("pw"), expect_reason=0x87)
    clients.raw(closed.port, version=4).connect(unique_id("pw"), expect_reason=5)
    open_ = make_broker(auth='allow_anonymous = true\npassword_file = "passwd"', files={"passwd": passwd_text})
    clients.raw(open_.port).connect(unique_id("pw"))
    # A user name is still checked when anonymous access is on.
    clients.raw(open_.port).connect(unique_id("pw"), username="alice", password=b"nope", expect_reason=0x86)


def test_password_file_with_mosquitto_clients(pw_broker):
    port = str(pw_broker.port)
    topic = unique_id("pw")
    ok = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv5", "-u", "alice",
                         "-P", "secret-1", "-t", topic, "-m", "x", "-q", "1"], capture_output=True, timeout=10)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv311", "-u", "alice",
                          "-P", "wrong", "-t", topic, "-m", "x"], capture_output=True, timeout=10)
    assert bad.returncode != 0
    assert b"not authorised" in bad.stderr.lower() or b"bad user" in bad.stderr.lower(), bad.stderr


def test_bad_password_file_refuses_to_start(make_broker):
    with pytest.raises(RuntimeError) as e:
        make_broker(auth='password_file = "passwd"', files={"passwd": "alice:plaintext\n"})
    assert "passwd:1" in str(e.value)


# ---------------------------------------------------------------------------------------------------------
# Access control

ACL = """\
# anonymous clients
topic readwrite public/#
topic deny public/secret
topic read $SYS/#

user alice
topic readwrite home/alice/#
topic deny home/alice/vault/#
topic read news/#
topic write inbox/alice

user admin
topic readwrite #

# every client
pattern readwrite devices/%c/#
pattern read users/%u/inbox
"""


@pytest.fixture
def acl_broker(make_broker):
    return make_broker(auth='acl_file = "acl"', files={"acl": ACL})


def admin(clients, port, **kw):
    return clients(port, client_id=unique_id("admin"), username="admin", **kw)


def test_publish_denied_v5_gets_0x87_and_is_not_delivered(acl_broker, clients):
    watcher = admin(clients, acl_broker.port)
    assert watcher.subscribe("#", qos=2) == [2]
    alice = clients.raw(acl_broker.port)
    alice.connect(unique_id("alice"), username="alice")
    assert alice.publish("news/today", b"forged", qos=1, packet_id=5).reason == 0x87  # read-only for alice
    assert alice.publish("home/bob/x", b"forged", qos=1, packet_id=6).reason == 0x87  # no rule: default deny
    assert alice.publish("home/alice/vault/k", b"forged", qos=1, packet_id=7).reason == 0x87  # deny rule
    rec = alice.publish("home/bob/y", b"forged", qos=2, packet_id=8)
    assert rec.type == PUBREC and rec.reason == 0x87
    alice.publish("home/bob/z", b"forged", qos=0)
    # Allowed ones go through (and prove the watcher would have seen the others).
    ack = alice.publish("home/alice/door", b"open", qos=1, packet_id=9)
    assert (ack.type, ack.packet_id, ack.reason) == (PUBACK, 9, 0)
    ack = alice.publish("inbox/alice", b"note", qos=2, packet_id=10)
    assert (ack.type, ack.reason) == (PUBCOMP, 0)
    got = watcher.get_n(2)
    assert [(m.topic, m.payload) for m in got] == [("home/alice/door", b"open"), ("inbox/alice", b"note")]
    watcher.expect_none(0.3)
    # The refused publishes did not cost alice her connection.
    assert alice.publish("home/alice/door", b"closed", qos=1, packet_id=11).reason == 0


def test_publish_denied_v311_is_dropped_silently(acl_broker, clients):
    watcher = admin(clients, acl_broker.port)
    assert watcher.subscribe("#", qos=1) == [1]
    alice = clients.raw(acl_broker.port, version=4)
    alice.connect(unique_id("alice"), username="alice")
    ack = alice.publish("news/today", b"forged", qos=1, packet_id=3)
    assert (ack.type, ack.packet_id) == (PUBACK, 3)  # 3.1.1 has no way to say no: a plain PUBACK
    assert ack.body == b"\x00\x03"
    alice.publish("home/alice/x", b"ok", qos=1, packet_id=4)
    m = watcher.get()
    assert (m.topic, m.payload) == ("home/alice/x", b"ok")
    watcher.expect_none(0.3)


@pytest.mark.parametrize("version", [4, 5])
def test_subscribe_denied_gets_0x80(acl_broker, clients, version):
    alice = clients.raw(acl_broker.port, version=version)
    alice.connect(unique_id("alice"), username="alice")
    ack = alice.subscribe([
        ("home/bob/#", 1),          # no grant
        ("home/alice/vault/x", 1),  # deny rule covers it
        ("inbox/alice", 1),         # write-only
        ("news/+", 1),              # covered by read news/#
        ("home/alice/#", 2),        # overlaps the deny: granted, deny enforced per message
        ("#", 0),                   # wider than her grants
        ("users/alice/inbox", 1),   # pattern %u
        ("users/bob/inbox", 1),     # pattern for someone else
    ], packet_id=12)
    assert ack.packet_id == 12
    assert ack.reasons == [0x80, 0x80, 0x80, 1, 2, 0x80, 1, 0x80]


def test_read_acl_checked_at_delivery(acl_broker, clients):
    alice = clients(acl_broker.port, client_id=unique_id("alice"), username="alice")
    assert alice.subscribe("home/alice/#", qos=1) == [1]
    anon = clients(acl_broker.port, version=V311)
    assert anon.subscribe("public/#", qos=1) == [1]
    boss = admin(clients, acl_broker.port)
    boss.publish("home/alice/vault/key", "k", qos=1)
    boss.publish("public/secret", "s", qos=1)
    boss.publish("home/alice/lamp", "on", qos=1)
    boss.publish("public/notice", "hi", qos=1)
    m = alice.get()
    assert (m.topic, m.payload) == ("home/alice/lamp", b"on")
    m = anon.get()
    assert (m.topic, m.payload) == ("public/notice", b"hi")
    alice.expect_none(0.3)
    anon.expect_none(0.1)


def test_retained_messages_filtered_by_read_acl(acl_broker, clients):
    boss = admin(clients, acl_broker.port)
    boss.publish("public/secret", "s", qos=1, retain=True)
    boss.publish("public/open", "o", qos=1, retain=True)
    anon = clients(acl_broker.port)
    assert anon.subscribe("public/#", qos=1) == [1]
    m = anon.get()
    assert (m.topic, m.payload, m.retain) == ("public/open", b"o", True)
    anon.expect_none(0.3)
    boss.publish("public/secret", b"", qos=1, retain=True)
    boss.publish("public/open", b"", qos=1, retain=True)


def test_pattern_client_id(acl_broker, clients):
    watcher = admin(clients, acl_broker.port)
    assert watcher.subscribe("devices/#", qos=1) == [1]
    dev = clients.raw(acl_broker.port)
    dev.connect("dev1")  # anonymous: patterns apply to every client
    assert dev.publish("devices/dev1/temp", b"21", qos=1, packet_id=1).reason == 0
    assert dev.publish("devices/dev2/temp", b"99", qos=1, packet_id=2).reason == 0x87
    assert dev.subscribe([("devices/dev1/#", 1), ("devices/dev2/#", 1), ("devices/+/temp", 1)]).reasons == \
        [1, 0x80, 0x80]
    m = watcher.get()
    assert (m.topic, m.payload) == ("devices/dev1/temp", b"21")
    watcher.expect_none(0.3)
    # The same client id used by a named user gets the same pattern.
    dev2 = clients.raw(acl_broker.port)
    dev2.connect("dev2", username="alice")
    assert dev2.publish("devices/dev2/temp", b"22", qos=1, packet_id=1).reason == 0
    assert watcher.get().payload == b"22"


def test_pattern_username(acl_broker, clients):
    boss = admin(clients, acl_broker.port)
    alice = clients(acl_broker.port, client_id=unique_id("a"), username="alice")
    assert alice.subscribe("users/alice/inbox", qos=1) == [1]
    # Without a user name a %u pattern never applies.
    anon = clients.raw(acl_broker.port)
    anon.connect(unique_id("anon"))
    assert anon.subscribe([("users/alice/inbox", 1), ("users//inbox", 1)]).reasons == [0x80, 0x80]
    boss.publish("users/alice/inbox", "mail", qos=1)
    assert alice.get().payload == b"mail"


def test_wildcard_in_identity_refused_everything_when_patterns_exist(acl_broker, clients):
    c = clients.raw(acl_broker.port)
    c.connect("sneaky+")  # as a pattern value it would act as a wildcard
    # Even its anonymous grants; and a filter that would contain its name is not even a valid filter.
    assert c.subscribe([("public/#", 1), ("public/x", 0), ("devices/sneaky+/x", 1)]).reasons == \
        [0x80, 0x80, 0x8F]
    assert c.publish("public/x", b"x", qos=1).reason == 0x87


def test_sys_needs_explicit_grant(acl_broker, clients):
    # 'topic readwrite #' (admin) does not reach $SYS; the anonymous 'topic read $SYS/#' does.
    boss = clients.raw(acl_broker.port)
    boss.connect(unique_id("admin"), username="admin")
    assert boss.subscribe([("$SYS/broker/version", 0)]).reasons == [0x80]
    anon = clients.raw(acl_broker.port)
    anon.connect(unique_id("anon"))
    assert anon.subscribe([("$SYS/broker/version", 0)]).reasons == [0]


def test_will_to_denied_topic_not_published(acl_broker, clients):
    watcher = admin(clients, acl_broker.port)
    assert watcher.subscribe("#", qos=1) == [1]
    bad = clients.raw(acl_broker.port)
    bad.connect(unique_id("alice"), username="alice", will={"topic": "news/fake", "payload": b"w1", "qos": 1})
    good = clients.raw(acl_broker.port)
    good.connect(unique_id("alice"), username="alice",
                 will={"topic": "home/alice/status", "payload": b"gone", "qos": 1})
    bad.abort()
    good.abort()
    m = watcher.get()
    assert (m.topic, m.payload) == ("home/alice/status", b"gone")
    watcher.expect_none(0.3)


def test_shared_subscription_checked_against_inner_filter(acl_broker, clients):
    alice = clients.raw(acl_broker.port)
    alice.connect(unique_id("alice"), username="alice")
    assert alice.subscribe([("$share/g/home/alice/#", 1), ("$share/g/home/bob/#", 1)]).reasons == [1, 0x80]


def test_publish_behind_refused_connect_not_routed(pw_broker, clients):
    watcher = clients(pw_broker.port, username="alice", password="secret-1")
    topic = unique_id("smuggle")
    assert watcher.subscribe(topic, qos=1) == [1]
    for version in (4, 5):
        c = clients.raw(pw_broker.port, version=version)
        c.send(mqtt_connect(unique_id("x"), version, username="alice", password=b"bad") +
               mqtt_publish(topic, b"smuggled", qos=0, version=version))
        packets = c.recv_until_closed(3)
        assert [(p.type, p.reason) for p in packets] == [(2, 4 if version == 4 else 0x86)]
    watcher.expect_none(0.3)
    watcher.publish(topic, "real", qos=1)
    assert watcher.get().payload == b"real"
