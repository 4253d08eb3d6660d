# lib.sh: helpers for the cluster tests (tests/cluster/t_*.sh source it).
# shellcheck shell=bash disable=SC2034,SC2119,SC2120
#
# A test runs real nodetalkd processes on 127.0.0.1/.2/.3, all on one port
# picked for it, in its own work dir $T.  `make check` exports NT_BUILDDIR,
# NT_SRCDIR and NT_PYTHON; run by hand, they default to this tree and
# /usr/bin/python3.  Exit status: 0 pass, 1 fail, 77 skip (with a reason);
# with CI=true in the environment a skip is a failure (exit 1): CI must run
# every test.
#
#   nt_init NAME               work dir $T, port $P, $T/nodetalk.conf, traps
#   nt_claim_port VAR          one more free port, for other servers
#   nt_write_conf [opts]       (re)write a config (--seed ID, --set LINE,
#                              --file F)
#   nt_start ID [args]         start nodetalkd -n ID and wait until it serves
#   nt_start_seed ID           start tests/tools/seednode.py as node ID
#   nt_stop ID [SIG]           SIGTERM or SIG, wait; returns the exit status
#   nt_kill9 ID                SIGKILL
#   nt_pid ID, nt_alive ID, nt_pid_alive PID, nt_pid_gone PID,
#   nt_children PID, nt_worker_pid ID ws|peer [MARK]
#   nt_send ID SENDER TEXT     nodetalk --text: prints "sent A-17"
#   nt_history ID              nodetalk --history --json: one chat per line
#   nt_texts ID, nt_ids ID, nt_count ID, nt_has_texts ID TEXT...
#   wsclient ARGS...           tests/tools/wsclient.py, bounded by a timeout
#   nt_json ARGS...            tests/tools/ntjson.py (JSON lines on stdin)
#   nt_bg OUT CMD...           run CMD in the background (killed at exit)
#   nt_log_mark ID, nt_log_since ID MARK
#   wait_until SECS CMD...     poll CMD every 0.1 s
#   wait_peers [SECS]          every running node said hello to every other
#   nt_skip REASON             the whole test cannot run here
#   nt_left_out REASON         a part cannot run here (as root, or not)
#   check DESC CMD..., check_fail DESC CMD..., check_eq DESC WANT GOT,
#   check_match DESC REGEX GOT, check_log ID PATTERN [MARK],
#   check_nolog ID PATTERN [MARK]
#   nt_finish                  summary; exit 1 if anything failed
#
# $T is removed after a pass and kept after a failure (or with NT_KEEP=1).

: "${NT_SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${NT_BUILDDIR:=$NT_SRCDIR}"
: "${NT_PYTHON:=/usr/bin/python3}"
export NT_SRCDIR NT_BUILDDIR NT_PYTHON
# The seed's NT_PORT would override the port of every node we start.
unset NT_PORT

NT_TOOLS="$NT_SRCDIR/tests/tools"
NT_DAEMON="$NT_BUILDDIR/src/nodetalkd"
NT_CLIENT="$NT_BUILDDIR/src/nodetalk"

NT_NODES=(A B C)
declare -A NT_ADDR=([A]=127.0.0.1 [B]=127.0.0.2 [C]=127.0.0.3)
declare -A NT_PIDS=()		# ID -> pid of the process nt_start* started
declare -A NT_DOWN=()		# ID -> 1 once stopped or killed on purpose
declare -A NT_SEEDS=()		# ID -> 1 when the config marks it seed
NT_OWNED=()			# "pid:starttime" of every process to end at exit
NT_PASS=0
NT_FAIL=0
NT_LEFT=0
NT_NAME=
NT_PORT_CLAIM=
NT_CLAIMS=()			# more claimed ports (nt_claim_port)
T=
P=

nt_note() { echo "# $*"; }

# nt_skip REASON: the test cannot run here.  A skip passes nothing off as
# tested, but in CI (CI=true) it would hide a missing package or tool, so
# there it fails.
nt_skip() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL: CI=true, and a skip is a failure in CI: $*"
		exit 1
	fi
	echo "SKIP: $*"
	exit 77
}

