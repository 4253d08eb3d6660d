#!/bin/bash
# t_browser_history.sh: the chat page scrolls back.  Node A (alone) holds
# 300 messages and has join_history = 40.  In headless Chromium (driven by
# tests/tools/browser.py) the page shows the newest 40 at first, with a
# "Load older messages" button at the top; scrolling to the top fetches the
# page before the oldest shown (a history request) and puts it above,
# keeping in view what was read; scrolling to the top again and again
# brings every message, in the node's order, each once, and the button
# goes.  A message sent meanwhile still arrives at the bottom.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
NT_CHROMIUM=${NT_CHROMIUM:-/usr/bin/chromium}
[ -x "$NT_CHROMIUM" ] || nt_skip "chromium is not installed (apt-get install chromium)"
nt_need_websockets
NT_NODES=(A)
nt_init browser_history
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"
nt_write_conf --set "www_dir = \"$NT_SRCDIR/www\";" --set "join_history = 40;"

BR_ADDR="$T/browser.addr"
br() {
	timeout 120 "$NT_PYTHON" "$NT_TOOLS/browser.py" call --addr-file "$BR_ADDR" "$@"
}
brq() { br "$@" >/dev/null; }
MSGS='[...document.querySelectorAll("#messages .msg")]'
# page_ids: the data-id of every message shown, in the page's order.
page_ids() { br eval A "$MSGS.map((m) => m.dataset.id || '(none)').join('\n')"; }
shown() { br eval A "String($MSGS.length)"; }
shown_is() { [ "$(shown)" = "$1" ]; }
older_hidden() { br eval A "String(document.getElementById('older').hidden)"; }
# to_top: scroll the list to its top, as a reader would.
to_top() { brq eval A "document.getElementById('messages').scrollTop = 0"; }

nt_start A
lg A p --count 300 --window 20 2>/dev/null
check_eq "300 messages stored on A" 300 "$(acked_n)"
nt_ids A >"$T/all.ids"

nt_bg "$T/browser.log" "$NT_PYTHON" -u "$NT_TOOLS/browser.py" serve \
    --addr-file "$BR_ADDR" --chromium "$NT_CHROMIUM" --lifetime 300
br_pid=$NT_BG_PID
if ! wait_until 40 test -s "$BR_ADDR"; then
	cat "$T/browser.log"
	nt_fatal "browser.py did not start Chromium within 40 s"
fi
chromium_pid=$(sed -n 's/.*chromium pid \([0-9]*\),.*/\1/p' "$T/browser.log")

check "the page opens" brq open A "http://127.0.0.1:$P/"
check "the page says live" brq wait A \
    "document.getElementById('status').textContent === 'live'" 15
check "it shows the newest 40" wait_until 10 shown_is 40
check_eq "... which are the node's newest 40, in order" \
    "$(tail -n 40 "$T/all.ids")" "$(page_ids)"
check_eq "the button for older messages shows" false "$(older_hidden)"

# Scroll to the top: one page (100) comes, above, the view kept.
to_top
check "scrolled to the top: 100 older ones come" wait_until 10 shown_is 140
check_eq "the page shows the node's newest 140, in order" \
    "$(tail -n 140 "$T/all.ids")" "$(page_ids)"
check "what was read stays in view (not scrolled to the top)" \
    test "$(br eval A "String(document.getElementById('messages').scrollTop)")" -gt 500

# Again, twice: everything, and no more button.
to_top
check "again: 100 more" wait_until 10 shown_is 240
to_top
check "again: the last 60" wait_until 10 shown_is 300
check_eq "the page shows every message of the node, in order, once" \
    "$(cat "$T/all.ids")" "$(page_ids)"
older_gone() { [ "$(older_hidden)" = true ]; }
check "the button is gone" wait_until 5 older_gone

# Live messages still come, at the bottom.
out=$(nt_send A zed "after scrolling back")
check_match "a new message is stored" '^sent A-[0-9]+$' "$out"
check "the page shows it last" brq wait A \
    "(() => { const m = $MSGS; return m.length === 301 &&
        m[300].dataset.id === '${out#sent }'; })()" 10

ev=$(br events A)
check_eq "no JavaScript exception on the page" "[]" \
    "$("$NT_PYTHON" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["exceptions"]))' <<<"$ev")"

br quit >/dev/null
check "browser.py exits after quit" wait_until 15 nt_pid_gone "$br_pid"
if [ -n "$chromium_pid" ]; then
	check "Chromium (pid $chromium_pid) is gone" wait_until 5 nt_pid_gone "$chromium_pid"
fi
nt_finish
