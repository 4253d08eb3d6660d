#!/bin/bash
# t_slots.sh: idle sockets cannot take every place on a node.  A crowd of
# idle WebSocket connections fills node B (max_clients = 10): newcomers get
# 503, but node C, restarted, still gets its link in (a place is kept for
# each peer) and replicates.  One address cannot take more than
# max_clients_per_address places, however many there are.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init slots
nt_write_conf --set 'max_clients = 10;'
for id in A B C; do
	nt_start "$id"
done
wait_peers
HB=${NT_ADDR[B]}

raw() { timeout 60 "$NT_PYTHON" "$NT_TOOLS/rawclient.py" "$@"; }

# http_status SRC: the status B answers GET /status from address SRC.
http_status() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 --interface "$1" \
	    "http://$HB:$P/status"
}

# --- a crowd of idle connections from one address (not a peer's) ----------
nt_bg "$T/crowd.out" timeout 60 "$NT_PYTHON" "$NT_TOOLS/rawclient.py" \
    idle "$HB" "$P" 40 --src 127.0.0.5 --hold 50 --stop-file "$T/crowd.stop"
crowd=$NT_BG_PID
crowd_in() { grep -q '"event": "statuses"' "$T/crowd.out"; }
check "the crowd connected" wait_until 20 crowd_in
st=$(grep '"event": "statuses"' "$T/crowd.out")
check_eq "26 of 40 get a place (max_clients 10 + 16)" 26 "$(nt_json get 101 <<<"$st")"
check_eq "the other 14 get 503" 14 "$(nt_json get 503 <<<"$st")"
check_eq "a newcomer from another address gets 503" 503 "$(http_status 127.0.0.6)"
check_log B "refusing a connection from 127.0.0.5: every place is taken (max_clients)"

# --- a peer still gets in -------------------------------------------------------
# C goes, and its link with it; a second wave of the crowd takes whatever
# that freed before C is back.
mark=$(nt_log_mark B)
nt_stop C
nt_bg "$T/wave.out" timeout 60 "$NT_PYTHON" "$NT_TOOLS/rawclient.py" \
    idle "$HB" "$P" 10 --src 127.0.0.5 --hold 50 --stop-file "$T/crowd.stop"
wave=$NT_BG_PID
wave_in() { grep -q '"event": "statuses"' "$T/wave.out"; }
check "the second wave connected" wait_until 20 wave_in
check_eq "the second wave finds every place taken" 10 \
    "$(nt_json where event=statuses <"$T/wave.out" | nt_json get 503)"
nt_start C
check_log B "[B] Received hello from C" "$mark"
nt_send C carol "through the crowd" >/dev/null
check "C's chat reaches B through the crowd" \
    wait_until 10 _nt_log_has B "[B] CHAT from carol: 'through the crowd'" "$mark"
check "the crowd is still there" nt_pid_alive "$crowd"
touch "$T/crowd.stop"
wait "$crowd" "$wave"
check "once the crowd left, /status answers" \
    wait_until 5 test "$(http_status 127.0.0.6)" = 200
check "B holds C's chat" nt_has_texts B "through the crowd"

# --- one address takes at most max_clients_per_address places -------------------
nt_write_conf --set 'max_clients = 1000;' --set 'max_clients_per_address = 30;'
mark=$(nt_log_mark B)
kill -HUP "$(nt_pid B)"
check_log B "[B] reloaded configuration" "$mark"
out=$(raw idle "$HB" "$P" 40 --src 127.0.0.5 --hold 0)
check_eq "30 of 40 from one address get a place" 30 "$(nt_json where event=statuses <<<"$out" | nt_json get 101)"
check_eq "the other 10 get 503" 10 "$(nt_json where event=statuses <<<"$out" | nt_json get 503)"
check_log B "refusing a connection from 127.0.0.5: too many connections from one address (max_clients_per_address)" "$mark"

nt_finish
