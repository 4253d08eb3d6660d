#!/usr/bin/python3
"""ntlog.py: read a nodetalkd message log (data_dir/messages.log) for the
cluster tests, without msgpack bindings.

A record is [u32 BE length][u32 BE crc32 of payload][payload: msgpack map]
(doc/protocol.md section 10).

  ntlog.py list LOG      one line per whole, valid record:
                         "OFFSET LENGTH ORIGIN SEQ CID" (CID "-" if none);
                         then "end OFFSET" where valid records stop, and
                         "size SIZE"
  ntlog.py last LOG      the last valid record's line only

Exit 1 when the file cannot be read.
"""

import struct
import sys
import zlib


def unpack(buf, i):
    """Decode one msgpack object at buf[i]; return (obj, next index)."""
    b = buf[i]
    i += 1
    if b <= 0x7f:
        return b, i
    if 0x80 <= b <= 0x8f:
        return unpack_map(buf, i, b & 0x0f)
    if 0x90 <= b <= 0x9f:
        return unpack_array(buf, i, b & 0x0f)
    if 0xa0 <= b <= 0xbf:
        n = b & 0x1f
        return buf[i:i + n].decode("utf-8", "replace"), i + n
    if b == 0xc0:
        return None, i
    if b in (0xc2, 0xc3):
        return b == 0xc3, i
    if b >= 0xe0:
        return b - 0x100, i
    fixed = {0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q",
             0xd0: ">b", 0xd1: ">h", 0xd2: ">i", 0xd3: ">q",
             0xca: ">f", 0xcb: ">d"}
    if b in fixed:
        fmt = fixed[b]
        n = struct.calcsize(fmt)
        return struct.unpack_from(fmt, buf, i)[0], i + n
    lens = {0xd9: ">B", 0xda: ">H", 0xdb: ">I",
            0xc4: ">B", 0xc5: ">H", 0xc6: ">I"}
    if b in lens:
        fmt = lens[b]
        n = struct.unpack_from(fmt, buf, i)[0]
        i += struct.calcsize(fmt)
        data = buf[i:i + n]
        if b >= 0xd9:
            data = data.decode("utf-8", "replace")
        return data, i + n
    if b in (0xdc, 0xdd):
        fmt = ">H" if b == 0xdc else ">I"
        n = struct.unpack_from(fmt, buf, i)[0]
        return unpack_array(buf, i + struct.calcsize(fmt), n)
    if b in (0xde, 0xdf):
        fmt = ">H" if b == 0xde else ">I"
        n = struct.unpack_from(fmt, buf, i)[0]
        return unpack_map(buf, i + struct.calcsize(fmt), n)
    raise ValueError(f"msgpack type 0x{b:02x} not supported")


def unpack_map(buf, i, n):
    d = {}
    for _ in range(n):
        k, i = unpack(buf, i)
        v, i = unpack(buf, i)
        d[k] = v
    return d, i


def unpack_array(buf, i, n):
    out = []
    for _ in range(n):
        v, i = unpack(buf, i)
        out.append(v)
    return out, i


def records(data):
    off = 0
    out = []
    while off + 8 <= len(data):
        n, crc = struct.unpack_from(">II", data, off)
        if n == 0 or off + 8 + n > len(data):
            break
        payload = data[off + 8:off + 8 + n]
        if zlib.crc32(payload) != crc:
            break
        try:
            m, used = unpack(payload, 0)
        except (ValueError, IndexError, struct.error):
            break
        if used != n or not isinstance(m, dict):
            break
        out.append((off, n, m))
        off += 8 + n
    return out, off


def line(r):
    off, n, m = r
    return f"{off} {n} {m.get('origin')} {m.get('seq')} {m.get('cid') or '-'}"


def main(argv):
    if len(argv) != 2 or argv[0] not in ("list", "last"):
        sys.exit(__doc__)
    try:
        with open(argv[1], "rb") as f:
            data = f.read()
    except OSError as e:
        print(f"ntlog: {e}", file=sys.stderr)
        return 1
    recs, end = records(data)
    if argv[0] == "last":
        if recs:
            print(line(recs[-1]))
        return 0
    for r in recs:
        print(line(r))
    print(f"end {end}")
    print(f"size {len(data)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
