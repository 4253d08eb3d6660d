#!/usr/bin/python3
"""promtext.py: a strict reader of the Prometheus text exposition format.

  promtext.py check FILE|URL
      Parse it and check the format (version 0.0.4) and the naming
      conventions this project follows; print "ok: N families, M samples"
      and exit 0, or print every problem and exit 1.
  promtext.py get FILE|URL NAME [LABEL=VALUE...]
      Print the value of the one sample NAME with exactly those labels
      (exit 1 when there is none).
  promtext.py series FILE|URL NAME
      Print every sample of NAME as "label=value,... value", sorted.

What "check" insists on, beyond what a scraper tolerates:
  - every line is a HELP, a TYPE, a comment or a well-formed sample
    (metric and label names, quoted and escaped label values, a float);
  - every family has exactly one HELP and one TYPE, before its samples,
    and its samples are not interleaved with another family's;
  - no series (name and label set) appears twice;
  - counters end in _total; no family names a non-base unit (_ms,
    _milliseconds, _kb, ...); _info gauges have the value 1;
  - histograms: _bucket samples with "le", cumulative (never decreasing),
    ending in le="+Inf" equal to _count, one _sum and one _count per
    label set;
  - the text ends with a newline.
"""
import math
import re
import sys
import urllib.request

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
BAD_UNITS = ("_ms", "_milliseconds", "_us", "_microseconds", "_ns",
             "_nanoseconds", "_minutes", "_hours", "_kb", "_kilobytes",
             "_mb", "_megabytes", "_percent")


class Bad(Exception):
    pass


def read(src):
    if src.startswith("http://"):
        with urllib.request.urlopen(src, timeout=10) as r:
            return r.read().decode("utf-8")
    with open(src, encoding="utf-8") as f:
        return f.read()


def parse_value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", s):
        raise Bad(f"bad value {s!r}")
    return float(s)


