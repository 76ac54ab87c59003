"""A tiny SCRAM-SHA-256 client (RFC 5802, RFC 7677) for the broker tests, standard library only.

MQTT 5 enhanced authentication carries these messages in the Authentication Data property, with
Authentication Method "SCRAM-SHA-256":

    client = ScramClient()
    connect_auth_data = client.client_first("alice")        # CONNECT
    auth_data = client.client_final(server_first, "secret")  # AUTH 0x18, answering the broker's AUTH 0x18
    assert client.verify_server_final(connack_auth_data)     # CONNACK

make_verifier(password, salt, iterations) writes the part of a broker credential line after "username:".
Run this file to check it against the RFC 7677 test vector: python3 tests/broker/scram.py
"""

import base64
import hashlib
import hmac
import secrets

PREFIX = "SCRAM-SHA-256$"


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _escape(name: str) -> str:
    # saslname: ',' and '=' are written "=2C" and "=3D" (RFC 5802 section 5.1).
    return name.replace("=", "=3D").replace(",", "=2C")


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)


def make_verifier(password: str, salt: bytes, iterations: int = 4096) -> str:
    """The verifier "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>" (PostgreSQL's format).

    The password is used as its UTF-8 bytes, without SASLprep, as the broker's MakeScramVerifier does.
    """
    sp = salted_password(password, salt, iterations)
    stored_key = hashlib.sha256(_hmac(sp, b"Client Key")).digest()
    server_key = _hmac(sp, b"Server Key")
    return f"{PREFIX}{iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def make_verifier_line(username: str, password: str, iterations: int = 4096) -> str:
    """A whole credential-file line with a fresh 16-byte salt."""
    return f"{username}:{make_verifier(password, secrets.token_bytes(16), iterations)}"


class ScramClient:
    """One exchange. Methods are called in order: client_first, client_final, verify_server_final."""

    def __init__(self, nonce: str = None, gs2_header: str = "n,,"):
        # 18 random bytes, base64: printable and comma-free, as RFC 5802 requires of a nonce.
        self.nonce = nonce if nonce is not None else _b64(secrets.token_bytes(18))
        self.gs2_header = gs2_header
        self._first_bare = None
        self._server_signature = None
        self.iterations = None  # what the server asked for, for tests to inspect

    def client_first(self, user: str) -> bytes:
        self._first_bare = f"n={_escape(user)},r={self.nonce}"
        return (self.gs2_header + self._first_bare).encode("utf-8")

    def client_final(self, server_first: bytes, password: str) -> bytes:
        text = server_first.decode("utf-8")
        attrs = dict(a.split("=", 1) for a in text.split(",") if "=" in a)
        nonce, salt, self.iterations = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        if not nonce.startswith(self.nonce) or len(nonce) == len(self.nonce):
            raise ValueError("server nonce does not extend the client nonce")
        sp = salted_password(password, salt, self.iterations)
        client_key = _hmac(sp, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={_b64(self.gs2_header.encode('utf-8'))},r={nonce}"
        auth_message = f"{self._first_bare},{text},{without_proof}".encode("utf-8")
        signature = _hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        self._server_signature = _hmac(_hmac(sp, b"Server Key"), auth_message)
        return f"{without_proof},p={_b64(proof)}".encode("utf-8")

    def verify_server_final(self, server_final: bytes) -> bool:
        """True if the server proved it knows the verifier ("v=..."); False for "e=..." or a wrong value."""
        if self._server_signature is None:
            return False
        text = server_final.decode("utf-8", "replace")
        if not text.startswith("v="):
            return False
        try:
            got = base64.b64decode(text[2:].split(",", 1)[0], validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(got, self._server_signature)


def _self_check() -> None:
    # RFC 7677 section 3.
    client = ScramClient(nonce="rOprNGfwEbeRWgbNEkqO")
    assert client.client_first("user") == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final = client.client_final(server_first, "pencil")
    assert final == (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="), final
    assert client.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    assert not client.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95H4=")
    assert not client.verify_server_final(b"e=invalid-proof")
    verifier = make_verifier("pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096)
    assert verifier.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"), verifier
    assert _escape("a,b=c") == "a=2Cb=3Dc"
    print("scram.py: RFC 7677 vector OK")
    print("pencil verifier:", verifier)


if __name__ == "__main__":
    _self_check()
