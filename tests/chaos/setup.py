"""Talks to parleyd over loopback inside the broker's namespace, for chaos.py (no shaping, no faults):

  create  before the clients start: each direct pair with open_direct, each group with create_group; writes
          what the model needs (every conversation's id, creator, creating device and seq; each user's list)
  dump    after the run (and a restart): every conversation's stream as the server stores it, read with `range`
          and `with_versions`, one creator's device per conversation — the raw entries, with no client-side
          merging of edits and recalls, for chaos.py to compare with its model
"""
import argparse
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "im"))

from im_model import wire_key  # noqa: E402
from imclient import Device, pb  # noqa: E402


class Devices:
    def __init__(self, port):
        self.port, self.devices = port, {}

    def __call__(self, user):
        if user not in self.devices:
            self.devices[user] = Device(self.port, user, "setup-" + user)
        return self.devices[user]

    def close(self):
        for d in self.devices.values():
            d.close()


def create(dev, spec):
    convs = []
    convs_of = {u: [] for us in spec["users"].values() for u in us}
    for a_user, b_user in spec["directs"]:
        c = dev(a_user).open_direct(b_user)
        convs.append({"id": c.conv_id, "type": "direct", "creator": a_user, "device": "setup-" + a_user,
                      "peer": b_user, "seq": c.last_message.seq})
        convs_of[a_user].append(c.conv_id)
        convs_of[b_user].append(c.conv_id)
    for i, g in enumerate(spec["groups"]):
        cmid = "setup-group-%d" % i
        c = dev(g["owner"]).create_group(g["name"], g["members"], cmid=cmid)
        convs.append({"id": c.conv_id, "type": "group", "creator": g["owner"], "device": "setup-" + g["owner"],
                      "name": g["name"], "members": g["members"], "cmid": cmid, "seq": c.last_message.seq})
        for u in [g["owner"]] + g["members"]:
            convs_of[u].append(c.conv_id)
    return dict(spec, convs=convs, convs_of=convs_of)


def dump(dev, plan):
    out = {}
    for c in plan["convs"]:
        d = dev(c["creator"])
        top = d.get_conversation(c["id"]).max_seq
        entries, lo = [], 1
        while lo <= top:
            hi = min(top, lo + 199)
            r = d.request(range=pb.RangeReq(conv_id=c["id"], from_seq=lo, to_seq=hi, with_versions=True)).messages
            entries += [list(wire_key(m, with_versions=True)) for m in r.messages]
            lo = (r.messages[-1].seq + 1) if r.has_more and r.messages else hi + 1
        out[c["id"]] = {"max_seq": top, "entries": entries}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("create", "dump"))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--plan", required=True, help="create: the spec to read; dump: the plan create wrote")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    plan = json.loads(pathlib.Path(a.plan).read_text())
    dev = Devices(a.port)
    try:
        result = create(dev, plan) if a.mode == "create" else dump(dev, plan)
    finally:
        dev.close()
    pathlib.Path(a.out).write_text(json.dumps(result, indent=None))


if __name__ == "__main__":
    main()
