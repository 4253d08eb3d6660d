#!/bin/bash
# t_flow.sh: readers that stop reading cannot grow a node.  History and
# catch-up go out in chunks, the next one only once the reader's
# connection drained, so:
#  1. a client that sends 60 joins and reads nothing costs the master and
#     the ws worker a few chunks, not 60 copies of the history; the other
#     59 joins are refused ("busy"), and once it reads it gets the history
#     once, then "joined";
#  2. a peer that stops reading in the middle of its catch-up costs the
#     master and the peer worker a few chunks, not the whole backlog; new
#     messages of ours wait in that catch-up rather than go live out of
#     order, and once it reads it gets every message once, in order;
#  3. a worker that stops reading its channel is killed and restarted by
#     the master once worker_backlog_bytes wait for it (it resyncs: the
#     peer gets everything).
# B is tests/tools/slowreader.py, a peer that stops reading on demand.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
# In the sanitizer build ASan keeps freed memory in quarantine (256 MB)
# to catch use after free, so peaks would measure churn, not what is
# held: without it they measure the daemon's allocations, as here.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
NT_NODES=(A B)
nt_init flow
# Part 3 sends 60 KB texts, past a 4 MiB backlog.  Part 2 stalls the
# peer on purpose, for seconds on a loaded machine: the heartbeat must not
# take that for a peer that is gone (4 s by default) and drop the link.
nt_write_conf --set 'max_message_bytes = 60000;' \
    --set 'worker_backlog_bytes = 4194304;' \
    --set 'ping_timeout_ms = 60000;'
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"
N=12000		# 1 KB messages: 12 MB of history
MB=$((1024 * 1024))

slow() { "$NT_PYTHON" "$NT_TOOLS/slowreader.py" "$@"; }
# hwm PID: peak resident memory in bytes; hwm_reset PID starts it anew.
hwm() { echo $(( $(awk '/^VmHWM:/ { print $2 }' "/proc/$1/status") * 1024 )); }
hwm_reset() { echo 5 >"/proc/$1/clear_refs"; }
# grown_under PID BASE MAX: the peak grew by less than MAX bytes.
grown_under() {
	local g=$(( $(hwm "$1") - $2 ))
	nt_note "pid $1: peak memory grew by $((g / 1024)) KiB (bound $(($3 / 1024)) KiB)"
	[ "$g" -lt "$3" ]
}

# B: the slow peer, on B's address.
mkdir -p "$T/peer"
nt_bg "$T/peer.out" slow peer 127.0.0.2 "$P" --id B --dir "$T/peer"
check "the slow peer listens" wait_until 10 test -e "$T/peer/listening"
nt_start A
master=$(nt_pid A)
ws=$(nt_worker_pid A ws)
peer=$(nt_worker_pid A peer)
lg A h --count "$N" --window 200 --size 1000 2>/dev/null
check_eq "$N messages of 1 KB stored on A" "$N" "$(acked_n h)"
# peer_got N: the peer received at least N chats of A (read anew each time).
peer_got() { [ "$(grep -c '^A ' "$T/peer/got")" -ge "$1" ]; }
check "the peer got them live" wait_until 60 peer_got "$N"

# 1. Sixty joins, nothing read.
for p in "$master" "$ws"; do hwm_reset "$p"; done
m0=$(hwm "$master") w0=$(hwm "$ws")
mkdir -p "$T/joins"
nt_bg "$T/joins.out" slow joins 127.0.0.1 "$P" --joins 60 --dir "$T/joins"
joins=$NT_BG_PID
check "60 joins sent" wait_until 10 test -e "$T/joins/sent"
sleep 2		# what the node would queue, it has queued by now
check "60 unread joins: the master's peak grew by under 8 MB" \
    grown_under "$master" "$m0" $((8 * MB))
check "60 unread joins: the ws worker's peak grew by under 8 MB" \
    grown_under "$ws" "$w0" $((8 * MB))
touch "$T/joins/go"
check "the client reads to the end" wait_until 30 nt_pid_gone "$joins"
res=$(cat "$T/joins.out")
nt_note "joins: $res"
check_eq "it got the history once: $N chats, one joined, 59 busy, no id twice" \
    "$N [$N] {'busy': 59} True" "$("$NT_PYTHON" -c '
import json, sys
r = json.load(sys.stdin)
print(r["chats"], str(r["joined"]).replace(" ", ""), r["errors"], r["ids_unique"])' <<<"$res")"

# 2. The peer asks for everything again and stops reading.
for p in "$master" "$peer"; do hwm_reset "$p"; done
m0=$(hwm "$master") p0=$(hwm "$peer")
mark=$(nt_log_mark A)
touch "$T/peer/stall"
echo "-- sync" >>"$T/peer/got"
touch "$T/peer/sync"
check_log A "Catch-up: sending $N messages to B" "$mark"
lg A live --count 5 2>/dev/null
sleep 2
check "a stalled catch-up: the master's peak grew by under 4 MB" \
    grown_under "$master" "$m0" $((4 * MB))
check "a stalled catch-up: the peer worker's peak grew by under 4 MB" \
    grown_under "$peer" "$p0" $((4 * MB))
rm -f "$T/peer/stall"
want=$(seq 1 $((N + 5)) | sed 's/^/A /')
after_sync() { sed -n '/^-- sync$/,$p' "$T/peer/got" | grep '^A '; }
caught_up() { [ "$(after_sync | wc -l)" -ge $((N + 5)) ]; }
check "the peer reads again and catches up" wait_until 30 caught_up
check "it got A-1..A-$((N + 5)) once each, in order (the 5 new ones too)" \
    test "$(after_sync)" = "$want"

# 3. A peer worker that stops reading its channel.
mark=$(nt_log_mark A)
kill -STOP "$peer"
lg A big --count 100 --window 20 --size 60000 2>/dev/null
check_log A "the peer worker stopped reading its channel: it stopped reading (" "$mark"
check_log A "bytes waiting); killing it (it restarts and resyncs)" "$mark"
new_peer_worker() { [ -n "$(nt_worker_pid A peer "$mark")" ]; }
check "a new peer worker starts" wait_until 10 new_peer_worker
check "the old one is gone" wait_until 5 nt_pid_gone "$peer"
have_all() {
	sed -n '/^-- sync$/,$p' "$T/peer/got" | grep -q "^A $((N + 5 + 100))$"
}
check "the new peer worker resyncs: the peer gets A-$((N + 5 + 100))" \
    wait_until 60 have_all

touch "$T/peer/quit"
nt_finish
