#!/bin/bash
# t_seed.sh: a mixed cluster.  C runs the Python prototype (seednode.py, the
# config marks it `seed = true;`), A and B run nodetalkd.  A chat sent to the
# seed reaches A and B (on hello-less fresh connections, as the seed sends
# it); a chat sent to A reaches B and the seed; nothing is stored twice.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init seed
nt_write_conf --seed C

nt_start_seed C
nt_start A
nt_start B
wait_peers

# The seed node parsed the hellos of A and B (it prints them as dicts).
seed_got_hello() {
	grep -F "[C] Received message: {" "$T/C.log" |
	    grep -F "'type': 'hello'" | grep -qF "'from': '$1'"
}
for id in A B; do
	check "the seed node got hello from $id" wait_until 5 seed_got_hello "$id"
done

# 1. A client of the seed: the seed stores it and broadcasts it.
ack=$(wsclient send 127.0.0.3 "$P" seedy "from the seed")
check "the seed node acknowledges a client chat" test $? -eq 0
check_eq "the seed node's ack" ack "$(nt_json get type <<<"$ack")"
check_log C "[C] Broadcasting chat to A at ws://127.0.0.1:$P"
check_log C "[C] Broadcasting chat to B at ws://127.0.0.2:$P"
for id in A B; do
	check "the seed's chat reached $id" \
	    wait_until 10 nt_has_texts "$id" "from the seed"
	check_log "$id" "[$id] CHAT from seedy: 'from the seed' (total messages here: 1)"
done

# 2. A client of A: B and the seed get it.
out=$(nt_send A alice "from A")
check_eq "nodetalk to A prints the stored id" "sent A-1" "$out"
check "A's chat reached B" wait_until 10 nt_has_texts B "from A"
seed_has() {
	[ -f "$T/C.dump" ] &&
	    nt_json get text <"$T/C.dump" | grep -qxF -- "$1"
}
check "A's chat reached the seed node" wait_until 10 seed_has "from A"
check_log C "[C] CHAT from alice: 'from A' (total messages here: 2)"

# Give a duplicate time to show up before counting.
sleep 2
for id in A B; do
	h=$(nt_history "$id")
	check_eq "$id holds exactly the two messages" 2 "$(nt_json count <<<"$h")"
	check_eq "$id holds each text once" "from A|from the seed|" \
	    "$(nt_json get text <<<"$h" | sort | tr '\n' '|')"
	check "$id: well-formed chats, unique ids, cluster order" \
	    nt_json check-chats <<<"$h"
	check_fail "$id gave the seed's chat no cluster identity (A-n, B-n, C-n)" \
	    grep -qE '^[ABC]-[0-9]+$' <<<"$(nt_json where text="from the seed" <<<"$h" | nt_json get id)"
done
check_eq "A-1 is the same message on A and B" \
    "$(nt_history A | nt_json where id=A-1 | nt_json get text)" \
    "$(nt_history B | nt_json where id=A-1 | nt_json get text)"
check_eq "the seed node holds each text once" "from A|from the seed|" \
    "$(nt_json get text <"$T/C.dump" | sort | tr '\n' '|')"

nt_finish
