#!/bin/bash
# t_contrib.sh: the operator scripts in contrib/ (nt-push, nt-start,
# nt-status, nt-stop, nt-tunnel) drive a three-node cluster on 127.0.0.1-3.
# Their remote runner NT_SSH is a local stand-in ($T/ssh-runner: it skips the
# ssh options and the destination and runs the command here with bash -c), so
# "the nodes" all live in $T (NT_REMOTE_DIR) and run $NT_BUILDDIR's nodetalkd
# detached (-d) with pid files in $T/run.  Those daemons are not children of
# this test: the exit trap ends them through their pid files.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_init contrib

CONTRIB="$NT_SRCDIR/contrib"
SCRIPTS=(nt-push nt-start nt-stop nt-status nt-tunnel)
command -v curl >/dev/null || nt_skip "curl is not installed (nt-status uses it)"
command -v jq >/dev/null || command -v python3 >/dev/null ||
    nt_skip "neither jq nor python3 on PATH (nt-status reads JSON with one)"
command -v flock >/dev/null || nt_skip "flock (util-linux) is not installed"

# --- cleanup: the detached daemons, by the pids in their pid files ----------

# Only a process that holds a file of this test's work dir open (the
# master: its pid file and its log) is ours.  (Its command line shows its
# title, "nodetalkd: master [A]", not the paths it was started with.)
t_is_ours() {
	[ -d "/proc/$1/fd" ] && ls -l "/proc/$1/fd/" 2>/dev/null | grep -qF -- "$T/"
}

t_cleanup() {
	local rc=$? f p kids
	for f in "$T"/run/nodetalkd-*.pid; do
		[ -f "$f" ] || continue
		p=$(cat "$f" 2>/dev/null)
		[[ $p =~ ^[0-9]+$ ]] || continue
		t_is_ours "$p" || continue
		kids=$(nt_children "$p")
		echo "# cleanup: SIGTERM to nodetalkd pid $p (from $f)"
		kill -TERM "$p" 2>/dev/null
		if ! wait_until 5 nt_pid_gone "$p"; then
			echo "# cleanup: pid $p still runs 5 s after SIGTERM: SIGKILL"
			# shellcheck disable=SC2086
			kill -KILL "$p" $kids 2>/dev/null
		fi
	done
	(exit "$rc")
	nt_cleanup
}
trap t_cleanup EXIT

# --- the stand-ins for ssh and rsync ----------------------------------------

cat >"$T/ssh-runner" <<'EOF'
#!/bin/bash
# ssh stand-in: skip ssh's options, drop the destination, run the rest (one
# command line, as ssh would pass it to the remote shell) here.
printf '%s\n' "$*" >>"${0%/*}/runner.args"
while [ $# -gt 0 ]; do
	case $1 in
	-[BbcDEeFIiJLlmOopQRSWw]) shift 2 ;;
	-*) shift ;;
	*) break ;;
	esac
