#!/bin/bash
# t_concurrent.sh: clients send to all three nodes at once (three loadgen
# connections of 200 chats, one per node, plus a pipelined one per node);
# every acknowledged message reaches every node, and the three histories are
# identical: the same ids in the same order, that order the cluster order
# (lamport, origin), gap-free per origin, no message stored twice.  Then
# causality across nodes: a message sent to B after B showed one from A
# sorts after it everywhere.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init concurrent
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"

for id in A B C; do
	nt_start "$id"
done
wait_peers

# 1. Six senders in parallel: one chat at a time, and eight in flight.
N=200
t0=$(_nt_ms)
for id in A B C; do
	lg_bg "$id" "seq$id" --count "$N"
	lg_bg "$id" "win$id" --count 100 --window 8
done
check "the six loadgens finished and exited 0" lg_wait 45 "${LG_PIDS[@]}"
nt_note "six loadgens: $(acked_n) acks in $(( $(_nt_ms) - t0 )) ms"
for id in A B C; do
	check_eq "$id acknowledged all $N one-at-a-time chats" "$N" "$(acked_n "seq$id")"
	check_eq "$id acknowledged all 100 pipelined chats" 100 "$(acked_n "win$id")"
done
check_converged 15 A B C
check "A's history passes ntjson check-chats too" nt_json check-chats <"$T/hist.A"
nt_note "lamport values shared by several messages (ties broken by origin): $(nt_json get lamport <"$T/hist.A" | sort | uniq -d | wc -l)"

# Each loadgen's acks, in order, are its origin's seqs in increasing order
# and its texts in send order: acks on one connection follow the chats.
in_order() {
	local f=$1 prev=0 id cid seq n=0
	while read -r id cid; do
		n=$((n + 1))
		seq=${id##*-}
		[ "$seq" -gt "$prev" ] || { echo "# $f: $id after seq $prev"; return 1; }
		[ "$cid" = "${f##*acked.}-$n" ] || { echo "# $f: ack $n is $cid"; return 1; }
		prev=$seq
	done <"$f"
}
for f in "$T"/acked.*; do
	check "${f##*/}: acks in send order, seqs increasing" in_order "$f"
done
# The two connections to one node share its seq space: no seq acked twice.
for id in A B C; do
	check_eq "$id: every acked seq is distinct" "" \
	    "$(cat "$T/acked.seq$id" "$T/acked.win$id" | cut -d' ' -f1 | sort | uniq -d)"
done

# 2. Causality: X to A; once B holds X, Y to B: Y sorts after X on every
# node.  B's origin sorts before A's, so only the Lamport clocks (B's clock
# moved past X's when it stored X) put Y after X.
for round in 1 2 3; do
	x=$(nt_send A causal "x$round") || nt_fatal "send x$round to A failed"
	check "x$round ($x) reached B" wait_until 10 nt_has_texts B "x$round"
	y=$(nt_send B causal "y$round") || nt_fatal "send y$round to B failed"
	printf '%s x%s\n%s y%s\n' "${x#sent }" "$round" "${y#sent }" "$round" >>"$T/acked.causal"
done
# Histories hold client_id only for chats sent with an id: nodetalk's
# --text chats have none, so compare by id only.
sed -i 's/ .*//' "$T/acked.causal"
check_converged 15 A B C
before() {
	# before HIST X Y: X's line comes before Y's.
	local lx ly
	local texts
	texts=$(nt_json get text <"$1")
	lx=$(grep -nxF -- "$2" <<<"$texts" | cut -d: -f1)
	ly=$(grep -nxF -- "$3" <<<"$texts" | cut -d: -f1)
	[ -n "$lx" ] && [ -n "$ly" ] && [ "$lx" -lt "$ly" ]
}
for id in A B C; do
	for round in 1 2 3; do
		check "$id: y$round (sent to B after B held x$round) sorts after x$round" \
		    before "$T/hist.$id" "x$round" "y$round"
	done
done

nt_finish
