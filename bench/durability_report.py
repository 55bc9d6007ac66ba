#!/usr/bin/env python3
"""durability_report.py RESULTS KEYS ROWS — prints the tables of bench/run_durability.sh from
its results file (one "TAG JSON" line per measured run, JSON as durability_run.py prints it)."""
import json, statistics, sys

INTERVAL_S = 0.5  # --checkpoint-interval of part 1


def load(path):
    res = {}
    with open(path) as f:
        for line in f:
            tag, _, text = line.partition(" ")
            res[tag] = json.loads(text)
    return res


def mb(n):
    return "%.1f MB" % (n / 1e6)


def ckpt_times(run):
    """Durations of the interval checkpoints at full size, estimated from the files' mtimes: a
    checkpoint starts when the interval has passed since the previous one ended, so
    mtime[k] - mtime[k-1] - interval is about checkpoint k's time (the final checkpoint, taken
    at the end of the input, is left out: the summary line times it exactly)."""
    w = run.get("watched", [])
    full = max((c["state_bytes"] for c in w), default=0)
    return [round((w[k]["mtime_s"] - w[k - 1]["mtime_s"] - INTERVAL_S) * 1000)
            for k in range(1, len(w) - 1) if w[k]["state_bytes"] >= 0.9 * full]


def part1(r, keys):
    print("1. Checkpoints of %s keys: file source, %s JSON rows (each device twice), one worker, "
          "--checkpoint-interval 500ms" % (f"{keys:,}", f"{2 * keys:,}"))
    print("| state | run without --state-dir | run with | checkpoints | largest: state bytes (uncompressed) | on disk (zstd) "
          "| per key | time per checkpoint | peak RSS without / with |")
    print("|---|---|---|---|---|---|---|---|---|")
    for tag, name in (("table", "GROUP BY device_id table"), ("window", "1-day tumbling window, all keys open")):
        plain, ck = r[tag + "_plain"], r[tag + "_ckpt"]
        w = ck.get("watched", [])
        big = max(w, key=lambda c: c["state_bytes"]) if w else {"state_bytes": 0, "file_bytes": 0}
        est = ckpt_times(ck)
        cost = (ck["wall_s"] - plain["wall_s"]) / max(1, ck.get("checkpoints", 1)) * 1000
        times = []
        if est:
            times.append("%d ms median (%d–%d, %d full-size ones, from file times)" % (statistics.median(est), min(est), max(est), len(est)))
        times.append("final: %d ms for %s (summary line)" % (ck.get("last_ms", -1), mb(ck.get("last_state_bytes", 0))))
        times.append("(run with − without) / checkpoints: %d ms" % cost)
        print("| %s | %.2f s | %.2f s | %d | %s | %s | %.0f B → %.0f B | %s | %.0f / %.0f MB |" % (
            name, plain["wall_s"], ck["wall_s"], ck.get("checkpoints", 0), mb(big["state_bytes"]), mb(big["file_bytes"]),
            big["state_bytes"] / keys, big["file_bytes"] / keys, "; ".join(times), plain["maxrss_mb"], ck["maxrss_mb"]))
    z = r.get("zstd_cli")
    if z:
        print("For scale: the zstd CLI at level 1 (as vpq) compresses that %s of table state in %d ms and decompresses it "
              "in %d ms, so serialising the state is the rest of a checkpoint's time." % (mb(z["bytes"]), z["compress1_ms"], z["decompress_ms"]))
    print()


