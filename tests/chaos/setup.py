"""Creates the chaos run's conversations (run by chaos.py inside the broker's namespace, over loopback, before
the clients start): each direct pair with open_direct, each group with create_group. Writes what the model needs:
every conversation's id, creator, creating device and seq, and each user's conversation list."""
import argparse
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "im"))

from imclient import Device  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    spec = json.loads(pathlib.Path(a.spec).read_text())
    devices = {}

    def dev(user):
        if user not in devices:
            devices[user] = Device(a.port, user, "setup-" + user)
        return devices[user]

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
    for d in devices.values():
        d.close()
    out = dict(spec, convs=convs, convs_of=convs_of)
    pathlib.Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
