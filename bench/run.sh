#!/bin/bash
# run.sh: the benchmark suite (`make bench`).  Each run of each measurement
# gets a fresh three-node cluster on 127.0.0.1/.2/.3 (bench/cluster.sh),
# loaded and measured by nodetalk-bench; the JSON of every run goes to a
# new directory under bench/results, and bench/report.py adds the medians
# (summary.json, summary.md) and a plot (bench.svg).  A shared machine is
# noisy: trust medians of several runs, never one.
set -uo pipefail

usage() {
	cat <<'USAGE'
usage: bench/run.sh [--build DIR] [--out DIR] [--runs N] [--label NAME]
                    [--only "throughput latency connections history"]
                    [--against DIR [--against-name NAME] | --baseline DIR]
                    [--history-n N] [--quick]
Runs the nodetalk-bench suite against fresh local three-node clusters and
writes OUT/<time>-<revision>[-NAME]/: one JSON per run, the medians
(summary.json, summary.md) and a plot (bench.svg).
  --build DIR      where nodetalkd and nodetalk-bench were built
                   (default build/plain)
  --out DIR        results directory (default bench/results)
  --runs N         runs of each measurement (default 5)
  --label NAME     appended to the result directory's name
  --only LIST      the measurements to run (default: all four)
  --against DIR    also measure the nodetalkd built in DIR, each run right
                   after the same run of --build's, so that both see the same
                   machine (its results in OUT/.../against/; the summary
                   compares the two); --against-name says what it is
  --baseline DIR   an earlier result directory to compare with
  --history-n N    messages stored for the history measurement (default
                   300000)
  --quick          small sizes: a check that the suite works, no figures
USAGE
}

argv="$*"
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=$top/build/plain out=$here/results runs=5 label= baseline= quick=0
against= against_name= history_n=
only="throughput latency connections history"
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$(cd "$2" && pwd) || exit 2; shift ;;
	--out) out=$2; shift ;;
	--runs) runs=$2; shift ;;
	--label) label=$2; shift ;;
	--only) only=$2; shift ;;
	--baseline) baseline=$(cd "$2" && pwd) || exit 2; shift ;;
	--against) against=$(cd "$2" && pwd) || exit 2; shift ;;
	--against-name) against_name=$2; shift ;;
	--history-n) history_n=$2; shift ;;
	--quick) quick=1 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
case $runs in ''|*[!0-9]*|0) echo "run.sh: --runs needs a number > 0" >&2; exit 2 ;; esac
for m in $only; do
	case $m in throughput|latency|connections|history) ;;
	*) echo "run.sh: unknown measurement: $m" >&2; exit 2 ;;
	esac
done

# shellcheck source=cluster.sh
. "$here/cluster.sh"
DAEMON=$build/src/nodetalkd
DAEMON2=${against:+$against/src/nodetalkd}
BENCH=$build/src/nodetalk-bench
PY=/usr/bin/python3
[ -z "$against" ] || [ -z "$baseline" ] ||
    { echo "run.sh: --against or --baseline, not both" >&2; exit 2; }
for f in "$DAEMON" "$BENCH" $DAEMON2; do
	[ -x "$f" ] || { echo "run.sh: $f is not built (make first)" >&2; exit 1; }
done
[ -x "$PY" ] || { echo "run.sh: needs $PY for the report" >&2; exit 1; }

# The sizes of the performance targets (README); --quick only checks that it all works.
if [ $quick -eq 1 ]; then
	tp_n=3000 lat_d=2 conn_n=300 hist_n=3000
else
	tp_n=100000 lat_d=10 conn_n=10000 hist_n=300000
fi
if [ -n "$history_n" ]; then
	case $history_n in *[!0-9]*|0) echo "run.sh: --history-n needs a number > 0" >&2; exit 2 ;; esac
	hist_n=$history_n
fi

