#!/bin/bash
# t_metrics.sh: /metrics as a Prometheus user reads it.  The text passes a
# strict reader of the exposition format (tests/tools/promtext.py: HELP and
# TYPE for every family, _total counters, base units, well-formed
# histograms, no series twice), and the numbers are true: the channel
# latency of N chats sent one after the other sums to less than the time
# they took, and counts N.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_init metrics

# prom CMD ID ARGS...: tests/tools/promtext.py against ID's /metrics.
prom() {
	local cmd=$1 id=$2
	shift 2
	timeout 20 "$NT_PYTHON" "$NT_TOOLS/promtext.py" "$cmd" \
	    "http://${NT_ADDR[$id]}:$P/metrics" "$@"
}

for id in A B C; do
	nt_start "$id"
done
wait_peers

out=$(prom check A)
check_match "A's /metrics passes the strict format check" '^ok: ' "$out"
printf '%s\n' "$out" | sed 's/^/#   /'

# --- nodetalk_channel_seconds: one true sample per chat ------------------------

n=5
t0=$(_nt_ms)
for i in $(seq "$n"); do
	nt_send A alice "chat $i" >/dev/null || nt_fatal "nodetalk could not send chat $i"
done
elapsed_ms=$(( $(_nt_ms) - t0 ))
check_eq "nodetalk_channel_seconds_count counts the $n chats" "$n" \
    "$(prom get A nodetalk_channel_seconds_count)"
sum=$(prom get A nodetalk_channel_seconds_sum)
# Each chat went from the ws worker to the master while its nodetalk ran,
# and they ran one after the other: the latencies sum to less than that.
check "nodetalk_channel_seconds_sum ($sum s) is below the $elapsed_ms ms the chats took" \
    "$NT_PYTHON" -c 'import sys; sys.exit(not 0 <= float(sys.argv[1]) * 1000 <= int(sys.argv[2]))' \
    "$sum" "$elapsed_ms"

nt_finish
