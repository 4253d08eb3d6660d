#!/bin/bash
# t_nats.sh: engine = "nats" against a real JetStream cluster: three
# nats-server processes on 127.0.0.1-3 (configs written here) and three
# gateways A, B, C.  One NATS cluster serves every check:
#   - the same messages in the same order on every gateway (the stream's);
#   - acked means stored: a gateway that lost its whole cache reads every
#     acknowledged message back from the stream;
#   - a retry with the same id, on any gateway, even at the same moment on
#     all three, is one message, and every ack names it;
#   - one NATS server killed -9 under load loses nothing acknowledged;
#   - a gateway killed -9 resumes from its last sequence;
#   - every NATS server down: chats get "unavailable" (never an ack),
#     history is still served, /status and /metrics say so; NATS back,
#     everything goes on by itself.
# Skipped (with its reason) without nats-server; under CI=true a skip fails.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_init nats
nt_need_websockets
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"
# shellcheck source=natslib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/natslib.sh"
nats_need

# A mesh node's log is no copy of the stream: a gateway refuses it.  (A
# one-node mesh: a node with an empty log and peers waits for them.)
NT_NODES=(A)
nt_write_conf
nt_start A
check_eq "a one-node mesh takes a chat" "sent A-1" \
    "$(nt_send A alice "a mesh message")"
nt_stop A
NT_NODES=(A B C)
nats_init --set 'timeout_ms = 2000;'
timeout 10 "$NT_DAEMON" -c "$T/nodetalk.conf" -n A >"$T/refused.out" 2>&1
check_eq "a gateway on a mesh node's data_dir exits 1" 1 "$?"
check "... and says why" grep -qF "holds messages of origin A: it is not a copy of stream nodetalk" "$T/refused.out"
rm -rf "$T/A"
mkdir "$T/A"

nats_start 1 2 3

for id in A B C; do
	nt_start "$id"
done
wait_linked 20 A B C
for id in A B C; do
	check_log "$id" "[$id] Ready. Peers: []"
	check_log "$id" "[$id] Connected to NATS at nats://127.0.0."
	check_log "$id" "[$id] Reading stream nodetalk from sequence 1"
done
check_eq "one gateway created the stream" 1 \
    "$(cat "$T"/[ABC].log | grep -c 'created stream nodetalk (subject nodetalk.nodetalk, 3 replicas)')"
check_eq "/status names the engine" nats "$(gw_status A engine)"
check_eq "/status: the stream has 3 replicas" 3 "$(gw_status B nats.replicas)"
check_match "/status: the second worker is the nats worker" '^[1-9][0-9]*$' \
    "$(gw_status C workers.nats.pid)"

# --- one order ---------------------------------------------------------------

out=$(nt_send A alice "first through the stream")
check_eq "nodetalk --text to A prints the stream's identity" "sent nodetalk-1" "$out"
LG_PIDS=()
for id in A B C; do
	lg_bg "$id" "order$id" --count 150 --window 8
done
check "three concurrent loadgens (A, B, C) finished, exit 0" \
    lg_wait 60 "${LG_PIDS[@]}"
check_eq "450 chats acknowledged" 450 "$(acked_n orderA orderB orderC)"
check_converged 15 A B C
check "the ids are nodetalk-1 ... nodetalk-451, in that order, on A" \
    eval '[ "$(nt_json get id <"$T/hist.A" | tr "\n" " ")" = "$(for i in $(seq 1 451); do printf "nodetalk-%s " "$i"; done)" ]'
check "every message names the gateway that took it" \
    eval '[ "$(nt_json get gateway <"$T/hist.B" | sort -u | tr "\n" " ")" = "A B C " ]'

# The operators' views of the gateways.
out=$(timeout 15 "$NT_CLIENT" --server-host "${NT_ADDR[A]}" --port "$P" --status)
check_match "nodetalk --status: B found through A, its NATS link up" \
    "B +127\.0\.0\.2:$P +451 +451 +[0-9]+ +nats up \(lag 0, N[123] leads\)" "$out"
out=$(NT_LOCAL_BIN="$NT_DAEMON" NT_ENV=/dev/null timeout 30 \
    "$NT_SRCDIR/contrib/nt-status" --direct -c "$T/nodetalk.conf" 2>&1)
check_match "nt-status: C up, with its link to NATS and its lag" \
    "C +up +messages=451 clients=[0-9]+ nats=up lag=0" "$out"

# --- acked means stored --------------------------------------------------------

# C forgets everything it had: what it reads back is what the stream holds.
nt_stop C
rm -rf "$T/C"
mkdir "$T/C"
mark=$(nt_log_mark C)
nt_start C
check_log C "[C] Reading stream nodetalk from sequence 1" "$mark"
check_converged 20 A B C

# --- a retry is one message, on any gateway ---------------------------------------