done
[ $# -ge 2 ] || { echo "ssh-runner: no command" >&2; exit 255; }
shift
exec bash -c "$*"
EOF
# NT_RSYNC stand-in: cp SRC HOST:DEST (no options but -a/-z/-e).
cat >"$T/rsync-stub" <<'EOF'
#!/bin/bash
printf '%s\n' "$*" >>"${0%/*}/rsync-stub.args"
args=("$@")
exec cp "${args[-2]}" "${args[-1]#*:}"
EOF
chmod +x "$T/ssh-runner" "$T/rsync-stub"

export NT_SSH="$T/ssh-runner" NT_REMOTE_DIR="$T" NT_REMOTE_BIN="$NT_DAEMON"
export NT_LOCAL_BIN="$NT_DAEMON" NT_ENV="$T/.env" NT_CONF="$T/nodetalk.conf"
unset REMOTE_USER NT_JUMP NT_RSYNC NT_REMOTE_CONF NT_PID_DIR
# The settings the seed kept in .env (quotes and comments as people write them).
cat >"$T/.env" <<'EOF'
# nodetalk operator settings
REMOTE_USER=tester
export NT_JUMP="jump.example"   # the gateway
EOF
: >"$T/empty.env"
nt_write_conf --set "log_file = \"$T/nodes.log\";"
cd "$T" || nt_fatal "cannot cd to $T"

# run NAME CMD...: CMD's output in $T/NAME.out, its status in RC.
run() {
	local name=$1
	shift
	RC=0
	"$@" >"$T/$name.out" 2>&1 </dev/null || RC=$?
	sed "s/^/#   $name| /" "$T/$name.out"
}

out_has() { grep -qE -- "$2" "$T/$1.out"; }
pidfile() { echo "$T/run/nodetalkd-$1.pid"; }
# is_node PID ID: PID runs nodetalkd -n ID -d (as nt-start starts it).
is_node() {
	nt_pid_alive "$1" && t_is_ours "$1" &&
	    [ "$(tr '\0' ' ' <"/proc/$1/cmdline" | sed 's/ *$//')" = "nodetalkd: master [$2]" ]
}
status_up() { curl -fsS --max-time 2 "http://${NT_ADDR[$1]}:$P/status" | grep -q "\"node\":\"$1\""; }

# --- --help and bad usage -----------------------------------------------------

for s in "${SCRIPTS[@]}"; do
	run help "$CONTRIB/$s" --help >/dev/null
	check_eq "$s --help exits 0" 0 "$RC"
	check "$s --help prints its usage" out_has help "^usage: $s "
	run bad "$CONTRIB/$s" --no-such-flag >/dev/null
	check_eq "$s --no-such-flag exits 2" 2 "$RC"
	check "$s --no-such-flag names the flag" out_has bad "unknown option: --no-such-flag"
done
run bad "$CONTRIB/nt-stop" --timeout
check_eq "nt-stop --timeout without a value exits 2" 2 "$RC"
run bad "$CONTRIB/nt-start" Z
check_eq "nt-start with an unknown node id exits 2" 2 "$RC"
check "... and lists the nodes" out_has bad "no node Z in .*nodes: A B C"
run bad "$CONTRIB/nt-status" -c "$T/no-such.conf"
check_eq "a missing config exits 1" 1 "$RC"
run bad "$CONTRIB/nt-push" --env "$T/empty.env" --conf-only
check_eq "nt-push with no remote user, not from a terminal, exits 2" 2 "$RC"
check "... and asks for --user or REMOTE_USER" out_has bad "give --user USER or set REMOTE_USER"

# --- nt-push --------------------------------------------------------------------

# The config, through the NT_RSYNC stand-in, to where nt-start looks for it.
run push env NT_RSYNC="$T/rsync-stub" "$CONTRIB/nt-push" --conf-only
check_eq "nt-push --conf-only (NT_RSYNC stand-in) exits 0" 0 "$RC"
check "nt-push put the config at \$NT_REMOTE_DIR/etc/nodetalk.conf" \
    cmp -s "$T/nodetalk.conf" "$T/etc/nodetalk.conf"
check "nt-push reports every node" \
    test "$(grep -c '^[ABC]: pushed the config to tester@127\.0\.0\.[123]:' "$T/push.out")" = 3
check "nt-push copied with NT_RSYNC" grep -q "nodetalk.conf tester@127.0.0.2:$T/etc/nodetalk.conf" "$T/rsync-stub.args"

if command -v rsync >/dev/null; then
	# The source tree and the installed files, with the default rsync over
	# the runner (rsync -e "$NT_SSH -J ...").
	run push env NT_REMOTE_DIR="$T/srcpush" "$CONTRIB/nt-push" A
	check_eq "nt-push (source tree, rsync over NT_SSH) exits 0" 0 "$RC"
	check "the source tree arrived" test -f "$T/srcpush/contrib/nt-start" -a -f "$T/srcpush/src/master.c"
	check "with the config" cmp -s "$T/nodetalk.conf" "$T/srcpush/etc/nodetalk.conf"
	check_fail "but not .git" test -e "$T/srcpush/.git"
	check_fail "nor .env" test -e "$T/srcpush/.env"
	run push env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL NT_REMOTE_DIR="$T/inst" \
	    "$CONTRIB/nt-push" --installed --builddir "$NT_BUILDDIR" B
	check_eq "nt-push --installed exits 0" 0 "$RC"
	check "nt-push --installed put nodetalkd in DIR/sbin" test -x "$T/inst/sbin/nodetalkd"
	check "and nodetalk in DIR/bin" test -x "$T/inst/bin/nodetalk"
else
	nt_note "rsync is not installed: nt-push's copies of the tree not tested"
fi

# --- nt-start -------------------------------------------------------------------

run start "$CONTRIB/nt-start"
check_eq "nt-start exits 0" 0 "$RC"
declare -A PID=()
for id in A B C; do
	PID[$id]=$(sed -n "s/^$id: started (pid \([0-9][0-9]*\))$/\1/p" "$T/start.out")
	check "nt-start reports $id started" test -n "${PID[$id]}"
	check_eq "$id's pid file holds that pid" "${PID[$id]}" "$(cat "$(pidfile "$id")" 2>/dev/null)"
	check "$id's pid ${PID[$id]} is a live nodetalkd -n $id" is_node "${PID[$id]}" "$id"
	check "$id serves /status" wait_until 5 status_up "$id"
done
check "the runner got the user and the jump host from .env" \
    grep -q -- "-J tester@jump.example tester@127.0.0.3 " "$T/runner.args"

all_connected() {
	"$CONTRIB/nt-status" >"$T/st.out" 2>&1 &&
	    [ "$(grep -c ' up .* peers=2/2 ' "$T/st.out")" = 3 ]
}
check "nt-status: every node up with both peers connected" wait_until 20 all_connected
run status "$CONTRIB/nt-status"
check_eq "nt-status exits 0 with every node up" 0 "$RC"
for id in A B C; do
	check "nt-status: $id up, 0 messages" out_has status "^$id +up +messages=0 clients=[0-9]+ peers=2/2 "
done

# --- a message through the cluster ----------------------------------------------

out=$(nt_send A alice "hello through contrib")
check_match "the client's message is acknowledged" '^sent A-[0-9]+$' "$out"
for id in A B C; do
	check "the message reached $id" wait_until 10 nt_has_texts "$id" "hello through contrib"
done
all_one() {
	"$CONTRIB/nt-status" --direct >"$T/st.out" 2>&1 &&
	    [ "$(grep -c ' up *messages=1 ' "$T/st.out")" = 3 ]
}
check "nt-status --direct: messages=1 on every node" wait_until 10 all_one
run status "$CONTRIB/nt-status" B
check_eq "nt-status B exits 0" 0 "$RC"
check_eq "nt-status B prints one line" 1 "$(wc -l <"$T/status.out")"

# --- start again: refused -------------------------------------------------------

run start2 "$CONTRIB/nt-start"
check_eq "nt-start on a running cluster exits 0" 0 "$RC"
for id in A B C; do
	check "nt-start reports $id already running" out_has start2 "^$id: already running \(pid ${PID[$id]}\)$"
	check_eq "$id's pid file is unchanged" "${PID[$id]}" "$(cat "$(pidfile "$id")" 2>/dev/null)"
done
# nt-start relies on the daemon refusing a pid file a running master locks.
run dup "$NT_DAEMON" -c "$T/etc/nodetalk.conf" -n A -d -p "$(pidfile A)"
check_fail "a second nodetalkd -d on A's pid file fails" test "$RC" -eq 0
check_eq "A's pid file still holds A's pid" "${PID[A]}" "$(cat "$(pidfile A)" 2>/dev/null)"
# A start-up failure is told on the terminal, before any detaching.
check "it says why on stderr" grep -qF \
    "pid file $(pidfile A) is locked: nodetalkd already runs (pid ${PID[A]})" "$T/dup.out"
check "A still runs" nt_pid_alive "${PID[A]}"

# --- nt-stop --------------------------------------------------------------------

declare -A KIDS=()
for id in A B C; do
	KIDS[$id]=$(nt_children "${PID[$id]}")
	check_eq "$id runs two workers" 2 "$(wc -w <<<"${KIDS[$id]}")"
done
run stop "$CONTRIB/nt-stop"
check_eq "nt-stop exits 0" 0 "$RC"
for id in A B C; do
	check "nt-stop reports $id stopped" out_has stop "^$id: stopped \(pid ${PID[$id]}\)$"
	check "$id's master is gone" nt_pid_gone "${PID[$id]}"
	for k in ${KIDS[$id]}; do
		check "$id's worker $k is gone" nt_pid_gone "$k"
	done
	check_fail "$id's pid file is removed" test -e "$(pidfile "$id")"
done
run status "$CONTRIB/nt-status"
check_eq "nt-status exits 1 with the cluster down" 1 "$RC"
check_eq "nt-status: three nodes down" 3 "$(grep -c '^[ABC] *down ' "$T/status.out")"
run stop2 "$CONTRIB/nt-stop"
check_eq "nt-stop on a stopped cluster exits 0" 0 "$RC"
check_eq "nt-stop: three nodes not running" 3 "$(grep -c '^[ABC]: not running (no pid file' "$T/stop2.out")"

# A stale pid file naming a live process that is not nodetalkd: removed, and
# that process is left alone (nobody holds the file's lock).
nt_bg "$T/sleep.out" sleep 60
sleeper=$NT_BG_PID
echo "$sleeper" >"$(pidfile B)"
run stale "$CONTRIB/nt-stop" B
check_eq "nt-stop on a stale pid file exits 0" 0 "$RC"
check "nt-stop reports the stale pid file" out_has stale "^B: not running \(removed stale pid file of pid $sleeper\)$"
check_fail "the stale pid file is gone" test -e "$(pidfile B)"
check "the process the stale file named was not signalled" nt_pid_alive "$sleeper"
kill "$sleeper" 2>/dev/null

# --- failures nt-start reports ----------------------------------------------------

# A broken config on the node: nodetalkd -t's file:line in the report.
printf 'port = ;\n' >"$T/bad.conf"
run fail "$CONTRIB/nt-start" --remote-conf "$T/bad.conf" C
check_eq "nt-start with a broken remote config exits 1" 1 "$RC"
check "it reports C failed" out_has fail "^C: failed: $T/bad.conf does not pass nodetalkd -t$"
check "with the file and line" out_has fail "^  C\| $T/bad.conf:1"
check_fail "no pid file is left" test -e "$(pidfile C)"

# C's address and port taken: the detached start fails; the reason is in
# log_file, and no empty pid file stays behind.
nt_bg "$T/squatter.out" "$NT_PYTHON" -c "
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.3', $P))
s.listen(1)
print('listening', flush=True)
time.sleep(60)
"
squatter=$NT_BG_PID
wait_until 5 grep -q listening "$T/squatter.out"
run fail "$CONTRIB/nt-start" C
check_eq "nt-start with C's port taken exits 1" 1 "$RC"
check "it reports C failed, pointing at the log file" \
    out_has fail "^C: failed: nodetalkd exited with status [0-9]+ \(see $T/nodes.log on "
check_fail "no pid file is left" test -e "$(pidfile C)"
kill "$squatter" 2>/dev/null
wait_until 5 nt_pid_gone "$squatter"

# One node by name.
run one "$CONTRIB/nt-start" B
check_eq "nt-start B exits 0" 0 "$RC"
check_eq "nt-start B starts only B" "B" "$(cut -d: -f1 "$T/one.out" | tr -d '\n')"
check "B serves /status" wait_until 5 status_up B
run status "$CONTRIB/nt-status"
check_eq "nt-status exits 1 with A and C down" 1 "$RC"
check "nt-status: B up" out_has status "^B +up "
check "nt-status: A down" out_has status "^A +down "
run stop "$CONTRIB/nt-stop" B
check_eq "nt-stop B exits 0" 0 "$RC"
check "nt-stop B stops B" out_has stop "^B: stopped \(pid [0-9]+\)$"
check_fail "B's pid file is removed" test -e "$(pidfile B)"

# --- nt-tunnel --------------------------------------------------------------------

fwd="-L 9000:127.0.0.1:$P -L 9001:127.0.0.2:$P -L 9002:127.0.0.3:$P"
run tunnel env NT_SSH=ssh "$CONTRIB/nt-tunnel" --print
check_eq "nt-tunnel --print exits 0" 0 "$RC"
check_eq "nt-tunnel --print: one ssh through the jump host" \
    "ssh -N -o ExitOnForwardFailure=yes $fwd tester@jump.example" "$(cat "$T/tunnel.out")"
run tunnel2 env NT_SSH=ssh NT_LOCAL_BIN=- "$CONTRIB/nt-tunnel" --print
check_eq "the same without nodetalkd here (the simple parser)" \
    "$(cat "$T/tunnel.out")" "$(cat "$T/tunnel2.out")"
run tunnel3 env NT_SSH=ssh NT_JUMP= "$CONTRIB/nt-tunnel" -p --local-port 19000 --port 9999 B C
check_eq "nt-tunnel B C, no jump host, --local-port, --port" \
    "ssh -N -o ExitOnForwardFailure=yes -L 19001:127.0.0.2:9999 -L 19002:127.0.0.3:9999 tester@127.0.0.2" \
    "$(cat "$T/tunnel3.out")"

nt_finish
