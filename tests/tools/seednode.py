#!/usr/bin/python3
"""seednode.py: the Python prototype's node, for mixed-cluster tests.

It behaves as the seed does (shared/seed/nodetalk-seed.md), so a test can put
it in a cluster with nodetalkd nodes marked `seed = true;`:

- a WebSocket server on --port at --listen;
- an outgoing link to each --peer that sends {"type":"hello","from":ME,
  "to":PEER} and then only prints what comes back; it retries every second
  while the peer is down;
- MESSAGES in memory: a client chat (no "replicated") is stored, then sent to
  every peer on a FRESH connection as {"type":"chat","from":..,"text":..,
  "replicated":true} without hello; a replicated chat is stored and never
  forwarded.  There is no dedup, no identity and no ordering, as in the seed;
- unknown fields and frame types ("sync", "origin", ...) are ignored.

Additions for tests, which the seed did not have: a client chat is answered
with {"type":"ack","id":"C/seed-N"}; "join" is answered with the stored
messages as chat frames, then {"type":"joined",...}, then live chats; and
--dump FILE gets every stored message appended as one JSON line.

  seednode.py --node-id C --listen 127.0.0.3 --port P \
      --peer A=127.0.0.1 --peer B=127.0.0.2 [--dump FILE]
"""

import argparse
import asyncio
import json
import signal
import sys

import websockets


class SeedNode:
    def __init__(self, node_id, listen, port, peers, dump):
        self.id = node_id
        self.listen = listen
        self.port = port
        self.peers = peers          # [(id, host)] in the order given
        self.dump = open(dump, "a", encoding="utf-8") if dump else None
        self.messages = []          # MESSAGES, as the seed keeps them
        self.joined = set()         # client connections that said join

    def log(self, text):
        print(f"[{self.id}] {text}", flush=True)

    def uri(self, host):
        return f"ws://{host}:{self.port}"

    def store(self, msg):
        self.messages.append(msg)
        self.log(f"CHAT from {msg.get('from')}: {msg.get('text')!r} "
                 f"(total messages here: {len(self.messages)})")
        if self.dump is not None:
            self.dump.write(json.dumps(msg, ensure_ascii=False) + "\n")
            self.dump.flush()

    @staticmethod
    def as_chat(msg):
        frame = {k: v for k, v in msg.items() if k != "replicated"}
        frame["type"] = "chat"
        return json.dumps(frame, ensure_ascii=False)

    async def push(self, msg):
        frame = self.as_chat(msg)
        for ws in list(self.joined):
            try:
                await ws.send(frame)
            except websockets.ConnectionClosed:
                self.joined.discard(ws)

    async def broadcast(self, msg):
        """Send a client chat to every peer, each on a fresh connection."""
        rep = {"type": "chat", "from": msg.get("from"),
               "text": msg.get("text"), "replicated": True}
        for peer_id, host in self.peers:
            uri = self.uri(host)
            self.log(f"Broadcasting chat to {peer_id} at {uri}")
            try:
                async with websockets.connect(uri, open_timeout=3,
                                              close_timeout=2) as ws:
                    await ws.send(json.dumps(rep))
            except (OSError, asyncio.TimeoutError,
                    websockets.WebSocketException) as e:
                # The seed loses the message for that peer: no retry.
                self.log(f"Could not broadcast to {peer_id} ({e})")

    async def on_chat(self, ws, msg):
        self.store(msg)
        await self.push(msg)
        if msg.get("replicated") is True:
            return              # the seed's loop rule: never forward
        await self.broadcast(msg)
        await ws.send(json.dumps(
            {"type": "ack", "id": f"{self.id}/seed-{len(self.messages)}"}))

    async def on_join(self, ws):
        for msg in list(self.messages):
            await ws.send(self.as_chat(msg))
        await ws.send(json.dumps({"type": "joined", "node": self.id,
                                  "count": len(self.messages)}))
        self.joined.add(ws)

    async def handle_incoming(self, ws, path=None):
        remote = ws.remote_address
        self.log(f"Incoming connection from {remote}")
        try:
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except (ValueError, TypeError):
                    self.log(f"Received non-JSON: {raw!r}")
                    continue
                self.log(f"Received message: {msg}")
                if not isinstance(msg, dict):
                    continue
                kind = msg.get("type")
                if kind == "chat":
                    await self.on_chat(ws, msg)
                elif kind == "join":
                    await self.on_join(ws)
                # hello, sync and anything else: printed, otherwise ignored
        except websockets.ConnectionClosed:
            pass
        finally:
            self.joined.discard(ws)
            self.log(f"Incoming connection closed from {remote}")

    async def connect_to_peer(self, peer_id, host):
        uri = self.uri(host)
        while True:
            try:
                self.log(f"Trying to connect to peer {peer_id} at {uri}")
                async with websockets.connect(uri, open_timeout=3) as ws:
                    await ws.send(json.dumps({"type": "hello",
                                              "from": self.id,
                                              "to": peer_id}))
                    self.log(f"Sent hello to {peer_id}")
                    async for raw in ws:
                        try:
                            msg = json.loads(raw)
                        except (ValueError, TypeError):
                            self.log(f"Received non-JSON from {peer_id}: "
                                     f"{raw!r}")
                            continue
                        self.log(f"Received from {peer_id}: {msg}")
                self.log(f"Connection to {peer_id} closed, retrying in 1s...")
            except (OSError, asyncio.TimeoutError,
                    websockets.WebSocketException) as e:
                self.log(f"Could not connect to {peer_id} ({e}), "
                         "retrying in 1s...")
            await asyncio.sleep(1)

    async def run(self):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.log(f"Starting WebSocket server on port {self.port}...")
        server = await websockets.serve(self.handle_incoming, self.listen,
                                        self.port)
        tasks = [asyncio.create_task(self.connect_to_peer(p, h))
                 for p, h in self.peers]
        self.log(f"Ready. Peers: {[p for p, _ in self.peers]}")
        await stop.wait()
        self.log("Stopping")
        for t in tasks:
            t.cancel()
        server.close()
        await server.wait_closed()


def peer_arg(s):
    peer_id, sep, host = s.partition("=")
    if not sep or not peer_id or not host:
        raise argparse.ArgumentTypeError(f"--peer wants ID=HOST, not {s!r}")
    return peer_id, host


def main(argv):
    p = argparse.ArgumentParser(prog="seednode.py")
    p.add_argument("--node-id", required=True)
    p.add_argument("--listen", default="0.0.0.0")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--peer", type=peer_arg, action="append", default=[])
    p.add_argument("--dump")
    a = p.parse_args(argv)
    node = SeedNode(a.node_id, a.listen, a.port, a.peer, a.dump)
    try:
        asyncio.run(node.run())
    except OSError as e:
        node.log(f"Cannot serve on {a.listen}:{a.port}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
