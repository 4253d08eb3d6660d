#!/bin/bash
# t_backlog.sh: what waits to be sent is bounded.  While chats pour into
# node A: a joined client that reads nothing is closed once more than
# max_client_backlog_bytes (1 MiB, the default) wait for it, and a client
# that reads gets every chat; node B hangs (rawclient.py sink takes the
# link and reads nothing), and A drops its link to B once more than
# max_peer_backlog_bytes wait (the heartbeat is off here, so that only the
# cap can do it).  With the real B back, catch-up brings it everything.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init backlog
nt_write_conf --set 'max_peer_backlog_bytes = 65536;' \
    --set 'peer_ping_interval_ms = 0;'
HA=${NT_ADDR[A]}
N=1200
SIZE=4000

# Every log is empty, so each node numbers no chat before it heard every
# peer (guarantees.md): the real B runs until then, and hangs after.
nt_start A
nt_start B
nt_start C
wait_peers
nt_stop B
mark=$(nt_log_mark A)
nt_bg "$T/sink.out" timeout 120 "$NT_PYTHON" "$NT_TOOLS/rawclient.py" \
    sink "${NT_ADDR[B]}" "$P" --hold 110 --stop-file "$T/sink.stop"
sink=$NT_BG_PID
check "the hung B listens" wait_until 10 grep -q listening "$T/sink.out"
check "A dialled the hung B" wait_until 15 _nt_log_has A "[A] Sent hello to B" \
    "$mark"

nt_bg "$T/slow.out" timeout 120 "$NT_PYTHON" "$NT_TOOLS/rawclient.py" \
    slowjoin "$HA" "$P" --stop-file "$T/slow.go" --hold 100
slow=$NT_BG_PID
nt_bg "$T/watch.out" timeout 120 "$NT_PYTHON" "$NT_TOOLS/wsclient.py" \
    --timeout 110 join-wait "$HA" "$P" "$N"
watch=$NT_BG_PID
joined() {
	grep -q joined-sent "$T/slow.out" &&
	    curl -fsS --max-time 2 "http://$HA:$P/status" |
	    grep -q '"clients": *2[,}]'
}
check "the slow client and the watcher joined A" wait_until 15 joined

mark=$(nt_log_mark A)
out=$(timeout 110 "$NT_PYTHON" "$NT_TOOLS/rawclient.py" chats "$HA" "$P" \
    "$N" "$SIZE" --prefix big)
check_eq "$N chats of $SIZE bytes acknowledged" "$N" "$(nt_json get acked <<<"$out")"

# The client that does not read.
check_log A "reads too slowly (over 1048576 bytes waiting); closing it" "$mark"
touch "$T/slow.go"
wait "$slow"
end=$(tail -n 1 "$T/slow.out")
check_match "the slow client's connection ended (close 1008, or cut)" \
    '"event": "(close|eof)"' "$end"
check "... before it got every chat" test "$(nt_json get chats <<<"$end")" -lt "$N"
check "the watcher got all $N chats meanwhile" wait "$watch"

# The peer that does not read.
check_log A "[A] peer: Peer B reads too slowly" "$mark"
check_log A "[A] Lost connection to peer B (code 1008); reconnecting" "$mark"
touch "$T/sink.stop"
wait "$sink"
check_match "A's link to the hung B was closed" '"closed": *[1-9]' \
    "$(nt_json where event=ends <"$T/sink.out")"
nt_start B
last="big-$N-$(printf 'y%.0s' $(seq $(( SIZE - ${#N} - 5 ))))"
check "with B back, catch-up brings it the last chat" \
    wait_until 20 nt_has_texts B "$last"
check_eq "B holds all $N chats" "$N" "$(nt_count B)"

nt_finish
