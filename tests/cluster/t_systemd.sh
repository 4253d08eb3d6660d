#!/bin/bash
# t_systemd.sh: nodetalkd as a systemd service, as far as it can be tried
# without systemd running the machine.
#  - The unit made from contrib/nodetalkd.service.in has the configured
#    paths, passes systemd-analyze verify, and systemd-analyze security
#    rates its exposure at most 2.0 (offline review of the unit file).
#  - With NOTIFY_SOCKET (a stand-in socket, tests/tools/notifysock.py) the
#    node says READY=1 once it serves, RELOADING=1 with MONOTONIC_USEC then
#    READY=1 around each reload, a STATUS= line each time, STOPPING=1 when
#    stopped; built without libsystemd, it says nothing at all.
#  - The unit's ExecReload (nodetalkd -s reload, with MAINPID and
#    RUNTIME_DIRECTORY as systemd sets them) exits 0 once a good
#    configuration runs, also after a move to another port, and 1 with the
#    reason when the file is broken or the new port is taken; the node
#    keeps serving.
#  - With stderr on the journal (JOURNAL_STREAM names it), every line
#    starts with its syslog priority: <6> info, <4> warnings, <3> fatal.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
command -v systemd-analyze >/dev/null ||
    nt_skip "systemd-analyze is not installed (apt-get install systemd)"
# One node: a node with an empty log and peers would wait for them before
# it takes a chat (guarantees.md).
NT_NODES=(A)
nt_init systemd

UNIT="$NT_BUILDDIR/contrib/nodetalkd.service"
have_sd=$(sed -n 's/^SYSTEMD_LIBS = //p' "$NT_BUILDDIR/Makefile")
nt_note "built with libsystemd: ${have_sd:-no}"

# --- the unit -------------------------------------------------------------------------

check "the unit is made in the build tree" test -s "$UNIT"
check_eq "no @placeholder@ is left in it" "" "$(grep -o '@[a-zA-Z_]*@' "$UNIT")"
check_match "ExecStart runs the installed nodetalkd with the installed config" \
    '^ExecStart=/.*/sbin/nodetalkd -c /.*/nodetalk\.conf$' "$(grep '^ExecStart=' "$UNIT")"
check_eq "ExecReload waits for the outcome" "-s reload" \
    "$(sed -n 's|^ExecReload=/.*/sbin/nodetalkd ||p' "$UNIT")"
check_eq "Type=notify when built with libsystemd, else exec" \
    "$([ -n "$have_sd" ] && echo notify || echo exec)" "$(sed -n 's/^Type=//p' "$UNIT")"
check_eq "it runs as the user nodetalk" "nodetalk nodetalk" \
    "$(sed -n 's/^User=//p; s/^Group=//p' "$UNIT" | paste -sd ' ')"
for k in StateDirectory=nodetalk RuntimeDirectory=nodetalkd SystemCallFilter=@system-service \
    ProtectProc=invisible ProcSubset=pid CapabilityBoundingSet= NoNewPrivileges=yes; do
	check "it has $k" grep -qx -- "$k" "$UNIT"
done
# The unit as it would be installed, with the binary of this build.
sed "s|^\(Exec[A-Za-z]*=\)/[^ ]*/sbin/nodetalkd|\1$NT_DAEMON|" "$UNIT" >"$T/nodetalkd.service"
check "systemd-analyze verify accepts it" \
    systemd-analyze verify --man=no "$T/nodetalkd.service"
(cd "$T" && systemd-analyze security --offline=true --threshold=20 \
    nodetalkd.service) >"$T/security.txt" 2>&1
check_eq "systemd-analyze security --offline --threshold=20 (2.0) passes" 0 "$?"
level=$(sed -n 's/.*Overall exposure level for nodetalkd.service: \([0-9.]*\).*/\1/p' "$T/security.txt")
nt_note "systemd-analyze security: exposure $level"
check "its exposure level ($level) is at most 2.0" \
    "$NT_PYTHON" -c 'import sys; sys.exit(not 0 <= float(sys.argv[1]) <= 2.0)' "$level"