# nt_left_out REASON: a part of the test cannot run here (it needs root,
# or needs not to be root).  Said on a line of its own and counted in the
# summary, so that a pass never claims what was not checked.
nt_left_out() {
	NT_LEFT=$((NT_LEFT + 1))
	echo "LEFT OUT: $*"
}

# A failure the test cannot go on after.
nt_fatal() {
	echo "FAIL: $*"
	NT_FAIL=$((NT_FAIL + 1))
	exit 1
}

_nt_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }

# --- processes -------------------------------------------------------------

# Start time of PID (clock ticks since boot), empty when it is gone or a
# zombie: with the pid it names one process even if the pid is reused.
_nt_starttime() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	# shellcheck disable=SC2086
	set -- $s
	[ "$1" != Z ] || return 1
	echo "${20}"
}

_nt_own() {
	local st
	st=$(_nt_starttime "$1") || return 0
	case " ${NT_OWNED[*]} " in
	*" $1:$st "*) ;;
	*) NT_OWNED+=("$1:$st") ;;
	esac
}

# nt_children PID: the pids of PID's children, one per line.
nt_children() {
	ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '
}

# _nt_own_tree PID: PID and all its descendants.
_nt_own_tree() {
	local c
	_nt_own "$1"
	for c in $(nt_children "$1"); do
		_nt_own_tree "$c"
	done
}

# True while the process recorded as "pid:starttime" still runs.
_nt_owned_alive() {
	[ "$(_nt_starttime "${1%%:*}")" = "${1##*:}" ]
}

# True when PID is the main process of a node we started and still runs.
_nt_is_node_pid() {
	local id
	[ -n "$1" ] || return 1
	for id in "${!NT_PIDS[@]}"; do
		[ "${NT_PIDS[$id]}" = "$1" ] && nt_alive "$id" && return 0
	done
	return 1
}

nt_pid() { echo "${NT_PIDS[$1]}"; }

nt_alive() {
	local pid=${NT_PIDS[$1]}
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && _nt_starttime "$pid" >/dev/null
}

# nt_pid_alive PID / nt_pid_gone PID: any process (a worker, say); a zombie
# counts as gone.
nt_pid_alive() { _nt_starttime "$1" >/dev/null; }
nt_pid_gone() { ! _nt_starttime "$1" >/dev/null; }

# nt_bg OUTFILE CMD...: run CMD in the background with stdout and stderr in
# OUTFILE; its pid is in NT_BG_PID and it is ended at exit if still running.
nt_bg() {
	local outf=$1
	shift
	"$@" >"$outf" 2>&1 &
	NT_BG_PID=$!
	_nt_own "$NT_BG_PID"
}

# --- set-up ----------------------------------------------------------------

