"""Token and challenge authentication: JSON Web Tokens as the MQTT password ([auth.jwt]: HS256, RS256, ES256;
exp / leeway, the user name claim, an ACL claim, disconnection when the token expires) and SCRAM-SHA-256 as
MQTT 5 enhanced authentication (CONNECT / AUTH / CONNACK carrying RFC 5802 messages, re-authentication).

Tokens are made with PyJWT and keys with python3-cryptography, here in the test; SCRAM is driven with raw
MQTT 5 packets (Paho 1.6 cannot send AUTH) and tests/broker/scram.py."""
import base64
import hashlib
import hmac
import json
import secrets
import subprocess
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from helpers import (AUTH, CONNACK, DISCONNECT, PUBLISH, P_AUTH_DATA, P_AUTH_METHOD,  # noqa: F401
                     V311, V5, auth_fields, clients, mqtt_auth, mqtt_connect, unique_id)
from scram import ScramClient, make_verifier_line

# ---------------------------------------------------------------------------------------------------------
# JWT


class Keys:
    """Signing keys per algorithm (and a second, wrong one of each), plus what the broker is given."""

    def __init__(self):
        self.hs_secret = secrets.token_urlsafe(48)   # 64 characters, above the 32-byte minimum
        self.hs_wrong = secrets.token_urlsafe(48)
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rsa_wrong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ec_wrong = ec.generate_private_key(ec.SECP256R1())

    def signing(self, alg, wrong=False):
        return {"HS256": (self.hs_secret, self.hs_wrong), "RS256": (self.rsa, self.rsa_wrong),
                "ES256": (self.ec, self.ec_wrong)}[alg][1 if wrong else 0]

    def public_pem(self, alg):
        key = {"RS256": self.rsa, "ES256": self.ec}[alg]
        return key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture
def jwt_broker(make_broker, keys):
    """factory(alg, leeway='0s', acl_claim=None, acl_file=None, allow_anonymous=False) -> broker."""
    def factory(alg="HS256", leeway="0s", acl_claim=None, acl_file=None, allow_anonymous=False):
        files = {}
        lines = ["allow_anonymous = %s" % ("true" if allow_anonymous else "false")]
        if acl_file is not None:
            lines.append('acl_file = "acl"')
            files["acl"] = acl_file
        lines += ["[auth.jwt]", 'algorithm = "%s"' % alg]
        if alg == "HS256":
            lines.append('secret_file = "jwt.secret"')
            files["jwt.secret"] = keys.hs_secret + "\n"
        else:
            lines.append('public_key_file = "jwt.pub"')
            files["jwt.pub"] = keys.public_pem(alg)
        if leeway is not None:
            lines.append('leeway = "%s"' % leeway)
        if acl_claim:
            lines.append('acl_claim = "%s"' % acl_claim)
        b = make_broker(auth="\n".join(lines), files=files)
        assert "auth: JWT passwords (%s)" % alg in b.log()
        return b
    return factory


def make_token(keys, alg="HS256", sub="alice", exp_in=300, wrong_key=False, **claims):
    payload = {"sub": sub, "iat": int(time.time()), **claims}
    if exp_in is not None:
        payload["exp"] = int(time.time()) + exp_in
    if sub is None:
        del payload["sub"]
    return jwt.encode(payload, keys.signing(alg, wrong_key), algorithm=alg)


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_token(header, payload, signature=b""):
    return "%s.%s.%s" % (b64url(json.dumps(header)), b64url(json.dumps(payload)), b64url(signature))


def expect_refused(clients, port, token, username=None, v311_username="alice"):
    """The token is refused with "bad user name or password": v5 CONNACK 0x86, 3.1.1 CONNACK 4 (3.1.1 needs
    a user name to carry a password), and the connection is closed."""
    c5 = clients.raw(port, version=5)
    c5.connect(unique_id("jwt"), username=username, password=token, expect_reason=0x86)
    assert c5.is_closed(2)
    c4 = clients.raw(port, version=4)
    c4.connect(unique_id("jwt"), username=v311_username, password=token, expect_reason=4)
    assert c4.is_closed(2)


ALGS = ["HS256", "RS256", "ES256"]


