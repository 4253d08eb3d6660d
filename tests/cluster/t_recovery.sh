#!/bin/bash
# t_recovery.sh: what a client relies on to recover.
#  1. join with "since": a client that saw A's history up to some point
#     joins on ANOTHER node with since = the highest seq it saw per origin
#     and gets exactly the messages it missed (no more, no less, cluster
#     order), and "recovered": true; since ahead of the node ({"A":999})
#     gives "recovered": false; origins left out of since come in full.
#  2. idempotent sends: a chat with "id":"retry-1" sent twice to the same
#     node (the second time after the first ack, then again after the node
#     restarted, then with another text) gets the same ack id every time,
#     and every history holds it once; the same id sent to another node is
#     a new message there.
#  3. nodetalk --follow on B survives B's restart: it reconnects and prints
#     every message once, including those sent while B was down.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init recovery
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"

for id in A B C; do
	nt_start "$id"
done
wait_peers

# send ID TEXT: nodetalk --text; the acked id goes to $T/acked.PHASE.
PHASE=pre
send() {
	local out
	out=$(nt_send "$1" rec "$2") || { echo "# send to $1 failed: $out"; return 1; }
	[[ $out =~ ^sent\ $1-[0-9]+$ ]] || { echo "# send to $1: $out"; return 1; }
	echo "${out#sent }" >>"$T/acked.$PHASE"
}

# 1. since.
for m in A:a1 A:a2 A:a3 B:b1 B:b2 C:c1 C:c2; do
	check "before: send ${m#*:} to ${m%%:*}" send "${m%%:*}" "${m#*:}"
