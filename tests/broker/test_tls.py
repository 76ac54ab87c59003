"""TLS listeners (protocol "mqtts"): TLS 1.2 and 1.3, min_version, client certificates (mTLS) and user names
taken from them (username_from_cert), certificate reload on SIGHUP, and real TLS clients (Python Paho,
mosquitto_pub / mosquitto_sub with --cafile / --cert / --key).

Certificates come from tls_certs.py (a throwaway CA made with the openssl CLI), once per module; each broker
gets copies next to its config file and names them with relative paths."""
import datetime
import ipaddress
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from helpers import (CONNACK, PUBACK, PUBLISH, V311, V5, MosqSub, SocketRawClient, clients,  # noqa: F401
                     listener_ports, mqtt_connect, net_clients, tls_socket, unique_id, wait_for)
from tls_certs import make_tls_certs

TLS12, TLS13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_tls_certs(tmp_path_factory.mktemp("pki"))


def tls_listener(tls_extra="", name="tls", protocol="mqtts"):
    return """
[[listener]]
name = "{name}"
protocol = "{protocol}"
port = 0
[listener.tls]
cert_file = "server.pem"
key_file = "server.key"
ca_file = "ca.pem"
{extra}
""".format(name=name, protocol=protocol, extra=tls_extra)


def cert_files(certs):
    """The broker's copies: server certificate and key, and the CA that signs client certificates."""
    return {"server.pem": pathlib.Path(certs.server).read_text(),
            "server.key": pathlib.Path(certs.server_key).read_text(),
            "ca.pem": pathlib.Path(certs.ca).read_text()}


@pytest.fixture
def tls_broker(make_broker, certs):
    """factory(tls_extra='', auth='', files=None) -> (broker, tls port)."""
    def factory(tls_extra="", auth="", files=None):
        b = make_broker(auth=auth, extra=tls_listener(tls_extra), files={**cert_files(certs), **(files or {})})
        ports = listener_ports(b)
        assert ports["mqtt"] == b.port
        return b, ports["tls"]
    return factory


def subject_cn(peercert):
    """CN from ssl.SSLSocket.getpeercert()'s subject / issuer tuples."""
    for rdn in peercert:
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def mqtt_over(sock, version=5, **connect_kw):
    """A SocketRawClient on `sock`, CONNECTed (CONNACK 0 asserted)."""
    c = SocketRawClient(sock, version)
    c.connect(unique_id("tls"), **connect_kw)
    return c


def refused_outcome(port, **tls_kw):
    """Tries a TLS handshake, a CONNECT and reading the CONNACK. Returns a description of how the broker
    refused (handshake error, alert on first read, or close), or fails if a CONNACK arrives."""
    try:
        s = tls_socket(port, **tls_kw)
    except (ssl.SSLError, ConnectionError) as e:
        return "handshake: %r" % e
    try:
        # TLS 1.3: the server checks the client's certificate after the client's handshake is over, so the
        # refusal (an alert, then close) reaches the client on its next read.
        s.sendall(mqtt_connect(unique_id("refused"), 5))
        s.settimeout(3)
        data = s.recv(4096)
        assert not data, "broker answered a refused TLS client: %r" % data
        return "closed"
    except (ssl.SSLError, ConnectionError) as e:
        return "after handshake: %r" % e
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------------------
# Server side: versions, the certificate presented, routing across listeners


@pytest.mark.parametrize("version,name", [(TLS12, "TLSv1.2"), (TLS13, "TLSv1.3")])
def test_tls_version_and_server_certificate(tls_broker, certs, clients, version, name):
    b, port = tls_broker()
    plain = clients(b.port, version=V311)  # a plain TCP subscriber on the first listener
    topic = unique_id("tls")
    assert plain.subscribe(topic, qos=1) == [1]
    s = tls_socket(port, ca=certs.ca, min_version=version, max_version=version)
    assert s.version() == name
    peer = s.getpeercert()
    assert subject_cn(peer["subject"]) == "localhost"
    assert subject_cn(peer["issuer"]) == "Parley Test CA"
    c = mqtt_over(s, version=5)
    ack = c.publish(topic, b"over " + name.encode(), qos=1, packet_id=7)
    assert (ack.type, ack.packet_id, ack.reason) == (PUBACK, 7, 0)
    m = plain.get()
    assert (m.topic, m.payload) == (topic, b"over " + name.encode())
    # And back: the TLS client subscribes and gets what the plain one publishes.
    assert c.subscribe([(topic + "/back", 1)], packet_id=8).reasons == [1]
    plain.publish(topic + "/back", "to tls", qos=1)
    p = c.expect(PUBLISH)
    assert (p.topic, p.payload) == (topic + "/back", b"to tls")
    c.disconnect()