# Pick a port free on 127.0.0.1, .2 and .3 and claim it (a directory in the
# build dir) so that tests running in parallel never share one.
_nt_pick_port() {
	local port lo hi
	read -r hi _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || hi=32768
	hi=$((hi - 1))
	lo=20000
	[ "$hi" -gt $((lo + 1000)) ] || { lo=10000; hi=19999; }
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		port=$("$NT_PYTHON" - "$lo" "$hi" <<-'EOF'
		import random, socket, sys
		lo, hi = int(sys.argv[1]), int(sys.argv[2])
		for _ in range(200):
		    p = random.randint(lo, hi)
		    try:
		        for a in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
		            s = socket.socket()
		            try:
		                s.bind((a, p))
		            finally:
		                s.close()
		    except OSError:
		        continue
		    print(p)
		    sys.exit(0)
		sys.exit(1)
		EOF
		) || return 1
		if mkdir "$NT_BUILDDIR/tests/cluster/port-$port.d" 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

# nt_write_conf [--file F] [--seed ID]... [--set 'key = value;']...
# Writes the cluster config (default $T/nodetalk.conf).  Line 1 is a
# comment, line 2 "port = P;", line 3 'fsync = "batch";', then the --set
# lines, then the nodes A, B, C (host = listen = 127.0.0.x, data_dir $T/ID).
nt_write_conf() {
	local file="$T/nodetalk.conf" sets=() id seed
	NT_SEEDS=()
	while [ $# -gt 0 ]; do
		case $1 in
		--file) file=$2; shift 2 ;;
		--seed) NT_SEEDS[$2]=1; shift 2 ;;
		--set) sets+=("$2"); shift 2 ;;
		*) nt_fatal "nt_write_conf: unknown option $1" ;;
		esac
	done
	{
		echo "# $NT_NAME: written by tests/cluster/lib.sh"
		echo "port = $P;"
		echo 'fsync = "batch";'
		[ ${#sets[@]} -eq 0 ] || printf '%s\n' "${sets[@]}"
		echo "nodes = ("
		for id in "${NT_NODES[@]}"; do
			seed=
			[ -z "${NT_SEEDS[$id]}" ] || seed=" seed = true;"
			printf '  { id = "%s"; host = "%s"; listen = "%s"; data_dir = "%s";%s }%s\n' \
			    "$id" "${NT_ADDR[$id]}" "${NT_ADDR[$id]}" "$T/$id" "$seed" \
			    "$([ "$id" = "${NT_NODES[-1]}" ] || echo ,)"
		done
		echo ");"
	} >"$file"
}

# nt_claim_port VAR: one more port free on 127.0.0.1-3 into VAR, claimed
# until exit (for servers a test runs beside the nodes).
nt_claim_port() {
	local port
	port=$(_nt_pick_port) || nt_fatal "found no free port on 127.0.0.1-3"
	NT_CLAIMS+=("$NT_BUILDDIR/tests/cluster/port-$port.d")
	printf -v "$1" '%s' "$port"
}

# nt_init NAME: fresh work dir $T, port $P, config $T/nodetalk.conf.
nt_init() {
	local id
	NT_NAME=$1
	[ -n "$NT_NAME" ] || nt_fatal "nt_init: no test name"
	[ -x "$NT_DAEMON" ] || nt_fatal "$NT_DAEMON is not built"
	[ -x "$NT_CLIENT" ] || nt_fatal "$NT_CLIENT is not built"
	[ -x "$NT_PYTHON" ] || nt_skip "no python at $NT_PYTHON (set NT_PYTHON)"
	command -v ps >/dev/null || nt_skip "ps (procps) is not installed"
	trap nt_cleanup EXIT
	trap 'echo "# interrupted"; exit 1' INT TERM
	mkdir -p "$NT_BUILDDIR/tests/cluster" || nt_fatal "cannot create $NT_BUILDDIR/tests/cluster"
	T="$NT_BUILDDIR/tests/cluster/$NT_NAME.d"
	rm -rf "$T"
	mkdir -p "$T" || nt_fatal "cannot create $T"
	"$NT_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.3", 0))' 2>/dev/null ||
	    nt_skip "cannot bind 127.0.0.2/127.0.0.3 (no loopback /8 here)"
	P=$(_nt_pick_port) || nt_fatal "found no free port on 127.0.0.1-3"
	NT_PORT_CLAIM="$NT_BUILDDIR/tests/cluster/port-$P.d"
	for id in "${NT_NODES[@]}"; do
		mkdir -p "$T/$id"
	done
	nt_write_conf
	nt_note "$NT_NAME: work dir $T, port $P"
}

# nt_need_websockets: skip unless $NT_PYTHON can import websockets.
nt_need_websockets() {
	"$NT_PYTHON" -c 'import websockets' 2>/dev/null ||
	    nt_skip "$NT_PYTHON cannot import websockets (apt-get install python3-websockets)"
}

# --- logs ------------------------------------------------------------------

# nt_log_mark ID: the log's current size; nt_log_since ID MARK: what came
# after it.  Lets a test look only at lines written after a restart.
nt_log_mark() {
	local f="$T/$1.log"
	if [ -f "$f" ]; then wc -c <"$f" | tr -d ' '; else echo 0; fi
}

nt_log_since() {
	local f="$T/$1.log"
	[ -f "$f" ] || return 0
	tail -c +"$(( ${2:-0} + 1 ))" "$f"
}

_nt_log_has() {
	nt_log_since "$1" "${3:-0}" | grep -qF -- "$2"
}

