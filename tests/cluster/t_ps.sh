#!/bin/bash
# t_ps.sh: ps shows each process of a node by its role, as nginx does:
# "nodetalkd: master [A]", "nodetalkd: ws worker [A]", "nodetalkd: peer
# worker [A]", while the command name stays nodetalkd (pidof, pgrep -x).
# The title takes over the command line's memory; what the daemon needs of
# it later still works: a reload reads the same file, the pid file goes at
# exit, and a restarted worker gets its title too.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
# One node: a node with an empty log and peers would wait for them before
# it takes a chat (guarantees.md).
NT_NODES=(A)
nt_init ps

args() { ps -o args= -p "$1" | sed 's/ *$//'; }
comm() { ps -o comm= -p "$1"; }

nt_start A -p "$T/A.pid"
master=$(nt_pid A)
ws=$(nt_worker_pid A ws)
peer=$(nt_worker_pid A peer)
check_eq "ps shows the master as such" "nodetalkd: master [A]" "$(args "$master")"
check_eq "ps shows the ws worker as such" "nodetalkd: ws worker [A]" "$(args "$ws")"
check_eq "ps shows the peer worker as such" "nodetalkd: peer worker [A]" "$(args "$peer")"
for p in "$master" "$ws" "$peer"; do
	check_eq "pid $p's command name is still nodetalkd" nodetalkd "$(comm "$p")"
done

mark=$(nt_log_mark A)
kill -HUP "$master"
check_log A "[A] reloaded configuration from $T/nodetalk.conf" "$mark"

mark=$(nt_log_mark A)
kill -KILL "$ws"
ws_restarted() { [ -n "$(nt_worker_pid A ws "$mark")" ]; }
check "the ws worker is restarted" wait_until 10 ws_restarted
ws2=$(nt_worker_pid A ws "$mark")
titled() { [ "$(args "$ws2")" = "nodetalkd: ws worker [A]" ]; }
check "ps shows the restarted ws worker as such" wait_until 5 titled
out=$(nt_send A alice "after the titles")
check_match "the node still serves" '^sent A-1$' "$out"

nt_stop A
check_eq "A stops cleanly" 0 "$?"
check_fail "its pid file is gone" test -e "$T/A.pid"
nt_finish