def test_client_that_does_not_trust_the_ca_fails(tls_broker, certs):
    _, port = tls_broker()
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_socket(port, ca=certs.other_ca)
    # The certificate is for localhost / 127.0.0.1 only.
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_socket(port, ca=certs.ca, server_hostname="parley.example")


@pytest.mark.parametrize("version", [V311, V5])
def test_paho_over_tls(tls_broker, certs, net_clients, version):
    _, port = tls_broker()
    tls = dict(ca_certs=certs.ca)
    sub = net_clients(port, tls=tls, version=version, client_id=unique_id("sub"))
    pub = net_clients(port, tls=tls, version=version, host="localhost")  # hostname checked against DNS SAN
    topic = unique_id("paho-tls")
    assert sub.subscribe(topic + "/#", qos=2) == [2]
    for qos in (0, 1, 2):
        pub.publish("%s/%d" % (topic, qos), "q%d" % qos, qos=qos)
    got = sorted((m.topic, m.payload, m.qos) for m in sub.get_n(3))
    assert got == [("%s/%d" % (topic, q), b"q%d" % q, q) for q in (0, 1, 2)]
    big = os.urandom(300 * 1024)  # many TLS records
    pub.publish(topic + "/big", big, qos=1)
    assert sub.get().payload == big


def test_min_version_13_refuses_tls12(tls_broker, certs):
    b, port = tls_broker('min_version = "1.3"')
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_socket(port, ca=certs.ca, max_version=TLS12).close()
    s = tls_socket(port, ca=certs.ca)
    assert s.version() == "TLSv1.3"
    mqtt_over(s).disconnect()
    assert b.alive()


def test_plain_mqtt_on_tls_port_gets_no_connack(tls_broker, clients):
    b, port = tls_broker()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(mqtt_connect(unique_id("plain"), 4))
        s.settimeout(3)
        data = b""
        deadline = time.time() + 3
        while True:
            assert time.time() < deadline, "broker kept the connection open after non-TLS bytes: %r" % data
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert b"\x20\x02" not in data, data  # no CONNACK; at most a TLS alert
    except ConnectionResetError:
        pass
    finally:
        s.close()
    # The broker goes on serving both listeners.
    assert b.alive()
    clients(b.port)


# ---------------------------------------------------------------------------------------------------------
# Client certificates


def test_mtls_client_certificate_from_ca_accepted(tls_broker, certs, net_clients):
    _, port = tls_broker("require_client_cert = true")
    tls = dict(ca_certs=certs.ca, certfile=certs.client, keyfile=certs.client_key)
    sub = net_clients(port, tls=tls, version=V5)
    pub = net_clients(port, tls=tls, version=V311)
    topic = unique_id("mtls")
    assert sub.subscribe(topic, qos=1) == [1]
    pub.publish(topic, "with a certificate", qos=1)
    assert sub.get().payload == b"with a certificate"
    for version in (TLS12, TLS13):
        s = tls_socket(port, ca=certs.ca, cert=certs.client_san, key=certs.client_san_key,
                       min_version=version, max_version=version)
        mqtt_over(s, version=4).disconnect()


@pytest.mark.parametrize("version", [TLS12, TLS13], ids=["tls1.2", "tls1.3"])
@pytest.mark.parametrize("which", ["other_ca", "expired", "none"])
def test_mtls_refuses_bad_or_missing_client_certificate(tls_broker, certs, clients, which, version):
    b, port = tls_broker("require_client_cert = true")
    cert = {"other_ca": (certs.other_client, certs.other_client_key),
            "expired": (certs.expired_client, certs.expired_client_key),
            "none": (None, None)}[which]
    how = refused_outcome(port, ca=certs.ca, cert=cert[0], key=cert[1], min_version=version,
                          max_version=version)
    print(which, version, "->", how)
    # The alert says why. TLS 1.2 fails in the handshake; TLS 1.3 on the client's first read after it.
    alert = {"other_ca": "UNKNOWN_CA", "expired": "CERTIFICATE_EXPIRED",
             "none": "HANDSHAKE_FAILURE" if version == TLS12 else "CERTIFICATE_REQUIRED"}[which]
    assert alert in how, how
    assert how.startswith("handshake:" if version == TLS12 else "after handshake:"), how
    assert b.alive()
    # A good certificate still works afterwards, and so does the plain listener.
    s = tls_socket(port, ca=certs.ca, cert=certs.client, key=certs.client_key)
    mqtt_over(s).disconnect()
    clients(b.port)


# Rules before the first "user" line are for clients without a user name: the watcher below. A broker that takes
# user names from certificates no longer takes a bare user name in CONNECT on trust, so it connects anonymously.
ACL_ALICE = """\
topic readwrite #

user alice
topic readwrite alice/#

user bob.example
topic readwrite bob/#
"""


