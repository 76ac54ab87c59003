"""Files (docs/files.md): an upload slot over the IM protocol, a resumable tus 1.0 upload with the reference
client (npm tus-js-client, tests/js/tus_upload.js) whose link is cut mid-upload, the message that shares it, and
downloads with curl — authorised, Range, ETag —, content addressing, the quota, and garbage collection."""
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time


from imclient import Device, pb

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "broker"))
from helpers import js_dir, wait_for  # noqa: E402


def files_broker(make_broker, **settings):
    lines = ["[files]"] + ["%s = %s" % (k, json.dumps(v)) for k, v in settings.items()]
    b = make_broker(extra="\n".join(lines) + "\n")
    assert b.files_port, "no files listener in the log:\n" + b.log()[-2000:]
    return b


def base(b):
    return "http://127.0.0.1:%d" % b.files_port


def curl(*args, data=None, timeout=30):
    """Runs curl; returns (status, headers as a lower-cased dict, body bytes)."""
    cmd = ["curl", "-sS", "-D", "-", "-o", "-", "--max-time", str(timeout), *args]
    p = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout + 5)
    assert p.returncode == 0, "curl %s failed: %s" % (args, p.stderr.decode(errors="replace"))
    out = p.stdout
    # Skip interim responses (100 Continue); the last head is the answer.
    while True:
        head, _, rest = out.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status >= 200:
            break
        out = rest
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def slot_for(dev, data, name="photo.jpg", ctype="image/jpeg", sha=True):
    return dev.request(create_upload=pb.CreateUploadReq(
        name=name, size=len(data), content_type=ctype,
        sha256=hashlib.sha256(data).hexdigest() if sha else "")).upload


def tus_create(b, slot, length=None):
    return curl("-X", "POST", "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Length: %d" % (length or 0),
                "-H", "Authorization: Bearer " + slot.token, url_of(b, slot.upload_url))


def tus_patch(b, location, token, offset, chunk):
    return curl("-X", "PATCH", "-H", "Tus-Resumable: 1.0.0", "-H", "Content-Type: application/offset+octet-stream",
                "-H", "Upload-Offset: %d" % offset, "-H", "Authorization: Bearer " + token,
                "--data-binary", "@-", url_of(b, location), data=chunk)


def url_of(b, url):
    """Slot and Location URLs are relative when files.public_url is not set."""
    return url if url.startswith("http") else base(b) + url


def upload_with_curl(b, dev, data, **kw):
    slot = slot_for(dev, data, **kw)
    status, h, _ = tus_create(b, slot, len(data))
    assert status == 201, (status, h)
    status, h, body = tus_patch(b, h["location"], slot.token, 0, data)
    assert status == 204 and int(h["upload-offset"]) == len(data), (status, h, body)
    return slot.file_id


def download(b, token, file_id, *extra):
    return curl("-H", "Authorization: Bearer " + token, *extra, base(b) + "/files/v1/" + file_id)


def access(dev):
    return dev.request(file_access=pb.FileAccessReq()).file_access


def share(dev, conv_id, file_id, name="photo.jpg"):
    return dev.request(send=pb.SendReq(conv_id=conv_id, client_msg_id=os.urandom(8).hex(), type=pb.MSG_FILE,
                                       text="look", attachments=[pb.Attachment(file_id=file_id, name=name)])).ack


def run_tus(endpoint, token, path, cut_after=0, chunk_size=0):
    d = js_dir("tus-js-client")
    cfg = {"endpoint": endpoint, "token": token, "file": str(path), "cut_after": cut_after,
           "chunk_size": chunk_size, "timeout_ms": 60000}
    p = subprocess.run(["node", str(d / "tus_upload.js"), json.dumps(cfg)], cwd=d, capture_output=True, text=True,
                       timeout=90)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, "tus_upload.js printed nothing (exit %d): %s %s" % (p.returncode, p.stdout, p.stderr)
    return json.loads(lines[-1])