def parse_labels(s, i):
    """s[i] is '{'; returns (labels dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if s[i:i + 1] == "}":
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            raise Bad(f"bad label name at {s[i:i + 20]!r}")
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise Bad(f"label {name}: expected =\"")
        i += 2
        val = []
        while True:
            if i >= len(s):
                raise Bad(f"label {name}: unterminated value")
            c = s[i]
            if c == "\\":
                e = s[i + 1:i + 2]
                if e not in ("\\", '"', "n"):
                    raise Bad(f"label {name}: bad escape \\{e}")
                val.append("\n" if e == "n" else e)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise Bad(f"label {name}: newline in value")
            else:
                val.append(c)
                i += 1
        if name in labels:
            raise Bad(f"label {name} twice")
        labels[name] = "".join(val)
        if s[i:i + 1] == ",":
            i += 1
        elif s[i:i + 1] != "}":
            raise Bad(f"after label {name}: expected , or }}")


def parse_sample(line):
    m = NAME.match(line)
    if not m:
        raise Bad("bad metric name")
    name, i = m.group(0), m.end()
    labels = {}
    if line[i:i + 1] == "{":
        labels, i = parse_labels(line, i)
    rest = line[i:]
    if not rest.startswith(" "):
        raise Bad("expected a space before the value")
    parts = rest.split()
    if len(parts) not in (1, 2):
        raise Bad("expected a value and at most a timestamp")
    value = parse_value(parts[0])
    if len(parts) == 2 and not re.fullmatch(r"-?\d+", parts[1]):
        raise Bad("bad timestamp")
    return name, labels, value


def family_of(name, types):
    """The family a sample name belongs to (histogram suffixes)."""
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf) and types.get(name[:-len(suf)]) in (
                "histogram", "summary"):
            return name[:-len(suf)]
    return name


def parse(text):
    """Returns (families, problems); families: name -> dict."""
    problems = []
    fams = {}
    types = {}
    order = []          # family of each sample line, in order
    seen = set()
    if not text.endswith("\n"):
        problems.append("the text does not end with a newline")
    for n, line in enumerate(text.split("\n")[:-1], 1):
        try:
            if line == "":
                continue
            if line.startswith("#"):
                p = line.split(" ", 3)
                if len(p) >= 3 and p[1] in ("HELP", "TYPE"):
                    if not NAME.fullmatch(p[2]):
                        raise Bad(f"bad name {p[2]!r}")
                    f = fams.setdefault(p[2], {"help": None, "type": None,
                                               "samples": []})
                    if f["samples"]:
                        raise Bad(f"{p[1]} of {p[2]} after its samples")
                    key = p[1].lower()
                    if f[key] is not None:
                        raise Bad(f"second {p[1]} for {p[2]}")
                    if p[1] == "TYPE":
                        if len(p) != 4 or p[3] not in TYPES:
                            raise Bad(f"bad TYPE line")
                        types[p[2]] = p[3]
                    elif len(p) < 4 or not p[3].strip():
                        raise Bad(f"empty HELP for {p[2]}")
                    f[key] = p[3] if len(p) == 4 else ""
                continue
            name, labels, value = parse_sample(line)
            fam = family_of(name, types)
            f = fams.get(fam)
            if f is None or f["type"] is None:
                raise Bad(f"sample of {fam} before its TYPE")
            if order and order[-1] != fam and fam in order:
                raise Bad(f"samples of {fam} are not together")
            order.append(fam)
            series = (name, tuple(sorted(labels.items())))
            if series in seen:
                raise Bad(f"series {name}{labels} twice")
            seen.add(series)
            f["samples"].append((name, labels, value))
        except Bad as e:
            problems.append(f"line {n}: {e}: {line[:120]!r}")
    return fams, problems


def check_family(name, f):
    p = []
    t = f["type"]
    if f["help"] is None:
        p.append(f"{name}: no HELP")
    if t is None:
        p.append(f"{name}: no TYPE")
        return p
    if any(name.endswith(u) or (u + "_") in name for u in BAD_UNITS):
        p.append(f"{name}: not in base units (seconds, bytes)")
    if t == "counter" and not name.endswith("_total"):
        p.append(f"{name}: a counter whose name does not end in _total")
    if t != "counter" and name.endswith("_total"):
        p.append(f"{name}: ends in _total but is a {t}")
    if name.endswith("_info") and (t != "gauge" or any(
            v != 1 for _, _, v in f["samples"])):
        p.append(f"{name}: an _info metric is a gauge of value 1")
    for sname, labels, v in f["samples"]:
        if t in ("counter", "gauge", "untyped") and sname != name:
            p.append(f"{name}: sample named {sname}")
        if t == "counter" and not (v >= 0):
            p.append(f"{name}: negative counter {v}")
    if t == "histogram":
        p += check_histogram(name, f["samples"])
    return p


def check_histogram(name, samples):
    p = []
    groups = {}
    for sname, labels, v in samples:
        rest = {k: x for k, x in labels.items() if k != "le"}
        key = tuple(sorted(rest.items()))
        g = groups.setdefault(key, {"b": [], "sum": [], "count": []})
        if sname == name + "_bucket":
            if "le" not in labels:
                p.append(f"{name}: a bucket without le")
                continue
            g["b"].append((parse_value(labels["le"]), v))
        elif sname == name + "_sum":
            g["sum"].append(v)
        elif sname == name + "_count":
            g["count"].append(v)
        else:
            p.append(f"{name}: sample named {sname}")
    for key, g in groups.items():
        b = g["b"]
        if not b or b[-1][0] != math.inf:
            p.append(f"{name}{dict(key)}: no le=\"+Inf\" bucket last")
        if any(x[0] >= y[0] for x, y in zip(b, b[1:])):
            p.append(f"{name}{dict(key)}: buckets not in increasing le")
        if any(x[1] > y[1] for x, y in zip(b, b[1:])):
            p.append(f"{name}{dict(key)}: buckets not cumulative")
        if len(g["sum"]) != 1 or len(g["count"]) != 1:
            p.append(f"{name}{dict(key)}: not one _sum and one _count")
        elif b and g["count"][0] != b[-1][1]:
            p.append(f"{name}{dict(key)}: _count != +Inf bucket")
    return p


def fmt(v):
    if math.isinf(v) or math.isnan(v) or v != int(v):
        return repr(v)
    return str(int(v))


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, src = sys.argv[1], sys.argv[2]
    text = read(src)
    fams, problems = parse(text)
    if cmd == "check":
        for name, f in fams.items():
            problems += check_family(name, f)
        for x in problems:
            print(x)
        if problems:
            return 1
        print(f"ok: {len(fams)} families, "
              f"{sum(len(f['samples']) for f in fams.values())} samples")
        return 0
    if cmd in ("get", "series"):
        name = sys.argv[3]
        want = dict(a.split("=", 1) for a in sys.argv[4:])
        hits = []
        for f in fams.values():
            for sname, labels, v in f["samples"]:
                if sname == name and (cmd == "series" or labels == want):
                    hits.append((labels, v))
        if not hits:
            return 1
        if cmd == "get":
            print(fmt(hits[0][1]))
        else:
            for labels, v in sorted(hits, key=lambda h: sorted(h[0].items())):
                print(",".join(f"{k}={x}" for k, x in sorted(labels.items())),
                      fmt(v))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
