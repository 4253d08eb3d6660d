#!/bin/bash
# t_corrupt_tail.sh: a damaged end of C's message log.  C is stopped, its
# data_dir/messages.log is damaged at the end (garbage appended, random
# bytes appended, the last record cut in its payload or its header, a byte
# of the last record's payload or length flipped), and C started again with
# A and B up (they take messages meanwhile).  Each time C starts, logs
# "corrupt or torn record at offset N (WHY); truncating M bytes" with the
# right N and M, keeps every record before N, leaves no junk in the file,
# and gets the lost record (and what it missed) back from its peers:
# every acknowledged message on every node, identical histories.
# Then one flipped bit in the middle of C's log (record 10): only that
# record is moved aside, the records after it are kept.
# Last, C loses its own last acknowledged record while its peers are down
# and takes a new chat before they come back: the new chat must not reuse
# the lost record's identity (see "daemon bug" below).
# shellcheck disable=SC2317  # helpers run through check and wait_until
# shellcheck disable=SC2119  # acked_n without arguments counts every file
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init corrupt_tail
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"
LOG="$T/C/messages.log"

ntlog() { "$NT_PYTHON" "$NT_TOOLS/ntlog.py" "$@"; }

# poke FILE OFFSET: flip every bit of the byte at OFFSET.
poke() {
	"$NT_PYTHON" - "$1" "$2" <<-'EOF'
	import sys
	with open(sys.argv[1], "r+b") as f:
	    f.seek(int(sys.argv[2]))
	    b = f.read(1)
	    f.seek(int(sys.argv[2]))
	    f.write(bytes([b[0] ^ 0xff]))
	EOF
}

# log_clean: every byte of C's log is a valid record.
log_clean() {
	local out
	out=$(ntlog list "$LOG") || return 1
	[ "$(sed -n 's/^end //p' <<<"$out")" = "$(sed -n 's/^size //p' <<<"$out")" ]
}

for id in A B C; do
	nt_start "$id"
done
wait_peers
LG_PIDS=()
for id in A B C; do
	lg_bg "$id" "seed$id" --count 20 --window 2
done
check "20 messages to each node, acknowledged" lg_wait 30 "${LG_PIDS[@]}"
check_converged 10 A B C

# damage N KIND LASTORIGIN: one round (see the top).
damage() {
	local n=$1 kind=$2 origin=$3 off len o seq cid size want why cut mark
	# C's last record is a message of ORIGIN: send one there last.
	lg "$origin" "last$n" --count 1 2>/dev/null
	check "round $n: C holds the last message (to $origin)" \
	    wait_until 10 present_in "last$n" C
	nt_stop C
	check_eq "round $n: C stops with status 0" 0 "$?"
	read -r off len o seq cid < <(ntlog last "$LOG")
	check_eq "round $n: C's last record is ${origin}'s last$n-1" "$origin last$n-1" "$o $cid"
	size=$(stat -c %s "$LOG")
	check_eq "round $n: the log ends with that record" "$size" "$((off + 8 + len))"
	case $kind in
	garbage)
		printf 'GARBAGE: these bytes are not a record. %.0s' 1 2 3 >>"$LOG"
		want=$size why="bad length" cut=$(($(stat -c %s "$LOG") - size)) ;;
	random)
		head -c 4096 /dev/urandom >>"$LOG"
		want=$size why='' cut=4096 ;;
	payload-cut)
		truncate -s $((off + 8 + len / 2)) "$LOG"
		want=$off why="short payload" cut=$((8 + len / 2)) ;;
	header-cut)
		truncate -s $((off + 5)) "$LOG"
		want=$off why="short header" cut=5 ;;
	payload-flip)
		poke "$LOG" $((off + 8 + len / 2))
		want=$off why="bad crc" cut=$((8 + len)) ;;
	length-flip)
		poke "$LOG" "$off"
		want=$off why="bad length" cut=$((8 + len)) ;;
	esac
	nt_note "round $n: $kind: log of $size bytes, last record at $off ($len bytes); now $(stat -c %s "$LOG") bytes"
	# Meanwhile A and B take more messages.
	lg A "down${n}A" --count 5 2>/dev/null
	lg B "down${n}B" --count 5 2>/dev/null
	mark=$(nt_log_mark C)
	nt_start C
	if [ -n "$why" ]; then
		check_log C "corrupt or torn record at offset $want ($why); truncating $cut bytes" "$mark"
	else
		check_log C "corrupt or torn record at offset $want (" "$mark"
		check_log C "); truncating $cut bytes" "$mark"
	fi
	check "round $n: C runs" nt_alive C
	check_converged 15 A B C
	check "round $n: C's log holds only whole records again" log_clean
}

