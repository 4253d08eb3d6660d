#!/bin/bash
# t_hostile.sh: one hostile client against node A, with raw sockets
# (tests/tools/rawclient.py).  Refused handshakes and reset connections
# leave nothing behind; a client that sends and never reads cannot grow
# the ws worker; a message in thousands of fragments, or a big one after
# an unsigned hello, is closed with 1009; a hello in a name that is not a
# peer's is logged and closed with 1008; connections that never finish a
# request or never join are closed; running out of descriptors pauses the
# listener with one log line instead of spinning.  After each, a client can
# still join and /status answers.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init hostile
# A small node, so that a few dozen leaked connections would fill it; the
# page from this tree, so that GET / has a body.
nt_write_conf --set 'max_clients = 20;' --set "www_dir = \"$NT_SRCDIR/www\";"
# With AddressSanitizer (--enable-sanitizers) freed memory waits in a
# quarantine of 256 MB, which the resident size counts: keep it small, so
# that growth means memory held.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=1"
nt_start A
H=${NT_ADDR[A]}
WS=$(nt_worker_pid A ws)

raw() { timeout 60 "$NT_PYTHON" "$NT_TOOLS/rawclient.py" "$@"; }

status() { curl -fsS --max-time 5 "http://$H:$P/status"; }
status_ok() { status >/dev/null; }

# serves WHAT: a client can still join, and /status answers.
serves() {
	check "after $1: a WebSocket client joins" wsclient history "$H" "$P"
	check "after $1: GET /status answers" status_ok
}

grew_under() {
	local got
	got=$(nt_json get grew_kib <<<"$2" | head -n 1)
	check "$1: the ws worker grew by $got KiB (< $3 KiB)" test "$got" -lt "$3"
}

# --- 1. refused handshakes and resets are freed ----------------------------
out=$(raw refused "$H" "$P" 100)
check_eq "bad keys get 400" 100 "$(nt_json get 400 <<<"$out")"
check_eq "version 8 gets 426" 100 "$(nt_json get 426 <<<"$out")"
serves "200 refused handshakes (room for 36 connections)"

raw reset "$H" "$P" 40 200 >/dev/null
serves "40 connections reset under their answers"

# --- 2. output is bounded: a client that never reads --------------------------
out=$(raw pipeline "$H" "$P" 20000 --pid "$WS")
grew_under "20000 pipelined GET / left unread" "$out" 8192
check_eq "read at last, every pipelined request is answered" 20000 \
    "$(nt_json get answers <<<"$out" | tail -n 1)"
out=$(raw flood "$H" "$P" bad 2000000 --pid "$WS")
grew_under "2 MB of bad frames, the error frames left unread" "$out" 4096
out=$(raw flood "$H" "$P" ping 4000000 --pid "$WS")
grew_under "4 MB of pings, the pongs left unread" "$out" 1024
serves "clients that never read"

# --- 5. fragments and unsigned hellos ------------------------------------------
out=$(raw fragments "$H" "$P" 200)
check_eq "a message in 200 frames: close 1009" 1009 \
    "$(nt_json where event=close <<<"$out" | nt_json get code)"
check_eq "... saying why" "too many fragments" \
    "$(nt_json where event=close <<<"$out" | nt_json get reason)"
out=$(raw frames "$H" "$P" '{"type":"hello","from":"B","to":"A"}' \
    --src "${NT_ADDR[B]}" --big 100000)
check_eq "an unsigned hello does not raise the cap: 100000 bytes close 1009" \
    1009 "$(nt_json where event=close <<<"$out" | nt_json get code)"

# --- 12. hellos that make no peer -------------------------------------------------
mark=$(nt_log_mark A)
for who in Z A; do
	out=$(raw frames "$H" "$P" "{\"type\":\"hello\",\"from\":\"$who\",\"to\":\"A\"}")
	check_eq "hello from $who: error unknown_peer" unknown_peer \
	    "$(nt_json where type=error <<<"$out" | nt_json get code)"
	check_eq "hello from $who: then close 1008" 1008 \
	    "$(nt_json where event=close <<<"$out" | nt_json get code)"
done
check_log A "refused hello from Z: hello from a node that is not configured here" "$mark"
check_log A "refused hello from A: a hello with this node's own id" "$mark"
no_clients() { status | grep -q '"clients": *0[,}]'; }
check "/status counts no client left" wait_until 5 no_clients
serves "refused hellos"

# --- 3. connections that never finish a request, never join ---------------------
nt_write_conf --set 'max_clients = 20;' --set "www_dir = \"$NT_SRCDIR/www\";" \
    --set 'http_timeout_ms = 1000;' --set 'join_timeout_ms = 1000;'
mark=$(nt_log_mark A)
kill -HUP "$(nt_pid A)"
check_log A "[A] reloaded configuration" "$mark"
out=$(raw idle "$H" "$P" 5 --hold 4)
check_eq "5 upgraded connections that never join are closed with 1008" 5 \
    "$(nt_json where event=ends <<<"$out" | nt_json get 1008)"
partial() {
	exec 3<>"/dev/tcp/$H/$P" || return 1
	printf 'GET / HTTP/1.1\r\nHost: x\r\n' >&3
	timeout 5 cat <&3
	exec 3<&-
}
check_match "half a request is answered 408 after http_timeout_ms" \
    '^HTTP/1.1 408' "$(partial)"

# --- 4. out of descriptors: the listener pauses, one line, then serves again ---
# The ws worker may open 24 descriptors from now on: the connections below
# find accept() failing with EMFILE (not the 503 of a full node).
prlimit --pid "$WS" --nofile=24:24 ||
    nt_fatal "prlimit cannot lower the ws worker's descriptor limit"
mark=$(nt_log_mark A)
raw hold "$H" "$P" 60 --hold 3 >/dev/null
n=$(nt_log_since A "$mark" | grep -c "accept: Too many open files")
check "out of descriptors: $n log line(s) in 3 s (at most 1)" test "$n" -le 1
check "... and it says so" test "$n" -ge 1
check_log A "not accepting connections for 500 ms" "$mark"
check "the ws worker is the one that started" test "$(nt_worker_pid A ws)" = "$WS"
serves "running out of descriptors"

nt_finish
