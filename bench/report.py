#!/usr/bin/python3
"""report.py: medians of a nodetalk-bench suite run, a table and a plot.

  bench/report.py DIR [--baseline DIR [--baseline-name NAME]]

DIR holds one JSON object per run (COMMAND-N.json, from nodetalk-bench
--json) and machine.txt.  Writes into DIR:

  summary.json  per command and figure: median, min, max, runs
  summary.md    the figures of the performance targets (median, min..max), with
                the baseline's medians and the ratio when one is given
  bench.svg     throughput (bars: median, whiskers: min..max) and latency
                percentiles (log scale), beside the baseline's if given

Only runs that succeeded ("ok": true) count; failed runs are counted and
named in summary.md.  Python's standard library only.
"""

import argparse
import glob
import json
import os
import statistics
import sys
from xml.sax.saxutils import escape

# The rows of the performance targets: (command, key, what, unit, scale, target).
ROWS = [
    ("throughput", "chats_per_s",
     "chats/s replicated to all {nnodes} nodes (durable default)", "", 1,
     ">= 100,000"),
    ("throughput", "cpu_us_per_chat",
     "CPU per replicated chat, all processes of all nodes", "us", 1,
     "<= 15 us"),
    ("throughput", "client_cpu_us_per_chat",
     "CPU per chat of nodetalk-bench itself (for scale)", "us", 1, ""),
    ("latency", "push_node2_p50_ms",
     "send-at-A to push-at-B at {rate} chats/s, p50", "ms", 1, ""),
    ("latency", "push_node2_p99_ms",
     "send-at-A to push-at-B at {rate} chats/s, p99", "ms", 1, "<= 2 ms"),
    ("latency", "push_node2_p999_ms",
     "send-at-A to push-at-B at {rate} chats/s, p99.9", "ms", 1, ""),
    ("latency", "ack_p50_ms", "ack at {rate} chats/s, p50", "ms", 1, ""),
    ("latency", "ack_p99_ms", "ack at {rate} chats/s, p99", "ms", 1, ""),
    ("connections", "mem_per_client_b",
     "memory per joined idle client (ws worker)", "KiB", 1 / 1024,
     "<= 4 KiB"),
    ("connections", "connect_join_s",
     "{clients} clients connect and join at once", "s", 1, "<= 1 s"),
    ("connections", "fanout_median_ms",
     "one chat fanned out to {clients} joined clients", "ms", 1,
     "<= 20 ms"),
    ("connections", "rejoin_s",
     "{clients} clients reconnecting after a node restart", "s", 1,
     "<= 1 s"),
    ("history", "join_since_all_median_us",
     "a join whose since covers everything, {messages} stored", "us", 1,
     "<= 50 us"),
    ("history", "ping_median_us",
     "a WebSocket ping's round trip (the floor)", "us", 1, ""),
    ("history", "join_full_median_us",
     "a join without since (the whole history)", "ms", 1 / 1000, ""),
    ("history", "master_anon_per_msg_b",
     "memory per stored message (master, anonymous)", "B", 1, "<= 64 B"),
    ("history", "master_rss_per_msg_b",
     "memory per stored message (master, RSS)", "B", 1, ""),
    ("history", "restart_s",
     "restart with {messages} stored, until a join is answered", "s", 1,
     "<= 10 s for 10 M"),
]


def load_runs(d):
    """{command: [results dict of each ok run]}, [failed run files]."""
    runs, failed = {}, []
    for f in sorted(glob.glob(os.path.join(d, "*.json"))):
        if os.path.basename(f).startswith("summary"):
            continue
        try:
            o = json.load(open(f))
        except ValueError:
            failed.append(os.path.basename(f))
            continue
        if not o.get("ok"):
            failed.append(os.path.basename(f))
            continue
        runs.setdefault(o["command"], []).append(o)
    return runs, failed


def summarize(runs):
    out = {}
    for cmd, objs in runs.items():
        keys = {}
        for o in objs:
            for k, v in o["results"].items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    keys.setdefault(k, []).append(v)
        out[cmd] = {k: {"median": statistics.median(v), "min": min(v),
                        "max": max(v), "runs": len(v)}
                    for k, v in keys.items()}
        out[cmd]["_params"] = objs[0].get("params", {})
    machines = [o.get("machine", {}) for objs in runs.values() for o in objs]
    out["_loadavg"] = [m["loadavg"][0] for m in machines if m.get("loadavg")]
    out["_nproc"] = next((m.get("nproc") for m in machines), None)
    return out


def fmt(v):
    if v is None:
        return "-"
    if float(v).is_integer():
        return "{:,}".format(int(v))
    if abs(v) >= 100:
        return "{:,.0f}".format(v)
    if abs(v) >= 10:
        return "{:.1f}".format(v)
    return "{:.2f}".format(v)


