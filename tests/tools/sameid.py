#!/usr/bin/python3
"""sameid.py: send one chat with one client id to several nodes at once.

Built on python3-websockets 10.4 (asyncio), like wsclient.py.  For the
retry guarantee of engine = "nats": a client that retries on any gateway
gets the same message.  It connects to PORT on every HOST, then for each
of COUNT ids (PREFIX-1, PREFIX-2, ...) sends

    {"type":"chat","from":SENDER,"text":ID,"id":ID}

on every connection at the same moment and waits for every answer.  One
JSON line per id on stdout:

    {"cid": "PREFIX-1", "acks": {"127.0.0.1": "nodetalk-7", ...}}

with null for a host that answered an error (the error goes to stderr).

  sameid.py PORT HOST... --prefix P [--count N] [--sender S]

Exit status: 0 when every host acknowledged every id, 1 otherwise.
"""

import argparse
import asyncio
import json
import sys

try:
    import websockets
except ImportError:  # pragma: no cover - reported, not hidden
    sys.stderr.write("sameid.py: python3-websockets is not importable by "
                     f"{sys.executable}\n")
    sys.exit(1)


async def answer(ws, host, cid):
    """The ack id for cid on this connection, or None after an error."""
    while True:
        msg = json.loads(await ws.recv())
        if not isinstance(msg, dict):
            continue
        if msg.get("type") == "ack" and msg.get("client_id") == cid:
            return msg.get("id")
        if msg.get("type") == "error":
            sys.stderr.write(f"sameid: {host}: {json.dumps(msg)}\n")
            return None


async def one(conns, cid, sender):
    frame = json.dumps({"type": "chat", "from": sender, "text": cid,
                        "id": cid})
    await asyncio.gather(*(ws.send(frame) for _, ws in conns))
    acks = await asyncio.gather(*(answer(ws, h, cid) for h, ws in conns))
    return {h: a for (h, _), a in zip(conns, acks)}


async def run(a):
    conns = []
    for h in a.hosts:
        ws = await websockets.connect(f"ws://{h}:{a.port}/", max_size=None,
                                      open_timeout=5, close_timeout=1,
                                      ping_interval=None)
        conns.append((h, ws))
    ok = True
    try:
        for i in range(1, a.count + 1):
            cid = f"{a.prefix}-{i}"
            acks = await one(conns, cid, a.sender)
            print(json.dumps({"cid": cid, "acks": acks}), flush=True)
            ok = ok and all(v is not None for v in acks.values())
    finally:
        for _, ws in conns:
            await ws.close()
    return 0 if ok else 1


def main(argv):
    p = argparse.ArgumentParser(prog="sameid.py")
    p.add_argument("port", type=int)
    p.add_argument("hosts", nargs="+")
    p.add_argument("--prefix", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--sender", default="sameid")
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args(argv)
    try:
        return asyncio.run(asyncio.wait_for(run(a), a.timeout))
    except (asyncio.TimeoutError, OSError, websockets.InvalidHandshake,
            websockets.ConnectionClosed) as e:
        sys.stderr.write(f"sameid: {type(e).__name__}: {e}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
