#!/bin/bash
# t_peer_poison.sh: what a node accepts from a link that said hello as a
# configured node, with no secret set (anyone can).  Chats of made-up
# origins are refused and never reach a sync frame; a lamport of 2^53 or
# one far past our clock is refused like a gap (not stored, asked again),
# so acks keep exact, small integers; a replicated or seed chat over
# max_message_bytes is refused with a log line.  After all that, a long
# partition with legitimate clock jumps still catches up.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
# C is played by this script; D is a seed node that never runs, so that
# A takes the seed's hello-less chats.
NT_NODES=(A B C D)
NT_ADDR[D]=127.0.0.4
nt_init peer_poison
nt_write_conf --seed D --set 'max_message_bytes = 4096;' \
    --set 'max_frame_bytes = 1048576;'
# Every log is empty, so each node numbers no chat before it heard every
# peer (guarantees.md): the real C runs until then, and this script plays
# C after it stopped.
nt_start A
nt_start B
nt_start C
wait_peers
nt_stop C
check "A and B are linked" wait_until 15 _nt_log_has A "[A] Sent hello to B"
check "B and A are linked" wait_until 15 _nt_log_has B "[B] Sent hello to A"
H=${NT_ADDR[A]}
hostile() { timeout 60 "$NT_PYTHON" "$NT_TOOLS/hostile.py" "$@"; }
# as_c FILE [args]: FILE's frames to A on a link that said hello as C.
as_c() {
	local f=$1
	shift
	hostile frames "$H" "$P" "$f" --hello C --to A "$@"
}
rchat() {	# rchat ORIGIN SEQ LAMPORT [TEXT]: a replicated chat frame
	printf '{"type":"chat","replicated":true,"origin":"%s","seq":%s,"lamport":%s,"ts":1,"from":"mallory","text":"%s"}\n' \
	    "$1" "$2" "$3" "${4:-poison}"
}
lamport_of() { nt_json where type=ack | nt_json get lamport; }

check_eq "a first chat on A" "sent A-1" "$(nt_send A alice first)"

# --- 3,000 made-up origins ----------------------------------------------
mark=$(nt_log_mark A)
for i in $(seq -w 0 2999); do rchat "made-up-origin-$i" 1 2; done >"$T/origins"
as_c "$T/origins" --wait 3 >"$T/origins.out"
check_eq "A stored none of 3000 chats of made-up origins" 1 "$(nt_count A)"
check_log A "is not a node of this cluster" "$mark"
check_eq "  said once, not 3000 times (rate-limited)" 1 \
    "$(nt_log_since A "$mark" | grep -c "is not a node of this cluster")"
keys_ok() {	# every key of every JSON object on stdin is a node id
	"$NT_PYTHON" -c '
import json, sys
for line in sys.stdin:
    if line.strip() and not set(json.loads(line)) <= {"A", "B", "C", "D"}:
        sys.exit("unexpected key in " + line.strip()[:200])
'
}
syncs=$(nt_json where type=sync <"$T/origins.out")
check "A sent the link a sync" test -n "$syncs"
check "A's syncs name configured nodes only" \
    keys_ok <<<"$(nt_json get have <<<"$syncs")"
