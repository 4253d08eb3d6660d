#!/usr/bin/python3
"""hostile.py: what a careless or hostile peer or client sends, in bulk.

Built on python3-websockets 10.4 (asyncio), like wsclient.py.  The frames
to send are read from FILE, one JSON text per line (a test writes them:
thousands of frames, or one of a megabyte, do not fit on a command line).
Frames received are printed as they came, one per line (not re-encoded:
a test can check how a node wrote an integer), and {"event": ...} lines
for closes and timeouts.

  frames HOST PORT FILE [--hello ID --to ID] [--wait S] [--count N]
        one connection: a hello from ID first when given, then every
        frame of FILE; print what comes back for S s (default 2) or
        until N frames came
  joins HOST PORT FILE --conns N
        N connections at once, each sending the frames of FILE; print,
        per connection, the first frame of type "error" or "joined"
        (history chats before it are skipped)

Exit status 0, or 1 when a connection failed or timed out (--timeout,
default 30 s in all).
"""

import argparse
import asyncio
import json
import sys

try:
    import websockets
except ImportError:  # pragma: no cover - reported, not hidden
    sys.stderr.write("hostile.py: python3-websockets is not importable by "
                     f"{sys.executable}\n")
    sys.exit(1)


def out(line):
    print(line, flush=True)


def event(**kw):
    out(json.dumps(kw))


def read_frames(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


async def connect(host, port):
    return await websockets.connect(f"ws://{host}:{port}/", max_size=None,
                                    open_timeout=5, close_timeout=2,
                                    ping_interval=None)


async def cmd_frames(a):
    frames = read_frames(a.file)
    ws = await connect(a.host, a.port)
    if a.hello:
        await ws.send(json.dumps({"type": "hello", "from": a.hello,
                                  "to": a.to or ""}))
    for fr in frames:
        await ws.send(fr)
    got = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + a.wait
    try:
        while a.count is None or got < a.count:
            left = end - loop.time()
            if left <= 0:
                break
            try:
                raw = await asyncio.wait_for(ws.recv(), left)
            except asyncio.TimeoutError:
                break
            out(raw if isinstance(raw, str) else
                json.dumps({"event": "binary", "len": len(raw)}))
            got += 1
    except websockets.ConnectionClosed as e:
        event(event="close", code=e.rcvd.code if e.rcvd else 1006)
        return 0
    await ws.close()
    return 0


async def one_join(a, frames, i):
    ws = await connect(a.host, a.port)
    for fr in frames:
        await ws.send(fr)
    try:
        while True:
            raw = await ws.recv()
            msg = json.loads(raw)
            if msg.get("type") in ("error", "joined"):
                out(raw)
                break
    except websockets.ConnectionClosed as e:
        event(event="close", conn=i, code=e.rcvd.code if e.rcvd else 1006)
    await ws.close()


async def cmd_joins(a):
    frames = read_frames(a.file)
    await asyncio.gather(*(one_join(a, frames, i) for i in range(a.conns)))
    return 0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="hostile.py")
    p.add_argument("--timeout", type=float, default=30.0)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("frames")
    for name in ("host", "port", "file"):
        s.add_argument(name, type=int if name == "port" else str)
    s.add_argument("--hello")
    s.add_argument("--to")
    s.add_argument("--wait", type=float, default=2.0)
    s.add_argument("--count", type=int)
    s = sub.add_parser("joins")
    for name in ("host", "port", "file"):
        s.add_argument(name, type=int if name == "port" else str)
    s.add_argument("--conns", type=int, required=True)
    return p.parse_args(argv)


def main(argv):
    a = parse_args(argv)
    cmd = {"frames": cmd_frames, "joins": cmd_joins}[a.cmd]
    try:
        return asyncio.run(asyncio.wait_for(cmd(a), a.timeout))
    except asyncio.TimeoutError:
        event(event="timeout")
        return 1
    except (OSError, websockets.WebSocketException) as e:
        event(event="error", error=str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
