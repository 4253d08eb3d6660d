#!/bin/bash
# t_partition.sh: network partitions between the nodes, made by a proxy
# (tests/tools/faultproxy.py) that every peer link goes through: node X
# reaches node Y at 127.0.X.Y, where the proxy forwards to 127.0.0.Y (each
# node has its own config file saying so).  Clients talk to the nodes
# directly.
#  1. C cut off from A and B (links reset, new ones refused) while clients
#     send to all three: every chat is acknowledged; A and B share theirs,
#     C has none of them; healed, within 15 s every node holds every acked
#     message, the histories identical.
#  2. Only A-C cut: B holds everything and passes it on (catch-up through a
#     third node), so all three converge while the cut lasts.
#  3. C stalled (connections stay up, nothing flows) while clients send:
#     nothing reaches C, and a link that stays silent past the heartbeat
#     is dropped as dead (code 1011), not left hanging; released, all
#     converge.
#  4. Links flapping (cut and healed every 0.6 s) under a stream into
#     every node: all converge once it stops.
#  5. Every link cut (the proxy's SIGUSR1), each node alone takes messages;
#     healed (SIGUSR2), all converge.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init partition
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"

declare -A NUM=([A]=1 [B]=2 [C]=3) marks=()

# One config per node: the others are reached through the proxy.
routes=()
for x in A B C; do
	nt_write_conf --file "$T/$x.conf"
	for y in A B C; do
		[ "$x" = "$y" ] && continue
		sed -i "s/host = \"127\.0\.0\.${NUM[$y]}\"/host = \"127.0.${NUM[$x]}.${NUM[$y]}\"/" \
		    "$T/$x.conf"
		routes+=(--route "$x>$y=127.0.${NUM[$x]}.${NUM[$y]}:$P=127.0.0.${NUM[$y]}:$P")
	done
done
grep -q 'host = "127.0.3.1"' "$T/C.conf" || nt_fatal "could not write C.conf"

: >"$T/px.control"
# The lifetime only guards against a proxy left behind (the cleanup ends it
# by pid): on a loaded machine this test runs well past 90 s, and a proxy
# gone mid-test failed every step after it.
nt_bg "$T/proxy.log" "$NT_PYTHON" -u "$NT_TOOLS/faultproxy.py" "${routes[@]}" \
    --control "$T/px.control" --state "$T/px.state" --lifetime 900
proxy=$NT_BG_PID
# The proxy's first look at the (empty) control file is generation 1:
# px's generations start after it, or the first px could see "gen 1" and
# go on before the proxy applied what it asked.
wait_until 10 grep -qx "gen 1" "$T/px.state" ||
    { cat "$T/proxy.log"; nt_fatal "the proxy did not start"; }
