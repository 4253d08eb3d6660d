#!/bin/bash
# local-cluster.sh: build nodetalkd and run a three-node cluster on this
# machine: nodes A, B and C on 127.0.0.1, 127.0.0.2 and 127.0.0.3, all on
# one port, as on three hosts.  With --engine nats, three NATS JetStream
# servers N1, N2, N3 on the same addresses too, and A, B, C as gateways.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: contrib/local-cluster.sh [start|stop|status] [--port PORT]
                                [--engine mesh|nats] [--help]
  start    install what is missing, build (build/plain), start A, B and C
           (the default)
  stop     stop the three nodes (SIGTERM, then wait), and the NATS servers
  status   show whether each node (and NATS server) runs
Data, logs and pid files go to ./local-cluster/ under the source tree.
  --port PORT      the cluster's port (default: $NT_PORT, else 9000)
  --engine ENGINE  "mesh" (the default): the nodes link to each other;
                   "nats": three NATS servers (nats-server, installed if
                   missing) on 127.0.0.1-3 port 4222 (routes 6222,
                   monitoring 8222) and the nodes as gateways to them
USAGE
}

top=$(cd "$(dirname "$0")/.." && pwd)
run="$top/local-cluster"
cmd=start
port=${NT_PORT:-9000}
engine=mesh
while [ $# -gt 0 ]; do
	case "$1" in
	start|stop|status) cmd=$1 ;;
	--port) port=${2:?--port needs a value}; shift ;;
	--engine)
		engine=${2:?--engine needs a value}; shift
		case $engine in mesh|nats) ;; *) usage >&2; exit 2 ;; esac
		;;
	--help|-h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

nodes=(A B C)
addr() { case "$1" in A) echo 127.0.0.1 ;; B) echo 127.0.0.2 ;; C) echo 127.0.0.3 ;; esac; }

