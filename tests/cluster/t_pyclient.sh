#!/bin/bash
# t_pyclient.sh: a client that is not ours (python3-websockets, as the seed's
# client is) sends, joins and reads history; messages from it and from the C
# client reach a joined client on a third node as live pushes.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init pyclient

for id in A B C; do
	nt_start "$id"
done
wait_peers

# A client joined on C waits for two live messages.
nt_bg "$T/waiter.out" wsclient --timeout 25 join-wait 127.0.0.3 "$P" 2
waiter=$NT_BG_PID
check "joined client on C got the joined frame" \
    wait_until 10 grep -q '"type": "joined"' "$T/waiter.out"

ack=$(wsclient send 127.0.0.1 "$P" pyalice "python to A")
check "wsclient send to A is acknowledged" test $? -eq 0
check_eq "the ack frame's type" ack "$(nt_json get type <<<"$ack")"
check_eq "the ack frame's id" A-1 "$(nt_json get id <<<"$ack")"

out=$(nt_send B bob "nodetalk to B")
check_eq "nodetalk to B prints the stored id" "sent B-1" "$out"

check "the waiter on C saw two live messages and left" \
    wait_until 15 nt_pid_gone "$waiter"
wait "$waiter"
check_eq "the waiter's exit status" 0 "$?"
live=$(nt_json after joined <"$T/waiter.out")
check_eq "live pushes on C: the two texts" "nodetalk to B|python to A|" \
    "$(nt_json get text <<<"$live" | sort | tr '\n' '|')"
check_eq "live pushes on C: the two ids" "A-1 B-1 " \
    "$(nt_json get id <<<"$live" | sort | tr '\n' ' ')"
while IFS= read -r frame; do
	check "live push is a stored chat frame: ${frame:0:80}" \
	    nt_json check-chats <<<"$frame"
done <<<"$live"

check "B holds both messages" \
    wait_until 10 nt_has_texts B "python to A" "nodetalk to B"
h=$(wsclient history 127.0.0.2 "$P")
check "wsclient history on B succeeds" test $? -eq 0
check_eq "wsclient history on B: two messages" 2 "$(nt_json count <<<"$h")"
check_eq "wsclient history on B: the texts" "nodetalk to B|python to A|" \
    "$(nt_json get text <<<"$h" | sort | tr '\n' '|')"
check "wsclient history on B: well-formed, cluster order" nt_json check-chats <<<"$h"
check_eq "wsclient and nodetalk see the same history on B" \
    "$(nt_ids B | tr '\n' ' ')" "$(nt_json get id <<<"$h" | tr '\n' ' ')"
check_eq "the pyalice message keeps its sender" pyalice \
    "$(nt_json where text="python to A" <<<"$h" | nt_json get from)"

nt_finish
