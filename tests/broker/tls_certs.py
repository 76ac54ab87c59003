"""A throwaway PKI for the TLS broker tests, made with the `openssl` command line tool.

    from tls_certs import make_tls_certs
    certs = make_tls_certs(tmp_path)        # a fresh set per call; nothing is cached
    # broker:  cert_file = certs.server, key_file = certs.server_key, ca_file = certs.ca
    # clients: mosquitto_pub --cafile certs.ca --cert certs.client --key certs.client_key ...
    #          paho: client.tls_set(ca_certs=certs.ca, certfile=certs.client, keyfile=certs.client_key)

Keys are P-256 (fast to make, supported by every client we test with). Certificates are valid from an hour
ago for two days, except the expired one. Standard library + `openssl` (Debian's openssl package) only; runs
under /usr/bin/python3.
"""
import dataclasses
import datetime
import pathlib
import shutil
import subprocess

__all__ = ["TlsCerts", "make_tls_certs"]


@dataclasses.dataclass(frozen=True)
class TlsCerts:
    """Paths (str) of the PEM files make_tls_certs() wrote."""
    ca: str                  # "Parley Test CA": signs server, client, client_san, expired_client
    ca_key: str
    server: str              # CN=localhost; SAN DNS:localhost, IP:127.0.0.1, IP:::1; serverAuth
    server_key: str
    client: str              # CN=alice; clientAuth
    client_key: str
    client_san: str          # CN=bob; SAN DNS:bob.example, email:bob@example.com; clientAuth
    client_san_key: str
    other_ca: str            # an unrelated CA
    other_ca_key: str
    other_client: str        # CN=mallory, signed by other_ca
    other_client_key: str
    expired_client: str      # CN=old, signed by ca, expired yesterday
    expired_client_key: str


_CONFIG = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused

[ ca ]
default_ca = test_ca
[ test_ca ]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[ policy_any ]
commonName = supplied
organizationName = optional

[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
[ v3_client ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ v3_client_san ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:bob.example, email:bob@example.com
"""


def _asn1_time(t):
    return t.strftime("%Y%m%d%H%M%SZ")


class _Maker:
    def __init__(self, directory):
        self.dir = pathlib.Path(directory)
        self.work = self.dir / ".openssl-ca"  # openssl ca's database: index, serial, copies of what it issued
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "index.txt").write_text("")
        (self.work / "serial").write_text("1000\n")
        self.config = self.work / "openssl.cnf"
        self.config.write_text(_CONFIG.format(dir=self.work))
        self.openssl = shutil.which("openssl") or "/usr/bin/openssl"
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        self.valid = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2))
        self.expired = (now - datetime.timedelta(days=3), now - datetime.timedelta(days=1))

    def run(self, *args):
        # OPENSSL_CONF: our config only, whatever the system's says about defaults and prompts.
        proc = subprocess.run([self.openssl, *args], capture_output=True, text=True,
                              env={"OPENSSL_CONF": str(self.config), "PATH": "/usr/bin:/bin"})
        if proc.returncode != 0:
            raise RuntimeError("openssl %s failed (exit %d): %s" % (" ".join(args), proc.returncode,
                                                                   proc.stderr.strip()))

    def make(self, name, cn, extensions, issuer=None, dates=None):
        """Writes <name>.key and <name>.pem; `issuer` is the (cert, key) pair to sign with, None = self."""
        key, cert, csr = self.dir / (name + ".key"), self.dir / (name + ".pem"), self.work / (name + ".csr")
        self.run("req", "-config", str(self.config), "-new", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(csr),
                 "-subj", "/O=Parley tests/CN=" + cn)
        start, end = dates or self.valid
        args = ["ca", "-batch", "-config", str(self.config), "-notext", "-preserveDN",
                "-startdate", _asn1_time(start), "-enddate", _asn1_time(end),
                "-extensions", extensions, "-in", str(csr), "-out", str(cert)]
        if issuer is None:
            args += ["-selfsign", "-keyfile", str(key)]
        else:
            args += ["-cert", issuer[0], "-keyfile", issuer[1]]
        self.run(*args)
        key.chmod(0o600)
        return str(cert), str(key)


def make_tls_certs(directory):
    """Writes a test CA, a server certificate for localhost, client certificates (good, with SANs, from
    another CA, expired) and their keys into `directory` (created if missing); returns their paths."""
    m = _Maker(directory)
    ca = m.make("ca", "Parley Test CA", "v3_ca")
    server = m.make("server", "localhost", "v3_server", issuer=ca)
    client = m.make("client", "alice", "v3_client", issuer=ca)
    client_san = m.make("client-san", "bob", "v3_client_san", issuer=ca)
    other_ca = m.make("other-ca", "Other Test CA", "v3_ca")
    other_client = m.make("other-client", "mallory", "v3_client", issuer=other_ca)
    expired = m.make("expired-client", "old", "v3_client", issuer=ca, dates=m.expired)
    return TlsCerts(ca=ca[0], ca_key=ca[1], server=server[0], server_key=server[1],
                    client=client[0], client_key=client[1], client_san=client_san[0],
                    client_san_key=client_san[1], other_ca=other_ca[0], other_ca_key=other_ca[1],
                    other_client=other_client[0], other_client_key=other_client[1],
                    expired_client=expired[0], expired_client_key=expired[1])


if __name__ == "__main__":  # make a set by hand: /usr/bin/python3 tests/broker/tls_certs.py DIR
    import sys
    for field, path in dataclasses.asdict(make_tls_certs(sys.argv[1])).items():
        print("%-20s %s" % (field, path))
