"""http_load.py URL PID SECONDS CLIENTS PULLS — one phase of bench/run_http_load.sh: for
SECONDS, CLIENTS server-sent-event subscribers (spread over the demo's streams, each
reconnecting with Last-Event-ID when the server drops it) and, when CLIENTS > 0, a loop of
PULLS pull requests a second (GET /api/tables/fleet, GET /api/tables/batteries, POST
/api/query, GET /metrics in turn; 0: back to back) against `vpq run --http` at URL (loopback
only). Prints one JSON object: the engine's rows in
per second and simulated seconds per wall second over the phase (from /metrics), the vpq
process's CPU (PID) and the clients' own, and what the clients got: events, bytes, overflows, reconnects, pull
requests by status and their latency percentiles. Standard library only."""
import asyncio
import json
import re
import resource
import sys
import time
import urllib.parse

STREAMS = ["telemetry", "site_meters", "site_load", "plant_load", "load_forecast", "dispatch"]
PULLS = [("GET", "/api/tables/fleet", None), ("GET", "/api/tables/batteries", None),
         ("POST", "/api/query", "SELECT site, avg(soc) AS soc, max(seen) AS ts FROM batteries WHERE site IS NOT NULL GROUP BY site"),
         ("GET", "/metrics", None)]


def own_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime, in clock ticks of 1/100 s


async def request(host, port, method, path, body=None):
    """One request on a new connection: (status, body)."""
    reader, writer = await asyncio.open_connection(host, port)
    data = body.encode() if body else b""
    writer.write(("%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                  % (method, path, host, len(data))).encode() + data)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


async def metrics(host, port):
    """rows in and the telemetry's event time (s), from /metrics."""
    _, body = await request(host, port, "GET", "/metrics")
    text = body.decode()
    rows = int(re.search(r"^vpq_rows_in_total (\d+)", text, re.M).group(1))
    lag = float(re.search(r'^vpq_watermark_lag_seconds\{relation="telemetry"\} (\S+)', text, re.M).group(1))
    return rows, time.time() - lag


async def subscriber(host, port, stream, deadline, stats):
    """An event-stream client that reads to the deadline, reconnecting with Last-Event-ID."""
    last_id = None
    while time.time() < deadline:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            stats["refused"] += 1
            await asyncio.sleep(0.5)
            continue
        head = "GET /api/streams/%s HTTP/1.1\r\nHost: %s\r\n" % (stream, host)
        if last_id is not None:
            head += "Last-Event-ID: %s\r\n" % last_id
        writer.write((head + "\r\n").encode())
        carry = b""
        try:
            while time.time() < deadline:
                chunk = await asyncio.wait_for(reader.read(65536), max(0.1, deadline - time.time()))
                if not chunk:
                    break
                stats["bytes"] += len(chunk)
                text = carry + chunk
                stats["events"] += text.count(b"\ndata: ")
                stats["overflows"] += text.count(b"event: overflow")
                at = text.rfind(b"\nid: ")
                end = text.find(b"\n", at + 5)
                if at >= 0 and end > 0:
                    last_id = text[at + 5:end].decode()
                carry = text[-6:]
        except (asyncio.TimeoutError, OSError):
            pass
        writer.close()
        if time.time() < deadline:
            stats["reconnects"] += 1


async def puller(host, port, deadline, rate, stats):
    """Pull requests, `rate` a second (0: back to back), until the deadline."""
    i, t0 = 0, time.time()
    while time.time() < deadline:
        if rate:
            await asyncio.sleep(max(0.0, t0 + i / rate - time.time()))
        method, path, body = PULLS[i % len(PULLS)]
        i += 1
        start = time.perf_counter()
        status, _ = await request(host, port, method, path, body)
        stats["latency"].append(time.perf_counter() - start)
        stats["status"][status] = stats["status"].get(status, 0) + 1


async def main():
    url, pid, seconds, clients, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    parsed = urllib.parse.urlparse(url)
    host, port = parsed.hostname, parsed.port
    assert host in ("127.0.0.1", "localhost", "::1"), "loopback only"
    stats = {"events": 0, "bytes": 0, "overflows": 0, "reconnects": 0, "refused": 0, "latency": [], "status": {}}
    rows0, event0 = await metrics(host, port)
    cpu0, own0, t0 = cpu_seconds(pid), own_cpu_seconds(), time.time()
    deadline = t0 + seconds
    tasks = [subscriber(host, port, STREAMS[i % len(STREAMS)], deadline, stats) for i in range(clients)]
    tasks += [puller(host, port, deadline, rate, stats)] if clients else []
    tasks.append(asyncio.sleep(seconds))
    await asyncio.gather(*tasks)
    rows1, event1 = await metrics(host, port)
    cpu1, own1, t1 = cpu_seconds(pid), own_cpu_seconds(), time.time()
    wall = t1 - t0
    latency = sorted(stats["latency"])
    pct = lambda p: round(1000 * latency[min(len(latency) - 1, int(p * len(latency)))], 1) if latency else None
    print(json.dumps({
        "clients": clients, "seconds": round(wall, 1),
        "rows_in_per_s": round((rows1 - rows0) / wall), "sim_s_per_s": round((event1 - event0) / wall),
        "vpq_cpu_pct": round(100 * (cpu1 - cpu0) / wall), "clients_cpu_pct": round(100 * (own1 - own0) / wall), "events": stats["events"], "mib": round(stats["bytes"] / 2**20, 1),
        "overflows": stats["overflows"], "reconnects": stats["reconnects"], "refused": stats["refused"],
        "pulls": len(latency), "pull_status": stats["status"], "pull_ms_p50": pct(0.5), "pull_ms_p99": pct(0.99),
    }))


asyncio.run(main())
