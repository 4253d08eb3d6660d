#!/bin/bash
# t_powercut.sh: a power cut, not just kill -9.  A node runs with
# tests/tools/powercut.so preloaded, which records what each fsync(2) and
# fdatasync(2) made durable in its data_dir.  A "power cut" kills every
# process of the node at once while a client sends, then truncates each
# file to what was synced: what the disk holds after a machine crash.
#  1. fsync = "always" and "batch": every acknowledged message survives.
#  2. fsync = "none": acknowledged messages can be lost (shown), and the
#     node still never gives a lost message's identity to a new one: a
#     chat sent to it as it comes back, while its peer is away, waits until
#     it has its messages back from the peer (after a cut to an empty log,
#     and after a cut to a log that ended cleanly before).
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
SHIM="$NT_BUILDDIR/tests/tools/powercut.so"
[ -f "$SHIM" ] || nt_fatal "$SHIM is not built (make check builds it)"
NT_NODES=(A B)
nt_init powercut
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"

# An ASan build must find its runtime first; the shim does not mind.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

# start_shimmed ID [args]: nt_start under the shim.
start_shimmed() {
	local id=$1 f
	shift
	# What the data_dir holds now is on the disk (a clean stop synced
	# it, or a cut left just that).
	: >"$T/$id.synced"
	for f in "$T/$id"/*; do
		[ -f "$f" ] && echo "$(stat -c %s "$f") $f" >>"$T/$id.synced"
	done
	LD_PRELOAD="$SHIM" NT_POWERCUT_DIR="$T/$id/" \
	    NT_POWERCUT_LOG="$T/$id.synced" nt_start "$id" "$@"
}

# powercut ID: SIGKILL the node's master and workers at once, then cut
# every file in its data_dir to its last synced size.  Leaves in CUT how
# many bytes of the log were lost.
powercut() {
	local id=$1 pids f size log="$T/$1/messages.log"
	pids="$(nt_pid "$id") $(nt_children "$(nt_pid "$id")" | tr '\n' ' ')"
	# shellcheck disable=SC2086
	kill -KILL $pids
	nt_kill9 "$id"
	# shellcheck disable=SC2086
	wait_until 5 workers_gone $pids
	CUT=0
	for f in "$T/$id"/*; do
		[ -f "$f" ] || continue
		size=$(awk -v f="$f" '$2 == f { s = $1 } END { print s + 0 }' \
		    "$T/$id.synced")
		[ "$f" != "$log" ] || CUT=$(( $(stat -c %s "$f") - size ))
		truncate -s "$size" "$f"
	done
	nt_note "power cut on $id: its log lost $CUT bytes written but not synced"
}

# load ID PREFIX: a client that sends to ID until the node dies.
load() {
	lg_bg "$1" "$2" --window 20 --timeout 30
}
acks_ge() { [ "$(acked_n "$1")" -ge "$2" ]; }

# 1. always and batch: nothing acknowledged is lost, round after round.
# A alone (a node without peers never waits to hear them).
NT_NODES=(A)
nt_write_conf --file "$T/alone.conf"
NT_NODES=(A B)
for pol in always batch; do
	set_fsync "$pol" "$T/alone.conf"
	for round in 1 2; do
		start_shimmed A -c "$T/alone.conf"
		load A "$pol$round"
		check "$pol round $round: acknowledgements come" \
		    wait_until 10 acks_ge "$pol$round" 200
		powercut A
		lg_wait 10 "$LG_PID"
		nt_start A -c "$T/alone.conf"
		check "$pol round $round: all $(acked_n "$pol$round") acknowledged messages survive the cut" \
		    present_in "$pol$round" A
		nt_stop A
	done
done
rm -f "$T"/acked.*

# 2. none: A (none, shimmed) and B (batch).  Two rounds: the cut takes A's
# log back to empty, then to where a clean stop left it; both times the
# "running" file says the last run did not stop cleanly.
nt_write_conf
cp "$T/nodetalk.conf" "$T/none.conf"
set_fsync none "$T/none.conf"
rm -rf "${T:?}/A" "${T:?}/B" && mkdir -p "$T/A" "$T/B"
nt_start B
for round in 1 2; do
	mark=$(nt_log_mark A)
	start_shimmed A -c "$T/none.conf"
	wait_peers
	lg A "none$round" --count 40 --window 10 2>/dev/null
	check "none round $round: B holds A's 40 acknowledged messages" \
	    wait_until 10 present_in "none$round" B
	last=$(tail -n 1 "$T/acked.none$round" | cut -d' ' -f1)
	powercut A
	check "none round $round: the cut took acknowledged messages off A's disk" \
	    test "$CUT" -gt 0
	# A comes back while B is away, and a client sends to it at once.
	nt_stop B
	mark=$(nt_log_mark A)
	nt_start A -c "$T/none.conf"
	check_log A "the node did not stop cleanly, and with fsync = \"none\" acknowledged messages may not have reached the disk: chats wait until B has said what it holds of A's messages" "$mark"
	nt_bg "$T/held$round.out" "$NT_CLIENT" --server-host 127.0.0.1 \
	    --port "$P" --sender after --text "after the cut $round"
	held=$NT_BG_PID
	nt_start B
	check_log A "every peer has been heard from and $last is the last of our messages" "$mark"
	check "none round $round: the chat is acknowledged" \
	    wait_until 10 nt_pid_gone "$held"
	check_eq "none round $round: it follows $last, the last acknowledged before the cut" \
	    "sent A-$(( ${last#A-} + 1 ))" "$(cat "$T/held$round.out")"
	check_converged 15 A B
	# A clean stop syncs: round 2's cut goes back to here.
	nt_stop A
done
nt_finish
