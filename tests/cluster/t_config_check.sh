#!/bin/bash
# t_config_check.sh: `nodetalkd -t` accepts a good config and names file and
# line of what is wrong in a bad one; bad flags print usage; a port already
# in use stops the daemon with a clear log line instead of a loop.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_init config_check
good="$T/nodetalk.conf"

# run_d OUTNAME ARGS...: nodetalkd ARGS, stdout/stderr in $T/OUTNAME.out/.err;
# sets rc.
run_d() {
	local name=$1
	shift
	timeout 10 "$NT_DAEMON" "$@" >"$T/$name.out" 2>"$T/$name.err"
	rc=$?
}

run_d good -t -c "$good" -n A
check_eq "-t on a good config exits 0" 0 "$rc"

# An unknown top-level key on line 4.
nt_write_conf --file "$T/unknown.conf" --set 'colour = "blue";'
run_d unknown -t -c "$T/unknown.conf" -n A
check_eq "-t with an unknown key exits 1" 1 "$rc"
check "-t names the unknown key's file:line on stderr ($T/unknown.conf:4:)" \
    grep -qF "$T/unknown.conf:4:" "$T/unknown.err"

# An unknown key inside node B's entry (line 6).
sed '6s/ }/ hots = "x"; }/' "$good" >"$T/nodekey.conf"
run_d nodekey -t -c "$T/nodekey.conf" -n A
check_eq "-t with an unknown key in a node entry exits 1" 1 "$rc"
check "-t names that key's file:line on stderr ($T/nodekey.conf:6:)" \
    grep -qF "$T/nodekey.conf:6:" "$T/nodekey.err"

# A syntax error on line 3.
sed '3s/.*/fsync = ;/' "$good" >"$T/syntax.conf"
run_d syntax -t -c "$T/syntax.conf" -n A
check_eq "-t with a syntax error exits 1" 1 "$rc"
check "-t names the syntax error's file:line on stderr ($T/syntax.conf:3:)" \
    grep -qF "$T/syntax.conf:3:" "$T/syntax.err"

# With engine = "nats" the nodes are gateways: a seed peer (node B, line
# 8) is an error at its line, and so is a server that is not a NATS URL.
nt_write_conf --file "$T/natsseed.conf" --seed B --set 'engine = "nats";' \
    --set 'nats = { servers = [ "nats://127.0.0.1:4222", "127.0.0.2" ]; };'
run_d natsseed -t -c "$T/natsseed.conf" -n A
check_eq "-t with engine nats and a seed peer exits 1" 1 "$rc"
check "-t names the seed line ($T/natsseed.conf:8:) and says why" \
    grep -qF "$T/natsseed.conf:8: 'seed' is a mesh feature" "$T/natsseed.err"
check "-t names the bad server URL ($T/natsseed.conf:5:)" \
    grep -qF "$T/natsseed.conf:5: each entry of 'servers' must be a URL" \
    "$T/natsseed.err"

run_d missing -t -c /nonexistent/nodetalk.conf
check_eq "-t with a missing file exits 1" 1 "$rc"
check "-t names the missing file" \
    grep -qF /nonexistent/nodetalk.conf "$T/missing.err"

run_d nonode -t -c "$good" -n nosuchnode
check_eq "-t with a node id the file lacks exits 1" 1 "$rc"
check "-t names the unknown node id" \
    grep -qF nosuchnode "$T/nonode.err"

run_d badflag --no-such-flag -c "$good"
check "an unknown flag exits non-zero (status $rc)" test "$rc" -ne 0
check "an unknown flag prints the usage" \
    grep -qi usage "$T/badflag.err" "$T/badflag.out"

# The port of A is taken: nodetalkd -n A must exit, non-zero, and say why.
nt_bg "$T/holder.out" "$NT_PYTHON" -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
time.sleep(60)
' "$P"
check "a stand-in holds 127.0.0.1:$P" wait_until 5 _nt_tcp_ok 127.0.0.1 "$P"
"$NT_DAEMON" -c "$good" -n A >>"$T/A.log" 2>&1 &
d=$!
_nt_own_tree "$d"
if wait_until 10 nt_pid_gone "$d"; then
	wait "$d"
	rc=$?
	check "with its port in use nodetalkd exits non-zero (status $rc)" \
	    test "$rc" -ne 0
else
	_nt_own_tree "$d"
	check "with its port in use nodetalkd exits within 10 s" false
fi
port_line() {
	grep -F "$P" "$T/A.log" | grep -qiE 'in use|bind|listen'
}
check "its log names the port it could not use ($P)" port_line
check_nolog A "[A] Ready. Peers:"

nt_finish