node_pid() {
	local f="$run/$1.pid"
	[ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

build() {
	"$top/contrib/deps.sh" --build-only
	cd "$top"
	[ -x configure ] || autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
	mkdir -p build/plain
	cd build/plain
	[ -f Makefile ] || "$top/configure" -q
	make -s -j"$(nproc)" >/dev/null
}

write_conf() {
	local nats=
	mkdir -p "$run"
	[ "$engine" = mesh ] || nats='engine = "nats";
nats = { servers = [ "nats://127.0.0.1:4222", "nats://127.0.0.2:4222", "nats://127.0.0.3:4222" ]; };'
	cat >"$run/nodetalk.conf" <<CONF
# Written by contrib/local-cluster.sh: three nodes on one machine.
port = $port;
www_dir = "$top/www";
$nats
nodes = (
  { id = "A"; host = "127.0.0.1"; listen = "127.0.0.1"; data_dir = "$run/A"; },
  { id = "B"; host = "127.0.0.2"; listen = "127.0.0.2"; data_dir = "$run/B"; },
  { id = "C"; host = "127.0.0.3"; listen = "127.0.0.3"; data_dir = "$run/C"; }
);
CONF
}

# --- the NATS servers (--engine nats) ---------------------------------------

nats_bin() {
	command -v nats-server 2>/dev/null || {
		[ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server
	}
}

nats_install() {
	local sudo=
	nats_bin >/dev/null && return 0
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "installing nats-server"
	$sudo apt-get install -y -qq --no-install-recommends nats-server >/dev/null
}

nats_pid() {
	local f="$run/N$1.pid"
	[ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

nats_conf() {
	local i=$1
	mkdir -p "$run/N$i"
	cat >"$run/N$i.conf" <<CONF
# Written by contrib/local-cluster.sh: NATS server N$i of three.
server_name: N$i
listen: 127.0.0.$i:4222
http: 127.0.0.$i:8222
pid_file: "$run/N$i.pid"
jetstream { store_dir: "$run/N$i" }
cluster {
  name: local
  listen: 127.0.0.$i:6222
  routes: [ nats-route://127.0.0.1:6222, nats-route://127.0.0.2:6222,
            nats-route://127.0.0.3:6222 ]
}
CONF
}

nats_start() {
	local i bin
	nats_install
	bin=$(nats_bin)
	for i in 1 2 3; do
		if [ -n "$(nats_pid "$i")" ]; then
			echo "NATS server N$i already runs (pid $(nats_pid "$i"))"
			continue
		fi
		nats_conf "$i"
		setsid "$bin" -c "$run/N$i.conf" </dev/null >>"$run/N$i.log" 2>&1 &
	done
	for i in $(seq 50); do
		[ -n "$(nats_pid 1)" ] && [ -n "$(nats_pid 2)" ] &&
		    [ -n "$(nats_pid 3)" ] && return 0
		sleep 0.1
	done
	echo "the NATS servers did not start; see $run/N*.log" >&2
	exit 1
}

nats_stop() {
	local i p
	for i in 1 2 3; do
		p=$(nats_pid "$i") || continue
		kill -TERM "$p"
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		echo "NATS server N$i stopped"
	done
}

# The data directories hold one engine's messages: a mesh node's log is
# no copy of a stream, and the other way round.
check_engine() {
	local old
	old=$(cat "$run/engine" 2>/dev/null || echo mesh)
	[ ! -d "$run/A" ] || [ "$old" = "$engine" ] || {
		echo "$run holds a $old cluster's data; to start a $engine one:" >&2
		echo "  contrib/local-cluster.sh stop && rm -rf $run" >&2
		exit 1
	}
	mkdir -p "$run"
	echo "$engine" >"$run/engine"
}

start() {
	check_engine
	build
	write_conf
	[ "$engine" = mesh ] || nats_start
	local d="$top/build/plain/src/nodetalkd" n
	for n in "${nodes[@]}"; do
		if [ -n "$(node_pid "$n")" ]; then
			echo "node $n already runs (pid $(node_pid "$n"))"
			continue
		fi
		# In the foreground of its own session, logging to a file.
		setsid "$d" -c "$run/nodetalk.conf" -n "$n" -p "$run/$n.pid" \
			</dev/null >>"$run/$n.log" 2>&1 &
	done
	sleep 1
	for n in "${nodes[@]}"; do
		[ -n "$(node_pid "$n")" ] || {
			echo "node $n did not start:" >&2
			tail -n 5 "$run/$n.log" >&2
			exit 1
		}
	done
	[ "$engine" = mesh ] || cat <<MSG

Three NATS JetStream servers run on 127.0.0.1-3 port 4222 (monitoring:
http://127.0.0.1:8222/), and A, B, C are gateways to the stream "nodetalk".
MSG
	cat <<MSG

Three nodes run on port $port:
  A  http://127.0.0.1:$port/   (log: $run/A.log)
  B  http://127.0.0.2:$port/   (log: $run/B.log)
  C  http://127.0.0.3:$port/   (log: $run/C.log)

Point a browser at any of them, or use the client:
  $top/build/plain/src/nodetalk --server-host 127.0.0.1 --port $port --sender you --text "hello"
  $top/build/plain/src/nodetalk --server-host 127.0.0.3 --port $port --history
  $top/build/plain/src/nodetalk --server-host 127.0.0.2 --port $port --sender you   (interactive)
Stop them with: contrib/local-cluster.sh stop
MSG
}

stop() {
	local n p i
	for n in "${nodes[@]}"; do
		p=$(node_pid "$n") || { echo "node $n is not running"; continue; }
		kill -TERM "$p"
		for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$p" 2>/dev/null; then
			echo "node $n (pid $p) did not stop" >&2
		else
			echo "node $n stopped"
		fi
	done
	nats_stop
}

status() {
	local n p
	for n in "${nodes[@]}"; do
		if p=$(node_pid "$n"); then
			echo "node $n runs (pid $p) on $(addr "$n"):$port"
		else
			echo "node $n is not running"
		fi
	done
	for n in 1 2 3; do
		[ -f "$run/N$n.conf" ] || continue
		if p=$(nats_pid "$n"); then
			echo "NATS server N$n runs (pid $p) on 127.0.0.$n:4222"
		else
			echo "NATS server N$n is not running"
		fi
	done
}

"$cmd"