def test_username_from_cert_cn_is_the_user_name(tls_broker, certs, clients):
    b, port = tls_broker('require_client_cert = true\nusername_from_cert = "cn"', auth='acl_file = "acl"',
                         files={"acl": ACL_ALICE})
    watcher = clients(b.port)  # plain listener, anonymous
    assert watcher.subscribe("#", qos=1) == [1]
    alice = mqtt_over(tls_socket(port, ca=certs.ca, cert=certs.client, key=certs.client_key))  # CN=alice
    assert alice.publish("alice/door", b"open", qos=1, packet_id=1).reason == 0
    assert alice.publish("bob/door", b"forged", qos=1, packet_id=2).reason == 0x87
    assert alice.subscribe([("alice/#", 1), ("bob/#", 1), ("#", 0)], packet_id=3).reasons == [1, 0x80, 0x80]
    # CN=bob is not "alice", whatever user name the client puts in CONNECT: the certificate decides.
    bob = mqtt_over(tls_socket(port, ca=certs.ca, cert=certs.client_san, key=certs.client_san_key),
                    username="alice", password=b"ignored")
    assert bob.publish("alice/door", b"forged", qos=1, packet_id=1).reason == 0x87
    assert bob.subscribe([("alice/#", 1)], packet_id=2).reasons == [0x80]
    m = watcher.get()
    assert (m.topic, m.payload) == ("alice/door", b"open")
    watcher.expect_none(0.3)
    # Delivery to alice is checked against her name too.
    watcher.publish("alice/door", "closed", qos=1)
    p = alice.expect(PUBLISH)
    assert (p.topic, p.payload) == ("alice/door", b"closed")


def test_username_from_cert_san(tls_broker, certs, clients):
    b, port = tls_broker('require_client_cert = true\nusername_from_cert = "san"', auth='acl_file = "acl"',
                         files={"acl": ACL_ALICE})
    watcher = clients(b.port)
    assert watcher.subscribe("#", qos=1) == [1]
    # client-san: CN=bob, SAN DNS:bob.example (preferred) and email:bob@example.com.
    bob = mqtt_over(tls_socket(port, ca=certs.ca, cert=certs.client_san, key=certs.client_san_key))
    assert bob.publish("bob/x", b"mine", qos=1, packet_id=1).reason == 0
    assert bob.publish("alice/x", b"forged", qos=1, packet_id=2).reason == 0x87
    # A bare user name in CONNECT is not taken on trust while certificates name users (no password store).
    impostor = clients.raw(b.port)
    assert impostor.connect("impostor", username="bob.example", expect_reason=None).reason == 0x86
    # The alice certificate has no subjectAltName: no name to take, so it cannot connect.
    how = refused_outcome_connack(port, certs.ca, certs.client, certs.client_key)
    print("alice without SAN ->", how)
    m = watcher.get()
    assert (m.topic, m.payload) == ("bob/x", b"mine")
    watcher.expect_none(0.3)


def refused_outcome_connack(port, ca, cert, key):
    """For a certificate the TLS layer verifies but that carries no usable name: the broker must not let it
    in. Returns what happened (handshake failure, close, or a refusing CONNACK)."""
    try:
        s = tls_socket(port, ca=ca, cert=cert, key=key)
    except (ssl.SSLError, ConnectionError) as e:
        return "handshake: %r" % e
    c = SocketRawClient(s, 5)
    try:
        c.send(mqtt_connect(unique_id("noname"), 5))
        p = c.recv(3)
        assert p.type == CONNACK and p.reason >= 0x80, "a certificate without a SAN got in: %r" % p
        return "CONNACK %#x" % p.reason
    except (ssl.SSLError, ConnectionError, EOFError) as e:
        return "closed: %r" % e
    except Exception as e:  # helpers.ConnectionClosed
        if type(e).__name__ == "ConnectionClosed":
            return "closed"
        raise
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------------------
# SIGHUP: certificate reload