r1=$(wsclient send "${NT_ADDR[A]}" "$P" carol "retried" --id retry-1 | nt_json get id)
r2=$(wsclient send "${NT_ADDR[B]}" "$P" carol "retried" --id retry-1 | nt_json get id)
check_match "a chat with id retry-1 is acked by A" '^nodetalk-[0-9]+$' "$r1"
check_eq "the same chat retried on B is acked with A's identity" "$r1" "$r2"
"$NT_PYTHON" "$NT_TOOLS/sameid.py" "$P" 127.0.0.1 127.0.0.2 127.0.0.3 \
    --prefix same --count 20 >"$T/sameid.out" 2>"$T/sameid.err"
check_eq "20 ids sent to A, B and C at the same moment: every one acked by all three" \
    0 "$?"
check "each of those ids was acked with one identity on all three gateways" \
    "$NT_PYTHON" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if len(rows) == 20 and all(len(set(r["acks"].values())) == 1
         and None not in r["acks"].values() for r in rows) else 1)' "$T/sameid.out"
check_converged 15 A B C
for id in A B C; do
	check "$id holds retry-1 and each same-N once" eval \
	    '[ "$(nt_json get client_id <"$T/hist.'"$id"'" | grep -cE "^(retry-1|same-[0-9]+)$")" = 21 ]'
done
dedup=0
for id in A B C; do
	dedup=$((dedup + $(gw_metric "$id" nodetalk_nats_deduplicated_total)))
	dedup=$((dedup + $(gw_metric "$id" nodetalk_client_retries_total)))
done
check_eq "41 of those 62 chats were answered as retries (by JetStream or the cache)" \
    41 "$dedup"

# --- one NATS server killed -9 under load -----------------------------------------

leader=$(gw_status A nats.leader)
nt_note "the stream's leader is $leader"
victim=${leader#N}
[[ $victim =~ ^[123]$ ]] || victim=1
stop="$T/stop.kill"
LG_PIDS=()
for id in A B C; do
	lg_bg "$id" "kill$id" --stop-file "$stop" --window 4 --timeout 40 \
	    --retry-code unavailable
done
check "acks flow before the kill" wait_until 10 eval '[ "$(acked_n killA killB killC)" -gt 30 ]'
nats_kill9 "$victim"
nt_note "killed NATS server N$victim (the stream's leader) with SIGKILL"
n0=$(acked_n killA killB killC)
check "acks flow again after N$victim died" \
    wait_until 20 eval '[ "$(acked_n killA killB killC)" -gt $((n0 + 30)) ]'
touch "$stop"
check "the loadgens finished, exit 0 (unavailable answers retried)" \
    lg_wait 20 "${LG_PIDS[@]}"
nt_note "retried after unavailable: $(grep -ho 'retried [0-9]*' "$T"/lg.kill*.out | tr '\n' ' ')"
check_converged 20 A B C
nats_start "$victim"

# --- a gateway killed -9 resumes ---------------------------------------------------

kill9_node B
have=$(nt_json count <"$T/hist.B")
LG_PIDS=()
lg_bg A whileBdown --count 50 --window 4
check "50 chats acked by A while B was down" lg_wait 30 "$LG_PID"
mark=$(nt_log_mark B)
nt_start B
check_log B "[B] Reading stream nodetalk from sequence $((have + 1))" "$mark"
check_converged 20 A B C

# --- every NATS server down, then back ------------------------------------------------

nats_kill9 1 2 3
check "A says it lost NATS (/status nats.connected false)" \
    wait_until 10 eval '[ "$(gw_status A nats.connected)" = false ]'
out=$(wsclient send "${NT_ADDR[A]}" "$P" dave "while NATS is down" --id down-1)
check_eq "a chat with NATS down: error code unavailable" unavailable \
    "$(nt_json get code <<<"$out")"
check "... and never an ack" eval '! grep -q "\"ack\"" <<<"$out"'
check_eq "/metrics: nodetalk_nats_connected 0" 0 "$(gw_metric A nodetalk_nats_connected)"
before=$(nt_json count <"$T/hist.C")
check_eq "history is still served by C, complete" "$before" "$(nt_count C)"
sleep 2.1	# past timeout_ms: from now on a chat is refused at once
t0=$(_nt_ms)
out=$(timeout 15 "$NT_CLIENT" --server-host "${NT_ADDR[B]}" --port "$P" \
    --sender dave --text "still down" --id down-2 2>&1)
rc=$?
ms=$(( $(_nt_ms) - t0 ))
check "NATS down for longer than timeout_ms: nodetalk exits 1 with unavailable" \
    test "$rc" = 1 -a -n "$(grep -F 'server error unavailable' <<<"$out")"
check "... answered at once (${ms} ms, under timeout_ms 2000)" test "$ms" -lt 1500
nats_start 1 2 3
wait_linked 30 A B C
check "a chat goes through again once NATS is back" \
    wait_until 20 nt_send C erin "NATS is back"
check_converged 20 A B C
check "no message from while NATS was down was stored" \
    eval '! grep -qE "\"(down-1|down-2)\"" "$T/hist.A"'
check_eq "/metrics: nodetalk_nats_connected 1" 1 "$(gw_metric A nodetalk_nats_connected)"

nt_finish