@pytest.mark.parametrize("alg", ALGS)
def test_jwt_valid_token_connects(jwt_broker, keys, clients, alg):
    b = jwt_broker(alg)
    token = make_token(keys, alg)
    assert token.count(".") == 2
    clients.raw(b.port, version=5).connect(unique_id("jwt"), password=token)          # no user name (v5)
    clients.raw(b.port, version=5).connect(unique_id("jwt"), username="alice", password=token)
    clients.raw(b.port, version=4).connect(unique_id("jwt"), username="alice", password=token)
    # A user name, when given, must be the one the token names.
    expect_refused(clients, b.port, token, username="bob", v311_username="bob")
    # No token at all: anonymous access is off.
    clients.raw(b.port, version=5).connect(unique_id("jwt"), expect_reason=0x87)
    # End to end with Paho, both protocol versions.
    topic = unique_id("jwt")
    sub = clients(b.port, version=V5, username="alice", password=token)
    assert sub.subscribe(topic, qos=1) == [1]
    pub = clients(b.port, version=V311, username="alice", password=token)
    pub.publish(topic, "signed " + alg, qos=1)
    assert sub.get().payload == b"signed " + alg.encode()


def test_jwt_with_mosquitto_pub(jwt_broker, keys, clients):
    b = jwt_broker("ES256")
    token = make_token(keys, "ES256", sub="device-7")
    topic = unique_id("jwt-mosq")
    sub = clients(b.port, username="device-7", password=token)
    assert sub.subscribe(topic, qos=1) == [1]
    for version in ("mqttv311", "mqttv5"):
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-V", version, "-u", "device-7",
                            "-P", token, "-t", topic, "-m", version, "-q", "1"], capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr
        assert sub.get().payload == version.encode()
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-u", "device-7",
                        "-P", make_token(keys, "ES256", sub="device-7", exp_in=-10), "-t", topic, "-m", "late"],
                       capture_output=True, timeout=10)
    assert r.returncode != 0
    sub.expect_none(0.3)


def test_jwt_sub_claim_is_the_user_name(jwt_broker, keys, clients):
    b = jwt_broker("HS256", acl_file="user alice\ntopic readwrite alice/#\n")
    c = clients.raw(b.port)
    c.connect(unique_id("jwt"), password=make_token(keys, "HS256", sub="alice"))  # no user name in CONNECT
    assert c.publish("alice/x", b"ok", qos=1, packet_id=1).reason == 0x10  # allowed; no subscribers
    assert c.publish("bob/x", b"no", qos=1, packet_id=2).reason == 0x87
    c = clients.raw(b.port)
    c.connect(unique_id("jwt"), password=make_token(keys, "HS256", sub="bob"))
    assert c.publish("alice/x", b"no", qos=1, packet_id=1).reason == 0x87


def test_jwt_expired_or_not_yet_valid_refused(jwt_broker, keys, clients):
    b = jwt_broker("HS256", leeway="0s")
    expect_refused(clients, b.port, make_token(keys, "HS256", exp_in=-5))
    expect_refused(clients, b.port, make_token(keys, "HS256", exp_in=-1))
    expect_refused(clients, b.port, make_token(keys, "HS256", nbf=int(time.time()) + 60))
    expect_refused(clients, b.port, make_token(keys, "HS256", exp_in=None))  # no exp: valid forever, refused
    clients.raw(b.port).connect(unique_id("jwt"), password=make_token(keys, "HS256", exp_in=5))


def test_jwt_leeway(jwt_broker, keys, clients):
    b = jwt_broker("HS256", leeway="30s")
    clients.raw(b.port).connect(unique_id("jwt"), password=make_token(keys, "HS256", exp_in=-10))
    expect_refused(clients, b.port, make_token(keys, "HS256", exp_in=-40))


def test_jwt_alg_none_and_algorithm_confusion_refused(jwt_broker, keys, clients):
    now = int(time.time())
    claims = {"sub": "alice", "exp": now + 300}
    hs = jwt_broker("HS256")
    for alg in ("none", "None", "NONE", "hs256"):
        expect_refused(clients, hs.port, hand_made_token({"alg": alg, "typ": "JWT"}, claims))
        expect_refused(clients, hs.port, hand_made_token({"alg": alg, "typ": "JWT"}, claims, b"sig"))
    # A correct HS256 header with no signature.
    expect_refused(clients, hs.port, hand_made_token({"alg": "HS256", "typ": "JWT"}, claims))
    # A token signed with another algorithm the broker is not configured for.
    expect_refused(clients, hs.port, make_token(keys, "RS256"))
    # RS256 broker: an HS256 token keyed with the broker's own public key PEM (the classic confusion).
    rs = jwt_broker("RS256")
    signing_input = "%s.%s" % (b64url(json.dumps({"alg": "HS256", "typ": "JWT"})), b64url(json.dumps(claims)))
    for secret in (keys.public_pem("RS256"), keys.public_pem("RS256").strip()):
        mac = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
        expect_refused(clients, rs.port, signing_input + "." + b64url(mac))
    expect_refused(clients, rs.port, hand_made_token({"alg": "none"}, claims))
    clients.raw(rs.port).connect(unique_id("jwt"), password=make_token(keys, "RS256"))