def issue_server_cert(certs, cn):
    """A new server certificate for localhost / 127.0.0.1 with subject CN=`cn`, signed by the test CA.
    Returns (cert PEM text, key PEM text)."""
    ca_cert = x509.load_pem_x509_certificate(pathlib.Path(certs.ca).read_bytes())
    ca_key = serialization.load_pem_private_key(pathlib.Path(certs.ca_key).read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Parley tests"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def replace_file(path, text):
    """Writes `text` to `path` atomically (a reload must never see half a file)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def sighup_and_wait(b, what, timeout=5):
    before = b.log().count(what)
    b.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: b.log().count(what) > before, timeout), \
        "no %r in the log after SIGHUP:\n%s" % (what, b.log()[-3000:])


def test_sighup_reloads_certificate(tls_broker, certs, net_clients):
    b, port = tls_broker()
    tls = dict(ca_certs=certs.ca)
    topic = unique_id("reload")
    old = net_clients(port, tls=tls, client_id=unique_id("old"))  # connected before the reload
    assert old.subscribe(topic, qos=1) == [1]
    s = tls_socket(port, ca=certs.ca)
    assert subject_cn(s.getpeercert()["subject"]) == "localhost"
    s.close()

    cert, key = issue_server_cert(certs, "reloaded.localhost")
    replace_file(b.dir / "server.key", key)
    replace_file(b.dir / "server.pem", cert)
    sighup_and_wait(b, "certificate reloaded")

    s = tls_socket(port, ca=certs.ca)
    assert subject_cn(s.getpeercert()["subject"]) == "reloaded.localhost"
    new = mqtt_over(s)
    # The connection made before the reload keeps working, both ways.
    assert new.publish(topic, b"after reload", qos=1, packet_id=1).reason == 0
    assert old.get().payload == b"after reload"
    assert new.subscribe([(topic + "/old", 1)], packet_id=2).reasons == [1]
    old.publish(topic + "/old", "from the old connection", qos=1)
    assert new.expect(PUBLISH).payload == b"from the old connection"
    assert b.alive()


def test_sighup_with_broken_certificate_keeps_the_old_one(tls_broker, certs, net_clients):
    b, port = tls_broker()
    replace_file(b.dir / "server.pem", "-----BEGIN CERTIFICATE-----\nnot a certificate\n"
                                       "-----END CERTIFICATE-----\n")
    sighup_and_wait(b, "keeping the previous certificate")
    assert b.alive()
    s = tls_socket(port, ca=certs.ca)
    assert subject_cn(s.getpeercert()["subject"]) == "localhost"
    mqtt_over(s).disconnect()
    # A key that does not match the certificate is refused the same way.
    cert, _ = issue_server_cert(certs, "mismatch.localhost")
    replace_file(b.dir / "server.pem", cert)  # server.key is still the old key
    sighup_and_wait(b, "keeping the previous certificate")
    s = tls_socket(port, ca=certs.ca)
    assert subject_cn(s.getpeercert()["subject"]) == "localhost"
    s.close()


# ---------------------------------------------------------------------------------------------------------
# mosquitto_pub / mosquitto_sub (Debian mosquitto-clients)


def test_mosquitto_pub_tls_to_paho_subscriber(tls_broker, certs, net_clients):
    _, port = tls_broker()
    sub = net_clients(port, tls=dict(ca_certs=certs.ca), version=V311)
    topic = unique_id("mosq-tls")
    assert sub.subscribe(topic, qos=1) == [1]
    for version in ("mqttv311", "mqttv5"):
        r = subprocess.run(["mosquitto_pub", "--cafile", certs.ca, "-h", "localhost", "-p", str(port),
                            "-V", version, "-t", topic, "-m", "hello " + version, "-q", "1"],
                           capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr
        m = sub.get()
        assert (m.topic, m.payload) == (topic, b"hello " + version.encode())
    # Without trusting our CA mosquitto_pub refuses the server.
    r = subprocess.run(["mosquitto_pub", "--cafile", certs.other_ca, "-h", "localhost", "-p", str(port),
                        "-t", topic, "-m", "x"], capture_output=True, timeout=10)
    assert r.returncode != 0
    sub.expect_none(0.3)


def test_mosquitto_sub_with_client_certificate(tls_broker, certs, net_clients):
    _, port = tls_broker("require_client_cert = true")
    topic = unique_id("mosq-mtls")
    tls_args = ["--cafile", certs.ca, "--cert", certs.client, "--key", certs.client_key, "-h", "localhost"]
    sub = MosqSub(port, topic, qos=1, version="mqttv5", extra=tls_args)
    try:
        pub = net_clients(port, tls=dict(ca_certs=certs.ca, certfile=certs.client, keyfile=certs.client_key))
        pub.publish(topic, "to mosquitto_sub", qos=1)
        m = sub.get()
        assert (m["topic"], m["payload"], m["qos"]) == (topic, "to mosquitto_sub", 1)
    finally:
        sub.stop()
    # mosquitto_pub with a certificate goes through; without one it is refused.
    r = subprocess.run(["mosquitto_pub", "-p", str(port), "-t", topic, "-m", "x", *tls_args],
                       capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(["mosquitto_pub", "-p", str(port), "-t", topic, "-m", "x", "--cafile", certs.ca,
                        "-h", "localhost"], capture_output=True, timeout=10)
    assert r.returncode != 0
