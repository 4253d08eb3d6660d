#!/bin/bash
# t_restart_all.sh: the whole cluster goes down and comes back, and nothing
# acknowledged is lost.  1. SIGTERM to all three nodes (exit 0, workers
# gone): after a restart every node lists exactly what it listed before.
# 2. kill -9 of all three masters right after the last acks: after a
# restart every acknowledged message is back on every node.  3. kill -9 of
# all three in the middle of a stream.  4. The same small crash run with
# fsync = "always" and fsync = "none" (and /status and /metrics say so).
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init restart_all
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"

start_all() {
	local id
	for id in A B C; do
		nt_start "$id"
	done
}

# http_get ID PATH: the body of GET PATH on node ID.
http_get() {
	"$NT_PYTHON" - "${NT_ADDR[$1]}" "$P" "$2" <<-'EOF'
	import sys, urllib.request
	url = f"http://{sys.argv[1]}:{sys.argv[2]}{sys.argv[3]}"
	print(urllib.request.urlopen(url, timeout=5).read().decode())
	EOF
}

# metric ID NAME: the value of an unlabelled metric.
metric() {
	http_get "$1" /metrics | awk -v n="$2" '$1 == n { print $2 }'
}

# kill9_all: SIGKILL all three masters at once; their workers follow.
kill9_all() {
	local id kids=
	for id in A B C; do
		kids="$kids $(nt_children "$(nt_pid "$id")" | tr '\n' ' ')"
	done
	check_eq "six workers before the kill" 6 "$(wc -w <<<"$kids")"
	for id in A B C; do
		nt_kill9 "$id"
	done
	# shellcheck disable=SC2086
	check "kill -9 of A, B and C: every worker exits within 5 s" \
	    wait_until 5 workers_gone $kids
}

start_all
wait_peers

# 1. Messages to every node, then SIGTERM to every node.
LG_PIDS=()
for id in A B C; do
	lg_bg "$id" "p1$id" --count 100 --window 4
done
check "phase 1: the loadgens finished, exit 0" lg_wait 30 "${LG_PIDS[@]}"
check_eq "phase 1: 300 messages acknowledged" 300 "$(acked_n)"
check_converged 10 A B C
for id in A B C; do
	cp "$T/hist.$id" "$T/before.$id"
done
for id in A B C; do
	kids=$(nt_children "$(nt_pid "$id")")
	nt_stop "$id"
	check_eq "SIGTERM: $id exits with status 0" 0 "$?"
	# shellcheck disable=SC2086
	check "SIGTERM: $id's workers are gone" wait_until 2 workers_gone $kids
done
start_all
wait_peers
snap A B C
for id in A B C; do
	check "after the restart $id lists exactly what it listed before" \
	    cmp -s "$T/before.$id" "$T/hist.$id"
done
check_converged 10 A B C

# 2. kill -9 of every master as soon as the last ack came in.
LG_PIDS=()
for id in A B C; do
	lg_bg "$id" "p2$id" --count 100 --window 8
done
check "phase 2: the loadgens finished, exit 0" lg_wait 30 "${LG_PIDS[@]}"
kill9_all
check_eq "phase 2: 300 more messages acknowledged" 600 "$(acked_n)"
start_all
check_converged 15 A B C

# 3. kill -9 of every master in the middle of a stream into every node.
LG_PIDS=()
for id in A B C; do
	lg_bg "$id" "p3$id" --stop-file "$T/stop3" --timeout 30 --window 4
done
sleep 1.5
kill9_all
check "phase 3: the loadgens end by themselves, exit 0" lg_wait 10 "${LG_PIDS[@]}"
nt_note "phase 3: $(acked_n p3A p3B p3C) messages acknowledged before the kill"
check "phase 3: some messages were acknowledged" test "$(acked_n p3A p3B p3C)" -gt 0
start_all
check_converged 15 A B C

# 4. A small crash run under each of the other fsync policies.
for pol in always none; do
	for id in A B C; do
		nt_stop "$id" || check_eq "$pol: stopping $id: exit status" 0 "$?"
	done
	set_fsync "$pol"
	start_all
	wait_peers
	for id in A B C; do
		check_match "$pol: /status of $id says fsync $pol" "\"fsync\": *\"$pol\"" \
		    "$(http_get "$id" /status)"
	done
	LG_PIDS=()
	for id in A B C; do
		lg_bg "$id" "p4$pol$id" --count 30 --window 2
	done
	check "$pol: the loadgens finished, exit 0" lg_wait 30 "${LG_PIDS[@]}"
	check_eq "$pol: 90 messages acknowledged" 90 \
	    "$(acked_n "p4${pol}A" "p4${pol}B" "p4${pol}C")"
	syncs=$(metric A nodetalk_log_fsync_seconds_count)
	if [ "$pol" = none ]; then
		check_eq "none: A made no fsync for its 30 messages" 0 "$syncs"
	else
		check "always: A made fsyncs for its messages ($syncs)" \
		    test "${syncs:-0}" -gt 0
	fi
	kill9_all
	start_all
	check_converged 15 A B C
done

nt_note "$(acked_n) messages acknowledged in all"
nt_finish
