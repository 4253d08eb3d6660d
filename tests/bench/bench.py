#!/usr/bin/env python3
"""bench.py: load one nodetalkd cluster and report what a user would feel.

CLIENTS connections, spread over the given nodes, each send MESSAGES chats
with up to WINDOW unacknowledged at a time.  Reported, as one JSON object:
throughput (acks per second), ack latency percentiles (send to ack), and
how long after the last ack every node held every message (convergence,
polled through /status).  Loopback only; bounded by --timeout.
"""
import argparse
import asyncio
import json
import sys
import time
import urllib.request

import websockets


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, int(round(p / 100.0 * (len(sorted_vals) - 1))))
    return sorted_vals[i]


async def sender(host, port, name, count, window, lat):
    uri = "ws://%s:%d/" % (host, port)
    async with websockets.connect(uri, max_size=None) as ws:
        sent = {}
        sem = asyncio.Semaphore(window)

        async def reader():
            got = 0
            while got < count:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "ack":
                    t0 = sent.pop(frame.get("client_id"), None)
                    if t0 is not None:
                        lat.append(time.perf_counter() - t0)
                        got += 1
                        sem.release()
                elif frame.get("type") == "error":
                    raise RuntimeError("error frame: %r" % frame)

        task = asyncio.create_task(reader())
        for i in range(count):
            await sem.acquire()
            cid = "%s-%d" % (name, i)
            sent[cid] = time.perf_counter()
            await ws.send(json.dumps({"type": "chat", "from": name,
                                      "text": "bench %s %d" % (name, i),
                                      "id": cid}))
        await task


def status(host, port):
    with urllib.request.urlopen("http://%s:%d/status" % (host, port),
                                timeout=5) as r:
        return json.load(r)


async def converge(nodes, want, deadline):
    while time.monotonic() < deadline:
        counts = [status(h, p)["messages"] for h, p in nodes]
        if all(c >= want for c in counts):
            return True
        await asyncio.sleep(0.02)
    return False


async def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--node", action="append", required=True,
                    help="HOST:PORT of a node (repeat); senders go round")
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    nodes = [(n.rsplit(":", 1)[0], int(n.rsplit(":", 1)[1])) for n in a.node]
    before = max(status(h, p)["messages"] for h, p in nodes)
    lat = []
    t0 = time.perf_counter()
    tasks = [sender(*nodes[i % len(nodes)], "c%d" % i, a.messages, a.window,
                    lat) for i in range(a.clients)]
    await asyncio.wait_for(asyncio.gather(*tasks), a.timeout)
    t_acked = time.perf_counter()
    total = a.clients * a.messages
    ok = await converge(nodes, before + total, time.monotonic() + a.timeout)
    t_conv = time.perf_counter()
    lat.sort()
    print(json.dumps({
        "messages": total,
        "throughput_per_s": round(total / (t_acked - t0), 1),
        "ack_p50_ms": round(pct(lat, 50) * 1000, 3),
        "ack_p90_ms": round(pct(lat, 90) * 1000, 3),
        "ack_p99_ms": round(pct(lat, 99) * 1000, 3),
        "converged": ok,
        "convergence_ms": round((t_conv - t_acked) * 1000, 1),
    }))
    return 0 if ok and len(lat) == total else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