def test_tus_upload_cut_mid_way_resumes_and_members_download_it(make_broker, tmp_path):
    b = files_broker(make_broker)
    alice, bob, carol = (Device(b.port, u, u + "-phone") for u in ("alice", "bob", "carol"))
    conv = alice.open_direct("bob")
    data = os.urandom(3 * 1024 * 1024 + 123)
    path = tmp_path / "photo.bin"
    path.write_bytes(data)
    slot = slot_for(alice, data)
    assert slot.file_id and slot.token and slot.upload_url.endswith("/files/v1/uploads")
    assert slot.expires_ts > time.time() * 1000

    # The link is cut after ~1 MiB of the PATCH: tus-js-client asks for the offset and sends only the rest.
    r = run_tus(url_of(b, slot.upload_url), slot.token, path, cut_after=1024 * 1024)
    assert r["ok"], r
    assert r["cuts"] == 1, r
    methods = [m for m, _, _ in r["requests"]]
    heads = [(st, off) for m, st, off in r["requests"] if m == "HEAD"]
    assert methods[0] == "POST" and heads, r
    assert heads[0][0] == 200 and 0 < heads[0][1] < len(data), r  # resumed from what the server kept
    assert r["proxied_bytes"] < len(data) + 1024 * 1024 + 64 * 1024, r  # not sent twice from the start

    ack = share(alice, conv.conv_id, slot.file_id)
    m = bob.wait_message(conv.conv_id, seq=ack.seq)
    a = m.attachments[0]
    assert m.type == pb.MSG_FILE and a.file_id == slot.file_id and a.size == len(data)
    assert a.sha256 == hashlib.sha256(data).hexdigest() and a.content_type == "image/jpeg"
    assert a.url.endswith("/files/v1/" + slot.file_id)

    tok = access(bob)
    assert tok.token and tok.expires_ts > time.time() * 1000
    status, h, body = download(b, tok.token, slot.file_id)
    assert status == 200 and hashlib.sha256(body).hexdigest() == a.sha256
    assert h["content-type"] == "image/jpeg" and h["accept-ranges"] == "bytes"
    etag = h["etag"]
    assert a.sha256 in etag

    # Range requests: a slice, an open end, a suffix; then an unsatisfiable one.
    status, h, body = download(b, tok.token, slot.file_id, "-H", "Range: bytes=100-199")
    assert status == 206 and body == data[100:200]
    assert h["content-range"] == "bytes 100-199/%d" % len(data)
    status, h, body = download(b, tok.token, slot.file_id, "-H", "Range: bytes=%d-" % (len(data) - 10))
    assert status == 206 and body == data[-10:]
    status, h, body = download(b, tok.token, slot.file_id, "-H", "Range: bytes=-5")
    assert status == 206 and body == data[-5:]
    status, h, _ = download(b, tok.token, slot.file_id, "-H", "Range: bytes=%d-" % (len(data) + 5))
    assert status == 416 and h["content-range"] == "bytes */%d" % len(data)
    # A conditional request with the ETag: 304, no body.
    status, _, body = download(b, tok.token, slot.file_id, "-H", "If-None-Match: " + etag)
    assert status == 304 and body == b""
    # The download token in the query string works too (for an <img src>).
    status, _, body = curl(base(b) + "/files/v1/%s?token=%s" % (slot.file_id, tok.token))
    assert status == 200 and len(body) == len(data)

    # Not a member of the conversation: 403. No token, or a forged one: 401.
    status, _, _ = download(b, access(carol).token, slot.file_id)
    assert status == 403
    status, _, _ = curl(base(b) + "/files/v1/" + slot.file_id)
    assert status == 401
    status, _, _ = download(b, tok.token[:-4] + ("AAAA" if not tok.token.endswith("AAAA") else "BBBB"), slot.file_id)
    assert status == 401
    # Carol may not share a file she cannot read.
    conv2 = carol.open_direct("alice")
    carol.expect_error(pb.ERR_NOT_FOUND, send=pb.SendReq(
        conv_id=conv2.conv_id, client_msg_id="c1", type=pb.MSG_FILE, attachments=[pb.Attachment(file_id=slot.file_id)]))
    for d in (alice, bob, carol):
        d.close()


