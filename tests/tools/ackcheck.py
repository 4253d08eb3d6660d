#!/usr/bin/python3
"""ackcheck.py: is every acknowledged message in every node's history, and
do the nodes agree?  For the nodetalk cluster tests.

  ackcheck.py [--acked FILE]... [--present-only] [--quiet] HIST...

--acked FILE: lines "ID CID" (loadgen.py's --acked output; "ID" alone is
accepted too): messages some node acknowledged.  HIST: one node's history,
one JSON chat frame per line (nodetalk --history --json).

Checks, each a line "ackcheck: ..." on stdout when it fails:
  - every acked ID is in every history, with client_id CID when given;
  - each history is well formed: chats with id == origin-seq, unique ids,
    strictly increasing (lamport, origin) (the cluster order), seq 1..n
    without gaps per origin, and no client_id twice within one origin (a
    retried chat stored twice);
  - all histories are the same: the same ids in the same order, and the
    same origin, seq, lamport, ts, from, text and client_id for each id.
--present-only checks only the first point (for polling until caught up).

Exit status 0 when all hold, 1 otherwise.  Without --quiet a summary goes
to stdout on success.
"""

import argparse
import json
import sys

FIELDS = ("origin", "seq", "lamport", "ts", "from", "text", "client_id")


def load_hist(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise SystemExit(f"ackcheck: {path}:{n}: not JSON ({e})")
            if not isinstance(obj, dict):
                raise SystemExit(f"ackcheck: {path}:{n}: not an object")
            out.append(obj)
    return out


def load_acked(paths):
    acked = {}
    for p in paths:
        with open(p, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                cid = parts[1] if len(parts) > 1 else None
                if parts[0] in acked and acked[parts[0]] != cid:
                    print(f"ackcheck: {parts[0]} was acknowledged for two "
                          f"different chats: {acked[parts[0]]} and {cid}")
                    acked["!conflict"] = True
                acked[parts[0]] = cid
    return acked


def well_formed(name, hist, problems):
    seen = set()
    prev = None
    per_origin = {}
    cids = {}
    for n, m in enumerate(hist, 1):
        where = f"{name} #{n} ({m.get('id')})"
        if m.get("type") != "chat":
            problems.append(f"{where}: type is not chat")
            continue
        o, s, lam = m.get("origin"), m.get("seq"), m.get("lamport")
        if not isinstance(o, str) or not isinstance(s, int) or \
                not isinstance(lam, int):
            problems.append(f"{where}: origin/seq/lamport missing")
            continue
        if m.get("id") != f"{o}-{s}":
            problems.append(f"{where}: id is not origin-seq")
        if m.get("id") in seen:
            problems.append(f"{where}: duplicate id")
        seen.add(m.get("id"))
        key = (lam, o.encode())
        if prev is not None and not prev < key:
            problems.append(f"{where}: (lamport {lam}, origin {o}) is not "
                            f"after (lamport {prev[0]}, origin "
                            f"{prev[1].decode()}): not the cluster order")
        prev = key
        per_origin.setdefault(o, []).append(s)
        cid = m.get("client_id")
        if cid:
            if (o, cid) in cids:
                problems.append(f"{where}: client_id {cid} stored twice "
                                f"(also {cids[(o, cid)]})")
            cids[(o, cid)] = m.get("id")
    for o, seqs in per_origin.items():
        if sorted(seqs) != list(range(1, len(seqs) + 1)):
            missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
            problems.append(f"{name}: origin {o} is not gap-free: missing "
                            f"seq {missing[:10]}")


def main(argv):
    p = argparse.ArgumentParser(prog="ackcheck.py")
    p.add_argument("--acked", action="append", default=[])
    p.add_argument("--present-only", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("hist", nargs="+")
    a = p.parse_args(argv)

    acked = load_acked(a.acked)
    conflict = acked.pop("!conflict", False)
    hists = [(h, load_hist(h)) for h in a.hist]
    problems = []
    if conflict:
        problems.append("one id acknowledged for two different chats")
    for name, hist in hists:
        byid = {m.get("id"): m for m in hist}
        missing = [i for i in acked if i not in byid]
        if missing:
            problems.append(f"{name}: {len(missing)} of {len(acked)} acked "
                            f"messages missing, e.g. {sorted(missing)[:12]}")
        wrong = [i for i in acked if i in byid and acked[i] is not None and
                 byid[i].get("client_id") != acked[i]]
        if wrong:
            problems.append(
                f"{name}: {len(wrong)} acked ids hold another message, e.g. "
                + ", ".join(f"{i} acked for {acked[i]} but holds "
                            f"{byid[i].get('client_id')!r}/"
                            f"{byid[i].get('text')!r}"
                            for i in sorted(wrong)[:5]))
    if not a.present_only:
        for name, hist in hists:
            well_formed(name, hist, problems)
        base_name, base = hists[0]
        for name, hist in hists[1:]:
            ids0 = [m.get("id") for m in base]
            ids1 = [m.get("id") for m in hist]
            if ids0 != ids1:
                k = next((k for k in range(min(len(ids0), len(ids1)))
                          if ids0[k] != ids1[k]), min(len(ids0), len(ids1)))
                problems.append(
                    f"{name} differs from {base_name}: {len(ids1)} vs "
                    f"{len(ids0)} messages, first difference at #{k + 1}: "
                    f"{ids1[k:k + 3]} vs {ids0[k:k + 3]}; only in {name}: "
                    f"{sorted(set(ids1) - set(ids0))[:8]}, only in "
                    f"{base_name}: {sorted(set(ids0) - set(ids1))[:8]}")
                continue
            for m0, m1 in zip(base, hist):
                d = [f for f in FIELDS if m0.get(f) != m1.get(f)]
                if d:
                    problems.append(
                        f"{name} and {base_name} hold different messages "
                        f"as {m0.get('id')}: " + ", ".join(
                            f"{f} {m1.get(f)!r} vs {m0.get(f)!r}" for f in d))
                    break
    for pr in problems:
        print(f"ackcheck: {pr}")
    if problems:
        return 1
    if not a.quiet:
        print(f"ackcheck: {len(hists)} histories of "
              f"{'/'.join(str(len(h)) for _, h in hists)} messages; "
              f"all {len(acked)} acked messages present"
              + ("" if a.present_only else "; identical, cluster order, "
                 "gap-free, no duplicates"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