# --- notifications, the reload helper, the journal --------------------------------

SOCK="$T/notify.sock"
NOTES="$T/notify.jsonl"
nt_bg "$T/notifysock.log" "$NT_PYTHON" -u "$NT_TOOLS/notifysock.py" "$SOCK" "$NOTES"
wait_until 10 grep -q listening "$NOTES" 2>/dev/null || nt_fatal "notifysock.py did not start"
mkdir -p "$T/run"
: >"$T/A.log"

# notes FIELD=VALUE...: the datagrams holding every FIELD=VALUE (VALUE a
# regex), one JSON line each.
notes() {
	"$NT_PYTHON" - "$NOTES" "$@" <<-'EOF'
	import json, re, sys
	want = [a.split("=", 1) for a in sys.argv[2:]]
	for line in open(sys.argv[1]):
	    r = json.loads(line)
	    f = r.get("fields")
	    if f is not None and all(k in f and re.search(v, f[k]) for k, v in want):
	        print(line, end="")
	EOF
}
count_notes() { notes "$@" | wc -l; }
# notes_are N FIELD=VALUE...: exactly N such datagrams (for wait_until).
notes_are() {
	local n=$1
	shift
	[ "$(count_notes "$@")" = "$n" ]
}
mono_us() { "$NT_PYTHON" -c 'import time; print(time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)'; }

export NOTIFY_SOCKET="$SOCK" RUNTIME_DIRECTORY="$T/run"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/A.log")
export JOURNAL_STREAM
nt_start A
unset NOTIFY_SOCKET
master=$(nt_pid A)

# reload: the unit's ExecReload, run as systemd runs it.
reload() {
	MAINPID=$master "$NT_DAEMON" -s reload 2>"$T/reload.err"
}

if [ -n "$have_sd" ]; then
	check "READY=1 once A serves, with its status" wait_until 5 \
	    notes_are 1 READY=1 'STATUS=^Node A ready on 127\.0\.0\.1 port'
else
	check_eq "without libsystemd: no notification" 1 "$(wc -l <"$NOTES")"
fi

t0=$(mono_us)
reload
check_eq "ExecReload of a good configuration: exit 0" 0 "$?"
t1=$(mono_us)
check_eq "  and it says so" "nodetalkd: reloaded configuration from $T/nodetalk.conf" "$(cat "$T/reload.err")"
if [ -n "$have_sd" ]; then
	check_eq "RELOADING=1 with MONOTONIC_USEC" 1 "$(count_notes RELOADING=1 'MONOTONIC_USEC=^[0-9]+$')"
	usec=$(notes RELOADING=1 | "$NT_PYTHON" -c 'import json, sys; print(json.loads(sys.stdin.readline())["fields"]["MONOTONIC_USEC"])')
	check "  MONOTONIC_USEC ($usec) is the time of the reload ($t0..$t1)" \
	    test "$usec" -ge "$t0" -a "$usec" -le "$t1"
	check "then READY=1 with the outcome as STATUS" wait_until 5 \
	    notes_are 1 READY=1 'STATUS=reloaded configuration from'
	check_eq "  in that order" "RELOADING READY" \
	    "$(notes | "$NT_PYTHON" -c 'import json, sys
r = [json.loads(l)["fields"] for l in sys.stdin if "fields" in l]
print(" ".join(k for f in r[1:] for k in ("RELOADING", "READY") if k in f))')"
fi

# A broken file: refused, with file:line; the node keeps serving.
cp "$T/nodetalk.conf" "$T/good.conf"
sed -i "s/^port = $P;/port = 0;/" "$T/nodetalk.conf"
reload
check_eq "ExecReload of a broken file: exit 1" 1 "$?"
check_match "  with the reason, file and line" \
    "^nodetalkd: reload refused: $T/nodetalk.conf:2: .*port.*; keeping the running configuration$" \
    "$(cat "$T/reload.err")"
if [ -n "$have_sd" ]; then
	check "READY=1 again, STATUS says it was refused" wait_until 5 \
	    notes_are 1 READY=1 'STATUS=reload refused'