def test_checksum_mismatch_is_refused_and_identical_files_are_stored_once(make_broker):
    b = files_broker(make_broker)
    alice, bob = Device(b.port, "alice", "alice-1"), Device(b.port, "bob", "bob-1")
    data = os.urandom(200 * 1024)
    # Declared sha256 that the bytes do not match: 460, and nothing is kept.
    slot = alice.request(create_upload=pb.CreateUploadReq(name="x.bin", size=len(data), content_type="image/png",
                                                          sha256="00" * 32)).upload
    status, h, _ = tus_create(b, slot, len(data))
    assert status == 201
    status, _, body = tus_patch(b, h["location"], slot.token, 0, data)
    assert status == 460, body
    # The same content uploaded by two users: two files, one blob on disk.
    f1 = upload_with_curl(b, alice, data, ctype="image/png")
    f2 = upload_with_curl(b, bob, data, ctype="image/png")
    assert f1 != f2
    blobs = [p for p in (b.dir / "data" / "files" / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in blobs] == [hashlib.sha256(data).hexdigest()], blobs
    alice.close()
    bob.close()


def test_tus_protocol_errors(make_broker):
    b = files_broker(make_broker)
    alice = Device(b.port, "alice", "alice-1")
    data = os.urandom(10_000)
    slot = slot_for(alice, data)
    status, h, _ = tus_create(b, slot, len(data))
    assert status == 201 and h["tus-resumable"] == "1.0.0"
    loc = h["location"]
    # Creation is idempotent for a slot (a client retrying after a lost answer).
    status, h2, _ = tus_create(b, slot, len(data))
    assert status == 201 and h2["location"] == loc
    # A length other than the slot's, a wrong offset, a wrong content type, no token.
    assert tus_create(b, slot, len(data) + 1)[0] == 400
    assert tus_patch(b, loc, slot.token, 5, data[5:])[0] == 409
    status, _, _ = curl("-X", "PATCH", "-H", "Tus-Resumable: 1.0.0", "-H", "Content-Type: text/plain",
                        "-H", "Upload-Offset: 0", "-H", "Authorization: Bearer " + slot.token, "--data-binary", "x",
                        url_of(b, loc))
    assert status == 415
    assert curl("-X", "HEAD", "-I", "-H", "Tus-Resumable: 1.0.0", url_of(b, loc))[0] == 401
    # Half of it, then HEAD gives the offset, then the rest.
    assert tus_patch(b, loc, slot.token, 0, data[:4000])[0] == 204
    status, h, _ = curl("-I", "-H", "Tus-Resumable: 1.0.0", "-H", "Authorization: Bearer " + slot.token, url_of(b, loc))
    assert status == 200 and h["upload-offset"] == "4000" and h["upload-length"] == str(len(data))
    assert tus_patch(b, loc, slot.token, 4000, data[4000:])[0] == 204
    status, _, body = download(b, access(alice).token, slot.file_id)
    assert status == 200 and body == data  # the uploader may download it before sharing it
    # Content types outside files.allowed_types are refused at the slot.
    b2 = files_broker(make_broker, allowed_types=["image/*"])
    d2 = Device(b2.port, "alice", "alice-2")
    d2.expect_error(pb.ERR_UNSUPPORTED, create_upload=pb.CreateUploadReq(name="a.pdf", size=10,
                                                                          content_type="application/pdf"))
    assert slot_for(d2, b"0123456789", ctype="image/gif").file_id
    alice.close()
    d2.close()


def test_quota_and_size_limits(make_broker):
    b = files_broker(make_broker, user_quota="1MiB", max_file_size="900KiB")
    alice = Device(b.port, "alice", "alice-1")
    alice.expect_error(pb.ERR_TOO_LARGE, create_upload=pb.CreateUploadReq(name="big", size=950 * 1024,
                                                                            content_type="image/png"))
    a = os.urandom(600 * 1024)
    b_ = os.urandom(600 * 1024)
    # Two slots fit one at a time; the second upload's creation finds the quota used by the first: 413.
    slot_a, slot_b = slot_for(alice, a), slot_for(alice, b_)
    status, h, _ = tus_create(b, slot_a, len(a))
    assert status == 201
    assert tus_patch(b, h["location"], slot_a.token, 0, a)[0] == 204
    status, _, body = tus_create(b, slot_b, len(b_))
    assert status == 413, body
    # And the IM request itself refuses a slot that cannot fit any more.
    alice.expect_error(pb.ERR_QUOTA_EXCEEDED, create_upload=pb.CreateUploadReq(name="c", size=600 * 1024,
                                                                                 content_type="image/png"))
    alice.close()


def test_garbage_collection(make_broker):
    b = files_broker(make_broker, gc_grace="0s", gc_interval="1s")
    alice, bob = Device(b.port, "alice", "alice-1"), Device(b.port, "bob", "bob-1")
    conv = alice.open_direct("bob")
    kept_data, lone_data, recalled_data = os.urandom(50_000), os.urandom(50_000), os.urandom(50_000)
    kept = upload_with_curl(b, alice, kept_data)
    lone = upload_with_curl(b, alice, lone_data)          # never shared
    recalled = upload_with_curl(b, alice, recalled_data)  # shared, then the message is recalled
    share(alice, conv.conv_id, kept)
    ack = share(alice, conv.conv_id, recalled)
    alice.recall(conv.conv_id, ack.seq)
    tok = access(alice).token
    blobs = b.dir / "data" / "files" / "blobs"

    def gone(data):
        h = hashlib.sha256(data).hexdigest()
        return not (blobs / h[:2] / h).exists()

    assert wait_for(lambda: gone(lone_data) and gone(recalled_data), timeout=15), list(blobs.rglob("*"))
    assert download(b, tok, lone)[0] == 404
    assert download(b, tok, recalled)[0] == 404
    status, _, body = download(b, access(bob).token, kept)
    assert status == 200 and body == kept_data and not gone(kept_data)
    alice.close()
    bob.close()
