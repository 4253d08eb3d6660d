#!/bin/bash
# t_browser.sh: the chat page in a real browser.  Headless Chromium (driven
# over the DevTools protocol by tests/tools/browser.py) opens the page on
# node A and on node C; a message typed in one appears in the other, and as
# our own (acknowledged) in the first; B stores it.  Node C is restarted:
# its page goes to "reconnecting" and back to "live", then shows every
# message, including one sent while C was down, exactly once, and delivers
# once the message typed into it while it was down; a message whose ack and
# echo are lost is, after a reconnect, still shown and stored once.  Message
# text is shown as text, never as HTML.  Screenshots of both pages end up in
# the work dir; the final one is also copied to
# $NT_BUILDDIR/tests/cluster/browser-final.png (kept even on success).
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
NT_CHROMIUM=${NT_CHROMIUM:-/usr/bin/chromium}
[ -x "$NT_CHROMIUM" ] || nt_skip "chromium is not installed (apt-get install chromium)"
nt_need_websockets
nt_init browser
# The page as it is in this tree, not whatever is installed.
nt_write_conf --set "www_dir = \"$NT_SRCDIR/www\";"

FINAL_PNG="$NT_BUILDDIR/tests/cluster/browser-final.png"
rm -f "$FINAL_PNG"

# --- helpers -----------------------------------------------------------------

BR_ADDR="$T/browser.addr"

# br CMD ARGS...: one command to the browser (see tests/tools/browser.py).
br() {
	timeout 120 "$NT_PYTHON" "$NT_TOOLS/browser.py" call --addr-file "$BR_ADDR" "$@"
}

# brq CMD ARGS...: br, its output dropped (for check).
brq() {
	br "$@" >/dev/null
}

# js STRING: STRING as a JavaScript string literal.
js() {
	"$NT_PYTHON" -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$1"
}

MSGS='[...document.querySelectorAll("#messages .msg")]'

# msgs_with TEXT: JS for the .msg elements whose .text is exactly TEXT.
msgs_with() {
	echo "$MSGS.filter((m) => m.querySelector('.text').textContent === $(js "$1"))"
}

# describe PAGE TEXT: "count from data-id own/- pending/-" of the messages
# with that text ("0" when there is none).
describe() {
	br eval "$1" "(() => { const m = $(msgs_with "$2");
	    if (m.length !== 1) return String(m.length);
	    const c = m[0].classList;
	    return [1, m[0].querySelector('.from').textContent,
	        m[0].dataset.id || '(no-id)', c.contains('own') ? 'own' : '-',
	        c.contains('pending') ? 'pending' : '-'].join(' '); })()"
}

# wait_msg PAGE TEXT FROM own|other [SECS]: wait until the page shows the
# message exactly once, from FROM, stored (data-id, not pending) and (not)
# marked own; prints its data-id.
wait_msg() {
	local own=true
	[ "$4" = own ] || own=false
	br wait "$1" "(() => { const m = $(msgs_with "$2");
	    return m.length === 1 &&
	        m[0].querySelector('.from').textContent === $(js "$3") &&
	        m[0].classList.contains('own') === $own &&
	        !m[0].classList.contains('pending') && m[0].dataset.id; })()" "${5:-15}"
}

# page_ids PAGE: the data-id of every .msg, sorted, one per line ("(none)"
# for a message without one).
page_ids() {
	br eval "$1" "$MSGS.map((m) => m.dataset.id || '(none)').join('\n')" | sort
}

# status PAGE: the text of #status.
status() {
	br eval "$1" "document.getElementById('status').textContent"
}

# wait_status PAGE REGEX SECS
wait_status() {
	brq wait "$1" "/$2/.test(document.getElementById('status').textContent)" "$3"
}

sorted_ids() {
	nt_ids "$1" | sort
}