def get(summary, cmd, key):
    return summary.get(cmd, {}).get(key)


def label(summary, cmd, what):
    """what, with {rate}, {clients}, {messages}, {nnodes} of the runs."""
    p = summary.get(cmd, {}).get("_params", {})
    msgs = get(summary, "history", "messages")
    v = {"rate": p.get("rate"), "clients": p.get("clients"),
         "messages": msgs["median"] if msgs else None,
         "nnodes": len(p.get("nodes", "").split()) or None}
    return what.format(**{k: fmt(x) if x is not None else "?"
                          for k, x in v.items()})


def markdown(summary, base, machine, failed, name, bname, m):
    lines = ["Results of `%s` (medians of the runs that succeeded)." % name,
             "", "Machine: " + machine, ""]
    head = "| what | median | min .. max | runs |"
    sep = "|---|---:|---|---:|"
    if base is not None:
        head += " baseline (%s) | ratio |" % bname
        sep += "---:|---:|"
    lines += [head + " target |", sep + "---|"]
    for cmd, key, what, unit, scale, target in ROWS:
        s = get(summary, cmd, key)
        if s is None:
            continue
        u = " " + unit if unit else ""
        row = "| %s | %s%s | %s .. %s | %d |" % (
            label(summary, cmd, what), fmt(s["median"] * scale), u, fmt(s["min"] * scale),
            fmt(s["max"] * scale), s["runs"])
        if base is not None:
            b = get(base, cmd, key)
            if b is None:
                row += " - | - |"
            else:
                ratio = (s["median"] / b["median"]) if b["median"] else None
                row += " %s%s | %s |" % (
                    fmt(b["median"] * scale), u,
                    "x%.2f" % ratio if ratio is not None else "-")
        lines.append(row + " %s |" % target)
    loads = summary.get("_loadavg")
    if loads:
        lines += ["", "Load average (1 minute) at the end of the runs: "
                  "median %s, %s .. %s (%d cores)." % (
                      fmt(statistics.median(loads)), fmt(min(loads)),
                      fmt(max(loads)), summary.get("_nproc") or 0)]
    elif m.get("loadavg_before"):
        lines += ["", "Load average (1, 5, 15 minutes) before the runs: %s; "
                  "after: %s." % (m["loadavg_before"],
                                  m.get("loadavg_after", "?"))]
    if failed:
        lines += ["", "Failed runs (not counted): " + ", ".join(failed)]
    return "\n".join(lines) + "\n"


# --- the plot ---------------------------------------------------------------

COLORS = ["#9aa5b1", "#2f6db5"]   # baseline grey, this run blue


def svg_bars_panel(x0, y0, w, h, title, groups, sets, log, unit):
    """groups: [(label, [(median, lo, hi) or None per set])]."""
    vals = [v for _, per in groups for s in per if s for v in s]
    if not vals:
        return []
    out = ['<text x="%d" y="%d" class="title">%s</text>' %
           (x0, y0 - 12, escape(title))]
    if log:
        import math
        lo = 10 ** math.floor(math.log10(max(min(vals), 1e-3)))
        hi = 10 ** math.ceil(math.log10(max(vals)))
        ticks = []
        t = lo
        while t <= hi * 1.0001:
            ticks.append(t)
            t *= 10

        def ypos(v):
            v = max(v, lo)
            return y0 + h - (math.log10(v) - math.log10(lo)) / \
                (math.log10(hi) - math.log10(lo)) * h
    else:
        hi = max(vals) * 1.1
        step = 10 ** len(str(int(hi / 5))) / 10
        while hi / step > 6:
            step *= 2
        ticks = [i * step for i in range(int(hi / step) + 1)]

        def ypos(v):
            return y0 + h - v / hi * h
    for t in ticks:
        y = ypos(t)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" class="grid"/>'
                   % (x0, y, x0 + w, y))
        out.append('<text x="%d" y="%.1f" class="tick">%s</text>' %
                   (x0 - 6, y + 4, escape(fmt(t))))
    gw = w / len(groups)
    bw = min(28, gw * 0.8 / len(sets))
    for i, (label, per) in enumerate(groups):
        gx = x0 + i * gw + (gw - bw * len(sets)) / 2
        for j, s in enumerate(per):
            if s is None:
                continue
            med, lo_, hi_ = s
            x = gx + j * bw
            y = ypos(med)
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" '
                       'fill="%s"><title>%s: %s %s</title></rect>' %
                       (x + 1, y, bw - 2, y0 + h - y,
                        COLORS[(j + 2 - len(sets)) % 2],
                        escape(sets[j]), fmt(med), escape(unit)))
            cx = x + bw / 2
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" '
                       'class="whisker"/>' % (cx, ypos(lo_), cx, ypos(hi_)))
            out.append('<text x="%.1f" y="%.1f" class="val">%s</text>' %
                       (cx, min(y, ypos(hi_)) - 3, escape(fmt(med))))
        out.append('<text x="%.1f" y="%d" class="label">%s</text>' %
                   (x0 + i * gw + gw / 2, y0 + h + 16, escape(label)))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" class="axis"/>' %
               (x0, y0 + h, x0 + w, y0 + h))
    return out


