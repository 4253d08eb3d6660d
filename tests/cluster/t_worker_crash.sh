#!/bin/bash
# t_worker_crash.sh: the master restarts a worker killed with SIGKILL, and no
# acknowledged message is lost: B's ws worker dies and B serves again; A's
# peer worker dies while A takes messages, and they still reach every node.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_init worker_crash

for id in A B C; do
	nt_start "$id"
done
wait_peers

acked=()	# texts whose send was acknowledged

# send ID TEXT: one message; remember it when acknowledged.
send() {
	local out
	out=$(nt_send "$1" "crash" "$2") || return 1
	[[ $out =~ ^sent\ $1-[0-9]+$ ]] || return 1
	acked+=("$2")
}

# worker_ok ID KIND PID: the log names PID as ID's KIND worker and it is a
# running child of ID's master.
worker_ok() {
	[ -n "$3" ] && nt_pid_alive "$3" &&
	    [ "$(ps -o ppid= -p "$3" | tr -d ' ')" = "$(nt_pid "$1")" ]
}

# new_worker_ok ID KIND OLD NEW: NEW is another pid than OLD, and worker_ok.
new_worker_ok() {
	[ -n "$4" ] && [ "$4" != "$3" ] && worker_ok "$1" "$2" "$4"
}

for id in A B C; do
	for kind in ws peer; do
		pid=$(nt_worker_pid "$id" "$kind")
		check "$id logs its $kind worker's pid, a child of the master ($pid)" \
		    worker_ok "$id" "$kind" "$pid"
	done
done

check "a message to B before the crash" send B "B before crash"

# 1. SIGKILL B's ws worker: the master starts a new one; B serves again.
old=$(nt_worker_pid B ws)
worker_ok B ws "$old" || nt_fatal "no ws worker pid for B to kill"
master_b=$(nt_pid B)
mark=$(nt_log_mark B)
kill -KILL "$old"
check "B logs a new ws worker" \
    wait_until 10 _nt_log_has B "[B] ws worker started (pid " "$mark"
new=$(nt_worker_pid B ws "$mark")
check "B's new ws worker ($new) is not the old one ($old) and runs" \
    new_worker_ok B ws "$old" "$new"
check_eq "B's master is the same process" "$master_b" "$(nt_pid B)"
check "a message to B after the restart is acknowledged" \
    wait_until 10 send B "B after ws restart"
check "B's restarted ws worker serves the earlier message" \
    wait_until 5 nt_has_texts B "B before crash"

# 2. SIGKILL A's peer worker in the middle of ten messages to A.
old=$(nt_worker_pid A peer)
worker_ok A peer "$old" || nt_fatal "no peer worker pid for A to kill"
mark=$(nt_log_mark A)
sent_to_a=0
for i in 1 2 3 4 5 6 7 8 9 10; do
	[ "$i" -eq 4 ] && kill -KILL "$old"
	send A "A message $i" && sent_to_a=$((sent_to_a + 1))
done
check_eq "A acknowledged all ten messages while its peer worker died" 10 "$sent_to_a"
check "A logs a new peer worker" \
    wait_until 10 _nt_log_has A "[A] peer worker started (pid " "$mark"
new=$(nt_worker_pid A peer "$mark")
check "A's new peer worker ($new) is not the old one ($old) and runs" \
    new_worker_ok A peer "$old" "$new"

# Every acknowledged message reaches every node, once, in the same order.
nt_note "${#acked[@]} messages acknowledged"
for id in A B C; do
	check "$id holds all ${#acked[@]} acknowledged messages" \
	    wait_until 20 nt_has_texts "$id" "${acked[@]}"
done
ids_a=$(nt_ids A | tr '\n' ' ')
for id in A B C; do
	h=$(nt_history "$id")
	check "$id: well-formed chats, unique ids, cluster order" nt_json check-chats <<<"$h"
	check_eq "$id has the same messages in the same order as A" "$ids_a" \
	    "$(nt_json get id <<<"$h" | tr '\n' ' ')"
done

nt_finish
