#!/usr/bin/python3
"""rawclient.py: a hostile client on raw sockets, for the cluster tests.

What a careless or malicious client does to a node's port: refused
handshakes by the hundred, requests it never reads the answers to, idle
sockets, fragments by the thousand, hellos in another node's name.  No
WebSocket library: frames are built by hand (masked, as a client must).
Each subcommand prints JSON lines on stdout and exits 0 when it could do
what it was asked (what the node did is for the test to judge), 1 if not.

  refused HOST PORT N          N upgrades with a bad key (400) and N with
                               version 8 (426); each reads the answer and
                               closes; prints {"event":"statuses", STATUS:
                               COUNT...}
  reset HOST PORT N K          N connections that each send K pipelined
                               GET / and a GET / with Connection: close,
                               read nothing and reset (RST)
  idle HOST PORT N [--src A] [--hold S] [--stop-file F]
                               N WebSocket upgrades from source address A,
                               then silence; prints the statuses counted,
                               then, after S seconds (or once F exists),
                               how the upgraded ones ended: {"event":
                               "ends", "open"|"eof"|CODE: COUNT...}
  pipeline HOST PORT K --pid P K pipelined GET / without reading; prints
                               the growth of P's resident memory, then
                               reads every answer and counts them
  flood HOST PORT ping|bad BYTES --pid P
                               BYTES of pings (or of frames that are not
                               JSON) without reading, after a warm-up of
                               an eighth of that on another connection;
                               prints P's growth during the flood
  fragments HOST PORT N        one text message in N frames; prints what
                               came back (frames, close code and reason)
  frames HOST PORT FRAME... [--src A] [--big N] [--wait S]
                               upgrade, send each FRAME (then one text
                               message of N bytes); prints what came back
                               for S seconds and how it ended
  slowjoin HOST PORT [--stop-file F] [--hold S]
                               join with a tiny receive buffer and read
                               nothing until F exists (or S seconds);
                               then read all and print how it ended
  hold HOST PORT N [--hold S]  N plain TCP connections held S seconds
  chats HOST PORT N SIZE [--prefix P] [--window W]
                               N chats of SIZE bytes of text ("P-i-yyy..."),
                               at most W unacknowledged; prints the count
                               of acks
  sink HOST PORT [--hold S] [--stop-file F]
                               listen on HOST:PORT like a node that hangs:
                               answer WebSocket upgrades, then read nothing
                               (with a 4 KiB receive buffer) until S
                               seconds passed or F exists; then print, for
                               each connection, whether its other end
                               closed it ("closed") or not ("open")
  link HOST PORT FROM [--stop-file F] [--hold S] [--then FRAME]
                               say hello as node FROM and keep the link,
                               printing what comes, until F exists (or S
                               seconds or the node closes it); then send
                               FRAME if the link is still open, and print
                               what comes for 3 more seconds
"""

import argparse
import base64
import json
import os
import socket
import struct
import sys
import time


