#!/bin/bash
# t_links_reload.sh: a reload revokes links that no longer qualify.  A link
# that said hello as node C stays open across a reload that removes C from
# B's nodes only until the reload: B closes it (1008) and takes nothing more
# from it.  After a reload that sets a cluster secret, every link B had
# accepted without proof is closed (1012) and must say hello again, signed:
# the real nodes do, an impostor cannot.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init links_reload
# Every log is empty, so each node numbers no chat before it heard every
# peer (guarantees.md): C runs until then; this script plays C after.
nt_start A
nt_start B
nt_start C
wait_peers
nt_stop C
HB=${NT_ADDR[B]}

forged='{"type":"chat","replicated":true,"origin":"C","seq":1,"lamport":1,"ts":1,"from":"mallory","text":"after the reload"}'

# link OUT FROM: a link to B that says hello as FROM and, once $T/go
# exists, sends the forged chat; in the background.
link() {
	rm -f "$T/go"
	nt_bg "$T/$1" timeout 60 "$NT_PYTHON" "$NT_TOOLS/rawclient.py" link \
	    "$HB" "$P" "$2" --stop-file "$T/go" --hold 40 --then "$forged"
	LINK=$NT_BG_PID
}

reload_b() {
	local mark
	mark=$(nt_log_mark B)
	kill -HUP "$(nt_pid B)"
	check_log B "[B] reloaded configuration" "$mark"
}

# --- C is removed: its link goes ------------------------------------------------
mark=$(nt_log_mark B)
link c.out C
check "B took the hello from C" wait_until 10 \
    _nt_log_has B "[B] Received hello from C" "$mark"
NT_NODES=(A B)
nt_write_conf
reload_b
touch "$T/go"
wait "$LINK"
check_eq "the link from the removed node is closed with 1008" 1008 \
    "$(nt_json where event=close <"$T/c.out" | nt_json get code)"
check_eq "... as not a configured node" "not a configured node" \
    "$(nt_json where event=close <"$T/c.out" | nt_json get reason)"
check_log B "[B] Peer C is no longer configured; closing its link" "$mark"
check_fail "B did not store what came after the reload" \
    nt_has_texts B "after the reload"

# --- a secret is set: every link must prove it ------------------------------------
NT_NODES=(A B C)
nt_write_conf
reload_b
mark=$(nt_log_mark B)
link c2.out C
check "B took an unsigned hello from C (no secret yet)" wait_until 10 \
    _nt_log_has B "[B] Received hello from C" "$mark"
nt_write_conf --set 'secret = "s3cret";'
# B first: A's link, unsigned, is still open when B takes the secret.
mark=$(nt_log_mark B)
reload_b
touch "$T/go"
wait "$LINK"
check_eq "the unsigned link is closed with 1012" 1012 \
    "$(nt_json where event=close <"$T/c2.out" | nt_json get code)"
check_log B "[B] The cluster secret changed; closing the link from C until it says hello again" "$mark"
check_log B "[B] The cluster secret changed; closing the link from A until it says hello again" "$mark"
kill -HUP "$(nt_pid A)"
check_fail "B did not store the impostor's chat" nt_has_texts B "after the reload"
out=$(timeout 20 "$NT_PYTHON" "$NT_TOOLS/rawclient.py" frames "$HB" "$P" \
    '{"type":"hello","from":"C","to":"B"}')
check_eq "the impostor's unsigned hello is refused now" auth_failed \
    "$(nt_json where type=error <<<"$out" | nt_json get code)"
check "A says a signed hello again" wait_until 15 \
    _nt_log_has B "[B] Received hello from A" "$mark"
nt_send A alice "signed again" >/dev/null
check "A's chat reaches B over the signed link" \
    wait_until 10 nt_has_texts B "signed again"

nt_finish
