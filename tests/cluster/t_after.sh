#!/bin/bash
# t_after.sh: a client's "after" (the newest lamport it saw) orders its
# answer after the question, even on a node the question has not reached;
# a client cannot push a node's clock arbitrarily far.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
# Only A and B run: a node with an empty log waits for every configured
# peer before it numbers a chat (guarantees.md), so C is not configured.
NT_NODES=(A B)
nt_init after
nt_start A
nt_start B

# B has a lot of history: its clock runs ahead of A's.
for i in 1 2 3 4 5 6; do nt_send B bob "question part $i" >/dev/null; done
nt_stop B	# the question cannot reach A now
ack=$(wsclient raw 127.0.0.1 "$P" \
    '{"type":"chat","from":"alice","text":"answer","id":"ans-1","after":6}' \
    --count 1)
check_match "A acknowledges the answer" '"type": *"ack"' "$ack"
lamport=$(grep '"ack"' <<<"$ack" | nt_json get lamport)
check_eq "the answer's clock is past what its author saw" 7 "$lamport"

nt_start B
check "A and B converge" wait_until 15 nt_count_is A 7
check "B has the answer" wait_until 15 nt_count_is B 7
check_eq "the answer is last on A" answer "$(nt_texts A | tail -n 1)"
check_eq "the answer is last on B" answer "$(nt_texts B | tail -n 1)"

# A client may not push the clock past a bound.
ack=$(wsclient raw 127.0.0.1 "$P" \
    '{"type":"chat","from":"mallory","text":"far","after":9000000000000}' \
    --count 1)
lamport=$(grep '"ack"' <<<"$ack" | nt_json get lamport)
check "a huge after is capped (lamport $lamport)" test "$lamport" -le 1000008
out=$(wsclient raw 127.0.0.1 "$P" \
    '{"type":"chat","from":"x","text":"y","after":-1}' --count 1)
check_match "a negative after is a bad_field error" '"code": *"bad_field"' "$out"
nt_finish