have=$("$NT_PYTHON" -c '
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
' "http://$H:$P/status")
check "A's have names configured nodes only" \
    keys_ok <<<"$(nt_json get have <<<"$have")"

# --- a lamport of 2^53, and one far past A's clock ------------------------
mark=$(nt_log_mark A)
rchat C 1 9007199254740992 >"$T/big"
out=$(as_c "$T/big" --count 2 --wait 3)
check_eq "a lamport of 2^53: bad_field" bad_field \
    "$(nt_json where type=error <<<"$out" | nt_json get code)"
rchat C 1 9007199254740991 >"$T/far"
out=$(as_c "$T/far" --wait 3)
check "a lamport far past the clock: A asks for catch-up (a sync)" \
    test -n "$(nt_json where type=sync <<<"$out")"
check_log A "refusing replicated chat C-1 from peer C for now: its lamport 9007199254740991" "$mark"
check_eq "neither is stored" 1 "$(nt_count A)"
ack=$(wsclient send "$H" "$P" alice "after the poison")
check_match "the next ack's lamport is exact and small" '"lamport": 2[,}]' "$ack"
# Asked again, C sends C-1 with its true clock: taken.
rchat C 1 3 "C's first" >"$T/true"
as_c "$T/true" --wait 1 >/dev/null
check "C-1 with its true clock is stored" wait_until 5 nt_has_texts A "C's first"
raw=$(printf '{"type":"join"}\n' >"$T/join" &&
    hostile frames "$H" "$P" "$T/join" --wait 2)
check "A's frames hold no number in exponent form" \
    test -z "$(grep -E '"(seq|lamport|ts)":[0-9.]+e' <<<"$raw")"

# --- max_message_bytes on every path --------------------------------------
mark=$(nt_log_mark A)
big=$(head -c 900000 /dev/zero | tr '\0' x)
rchat C 2 5 "$big" >"$T/long"
out=$(as_c "$T/long" --wait 3)
check_eq "a replicated text of 900000 bytes (limit 4096): too_long" too_long \
    "$(nt_json where type=error <<<"$out" | nt_json get code)"
check_log A "refusing a replicated chat C-2 from peer C: its text of 900000 bytes is over max_message_bytes (4096)" "$mark"
printf '{"type":"chat","replicated":true,"from":"seed","text":"%s"}\n' \
    "$big" >"$T/seedlong"
out=$(hostile frames "$H" "$P" "$T/seedlong" --count 1 --wait 3)
check_eq "a seed node's chat of 900000 bytes: too_long" too_long \
    "$(nt_json where type=error <<<"$out" | nt_json get code)"
check_log A "refusing a replicated chat from a seed node: its text of 900000 bytes" "$mark"
printf '{"type":"chat","replicated":true,"origin":"C","seq":2,"lamport":5,"from":"a\\u0001b","text":"x"}\n' >"$T/ctl"
out=$(as_c "$T/ctl" --wait 3)
check_eq "a replicated sender name with a control character: bad_field" \
    bad_field "$(nt_json where type=error <<<"$out" | nt_json get code)"
printf '{"type":"chat","replicated":true,"from":"seed","text":"from the seed"}\n' >"$T/seedok"
hostile frames "$H" "$P" "$T/seedok" --wait 1 >/dev/null
check "a seed chat within the limit is stored" \
    wait_until 5 nt_has_texts A "from the seed"
h=$(nt_history A)
check_eq "A holds exactly the 4 valid messages" 4 "$(nt_json count <<<"$h")"
check_fail "A stored no long text" grep -q xxxxxxxxxx <<<"$h"
check "B holds A-1, A-2 and C-1" wait_until 10 nt_has_texts B first \
    "after the poison" "C's first"

# --- a long partition with legitimate jumps still catches up --------------
nt_stop B
last=$(lamport_of <<<"$ack")
for i in 1 2 3 4 5; do
	a=$(wsclient raw "$H" "$P" \
	    "{\"type\":\"chat\",\"from\":\"bob\",\"text\":\"jump $i\",\"after\":$((last + 5000000))}" \
	    --count 1)
	last=$(lamport_of <<<"$a")
done
check "A's clock jumped by a million five times (lamport $last)" \
    test "$last" -gt 5000000
nt_start B
check "B catches up all five" wait_until 20 nt_has_texts B \
    "jump 1" "jump 2" "jump 3" "jump 4" "jump 5"
check_eq "A and B hold the same history (but A's local-only A/seed-1)" \
    "$(nt_ids A | grep -v /seed)" "$(nt_ids B)"
ack=$(wsclient send "${NT_ADDR[B]}" "$P" carol "on B after the jumps")
check "a chat on B sorts after them" test "$(lamport_of <<<"$ack")" -gt "$last"
nt_finish
