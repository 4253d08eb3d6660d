#!/bin/bash
# t_client.sh: the nodetalk client as a person at a terminal sees it.
#  - A multi-line message prints as lines, each continuation indented under
#    the text (a CR before a newline goes; other control characters still
#    print as '?').
#  - The interactive chat outlives its node: when the node stops, it says
#    it reconnects, and a line typed meanwhile is sent once the node is
#    back; new messages keep coming, each printed once.
#  - A line whose answer was lost with a broken link (a proxy lets the
#    line through, holds the answer, then cuts the link) is sent again
#    under the same id after the reconnect: acknowledged, and stored once.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
# One node: a node with an empty log and peers would wait for them before
# it takes a chat (guarantees.md).
NT_NODES=(A)
nt_init client

nt_start A
H=${NT_ADDR[A]}

# history_lines: A's history as the client prints it.
history_lines() {
	timeout 15 "$NT_CLIENT" --server-host "$H" --port "$P" --history
}

# --- multi-line text ---------------------------------------------------------------

nt_send A alice $'multi\nline\nmessage' >/dev/null
nt_send A alice $'crlf\r\nline' >/dev/null
nt_send A alice $'esc \e[31mred' >/dev/null
history_lines >"$T/hist.txt"
sed 's/^/#   /' "$T/hist.txt"
# "[HH:MM:SS] alice: " is 18 columns wide.
ind='                  '
check_eq "a three-line message prints as three lines, indented under the text" \
    "alice: multi|${ind}line|${ind}message" \
    "$(sed -n '1,3p' "$T/hist.txt" | sed 's/^\[[0-9:]*\] //' | paste -sd '|')"
check_match "  with the time first" '^\[[0-9]{2}:[0-9]{2}:[0-9]{2}\] alice: multi$' \
    "$(sed -n 1p "$T/hist.txt")"
check_eq "CR LF is a line break, the CR not shown" "alice: crlf|${ind}line" \
    "$(sed -n '4,5p' "$T/hist.txt" | sed 's/^\[[0-9:]*\] //' | paste -sd '|')"
check_eq "an escape character still prints as ?" 'alice: esc ?[31mred' \
    "$(sed -n 6p "$T/hist.txt" | sed 's/^\[[0-9:]*\] //')"
check_eq "nothing else printed" 6 "$(wc -l <"$T/hist.txt")"

# --- the interactive chat across a restart of its node -----------------------------

# chat_start NAME HOST: nodetalk --sender NAME against HOST, reading the
# FIFO $T/NAME.in (held open on fd 7 or 8 by the caller), printing to
# $T/NAME.out and $T/NAME.err; its pid in CHAT_PID.
chat_start() {
	mkfifo "$T/$1.in"
	"$NT_CLIENT" --server-host "$2" --port "$P" --sender "$1" --timeout 10 \
	    <"$T/$1.in" >"$T/$1.out" 2>"$T/$1.err" &
	CHAT_PID=$!
	_nt_own "$CHAT_PID"
}

# printed NAME TEXT N: TEXT is printed exactly N times as a message in NAME.out.
printed() {
	[ "$(grep -c -- ": $2\$" "$T/$1.out")" = "$3" ]
}

# stored TEXT N: A stores TEXT exactly N times.
stored() {
	[ "$(nt_texts A | grep -cxF -- "$1")" = "$2" ]
}

chat_start bob "$H"
bob=$CHAT_PID
exec 7>"$T/bob.in"
echo "line one" >&7
check "bob's first line is stored" wait_until 10 stored "line one" 1
check "bob's chat prints it" wait_until 10 printed bob "line one" 1
check "bob's chat printed the history first" printed bob "multi" 1

nt_stop A
check_eq "A stops cleanly" 0 "$?"
check "bob's chat says it reconnects" wait_until 10 \
    grep -qF "disconnected from $H:$P (code 1001), reconnecting" "$T/bob.err"
echo "typed while A was down" >&7
check "bob's chat still runs with A down" nt_pid_alive "$bob"
nt_start A
check "after A is back, the line typed meanwhile is stored" \
    wait_until 20 stored "typed while A was down" 1
check "bob's chat says it reconnected" grep -qF "reconnected to $H:$P" "$T/bob.err"
check "bob's chat prints that line once" wait_until 10 printed bob "typed while A was down" 1
nt_send A alice "after the restart" >/dev/null
check "bob's chat prints a new message from alice" wait_until 10 printed bob "after the restart" 1
check "bob's chat printed nothing twice" \
    test -z "$(sed 's/^\[[0-9:-]*\] //' "$T/bob.out" | grep -v '^ ' | sort | uniq -d)"
echo "/quit" >&7
check "bob's chat leaves on /quit" wait_until 10 nt_pid_gone "$bob"
wait "$bob"
check_eq "  with status 0" 0 "$?"
exec 7>&-

# --- a line whose answer was lost: sent again under the same id -------------------

# Carol reaches A through a proxy on 127.0.1.1 that can cut her link.
: >"$T/px.control"
nt_bg "$T/proxy.log" "$NT_PYTHON" -u "$NT_TOOLS/faultproxy.py" \
    --route "cl=127.0.1.1:$P=$H:$P" --control "$T/px.control" \
    --state "$T/px.state" --lifetime 600
# The proxy's first look at the (empty) control file is generation 1:
# px's generations start after it, or the first px could see "gen 1" and
# go on before the proxy applied what it asked.
wait_until 10 grep -qx "gen 1" "$T/px.state" ||
    { cat "$T/proxy.log"; nt_fatal "the proxy did not start"; }
PXGEN=1
# px [ROUTE MODE]: set the proxy, wait until it applied it.
px() {
	PXGEN=$((PXGEN + 1))
	{ echo "gen $PXGEN"; [ $# -eq 0 ] || echo "$1 $2"; } >"$T/px.control.tmp"
	mv "$T/px.control.tmp" "$T/px.control"
	wait_until 5 grep -qx "gen $PXGEN" "$T/px.state" ||
	    nt_fatal "the proxy did not apply generation $PXGEN"
}
retries() {
	"$NT_PYTHON" "$NT_TOOLS/promtext.py" get "http://$H:$P/metrics" \
	    nodetalk_client_retries_total
}

chat_start carol 127.0.1.1
carol=$CHAT_PID
exec 8>"$T/carol.in"
echo "carol is here" >&8
check "carol's first line is stored" wait_until 10 stored "carol is here" 1
r0=$(retries)
# Carol's line reaches A; A's answer is held by the proxy, then lost.
px cl mute
echo "answer lost on the way" >&8
check "A stores carol's line (its ack held back)" \
    wait_until 10 stored "answer lost on the way" 1
px cl cut
check "carol's chat sees the link break and reconnects" wait_until 10 \
    grep -qF "disconnected from 127.0.1.1:$P" "$T/carol.err"
check_fail "  without having printed the line" printed carol "answer lost on the way" 1
px
check "carol's chat sends it again after the reconnect" wait_until 20 \
    grep -qF "sending 1 unacknowledged line(s) again" "$T/carol.err"
retried() { [ "$(retries)" = $((r0 + 1)) ]; }
check "A answers the resent line from its store (a client retry)" \
    wait_until 10 retried
check "A still stores it once" stored "answer lost on the way" 1
check "carol's chat prints it once" wait_until 10 printed carol "answer lost on the way" 1
exec 8>&-
check "carol's chat leaves at the end of its input, all acknowledged" \
    wait_until 15 nt_pid_gone "$carol"
wait "$carol"
check_eq "  with status 0" 0 "$?"

nt_finish
