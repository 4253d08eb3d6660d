#!/bin/bash
# bench.sh: how fast a local three-node cluster takes messages, per fsync
# policy.  Each run starts a fresh cluster on 127.0.0.1/.2/.3, loads it with
# tests/bench/bench.py (python3-websockets) and stops it; the table gives
# the median of the runs, because a shared machine is noisy.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: contrib/bench.sh [--build DIR] [--runs N] [--clients N] [--messages N]
                        [--window N] [--policies "always batch none"]
Starts a fresh three-node cluster per run (loopback only) and prints, per
fsync policy, the median throughput, ack latency (p50, p99) and the time
from the last ack until every node held every message.
  --build DIR     where nodetalkd was built (default build/plain)
  --runs N        runs per policy (default 5)
  --clients N     concurrent senders, spread over the three nodes (default 6)
  --messages N    messages per sender (default 500)
  --window N      unacknowledged messages per sender (default 8)
USAGE
}

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/build/plain runs=5 clients=6 messages=500 window=8
policies="always batch none"
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$(cd "$2" && pwd); shift ;;
	--runs) runs=$2; shift ;;
	--clients) clients=$2; shift ;;
	--messages) messages=$2; shift ;;
	--window) window=$2; shift ;;
	--policies) policies=$2; shift ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
py=/usr/bin/python3
[ -x "$build/src/nodetalkd" ] || { echo "bench.sh: build first ($build/src/nodetalkd)" >&2; exit 1; }
"$py" -c 'import websockets' 2>/dev/null ||
	{ echo "bench.sh: needs python3-websockets" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/nt-bench.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

port=$("$py" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr=(127.0.0.1 127.0.0.2 127.0.0.3)
ids=(A B C)

run_once() {
	local policy=$1 run=$2 i d
	d=$work/$policy-$run
	mkdir -p "$d"
	cat >"$d/n.conf" <<CONF
port = $port;
fsync = "$policy";
max_clients = 100000;
nodes = (
  { id = "A"; host = "127.0.0.1"; listen = "127.0.0.1"; data_dir = "$d/A"; },
  { id = "B"; host = "127.0.0.2"; listen = "127.0.0.2"; data_dir = "$d/B"; },
  { id = "C"; host = "127.0.0.3"; listen = "127.0.0.3"; data_dir = "$d/C"; }
);
CONF
	pids=()
	for i in 0 1 2; do
		"$build/src/nodetalkd" -c "$d/n.conf" -n "${ids[$i]}" 2>"$d/${ids[$i]}.log" &
		pids+=($!)
	done
	for i in 0 1 2; do
		for _ in $(seq 100); do
			grep -q "Sent hello" "$d/${ids[$i]}.log" 2>/dev/null && break
			sleep 0.1
		done
	done
	"$py" "$top/tests/bench/bench.py" --clients "$clients" \
	    --messages "$messages" --window "$window" \
	    --node "${addr[0]}:$port" --node "${addr[1]}:$port" \
	    --node "${addr[2]}:$port" >>"$work/$policy.jsonl"
	for i in "${pids[@]}"; do kill -TERM "$i"; done
	for i in "${pids[@]}"; do wait "$i" || true; done
	pids=()
}

echo "# $runs runs per policy; $clients senders x $messages messages, window $window; $(nproc) cores"
for policy in $policies; do
	for run in $(seq "$runs"); do
		run_once "$policy" "$run"
	done
done

"$py" - "$work" $policies <<'PY'
import json, statistics, sys
work, policies = sys.argv[1], sys.argv[2:]
print("%-7s %12s %12s %12s %12s %16s" % ("fsync", "msgs/s", "ack p50 ms",
      "ack p90 ms", "ack p99 ms", "converge ms"))
for p in policies:
    rows = [json.loads(l) for l in open("%s/%s.jsonl" % (work, p))]
    med = lambda k: statistics.median(r[k] for r in rows)
    bad = sum(1 for r in rows if not r["converged"])
    print("%-7s %12.0f %12.2f %12.2f %12.2f %16.1f%s" % (
        p, med("throughput_per_s"), med("ack_p50_ms"), med("ack_p90_ms"),
        med("ack_p99_ms"), med("convergence_ms"),
        "  (%d runs did not converge!)" % bad if bad else ""))
    print("        throughput min..max: %.0f..%.0f" % (
        min(r["throughput_per_s"] for r in rows),
        max(r["throughput_per_s"] for r in rows)))
PY
