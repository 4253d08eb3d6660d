#!/bin/bash
# t_history.sh: history that scales (join_history, history pages, the
# index of the log).  Three nodes with join_history = 50 hold 130 messages
# of all three origins.
#  1. A join without since gets the newest 50, in the cluster order, and
#     "joined" says older ones exist; history pages of 40 back from the
#     oldest held bring the other 80, each page oldest first and just
#     before the last, the last saying no older exist: together exactly
#     the node's history, each message once.
#  2. A join whose since covers everything gets no chat, older false.
#  3. history without before: the newest; bad requests get bad_field.
#  4. nodetalk's interactive chat: /more pages back to the first message.
#  5. join_history = 0 (a reload): a join without since gets every message.
#  6. Restarts: with the index file (messages.idx, one 48-byte entry per
#     record), without it, and with it torn: the same history each time,
#     and the file is whole again after a clean stop.
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init history
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"

nt_write_conf --set "join_history = 50;"
for id in A B C; do nt_start "$id"; done
wait_peers
lg A ha --count 60 --window 10 2>/dev/null
lg B hb --count 40 --window 10 2>/dev/null
lg C hc --count 30 --window 10 2>/dev/null
check_eq "130 messages acknowledged" 130 "$(acked_n)"
check_converged 20 A B C
nt_ids B >"$T/all.ids"

# 1. The newest 50, then pages of 40 back to the first.
wsclient pages 127.0.0.2 "$P" --limit 40 >"$T/pages.out"
check_eq "pages: the client ended cleanly" 0 $?
fr() { nt_json where "$@" <"$T/pages.out"; }
check_eq "join without since: joined count 50, older true" "50 true" \
    "$(fr type=joined | nt_json get count) $(fr type=joined | nt_json get older)"
check_eq "join without since: the newest 50 of the history" \
    "$(tail -n 50 "$T/all.ids")" "$(fr type=chat page=0 | nt_json get id)"
check_eq "pages: two history_end, 40 with older, then 40 without" \
    "40 true,40 false," \
    "$(fr type=history_end | while read -r l; do
	echo "$(nt_json get count <<<"$l") $(nt_json get older <<<"$l")"; done | tr '\n' ,)"
check_eq "page 1: the 40 just before the join's first, oldest first" \
    "$(sed -n 41,80p "$T/all.ids")" "$(fr type=chat page=1 | nt_json get id)"
check_eq "page 2: the first 40" \
    "$(sed -n 1,40p "$T/all.ids")" "$(fr type=chat page=2 | nt_json get id)"
check "pages: every chat a stored chat frame" \
    nt_json check-chats < <(fr page=2 type=chat; fr page=1 type=chat; fr page=0 type=chat)

# 2. A join whose since covers everything: nothing to send.
since=$(nt_history B | "$NT_PYTHON" -c '
import json, sys
h = {}
for l in sys.stdin:
    f = json.loads(l)
    h[f["origin"]] = max(h.get(f["origin"], 0), f["seq"])
print(json.dumps(h))')
wsclient raw 127.0.0.2 "$P" "{\"type\":\"join\",\"from\":\"x\",\"since\":$since}" \
    --count 1 --wait 5 >"$T/since.out"
check_eq "join with since covering all: joined count 0, older false" \
    "joined 0 false" \
    "$(nt_json get type <"$T/since.out") $(nt_json get count <"$T/since.out") $(nt_json get older <"$T/since.out")"

# 3. history without before; malformed requests.
wsclient raw 127.0.0.3 "$P" '{"type":"history","limit":5}' --count 6 --wait 5 \
    >"$T/newest.out"
check_eq "history without before: the newest 5, then history_end 5 older" \
    "$(tail -n 5 "$T/all.ids") history_end 5 true" \
    "$(nt_json where type=chat <"$T/newest.out" | nt_json get id) $(nt_json where type=history_end <"$T/newest.out" | nt_json get type) $(nt_json where type=history_end <"$T/newest.out" | nt_json get count) $(nt_json where type=history_end <"$T/newest.out" | nt_json get older)"
for bad in 'bad_field {"type":"history","before":"A-1"}' \
    'missing_field {"type":"history","before":{"origin":"A"}}' \
    'bad_field {"type":"history","before":{"origin":"A","seq":0}}' \
    'bad_field {"type":"history","limit":-1}'; do
	check_eq "bad history request ${bad#* }: ${bad%% *}" "${bad%% *}" \
	    "$(wsclient raw 127.0.0.1 "$P" "${bad#* }" --count 1 --wait 5 | nt_json get code)"
done

# 4. The interactive client pages back with /more (default page 100).
printf '/more\n/more\n/quit\n' | timeout 20 "$NT_CLIENT" --server-host 127.0.0.1 \
    --port "$P" --sender pager >"$T/more.out" 2>"$T/more.err"
check_eq "nodetalk /more: exit 0" 0 $?
check_eq "nodetalk /more: 130 messages printed, each once" "130 130" \
    "$(grep -c '^\[' "$T/more.out") $(grep '^\[' "$T/more.out" | sort -u | wc -l)"
check_eq "nodetalk /more: its notes" \
    "-- older messages: /more --,-- 80 older messages above, the first stored --,-- no older messages --," \
    "$(grep '^--' "$T/more.out" | tr '\n' ,)"
first=$(grep -n -m1 'older messages above' "$T/more.out" | cut -d: -f1)
check_eq "nodetalk /more: the page is the 80 oldest, in order" \
    "$(nt_texts A | sed -n 1,80p)" \
    "$(sed -n "$((52)),$((first - 1))p" "$T/more.out" | sed 's/^\[[^]]*\] [^:]*: //')"

# 5. join_history = 0: everything.
nt_write_conf --set "join_history = 0;"
mark=$(nt_log_mark C)
kill -HUP "$(nt_pid C)"
check "C reloaded" wait_until 10 _nt_log_has C "reloaded configuration" "$mark"
wsclient history 127.0.0.3 "$P" >"$T/all.out"
check_eq "join_history = 0: a join without since gets all 130" \
    "$(cat "$T/all.ids")" "$(nt_json get id <"$T/all.out")"

# 6. Restarts read the index; without it or with it torn, the same.
IDX="$T/B/messages.idx"
nt_stop B
check_eq "B's index after a clean stop: a header, 3 origins, 130 records" \
    $((48 * (1 + 3 + 130))) "$(stat -c %s "$IDX")"
nt_start B
check_eq "B restarted with its index: the same history" \
    "$(cat "$T/all.ids")" "$(nt_ids B)"
nt_stop B
rm -f "$IDX"
nt_start B
check_eq "B restarted without its index: the same history" \
    "$(cat "$T/all.ids")" "$(nt_ids B)"
nt_stop B
check_eq "the index was written anew" \
    $((48 * (1 + 3 + 130))) "$(stat -c %s "$IDX")"
truncate -s $((48 * 70 + 17)) "$IDX"
nt_start B
check_eq "B restarted with its index torn: the same history" \
    "$(cat "$T/all.ids")" "$(nt_ids B)"
lg B hd --count 5 --window 5 2>/dev/null
check_converged 20 A B C
nt_finish
