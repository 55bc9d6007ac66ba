#!/usr/bin/env python3
"""durability_run.py — runs one command for bench/run_durability.sh and measures it: wall time
from the start of the process to its exit, its CPU time (user + system, all threads), peak
resident memory, the moment each stderr line arrived (so "vpq: resumed from checkpoint" can be
timed from the start), and, with --watch DIR, every checkpoint file that appears in the state
folder (polled every 5 ms, since vpq keeps only the newest two): its epoch, uncompressed state
bytes and compressed size from the file header, and the time it appeared. Writes stderr, each line prefixed with "+SECONDS", to --log and prints
one JSON object on stdout.

usage: durability_run.py [--watch DIR] [--log FILE] [--timeout SECONDS] -- COMMAND ARGS...
(a command still running after --timeout is killed; "timed_out" is then true in the JSON)
"""
import json, os, re, resource, struct, subprocess, sys, threading, time


def watch(folder, stop, seen, t0):
    """Records each new checkpoint-N.vpqc of `folder` until `stop` is set."""
    while True:
        done = stop.is_set()
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            names = []
        now = time.monotonic() - t0
        for name in names:
            m = re.fullmatch(r"checkpoint-(\d+)\.vpqc", name)
            if not m or int(m.group(1)) in seen:
                continue
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as f:
                    header = f.read(56)
                size = os.path.getsize(path)
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            # Header (engine/vpq_ckpt.c): magic[8] version u32 pad u32 epoch u64 fingerprint u64
            # state_len u64 compressed_len u64 checksum u64, little-endian.
            state_len, clen = struct.unpack_from("<QQ", header, 32) if len(header) >= 48 else (0, 0)
            seen[int(m.group(1))] = {"epoch": int(m.group(1)), "state_bytes": state_len, "compressed": clen,
                                     "file_bytes": size, "seen_s": round(now, 3), "mtime": mtime}
        if done:
            return
        time.sleep(0.005)


def main():
    args = sys.argv[1:]
    folder = log = timeout = None
    while args and args[0] != "--":
        if args[0] == "--watch":
            folder, args = args[1], args[2:]
        elif args[0] == "--log":
            log, args = args[1], args[2:]
        elif args[0] == "--timeout":
            timeout, args = float(args[1]), args[2:]
        else:
            sys.exit(__doc__)
    cmd = args[1:]
    if not cmd:
        sys.exit(__doc__)
    seen, stop = {}, threading.Event()
    t0 = time.monotonic()
    wall0 = time.time()
    watcher = None
    if folder:
        watcher = threading.Thread(target=watch, args=(folder, stop, seen, t0), daemon=True)
        watcher.start()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    timer = threading.Timer(timeout, proc.kill) if timeout else None
    if timer:
        timer.start()
    lines = []
    for raw in proc.stderr:
        lines.append((time.monotonic() - t0, raw.decode("utf-8", "replace").rstrip("\n")))
    code = proc.wait()
    wall = time.monotonic() - t0
    timed_out = bool(timer) and not timer.is_alive() and code == -9
    if timer:
        timer.cancel()
    stop.set()
    if watcher:
        watcher.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    maxrss_kb = usage.ru_maxrss
    if log:
        with open(log, "w") as f:
            for t, line in lines:
                f.write("+%.3f %s\n" % (t, line))
    out = {"code": code, "wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
           "maxrss_mb": round(maxrss_kb / 1024, 1)}
    if timed_out:
        out["timed_out"] = True
    for t, line in lines:
        if "resumed from checkpoint" in line and "resumed_s" not in out:
            out["resumed_s"] = round(t, 3)
        m = re.match(r"vpq: (\d+) rows in, (\d+) rows out", line)
        if m:
            out["rows_in"], out["rows_out"], out["summary_s"] = int(m.group(1)), int(m.group(2)), round(t, 3)
        m = re.match(r"vpq: (\d+) checkpoint\(s\) in .* \((\d+) failed\); the last: (\d+) bytes of state in (\d+) ms", line)
        if m:
            out["checkpoints"], out["failed"] = int(m.group(1)), int(m.group(2))
            out["last_state_bytes"], out["last_ms"] = int(m.group(3)), int(m.group(4))
    if folder:
        cps = [seen[k] for k in sorted(seen)]
        # A checkpoint starts once the interval has passed since the previous one ended, so the
        # gap between two files' mtimes minus the interval is about the later one's duration.
        for c in cps:
            c["mtime_s"] = round(c.pop("mtime") - wall0, 3)
        out["watched"] = cps
    print(json.dumps(out))
    sys.exit(0)


if __name__ == "__main__":
    main()
