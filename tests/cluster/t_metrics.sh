#!/bin/bash
# t_metrics.sh: /metrics as a Prometheus user reads it.  The text passes a
# strict reader of the exposition format (tests/tools/promtext.py: HELP and
# TYPE for every family, _total counters, base units, well-formed
# histograms, no series twice), and the numbers are true:
#  - the channel latency of N chats sent one after the other sums to less
#    than the time they took, and counts N;
#  - nodetalk_build_info carries the version nodetalkd -V prints;
#  - process_start_time_seconds falls between the start and the ready of
#    the master; its resident memory and open descriptors are what /proc
#    and ps say; each worker's too, and a restarted worker's start time
#    moves;
#  - error frames sent to clients are counted by code;
#  - replication is counted by peer, in a peer label.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init metrics

# prom CMD ID ARGS...: tests/tools/promtext.py against ID's /metrics.
prom() {
	local cmd=$1 id=$2
	shift 2
	timeout 20 "$NT_PYTHON" "$NT_TOOLS/promtext.py" "$cmd" \
	    "http://${NT_ADDR[$id]}:$P/metrics" "$@"
}

t_before=$(_nt_ms)
nt_start A
t_ready=$(_nt_ms)
for id in B C; do
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

# --- build and process ---------------------------------------------------------------

check_eq "nodetalk_build_info has the version of nodetalkd -V" \
    "$("$NT_DAEMON" -V | sed 's/^nodetalkd //')" \
    "$(prom series A nodetalk_build_info | sed -n 's/^version=\(.*\) 1$/\1/p')"
start=$(prom get A process_start_time_seconds)
check "process_start_time_seconds ($start) is between the start ($t_before ms) and the ready ($t_ready ms)" \
    "$NT_PYTHON" -c 'import sys; s, a, b = float(sys.argv[1]) * 1000, int(sys.argv[2]), int(sys.argv[3]); sys.exit(not a - 1 <= s <= b + 1)' \
    "$start" "$t_before" "$t_ready"
master=$(nt_pid A)
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }
check_eq "process_open_fds is the master's count in /proc" "$(fds "$master")" \
    "$(prom get A process_open_fds)"
# within_pct A B PCT: A and B differ by at most PCT percent of B.
within_pct() {
	"$NT_PYTHON" -c 'import sys; a, b, p = map(float, sys.argv[1:]); sys.exit(not abs(a - b) <= b * p / 100)' "$@"
}
rss_ps() { echo $(( $(ps -o rss= -p "$1") * 1024 )); }
check "process_resident_memory_bytes is the master's RSS as ps says it (within 20%)" \
    within_pct "$(prom get A process_resident_memory_bytes)" "$(rss_ps "$master")" 20
check_match "process_max_fds is there" '^[1-9][0-9]*$' "$(prom get A process_max_fds)"
check_match "process_cpu_seconds_total is there" '^[0-9.e-]+$' "$(prom get A process_cpu_seconds_total)"
peerw=$(nt_worker_pid A peer)
check_eq "nodetalk_worker_open_fds{worker=peer} is the peer worker's count in /proc" \
    "$(fds "$peerw")" "$(prom get A nodetalk_worker_open_fds worker=peer)"
wsw=$(nt_worker_pid A ws)
check "nodetalk_worker_resident_memory_bytes{worker=ws} is its RSS as ps says it (within 20%)" \
    within_pct "$(prom get A nodetalk_worker_resident_memory_bytes worker=ws)" "$(rss_ps "$wsw")" 20
ws_start=$(prom get A nodetalk_worker_start_time_seconds worker=ws)
mark=$(nt_log_mark A)
t_kill=$(_nt_ms)
kill -KILL "$wsw"
ws_restarted() { [ -n "$(nt_worker_pid A ws "$mark")" ]; }
check "the ws worker is restarted" wait_until 10 ws_restarted
check "A serves /metrics again" wait_until 10 prom get A nodetalk_worker_restarts_total worker=ws
check_eq "nodetalk_worker_restarts_total{worker=ws} is 1" 1 \
    "$(prom get A nodetalk_worker_restarts_total worker=ws)"
ws_start2=$(prom get A nodetalk_worker_start_time_seconds worker=ws)
check "the new ws worker's start time ($ws_start2) is after the kill ($t_kill ms) and the old one's ($ws_start)" \
    "$NT_PYTHON" -c 'import sys; n, k, o = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]); sys.exit(not (n * 1000 >= k and n > o))' \
    "$ws_start2" "$t_kill" "$ws_start"

# --- error frames, by code ----------------------------------------------------------------

H=${NT_ADDR[A]}
long=$(printf 'y%.0s' $(seq 4097))
wsclient raw "$H" "$P" "{\"type\":\"chat\",\"from\":\"x\",\"text\":\"$long\"}" --wait 5 --count 1 >/dev/null
wsclient raw "$H" "$P" '{"type":' 'not json' --wait 5 --count 2 >/dev/null
check_eq "nodetalk_client_errors_total{code=too_long}" 1 \
    "$(prom get A nodetalk_client_errors_total code=too_long)"
check_eq "nodetalk_client_errors_total{code=bad_json}" 2 \
    "$(prom get A nodetalk_client_errors_total code=bad_json)"
check_eq "/status says the same" '{"bad_json": 2, "too_long": 1}' \
    "$("$NT_PYTHON" -c 'import json, sys, urllib.request; print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1]))["client_errors"], sort_keys=True))' "http://$H:$P/status")"

# --- replication, by peer --------------------------------------------------------------

for i in 1 2 3; do
	nt_send B bob "from B $i" >/dev/null
done
check "A stores B's three messages" wait_until 10 nt_has_texts A "from B 1" "from B 2" "from B 3"
check "C stores them" wait_until 10 nt_has_texts C "from B 1" "from B 2" "from B 3"
check_eq "A: nodetalk_messages_replicated_in_total{peer=B}" 3 \
    "$(prom get A nodetalk_messages_replicated_in_total peer=B)"
check_eq "A: nodetalk_messages_replicated_in_total{peer=C}" 0 \
    "$(prom get A nodetalk_messages_replicated_in_total peer=C)"
check_eq "C: nodetalk_messages_replicated_in_total{peer=B}" 3 \
    "$(prom get C nodetalk_messages_replicated_in_total peer=B)"
for p in A C; do
	check "B: nodetalk_messages_replicated_out_total{peer=$p} counts at least the 3" \
	    test "$(prom get B nodetalk_messages_replicated_out_total peer=$p)" -ge 3
done
check_fail "no replication counter without a peer label" \
    prom get B nodetalk_messages_replicated_out_total
for id in A B C; do
	out=$(prom check "$id")
	check_match "$id's /metrics still passes the strict format check" '^ok: ' "$out"
done

nt_finish
