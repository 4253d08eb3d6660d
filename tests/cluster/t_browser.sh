#!/bin/bash
# t_browser.sh: the chat page in a real browser.  Headless Chromium (driven
# over the DevTools protocol by tests/tools/browser.py) opens the page on
# node A and on node C; a message typed in one appears in the other, and as
# our own (acknowledged) in the first; B stores it.
#  - The header shows which nodes are up; the pill is a green "live" only
#    while every node is up ("live · nodes B, C down" in amber otherwise).
#  - Node C stops: page C moves to node A with since and says so; a chat
#    whose fate C alone knows waits for C (and says so); a new one goes
#    through A.  C comes back: page C goes home by itself and sends the
#    waiting chat to C, stored once.  Again, and the user sends the waiting
#    chat through A ("Send via A now"): stored once.
#  - A message whose ack and echo are lost is, after a reconnect, still
#    shown and stored once.
#  - Each message's badge names the node that accepted it (its identity on
#    hover); a hidden tab counts unread messages in its title; a text over
#    the limit is not offered a Retry, but Edit and Discard.
#  - Message text is shown as text, never as HTML.
# Screenshots are kept in $NT_BUILDDIR/tests/cluster/ even on success:
# browser-failover.png (page C on node A, a chat waiting for C),
# browser-two-down.png (page A with B and C down), browser-too-long.png
# (the refused message) and browser-final.png (page C at the end).
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
KEPT_PNGS="browser-failover.png browser-two-down.png browser-too-long.png"
rm -f "$FINAL_PNG"
for f in $KEPT_PNGS; do
	rm -f "$NT_BUILDDIR/tests/cluster/$f"
done

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

# --- the cluster in the header ----------------------------------------------------

# chips PAGE: "A:true B:true C:false" from the header's node chips.
chips() {
	br eval "$1" "[...document.querySelectorAll('#nodes .node')].map((n) => n.dataset.node + ':' + n.dataset.up).join(' ')"
}
wait_chips() {
	brq wait "$1" "[...document.querySelectorAll('#nodes .node')].map((n) => n.dataset.node + ':' + n.dataset.up).join(' ') === $(js "$2")" "${3:-15}"
}
pill_state() {
	br eval "$1" "document.getElementById('status').dataset.state"
}

check "page A shows every node up" wait_chips A "A:true B:true C:true"
check_eq "page A marks the node it is on" A \
    "$(br eval A "document.querySelector('#nodes .node.here').dataset.node")"
check_eq "page A's pill is green: live" "live live" "$(status A) $(pill_state A)"

# --- failover: node C goes away ----------------------------------------------------

# Page C's next chat never leaves the page, as if the link died under it:
# the page cannot know whether C stored it.
swallow_next_chat() {
	br eval "$1" "(() => { const s = window.nodetalk.socket, send = s.send.bind(s);
	    window.swallowed = null;
	    s.send = (d) => { if (!window.swallowed && JSON.parse(d).type === 'chat') { window.swallowed = d; return; } send(d); };
	    return true; })()"
}
state_text() {
	br eval "$1" "(($(msgs_with "$2"))[0] || {querySelector: () => ({textContent: '(none)'})}).querySelector('.state').textContent"
}

t_held="typed on page C as C went away"
check_eq "page C will lose its next chat on the way" true "$(swallow_next_chat C)"
br type C '#text' "$t_held" >/dev/null
brq key C Enter
check "page C sent it (as far as it knows)" brq wait C "window.swallowed !== null" 5

mark_c=$(nt_log_mark C)
nt_stop C
check_eq "node C stops cleanly" 0 "$?"
check "page C moves to node A and says C is down" wait_status C '^on node A: C is down$' 20
check_eq "  its pill is not green" degraded "$(pill_state C)"
check_eq "  it names node A as its node" A "$(br eval C "document.getElementById('node').textContent")"
check_match "  and it told the user" 'Node C is unreachable: moved to node A' \
    "$(br eval C "[...document.querySelectorAll('#toasts .toast, #announce')].map((t) => t.textContent).join(' | ')")"