PXGEN=1
# px [ROUTE MODE]...: set the proxy (routes not named are up); wait until
# it says it applied it.
px() {
	PXGEN=$((PXGEN + 1))
	{
		echo "gen $PXGEN"
		while [ $# -gt 0 ]; do
			echo "$1 $2"
			shift 2
		done
	} >"$T/px.control.tmp"
	mv "$T/px.control.tmp" "$T/px.control"
	wait_until 5 grep -qx "gen $PXGEN" "$T/px.state" ||
	    nt_fatal "the proxy did not apply generation $PXGEN"
}

# px_all MODE: the proxy says every route is in MODE.
px_all() {
	[ "$(grep -c " $1 " "$T/px.state")" = 6 ]
}

for id in A B C; do
	nt_start "$id" -c "$T/$id.conf"
done
wait_peers
check_log A "[A] Trying to connect to peer C at ws://127.0.1.3:$P"
check_log C "[C] Trying to connect to peer B at ws://127.0.3.2:$P"

for id in A B C; do
	out=$(nt_send "$id" "pre" "before the partition, to $id")
	check_match "a message to $id before the partition" "^sent $id-1$" "$out"
	echo "${out#sent }" >>"$T/acked.pre"
done
check_converged 10 A B C

# has_none ID PREFIX...: ID's history holds no message acked for PREFIX.
has_none() {
	local id=$1 f
	shift
	snap "$id" || return 1
	for f in "$@"; do
		while read -r i _; do
			grep -q "\"id\": *\"$i\"" "$T/hist.$id" && return 1
		done <"$T/acked.$f"
	done
	return 0
}

# 1. C cut off.
mark_a=$(nt_log_mark A)
mark_c=$(nt_log_mark C)
px "A>C" cut "C>A" cut "B>C" cut "C>B" cut
check "cut: A lost its link to C" \
    wait_until 5 _nt_log_has A "[A] Lost connection to peer C" "$mark_a"
check "cut: C lost its link to A" \
    wait_until 5 _nt_log_has C "[C] Lost connection to peer A" "$mark_c"
LG_PIDS=()
for id in A B C; do
	lg_bg "$id" "cut$id" --count 60 --window 4
done
check "cut: every loadgen finished, exit 0" lg_wait 30 "${LG_PIDS[@]}"
for id in A B C; do
	check_eq "cut: $id acknowledged all 60 chats" 60 "$(acked_n "cut$id")"
done
# A and B still replicate to each other.
check "cut: A and B hold every acked message but C's new ones" \
    wait_until 10 present_in "pre cutA cutB" A B
sleep 1
check "cut: C holds none of A's and B's new messages (the cut works)" \
    has_none C cutA cutB
check "cut: A holds none of C's new messages" has_none A cutC
nt_note "proxy: $(tr '\n' ' ' <"$T/px.state")"
for id in A B C; do
	marks[$id]=$(nt_log_mark "$id")
done
t0=$(_nt_ms)
px
check_converged 15 A B C
nt_note "healed: converged $(( $(_nt_ms) - t0 )) ms after the heal"
for l in A:C B:C C:A C:B; do
	check "healed: ${l%:*} dialled ${l#*:} again" wait_until 10 \
	    _nt_log_has "${l%:*}" "[${l%:*}] Sent hello to ${l#*:}" "${marks[${l%:*}]}"
done

# 2. Only A-C cut: catch-up through B.
mark_a=$(nt_log_mark A)
px "A>C" cut "C>A" cut
check "A-C cut: A lost its link to C" \
    wait_until 5 _nt_log_has A "[A] Lost connection to peer C" "$mark_a"
LG_PIDS=()
for id in A C; do
	lg_bg "$id" "ac$id" --count 40 --window 4
done
check "A-C cut: the loadgens finished, exit 0" lg_wait 30 "${LG_PIDS[@]}"
t0=$(_nt_ms)
check_converged 15 A B C
nt_note "A-C cut: converged through B $(( $(_nt_ms) - t0 )) ms after the last ack"
check "A-C cut: A still has no link to C" \
    grep -q '^A>C cut' "$T/px.state"
mark_a=$(nt_log_mark A)
mark_c=$(nt_log_mark C)
px
check "A-C healed: A dialled C again" \
    wait_until 10 _nt_log_has A "[A] Sent hello to C" "$mark_a"
check "A-C healed: C dialled A again" \
    wait_until 10 _nt_log_has C "[C] Sent hello to A" "$mark_c"

# 3. C stalled: nothing moves.  A stall that outlasts the heartbeat
# (peer_ping_interval_ms + ping_timeout_ms) is a dead link: the side that
# pings drops it with 1011 (t_heartbeat.sh times that); nothing else may
# end a link here.
for id in A B C; do
	marks[$id]=$(nt_log_mark "$id")
done
px "A>C" stall "C>A" stall "B>C" stall "C>B" stall
LG_PIDS=()
for id in A B C; do
	lg_bg "$id" "stall$id" --count 40 --window 4
done
check "stall: every loadgen finished, exit 0" lg_wait 30 "${LG_PIDS[@]}"
sleep 1
check "stall: C holds none of A's and B's new messages" \
    has_none C stallA stallB
# not_but_heartbeat ID: every link ID lost in the stall went to a ping.
not_but_heartbeat() {
	! nt_log_since "$1" "${marks[$1]}" | grep "Lost connection to peer" |
	    grep -vq "(code 1011)"
}
for id in A B C; do
	check "stall: $id lost no link but to the heartbeat" \
	    not_but_heartbeat "$id"
done
t0=$(_nt_ms)
px
check_converged 15 A B C
nt_note "stall released: converged $(( $(_nt_ms) - t0 )) ms after"

# 4. Flapping: links cut and healed every 0.6 s while every node takes a
# stream, so links break with messages in flight.
LG_PIDS=()
for id in A B C; do
	lg_bg "$id" "flap$id" --stop-file "$T/stop.flap" --timeout 40 --window 2
done
for cut in "A>C C>A" "B>C C>B A>B" "" "C>A B>A" "A>B B>A A>C" "" "C>B B>C C>A A>C" ""; do
	args=()
	for r in $cut; do args+=("$r" cut); done
	px "${args[@]}"
	sleep 0.6
done
touch "$T/stop.flap"
check "flapping: every loadgen exited 0" lg_wait 15 "${LG_PIDS[@]}"
nt_note "flapping: $(acked_n flapA flapB flapC) messages acknowledged"
t0=$(_nt_ms)
check_converged 15 A B C
nt_note "flapping over: converged $(( $(_nt_ms) - t0 )) ms after"

# 5. Every node alone (the proxy's SIGUSR1 cuts every route, SIGUSR2
# heals them): each node takes messages by itself, then all converge.
kill -USR1 "$proxy"
check "all cut: the proxy cut every route on SIGUSR1" \
    wait_until 5 px_all cut
LG_PIDS=()
for id in A B C; do
	lg_bg "$id" "alone$id" --count 30 --window 2
done
check "all cut: every loadgen finished, exit 0" lg_wait 30 "${LG_PIDS[@]}"
check "all cut: A holds none of B's and C's new messages" has_none A aloneB aloneC
check "all cut: B holds none of A's and C's new messages" has_none B aloneA aloneC
t0=$(_nt_ms)
kill -USR2 "$proxy"
check "all cut: the proxy healed every route on SIGUSR2" \
    wait_until 5 px_all up
check_converged 15 A B C
nt_note "all healed: converged $(( $(_nt_ms) - t0 )) ms after"

kill -TERM "$proxy" 2>/dev/null
wait_until 5 nt_pid_gone "$proxy"
nt_note "$(acked_n) messages acknowledged in all"
grep 'accepted' "$T/proxy.log" | sed 's/^/# /'
nt_finish
