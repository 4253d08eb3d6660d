#!/usr/bin/python3
"""wsclient.py: an independent WebSocket client for the nodetalk cluster tests.

Built on python3-websockets 10.4 (asyncio), so it shares no code with the C
client.  Every subcommand prints what it sees as JSON lines on stdout (frames
as received, plus {"event": ...} lines for closes and timeouts) and exits 0
on success, 1 on failure; each is bounded by --timeout (default 10 s).

  send HOST PORT FROM TEXT [--id ID]   chat, wait for the ack, print it
  history HOST PORT                    join; print the chat frames sent
                                       before {"type":"joined"}
  join-wait HOST PORT N                join; print every frame until N live
                                       chats arrived after the joined frame
  pages HOST PORT [--limit L]          join without since, then page back
                                       with history requests (before the
                                       oldest chat held, L at a time) until
                                       history_end says no older exist;
                                       print every frame, each chat with a
                                       "page" member (0: the join's)
  raw HOST PORT FRAME... [--wait S] [--count N]
                                       send each text frame; print every
                                       frame received for S s (default 1)
                                       or until N frames came, and the close
                                       code if the node closed
  binary HOST PORT                     send a binary frame; print the close
  oversize HOST PORT NBYTES            send a text frame of NBYTES; print
                                       the close
  badutf8 HOST PORT                    send a text frame that is not UTF-8;
                                       print the close
  http HOST PORT PATH                  plain HTTP GET; print the status

Use Debian's /usr/bin/python3 ($NT_PYTHON): it has python3-websockets.
"""

import argparse
import asyncio
import http.client
import json
import sys

try:
    import websockets
    from websockets.frames import Opcode
except ImportError:  # pragma: no cover - reported, not hidden
    sys.stderr.write("wsclient.py: python3-websockets is not importable by "
                     f"{sys.executable}\n")
    sys.exit(1)


def out(obj):
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def ws_uri(host, port):
    return f"ws://{host}:{port}/"


def show(raw):
    """Print one received frame; return it parsed (or None)."""
    if isinstance(raw, bytes):
        out({"event": "binary", "len": len(raw)})
        return None
    try:
        msg = json.loads(raw)
    except ValueError:
        out({"event": "text", "data": raw})
        return None
    out(msg)
    return msg if isinstance(msg, dict) else None


def show_close(exc):
    code = exc.rcvd.code if exc.rcvd is not None else 1006
    reason = exc.rcvd.reason if exc.rcvd is not None else ""
    out({"event": "close", "code": code, "reason": reason})
    return code


async def connect(host, port):
    return await websockets.connect(ws_uri(host, port), max_size=None,
                                    open_timeout=5, close_timeout=2,
                                    ping_interval=None)


async def cmd_send(a):
    frame = {"type": "chat", "from": a.sender, "text": a.text}
    if a.id is not None:
        frame["id"] = a.id
    ws = await connect(a.host, a.port)
    try:
        await ws.send(json.dumps(frame))
        while True:
            raw = await ws.recv()
            try:
                msg = json.loads(raw)
            except (ValueError, TypeError):
                continue
            if not isinstance(msg, dict):
                continue
            if msg.get("type") == "ack":
                out(msg)
                return 0
            if msg.get("type") == "error":
                out(msg)
                return 1
    except websockets.ConnectionClosed as e:
        show_close(e)
        return 1
    finally:
        await ws.close()


async def join(ws, who):
    await ws.send(json.dumps({"type": "join", "from": who}))


async def cmd_history(a):
    ws = await connect(a.host, a.port)
    try:
        await join(ws, "wsclient-history")
        while True:
            raw = await ws.recv()
            try:
                msg = json.loads(raw)
            except (ValueError, TypeError):
                continue
            if not isinstance(msg, dict):
                continue
            if msg.get("type") == "joined":
                return 0
            if msg.get("type") == "chat":
                out(msg)
    except websockets.ConnectionClosed as e:
        show_close(e)
        return 1
    finally:
        await ws.close()


async def cmd_join_wait(a):
    ws = await connect(a.host, a.port)
    joined = False
    live = 0
    try:
        await join(ws, "wsclient-wait")
        while live < a.n:
            msg = show(await ws.recv())
            if msg is None:
                continue
            if msg.get("type") == "joined":
                joined = True
            elif msg.get("type") == "chat" and joined:
                live += 1
        return 0
    except websockets.ConnectionClosed as e:
        show_close(e)
        return 1
    finally:
        await ws.close()