def triple(summary, cmd, key):
    s = get(summary, cmd, key)
    return (s["median"], s["min"], s["max"]) if s else None


def svg(summaries, names, machine):
    tp = [("replicated to all", "chats_per_s"), ("acknowledged", "acks_per_s")]
    lat = [("ack p50", "ack_p50_ms"), ("ack p99", "ack_p99_ms"),
           ("ack p99.9", "ack_p999_ms"),
           ("A to B p50", "push_node2_p50_ms"),
           ("A to B p99", "push_node2_p99_ms"),
           ("A to B p99.9", "push_node2_p999_ms"),
           ("A to C p99", "push_node3_p99_ms")]
    W, H = 1000, 470
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif">' % (W, H, W, H),
           '<style>.title{font-size:15px;font-weight:bold}'
           '.tick{font-size:11px;text-anchor:end;fill:#555}'
           '.label{font-size:11px;text-anchor:middle}'
           '.val{font-size:10px;text-anchor:middle;fill:#222}'
           '.grid{stroke:#e3e3e3}.axis{stroke:#333}'
           '.whisker{stroke:#000;stroke-width:1.2}'
           '.legend{font-size:12px}.foot{font-size:11px;fill:#555}</style>',
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="20" y="26" style="font-size:18px;font-weight:bold">'
           'nodetalkd, three nodes on loopback (nodetalk-bench)</text>']
    out += svg_bars_panel(
        80, 80, 280, 300, "Throughput, chats/s (%s chats)" % fmt(
            summaries[-1].get("throughput", {}).get("_params", {}).get(
                "chats") or 0),
        [(l, [triple(s, "throughput", k) for s in summaries]) for l, k in tp],
        names, False, "chats/s")
    out += svg_bars_panel(
        470, 80, 500, 300, "Latency at %s chats/s, ms (log scale)" % fmt(
            summaries[-1].get("latency", {}).get("_params", {}).get(
                "rate") or 0),
        [(l, [triple(s, "latency", k) for s in summaries]) for l, k in lat],
        names, True, "ms")
    for j, n in enumerate(names):
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>'
                   % (20 + j * 330, 418, COLORS[(j + 2 - len(names)) % 2]))
        out.append('<text x="%d" y="%d" class="legend">%s</text>' %
                   (38 + j * 330, 429, escape(n)))
    out.append('<text x="20" y="455" class="foot">bars: median of the runs; '
               'whiskers: min .. max.  %s</text>' % escape(machine))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--baseline")
    ap.add_argument("--baseline-name", help="what to call the baseline "
                    "(default: its directory's name)")
    a = ap.parse_args()
    runs, failed = load_runs(a.dir)
    if not runs:
        sys.exit("report.py: no successful run in %s" % a.dir)
    summary = summarize(runs)
    base = None
    if a.baseline:
        bruns, _ = load_runs(a.baseline)
        base = summarize(bruns)
    m = {}
    try:
        for line in open(os.path.join(a.dir, "machine.txt")):
            k, _, v = line.strip().partition(" ")
            m[k] = v
    except OSError:
        pass
    machine = "%s cores, %s, %s" % (m.get("nproc", "?"), m.get("cpu", "?"),
                                     m.get("kernel", "?"))
    name = os.path.basename(os.path.normpath(a.dir))
    bname = a.baseline_name or (os.path.basename(os.path.normpath(
        a.baseline)) if a.baseline else None)
    json.dump({"runs": summary, "failed": failed, "machine": m},
              open(os.path.join(a.dir, "summary.json"), "w"), indent=1,
              sort_keys=True)
    with open(os.path.join(a.dir, "summary.md"), "w") as f:
        f.write(markdown(summary, base, machine, failed, name, bname, m))
    sets = [base, summary] if base is not None else [summary]
    names = [bname, name] if base is not None else [name]
    loads = summary.get("_loadavg")
    foot = machine + ("; load average %s during the runs" % fmt(
        statistics.median(loads)) if loads else "")
    with open(os.path.join(a.dir, "bench.svg"), "w") as f:
        f.write(svg(sets, names, foot))


if __name__ == "__main__":
    main()
