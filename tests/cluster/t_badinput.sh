#!/bin/bash
# t_badinput.sh: what a careless or hostile client sends to node A.  Each bad
# frame gets the documented error frame or close code, the connection stays
# usable after a parse error, nothing bad is stored, no process dies, and
# exactly the valid messages end up on every node.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init badinput

for id in A B C; do
	nt_start "$id"
done
wait_peers

H=${NT_ADDR[A]}
valid=()	# texts that must be stored

chat() { printf '{"type":"chat","from":"tester","text":"%s"}' "$1"; }

# bad_frame DESC CODE FRAME: FRAME gets {"type":"error","code":CODE,
# "message":...} and a valid chat on the same connection is then acked.
bad_frame() {
	local desc=$1 code=$2 frame=$3 text="valid after $1" out
	out=$(wsclient raw "$H" "$P" "$frame" "$(chat "$text")" --wait 5 --count 2)
	check_eq "$desc: an error frame, then the next chat's ack" "error ack " \
	    "$(nt_json get type <<<"$out" | tr '\n' ' ')"
	check_eq "$desc: error code" "$code" \
	    "$(nt_json where type=error <<<"$out" | nt_json get code)"
	check_match "$desc: the error has a message" '.' \
	    "$(nt_json where type=error <<<"$out" | nt_json get message)"
	valid+=("$text")
}

bad_frame "malformed JSON" bad_json '{"type":"chat","from":"x","text":'
bad_frame "JSON that is not an object" bad_json '["chat","x","y"]'
bad_frame "chat without text" missing_field '{"type":"chat","from":"tester"}'
bad_frame "unknown type" bad_type '{"type":"dance","from":"tester"}'
bad_frame "text is a number" bad_field '{"type":"chat","from":"tester","text":42}'
long=$(printf 'y%.0s' $(seq 4097))
bad_frame "text of 4097 bytes" too_long "$(chat "$long")"
out=$(wsclient raw "$H" "$P" "$(chat "$long")" --wait 5 --count 1)
check_eq "too_long says the size and the limit" \
    "'text' is 4097 bytes; this node takes at most 4096 (max_message_bytes)" \
    "$(nt_json where type=error <<<"$out" | nt_json get message)"

# The cap is max_message_bytes (4096): a text of exactly that size is fine.
max=$(printf 'z%.0s' $(seq 4096))
ack=$(wsclient send "$H" "$P" tester "$max")
check "a text of exactly 4096 bytes is acknowledged" test $? -eq 0
check_eq "its ack" ack "$(nt_json get type <<<"$ack")"
valid+=("$max")

# "replicated": true from a connection that never said hello.
for frame in \
    '{"type":"chat","from":"mallory","text":"forged seed-style","replicated":true}' \
    '{"type":"chat","from":"mallory","text":"forged with identity","replicated":true,"origin":"B","seq":7,"lamport":7,"ts":1}'; do
	out=$(wsclient raw "$H" "$P" "$frame" --wait 5 --count 1)
	check_eq "replicated chat from a non-peer: error not_peer" not_peer \
	    "$(nt_json where type=error <<<"$out" | nt_json get code)"
done

out=$(wsclient binary "$H" "$P")
check_eq "binary frame: close 1003" 1003 \
    "$(nt_json where event=close <<<"$out" | nt_json get code)"
out=$(wsclient oversize "$H" "$P" 100000)
check_eq "100000-byte frame (max_frame_bytes 65536): close 1009" 1009 \
    "$(nt_json where event=close <<<"$out" | nt_json get code)"
out=$(wsclient badutf8 "$H" "$P")
check_eq "text frame with invalid UTF-8: close 1007" 1007 \
    "$(nt_json where event=close <<<"$out" | nt_json get code)"
out=$(wsclient http "$H" "$P" /no/such/page)
check_eq "plain GET of an unknown path: 404" 404 "$(nt_json get status <<<"$out")"

# The node still serves after all that.
out=$(nt_send A tester "still here")
check_match "nodetalk send after the bad input" '^sent A-[0-9]+$' "$out"
valid+=("still here")

n=${#valid[@]}
for id in A B C; do
	check "$id holds every valid message" \
	    wait_until 10 nt_has_texts "$id" "${valid[@]}"
	h=$(nt_history "$id")
	check_eq "$id holds exactly the $n valid messages" "$n" "$(nt_json count <<<"$h")"
	check "$id: well-formed chats, unique ids, cluster order" nt_json check-chats <<<"$h"
	check_fail "$id stored nothing from mallory" grep -q mallory <<<"$h"
	check_eq "$id: nothing but valid texts" "" \
	    "$(nt_json get text <<<"$h" | grep -vxF -f <(printf '%s\n' "${valid[@]}"))"
	check_eq "$id: one ws worker, never restarted" 1 \
	    "$(grep -cF "[$id] ws worker started" "$T/$id.log")"
	check "$id (pid $(nt_pid "$id")) is alive" nt_alive "$id"
done

nt_finish
