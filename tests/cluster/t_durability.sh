#!/bin/bash
# t_durability.sh: kill -9 a node's master while every node takes a stream
# of messages.  Its workers exit on their own (they lost the channel); the
# other nodes keep acknowledging; the node comes back and, within 15 s,
# holds every message any node acknowledged, before, during and after its
# crash; all histories are identical (same ids, same order), with nothing
# stored twice, including chats a client retried with the same id across
# the crash.  Twice: first C, then B.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init durability
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"

for id in A B C; do
	nt_start "$id"
done
wait_peers

# acked_some PREFIX: at least one ack recorded for PREFIX.
acked_some() { test "$(acked_n "$1")" -gt 0; }

# crash_round R VICTIM: one round, streams into every node.
crash_round() {
	local r=$1 v=$2 id others=() stop="$T/stop.$1" once n0 n1 t0 mark
	local -A marks=()
	for id in A B C; do
		[ "$id" = "$v" ] || others+=("$id")
	done
	LG_PIDS=()
	for id in "${others[@]}"; do
		lg_bg "$id" "r$r$id" --stop-file "$stop" --timeout 40
	done
	# Into the victim: one client that stops when its node dies, and one
	# that reconnects and resends what was not acknowledged, same ids.
	lg_bg "$v" "r$r${v}once" --stop-file "$stop" --timeout 40
	once=$LG_PID
	lg_bg "$v" "r$r${v}retry" --stop-file "$stop" --timeout 40 --reconnect
	# Crash it under load: once its clients got acks (a loaded machine
	# may take seconds to start them), not after a fixed sleep.
	check "round $r: $v acknowledged messages before the crash" \
	    wait_until 20 acked_some "r$r${v}once"
	kill9_node "$v"
	check "round $r: the loadgen on $v ends by itself when $v dies, exit 0" \
	    lg_wait 10 "$once"
	n0=$(acked_n "r$r${others[0]}" "r$r${others[1]}")
	sleep 2
	n1=$(acked_n "r$r${others[0]}" "r$r${others[1]}")
	check "round $r: ${others[*]} kept acknowledging while $v was down ($n0 -> $n1)" \
	    test "$n1" -gt "$n0"
	for id in "${others[@]}"; do
		marks[$id]=$(nt_log_mark "$id")
	done
	nt_start "$v"
	t0=$(_nt_ms)
	sleep 1.5
	touch "$stop"
	check "round $r: every loadgen exited 0" lg_wait 15 "${LG_PIDS[@]}"
	check "round $r: the retrying client on $v got acks after the restart" \
	    grep -Eq 'reconnects [1-9]' "$T/lg.r$r${v}retry.out"
	nt_note "round $r: acks: $(for f in "$T"/acked.r"$r"*; do printf '%s=%s ' "${f##*acked.}" "$(wc -l <"$f")"; done)"
	if wait_until 15 all_present "$v"; then
		_nt_ok "round $r: $v holds all $(acked_n) acked messages $(( $(_nt_ms) - t0 )) ms after its restart"
	else
		_nt_notok "round $r: $v holds every acked message within 15 s of its restart"
		all_present "$v" | sed 's/^/#   /'
	fi
	check_converged 10 A B C
	mark=
	for id in "${others[@]}"; do
		_nt_log_has "$id" "Catch-up: sending " "${marks[$id]}" && mark=$id
	done
	check "round $r: a peer logged \"Catch-up: sending N messages to $v\"" test -n "$mark"
}

crash_round 1 C
crash_round 2 B
nt_note "$(acked_n) messages acknowledged in all"

nt_finish
