#!/usr/bin/python3
"""loadgen.py: send many chats to one nodetalk node and record every ack.

Built on python3-websockets 10.4 (asyncio), like wsclient.py.  It opens one
WebSocket connection to HOST:PORT and sends chats

    {"type":"chat","from":SENDER,"text":"PREFIX-i","id":"PREFIX-i"}

for i = 1, 2, ... (the text is the client id, so a test can match acks,
histories and texts; --size pads it with " xxx..." to that many bytes),
keeping at most --window chats unacknowledged.  Each
ack is checked (its client_id must be the oldest outstanding chat: acks on
one connection come in send order) and appended to --acked as one line

    ID CID          e.g. "A-17 ldA-17"

flushed at once, so the file holds exactly what was acknowledged even if
loadgen itself is killed.  It stops after --count chats were acknowledged
(0: no limit), when --stop-file exists, or at --timeout.

An error frame means that chat was not acknowledged: it is dropped and
counted, and loadgen exits 1 at the end.  With --retry-code CODE an error
with that code (e.g. "unavailable": the node could not store it now) is
answered instead by sending the same chat again, same id, after 0.2 s;
such retries are counted apart and are not errors.

The connection dying (the node was killed, a partition) is not an error:
without --reconnect loadgen stops and exits 0 with what was acknowledged.
With --reconnect it dials again (every 0.2 s) until the stop condition and
resends every unacknowledged chat with the same id, which the node must
store once (an idempotent retry after a lost ack).

Exit status: 0, or 1 when the node answered an error frame, an ack did not
match, or the arguments are wrong.  A summary line goes to stderr:
  loadgen HOST: acked N sent M reconnects R errors E
"""

import argparse
import asyncio
import json
import os
import sys
import time

try:
    import websockets
except ImportError:  # pragma: no cover - reported, not hidden
    sys.stderr.write("loadgen.py: python3-websockets is not importable by "
                     f"{sys.executable}\n")
    sys.exit(1)


class Gen:
    def __init__(self, a):
        self.a = a
        self.next_i = 1          # next new chat number
        self.unacked = []        # chat numbers sent and not acked, in order
        self.acked = 0
        self.sent = 0
        self.reconnects = 0
        self.errors = 0
        self.retried = 0
        self.bad = 0
        self.out = open(a.acked, "a", buffering=1) if a.acked else None
        self.deadline = time.monotonic() + a.timeout
        self.drain_until = None

    def cid(self, i):
        return f"{self.a.prefix}-{i}"

    def done(self):
        if self.a.count and self.acked >= self.a.count:
            return True
        if self.a.stop_file and os.path.exists(self.a.stop_file):
            return True
        return time.monotonic() >= self.deadline

    def frame(self, i):
        text = self.cid(i)
        if len(text) < self.a.size:
            text += " " + "x" * (self.a.size - len(text) - 1)
        return json.dumps({"type": "chat", "from": self.a.sender,
                           "text": text, "id": self.cid(i)})

    def record(self, ack):
        line = f"{ack.get('id')} {ack.get('client_id')}\n"
        if self.out:
            self.out.write(line)
            self.out.flush()

    async def session(self, ws):
        """Run one connection until done (True) or it dies (raises)."""
        # A retry first: everything sent on the last connection and not
        # acknowledged goes again, with the same id.
        for i in self.unacked:
            await ws.send(self.frame(i))
            self.sent += 1
        while True:
            stopping = self.done()
            while (not stopping and len(self.unacked) < self.a.window and
                   (not self.a.count or
                    self.acked + len(self.unacked) < self.a.count)):
                i = self.next_i
                self.next_i += 1
                self.unacked.append(i)
                await ws.send(self.frame(i))
                self.sent += 1
                if self.a.delay_ms:
                    break
            if not self.unacked:
                return True
            if stopping:
                # Wait a little for the acks of what is on the wire.
                if self.drain_until is None:
                    self.drain_until = time.monotonic() + 5
                if time.monotonic() >= min(self.drain_until,
                                           self.deadline + 5):
                    return True
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except asyncio.TimeoutError:
                continue
            try:
                msg = json.loads(raw)
            except (ValueError, TypeError):
                continue
            if not isinstance(msg, dict):
                continue
            t = msg.get("type")
            if t == "ack":
                want = self.cid(self.unacked[0])
                if msg.get("client_id") != want:
                    sys.stderr.write(f"loadgen: ack {json.dumps(msg)} "
                                     f"does not match the oldest chat "
                                     f"{want}\n")
                    self.bad += 1
                    return True
                self.unacked.pop(0)
                self.acked += 1
                self.record(msg)
                if self.a.delay_ms:
                    await asyncio.sleep(self.a.delay_ms / 1000)
            elif t == "error" and self.unacked and \
                    msg.get("code") in self.a.retry_code:
                # Answers come in send order: this is the oldest chat.
                # Again, with the same id, after the others on the wire.
                i = self.unacked.pop(0)
                self.retried += 1
                await asyncio.sleep(0.2)
                self.unacked.append(i)
                await ws.send(self.frame(i))
                self.sent += 1
            elif t == "error":
                sys.stderr.write(f"loadgen: error frame {json.dumps(msg)}\n")
                self.errors += 1
                # The chat is not stored: give up on it, keep going.
                if self.unacked:
                    self.unacked.pop(0)

    async def run(self):
        uri = f"ws://{self.a.host}:{self.a.port}/"
        first = True
        while True:
            if not first:
                if not self.a.reconnect or self.done():
                    return
                await asyncio.sleep(0.2)
                if self.done():
                    return
            try:
                ws = await websockets.connect(uri, open_timeout=3,
                                              close_timeout=1,
                                              ping_interval=None,
                                              max_size=None)
            except (OSError, asyncio.TimeoutError,
                    websockets.InvalidHandshake, websockets.ConnectionClosed):
                if first and not self.a.reconnect:
                    sys.stderr.write(f"loadgen: cannot connect to {uri}\n")
                    return
                first = False
                continue
            if not first:
                self.reconnects += 1
            first = False
            try:
                if await self.session(ws):
                    await ws.close()
                    return
            except (websockets.ConnectionClosed, OSError):
                pass
            finally:
                await ws.close()


def main(argv):
    p = argparse.ArgumentParser(prog="loadgen.py")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--sender", default="loadgen")
    p.add_argument("--prefix", required=True)
    p.add_argument("--count", type=int, default=0)
    p.add_argument("--window", type=int, default=1)
    p.add_argument("--acked")
    p.add_argument("--stop-file")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--delay-ms", type=float, default=0.0,
                   help="pause after each ack (and send one at a time)")
    p.add_argument("--reconnect", action="store_true")
    p.add_argument("--size", type=int, default=0,
                   help="pad each text to this many bytes")
    p.add_argument("--retry-code", action="append", default=[],
                   help="on an error frame with this code, send that "
                        "chat again (same id)")
    a = p.parse_args(argv)
    if a.window < 1 or not a.host.startswith("127."):
        sys.stderr.write("loadgen: --window >= 1 and a loopback host\n")
        return 1
    g = Gen(a)
    try:
        asyncio.run(g.run())
    finally:
        sys.stderr.write(f"loadgen {a.host} {a.prefix}: acked {g.acked} "
                         f"sent {g.sent} reconnects {g.reconnects} "
                         f"errors {g.errors} retried {g.retried} "
                         f"unacked {len(g.unacked)}\n")
        if g.out:
            g.out.close()
    return 1 if g.errors or g.bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