fi
check_match "A still serves" '^sent A-1$' "$(nt_send A alice "after a refused reload")"
check_log A "<4>[A] master: reload refused: $T/nodetalk.conf:2:"

# A new port: the outcome waits for the new listener.
P2=$("$NT_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed "s/^port = $P;/port = $P2;/" "$T/good.conf" >"$T/nodetalk.conf"
reload
check_eq "ExecReload moving A to port $P2: exit 0" 0 "$?"
check_eq "  once A listens there" "nodetalkd: reloaded configuration from $T/nodetalk.conf; listening on 127.0.0.1 port $P2" \
    "$(cat "$T/reload.err")"
check "A answers on port $P2" _nt_tcp_ok 127.0.0.1 "$P2"

# Back to $P while something else holds it: the reload fails.
nt_bg "$T/holder.log" "$NT_PYTHON" -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); print("bound", flush=True); time.sleep(60)' "$P"
holder=$NT_BG_PID
wait_until 10 grep -q bound "$T/holder.log" || nt_fatal "could not hold port $P"
cp "$T/good.conf" "$T/nodetalk.conf"
reload
check_eq "ExecReload to a port in use: exit 1" 1 "$?"
check_match "  with the reason" "^nodetalkd: reload failed: cannot listen on 127.0.0.1 port $P: Address already in use; staying on 127.0.0.1 port $P2$" \
    "$(cat "$T/reload.err")"
check "A still answers on port $P2" wait_until 10 _nt_tcp_ok 127.0.0.1 "$P2"
kill "$holder"

check_eq "without MAINPID or -p, -s reload says what it needs: exit 1" 1 \
    "$(env -u MAINPID "$NT_DAEMON" -s reload 2>"$T/noreload.err"; echo $?)"
check "  and why" grep -qF -- "-s reload needs -p PIDFILE, or systemd's MAINPID" "$T/noreload.err"

# The journal: every line of A's with its priority.
check_eq "every line A wrote starts with a syslog priority" "" \
    "$(grep -v '^<[0-7]>' "$T/A.log" | head -3)"
check_log A "<6>[A] Ready. Peers: []"
: >"$T/B.err"
sed "s/^port = $P;/port = $P2;/" "$T/good.conf" >"$T/second.conf"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/B.err") \
    "$NT_DAEMON" -c "$T/second.conf" -n A 2>>"$T/B.err"
check_eq "a second A on A's port exits 1" 1 "$?"
check "  its fatal line has priority 3 (journalctl -p err finds it)" \
    grep -qF "<3>[A] master: fatal: cannot listen on 127.0.0.1 port $P2" "$T/B.err"
unset JOURNAL_STREAM
"$NT_DAEMON" -c "$T/second.conf" -n A 2>"$T/C.err"
check "without JOURNAL_STREAM, no priority" grep -qF "[A] master: fatal: cannot listen on" "$T/C.err"
check_fail "  at the start of the line" grep -q '^<' "$T/C.err"

nt_stop A
check_eq "A stops cleanly" 0 "$?"
if [ -n "$have_sd" ]; then
	check_eq "STOPPING=1 as it stops" 1 "$(count_notes STOPPING=1)"
fi
check_fail "the reload outcome file went with it" test -e "$T/run/nodetalkd.reload"

# -p PIDFILE instead of systemd: the same, next to the pid file.
nt_start A -p "$T/A.pid"
sed -i "s/^port = $P;/port = 0;/" "$T/nodetalk.conf"
"$NT_DAEMON" -s reload -p "$T/A.pid" 2>"$T/reload.err"
check_eq "nodetalkd -s reload -p PIDFILE, broken file: exit 1" 1 "$?"
check_match "  with the reason" '^nodetalkd: reload refused: ' "$(cat "$T/reload.err")"
cp "$T/good.conf" "$T/nodetalk.conf"
"$NT_DAEMON" -s reload -p "$T/A.pid" 2>"$T/reload.err"
check_eq "nodetalkd -s reload -p PIDFILE, good file: exit 0" 0 "$?"
nt_stop A
check_eq "A stops cleanly" 0 "$?"
nt_finish