def part2(r, keys):
    res, fs, fp, rp = r["recover_resume"], r["recover_fresh_state"], r["recover_fresh_plain"], r["recover_replay"]
    print("2. Recovery: the table's file gets 1,000 more rows; wall times from process start, one worker")
    print("| run | \"resumed from checkpoint\" (first row next) | summary line (after the final checkpoint) | exit | final checkpoint | peak RSS |")
    print("|---|---|---|---|---|---|")
    print("| resume from the %s-key checkpoint, 1,000 rows left | %.2f s | %.2f s | %.2f s | %d ms | %.0f MB |" % (
        f"{keys:,}", res.get("resumed_s", -1), res.get("summary_s", -1), res["wall_s"], res.get("last_ms", -1), res["maxrss_mb"]))
    print("| fresh run over the same 1,000 rows, --state-dir | – | %.2f s | %.2f s | %d ms | %.0f MB |" % (
        fs.get("summary_s", -1), fs["wall_s"], fs.get("last_ms", -1), fs["maxrss_mb"]))
    print("| fresh run over the same 1,000 rows, no --state-dir | – | %.2f s | %.2f s | – | %.0f MB |" % (
        fp.get("summary_s", -1), fp["wall_s"], fp["maxrss_mb"]))
    print("| replay instead: all %s rows from scratch, no --state-dir | – | %.2f s | %.2f s | – | %.0f MB |" % (
        f"{rp.get('rows_in', 0):,}", rp.get("summary_s", -1), rp["wall_s"], rp["maxrss_mb"]))
    print()


MODES = (("plain", "(a) no --state-dir"), ("alo", "(b) --state-dir, at_least_once"),
         ("eo10s", "(c) --state-dir, exactly-once, 10 s"), ("eo1s", "(c) --state-dir, exactly-once, 1 s"))
QUERIES = (("filter", "filter/projection (WHERE kw > -4.5: 95% of rows written)"),
           ("window", "1-minute tumbling aggregate per device, EMIT FINAL"))


def part3(r, rows):
    print("3. Kafka → Kafka on vpq broker: %s keyed JSON messages (~60 B, 10,000 devices, zstd, 16 partitions), "
          "bounded = true, one worker; rows/s = input rows / wall time from `vpq run` start to exit, best of the repeats"
          % f"{rows:,}")
    kcat = {}
    for tag, name in (("kcat_consume", "kcat -C (raw consume)"), ("kcat_copy", "kcat -C | kcat -P (consume + produce, zstd)")):
        runs = [v["wall_ms"] / 1000 for k, v in r.items() if k.startswith(tag + "_")]
        if runs:
            kcat[tag] = rows / min(runs)
            print("   %-45s %s s: %.2fM msgs/s" % (name, " / ".join("%.2f" % s for s in runs), kcat[tag] / 1e6))
    copy = kcat.get("kcat_copy")
    print("| query | mode | wall s (each run) | rows/s (best) | vs (a) | of kcat copy | vpq CPU s (each run) | rows out "
          "| checkpoints | largest checkpoint (state / on disk) | peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for q, qname in QUERIES:
        base = None
        for m, mname in MODES:
            runs = [v for k, v in r.items() if k.startswith("kafka_%s_%s_" % (q, m))]
            if not runs:
                continue
            best = min(runs, key=lambda v: v["wall_s"])
            rate = rows / best["wall_s"]
            base = base or rate
            w = best.get("watched", [])
            big = max(w, key=lambda c: c["state_bytes"]) if w else None
            print("| %s | %s | %s | %.2fM | %+.0f%% | %s | %s | %s | %s | %s | %.0f MB |" % (
                qname, mname, " / ".join("%.2f" % v["wall_s"] for v in runs), rate / 1e6, (rate / base - 1) * 100,
                "%.0f%%" % (rate / copy * 100) if copy else "–", " / ".join("%.2f" % v.get("cpu_s", 0) for v in runs),
                f"{best.get('rows_out', 0):,}", best.get("checkpoints", "–"),
                "%s / %s" % (mb(big["state_bytes"]), mb(big["file_bytes"])) if big else "–", best["maxrss_mb"]))
    print("Exactly-once holds a sink's output (in the checkpoint) until its checkpoint is durable; 64 MiB of held output "
          "triggers a checkpoint early, so the largest checkpoints above are mostly held output rows. On a shared machine "
          "wall times vary by ±30% from run to run: compare CPU seconds too.")


def main():
    r = load(sys.argv[1])
    keys, rows = int(sys.argv[2]), int(sys.argv[3])
    part1(r, keys)
    part2(r, keys)
    part3(r, rows)


if __name__ == "__main__":
    main()