done
check_converged 10 A B C
seen=$(wsclient history 127.0.0.1 "$P")
check "a client reads A's history" test $? -eq 0
since=$(nt_json get id <<<"$seen" | "$NT_PYTHON" -c '
import json, sys
v = {}
for line in sys.stdin:
    o, s = line.strip().rsplit("-", 1)
    v[o] = max(v.get(o, 0), int(s))
print(json.dumps(v, separators=(",", ":")))')
check_eq "the client's since vector" '{"A":3,"B":2,"C":2}' "$since"

PHASE=missed
for m in B:b3 B:b4 C:c3 B:b5 C:c4 A:a4; do
	check "later: send ${m#*:} to ${m%%:*}" send "${m%%:*}" "${m#*:}"
done
check "C holds the six later messages" wait_until 10 present_in missed C

# join NODE SINCE: raw join; the frames in $T/join.out.
join() {
	wsclient raw "${NT_ADDR[$1]}" "$P" \
	    "{\"type\":\"join\",\"from\":\"rec\",\"since\":$2}" --wait 1.5 >"$T/join.out"
}
# before_joined: the chat frames before the joined frame.
before_joined() {
	"$NT_PYTHON" -c '
import json, sys
for line in sys.stdin:
    f = json.loads(line)
    if f.get("type") == "joined":
        break
    print(line, end="")' <"$T/join.out"
}
joined_field() {
	nt_json where type=joined <"$T/join.out" | nt_json get "$1"
}

check "join on C with since $since" join C "$since"
got=$(before_joined)
check_eq "since: C sends exactly the six missed messages, in cluster order" \
    "$(sort "$T/acked.missed" | tr '\n' ' ')" "$(nt_json get id <<<"$got" | sort | tr '\n' ' ')"
check "since: those frames are stored chats in the cluster order" nt_json check-chats <<<"$got"
check_eq "since: in C's order" \
    "$(nt_ids C | grep -xF -f "$T/acked.missed" | tr '\n' ' ')" \
    "$(nt_json get id <<<"$got" | tr '\n' ' ')"
check_eq "since: joined says count 6" 6 "$(joined_field count)"
check_eq "since: joined says recovered true" true "$(joined_field recovered)"
check_eq "since: joined names node C" C "$(joined_field node)"
check_eq "since: nothing after the joined frame" "" \
    "$(nt_json after joined <"$T/join.out" | nt_json where type=chat)"

check "join on B with since {\"A\":999}" join B '{"A":999}'
got=$(before_joined)
check_eq "since ahead: joined says recovered false" false "$(joined_field recovered)"
check_eq "since ahead: B sends every message of B and C (left out of since), none of A" \
    "$(nt_ids B | grep -v '^A-' | tr '\n' ' ')" "$(nt_json get id <<<"$got" | tr '\n' ' ')"
check "join on A with since {}" join A '{}'
check_eq "since {}: the whole history" "$(nt_ids A | tr '\n' ' ')" \
    "$(before_joined | nt_json get id | tr '\n' ' ')"
check_eq "since {}: recovered true" true "$(joined_field recovered)"
check "join on C with since = everything C has" join C "$(nt_ids C | "$NT_PYTHON" -c '
import json, sys
v = {}
for line in sys.stdin:
    o, s = line.strip().rsplit("-", 1)
    v[o] = max(v.get(o, 0), int(s))
print(json.dumps(v))')"
check_eq "since = all: no chats, count 0, recovered true" "0 true" \
    "$(before_joined | nt_json count) $(joined_field recovered)"

# 2. Idempotent sends.
retry() {
	wsclient send "${NT_ADDR[$1]}" "$P" rec "$2" --id retry-1
}
a1=$(retry A "retry text")
check "retry-1 to A: acknowledged" test $? -eq 0
id1=$(nt_json get id <<<"$a1")
check_match "retry-1: an id of A" '^A-[0-9]+$' "$id1"
check_eq "retry-1: the ack carries client_id" retry-1 "$(nt_json get client_id <<<"$a1")"
a2=$(retry A "retry text")
check_eq "retry-1 again to A: the same ack id" "$id1" "$(nt_json get id <<<"$a2")"
check_eq "retry-1 again: the same lamport and ts" \
    "$(nt_json get lamport <<<"$a1") $(nt_json get ts <<<"$a1")" \
    "$(nt_json get lamport <<<"$a2") $(nt_json get ts <<<"$a2")"
echo "$id1 retry-1" >"$T/acked.retry"
check_converged 10 A B C
for id in A B C; do
	check_eq "$id holds \"retry text\" once" 1 \
	    "$(nt_texts "$id" | grep -cxF 'retry text')"
done
nt_stop A
check_eq "A stops with status 0" 0 "$?"
nt_start A
a3=$(retry A "another text")
check_eq "retry-1 to A after A's restart, other text: still $id1" "$id1" "$(nt_json get id <<<"$a3")"
check "A still holds \"retry text\" once and not \"another text\"" \
    test "$(nt_texts A | grep -cxF 'retry text') $(nt_texts A | grep -cxF 'another text')" = "1 0"
b1=$(retry B "retry text")
idb=$(nt_json get id <<<"$b1")
check_match "retry-1 to B: a new message of B" '^B-[0-9]+$' "$idb"
echo "$idb retry-1" >>"$T/acked.retry"
check_converged 10 A B C

# 3. nodetalk --follow across a restart of its node.
nt_bg "$T/follow.out" "$NT_CLIENT" --server-host 127.0.0.2 --port "$P" \
    --sender follower --follow --json
follow=$NT_BG_PID
followed() { grep '^{' "$T/follow.out" | nt_json get id; }
# follow_has_all: follow printed every message B holds.
follow_has_all() {
	[ -z "$(comm -23 <(nt_ids B | sort) <(followed | sort))" ]
}
check "follow: prints B's history" wait_until 10 follow_has_all
PHASE=follow
check "follow: a message to B" send B "f1"
check "follow: a message to A" send A "f2"
check "follow: both printed" wait_until 10 follow_has_all
nt_stop B
check_eq "B stops with status 0" 0 "$?"
check "follow: a message to A while B is down" send A "f3"
check "follow: a message to C while B is down" send C "f4"
sleep 0.5
nt_start B
check "follow: a message to B after its restart" send B "f5"
check "follow: a message to C after B's restart" send C "f6"
check_converged 15 A B C
check "follow: printed every message B holds, f1..f6 included" \
    wait_until 15 follow_has_all
check_eq "follow: printed each message once" "" "$(followed | sort | uniq -d)"
check_eq "follow: printed nothing B does not hold" "" \
    "$(comm -13 <(nt_ids B | sort) <(followed | sort))"
check "follow: it said it reconnected" grep -q "reconnected to 127.0.0.2:$P" "$T/follow.out"
check "follow: still running" nt_pid_alive "$follow"
kill -TERM "$follow" 2>/dev/null
check "follow: ends on SIGTERM" wait_until 5 nt_pid_gone "$follow"

nt_finish