check "page A shows node C down" wait_chips A "A:true B:true C:false"
check "page A's pill says so, not a green live" wait_status A '^live · node C down$' 10
check_eq "  in amber" degraded "$(pill_state A)"
check_match "the chat caught by C's end says it waits for C" \
    '^sent to node C before it went away — waiting for it \(it may have stored it\) Send via A now$' \
    "$(state_text C "$t_held")"
check_eq "  and it is still pending, not sent through A" "1 carol (no-id) own pending" \
    "$(describe C "$t_held")"

t3="sent to A while C was down"
out=$(nt_send A dave "$t3")
check_match "nodetalk sends to A while C is down" '^sent A-[0-9]+$' "$out"
id3=${out#sent }
check_eq "page A shows it live" "$id3" "$(wait_msg A "$t3" dave other)"
check_eq "page C, now on A, shows it too" "$id3" "$(wait_msg C "$t3" dave other)"

t4="typed into page C while C was down"
br type C '#text' "$t4" >/dev/null
brq key C Enter
id4=$(wait_msg C "$t4" carol own 20)
check_match "page C's new chat goes through node A" '^A-[0-9]+$' "$id4"
check_eq "  and its badge says node A accepted it" A \
    "$(br eval C "($(msgs_with "$t4"))[0].querySelector('.origin').textContent")"
check_eq "page A shows it from carol" "$id4" "$(wait_msg A "$t4" carol other)"
br shot C "$T/browser-failover.png" >/dev/null
cp "$T/browser-failover.png" "$NT_BUILDDIR/tests/cluster/browser-failover.png" 2>/dev/null

# --- two of three nodes down: not a green "live" ------------------------------------

nt_stop B
check_eq "node B stops cleanly" 0 "$?"
check "page A shows B and C down" wait_chips A "A:true B:false C:false"
check "page A's pill names both" wait_status A '^live · nodes B, C down$' 10
check_eq "  in amber" degraded "$(pill_state A)"
br eval A "document.getElementById('messages').scrollTop = 1e9" >/dev/null
br shot A "$T/browser-two-down.png" >/dev/null
cp "$T/browser-two-down.png" "$NT_BUILDDIR/tests/cluster/browser-two-down.png" 2>/dev/null
nt_start B
check "page A shows B up again" wait_chips A "A:true B:true C:false" 20

# --- node C comes back: page C goes home --------------------------------------------

nt_start C
check "page C goes back to node C by itself" wait_status C '^live$' 30
check_eq "  names node C" C "$(br eval C "document.getElementById('node').textContent")"
check_match "  and says so" 'Back on node C' \
    "$(br eval C "[...document.querySelectorAll('#toasts .toast, #announce')].map((t) => t.textContent).join(' | ')")"
id_held=$(wait_msg C "$t_held" carol own 20)
check_match "the chat that waited for C is sent to C and acknowledged" '^C-[0-9]+$' "$id_held"
check "A, B and C converge on 5 messages" wait_until 30 histories_converged 5
for id in A B C; do
	check_eq "$id stores the waiting chat once" 1 "$(history_text_count "$id" "$t_held")"
	check_eq "$id stores page C's chat sent through A once" 1 "$(history_text_count "$id" "$t4")"
done
check_eq "page C's outbox is empty" 0 "$(br eval C 'window.nodetalk.outbox().length')"
check "page C shows exactly C's messages, each once" \
    wait_until 15 page_matches_node C C
check "page A shows exactly A's messages, each once" \
    wait_until 15 page_matches_node A A
check "page A is green again" wait_status A '^live$' 15

# --- failover, and the user sends the waiting chat through the other node -----------

t_via="sent through A on purpose"
check_eq "page C will lose its next chat on the way" true "$(swallow_next_chat C)"
br type C '#text' "$t_via" >/dev/null
brq key C Enter
check "page C sent it (as far as it knows)" brq wait C "window.swallowed !== null" 5
nt_stop C
check "page C moves to node A" wait_status C '^on node A: C is down$' 20
check "page C offers to send it through A" brq wait C \
    "[...($(msgs_with "$t_via"))[0].querySelectorAll('.state button')].some((b) => b.textContent === 'Send via A now')" 10
cid_via=$(br eval C "($(msgs_with "$t_via"))[0].dataset.clientId")
check "clicking Send via A now" brq click C "#messages .msg[data-client-id=\"$cid_via\"] .state button"
id_via=$(wait_msg C "$t_via" carol own 20)
check_match "it is stored by A" '^A-[0-9]+$' "$id_via"
nt_start C
check "page C goes back to node C" wait_status C '^live$' 30
check "A, B and C converge on 6 messages" wait_until 30 histories_converged 6
for id in A B C; do
	check_eq "$id stores the chat sent through A once" 1 "$(history_text_count "$id" "$t_via")"
done
check "page C shows exactly C's messages, each once (after two moves)" \
    wait_until 15 page_matches_node C C

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
check "A, B and C converge on 7 messages" wait_until 20 histories_converged 7
for id in A C; do
	check_eq "$id stores it once" 1 "$(history_text_count "$id" "$t6")"
done
nt_note "node C counted $(( $(metric C nodetalk_client_retries_total) - retries0 )) client retries (0: the page settled it from the catch-up, 1: it resent)"
check "page C shows exactly C's messages, each once (after the lost answer)" \
    wait_until 15 page_matches_node C C

# --- which node accepted each message ---------------------------------------------

for pg in A C; do
	check_eq "page $pg: the badge of alice's first message says node A" A \
	    "$(br eval "$pg" "($(msgs_with "$t1"))[0].querySelector('.origin').textContent")"
	check_eq "page $pg: hovering it gives its identity" "accepted by node A as $id1" \
	    "$(br eval "$pg" "($(msgs_with "$t1"))[0].querySelector('.origin').title")"
	check_eq "page $pg: carol's first message was accepted by C" C \
	    "$(br eval "$pg" "($(msgs_with "$t2"))[0].querySelector('.origin').textContent")"
done
check_eq "every message on page A has a badge that matches its id" "" \
    "$(br eval A "$MSGS.filter((m) => !m.dataset.id || m.querySelector('.origin').textContent !== m.dataset.id.replace(/-[0-9]+$/, '')).length || ''")"

# --- unread messages in the tab's title while it is hidden -----------------------------

check_eq "page A's title" nodetalk "$(br eval A document.title)"
check "page A goes to the background (another tab in front)" brq hide A
check_eq "  document.hidden" true "$(br eval A document.hidden)"
for i in 1 2; do
	nt_send B erin "while page A was hidden $i" >/dev/null
done
check "page A's title counts the 2 unread messages" \
    brq wait A "document.title === '(2) nodetalk'" 15
check "page A comes back to the front" brq show A
check_eq "page A's title is plain again" nodetalk "$(br eval A document.title)"

# --- an error that no retry can cure: no Retry ------------------------------------------

long=$(printf 'x%.0s' $(seq 5000))
br type A '#text' "$long" >/dev/null
brq key A Enter
check "page A marks the 5000-byte message as not sent" brq wait A \
    "(() => { const m = $(msgs_with "$long"); return m.length === 1 && m[0].classList.contains('failed'); })()" 15
check_eq "  saying why, with the limit" \
    "Not sent: 'text' is 5000 bytes; this node takes at most 4096 (max_message_bytes) " \
    "$(br eval A "($(msgs_with "$long"))[0].querySelector('.state span').textContent")"
check_eq "  offering Edit and Discard, no Retry" "Edit Discard" \
    "$(br eval A "[...($(msgs_with "$long"))[0].querySelectorAll('.state button')].map((b) => b.textContent).join(' ')")"
br shot A "$T/browser-too-long.png" >/dev/null
cp "$T/browser-too-long.png" "$NT_BUILDDIR/tests/cluster/browser-too-long.png" 2>/dev/null
check "clicking Edit" brq click A "#messages .msg.failed .state button"
check_eq "  puts the text back in the box" 5000 "$(br eval A "document.getElementById('text').value.length")"
check_eq "  and the failed message is gone" 0 "$(br eval A "($(msgs_with "$long")).length")"
br type A '#text' "" >/dev/null
check_eq "no node stores it" 0 "$(history_text_count A "$long")"

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
for f in $KEPT_PNGS; do
	check "the screenshot $f is kept" is_png "$NT_BUILDDIR/tests/cluster/$f"
done
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
