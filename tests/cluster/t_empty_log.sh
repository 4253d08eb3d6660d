#!/bin/bash
# t_empty_log.sh: a node that lost its whole log (a new disk, a wrong
# data_dir) must not number chats from A-1 again while its peers hold A's
# messages: they would drop the new ones as duplicates and the histories
# would differ for good.  It waits, in "recovering", until every peer has
# said what it holds, gets its own messages back, and numbers the next chat
# after them.  The wait survives a crash (data_dir/recovering); chats sent
# meanwhile are held and numbered once it ends (or answered "recovering"
# after 5 s); /status and the log name the peers it waits for; a reload
# that removes a peer gone for good ends it; a node without peers never
# waits.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init empty_log
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"

status() { curl -fsS --max-time 2 "http://${NT_ADDR[$1]}:$P/status"; }
# waits_for ID: the peers /status says ID's recovery waits for ("B C").
waits_for() {
	status "$1" | "$NT_PYTHON" -c '
import json, sys
s = json.load(sys.stdin)
print(" ".join(s["recovery"]["waiting_for"]) if s["recovering"] else "-")'
}
waits_for_is() { [ "$(waits_for "$1")" = "$2" ]; }
recovering() { status "$1" | grep -q '"recovering":true'; }
# wipe ID: a new, empty disk.
wipe() { rm -rf "${T:?}/$1" && mkdir -p "$T/$1"; }

for id in A B C; do
	nt_start "$id"
done
wait_peers
lg A a1 --count 3 2>/dev/null
check "A-1..A-3 everywhere" wait_until 10 present_in a1 A B C
# A-4 and A-5 reach C only.
nt_stop B
lg A a2 --count 2 2>/dev/null
check_eq "two more chats to A, acknowledged" 2 "$(acked_n a2)"
check "C holds them" wait_until 10 present_in a2 C

# A loses its disk; B comes back, C is down.
nt_stop A
nt_stop C
wipe A
nt_start B
mark=$(nt_log_mark A)
nt_start A
check_log A "the log is empty: chats wait until B, C have said what they hold of A's messages (to stop waiting for a peer that is gone for good, remove it from nodes and reload)" "$mark"
check "A gets A-1..A-3 back from B" wait_until 10 present_in a1 A
check_log A "recovering: still waiting for C" "$mark"
check_eq "/status: A is recovering, waiting for C" C "$(waits_for A)"
check_match "/status: the reason and how the wait ends" \
    '"reason":"the log is empty".*"ends":"when every peer.*remove it from nodes and reload' \
    "$(status A)"
out=$(wsclient send 127.0.0.1 "$P" early "too early" 2>&1)
check_match "a chat waits 5 s, then A answers it as recovering" \
    '"code": *"recovering"' "$out"

# A crash does not end the wait, though the log is no longer empty.
nt_kill9 A
mark=$(nt_log_mark A)
nt_start A
check_log A "a recovery was under way when the node stopped: chats wait until B, C have said" "$mark"
check "after the crash, A waits for C again" wait_until 10 waits_for_is A C

# A chat sent now is held, and numbered once C has been heard.
nt_bg "$T/held.out" "$NT_CLIENT" --server-host 127.0.0.1 --port "$P" \
    --sender held --text "held until recovered"
held=$NT_BG_PID
nt_start C
check_log A "every peer has been heard from and A-5 is the last of our messages; taking chats again" "$mark"
check "the held chat is acknowledged" wait_until 10 nt_pid_gone "$held"
check_eq "the held chat follows A-5: A-6" "sent A-6" "$(cat "$T/held.out")"
check_eq "the next chat is A-7" "sent A-7" "$(nt_send A after "after recovery")"
check_eq "/status: A is no longer recovering" - "$(waits_for A)"
wait_peers
check_converged 15 A B C
for t in "held until recovered" "after recovery"; do
	check_eq "\"$t\" once on B" 1 "$(nt_texts B | grep -cxF "$t")"
done

# A reload that removes a peer gone for good ends the wait.
nt_stop A
nt_stop C
wipe A
mark=$(nt_log_mark A)
nt_start A
check "A waits for C" wait_until 10 waits_for_is A C
NT_NODES=(A B)
nt_write_conf
kill -HUP "$(nt_pid A)"
check_log A "every peer has been heard from and A-7 is the last of our messages" "$mark"
check_eq "with C removed, A numbers A-8" "sent A-8" "$(nt_send A after "without C")"

# A node without peers has nobody to wait for.
NT_NODES=(A)
nt_write_conf --file "$T/alone.conf"
sed -i "s|$T/A|$T/alone|" "$T/alone.conf"
mkdir -p "$T/alone"
nt_stop A
mark=$(nt_log_mark A)
nt_start A -c "$T/alone.conf"
check_eq "alone, with an empty log: A-1 at once" "sent A-1" \
    "$(nt_send A alone "first words")"
check_nolog A "chats wait until" "$mark"
check_fail "alone: /status says not recovering" recovering A

nt_finish
