"""Prometheus text exposition (what parleyd serves on /metrics) parsed for tests.

Parsing is prometheus_client's own (Debian python3-prometheus-client, importable from /usr/bin/python3), so a
test that goes through here also checks that the text is valid exposition format: the parser raises on anything
malformed.

    samples = prom.parse(text)
    samples[("parley_messages_received_total", (("qos", "1"),))]   -> 3.0
    prom.value(samples, "parley_messages_received_total", qos="1")  -> 3.0
    prom.total(samples, "parley_disconnects_total")                 -> sum over every label set
"""
from prometheus_client.parser import text_string_to_metric_families


def families(text):
    """Name -> (type, documentation) for every family in `text` (counter names keep their _total)."""
    out = {}
    for fam in text_string_to_metric_families(text):
        name = fam.name + "_total" if fam.type == "counter" and not fam.name.endswith("_total") else fam.name
        out[name] = (fam.type, fam.documentation)
    return out


def parse(text):
    """Every sample in `text` as a dict: (sample name, sorted label pairs) -> float value.

    Histograms appear as their series: name_bucket (with an "le" label), name_sum and name_count. Raises
    ValueError when the text is not valid exposition format or a sample appears twice.
    """
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in samples:
                raise ValueError("duplicate sample %s%s" % key)
            samples[key] = s.value
    return samples


parse_prometheus = parse  # the name the tests import


def value(samples, name, **labels):
    """The value of the one sample of `name` whose labels are exactly `labels`, or None."""
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples, name, **match):
    """The sum of the samples of `name` whose labels include `match` (all of them when empty); None if none."""
    found = [v for (n, ls), v in samples.items() if n == name and set(match.items()) <= set(ls)]
    return sum(found) if found else None


def histogram(samples, name, **match):
    """A histogram's series as {"buckets": [(le, cumulative count)...], "sum": s, "count": n}, or None."""
    buckets = sorted((float(dict(ls)["le"]), v) for (n, ls), v in samples.items()
                     if n == name + "_bucket" and set(match.items()) <= set(ls))
    count = total(samples, name + "_count", **match)
    if count is None:
        return None
    return {"buckets": buckets, "sum": total(samples, name + "_sum", **match), "count": count}


def fetch(port, path="/metrics", token=None, timeout=10):
    """GETs `path` from the admin HTTP listener on 127.0.0.1:`port`; returns (status, content type, text)."""
    import urllib.error
    import urllib.request
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode(errors="replace")


if __name__ == "__main__":  # a quick check of a scrape: python3 tests/broker/prom.py < metrics.txt
    import sys
    for (n, ls), v in sorted(parse(sys.stdin.read()).items()):
        print(n, dict(ls), v)
