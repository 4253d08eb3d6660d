#!/bin/bash
# t_groupcommit.sh: group commit without a timer, the sync off the event
# loop (fsync = "batch", the default).
#  1. No timer: with fsync_interval_ms = 10000 a client that sends 20 chats
#     one after the other, each waiting for its ack, gets all 20 acks in a
#     few seconds (a sync spaced 10 s apart took 190 s).
#  2. A sync that does not return (tests/tools/holdsync.so holds the
#     log's fdatasync while a gate file exists) stalls nobody else: /status
#     and a history are answered while it is held; the chat it covers is
#     not acknowledged before it returns; a chat sent meanwhile is written
#     to the log and waits for the next sync, which follows at once.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
SHIM="$NT_BUILDDIR/tests/tools/holdsync.so"
[ -f "$SHIM" ] || nt_fatal "$SHIM is not built (make check builds it)"
NT_NODES=(A)
nt_init groupcommit
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"

# An ASan build must find its runtime first; the shim does not mind.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

# 1. No timer between syncs.
nt_write_conf --set "fsync_interval_ms = 10000;"
nt_start A
check "loadgen ends without an error" \
    lg A seq --count 20 --window 1 --timeout 8
check_eq "20 chats sent one after the other, each waiting for its ack, are all acknowledged within 8 s (fsync_interval_ms = 10000)" \
    20 "$(acked_n seq)"
nt_stop A

# 2. A held sync.
GATE="$T/gate"
log="$T/A/messages.log"
LD_PRELOAD="$SHIM" NT_HOLDSYNC_DIR="$T/A/" NT_HOLDSYNC_GATE="$GATE" \
    nt_start A
history0=$(nt_history A | wc -l)
touch "$GATE"
# The clients wait for their acks as long as the test may hold them.
nt_bg "$T/first.out" "$NT_CLIENT" --server-host 127.0.0.1 --port "$P" \
    --timeout 40 --sender first --text "held by its sync"
first=$NT_BG_PID
check "the first chat's sync has begun and is held" \
    wait_until 10 test -f "$GATE.held"
size1=$(stat -c %s "$log")
check "/status is answered while the sync is held" \
    curl -fsS --max-time 10 -o "$T/status.json" "http://127.0.0.1:$P/status"
check_eq "a history is served while the sync is held (the stored messages, not the one being synced)" \
    "$history0" "$(nt_history A | wc -l)"
nt_bg "$T/second.out" "$NT_CLIENT" --server-host 127.0.0.1 --port "$P" \
    --timeout 40 --sender second --text "waits for the next sync"
second=$NT_BG_PID
log_grew() { [ "$(stat -c %s "$log")" -gt "$size1" ]; }
check "the second chat is written to the log while the first's sync is held" \
    wait_until 10 log_grew
check "the first chat is not acknowledged while its sync is held" \
    nt_pid_alive "$first"
check "the second chat is not acknowledged either" nt_pid_alive "$second"
check_eq "neither printed an ack" "" "$(cat "$T/first.out" "$T/second.out")"
rm -f "$GATE"
check "the first chat is acknowledged once its sync returns" \
    wait_until 10 nt_pid_gone "$first"
check "the second chat is acknowledged after a sync of its own" \
    wait_until 10 nt_pid_gone "$second"
check_match "first: $(cat "$T/first.out")" "^sent A-21$" "$(cat "$T/first.out")"
check_match "second: $(cat "$T/second.out")" "^sent A-22$" "$(cat "$T/second.out")"
nt_stop A
nt_finish
