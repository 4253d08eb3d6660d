#!/usr/bin/python3
"""ntjson.py: read JSON lines (nodetalk frames) on stdin for the shell tests.

  get FIELD        print FIELD of every line ("" when missing)
  where K=V...     print the lines whose fields all equal the given values
                   (compared as strings: type=chat, code=bad_json)
  after TYPE       print the lines after the first frame of that type
  count            print the number of lines
  check-chats      every line must be a stored chat frame: type "chat",
                   id == origin-seq, seq/lamport >= 1 and ts integers, from
                   and text strings; ids unique; lines in the cluster order,
                   strictly increasing (lamport, origin).  Exit 1 and say why
                   otherwise.

Every line must be a JSON object: anything else is an error (exit 1), so a
client that mixes prose into --json output is caught.
"""

import json
import sys


def frames():
    out = []
    for n, line in enumerate(sys.stdin, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            sys.exit(f"ntjson: line {n} is not JSON ({e}): {line[:200]!r}")
        if not isinstance(obj, dict):
            sys.exit(f"ntjson: line {n} is not a JSON object: {line[:200]!r}")
        out.append((line, obj))
    return out


def as_str(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_chats(fs):
    seen = set()
    prev = None
    for n, (line, f) in enumerate(fs, 1):
        where = f"frame {n} ({line[:160]})"
        if f.get("type") != "chat":
            return f"{where}: type is not \"chat\""
        for k in ("id", "origin", "from", "text"):
            if not isinstance(f.get(k), str):
                return f"{where}: \"{k}\" is not a string"
        for k in ("seq", "lamport", "ts"):
            if not is_uint(f.get(k)):
                return f"{where}: \"{k}\" is not a non-negative integer"
        if f["seq"] < 1 or f["lamport"] < 1:
            return f"{where}: seq and lamport start at 1"
        if f["id"] != f"{f['origin']}-{f['seq']}":
            return f"{where}: id is not origin-seq"
        if f["id"] in seen:
            return f"{where}: id {f['id']} appears twice"
        seen.add(f["id"])
        key = (f["lamport"], f["origin"])
        if prev is not None and not prev < key:
            return f"{where}: not after {prev} in (lamport, origin) order"
        prev = key
    return None


def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd, args = argv[0], argv[1:]
    fs = frames()
    if cmd == "get" and len(args) == 1:
        for _, f in fs:
            print(as_str(f.get(args[0])))
    elif cmd == "where" and args:
        want = [a.split("=", 1) for a in args]
        for line, f in fs:
            if all(len(kv) == 2 and as_str(f.get(kv[0])) == kv[1]
                   for kv in want):
                print(line)
    elif cmd == "after" and len(args) == 1:
        hit = False
        for line, f in fs:
            if hit:
                print(line)
            elif f.get("type") == args[0]:
                hit = True
    elif cmd == "count" and not args:
        print(len(fs))
    elif cmd == "check-chats" and not args:
        why = check_chats(fs)
        if why is not None:
            print(f"ntjson: {why}", file=sys.stderr)
            return 1
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