# The page and the node hold the same messages, each shown once.
page_matches_node() {
	local want got
	want=$(sorted_ids "$2") || return 1
	got=$(page_ids "$1") || return 1
	[ -n "$want" ] && [ "$want" = "$got" ]
}

# history_text_count ID TEXT: how many stored messages on ID have TEXT.
history_text_count() {
	nt_texts "$1" | grep -cxF -- "$2"
}

histories_converged() {
	local a
	a=$(sorted_ids A) || return 1
	[ "$(echo "$a" | wc -l)" -eq "$1" ] &&
	    [ "$a" = "$(sorted_ids B)" ] && [ "$a" = "$(sorted_ids C)" ]
}

# metric ID NAME: the value of an unlabelled metric in ID's /metrics.
metric() {
	"$NT_PYTHON" - "${NT_ADDR[$1]}" "$P" "$2" <<-'EOF'
	import sys, urllib.request
	url = f"http://{sys.argv[1]}:{sys.argv[2]}/metrics"
	for line in urllib.request.urlopen(url, timeout=10).read().decode().splitlines():
	    if line.split(" ")[0] == sys.argv[3]:
	        print(line.split(" ")[1])
	EOF
}

is_png() {
	[ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
	    [ "$(wc -c <"$1")" -gt 2000 ]
}

# --- the cluster and the browser ---------------------------------------------

for id in A B C; do
	nt_start "$id"
done
wait_peers

nt_bg "$T/browser.log" "$NT_PYTHON" -u "$NT_TOOLS/browser.py" serve \
    --addr-file "$BR_ADDR" --chromium "$NT_CHROMIUM" --lifetime 600
br_pid=$NT_BG_PID
if ! wait_until 40 test -s "$BR_ADDR"; then
	cat "$T/browser.log"
	nt_fatal "browser.py did not start Chromium within 40 s"
fi
chromium_pid=$(sed -n 's/.*chromium pid \([0-9]*\),.*/\1/p' "$T/browser.log")
nt_note "Chromium pid $chromium_pid (browser.py pid $br_pid), log $T/browser.log"

check "page A opens http://127.0.0.1:$P/" brq open A "http://127.0.0.1:$P/"
check "page C opens http://127.0.0.3:$P/" brq open C "http://127.0.0.3:$P/"
check_eq "page A's title" nodetalk "$(br eval A document.title)"
check_eq "page A loaded the script and the style sheet" "true true" \
    "$(br eval A "[typeof window.nodetalk === 'object',
        getComputedStyle(document.body).display !== '' &&
        [...document.styleSheets].some((s) => /style\.css/.test(s.href))].join(' ')")"

check_eq "typing a name into page A" alice "$(br type A '#name' alice)"
check_eq "typing a name into page C" carol "$(br type C '#name' carol)"

check "page A says live" wait_status A '^live$' 15
check "page C says live" wait_status C '^live$' 15
check_eq "page A names node A" A "$(br eval A "document.getElementById('node').textContent")"
check_eq "page C names node C" C "$(br eval C "document.getElementById('node').textContent")"
check_eq "page A shows no message yet" "" "$(page_ids A)"

# --- a message typed in A ----------------------------------------------------

t1="hello from page A"
check_eq "typing into page A's message box" "$t1" "$(br type A '#text' "$t1")"
check "clicking Send on page A" brq click A '#send'
id1=$(wait_msg A "$t1" alice own)
check_match "page A shows its message as own and acknowledged" '^A-[0-9]+$' "$id1"
check_eq "page A's message box is empty after sending" "" \
    "$(br eval A "document.getElementById('text').value")"
id1c=$(wait_msg C "$t1" alice other)
check_eq "page C shows A's message from alice, not as own, same id" "$id1" "$id1c"
check_match "page C shows a time for it" '.+' \
    "$(br eval C "($(msgs_with "$t1"))[0].querySelector('.time').textContent")"
check "node B stores A's message" wait_until 10 nt_has_texts B "$t1"
check_eq "node B stores it under the id page A showed" "$id1" \
    "$(nt_history B | nt_json where text="$t1" | nt_json get id)"

# --- a message typed in C, sent with Enter -------------------------------------

t2="hello from page C"
br type C '#text' "$t2" >/dev/null
check "pressing Enter on page C" brq key C Enter
id2=$(wait_msg C "$t2" carol own)
check_match "page C shows its message as own and acknowledged" '^C-[0-9]+$' "$id2"
check_eq "page A shows C's message from carol, same id" "$id2" \
    "$(wait_msg A "$t2" carol other)"

# --- node C restarts ---------------------------------------------------------

nt_stop C
check_eq "node C stops cleanly" 0 "$?"
check "page C goes to reconnecting" wait_status C '^reconnecting' 15
check_eq "page C's body is in the reconnecting state" reconnecting \
    "$(br eval C 'document.body.dataset.state')"

t3="sent to A while C was down"
out=$(nt_send A dave "$t3")
check_match "nodetalk sends to A while C is down" '^sent A-[0-9]+$' "$out"
id3=${out#sent }
check_eq "page A shows it live" "$id3" "$(wait_msg A "$t3" dave other)"

t4="typed into page C while C was down"
br type C '#text' "$t4" >/dev/null
brq key C Enter
check_eq "page C shows the offline message as own, pending, no id" "1 carol (no-id) own pending" \
    "$(describe C "$t4")"
check_eq "page C keeps it in its outbox" 1 "$(br eval C 'window.nodetalk.outbox().length')"
check_match "page C says it is queued" 'queued' \
    "$(br eval C "($(msgs_with "$t4"))[0].querySelector('.state').textContent")"

nt_start C
check "page C is live again" wait_status C '^live$' 45
check_eq "page C still names node C" C "$(br eval C "document.getElementById('node').textContent")"
id4=$(wait_msg C "$t4" carol own 20)
check_match "page C's offline message is delivered and acknowledged" '^C-[0-9]+$' "$id4"
check_eq "page C's outbox is empty" 0 "$(br eval C 'window.nodetalk.outbox().length')"
check_eq "page C shows the message sent while it was down" "$id3" \
    "$(wait_msg C "$t3" dave other 20)"
check "A, B and C converge on 4 messages" wait_until 20 histories_converged 4
check_eq "A stores the offline message once" 1 "$(history_text_count A "$t4")"
check_eq "C stores the offline message once" 1 "$(history_text_count C "$t4")"
check_eq "A's copy has the id page C showed" "$id4" \
    "$(nt_history A | nt_json where text="$t4" | nt_json get id)"
check "page C shows exactly C's messages, each once" \
    wait_until 15 page_matches_node C C
check "page A shows exactly A's messages, each once" \
    wait_until 15 page_matches_node A A
check_eq "page C has no message without an id" "" \
    "$(br eval C "$MSGS.filter((m) => !m.dataset.id).length || ''")"
check_eq "page C: no data-id twice" "" "$(page_ids C | uniq -d)"
check_eq "page A: no data-id twice" "" "$(page_ids A | uniq -d)"

# --- the answer is lost on the way: after a reconnect, still once -----------

# Page C's socket stops delivering anything (ack and echo alike), as if the
# connection broke just after the node stored the message.  After a
# reconnect the page learns of it (catch-up, or a resend with the same
# client id, which the node answers from its store): shown once, stored once.
t6="stored, but the answer was lost"
retries0=$(metric C nodetalk_client_retries_total)
check_eq "page C's socket will drop what it receives" true "$(br eval C "(() => {
    const s = window.nodetalk.socket;
    window.dropped = [];
    s.onmessage = (e) => { window.dropped.push(JSON.parse(e.data).type); };
    return true; })()")"
br type C '#text' "$t6" >/dev/null
brq key C Enter
check "node C stores it" wait_until 10 nt_has_texts C "$t6"
check "page C dropped its ack" brq wait C "window.dropped.includes('ack')" 10
check_eq "page C still shows it pending" "1 carol (no-id) own pending" "$(describe C "$t6")"
check "page C reconnects" brq eval C 'window.nodetalk.reconnect()'
check "page C is live again after the reconnect" wait_status C '^live$' 20
id6=$(wait_msg C "$t6" carol own 20)
check_match "page C shows it acknowledged after the reconnect" '^C-[0-9]+$' "$id6"
check_eq "page C's outbox is empty again" 0 "$(br eval C 'window.nodetalk.outbox().length')"
check "A, B and C converge on 5 messages" wait_until 20 histories_converged 5
for id in A C; do
	check_eq "$id stores it once" 1 "$(history_text_count "$id" "$t6")"
done
nt_note "node C counted $(( $(metric C nodetalk_client_retries_total) - retries0 )) client retries (0: the page settled it from the catch-up, 1: it resent)"
check "page C shows exactly C's messages, each once (after the lost answer)" \
    wait_until 15 page_matches_node C C

# --- text is text --------------------------------------------------------------

t5='<img src=x onerror=alert(1)>'
br type A '#text' "$t5" >/dev/null
check "clicking Send on page A" brq click A '#send'
check_match "page A stores the HTML-looking message" '^A-[0-9]+$' \
    "$(wait_msg A "$t5" alice own)"
check_match "page C gets it" '^A-[0-9]+$' "$(wait_msg C "$t5" alice other)"
for pg in A C; do
	check_eq "page $pg: no img element inside #messages" 0 \
	    "$(br eval "$pg" "document.querySelectorAll('#messages img').length")"
	check_eq "page $pg: the .text shows the raw string" "$t5" \
	    "$(br eval "$pg" "($(msgs_with "$t5"))[0].querySelector('.text').textContent")"
	check_match "page $pg: the .text has it escaped as HTML" '&lt;img' \
	    "$(br eval "$pg" "($(msgs_with "$t5"))[0].querySelector('.text').innerHTML")"
	ev=$(br events "$pg")
	check_eq "page $pg: no JS dialog opened" "[]" \
	    "$("$NT_PYTHON" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["dialogs"]))' <<<"$ev")"
	check_eq "page $pg: no uncaught JS exception" "[]" \
	    "$("$NT_PYTHON" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["exceptions"]))' <<<"$ev")"
done
check "page C still shows exactly C's messages" wait_until 15 page_matches_node C C

# --- screenshots -----------------------------------------------------------------

# Let the last message settle at the bottom before the picture.
br eval A "document.getElementById('messages').scrollTop = 1e9" >/dev/null
br eval C "document.getElementById('messages').scrollTop = 1e9" >/dev/null
sleep 0.5
br shot A "$T/browser-A.png" >/dev/null
check "screenshot of page A is a PNG" is_png "$T/browser-A.png"
br shot C "$T/browser-C.png" >/dev/null
check "screenshot of page C is a PNG" is_png "$T/browser-C.png"
cp "$T/browser-C.png" "$FINAL_PNG" 2>/dev/null
check "the final screenshot is kept" is_png "$FINAL_PNG"
nt_note "screenshots: $T/browser-A.png, $T/browser-C.png (work dir, removed on success)"
nt_note "final screenshot (page C, kept): $FINAL_PNG"

# --- the browser goes away with everything it started --------------------------

br quit >/dev/null
check "browser.py exits after quit" wait_until 15 nt_pid_gone "$br_pid"
if [ -n "$chromium_pid" ]; then
	check "Chromium (pid $chromium_pid) is gone" wait_until 5 nt_pid_gone "$chromium_pid"
	check_eq "nothing is left in Chromium's process group" "" \
	    "$(ps -eo pid=,pgid= | awk -v g="$chromium_pid" '$2 == g { print $1 }')"
fi

nt_finish
