"""repartition_check.py — the expected results of tests/kafka/test_repartition*.sh's query,
computed here from the input alone (not by vpq), compared with what kafka-python read back.

    repartition_check.py INPUT OUTDIR exact|repeats

INPUT: the lines kcat produced (`key|json`). OUTDIR: per_site.jsonl, site_soc.jsonl and
fleet.jsonl as tests/kafka/read_topic.py writes them ([partition, key, value, vpq.id]).

- per_site: 1-minute tumbling windows per site, count(*) and sum(kw), written once each when
  the window closes. `exact`: the messages are exactly the expected rows, each once. `repeats`
  (a member was killed without --state-dir): every expected row is there with its exact value,
  nothing else is, and a row may be there more than once (a window the dead member wrote
  after its last commit is written again by the member that takes over); the repeats are
  counted and printed.
- site_soc (per site) and fleet (ROLLUP (region, site)) are tables over `batteries`, the
  last row per device: the last message per key is the table's state, which must be exact (a
  tombstone, a null value, deletes its key: a site whose batteries all moved away).
Values are compared as numbers; the inputs are chosen so that every sum is exact in floating
point whatever the order rows are added in (integers for kw, multiples of 1/64 for soc).
"""
import collections
import json
import sys


def expected(path):
    per_site = collections.Counter()
    windows = collections.defaultdict(lambda: [0, 0.0])
    last = {}
    for line in open(path):
        row = json.loads(line.split("|", 1)[1])
        w = windows[(row["site"], row["ts"] // 60000 * 60000)]
        w[0] += 1
        w[1] += row["kw"]
        if row["device_id"] not in last or row["ts"] >= last[row["device_id"]]["ts"]:
            last[row["device_id"]] = row
    for (site, minute), (n, kw) in windows.items():
        per_site[(site, minute, n, kw)] += 1
    site_soc = collections.defaultdict(lambda: [0, 0.0])
    fleet = collections.defaultdict(lambda: [0, 0.0])
    for row in last.values():
        s = site_soc[row["site"]]
        s[0] += 1
        s[1] += row["soc"]
        for key in [(row["region"], row["site"]), (row["region"], None), (None, None)]:
            f = fleet[key]
            f[0] += 1
            f[1] += row["soc"]
    return per_site, {k: tuple(v) for k, v in site_soc.items()}, {k: tuple(v) for k, v in fleet.items()}


def read(outdir, topic):
    return [json.loads(json.loads(line)[2]) for line in open("%s/%s.jsonl" % (outdir, topic))]


def table_state(outdir, topic, key):
    """The table a topic of changes compacts to: the last value per message key, a tombstone
    (null value: the key left the table) deleting it; keyed by key(row)."""
    state = {}
    for line in open("%s/%s.jsonl" % (outdir, topic)):
        _, message_key, value, _ = json.loads(line)
        if value is None:
            state.pop(message_key, None)
        else:
            state[message_key] = json.loads(value)
    return {key(row): row for row in state.values()}


def main():
    want_windows, want_sites, want_fleet = expected(sys.argv[1])
    outdir, mode = sys.argv[2], sys.argv[3]
    failures = []
    got_windows = collections.Counter((r["site"], r["minute"], r["n"], r["kw"]) for r in read(outdir, "per_site"))
    lost = want_windows - got_windows
    wrong = set(got_windows) - set(want_windows)
    repeats = sum((got_windows - want_windows).values())
    if lost:
        failures.append("per_site: %d window(s) missing, e.g. %s" % (len(lost), sorted(lost)[:3]))
    if wrong:
        failures.append("per_site: %d wrong window(s), e.g. %s" % (len(wrong), sorted(wrong)[:3]))
    if mode == "exact" and repeats:
        failures.append("per_site: %d window(s) written twice" % repeats)
    sites = table_state(outdir, "site_soc", lambda r: r["site"])
    got_sites = {k: (r["batteries"], r["soc"]) for k, r in sites.items()}
    if got_sites != want_sites:
        failures.append("site_soc: got %s, want %s" % (sorted(got_sites.items()), sorted(want_sites.items())))
    fleet = table_state(outdir, "fleet", lambda r: (r["region"], r["site"]))
    got_fleet = {k: (r["batteries"], r["soc"]) for k, r in fleet.items()}
    if got_fleet != want_fleet:
        diff = {k: (got_fleet.get(k), want_fleet.get(k)) for k in set(got_fleet) | set(want_fleet)
                if got_fleet.get(k) != want_fleet.get(k)}
        failures.append("fleet: (got, want) differ at %s" % sorted(diff.items(), key=str)[:4])
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("ok: %d window rows (%d repeated), %d sites, %d fleet rows, all as computed from the input"
          % (sum(want_windows.values()), repeats, len(want_sites), len(want_fleet)))


if __name__ == "__main__":
    main()