damage 1 garbage A
damage 2 random B
damage 3 payload-cut A
damage 4 header-cut B
damage 5 payload-flip A
damage 6 length-flip B
# C's own acknowledged record, lost with A and B up: they give it back.
damage 7 payload-flip C

# One flipped bit in C's record 10, in the middle of the log (A and B are
# down, so nothing comes back yet): that record alone moves aside, into a
# file named in the log line, and every valid record after it is kept.
# Those of its origin wait beyond the gap; the rest are served at once.
# Then A and B fill the gap.
for id in A B C; do
	nt_stop "$id"
done
ntlog list "$LOG" | grep '^[0-9]' >"$T/before.list"
read -r off len xo xs _ < <(sed -n 10p "$T/before.list")
# What C should hold without record 10: per origin, the unbroken run from
# 1; and how many of record 10's origin wait beyond the gap.
read -r keep parked < <("$NT_PYTHON" - "$T/before.list" "$xo" <<-'EOF'
	import sys
	recs = [l.split() for l in open(sys.argv[1])]
	ids = {}
	for i, r in enumerate(recs):
	    if i != 9:
	        ids.setdefault(r[2], set()).add(int(r[3]))
	keep = parked = 0
	for o, seqs in ids.items():
	    n = 0
	    while n + 1 in seqs:
	        n += 1
	    keep += n
	    if o == sys.argv[2]:
	        parked = len([s for s in seqs if s > n + 1])
	print(keep, parked)
	EOF
)
nt_note "middle: record 10 is $xo-$xs at $off ($len bytes); C should keep $keep messages, $parked of $xo beyond the gap"
poke "$LOG" $((off + 8 + len / 2))
mark=$(nt_log_mark C)
nt_start C
check_log C "corrupt record at offset $off (bad crc): $((8 + len)) damaged bytes moved to $LOG.damaged-" "$mark"
check_log C "; the records after them are kept" "$mark"
if [ "$parked" -gt 0 ]; then
	check_log C "$parked messages of $xo after a gap at $xo-$xs are kept aside until the gap is filled" "$mark"
fi
check_eq "middle: C serves every message the log still holds in order" \
    "$keep" "$(nt_count C)"
check "middle: C's log holds only whole records" log_clean
check_eq "middle: the damaged bytes are in a file of their own" $((8 + len)) \
    "$(stat -c %s "$(ls "$LOG".damaged-*-at-"$off" | tail -n 1)")"
for id in A B; do
	nt_start "$id"
done
check_converged 15 A B C

# C loses its own last acknowledged record (C-n) while A and B are down.
# It must not number a new chat before it knows what they hold of its
# messages, or two acknowledged messages would share C-n for good: it
# answers "recovering" until both are back, then numbers the chat C-(n+1)
# and gets C-n back from them.
lg C "own" --count 1 2>/dev/null
check "own: C-n is everywhere" wait_until 10 present_in own A B
read -r lost _ <"$T/acked.own"
for id in A B C; do
	nt_stop "$id"
done
read -r off len o seq cid < <(ntlog last "$LOG")
check_eq "own: C's last record is $lost (own-1)" "$lost own-1" "$o-$seq $cid"
poke "$LOG" $((off + 8 + len / 2))
mark=$(nt_log_mark C)
nt_start C
check_log C "the end of the log was lost: chats wait until A, B have said what they hold of C's messages" "$mark"
out=$(wsclient send 127.0.0.3 "$P" early "too early" 2>&1)
check_match "with its peers down, C holds a chat 5 s, then refuses it as recovering" \
    '"code": *"recovering"' "$out"
check_match "/status says C is recovering" '"recovering": *true' \
    "$(curl -fsS --max-time 2 "http://127.0.0.3:$P/status")"
for id in A B; do
	nt_start "$id"
done
check_log C "every peer has been heard from and $lost is the last of our messages" "$mark"
lg C "after" --count 1 2>/dev/null
read -r new _ <"$T/acked.after"
check_eq "the next chat to C follows the lost one" \
    "C-$(( ${lost#C-} + 1 ))" "$new"
check_converged 15 A B C

nt_note "$(acked_n) messages acknowledged in all"
nt_finish
