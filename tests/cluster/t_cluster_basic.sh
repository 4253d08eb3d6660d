#!/bin/bash
# t_cluster_basic.sh: three nodetalkd nodes on 127.0.0.1-3; one message sent
# to each node with the C client reaches every node, in the same order, once,
# and every node logs the seed's lines.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_init cluster_basic

for id in A B C; do
	nt_start "$id"
done
wait_peers

# The seed's start-up lines, with the real port and peer addresses.
check_log A "[A] Starting WebSocket server on port $P..."
check_log B "[B] Starting WebSocket server on port $P..."
check_log C "[C] Starting WebSocket server on port $P..."
check_log A "[A] Ready. Peers: ['B', 'C']"
check_log B "[B] Ready. Peers: ['A', 'C']"
check_log C "[C] Ready. Peers: ['A', 'B']"
check_log A "[A] Trying to connect to peer B at ws://127.0.0.2:$P"
check_log A "[A] Trying to connect to peer C at ws://127.0.0.3:$P"
check_log B "[B] Trying to connect to peer A at ws://127.0.0.1:$P"
check_log B "[B] Trying to connect to peer C at ws://127.0.0.3:$P"
check_log C "[C] Trying to connect to peer A at ws://127.0.0.1:$P"
check_log C "[C] Trying to connect to peer B at ws://127.0.0.2:$P"

# One message per node, each sent once the previous one is everywhere, so
# the order (and every "total messages here") is the same on every node.
n=0
for s in "A alice" "B bob" "C carol"; do
	id=${s% *}
	who=${s#* }
	text="hi from $id"
	n=$((n + 1))
	out=$(nt_send "$id" "$who" "$text")
	check_eq "nodetalk to $id prints the stored id" "sent $id-1" "$out"
	for node in A B C; do
		check "'$text' reached $node" wait_until 10 nt_has_texts "$node" "$text"
	done
	for node in A B C; do
		check_log "$node" "[$node] CHAT from $who: '$text' (total messages here: $n)"
	done
done

for node in A B C; do
	h=$(nt_history "$node")
	check "history of $node: well-formed chats, unique ids, cluster order" \
	    nt_json check-chats <<<"$h"
	ids=$(nt_json get id <<<"$h" | tr '\n' ' ')
	check_eq "history of $node: the three ids in send order" "A-1 B-1 C-1 " "$ids"
	texts=$(nt_json get text <<<"$h" | tr '\n' '|')
	check_eq "history of $node: the three texts" "hi from A|hi from B|hi from C|" "$texts"
	froms=$(nt_json get from <<<"$h" | tr '\n' ' ')
	check_eq "history of $node: the senders" "alice bob carol " "$froms"
done

nt_finish
