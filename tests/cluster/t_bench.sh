#!/bin/bash
# t_bench.sh: nodetalk-bench works, in small: each command against a real
# three-node cluster exits 0 and its --json has the documented fields, the
# chats it says it sent are really on every node, a reconnect storm (the ws
# worker killed) and a node restart are measured; usage errors exit 2, a
# node that is down or a restart command that fails makes it exit 1 with
# the reason.  Behaviour only: the figures themselves come from
# `make bench`, never from a test.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_init bench
BENCH="$NT_BUILDDIR/src/nodetalk-bench"
[ -x "$BENCH" ] || nt_fatal "$BENCH is not built"
NODES=("${NT_ADDR[A]}" "${NT_ADDR[B]}" "${NT_ADDR[C]}")

# $T/jcheck.py FILE CHECK...: each CHECK is "PATH OP [VALUE]" on the JSON
# object in FILE (PATH dotted; OP: num (a number), pos (> 0), eq VALUE,
# null, str); prints what failed, exit 1.
cat >"$T/jcheck.py" <<'EOF'
import json, sys
try:
    o = json.load(open(sys.argv[1]))
except ValueError as e:
    sys.exit("not JSON: %s" % e)
bad = []
for c in sys.argv[2:]:
    path, op, *val = c.split(" ", 2)
    v = o
    for k in path.split("."):
        v = v.get(k, KeyError) if isinstance(v, dict) else KeyError
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    ok = {"num": lambda: num, "pos": lambda: num and v > 0,
          "null": lambda: v is None, "str": lambda: isinstance(v, str),
          "eq": lambda: json.dumps(v) == val[0]}[op]()
    if not ok:
        bad.append("%s: %s %s, got %r" % (path, op, " ".join(val), v))
print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF

# jcheck DESC FILE CHECK...
jcheck() {
	local desc=$1 out
	shift
	if out=$("$NT_PYTHON" "$T/jcheck.py" "$@" 2>&1); then
		_nt_ok "$desc"
	else
		_nt_notok "$desc"
		printf '#   %s\n' "$out"
	fi
}

# bench NAME ARGS...: nodetalk-bench --json ARGS; the JSON in $T/NAME.json,
# stderr in $T/NAME.err, the exit status in $RC.
bench() {
	local name=$1
	shift
	timeout 120 "$BENCH" --json -p "$P" "$@" >"$T/$name.json" \
	    2>"$T/$name.err"
	RC=$?
	[ "$RC" -eq 0 ] || { echo "# $name exited $RC:"; sed 's/^/#   /' "$T/$name.err"; }
}

status_messages() {
	curl -s "http://$1:$P/status" | "$NT_PYTHON" -c \
	    'import json, sys; print(json.load(sys.stdin)["messages"])'
}

# --- usage -----------------------------------------------------------------

"$BENCH" --help >"$T/help.out" 2>&1
check_eq "--help exits 0" 0 $?
check "--help names every command" grep -q "throughput.*" "$T/help.out"
for args in "" "throughput" "bogus 127.0.0.1" "latency -n 5 127.0.0.1" \
    "throughput -n x 127.0.0.1" "throughput --pid 1 127.0.0.1 127.0.0.2"; do
	# shellcheck disable=SC2086  # word splitting wanted
	"$BENCH" $args >/dev/null 2>"$T/usage.err"
	check_eq "nodetalk-bench $args: exit 2" 2 $?
	check "nodetalk-bench $args: says why" grep -q "^nodetalk-bench: " "$T/usage.err"
done

for id in A B C; do
	nt_start "$id"
done
wait_peers

# --- throughput --------------------------------------------------------------

bench tp throughput -n 600 -c 3 -w 16 -s 40 "${NODES[@]}"
check_eq "throughput exits 0" 0 "$RC"
jcheck "throughput: its JSON has the figures" "$T/tp.json" \
    "tool eq \"nodetalk-bench\"" "command eq \"throughput\"" "ok eq true" \
    "machine.nproc pos" "machine.cpu str" "machine.kernel str" \
    "params.chats eq 600" "params.connections eq 3" "params.window eq 16" \
    "results.chats_per_s pos" "results.elapsed_s pos" \
    "results.acks_per_s pos" "results.ack_p50_ms num" \
    "results.ack_p99_ms num" "results.ack_p999_ms num" \
    "results.cpu_us_per_chat pos" "results.cpu_us_per_chat_node1 num" \
    "results.client_cpu_us_per_chat num" "results.duplicates eq 0" \
    "results.missing eq 0" "results.error_frames eq 0"
for id in A B C; do
	check_eq "node $id stores the 600 chats the bench sent" 600 \
	    "$(status_messages "${NT_ADDR[$id]}")"