async def cmd_pages(a):
    ws = await connect(a.host, a.port)
    page = 0
    first = {}          # page -> its first (oldest) chat
    before = None
    try:
        await join(ws, "wsclient-pages")
        while True:
            msg = json.loads(await ws.recv())
            if msg.get("type") == "chat":
                msg["page"] = page
                first.setdefault(page, msg)
            out(msg)
            if msg.get("type") == "error":
                return 1
            if msg.get("type") not in ("joined", "history_end"):
                continue
            if not msg.get("older"):
                return 0
            before = first.get(page, before)
            page += 1
            req = {"type": "history", "limit": a.limit,
                   "before": {"origin": before["origin"],
                              "seq": before["seq"],
                              "lamport": before["lamport"]}}
            out({"event": "request", "frame": req})
            await ws.send(json.dumps(req))
    except websockets.ConnectionClosed as e:
        show_close(e)
        return 1
    finally:
        await ws.close()


async def collect(ws, seconds, count=None):
    """Print frames for `seconds` (or until `count` frames came); return the
    close code, or None while the connection is open."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    got = 0
    try:
        while count is None or got < count:
            left = end - loop.time()
            if left <= 0:
                return None
            try:
                raw = await asyncio.wait_for(ws.recv(), left)
            except asyncio.TimeoutError:
                return None
            show(raw)
            got += 1
        return None
    except websockets.ConnectionClosed as e:
        return show_close(e)


async def cmd_raw(a):
    ws = await connect(a.host, a.port)
    try:
        for f in a.frames:
            try:
                await ws.send(f)
            except websockets.ConnectionClosed:
                break
        await collect(ws, a.wait, a.count)
        return 0
    finally:
        await ws.close()


async def expect_close(ws, send):
    """Send something the node must refuse, then wait for its close."""
    try:
        await send()
    except websockets.ConnectionClosed:
        pass            # closed while we were still writing: read why
    code = await collect(ws, max(0.5, a_timeout - 1))
    if code is None:
        out({"event": "timeout"})
        return 1
    return 0


async def cmd_binary(a):
    ws = await connect(a.host, a.port)
    try:
        return await expect_close(
            ws, lambda: ws.send(b"\x00\x01\x02 binary is not chat"))
    finally:
        await ws.close()


async def cmd_oversize(a):
    head = '{"type":"chat","from":"big","text":"'
    tail = '"}'
    pad = max(0, a.nbytes - len(head) - len(tail))
    frame = head + "x" * pad + tail
    ws = await connect(a.host, a.port)
    try:
        return await expect_close(ws, lambda: ws.send(frame))
    finally:
        await ws.close()


async def cmd_badutf8(a):
    # websockets refuses to send invalid UTF-8 as text, so write the frame
    # with the protocol's low-level writer (it masks it as a client must).
    data = b'{"type":"chat","from":"utf8","text":"bad \xc3\x28 \xff utf8"}'
    ws = await connect(a.host, a.port)
    try:
        return await expect_close(
            ws, lambda: ws.write_frame(True, Opcode.TEXT, data))
    finally:
        await ws.close()


def cmd_http(a):
    conn = http.client.HTTPConnection(a.host, a.port, timeout=a_timeout)
    try:
        conn.request("GET", a.path)
        r = conn.getresponse()
        body = r.read(4096).decode("utf-8", "replace")
        out({"status": r.status,
             "content_type": r.getheader("Content-Type"),
             "body": body[:200]})
        return 0
    finally:
        conn.close()


a_timeout = 10.0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="wsclient.py")
    p.add_argument("--timeout", type=float, default=10.0)
    sub = p.add_subparsers(dest="cmd", required=True)

    def hp(name):
        s = sub.add_parser(name)
        s.add_argument("host")
        s.add_argument("port", type=int)
        return s

    s = hp("send")
    s.add_argument("sender")
    s.add_argument("text")
    s.add_argument("--id")
    hp("history")
    s = hp("join-wait")
    s.add_argument("n", type=int)
    s = hp("pages")
    s.add_argument("--limit", type=int, default=0)
    s = hp("raw")
    s.add_argument("frames", nargs="+")
    s.add_argument("--wait", type=float, default=1.0)
    s.add_argument("--count", type=int)
    hp("binary")
    s = hp("oversize")
    s.add_argument("nbytes", type=int)
    hp("badutf8")
    s = hp("http")
    s.add_argument("path")
    return p.parse_args(argv)


COMMANDS = {
    "send": cmd_send, "history": cmd_history, "join-wait": cmd_join_wait,
    "raw": cmd_raw, "binary": cmd_binary, "oversize": cmd_oversize,
    "badutf8": cmd_badutf8, "pages": cmd_pages,
}


def main(argv):
    global a_timeout
    a = parse_args(argv)
    a_timeout = a.timeout
    try:
        if a.cmd == "http":
            return cmd_http(a)
        return asyncio.run(asyncio.wait_for(COMMANDS[a.cmd](a), a.timeout))
    except asyncio.TimeoutError:
        out({"event": "timeout"})
        return 1
    except (OSError, websockets.InvalidHandshake,
            http.client.HTTPException) as e:
        out({"event": "error", "error": f"{type(e).__name__}: {e}"})
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
