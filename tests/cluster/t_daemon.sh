#!/bin/bash
# t_daemon.sh: daemon manners.  -d detaches and exits 0 once the node runs,
# the pid file holds the master's pid and is locked (a second start on it
# is refused), log_file gets every process's lines and is reopened on
# SIGUSR1 without restarting the workers, log_level follows a reload, and
# SIGTERM removes the pid file.  Every start-up failure exits non-zero
# with a clear line on the terminal.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
# Only A and B run: a node with an empty log waits for every configured
# peer before it numbers a chat (guarantees.md), so C is not configured.
NT_NODES=(A B)
nt_init daemon
logf="$T/A-file.log"
# A alone logs to a file; B (started later) logs to stderr as usual.
conf="$T/a.conf"
sed "s|^fsync = \"batch\";|fsync = \"batch\"; log_file = \"$logf\";|" \
    "$T/nodetalk.conf" >"$conf"

# Started detached: the command returns, the daemon runs on.
"$NT_DAEMON" -c "$conf" -n A -d -p "$T/A.pid" 2>"$T/start.err"
check_eq "nodetalkd -d exits 0" 0 $?
check "the pid file exists" test -s "$T/A.pid"
pid=$(cat "$T/A.pid" 2>/dev/null)
_nt_own "$pid"
check "the pid file names a running process" kill -0 "$pid"
check "that process has two workers" wait_until 5 \
    test "$(nt_children "$pid" | wc -l)" -eq 2
_nt_own_tree "$pid"
file_has() { grep -qF -- "$1" "${2:-$logf}"; }
check "the log file has the Ready line" wait_until 5 file_has "[A] Ready. Peers: ['B']"
check "workers log to the file too" wait_until 5 file_has "[A] Starting WebSocket server on port $P..."
check_match "log file lines carry a time stamp" \
    '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z \[A\] ' "$(head -n 1 "$logf")"

# A second nodetalkd on the same pid file is refused.
"$NT_DAEMON" -c "$conf" -n A -d -p "$T/A.pid" 2>"$T/second.err"
check_eq "a second start on the pid file exits 1" 1 $?
check "and says so" grep -qF "already runs (pid $pid)" "$T/second.err"
check_eq "the pid file is untouched" "$pid" "$(cat "$T/A.pid")"

# SIGUSR1: logrotate moved the file; every process writes to a new one.
workers=$(nt_children "$pid" | sort | tr '\n' ' ')
mv "$logf" "$logf.1"
kill -USR1 "$pid"
check "SIGUSR1 creates a new log file" wait_until 5 test -f "$logf"
check "the master logs the reopen in it" wait_until 5 file_has "reopened the log"
nt_start B
check "the ws worker logs into the new file" \
    wait_until 10 file_has "[A] Received hello from B"
check "the peer worker logs into the new file" \
    wait_until 10 file_has "[A] Sent hello to B"
check_eq "the workers were not restarted" "$workers" \
    "$(nt_children "$pid" | sort | tr '\n' ' ')"
check_fail "nothing went to the old file after the move" \
    file_has "Received hello from B" "$logf.1"

# log_level follows a reload.
check_fail "no debug lines at level info" file_has " debug: "
sed -i 's/^fsync = "batch";/fsync = "batch"; log_level = "debug";/' "$conf"
kill -HUP "$pid"
check "the reload is logged" wait_until 5 file_has "reloaded configuration from $conf"
nt_send A dbg "debug me" >/dev/null
check "debug lines appear after the reload" wait_until 5 file_has " debug: "

# SIGTERM: gone, pid file removed.
nt_stop B
kill -TERM "$pid"
check "the master exits on SIGTERM" wait_until 10 nt_pid_gone "$pid"
check_fail "the pid file is removed" test -e "$T/A.pid"

