#!/bin/bash
# engines.sh: the mesh and the NATS engine side by side, at several cluster
# sizes, measured with nodetalk-bench on fresh local clusters: nodes on
# 127.0.0.1..N, and for engine = "nats" three NATS JetStream servers on
# 127.0.1.1-3 (nats-server).  Each run measures both engines one right
# after the other, so that both see the same machine; the summary gives
# medians over the runs.
set -uo pipefail

usage() {
	cat <<'USAGE'
usage: bench/engines.sh [--build DIR] [--runs N] [--sizes "3 9"] [--count N]
                        [--rate R] [--duration S] [--out FILE]
For each size N and each run: a fresh mesh of N nodes, then a fresh NATS
cluster with N gateways; on each, nodetalk-bench throughput (--count chats
into the first node, every node receiving them) and latency (--rate chats
per second for --duration seconds).  Prints medians: replicated chats per
second, ack p50/p99, the p99 until every node pushed a chat, and CPU per
chat (all nodes, plus the NATS servers with engine = "nats").
  --build DIR     where nodetalkd and nodetalk-bench were built (build/plain)
  --runs N        runs per size and engine (default 3)
  --sizes LIST    cluster sizes, at most 9 (default "3 9")
  --count N       chats per throughput run (default 20000)
  --rate R        chats per second of the latency runs (default 500)
  --duration S    seconds of each latency run (default 10)
  --out FILE      every run's JSON lines (default: a temporary file)
USAGE
}

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=$top/build/plain runs=3 sizes="3 9" count=20000 rate=500 duration=10
out=
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$(cd "$2" && pwd) || exit 2; shift ;;
	--runs) runs=$2; shift ;;
	--sizes) sizes=$2; shift ;;
	--count) count=$2; shift ;;
	--rate) rate=$2; shift ;;
	--duration) duration=$2; shift ;;
	--out) out=$2; shift ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
DAEMON=$build/src/nodetalkd BENCH=$build/src/nodetalk-bench PY=/usr/bin/python3
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
for f in "$DAEMON" "$BENCH" "$NATS" "$PY"; do
	[ -x "$f" ] || { echo "engines.sh: $f is missing" >&2; exit 1; }
done
for n in $sizes; do
	case $n in [1-9]) ;; *) echo "engines.sh: sizes are 1 to 9" >&2; exit 2 ;; esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/nt-engines.XXXXXX")