# nt_worker_pid ID ws|peer [MARK]: pid from the last
# "[ID] KIND worker started (pid N)" line (after MARK).
nt_worker_pid() {
	nt_log_since "$1" "${3:-0}" |
	    sed -n "s/.*\[$1\] $2 worker started (pid \([0-9][0-9]*\)).*/\1/p" |
	    tail -n 1
}

# --- nodes -----------------------------------------------------------------

_nt_tcp_ok() {
	(exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Wait (10 s) for "[ID] Ready. Peers: [" after MARK and for the port to take
# TCP connections on the node's address; fail the test otherwise.
_nt_wait_ready() {
	local id=$1 pid=$2 mark=$3 end rc
	end=$(( $(_nt_ms) + 10000 ))
	while [ "$(_nt_ms)" -lt "$end" ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"
			rc=$?
			echo "# --- $T/$id.log"
			nt_log_since "$id" "$mark"
			nt_fatal "node $id exited with status $rc before it was ready"
		fi
		if _nt_log_has "$id" "[$id] Ready. Peers: [" "$mark" &&
		    _nt_tcp_ok "${NT_ADDR[$id]}" "$P"; then
			_nt_own_tree "$pid"
			return 0
		fi
		sleep 0.1
	done
	echo "# --- $T/$id.log"
	nt_log_since "$id" "$mark"
	nt_fatal "node $id was not ready after 10 s (no \"[$id] Ready. Peers: [\" line or no listener on ${NT_ADDR[$id]}:$P)"
}

# nt_start ID [args]: nodetalkd -c $T/nodetalk.conf -n ID args, log in
# $T/ID.log (appended, so restarts keep the earlier lines).
nt_start() {
	local id=$1 mark pid
	shift
	mark=$(nt_log_mark "$id")
	"$NT_DAEMON" -c "$T/nodetalk.conf" -n "$id" "$@" >>"$T/$id.log" 2>&1 &
	pid=$!
	NT_PIDS[$id]=$pid
	unset 'NT_DOWN[$id]'
	_nt_own "$pid"
	echo "$id $pid nodetalkd" >>"$T/pids"
	_nt_wait_ready "$id" "$pid" "$mark"
}

# nt_start_seed ID: the Python seed node (tests/tools/seednode.py) as ID,
# peers = the other configured nodes; what it stores goes to $T/ID.dump.
nt_start_seed() {
	local id=$1 mark pid peers=() o
	for o in "${NT_NODES[@]}"; do
		[ "$o" = "$id" ] || peers+=(--peer "$o=${NT_ADDR[$o]}")
	done
	mark=$(nt_log_mark "$id")
	"$NT_PYTHON" -u "$NT_TOOLS/seednode.py" --node-id "$id" \
	    --listen "${NT_ADDR[$id]}" --port "$P" "${peers[@]}" \
	    --dump "$T/$id.dump" >>"$T/$id.log" 2>&1 &
	pid=$!
	NT_PIDS[$id]=$pid
	unset 'NT_DOWN[$id]'
	_nt_own "$pid"
	echo "$id $pid seednode" >>"$T/pids"
	_nt_wait_ready "$id" "$pid" "$mark"
}

# nt_stop ID [SIG]: SIGTERM (or SIG), wait up to 10 s; returns the exit
# status (255 when it did not exit) and leaves the time it took in NT_STOP_MS.
nt_stop() {
	local id=$1 sig=${2:-TERM} pid=${NT_PIDS[$1]} t0 end
	[ -n "$pid" ] || nt_fatal "nt_stop: $id was never started"
	_nt_own_tree "$pid"
	NT_DOWN[$id]=1
	t0=$(_nt_ms)
	end=$((t0 + 10000))
	kill -"$sig" "$pid" 2>/dev/null
	while kill -0 "$pid" 2>/dev/null && [ "$(_nt_ms)" -lt "$end" ]; do
		sleep 0.05
	done
	NT_STOP_MS=$(( $(_nt_ms) - t0 ))
	if kill -0 "$pid" 2>/dev/null; then
		echo "# $id (pid $pid) still runs 10 s after SIG$sig"
		return 255
	fi
	wait "$pid"
}

# nt_kill9 ID: SIGKILL the node's main process (its workers are remembered
# and ended at exit).
nt_kill9() {
	local id=$1 pid=${NT_PIDS[$1]}
	[ -n "$pid" ] || nt_fatal "nt_kill9: $id was never started"
	_nt_own_tree "$pid"
	NT_DOWN[$id]=1
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# --- clients ---------------------------------------------------------------

# nt_send ID SENDER TEXT: one chat with the C client; prints "sent A-17".
nt_send() {
	timeout 15 "$NT_CLIENT" --server-host "${NT_ADDR[$1]}" --port "$P" \
	    --sender "$2" --text "$3"
}

# nt_history ID: the node's stored messages, one JSON chat frame per line.
nt_history() {
	timeout 15 "$NT_CLIENT" --server-host "${NT_ADDR[$1]}" --port "$P" \
	    --sender nt-history --history --json
}

nt_json() { "$NT_PYTHON" "$NT_TOOLS/ntjson.py" "$@"; }

# wsclient ARGS...: the independent Python client (see wsclient.py).
wsclient() {
	timeout 30 "$NT_PYTHON" "$NT_TOOLS/wsclient.py" "$@"
}

nt_ids() { nt_history "$1" | nt_json get id; }
nt_texts() { nt_history "$1" | nt_json get text; }

nt_count() {
	local h
	h=$(nt_history "$1") || return 1
	printf '%s\n' "$h" | nt_json count
}

# nt_has_texts ID TEXT...: the node's history holds every TEXT.
nt_has_texts() {
	local id=$1 texts x
	shift
	texts=$(nt_texts "$id") || return 1
	for x in "$@"; do
		grep -qxF -- "$x" <<<"$texts" || return 1
	done
}

# nt_count_is ID N: the node's history holds exactly N messages.
nt_count_is() {
	[ "$(nt_count "$1")" = "$2" ]
}

# --- waiting ---------------------------------------------------------------

# wait_until SECS CMD...: run CMD every 0.1 s until it succeeds (0) or SECS
# (whole seconds) have passed (1).  CMD's output is discarded.
wait_until() {
	local end
	end=$(( $(_nt_ms) + $1 * 1000 ))
	shift
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(_nt_ms)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

_nt_running() {
	local id
	for id in "${NT_NODES[@]}"; do
		[ -n "${NT_PIDS[$id]}" ] && [ -z "${NT_DOWN[$id]}" ] && echo "$id"
	done
}

_nt_hellos_done() {
	local id o
	for id in $(_nt_running); do
		for o in $(_nt_running); do
			[ "$id" = "$o" ] && continue
			_nt_log_has "$id" "[$id] Sent hello to $o" || return 1
		done
	done
}

# A node that waits to hear its peers (an empty log, say) holds chats:
# every running nodetalkd says "recovering": false.
_nt_recovered() {
	local id
	for id in $(_nt_running); do
		[ -z "${NT_SEEDS[$id]}" ] || continue
		curl -fsS --max-time 2 "http://${NT_ADDR[$id]}:$P/status" |
		    grep -q '"recovering":false' || return 1
	done
}

# wait_peers [SECS]: every running node's log says "[X] Sent hello to Y" for
# every other running node, and no node is still recovering (default
# 15 s).  Counts as a check.
wait_peers() {
	local id o missing=
	if wait_until "${1:-15}" _nt_hellos_done &&
	    wait_until "${1:-15}" _nt_recovered; then
		_nt_ok "every node said hello to every other node"
		return 0
	fi
	for id in $(_nt_running); do
		for o in $(_nt_running); do
			[ "$id" = "$o" ] && continue
			_nt_log_has "$id" "[$id] Sent hello to $o" ||
			    missing="$missing $id->$o"
		done
	done
	_nt_notok "every node said hello to every other node (missing:$missing)"
	return 1
}

# --- checks ----------------------------------------------------------------

_nt_ok() {
	NT_PASS=$((NT_PASS + 1))
	echo "PASS: $1"
}

_nt_notok() {
	NT_FAIL=$((NT_FAIL + 1))
	echo "FAIL: $1"
}

# check DESC CMD...: passes when CMD exits 0.
check() {
	local desc=$1
	shift
	if "$@"; then _nt_ok "$desc"; else _nt_notok "$desc"; return 1; fi
}

# check_fail DESC CMD...: passes when CMD exits non-zero.
check_fail() {
	local desc=$1
	shift
	if "$@"; then _nt_notok "$desc"; return 1; else _nt_ok "$desc"; fi
}

check_eq() {
	if [ "$2" = "$3" ]; then
		_nt_ok "$1"
	else
		_nt_notok "$1"
		printf '#   expected: %s\n#   got:      %s\n' "$2" "$3"
		return 1
	fi
}

# check_match DESC ERE VALUE
check_match() {
	if [[ $3 =~ $2 ]]; then
		_nt_ok "$1"
	else
		_nt_notok "$1"
		printf '#   expected to match: %s\n#   got: %s\n' "$2" "$3"
		return 1
	fi
}

# check_log ID PATTERN [MARK]: PATTERN (fixed string) is in $T/ID.log
# (after MARK), or gets there within 3 s: a log line may trail the event.
check_log() {
	check "log of $1 has: $2" wait_until 3 _nt_log_has "$1" "$2" "${3:-0}"
}

check_nolog() {
	check_fail "log of $1 lacks: $2" _nt_log_has "$1" "$2" "${3:-0}"
}

# --- the end ---------------------------------------------------------------

# nt_finish: every node not stopped on purpose must still run; summary;
# exit 1 if any check failed.
nt_finish() {
	local id
	for id in $(_nt_running); do
		check "node $id (pid ${NT_PIDS[$id]}) is still running" nt_alive "$id"
	done
	if [ "$NT_LEFT" -gt 0 ]; then
		echo "# $NT_NAME: $NT_PASS passed, $NT_FAIL failed, $NT_LEFT part(s) left out"
	else
		echo "# $NT_NAME: $NT_PASS passed, $NT_FAIL failed"
	fi
	[ "$NT_FAIL" -eq 0 ] || exit 1
	exit 0
}

# End what we started: SIGTERM to every process we started and its
# descendants, except a running node's workers (their master stops them);
# up to 5 s; then SIGKILL whatever is left, workers included.  Only pids we
# started or saw below them, each checked against its start time so that a
# reused pid is left alone.
nt_cleanup() {
	local rc=$? p end left f pp
	trap - EXIT INT TERM
	disown -a 2>/dev/null	# no "Killed" job notices
	for p in "${NT_OWNED[@]}"; do
		_nt_owned_alive "$p" && _nt_own_tree "${p%%:*}"
	done
	for p in "${NT_OWNED[@]}"; do
		_nt_owned_alive "$p" || continue
		pp=$(ps -o ppid= -p "${p%%:*}" 2>/dev/null | tr -d ' ')
		_nt_is_node_pid "$pp" || kill -TERM "${p%%:*}" 2>/dev/null
	done
	end=$(( $(_nt_ms) + 5000 ))
	while :; do
		left=
		for p in "${NT_OWNED[@]}"; do
			_nt_owned_alive "$p" && left="$left ${p%%:*}"
		done
		if [ -z "$left" ] || [ "$(_nt_ms)" -ge "$end" ]; then
			break
		fi
		sleep 0.1
	done
	for p in "${NT_OWNED[@]}"; do
		if _nt_owned_alive "$p"; then
			echo "# pid ${p%%:*} still runs 5 s after SIGTERM: SIGKILL"
			kill -KILL "${p%%:*}" 2>/dev/null
		fi
	done
	[ -z "$NT_PORT_CLAIM" ] || rmdir "$NT_PORT_CLAIM" 2>/dev/null
	for p in "${NT_CLAIMS[@]}"; do
		rmdir "$p" 2>/dev/null
	done
	[ -n "$T" ] && [ -d "$T" ] || exit "$rc"
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] || [ "$NT_FAIL" -ne 0 ]; then
		for f in "$T"/*.log; do
			[ -f "$f" ] || continue
			echo "# --- last lines of $f"
			tail -n 40 "$f" | cut -c1-300 | sed 's/^/#   /'
		done
		echo "# work dir kept: $T"
		[ "$rc" -ne 0 ] || rc=1
	elif [ -n "$NT_KEEP" ]; then
		echo "# work dir kept (NT_KEEP): $T"
	else
		rm -rf "$T"
	fi
	exit "$rc"
}