@pytest.mark.parametrize("alg", ALGS)
def test_jwt_wrong_key_or_tampered_token_refused(jwt_broker, keys, clients, alg):
    b = jwt_broker(alg)
    expect_refused(clients, b.port, make_token(keys, alg, wrong_key=True))
    # A real token whose payload was changed after signing (sub: alice -> admin).
    header, payload, sig = make_token(keys, alg).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin"
    expect_refused(clients, b.port, "%s.%s.%s" % (header, b64url(json.dumps(claims)), sig),
                   v311_username="admin")
    # The untouched token still works.
    clients.raw(b.port).connect(unique_id("jwt"), password=make_token(keys, alg))


def test_jwt_acl_claim_enforced(jwt_broker, keys, clients):
    b = jwt_broker("HS256", acl_claim="acl")
    alice_token = make_token(keys, "HS256", sub="alice",
                             acl={"pub": ["dev/alice/#"], "sub": ["dev/alice/#", "broadcast/+"]})
    admin_token = make_token(keys, "HS256", sub="admin", acl={"pub": ["#"], "sub": ["#"]})
    watcher = clients(b.port, username="admin", password=admin_token)
    assert watcher.subscribe("#", qos=1) == [1]
    alice = clients.raw(b.port)
    alice.connect(unique_id("alice"), password=alice_token)
    assert alice.publish("dev/alice/temp", b"21", qos=1, packet_id=1).reason == 0
    assert alice.publish("dev/bob/temp", b"forged", qos=1, packet_id=2).reason == 0x87
    assert alice.publish("broadcast/news", b"forged", qos=1, packet_id=3).reason == 0x87  # sub-only
    assert alice.subscribe([("dev/alice/#", 1), ("dev/bob/#", 1), ("broadcast/+", 1), ("broadcast/#", 1),
                            ("#", 0)], packet_id=4).reasons == [1, 0x80, 1, 0x80, 0x80]
    m = watcher.get()
    assert (m.topic, m.payload) == ("dev/alice/temp", b"21")
    watcher.expect_none(0.3)
    watcher.publish("broadcast/news", "hello", qos=1)
    p = alice.expect(PUBLISH)
    assert (p.topic, p.payload) == ("broadcast/news", b"hello")
    assert watcher.get().topic == "broadcast/news"  # its own, through "#"
    # 3.1.1: the refused publish is dropped silently; the subscription is refused with 0x80.
    a4 = clients.raw(b.port, version=4)
    a4.connect(unique_id("alice"), username="alice", password=alice_token)
    a4.publish("dev/bob/temp", b"forged", qos=1, packet_id=1)
    assert a4.subscribe([("dev/bob/#", 1)], packet_id=2).reasons == [0x80]
    watcher.expect_none(0.3)
    # With acl_claim set, a token without the claim (or with a malformed one) is refused: fail closed.
    expect_refused(clients, b.port, make_token(keys, "HS256", sub="alice"))
    expect_refused(clients, b.port, make_token(keys, "HS256", sub="alice", acl=["dev/#"]))


def test_jwt_expiry_while_connected_disconnects_with_0xA0(jwt_broker, keys, clients):
    b = jwt_broker("HS256", leeway="0s")
    exp = int(time.time()) + 3
    token = make_token(keys, "HS256", exp_in=None, exp=exp)
    c5 = clients.raw(b.port, version=5)
    c5.connect(unique_id("exp5"), password=token)
    c4 = clients.raw(b.port, version=4)
    c4.connect(unique_id("exp4"), username="alice", password=token)
    topic = unique_id("exp")
    assert c5.subscribe([(topic, 0)]).reasons == [0]  # works while the token is valid
    # Nothing before exp (the broker checks once a second).
    assert c5.no_packet(max(0.05, exp - time.time() - 0.3))
    p = c5.recv(timeout=exp + 2.5 - time.time())
    at = time.time()
    assert (p.type, p.reason) == (DISCONNECT, 0xA0), p  # Maximum connect time
    print("DISCONNECT 0xA0 %.3f s after exp" % (at - exp))
    assert exp - 0.05 <= at <= exp + 1.5, "disconnected %.2f s after exp" % (at - exp)
    assert c5.is_closed(2)
    assert c4.is_closed(max(0.1, exp + 2 - time.time()))  # 3.1.1: closed, no DISCONNECT to send
    # The same token cannot come back.
    expect_refused(clients, b.port, token)
    # A fresh one can.
    clients.raw(b.port).connect(unique_id("exp5"), password=make_token(keys, "HS256", exp_in=60))


