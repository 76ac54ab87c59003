#!/usr/bin/python3
"""File transfer figures (docs/performance.md, "Files"): one parleyd on loopback, one upload of SIZE MiB with curl
as a single tus PATCH (and one cut into CHUNK MiB PATCHes), then downloads of the whole file and of ranges; prints
throughput and parleyd's resident memory before, at its peak during each transfer, and after — the files
listener streams both ways, so the peak must not grow with the file size.

Usage: /usr/bin/python3 scripts/bench-files.py [SIZE_MIB=512] [CHUNK_MIB=8]   (PARLEYD=path to pick a binary)
"""
import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "broker"))
sys.path.insert(0, str(ROOT / "tests" / "im"))
from conftest import Broker, make_config  # noqa: E402
from imclient import Device, pb  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Peak:
    """Samples a process's RSS every 10 ms while a transfer runs."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, rss_kib(pid), threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, rss_kib(self.pid))

    def done(self):
        self.stop.set()
        self.t.join()
        return self.peak


def curl(*args):
    p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args], capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        sys.exit("curl failed: " + p.stderr)
    return int(p.stdout)


def main():
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    chunk_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="parley-bench-files-"))
    data = tmp / "blob.bin"
    with open(data, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))
    size = data.stat().st_size
    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    b = Broker(make_config("", "", '[files]\nmax_file_size = "4GiB"\nuser_quota = 0\n'), tmp)
    base = "http://127.0.0.1:%d" % b.files_port
    alice = Device(b.port, "alice", "alice-bench")
    pid = b.proc.pid
    print("parleyd %s, file %d MiB, sha256 verified by the server" % (os.environ.get("PARLEYD", "build"), size_mib))
    print("idle RSS: %.1f MiB" % (rss_kib(pid) / 1024))

    def upload(chunk):
        slot = alice.request(create_upload=pb.CreateUploadReq(name="bench.bin", size=size,
                                                              content_type="application/octet-stream",
                                                              sha256=sha)).upload
        auth = ["-H", "Authorization: Bearer " + slot.token, "-H", "Tus-Resumable: 1.0.0"]
        code = curl("-X", "POST", *auth, "-H", "Upload-Length: %d" % size, base + slot.upload_url)
        assert code == 201, code
        loc = base + "/files/v1/uploads/" + slot.file_id
        before = rss_kib(pid)
        peak = Peak(pid)
        t0 = time.perf_counter()
        off = 0
        with open(data, "rb") as f:
            while off < size:
                n = min(chunk, size - off)
                f.seek(off)
                part = tmp / "part"
                part.write_bytes(f.read(n))
                code = curl("-X", "PATCH", *auth, "-H", "Content-Type: application/offset+octet-stream",
                            "-H", "Upload-Offset: %d" % off, "--data-binary", "@" + str(part), loc)
                assert code == 204, code
                off += n
        took = time.perf_counter() - t0
        return slot.file_id, took, before, peak.done()

    fid, took, before, peak = upload(size)
    print("upload, one PATCH:      %7.1f MiB/s  RSS before %.1f MiB, peak %.1f MiB" % (
        size_mib / took, before / 1024, peak / 1024))
    _, took, before, peak = upload(chunk_mib << 20)
    print("upload, %3d MiB PATCHes: %6.1f MiB/s  RSS before %.1f MiB, peak %.1f MiB (dedup: same content)" % (
        chunk_mib, size_mib / took, before / 1024, peak / 1024))
    alice.request(send=pb.SendReq(conv_id=alice.open_direct("bob").conv_id, client_msg_id="bench-file",
                                  type=pb.MSG_FILE, attachments=[pb.Attachment(file_id=fid)]))
    tok = alice.request(file_access=pb.FileAccessReq()).file_access.token
    auth = ["-H", "Authorization: Bearer " + tok]
    before = rss_kib(pid)
    peak = Peak(pid)
    t0 = time.perf_counter()
    assert curl(*auth, base + "/files/v1/" + fid) == 200
    took = time.perf_counter() - t0
    print("download, whole file:   %7.1f MiB/s  RSS before %.1f MiB, peak %.1f MiB" % (
        size_mib / took, before / 1024, peak.done() / 1024))
    t0 = time.perf_counter()
    n = 200
    for i in range(n):
        off = (i * 7919 * 4096) % (size - 65536)
        assert curl(*auth, "-H", "Range: bytes=%d-%d" % (off, off + 65535), base + "/files/v1/" + fid) == 206
    print("download, 64 KiB ranges: %6.0f requests/s (one curl process each)" % (n / (time.perf_counter() - t0)))
    print("RSS after: %.1f MiB" % (rss_kib(pid) / 1024))
    alice.close()
    b.stop()


if __name__ == "__main__":
    main()
