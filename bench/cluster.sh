#!/bin/bash
# cluster.sh: a three-node cluster on loopback for the benchmark suite:
# nodes A, B, C on 127.0.0.1, .2 and .3, one port, data and logs in a work
# dir.  bench/run.sh sources it; nodetalk-bench runs it to restart a node:
#
#   bench/cluster.sh restart ID WORKDIR
#
# Each node's pid is kept with its start time in WORKDIR/ID.pid, so that a
# stop never signals a process that merely reused the pid.
# shellcheck disable=SC2034  # the variables are the sourcing script's

BC_IDS=(A B C)
declare -A BC_ADDR=([A]=127.0.0.1 [B]=127.0.0.2 [C]=127.0.0.3)

_bc_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }

# Start time of PID in clock ticks; fails for a zombie or a missing pid.
_bc_starttime() {
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	# shellcheck disable=SC2086
	set -- $s
	[ "$1" != Z ] || return 1
	echo "${20}"
}

# bc_conf WORK PORT: the configuration of the three nodes in WORK/n.conf.
bc_conf() {
	local work=$1 port=$2 id
	{
		echo "# written by bench/cluster.sh"
		echo "port = $port;"
		# 10,000 clients of the connections benchmark, and some room;
		# they come from four loopback addresses, far more than the
		# per-address default lets in
		echo "max_clients = 20000;"
		echo "max_clients_per_address = 20000;"
		echo "nodes = ("
		for id in A B C; do
			printf '  { id = "%s"; host = "%s"; listen = "%s"; data_dir = "%s/%s"; }%s\n' \
			    "$id" "${BC_ADDR[$id]}" "${BC_ADDR[$id]}" "$work" "$id" \
			    "$([ $id = C ] || echo ,)"
		done
		echo ");"
	} >"$work/n.conf"
	# A build from before the key (--against an old version) has one
	# limit only, max_clients.
	if grep -q "unknown key 'max_clients_per_address'" <<<"$("$BC_DAEMON" \
	    -t -c "$work/n.conf" -n A 2>&1)"; then
		sed -i '/^max_clients_per_address/d' "$work/n.conf"
	fi
}

# bc_start ID WORK: start node ID in the background; does not wait.
bc_start() {
	local id=$1 work=$2 pid
	mkdir -p "$work/$id"
	"$BC_DAEMON" -c "$work/n.conf" -n "$id" >>"$work/$id.log" 2>&1 &
	pid=$!
	echo "$pid $(_bc_starttime "$pid")" >"$work/$id.pid"
}

# bc_alive ID WORK: the node recorded in WORK/ID.pid still runs.
bc_alive() {
	local pid st
	read -r pid st <"$2/$1.pid" 2>/dev/null || return 1
	[ -n "$st" ] && [ "$(_bc_starttime "$pid")" = "$st" ]
}

# bc_stop ID WORK: SIGTERM, up to 10 s, then SIGKILL.
bc_stop() {
	local id=$1 work=$2 pid st end
	read -r pid st <"$work/$id.pid" 2>/dev/null || return 0
	bc_alive "$id" "$work" || return 0
	kill -TERM "$pid" 2>/dev/null
	end=$(( $(_bc_ms) + 10000 ))
	while bc_alive "$id" "$work" && [ "$(_bc_ms)" -lt "$end" ]; do
		sleep 0.02
	done
	if bc_alive "$id" "$work"; then
		echo "cluster.sh: node $id (pid $pid) ignored SIGTERM: SIGKILL" >&2
		kill -KILL "$pid" 2>/dev/null
	fi
}

# bc_ready ID WORK PORT [SECS]: the node says Ready and takes connections.
bc_ready() {
	local id=$1 work=$2 port=$3 end
	end=$(( $(_bc_ms) + ${4:-20} * 1000 ))
	while [ "$(_bc_ms)" -lt "$end" ]; do
		bc_alive "$id" "$work" || return 1
		if grep -qF "[$id] Ready. Peers: [" "$work/$id.log" 2>/dev/null &&
		    (exec 3<>"/dev/tcp/${BC_ADDR[$id]}/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# bc_linked WORK [SECS]: every node said hello to every other.
bc_linked() {
	local work=$1 end id o ok
	end=$(( $(_bc_ms) + ${2:-20} * 1000 ))
	while [ "$(_bc_ms)" -lt "$end" ]; do
		ok=1
		for id in A B C; do
			for o in A B C; do
				[ "$id" = "$o" ] && continue
				grep -qF "[$id] Sent hello to $o" "$work/$id.log" ||
				    ok=0
			done
		done
		[ $ok -eq 1 ] && return 0
		sleep 0.05
	done
	return 1
}

# Run as a command: restart a node (nodetalk-bench --restart-cmd).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	[ $# -eq 3 ] && [ "$1" = restart ] || {
		echo "usage: bench/cluster.sh restart ID WORKDIR" >&2
		exit 2
	}
	BC_DAEMON=$(cat "$3/daemon") || exit 1
	bc_stop "$2" "$3"
	bc_start "$2" "$3"
fi