[ -n "$out" ] || out=$work/runs.jsonl
pids=()
stop_all() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
freeport() {
	"$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(freeport) nport=$(freeport) rport=$(freeport)

# cpu PID...: user + system clock ticks of these processes.
cpu() {
	local p t=0 s
	for p in "$@"; do
		s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		s=${s##*) }
		# shellcheck disable=SC2086
		set -- $s
		t=$((t + ${12} + ${13}))
	done
	echo "$t"
}

wait_for() {
	local secs=$1 i
	shift
	for i in $(seq $((secs * 10))); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

nats_up() {
	local i d=$1
	for i in 1 2 3; do
		mkdir -p "$d/N$i"
		cat >"$d/N$i.conf" <<CONF
server_name: N$i
listen: 127.0.1.$i:$nport
jetstream { store_dir: "$d/N$i" }
cluster {
  name: bench
  listen: 127.0.1.$i:$rport
  routes: [ nats-route://127.0.1.1:$rport, nats-route://127.0.1.2:$rport,
            nats-route://127.0.1.3:$rport ]
}
CONF
		"$NATS" -c "$d/N$i.conf" >"$d/N$i.log" 2>&1 &
		pids+=($!)
		NATS_PIDS+=($!)
	done
	wait_for 30 grep -qh "JetStream cluster new metadata leader" "$d"/N?.log
}

# start ENGINE N DIR: N nodes, ready and linked.
start() {
	local engine=$1 n=$2 d=$3 i extra=
	mkdir -p "$d"
	NATS_PIDS=()
	if [ "$engine" = nats ]; then
		nats_up "$d" || return 1
		extra="engine = \"nats\"; nats = { servers = [ \"nats://127.0.1.1:$nport\", \"nats://127.0.1.2:$nport\", \"nats://127.0.1.3:$nport\" ]; };"
	fi
	{
		echo "port = $port;"
		echo "max_clients = 20000;"
		echo "$extra"
		echo "nodes = ("
		for i in $(seq "$n"); do
			printf '  { id = "G%s"; host = "127.0.0.%s"; listen = "127.0.0.%s"; data_dir = "%s/G%s"; }%s\n' \
			    "$i" "$i" "$i" "$d" "$i" "$([ "$i" = "$n" ] || echo ,)"
		done
		echo ");"
	} >"$d/n.conf"
	for i in $(seq "$n"); do
		"$DAEMON" -c "$d/n.conf" -n "G$i" >"$d/G$i.log" 2>&1 &
		pids+=($!)
	done
	for i in $(seq "$n"); do
		wait_for 60 linked "$engine" "$n" "127.0.0.$i" || {
			echo "engines.sh: node G$i of $engine/$n not ready ($d)" >&2
			return 1
		}
	done
}

# linked ENGINE N ADDR: every peer link up, or the link to NATS.
linked() {
	curl -sf "http://$3:$port/status" 2>/dev/null | "$PY" -c '
import json, sys
s, engine, n = json.load(sys.stdin), sys.argv[1], int(sys.argv[2])
if engine == "nats":
    ok = s["nats"]["connected"] and s["nats"]["stream_ok"]
else:
    ok = (sum(1 for p in s["peers"].values() if p["connected"]) == n - 1
          and not s.get("recovering"))
sys.exit(0 if ok else 1)' "$1" "$2"
}

# measure ENGINE N RUN: one run of both measurements; JSON lines to $out.
measure() {
	local engine=$1 n=$2 r=$3 d=$work/$1-$2-$3 nodes=() i c0 c1 tp lat
	start "$engine" "$n" "$d" || { stop_all; return 1; }
	for i in $(seq "$n"); do nodes+=("127.0.0.$i:$port"); done
	c0=$(cpu "${NATS_PIDS[@]}")
	tp=$("$BENCH" throughput -j -n "$count" "${nodes[@]}" 2>>"$d/bench.err")
	c1=$(cpu "${NATS_PIDS[@]}")
	lat=$("$BENCH" latency -j -r "$rate" -d "$duration" "${nodes[@]}" 2>>"$d/bench.err")
	"$PY" -c '
import json, os, sys
engine, n, r, count, nats_ticks, tp, lat = sys.argv[1:]
hz = os.sysconf("SC_CLK_TCK")
print(json.dumps({"engine": engine, "nodes": int(n), "run": int(r),
    "nats_cpu_us_per_chat": int(nats_ticks) * 1e6 / hz / int(count),
    "throughput": json.loads(tp or "null"), "latency": json.loads(lat or "null")}))
' "$engine" "$n" "$r" "$count" $((c1 - c0)) "$tp" "$lat" >>"$out"
	stop_all
}

echo "# $runs runs; sizes $sizes; throughput $count chats; latency $rate/s for ${duration}s; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
for n in $sizes; do
	for r in $(seq "$runs"); do
		for engine in mesh nats; do
			measure "$engine" "$n" "$r" ||
			    echo "engines.sh: $engine with $n nodes, run $r failed" >&2
		done
	done
done
echo "# done; load $(cut -d' ' -f1-3 /proc/loadavg); runs in $out"

"$PY" - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else float("nan")
def get(r, part, key):
    d = r.get(part) or {}
    return (d.get("results") or {}).get(key) if d.get("ok") else None
def worst_push(r, n):
    vals = [get(r, "latency", "push_node%d_p99_ms" % i) for i in range(1, n + 1)]
    return None if None in vals else max(vals)
print("%-6s %5s %4s %12s %10s %10s %14s %12s %12s" % ("engine", "nodes", "ok",
      "chats/s", "ack p50", "ack p99", "every node p99", "cpu us/chat",
      "(of it NATS)"))
for n in sorted({r["nodes"] for r in rows}):
    for e in ("mesh", "nats"):
        rs = [r for r in rows if r["nodes"] == n and r["engine"] == e]
        if not rs:
            continue
        ok = sum(1 for r in rs if (r["throughput"] or {}).get("ok") and
                 (r["latency"] or {}).get("ok"))
        node_cpu = med(get(r, "throughput", "cpu_us_per_chat") for r in rs)
        nats_cpu = med(r["nats_cpu_us_per_chat"] for r in rs)
        print("%-6s %5d %2d/%d %12.0f %8.2fms %8.2fms %12.2fms %12.0f %12s" % (
            e, n, ok, len(rs),
            med(get(r, "throughput", "chats_per_s") for r in rs),
            med(get(r, "latency", "ack_p50_ms") for r in rs),
            med(get(r, "latency", "ack_p99_ms") for r in rs),
            med(worst_push(r, n) for r in rs),
            node_cpu + (nats_cpu if e == "nats" else 0),
            "%.0f" % nats_cpu if e == "nats" else "-"))
PY