# ---------------------------------------------------------------------------------------------------------
# SCRAM-SHA-256 (MQTT 5 enhanced authentication)

SCRAM = "SCRAM-SHA-256"
USERS = {"alice": "correct horse", "bob": "b0b's pass, with = and ,"}


@pytest.fixture
def scram_broker(make_broker):
    lines = "\n".join(make_verifier_line(u, p) for u, p in USERS.items()) + "\n"
    b = make_broker(auth='scram_file = "scram.txt"\nacl_file = "acl"',
                    files={"scram.txt": "# test users\n" + lines,
                           "acl": "user alice\ntopic readwrite alice/#\n\nuser bob\ntopic readwrite bob/#\n\n"
                                  "topic readwrite anon/#\n"})
    assert "SCRAM-SHA-256 enhanced authentication, 2 users" in b.log(), b.log()[-2000:]
    return b


def scram_start(clients, port, user, method=SCRAM, client_id=None, scram=None):
    """Sends CONNECT with the client-first message; returns (raw client, ScramClient, first reply packet)."""
    scram = scram or ScramClient()
    c = clients.raw(port, version=5)
    c.send(mqtt_connect(client_id or unique_id("scram"), 5,
                        props=[(P_AUTH_METHOD, method), (P_AUTH_DATA, scram.client_first(user))]))
    return c, scram, c.recv()


def server_first_of(p):
    reason, props = auth_fields(p)
    assert reason == 0x18, p  # Continue authentication
    assert props.get(P_AUTH_METHOD) == SCRAM, props
    return props[P_AUTH_DATA]


def scram_connect(clients, port, user, password, client_id=None):
    """The whole exchange; returns (raw client, ScramClient, CONNACK)."""
    c, scram, p = scram_start(clients, port, user, client_id=client_id)
    server_first = server_first_of(p)
    c.send(mqtt_auth(0x18, [(P_AUTH_METHOD, SCRAM), (P_AUTH_DATA, scram.client_final(server_first, password))]))
    return c, scram, c.expect(CONNACK)


def test_scram_success_and_server_proof(scram_broker, clients):
    for user, password in USERS.items():
        c, scram, ack = scram_connect(clients, scram_broker.port, user, password)
        assert ack.reason == 0, ack
        assert ack.props.get(P_AUTH_METHOD) == SCRAM, ack
        server_final = ack.props[P_AUTH_DATA]
        assert server_final.startswith(b"v="), server_final
        assert scram.verify_server_final(server_final), "the broker's ServerSignature does not verify"
        assert scram.iterations == 4096
        # The connection works, as the SCRAM user: the ACL names the user the exchange proved.
        topic = "%s/%s" % (user, unique_id("t"))
        assert c.subscribe([(topic, 1)], packet_id=1).reasons == [1]
        assert c.publish(topic, b"hi " + user.encode(), qos=1, packet_id=2).reason == 0
        p = c.expect(PUBLISH)
        assert (p.topic, p.payload) == (topic, b"hi " + user.encode())
        other = "bob/x" if user == "alice" else "alice/x"
        assert c.publish(other, b"forged", qos=1, packet_id=3).reason == 0x87
        assert c.subscribe([(other, 1)], packet_id=4).reasons == [0x80]


def test_scram_wrong_password_refused(scram_broker, clients):
    c, scram, ack = scram_connect(clients, scram_broker.port, "alice", "wrong horse")
    assert ack.reason == 0x87, ack  # Not authorized
    print("CONNACK properties on a wrong password:", ack.props)
    assert c.is_closed(2)
    # A client that gives up after the server-first gets no CONNACK 0 either way; the broker stays up.
    assert scram_broker.alive()


