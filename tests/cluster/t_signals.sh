#!/bin/bash
# t_signals.sh: the master's signals.  SIGHUP applies a valid config and
# refuses a broken one (file:line in the log, the node keeps serving with the
# old one); SIGTERM and SIGINT stop gracefully: exit 0 within 5 s, workers
# gone, pid file removed, joined clients closed with 1001; the messages
# survive a restart.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init signals
conf="$T/nodetalk.conf"
cp "$conf" "$T/good.conf"

nt_start A -p "$T/A.pid"
nt_start B -p "$T/B.pid"
nt_start C
wait_peers

out=$(nt_send A alice "before reload")
check_match "a message before the reloads" '^sent A-[0-9]+$' "$out"

# SIGHUP with a valid change.
mark=$(nt_log_mark A)
echo 'log_level = "debug";' >>"$conf"
kill -HUP "$(nt_pid A)"
check "valid config + SIGHUP: \"reloaded configuration\"" \
    wait_until 10 _nt_log_has A "reloaded configuration" "$mark"
check "A still runs after the reload" nt_alive A

# SIGHUP with a syntax error on line 3: refused, the old config stays.
mark=$(nt_log_mark A)
sed '3s/.*/fsync = ;/' "$T/good.conf" >"$conf"
kill -HUP "$(nt_pid A)"
check "broken config + SIGHUP: the log names $conf:3" \
    wait_until 10 _nt_log_has A "$conf:3:" "$mark"
check_nolog A "reloaded configuration" "$mark"
check "A still runs after the refused reload" nt_alive A
out=$(nt_send A alice "after bad reload")
check_match "A still takes messages after the refused reload" '^sent A-[0-9]+$' "$out"
check "A's history holds the messages from before and after" \
    wait_until 5 nt_has_texts A "before reload" "after bad reload"
check "the message reached B too" \
    wait_until 10 nt_has_texts B "before reload" "after bad reload"
cp "$T/good.conf" "$conf"

# stop_and_check ID SIG: graceful stop by SIG, seen by a joined client too.
stop_and_check() {
	local id=$1 sig=$2 pid kids k rc waiter code
	pid=$(nt_pid "$id")
	check_eq "SIG$sig: $id's pid file holds its pid" "$pid" \
	    "$(cat "$T/$id.pid" 2>/dev/null)"
	kids=$(nt_children "$pid")
	check_eq "SIG$sig: $id runs two workers" 2 "$(wc -w <<<"$kids")"
	nt_bg "$T/$id-joined.out" wsclient --timeout 25 join-wait "${NT_ADDR[$id]}" "$P" 1000
	waiter=$NT_BG_PID
	check "SIG$sig: a client joined on $id" \
	    wait_until 10 grep -q '"type": "joined"' "$T/$id-joined.out"
	nt_stop "$id" "$sig"
	rc=$?
	check_eq "SIG$sig: $id exits with status 0" 0 "$rc"
	check "SIG$sig: $id exited within 5 s (took ${NT_STOP_MS} ms)" \
	    test "$NT_STOP_MS" -le 5000
	for k in $kids; do
		check "SIG$sig: $id's worker $k is gone" wait_until 1 nt_pid_gone "$k"
	done
	check_fail "SIG$sig: $id's pid file is removed" test -e "$T/$id.pid"
	wait_until 5 nt_pid_gone "$waiter"
	code=$(nt_json where event=close <"$T/$id-joined.out" | nt_json get code)
	check_eq "SIG$sig: the joined client got close code 1001" 1001 "$code"
}

stop_and_check A TERM

# What A acknowledged is still there after a restart.
nt_start A
check "A's history after a restart holds both messages" \
    wait_until 5 nt_has_texts A "before reload" "after bad reload"

stop_and_check B INT

nt_finish