# Start-up failures: non-zero, a clear line, no pid file left behind.
"$NT_PYTHON" -c 'import socket,sys,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(8)' "$P" &
holder=$!
_nt_own "$holder"
sleep 0.5
"$NT_DAEMON" -c "$T/nodetalk.conf" -n A -d -p "$T/A.pid" 2>"$T/busy.err"
check_eq "a port in use: exit 1" 1 $?
check "  and the reason on stderr" grep -qF "cannot listen on 127.0.0.1 port $P: Address already in use" "$T/busy.err"
check_fail "  and no pid file" test -e "$T/A.pid"
kill "$holder" 2>/dev/null

cp "$T/nodetalk.conf" "$T/unreadable.conf"
chmod 000 "$T/unreadable.conf"
# Root reads every file: as root, the daemon runs as nobody for this.
as_user=()
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null &&
    id nobody >/dev/null 2>&1; then
	as_user=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
fi
if [ "$(id -u)" -ne 0 ] || [ ${#as_user[@]} -gt 0 ]; then
	"${as_user[@]}" "$NT_DAEMON" -c "$T/unreadable.conf" -n A -d 2>"$T/unread.err"
	check_eq "an unreadable config: exit 1" 1 $?
	check "  and the reason" grep -qF "$T/unreadable.conf: cannot open" "$T/unread.err"
else
	nt_left_out "an unreadable config: root reads every file, and there is no setpriv or no user nobody to run the daemon as"
fi
"$NT_DAEMON" -c "$T/missing.conf" -n A -d 2>"$T/missing.err"
check_eq "a missing config: exit 1" 1 $?
check "  and the reason" grep -qF "$T/missing.conf: cannot open" "$T/missing.err"
check "  and the fix: nodetalkd names the -c flag" \
    grep -qE "^nodetalkd: no configuration file at $T/missing.conf: name one with -c FILE" "$T/missing.err"

: >"$T/not-a-dir"
sed "s|data_dir = \"$T/A\"|data_dir = \"$T/not-a-dir\"|" "$T/nodetalk.conf" >"$T/baddir.conf"
"$NT_DAEMON" -c "$T/baddir.conf" -n A -d 2>"$T/baddir.err"
check_eq "a data_dir that is a file: exit 1" 1 $?
check "  and the reason" grep -qF "data_dir $T/not-a-dir: Not a directory" "$T/baddir.err"

sed "s|^fsync = \"batch\";.*|log_file = \"$T/no/such/dir/x.log\";|" "$T/nodetalk.conf" >"$T/badlog.conf"
"$NT_DAEMON" -c "$T/badlog.conf" -n A -d 2>"$T/badlog.err"
check_eq "a log file that cannot be opened: exit 1" 1 $?
check "  and the reason" grep -qF "log file $T/no/such/dir/x.log" "$T/badlog.err"
# Started as root with a user: the port is bound and the store opened as
# root, then every process runs as that user and still serves.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	sed "s|^fsync = \"batch\";.*|fsync = \"batch\"; user = \"nobody\";|" \
	    "$T/nodetalk.conf" >"$T/user.conf"
	"$NT_DAEMON" -c "$T/user.conf" -n A -d -p "$T/U.pid" 2>"$T/user.err"
	check_eq "started as root with user = nobody: exit 0" 0 $?
	upid=$(cat "$T/U.pid" 2>/dev/null)
	_nt_own "$upid"
	uid_of() { awk '/^Uid:/ { print $2 }' "/proc/$1/status"; }
	check_eq "the master runs as nobody" "$(id -u nobody)" "$(uid_of "$upid")"
	check "  with two workers" wait_until 5 \
	    test "$(nt_children "$upid" | wc -l)" -eq 2
	_nt_own_tree "$upid"
	for w in $(nt_children "$upid"); do
		check_eq "worker $w runs as nobody" "$(id -u nobody)" "$(uid_of "$w")"
	done
	check_eq "it still stores and acknowledges" "sent A-2" \
	    "$(nt_send A nobody "as nobody")"
	kill -TERM "$upid"
	check "it stops on SIGTERM" wait_until 10 nt_pid_gone "$upid"
else
	nt_left_out "the privilege drop (user = nobody) needs root and a user nobody"
fi
nt_finish