def test_scram_unknown_user_same_shape(scram_broker, clients):
    _, _, p_real = scram_start(clients, scram_broker.port, "alice")
    real = dict(a.split("=", 1) for a in server_first_of(p_real).decode().split(","))
    c, scram, p = scram_start(clients, scram_broker.port, "mallory")
    first = server_first_of(p)  # an AUTH 0x18 like a real user's: no early refusal
    fake = dict(a.split("=", 1) for a in first.decode().split(","))
    assert set(fake) == set(real) == {"r", "s", "i"}
    assert fake["i"] == real["i"]
    assert len(base64.b64decode(fake["s"])) == len(base64.b64decode(real["s"]))
    c.send(mqtt_auth(0x18, [(P_AUTH_METHOD, SCRAM), (P_AUTH_DATA, scram.client_final(first, "anything"))]))
    ack = c.expect(CONNACK)
    assert ack.reason == 0x87, ack
    assert c.is_closed(2)
    # The fake salt is the same on every attempt (a changing salt would tell the user does not exist).
    _, _, p2 = scram_start(clients, scram_broker.port, "mallory")
    again = dict(a.split("=", 1) for a in server_first_of(p2).decode().split(","))
    assert again["s"] == fake["s"]


def test_scram_unknown_method_refused(scram_broker, clients):
    c = clients.raw(scram_broker.port, version=5)
    c.send(mqtt_connect(unique_id("foo"), 5, props=[(P_AUTH_METHOD, "FOO"), (P_AUTH_DATA, b"whatever")]))
    ack = c.expect(CONNACK)
    assert ack.reason == 0x8C, ack  # Bad authentication method
    assert c.is_closed(2)
    c = clients.raw(scram_broker.port, version=5)
    c.send(mqtt_connect(unique_id("foo"), 5, props=[(P_AUTH_METHOD, "scram-sha-256")]))  # names are exact
    assert c.expect(CONNACK).reason == 0x8C


@pytest.mark.parametrize("version", [4, 5])
def test_scram_user_name_cannot_be_claimed_without_scram(scram_broker, clients, version):
    # The SCRAM file is a credential store for alice: a plain CONNECT that only *says* "alice" (with her
    # password or any other) proves nothing and must not get alice's permissions. Refusing the CONNECT
    # (bad user name or password) or treating it as anonymous would both do; acting as alice must not.
    c = clients.raw(scram_broker.port, version=version)
    ack = c.connect(unique_id("plain"), username="alice", password=b"not checked", expect_reason=None)
    print("plain CONNECT naming a SCRAM user ->", ack)
    if ack.reason == 0:
        topic = "alice/" + unique_id("claimed")
        if version == 5:
            assert c.publish(topic, b"forged", qos=1, packet_id=1).reason == 0x87, \
                "a plain CONNECT with user name alice got alice's ACL permissions"
        assert c.subscribe([(topic, 1)], packet_id=2).reasons == [0x80], \
            "a plain CONNECT with user name alice got alice's ACL permissions"


def test_scram_reauthentication(scram_broker, clients):
    c, _, ack = scram_connect(clients, scram_broker.port, "alice", USERS["alice"])
    assert ack.reason == 0
    # AUTH 0x19 (Re-authenticate) with a new client-first, then the same exchange, ending in AUTH 0x00.
    again = ScramClient()
    c.send(mqtt_auth(0x19, [(P_AUTH_METHOD, SCRAM), (P_AUTH_DATA, again.client_first("alice"))]))
    first = server_first_of(c.expect(AUTH))
    c.send(mqtt_auth(0x18, [(P_AUTH_METHOD, SCRAM), (P_AUTH_DATA, again.client_final(first, USERS["alice"]))]))
    reason, props = auth_fields(c.expect(AUTH))
    assert reason == 0x00, props
    assert again.verify_server_final(props[P_AUTH_DATA])
    topic = "alice/" + unique_id("re")
    assert c.subscribe([(topic, 1)], packet_id=1).reasons == [1]
    assert c.publish(topic, b"still here", qos=1, packet_id=2).reason == 0
    assert c.expect(PUBLISH).payload == b"still here"
    # A failed re-authentication ends the connection: DISCONNECT 0x87.
    bad = ScramClient()
    c.send(mqtt_auth(0x19, [(P_AUTH_METHOD, SCRAM), (P_AUTH_DATA, bad.client_first("alice"))]))
    first = server_first_of(c.expect(AUTH))
    c.send(mqtt_auth(0x18, [(P_AUTH_METHOD, SCRAM), (P_AUTH_DATA, bad.client_final(first, "wrong"))]))
    p = c.expect(DISCONNECT)
    assert p.reason == 0x87, p
    assert c.is_closed(2)