done
check "node A's history holds the bench's texts, 40 bytes each" \
    test "$(nt_texts A | grep -cE '^[0-9a-f]{8}-[0-9]+ x+$')" -eq 600
check_eq "every text is 40 bytes" "40" \
    "$(nt_texts A | awk '{ print length($0) }' | sort -u)"

# The table, for people: a row per figure.
"$BENCH" throughput -p "$P" -n 50 "${NODES[@]}" >"$T/tp.txt" 2>&1
check_eq "throughput without --json exits 0" 0 $?
check "the table has the replicated rate" grep -qE "chats/s replicated to every node +[0-9]+" "$T/tp.txt"

# --- latency -------------------------------------------------------------------

bench lat latency -r 200 -d 1 --warmup 0.2 "${NODES[@]}"
check_eq "latency exits 0" 0 "$RC"
jcheck "latency: its JSON has the percentiles" "$T/lat.json" \
    "command eq \"latency\"" "ok eq true" "params.rate eq 200" \
    "results.rate_per_s pos" "results.ack_p50_ms pos" \
    "results.ack_p999_ms pos" "results.push_node1_p50_ms pos" \
    "results.push_node2_p50_ms pos" "results.push_node2_p99_ms pos" \
    "results.push_node3_p999_ms pos" "results.missing eq 0" \
    "results.duplicates eq 0"

# --- connections ---------------------------------------------------------------

ws_before=$(nt_worker_pid A ws)
mark=$(nt_log_mark A)
bench conn connections -n 60 --repeat 2 --kill-ws KILL -b 127.0.1.1+2 \
    "${NODES[0]}"
check_eq "connections exits 0" 0 "$RC"
jcheck "connections: its JSON has the figures" "$T/conn.json" \
    "command eq \"connections\"" "ok eq true" "params.clients eq 60" \
    "params.sources eq 3" "results.connect_join_s pos" \
    "results.mem_per_client_b num" "results.fanout_median_ms pos" \
    "results.fanout_max_ms pos" "results.dropped eq 60" \
    "results.rejoined eq 60" "results.rejoin_s pos" \
    "results.duplicates eq 0"
check_log A "ws worker started" "$mark"
check "the storm came from a new ws worker" \
    test "$(nt_worker_pid A ws "$mark")" != "$ws_before"

# --- history -------------------------------------------------------------------

# The restart command stops node C (a zombie until we wait for it counts
# as stopped) and starts it again in the background.
cpid=$(nt_pid C)
cat >"$T/restart-C.sh" <<EOF
kill -TERM $cpid
while [ -e /proc/$cpid ] && ! grep -q '^State:.*Z' /proc/$cpid/status; do sleep 0.02; done
"$NT_DAEMON" -c "$T/nodetalk.conf" -n C >>"$T/C.log" 2>&1 &
echo \$! >"$T/C.newpid"
EOF
bench hist history -n 300 --repeat 3 --restart-cmd "sh $T/restart-C.sh" \
    "${NT_ADDR[C]}"
check_eq "history exits 0" 0 "$RC"
if [ -s "$T/C.newpid" ]; then
	wait "$cpid" 2>/dev/null
	NT_PIDS[C]=$(cat "$T/C.newpid")
	_nt_own_tree "${NT_PIDS[C]}"
fi
jcheck "history: its JSON has the figures" "$T/hist.json" \
    "command eq \"history\"" "ok eq true" "results.fill_per_s pos" \
    "results.messages pos" "results.master_rss_per_msg_b pos" \
    "results.master_anon_per_msg_b pos" "results.ping_median_us pos" \
    "results.join_since_all_median_us pos" \
    "results.join_full_median_us pos" "results.join_full_chats pos" \
    "results.restart_s pos" "results.restarted_anon_per_msg_b pos"
check_eq "the restarted node C holds what it held" \
    "$(status_messages "${NT_ADDR[A]}")" "$(status_messages "${NT_ADDR[C]}")"

# --- failures ------------------------------------------------------------------

# A restart command that fails ends the run at once, with its status.
bench false history -n 20 --repeat 1 --restart-cmd "exit 3" -t 60 \
    "${NT_ADDR[A]}"
check_eq "history with a failing --restart-cmd exits 1" 1 "$RC"
check "it says how the command ended" grep -q "restart-cmd: exited with status 3" "$T/false.err"

nt_stop B
bench down throughput -n 20 -t 10 "${NODES[@]}"
check_eq "throughput with node B down exits 1" 1 "$RC"
check "it says which connection failed" grep -q "Connection refused" "$T/down.err"
jcheck "its JSON says not ok" "$T/down.json" "ok eq false"
nt_finish
