#!/usr/bin/python3
"""mkcorpus.py: writes the seed inputs of the fuzz targets.

  tests/fuzz/mkcorpus.py [DIR]     (default: the corpus/ beside this file)

Each target gets a few dozen small inputs in DIR/<target>/, named after
what they hold: valid frames of every kind and the near misses a fuzzer
would take long to find (a number one past 2^53, a record with a bad
CRC).  The files are kept in the tree, so `make check` replays them
without Python; run this again after a frame or record format changes.
Inputs found by fuzzing that once crashed a target go to
tests/fuzz/crashes/<target>/ instead, by hand, with the fix.
"""

import json
import os
import struct
import sys
import zlib


# --- a minimal MessagePack encoder (what the channel and the log use) -----

def mp(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        if v >= -32:
            return struct.pack(">b", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xa0 | len(b)]) + b
        if len(b) < 256:
            return b"\xd9" + bytes([len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, bytes):
        return b"\xc4" + bytes([len(v)]) + v
    if isinstance(v, list):
        return bytes([0x90 | len(v)]) + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        out = bytes([0x80 | len(v)]) if len(v) < 16 else \
            b"\xde" + struct.pack(">H", len(v))
        return out + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


def msg(origin="A", seq=1, lamport=1, ts=1764000000123, frm="kamlesh",
        text="hello", cid=None):
    m = {"origin": origin, "seq": seq, "lamport": lamport, "ts": ts,
         "from": frm, "text": text}
    if cid is not None:
        m["cid"] = cid
    return m


# --- wire: JSON frames from clients and peers ------------------------------

def wire():
    chat = {"type": "chat", "from": "kamlesh", "text": "hello"}
    rep = {"type": "chat", "replicated": True, "id": "A-17", "origin": "A",
           "seq": 17, "lamport": 42, "ts": 1764000000123, "from": "k",
           "text": "hi"}
    frames = {
        "chat": chat,
        "chat-id-after": dict(chat, id="3f2a6c1e", after=41),
        "chat-unicode": dict(chat, text="h\u00e9llo \U0001F600 \\u0000"),
        "chat-escapes": '{"type":"chat","from":"a\\u0041","text":"\\ud83d\\ude00\\n"}',
        "chat-lone-surrogate": '{"type":"chat","from":"a","text":"\\ud800"}',
        "chat-empty-text": dict(chat, text=""),
        "chat-control-from": dict(chat, **{"from": "a\u0001b"}),
        "chat-long-from": dict(chat, **{"from": "f" * 65}),
        "chat-after-2p53": '{"type":"chat","from":"a","text":"b","after":9007199254740992}',
        "chat-after-exp": '{"type":"chat","from":"a","text":"b","after":9.00719925474099e+15}',
        "chat-after-frac": '{"type":"chat","from":"a","text":"b","after":1.5}',
        "chat-after-neg": '{"type":"chat","from":"a","text":"b","after":-1}',
        "replicated": rep,
        "replicated-cid": dict(rep, client_id="c1"),
        "replicated-seed": {"type": "chat", "replicated": True,
                            "from": "k", "text": "seed"},
        "replicated-no-seq": {k: v for k, v in rep.items() if k != "seq"},
        "replicated-no-lamport": {k: v for k, v in rep.items()
                                  if k != "lamport"},
        "replicated-seed-origin": dict(rep, origin="A/seed"),
        "replicated-lamport-max": dict(rep, lamport=9007199254740991),
        "join": {"type": "join", "from": "k"},
        "join-since": {"type": "join", "since": {"A": 12, "B": 40,
                                                 "B/seed": 3}},
        "join-since-bad-key": {"type": "join", "since": {"a b": 1}},
        "join-since-many": {"type": "join",
                            "since": {f"N{i}": i for i in range(20)}},
        "join-since-array": {"type": "join", "since": [1, 2]},
        "hello": {"type": "hello", "from": "A", "to": "B", "version": 1},
        "hello-auth": {"type": "hello", "from": "A", "to": "B",
                       "ts": 1764000000123, "auth": "ab" * 32},
        "sync": {"type": "sync", "from": "B", "have": {"A": 16, "C": 9}},
        "ack": {"type": "ack", "id": "A-17", "origin": "A", "seq": 17,
                "lamport": 42, "ts": 1, "client_id": "c"},
        "error": {"type": "error", "code": "bad_json", "message": "x"},
        "joined": {"type": "joined", "node": "A", "count": 2,
                   "recovered": True},
        "unknown-type": {"type": "dance"},
        "not-object": [1, 2, 3],
        "truncated": '{"type":"chat","from":"x","text":',
        "nested-deep": '{"type":"chat","x":' + "[" * 200 + "]" * 200 + "}",
        "duplicate-keys": '{"type":"chat","from":"a","from":"b","text":"c"}',
    }
    for name, f in frames.items():
        yield name, (f if isinstance(f, str) else
                     json.dumps(f, ensure_ascii=False)).encode()


# --- channel: msgpack frames between the master and its workers ------------

def channel():
    frames = {
        "hello": {"t": 100, "v": 1, "pid": 4242},
        "hello-bad-version": {"t": 100, "v": 99, "pid": 1},
        "chat": {"t": 200, "conn": 7, "t_us": 5, "after": 3, "from": "k",
                 "text": "hello", "cid": "c1"},
        "ack": {"t": 201, "conn": 7, "msg": msg(cid="c1")},
        "join": {"t": 202, "conn": 7, "since": {"A": 3, "B": 1}},
        "history": {"t": 203, "conn": 7, "msg": msg()},
        "joined": {"t": 204, "conn": 7, "count": 2, "recovered": True},
        "release": {"t": 217, "msgs": [msg(origin="B", seq=9, lamport=12),
                                       msg(cid="c1")],
                    "acks": [0, 7], "push": [True, False]},
        "release-uneven": {"t": 217, "msgs": [msg()], "acks": [],
                           "push": [True]},
        "peer-hello": {"t": 206, "conn": 3, "peer": "B"},
        "peer-chat": {"t": 207, "conn": 3, "peer": "B", "msg": msg("B")},
        "peer-chat-seq0": {"t": 207, "conn": 3, "peer": "B",
                           "msg": msg("B", seq=0)},
        "peer-chat-no-text": {"t": 207, "peer": "B",
                              "msg": {"origin": "B", "seq": 1,
                                      "lamport": 1, "ts": 1, "from": "x"}},
        "seed-chat": {"t": 208, "from": "k", "text": "seed"},
        "sync": {"t": 209, "conn": 3, "have": {"A": 1, "B": 2}},
        "sync-bad-have": {"t": 209, "conn": 3, "have": {"A": "x"}},
        "status": {"t": 210, "req": 1, "what": "status"},
        "fail": {"t": 211, "conn": 7, "code": "recovering", "message": "m"},
        "clients": {"t": 212, "n": 3},
        "replicate": {"t": 300, "peer": "", "msgs": [msg(), msg(seq=2)]},
        "sync-req": {"t": 301, "peer": "B", "have": {"A": 1}},
        "link": {"t": 302, "peer": "B", "up": True},
        "peers": {"t": 103, "ids": ["B", "C"], "seeds": []},
        "negative-ts": {"t": 201, "conn": 7, "msg": msg(ts=-5)},
        "batch": {"t": 106, "frames": [
            {"t": 200, "conn": 7, "t_us": 5, "after": 3, "from": "k",
             "text": "one"},
            {"t": 207, "conn": 3, "peer": "B", "msg": msg("B")}]},
        "batch-in-batch": {"t": 106, "frames": [{"t": 106, "frames": []}]},
        "not-a-map": [1, 2, 3],
        "nil": None,
    }
    for name, f in frames.items():
        yield name, mp(f)
    yield "two-frames", mp(frames["hello"]) + mp(frames["release"])
    yield "truncated", mp(frames["release"])[:-3]
    yield "huge-str-length", b"\x81\xa1t\xdb\xff\xff\xff\xf0abc"
    yield "huge-map", b"\xdf\xff\xff\xff\xff"


# --- http: request heads (and the same bytes as a handshake answer) --------

def http():
    up = ("GET / HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\n"
          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
          "\r\nSec-WebSocket-Version: 13\r\n\r\n")
    heads = {
        "get-root": "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "get-status": "GET /status HTTP/1.1\r\nHost: a\r\n\r\n",
        "head-metrics": "HEAD /metrics HTTP/1.0\r\n\r\n",
        "get-query": "GET /index.html?x=1&y=%20 HTTP/1.1\r\n\r\n",
        "post-body": "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        "chunked": "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "keepalive-close": "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        "keepalive-10": "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "pipelined": "GET / HTTP/1.1\r\n\r\n" * 3 + "GET /status HTTP/1.1\r\n\r\n",
        "upgrade": up,
        "upgrade-v8": up.replace("Version: 13", "Version: 8"),
        "upgrade-no-key": up.replace("Sec-WebSocket-Key", "X-Key"),
        "upgrade-bad-key": up.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
        "upgrade-tokens": up.replace("Connection: Upgrade",
                                     "Connection: keep-alive, Upgrade"),
        "lf-only": "GET / HTTP/1.1\nHost: a\n\n",
        "http2": "GET / HTTP/2.0\r\n\r\n",
        "bad-method": "G@T / HTTP/1.1\r\n\r\n",
        "no-version": "GET /\r\n\r\n",
        "header-no-colon": "GET / HTTP/1.1\r\nBroken\r\n\r\n",
        "header-folded": "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
        "many-headers": "GET / HTTP/1.1\r\n" + "".join(
            f"X-{i}: {i}\r\n" for i in range(70)) + "\r\n",
        "long-path": "GET /" + "a" * 2000 + " HTTP/1.1\r\n\r\n",
        "incomplete": "GET / HTTP/1.1\r\nHost: a\r\n",
        "nul-byte": "GET /\x00 HTTP/1.1\r\n\r\n",
        "response-101": ("HTTP/1.1 101 Switching Protocols\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
                         "\r\n\r\n"),
        "response-101-bad-accept": ("HTTP/1.1 101 Switching Protocols\r\n"
                                    "Upgrade: websocket\r\n"
                                    "Connection: Upgrade\r\n"
                                    "Sec-WebSocket-Accept: x\r\n\r\n"),
        "response-503": "HTTP/1.1 503 Service Unavailable\r\n\r\n",
    }
    for name, h in heads.items():
        yield name, h.encode("latin-1")


# --- log: the records of data_dir/messages.log -----------------------------

def record(payload, crc=None):
    return struct.pack(">II", len(payload),
                       zlib.crc32(payload) if crc is None else crc) + payload


def log():
    r1 = record(mp(msg("A", 1, 1)))
    r2 = record(mp(msg("B", 1, 2, cid="c")))
    r3 = record(mp(msg("A", 2, 3)))
    logs = {
        "empty": b"",
        "one": r1,
        "three": r1 + r2 + r3,
        "out-of-order": r3 + r2 + r1,
        "duplicate": r1 + r1,
        "gap": r1 + record(mp(msg("A", 3, 4))),
        "seed-origin": record(mp(msg("A/seed", 1, 1))),
        "torn-header": r1 + r2[:5],
        "torn-payload": r1 + r2[:-4],
        "bad-crc": r1 + record(mp(msg("B", 1, 2)), crc=0) + r3,
        "zero-length": r1 + struct.pack(">II", 0, 0) + r3,
        "huge-length": r1 + struct.pack(">II", 0xffffffff, 0) + r3,
        "not-a-map": record(mp([1, 2, 3])),
        "trailing-bytes": record(mp(msg()) + b"\x00"),
        "seq-zero": record(mp(msg(seq=0))),
        "no-text": record(mp({"origin": "A", "seq": 1, "lamport": 1,
                              "ts": 1, "from": "x"})),
        "long-origin": record(mp(msg("O" * 60))),
        "lamport-2p53": record(mp(msg(lamport=2 ** 53))),
        "lamport-u64-max": record(mp(msg(lamport=2 ** 64 - 1))),
        "negative-ts": record(mp(msg(ts=-1))),
        "equal-lamport": record(mp(msg("B", 1, 1))) + r1,
        "junk-then-valid": b"\x00" * 16 + r1,
        "valid-after-damage": r1 + b"\xde\xad\xbe\xef" + r2 + r3,
    }
    for name, data in logs.items():
        yield name, data
    yield "many", b"".join(record(mp(msg("ABC"[i % 3], i // 3 + 1, i + 1)))
                           for i in range(60))


def main(argv):
    top = argv[1] if len(argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus")
    for target, gen in (("wire", wire), ("channel", channel),
                        ("http", http), ("log", log)):
        d = os.path.join(top, target)
        os.makedirs(d, exist_ok=True)
        for name, data in gen():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