def out(obj):
    print(json.dumps(obj), flush=True)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def connect(host, port, src=None, rcvbuf=None, timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def upgrade_request(key=None, version="13"):
    key = key or base64.b64encode(os.urandom(16)).decode()
    return ("GET / HTTP/1.1\r\nHost: node\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            "Sec-WebSocket-Version: %s\r\n\r\n" % (key, version)).encode()


def read_head(s):
    """The response head (bytes), and what came after it."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def status_of(head):
    parts = head.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/"):
        return int(parts[1])
    return 0


def frame(payload, opcode=1, fin=True):
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | opcode
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, 0x80 | 127, n)
    if n == 0:
        return hdr + mask
    m = (mask * (n // 4 + 1))[:n]
    data = (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big"))
    return hdr + mask + data.to_bytes(n, "big")


class Reader:
    """Server frames from a socket, unmasked as a server sends them."""

    def __init__(self, s, rest=b""):
        self.s = s
        self.buf = rest
        self.eof = False

    def _fill(self):
        try:
            d = self.s.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def next(self):
        """(opcode, payload), or None at EOF or on a timeout."""
        while True:
            b = self.buf
            if len(b) >= 2:
                n = b[1] & 0x7f
                off = 2
                if n == 126 and len(b) >= 4:
                    n = struct.unpack("!H", b[2:4])[0]
                    off = 4
                elif n == 127 and len(b) >= 10:
                    n = struct.unpack("!Q", b[2:10])[0]
                    off = 10
                if n < 126 or off > 2:
                    if len(b) >= off + n:
                        self.buf = b[off + n:]
                        return b[0] & 0x0f, b[off:off + n]
            if self.eof or not self._fill():
                return None


def show_frames(rd, until, quiet_open=False):
    """Print frames until the close, EOF or the deadline; return the end."""
    while time.monotonic() < until:
        rd.s.settimeout(max(0.05, until - time.monotonic()))
        f = rd.next()
        if f is None:
            if rd.eof:
                out({"event": "eof"})
                return "eof"
            continue
        op, data = f
        if op == 8:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
            out({"event": "close", "code": code,
                 "reason": data[2:].decode("utf-8", "replace")})
            try:
                rd.s.sendall(frame(data[:2], opcode=8))
            except OSError:
                pass
            return code
        if op == 9:
            try:
                rd.s.sendall(frame(data, opcode=10))
            except OSError:
                pass
            continue
        if op == 1:
            try:
                out(json.loads(data))
            except ValueError:
                out({"event": "text", "data": data.decode("utf-8", "replace")})
        else:
            out({"event": "frame", "opcode": op, "len": len(data)})
    if not quiet_open:
        out({"event": "open"})
    return "open"


def ws_open(host, port, src=None, rcvbuf=None):
    s = connect(host, port, src, rcvbuf)
    s.sendall(upgrade_request())
    head, rest = read_head(s)
    return s, status_of(head), rest


def cmd_refused(a):
    counts = {}
    for req in (upgrade_request(key="bad"), upgrade_request(version="8")):
        for _ in range(a.n):
            s = connect(a.host, a.port)
            s.sendall(req)
            head, _ = read_head(s)
            st = str(status_of(head))
            counts[st] = counts.get(st, 0) + 1
            s.close()
    out(dict(event="statuses", **counts))


def cmd_reset(a):
    req = b"GET / HTTP/1.1\r\nHost: node\r\n\r\n" * a.k
    req += b"GET / HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n"
    for _ in range(a.n):
        s = connect(a.host, a.port, rcvbuf=4096)
        s.setblocking(False)
        try:
            s.send(req)
        except OSError:
            pass
        time.sleep(0.02)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        s.close()
    out({"reset": a.n})


def wait_stop(a):
    end = time.monotonic() + a.hold
    while time.monotonic() < end:
        if a.stop_file and os.path.exists(a.stop_file):
            return
        time.sleep(0.05)


def cmd_idle(a):
    socks, st = [], {}
    for _ in range(a.n):
        try:
            s, code, rest = ws_open(a.host, a.port, a.src)
        except OSError as e:
            st["error"] = st.get("error", 0) + 1
            out({"event": "connect-error", "error": str(e)})
            continue
        st[str(code)] = st.get(str(code), 0) + 1
        if code == 101:
            socks.append(Reader(s, rest))
        else:
            s.close()
    out(dict(event="statuses", **st))
    wait_stop(a)
    ends = {}
    for rd in socks:
        rd.s.settimeout(0.05)
        end = "open"
        while True:
            f = rd.next()
            if f is None:
                end = "eof" if rd.eof else "open"
                break
            if f[0] == 8:
                end = str(struct.unpack("!H", f[1][:2])[0]) \
                    if len(f[1]) >= 2 else "1005"
                break
        ends[end] = ends.get(end, 0) + 1
    out(dict(event="ends", **ends))


def send_unread(s, data, seconds):
    """Send data without reading anything back; bytes sent."""
    s.setblocking(False)
    sent, end = 0, time.monotonic() + seconds
    while sent < len(data) and time.monotonic() < end:
        try:
            sent += s.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
    s.setblocking(True)
    return sent


def cmd_pipeline(a):
    s = connect(a.host, a.port)
    req = b"GET / HTTP/1.1\r\nHost: node\r\n\r\n"
    before = rss_kib(a.pid)
    sent = send_unread(s, req * a.k, 20)
    time.sleep(1)
    out({"sent": sent // len(req), "of": a.k,
         "grew_kib": rss_kib(a.pid) - before})
    s.settimeout(10)
    out({"answers": count_answers(s, a.k)})


def count_answers(s, want):
    """Read HTTP answers until want of them came (or the node stops)."""
    buf, pos, answers = bytearray(), 0, 0
    while answers < want:
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            break
        if not d:
            break
        buf += d
        while True:
            end = buf.find(b"\r\n\r\n", pos)
            if end == -1:
                break
            cl = 0
            for line in bytes(buf[pos:end]).split(b"\r\n")[1:]:
                n, _, v = line.partition(b":")
                if n.strip().lower() == b"content-length":
                    cl = int(v)
            if len(buf) < end + 4 + cl:
                break
            answers += 1
            pos = end + 4 + cl
        del buf[:pos]
        pos = 0
    return answers


def cmd_flood(a):
    one = frame(b"x" * 125, opcode=9) if a.kind == "ping" else frame(b"{")
    # A first, smaller flood on a connection of its own: the node's
    # allocator (AddressSanitizer's shadow memory, say) grows to what the
    # work needs, and what grows during the second one is memory held.
    for part, n in (("warm-up", a.bytes // 8), ("flood", a.bytes)):
        s, code, _ = ws_open(a.host, a.port, rcvbuf=4096)
        if code != 101:
            out({"event": "refused", "status": code})
            return 1
        before = rss_kib(a.pid)
        sent = send_unread(s, one * (n // len(one)), 20)
        time.sleep(1)
        if part == "flood":
            out({"sent": sent, "grew_kib": rss_kib(a.pid) - before})
        s.close()
    return 0


def cmd_fragments(a):
    s, code, rest = ws_open(a.host, a.port)
    if code != 101:
        out({"event": "refused", "status": code})
        return 1
    data = frame(b"{", fin=False) + frame(b" ", 0, False) * (a.n - 2) + \
        frame(b"}", 0, True)
    s.setblocking(False)
    send_unread(s, data, 5)
    s.setblocking(True)
    show_frames(Reader(s, rest), time.monotonic() + 5)
    return 0


def cmd_frames(a):
    s, code, rest = ws_open(a.host, a.port, a.src)
    if code != 101:
        out({"event": "refused", "status": code})
        return 1
    rd = Reader(s, rest)
    for f in a.frame:
        s.sendall(frame(f))
    if a.big:
        time.sleep(0.3)
        text = '{"type":"chat","from":"big","text":"%s"}' % ("y" * a.big)
        try:
            s.sendall(frame(text))
        except OSError as e:
            out({"event": "send-error", "error": str(e)})
    show_frames(rd, time.monotonic() + a.wait)
    return 0


def cmd_slowjoin(a):
    s, code, rest = ws_open(a.host, a.port, rcvbuf=4096)
    if code != 101:
        out({"event": "refused", "status": code})
        return 1
    s.sendall(frame('{"type":"join","from":"slow"}'))
    out({"event": "joined-sent"})
    wait_stop(a)
    s.settimeout(10)
    rd = Reader(s, rest)
    chats = 0
    while True:
        f = rd.next()
        if f is None:
            out({"event": "eof" if rd.eof else "open", "chats": chats})
            return 0
        if f[0] == 8:
            code = struct.unpack("!H", f[1][:2])[0] if len(f[1]) >= 2 \
                else 1005
            out({"event": "close", "code": code, "chats": chats})
            return 0
        chats += 1


def cmd_hold(a):
    socks = []
    for _ in range(a.n):
        try:
            socks.append(connect(a.host, a.port, timeout=2))
        except OSError:
            break
    out({"held": len(socks)})
    wait_stop(a)
    return 0


def cmd_chats(a):
    s, code, rest = ws_open(a.host, a.port)
    if code != 101:
        out({"event": "refused", "status": code})
        return 1
    rd = Reader(s, rest)
    sent = acked = 0
    while acked < a.n:
        while sent < a.n and sent - acked < a.window:
            sent += 1
            text = "%s-%d-" % (a.prefix, sent)
            text += "y" * max(0, a.size - len(text))
            s.sendall(frame(json.dumps({"type": "chat", "from": a.prefix,
                                        "text": text})))
        f = rd.next()
        if f is None:
            break
        if f[0] == 1 and json.loads(f[1]).get("type") == "ack":
            acked += 1
        elif f[0] == 8:
            break
    out({"acked": acked})
    return 0 if acked == a.n else 1


def cmd_link(a):
    s, code, rest = ws_open(a.host, a.port, a.src)
    if code != 101:
        out({"event": "refused", "status": code})
        return 1
    rd = Reader(s, rest)
    s.sendall(frame(json.dumps({"type": "hello", "from": a.sender,
                                "to": "?"})))
    end = time.monotonic() + a.hold
    state = "open"
    while time.monotonic() < end and state == "open":
        if a.stop_file and os.path.exists(a.stop_file):
            break
        state = show_frames(rd, time.monotonic() + 0.1, True)
    if state == "open" and a.then:
        try:
            s.sendall(frame(a.then))
            out({"event": "sent"})
        except OSError as e:
            out({"event": "send-error", "error": str(e)})
        show_frames(rd, time.monotonic() + 3)
    return 0


def accept_key(key):
    import hashlib
    guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    return base64.b64encode(hashlib.sha1((key + guid).encode()).digest())


def cmd_sink(a):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ls.bind((a.host, a.port))
    ls.listen(16)
    ls.settimeout(0.1)
    out({"event": "listening"})
    conns = []
    end = time.monotonic() + a.hold
    while time.monotonic() < end:
        if a.stop_file and os.path.exists(a.stop_file):
            break
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        c.settimeout(5)
        try:
            head, _ = read_head(c)
        except OSError:
            c.close()
            continue
        key = b""
        for line in head.split(b"\r\n"):
            n, _, v = line.partition(b":")
            if n.strip().lower() == b"sec-websocket-key":
                key = v.strip()
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket"
                  b"\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
                  accept_key(key.decode()) + b"\r\n\r\n")
        conns.append(c)
        out({"event": "accepted", "n": len(conns)})
    ends = {}
    for c in conns:
        c.settimeout(0.2)
        end = "open"
        try:
            while True:
                d = c.recv(1 << 20)
                if not d:
                    end = "closed"
                    break
        except socket.timeout:
            pass
        except OSError:
            end = "closed"
        ends[end] = ends.get(end, 0) + 1
        c.close()
    out(dict(event="ends", **ends))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name, *args):
        sp = sub.add_parser(name)
        sp.add_argument("host")
        sp.add_argument("port", type=int)
        for arg in args:
            sp.add_argument(arg, type=int)
        return sp

    add("refused", "n")
    add("reset", "n", "k")
    sp = add("idle", "n")
    sp.add_argument("--src")
    sp.add_argument("--hold", type=float, default=1)
    sp.add_argument("--stop-file")
    sp = add("pipeline", "k")
    sp.add_argument("--pid", type=int, required=True)
    sp = add("flood")
    sp.add_argument("kind", choices=["ping", "bad"])
    sp.add_argument("bytes", type=int)
    sp.add_argument("--pid", type=int, required=True)
    add("fragments", "n")
    sp = add("frames")
    sp.add_argument("frame", nargs="*")
    sp.add_argument("--src")
    sp.add_argument("--big", type=int, default=0)
    sp.add_argument("--wait", type=float, default=3)
    sp = add("slowjoin")
    sp.add_argument("--stop-file")
    sp.add_argument("--hold", type=float, default=30)
    sp = add("chats", "n", "size")
    sp.add_argument("--prefix", default="big")
    sp.add_argument("--window", type=int, default=50)
    sp = add("sink")
    sp.add_argument("--hold", type=float, default=30)
    sp.add_argument("--stop-file")
    sp = add("link")
    sp.add_argument("sender")
    sp.add_argument("--src")
    sp.add_argument("--stop-file")
    sp.add_argument("--hold", type=float, default=30)
    sp.add_argument("--then")
    sp = add("hold", "n")
    sp.add_argument("--hold", type=float, default=5)
    sp.add_argument("--stop-file")
    a = p.parse_args()
    try:
        rc = globals()["cmd_" + a.cmd](a)
    except OSError as e:
        out({"event": "error", "error": str(e)})
        return 1
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
