# acklib.sh: helpers for the durability tests (t_durability, t_restart_all,
# t_concurrent, t_partition, t_corrupt_tail, t_recovery).  Source it after
# lib.sh and nt_init.  Every acknowledged message is recorded in a file
# $T/acked.* as "ID CID" lines (tests/tools/loadgen.py --acked); the checks
# compare those with the nodes' histories (tests/tools/ackcheck.py).
# shellcheck shell=bash disable=SC2034,SC2317,SC2119,SC2120

# lg ID PREFIX [loadgen args]: run loadgen against node ID in the
# foreground; acks go to $T/acked.PREFIX.
lg() {
	local id=$1 prefix=$2
	shift 2
	timeout 60 "$NT_PYTHON" "$NT_TOOLS/loadgen.py" "${NT_ADDR[$id]}" "$P" \
	    --sender "lg$id" --prefix "$prefix" --acked "$T/acked.$prefix" "$@"
}

# lg_bg ID PREFIX [loadgen args]: the same in the background; its pid is
# appended to LG_PIDS and left in LG_PID, its stderr in $T/lg.PREFIX.out.
LG_PIDS=()
lg_bg() {
	local id=$1 prefix=$2
	shift 2
	: >>"$T/acked.$prefix"
	nt_bg "$T/lg.$prefix.out" timeout 60 "$NT_PYTHON" "$NT_TOOLS/loadgen.py" \
	    "${NT_ADDR[$id]}" "$P" --sender "lg$id" --prefix "$prefix" \
	    --acked "$T/acked.$prefix" "$@"
	LG_PID=$NT_BG_PID
	LG_PIDS+=("$NT_BG_PID")
}

# lg_wait SECS PID...: wait for loadgens to end (SECS at most); 0 when every
# one exited 0.  A loadgen still running after SECS is killed (by pid).
lg_wait() {
	local secs=$1 pid rc=0 st
	shift
	for pid in "$@"; do
		if ! wait_until "$secs" nt_pid_gone "$pid"; then
			echo "# loadgen $pid still runs after ${secs}s: killing it"
			kill -TERM "$pid" 2>/dev/null
			rc=1
		fi
		wait "$pid"
		st=$?
		[ "$st" -eq 0 ] || { echo "# loadgen $pid exited $st"; rc=1; }
	done
	return "$rc"
}

# acked_n [PREFIX...]: how many acks were recorded (all files by default).
acked_n() {
	local f n=0 files=()
	if [ $# -eq 0 ]; then
		files=("$T"/acked.*)
	else
		for f in "$@"; do files+=("$T/acked.$f"); done
	fi
	for f in "${files[@]}"; do
		[ -f "$f" ] && n=$((n + $(wc -l <"$f")))
	done
	echo "$n"
}

# snap ID...: save each node's history in $T/hist.ID.
snap() {
	local id
	for id in "$@"; do
		nt_history "$id" >"$T/hist.$id.tmp" || return 1
		mv "$T/hist.$id.tmp" "$T/hist.$id"
	done
}

_ack_files() {
	local f
	for f in "$T"/acked.*; do
		[ -f "$f" ] && printf -- '--acked\n%s\n' "$f"
	done
}

# ackcheck [ackcheck.py args]: ackcheck.py with every $T/acked.* file.
ackcheck() {
	local args=()
	mapfile -t args < <(_ack_files)
	"$NT_PYTHON" "$NT_TOOLS/ackcheck.py" "${args[@]}" "$@"
}

# all_present ID...: every acked message is in each node's history now.
all_present() {
	local id hs=()
	snap "$@" || return 1
	for id in "$@"; do hs+=("$T/hist.$id"); done
	ackcheck --present-only --quiet "${hs[@]}"
}

# present_in "PREFIX..." ID...: every message acked for these PREFIXes
# (files $T/acked.PREFIX) is in each node's history now.
present_in() {
	local pre=$1 id f hs=() args=()
	shift
	snap "$@" || return 1
	for id in "$@"; do hs+=("$T/hist.$id"); done
	for f in $pre; do args+=(--acked "$T/acked.$f"); done
	"$NT_PYTHON" "$NT_TOOLS/ackcheck.py" "${args[@]}" --present-only --quiet "${hs[@]}"
}

# converged ID...: all_present, and the histories are identical, in the
# cluster order, gap-free and without duplicates.
converged() {
	local id hs=()
	snap "$@" || return 1
	for id in "$@"; do hs+=("$T/hist.$id"); done
	ackcheck --quiet "${hs[@]}"
}

# check_converged SECS ID...: wait up to SECS for converged, then report
# (with ackcheck's reasons when it did not) as one check.
check_converged() {
	local secs=$1 t0 ms
	shift
	t0=$(_nt_ms)
	if wait_until "$secs" converged "$@"; then
		ms=$(( $(_nt_ms) - t0 ))
		_nt_ok "$* converged within ${secs}s (${ms} ms): $(acked_n) acked messages on every node, identical histories ($(nt_json count <"$T/hist.$1") messages), cluster order, no gaps, no duplicates"
		return 0
	fi
	_nt_notok "$* converged within ${secs}s with every acked message"
	converged "$@" 2>&1 | sed 's/^/#   /'
	return 1
}

# workers_gone PID...: none of these processes runs (a zombie counts as
# gone).
workers_gone() {
	local p
	for p in "$@"; do
		nt_pid_gone "$p" || return 1
	done
}

# kill9_node ID: nt_kill9 the master, then check that its workers (its
# children before the kill) exit on their own, having lost the channel.
kill9_node() {
	local id=$1 kids
	kids=$(nt_children "$(nt_pid "$id")")
	check_eq "$id runs two workers before kill -9" 2 "$(wc -w <<<"$kids")"
	nt_kill9 "$id"
	# shellcheck disable=SC2086
	check "kill -9 $id's master: its workers ($(tr '\n' ' ' <<<"$kids")) exit within 5 s" \
	    wait_until 5 workers_gone $kids
}

# set_fsync POLICY [FILE]: the fsync line (line 3) of a config written by
# nt_write_conf.
set_fsync() {
	sed -i "3s/.*/fsync = \"$1\";/" "${2:-$T/nodetalk.conf}"
}
