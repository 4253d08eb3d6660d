#!/usr/bin/python3
"""slowreader.py: readers that stop reading, for the flow-control tests.

Built on python3-websockets 10.4 (asyncio).  A websockets connection stops
reading its socket once max_queue (1) frames wait for recv(), so not
calling recv() is TCP back-pressure on the node.  Control is through
files, polled every 50 ms, so the test can measure the node meanwhile.

  slowreader.py joins HOST PORT --joins N --dir D
      Connect as a client, send N join frames at once and read nothing
      until D/go exists; D/sent says the joins went out.  Then read
      until the joined frame and one error per refused join, and print
      one JSON line: {"chats": C, "joined": [count...], "errors":
      {code: n}, "ids_unique": bool}.

  slowreader.py peer HOST PORT --id ID --dir D
      Be node ID for the node that dials HOST:PORT (its peer worker):
      take its hello, answer with a sync saying what we hold (each
      origin's unbroken run from 1 among what we received), and read and
      record every replicated chat, in order, in D/got ("ORIGIN SEQ"
      lines).  D/stall stops the reading while it exists; D/sync (then
      removed) sends a sync saying we hold nothing.  Runs until D/quit
      exists.
"""

import argparse
import asyncio
import json
import os
import sys

try:
    import websockets
except ImportError:  # pragma: no cover - reported, not hidden
    sys.stderr.write("slowreader.py: python3-websockets is not importable "
                     f"by {sys.executable}\n")
    sys.exit(1)


async def wait_file(path, present=True):
    while os.path.exists(path) != present:
        await asyncio.sleep(0.05)


async def joins(a):
    uri = f"ws://{a.host}:{a.port}/"
    ws = await websockets.connect(uri, max_size=None, max_queue=1,
                                  ping_interval=None, open_timeout=5)
    for _ in range(a.joins):
        # since {}: the whole history, not the newest join_history
        await ws.send(json.dumps({"type": "join", "from": "slow",
                                  "since": {}}))
    open(os.path.join(a.dir, "sent"), "w").close()
    await wait_file(os.path.join(a.dir, "go"))
    chats, joined, errors, ids = 0, [], {}, set()
    dup = False
    while True:
        try:
            raw = await asyncio.wait_for(ws.recv(), 5)
        except asyncio.TimeoutError:
            break
        f = json.loads(raw)
        t = f.get("type")
        if t == "chat":
            chats += 1
            dup = dup or f.get("id") in ids
            ids.add(f.get("id"))
        elif t == "joined":
            joined.append(f.get("count"))
        elif t == "error":
            errors[f.get("code")] = errors.get(f.get("code"), 0) + 1
        if joined and sum(errors.values()) >= a.joins - 1:
            break
    await ws.close()
    print(json.dumps({"chats": chats, "joined": joined, "errors": errors,
                      "ids_unique": not dup}), flush=True)


async def peer_session(a, ws, got, have):
    hello = json.loads(await ws.recv())
    if hello.get("type") != "hello":
        return
    empty = json.dumps({"type": "sync", "from": a.id, "have": {}})
    await ws.send(json.dumps({"type": "sync", "from": a.id, "have": have}))
    stall = os.path.join(a.dir, "stall")
    resync = os.path.join(a.dir, "sync")
    while not os.path.exists(os.path.join(a.dir, "quit")):
        if os.path.exists(resync):
            os.unlink(resync)
            await ws.send(empty)
        if os.path.exists(stall):
            await asyncio.sleep(0.05)
            continue
        try:
            raw = await asyncio.wait_for(ws.recv(), 0.05)
        except asyncio.TimeoutError:
            continue
        f = json.loads(raw)
        if f.get("type") == "chat" and f.get("replicated"):
            o, s = f.get("origin"), f.get("seq")
            got.write(f"{o} {s}\n")
            got.flush()
            if s == have.get(o, 0) + 1:
                have[o] = s


async def peer(a):
    got = open(os.path.join(a.dir, "got"), "a")
    quit_file = os.path.join(a.dir, "quit")
    have = {}

    async def handler(ws, _path=None):
        try:
            await peer_session(a, ws, got, have)
        except websockets.ConnectionClosed:
            pass

    async with websockets.serve(handler, a.host, a.port, max_size=None,
                                max_queue=1, ping_interval=None):
        open(os.path.join(a.dir, "listening"), "w").close()
        await wait_file(quit_file)
    got.close()


def main(argv):
    p = argparse.ArgumentParser(prog="slowreader.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    j = sub.add_parser("joins")
    j.add_argument("host")
    j.add_argument("port", type=int)
    j.add_argument("--joins", type=int, default=60)
    j.add_argument("--dir", required=True)
    q = sub.add_parser("peer")
    q.add_argument("host")
    q.add_argument("port", type=int)
    q.add_argument("--id", required=True)
    q.add_argument("--dir", required=True)
    a = p.parse_args(argv)
    if not a.host.startswith("127."):
        sys.stderr.write("slowreader.py: a loopback host only\n")
        return 1
    asyncio.run(joins(a) if a.cmd == "joins" else peer(a))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
