# natslib.sh: a NATS JetStream cluster beside the nodes, for the tests of
# engine = "nats".  Source it after lib.sh and nt_init.
# shellcheck shell=bash disable=SC2034,SC2317
#
# Three real nats-server processes (Debian's nats-server) on 127.0.0.1, .2
# and .3, like the nodes: one client port $NP, one route port and one
# monitoring port, all picked free and claimed for this test.  Each server
# has the config file and the JetStream directory this file writes into $T;
# the processes are ended by pid at exit, with the nodes.
#
#   nats_need                 skip without nats-server or a nodetalkd built
#                             with the NATS engine (under CI=true: fail)
#   nats_init [--set LINE]... ports, server configs, and $T/nodetalk.conf
#                             for gateways A B C (engine = "nats"; LINEs go
#                             into its nats group)
#   nats_start I...           start servers I (1 2 3), wait until each
#                             serves and JetStream has a leader
#   nats_kill9 I...           SIGKILL servers I
#   nats_stop I...            SIGTERM servers I and wait
#   gw_status ID PATH         one value of ID's /status, e.g. nats.connected
#   gw_metric ID NAME         one value of ID's /metrics
#   gw_linked ID              ID's /status: connected, and the stream is there
#   wait_linked SECS ID...    wait for gw_linked on each ID (counts as a check)

NATS_SERVER=
NP=
NATS_ROUTE_PORT=
NATS_HTTP_PORT=
declare -A NATS_PIDS=()

# The reason a NATS test cannot run; a skip is a failure in CI.
_nats_skip() {
	if [ "${CI:-}" = true ]; then
		nt_fatal "$* (CI=true: a skipped test is a failure)"
	fi
	nt_skip "$*"
}

nats_need() {
	local conf="$T/need-nats.conf" err
	NATS_SERVER=$(command -v nats-server 2>/dev/null) ||
	    NATS_SERVER=/usr/sbin/nats-server
	[ -x "$NATS_SERVER" ] ||
	    _nats_skip "nats-server is not installed (apt-get install nats-server)"
	command -v curl >/dev/null || _nats_skip "curl is not installed"
	printf 'node_id = "A";\nengine = "nats";\nnats = { servers = [ "nats://127.0.0.1:4222" ]; };\nnodes = ( { id = "A"; host = "127.0.0.1"; } );\n' >"$conf"
	err=$("$NT_DAEMON" -t -c "$conf" 2>&1) || {
		case $err in
		*"built without the NATS engine"*)
			_nats_skip "nodetalkd was built without the NATS engine (libnats-dev)" ;;
		*)	nt_fatal "nodetalkd -t refuses a minimal nats config: $err" ;;
		esac
	}
}

_nats_write_server() {
	local i=$1 r routes=
	for r in 1 2 3; do
		routes="$routes${routes:+,} nats-route://127.0.0.$r:$NATS_ROUTE_PORT"
	done
	mkdir -p "$T/nats-$i"
	cat >"$T/nats-$i.conf" <<-EOF
	# $NT_NAME: NATS server N$i, written by tests/cluster/natslib.sh
	server_name: N$i
	listen: 127.0.0.$i:$NP
	http: 127.0.0.$i:$NATS_HTTP_PORT
	jetstream {
	  store_dir: "$T/nats-$i"
	  max_memory_store: 64MB
	  max_file_store: 1GB
	}
	cluster {
	  name: nodetalk-test
	  listen: 127.0.0.$i:$NATS_ROUTE_PORT
	  routes: [$routes ]
	}
	EOF
}

# nats_init [--set LINE]...: LINEs (e.g. 'timeout_ms = 2000;') go into the
# gateways' nats group.
nats_init() {
	local i extra=
	while [ $# -gt 0 ]; do
		case $1 in
		--set) extra="$extra $2"; shift 2 ;;
		*) nt_fatal "nats_init: unknown option $1" ;;
		esac
	done
	nt_claim_port NP
	nt_claim_port NATS_ROUTE_PORT
	nt_claim_port NATS_HTTP_PORT
	for i in 1 2 3; do
		_nats_write_server "$i"
	done
	nt_write_conf --set 'engine = "nats";' \
	    --set "nats = { servers = [ \"nats://127.0.0.1:$NP\", \"nats://127.0.0.2:$NP\", \"nats://127.0.0.3:$NP\" ];$extra };"
	nt_note "NATS servers N1-N3 on 127.0.0.1-3 port $NP (routes $NATS_ROUTE_PORT, monitoring $NATS_HTTP_PORT)"
}

_nats_healthy() {
	curl -sf "http://127.0.0.$1:$NATS_HTTP_PORT/healthz" >/dev/null
}

# Healthy, or gone (then wait_until stops waiting: nats_start says why).
_nats_up_or_gone() {
	_nats_healthy "$1" || nt_pid_gone "${NATS_PIDS[$1]}"
}

_nats_has_leader() {
	grep -qh "JetStream cluster new metadata leader" "$T"/nats-[123].log
}

# nats_start I...: start each server I; wait (20 s) until each answers its
# health check and JetStream has a metadata leader.
nats_start() {
	local i
	for i in "$@"; do
		"$NATS_SERVER" -c "$T/nats-$i.conf" >>"$T/nats-$i.log" 2>&1 &
		NATS_PIDS[$i]=$!
		_nt_own "${NATS_PIDS[$i]}"
		echo "N$i ${NATS_PIDS[$i]} nats-server" >>"$T/pids"
	done
	for i in "$@"; do
		wait_until 20 _nats_up_or_gone "$i"
		_nats_healthy "$i" ||
		    nt_fatal "NATS server N$i does not serve (see $T/nats-$i.log)"
	done
	wait_until 20 _nats_has_leader ||
	    nt_fatal "JetStream elected no metadata leader within 20 s"
}

nats_kill9() {
	local i
	for i in "$@"; do
		kill -KILL "${NATS_PIDS[$i]}" 2>/dev/null
		wait "${NATS_PIDS[$i]}" 2>/dev/null
	done
	return 0
}

nats_stop() {
	local i
	for i in "$@"; do
		kill -TERM "${NATS_PIDS[$i]}" 2>/dev/null
		wait_until 10 nt_pid_gone "${NATS_PIDS[$i]}"
		wait "${NATS_PIDS[$i]}" 2>/dev/null
	done
	return 0
}

# gw_status ID PATH: the value at PATH (dot-separated keys) of ID's /status,
# as JSON (strings unquoted).
gw_status() {
	curl -sf "http://${NT_ADDR[$1]}:$P/status" | "$NT_PYTHON" -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[k]
print(v if isinstance(v, str) else json.dumps(v))
' "$2"
}

# gw_metric ID NAME: the value of an unlabelled metric.
gw_metric() {
	curl -sf "http://${NT_ADDR[$1]}:$P/metrics" |
	    sed -n "s/^$2 \\([0-9.e+-]*\\)\$/\\1/p"
}

gw_linked() {
	[ "$(gw_status "$1" nats.connected)" = true ] &&
	    [ "$(gw_status "$1" nats.stream_ok)" = true ]
}

# wait_linked SECS ID...: each gateway is connected to NATS and has the
# stream.  Counts as one check per gateway.
wait_linked() {
	local secs=$1 id
	shift
	for id in "$@"; do
		check "$id is linked to NATS and the stream (/status)" \
		    wait_until "$secs" gw_linked "$id"
	done
}
