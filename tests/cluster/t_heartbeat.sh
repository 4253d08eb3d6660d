#!/bin/bash
# t_heartbeat.sh: a peer that stops answering is seen as down within
# seconds, with the default heartbeat settings.  Every process of node B
# is stopped (SIGSTOP: its sockets stay open, as on a frozen host): A's
# /status shows B not connected, A's log says why; what A accepts
# meanwhile reaches B once it runs again, and the link comes back.  Then,
# as root with nft(8), a half-open link: packets between A and C vanish
# (a table of this test's own drops them), A sees C down; without the
# table, C is back.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init heartbeat
for id in A B C; do
	nt_start "$id"
done
wait_peers

# connected FROM TO true|false: FROM's /status says so of its link to TO.
connected() {
	curl -fsS --max-time 2 "http://${NT_ADDR[$1]}:$P/status" |
	    "$NT_PYTHON" -c 'import json, sys
s = json.load(sys.stdin)
sys.exit(0 if str(s["peers"][sys.argv[1]]["connected"]).lower() == sys.argv[2] else 1)' "$2" "$3"
}

check "A's /status shows B connected" wait_until 10 connected A B true

# --- a frozen node ------------------------------------------------------------
B_PIDS=("$(nt_pid B)")
for c in $(nt_children "$(nt_pid B)"); do
	B_PIDS+=("$c")
done
check_eq "B is a master and two workers" 3 "${#B_PIDS[@]}"
mark=$(nt_log_mark A)
t0=$(_nt_ms)
kill -STOP "${B_PIDS[@]}"
check "A's /status shows B down within 12 s of B freezing" \
    wait_until 12 connected A B false
nt_note "A saw B down after $(( $(_nt_ms) - t0 )) ms"
check "C's /status shows B down too" wait_until 12 connected C B false
check_log A "[A] Peer B did not answer a ping in 4000 ms; dropping the link" "$mark"
nt_send A alice "while B was frozen" >/dev/null
kill -CONT "${B_PIDS[@]}"
check "after SIGCONT A's /status shows B connected again" \
    wait_until 15 connected A B true
check "what A took meanwhile reaches B" \
    wait_until 15 nt_has_texts B "while B was frozen"

# --- a half-open link: packets to and from C vanish ----------------------------
if [ "$(id -u)" -ne 0 ] || ! command -v nft >/dev/null; then
	nt_note "not root, or no nft(8): the half-open link is not exercised"
	nt_finish
fi
TABLE="nt_heartbeat_$$"
drop_off() { nft delete table inet "$TABLE" 2>/dev/null; }
# nt_cleanup reads the exit status from $?: hand it on.
trap 'rc=$?; drop_off; (exit "$rc"); nt_cleanup' EXIT
nft -f - <<EOF || nt_fatal "nft cannot create table $TABLE"
table inet $TABLE {
	chain out {
		type filter hook output priority 0; policy accept;
		ip daddr ${NT_ADDR[C]} tcp dport $P drop
		ip saddr ${NT_ADDR[C]} tcp sport $P drop
	}
}
EOF
mark=$(nt_log_mark A)
check "with C's packets dropped, A's /status shows C down within 12 s" \
    wait_until 12 connected A C false
check_log A "[A] Peer C did not answer a ping in 4000 ms; dropping the link" "$mark"
drop_off
check "without the table, A's /status shows C connected again" \
    wait_until 20 connected A C true
nt_send A alice "after the half-open link" >/dev/null
check "and A's chat reaches C" \
    wait_until 10 nt_has_texts C "after the half-open link"

nt_finish