# 10,000 clients and the nodes' own descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/nt-bench.XXXXXX") || exit 1
cur=
stop_all() {
	local id
	[ -n "$cur" ] || return 0
	for id in "${BC_IDS[@]}"; do
		bc_stop "$id" "$cur"
	done
}
cleanup() {
	stop_all
	rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 1' INT TERM

port=$("$PY" - <<'EOF'
import random, socket, sys
for _ in range(200):
    p = random.randint(20000, 30000)
    try:
        for a in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            s = socket.socket()
            try:
                s.bind((a, p))
            finally:
                s.close()
    except OSError:
        continue
    print(p)
    sys.exit(0)
sys.exit(1)
EOF
) || { echo "run.sh: no free port on 127.0.0.1-3" >&2; exit 1; }

rev=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
dir=$out/$(date -u +%Y%m%dT%H%M%SZ)-$rev${label:+-$label}
mkdir -p "$dir" ${against:+"$dir/against"} || exit 1
{
	echo "revision $rev"
	[ -z "$against" ] || echo "against $against${against_name:+ ($against_name)}"
	echo "command bench/run.sh $argv"
	echo "nproc $(nproc)"
	echo "cpu $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	echo "kernel $(uname -srm)"
	echo "loadavg_before $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$dir/machine.txt"

# fresh NAME DAEMON: a new cluster in $work/NAME, every node linked to the
# others.
fresh() {
	local id
	cur=$work/$1
	BC_DAEMON=$2
	mkdir -p "$cur"
	echo "$BC_DAEMON" >"$cur/daemon"
	bc_conf "$cur" "$port"
	for id in "${BC_IDS[@]}"; do
		bc_start "$id" "$cur"
	done
	for id in "${BC_IDS[@]}"; do
		bc_ready "$id" "$cur" "$port" || {
			echo "run.sh: node $id did not start; its log:" >&2
			tail -n 20 "$cur/$id.log" >&2
			return 1
		}
	done
	bc_linked "$cur" || { echo "run.sh: the nodes did not link up" >&2; return 1; }
}

# measure NAME RUN DAEMON OUTDIR: one run on a fresh cluster of DAEMON,
# its JSON in OUTDIR.
measure() {
	local m=$1 r=$2 daemon=$3 o=$4 rc restart args
	local nodes=(127.0.0.1 127.0.0.2 127.0.0.3)
	restart="bash $here/cluster.sh restart A $work/$m-$r"
	case $m in
	throughput) args=(-n "$tp_n" "${nodes[@]}") ;;
	latency) args=(-r 5000 -d "$lat_d" "${nodes[@]}") ;;
	# four source addresses: room if a node caps connections per address
	connections) args=(-n "$conn_n" -b 127.0.1.1+3 --restart-cmd "$restart" 127.0.0.1) ;;
	history) args=(-n "$hist_n" --restart-cmd "$restart" 127.0.0.1) ;;
	esac
	fresh "$m-$r" "$daemon" || return 1
	"$BENCH" --json -p "$port" "$m" "${args[@]}" >"$o/$m-$r.json" 2>"$o/$m-$r.err"
	rc=$?
	stop_all
	rm -rf "$cur"
	cur=
	[ -s "$o/$m-$r.err" ] || rm -f "$o/$m-$r.err"
	printf '%-12s run %d%s: %s\n' "$m" "$r" "${5:-}" "$([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc, see $o/$m-$r.err)")"
	return $rc
}

echo "# nodetalk-bench suite, $runs runs; $(nproc) cores; results in $dir"
status=0
# Runs interleaved, so that a slow spell of the machine hits every
# measurement alike.
for r in $(seq "$runs"); do
	for m in $only; do
		measure "$m" "$r" "$DAEMON" "$dir" || status=1
		[ -z "$against" ] ||
		    measure "$m" "$r" "$DAEMON2" "$dir/against" " (against)" ||
		    status=1
	done
done
echo "loadavg_after $(cut -d' ' -f1-3 /proc/loadavg)" >>"$dir/machine.txt"
bname=
if [ -n "$against" ]; then
	cp "$dir/machine.txt" "$dir/against/"
	"$PY" "$here/report.py" "$dir/against" || status=1
	baseline=$dir/against
	bname=${against_name:-$against}
fi
"$PY" "$here/report.py" "$dir" ${baseline:+--baseline "$baseline"} \
    ${bname:+--baseline-name "$bname"} || status=1
cat "$dir/summary.md"
exit $status
