#!/bin/bash
# t_after.sh: a client's "after" (the newest lamport it saw) orders its
# answer after the question, even on a node the question has not reached:
# B takes the question while A is down, then A takes the answer while B is
# down, so only "after" can put the answer last.  A client cannot push a
# node's clock arbitrarily far.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
# Two nodes, each started alone below.
NT_NODES=(A B)
nt_init after
lamport_of() { nt_json where type=ack | nt_json get lamport; }

# Neither log is empty: a node with an empty log may wait for its peers
# before it takes chats, and each node is started alone below.
nt_start A
nt_start B
check_eq "a first message, on A" "sent A-1" "$(nt_send A alice hello)"
check "B has it" wait_until 15 nt_count_is B 1
nt_stop A
nt_stop B

# B alone: a question in six parts; B's clock runs ahead of A's.
nt_start B
for i in 1 2 3 4 5 6; do
	ack=$(wsclient send "${NT_ADDR[B]}" "$P" bob "question part $i")
done
q=$(lamport_of <<<"$ack")
check_eq "the question's last part has lamport 7" 7 "$q"
nt_stop B

# A alone: it never saw the question; its clock is still 1.
nt_start A
check_eq "A holds only the first message" 1 "$(nt_count A)"
ack=$(wsclient raw "${NT_ADDR[A]}" "$P" \
    "{\"type\":\"chat\",\"from\":\"alice\",\"text\":\"answer\",\"id\":\"ans-1\",\"after\":$q}" \
    --count 1)
check_match "A acknowledges the answer" '"type": *"ack"' "$ack"
lamport=$(lamport_of <<<"$ack")
check_eq "the answer's clock is one past the question its author saw" \
    $((q + 1)) "$lamport"

nt_start B
check "A and B converge" wait_until 15 nt_count_is A 8
check "B has the answer" wait_until 15 nt_count_is B 8
check_eq "the answer is last on A" answer "$(nt_texts A | tail -n 1)"
check_eq "the answer is last on B" answer "$(nt_texts B | tail -n 1)"
check_eq "A and B list the same history" "$(nt_ids A)" "$(nt_ids B)"

# A client may not push the clock past a bound.
ack=$(wsclient raw "${NT_ADDR[A]}" "$P" \
    '{"type":"chat","from":"mallory","text":"far","after":9000000000000}' \
    --count 1)
lamport=$(lamport_of <<<"$ack")
check "a huge after is capped (lamport $lamport)" test "$lamport" -le 1000009
out=$(wsclient raw "${NT_ADDR[A]}" "$P" \
    '{"type":"chat","from":"x","text":"y","after":-1}' --count 1)
check_match "a negative after is a bad_field error" '"code": *"bad_field"' "$out"
nt_finish
