#!/bin/bash
# local-cluster.sh: build nodetalkd and run a three-node cluster on this
# machine: nodes A, B and C on 127.0.0.1, 127.0.0.2 and 127.0.0.3, all on
# one port, as on three hosts.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: contrib/local-cluster.sh [start|stop|status] [--port PORT] [--help]
  start    install what is missing, build (build/plain), start A, B and C
           (the default)
  stop     stop the three nodes (SIGTERM, then wait)
  status   show whether each node runs
Data, logs and pid files go to ./local-cluster/ under the source tree.
  --port PORT   the cluster's port (default: $NT_PORT, else 9000)
USAGE
}

top=$(cd "$(dirname "$0")/.." && pwd)
run="$top/local-cluster"
cmd=start
port=${NT_PORT:-9000}
while [ $# -gt 0 ]; do
	case "$1" in
	start|stop|status) cmd=$1 ;;
	--port) port=${2:?--port needs a value}; shift ;;
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
	mkdir -p "$run"
	cat >"$run/nodetalk.conf" <<CONF
# Written by contrib/local-cluster.sh: three nodes on one machine.
port = $port;
www_dir = "$top/www";
nodes = (
  { id = "A"; host = "127.0.0.1"; listen = "127.0.0.1"; data_dir = "$run/A"; },
  { id = "B"; host = "127.0.0.2"; listen = "127.0.0.2"; data_dir = "$run/B"; },
  { id = "C"; host = "127.0.0.3"; listen = "127.0.0.3"; data_dir = "$run/C"; }
);
CONF
}

start() {
	build
	write_conf
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
}

"$cmd"
