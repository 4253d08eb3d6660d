#!/bin/bash
# t_since_flood.sh: joins whose `since` names thousands of made-up origins
# (about 60 KB each) cost the node nothing: each is refused with a
# too_long error before a vector is built or the master hears of it, while
# another client's chats are acknowledged as usual.  A `since` within the
# cap may name origins this node never heard of: they are ignored.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
# shellcheck source=acklib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/acklib.sh"
nt_need_websockets
nt_init since_flood
for id in A B C; do
	nt_start "$id"
done
wait_peers
H=${NT_ADDR[A]}
hostile() { timeout 60 "$NT_PYTHON" "$NT_TOOLS/hostile.py" "$@"; }

"$NT_PYTHON" -c '
import json
since = {"X%07d" % i: i * 997 + 1 for i in range(3000)}
print(json.dumps({"type": "join", "from": "mallory", "since": since},
                 separators=(",", ":")))
' >"$T/bigjoin"
check "a since of 3000 origins is over 50 KB" \
    test "$(wc -c <"$T/bigjoin")" -gt 50000

# A client chats while 40 such joins arrive at once.
lg_bg A honest --window 4 --count 300
hostile joins "$H" "$P" "$T/bigjoin" --conns 40 >"$T/joins.out"
check_eq "40 big joins: 40 answers" 40 "$(nt_json count <"$T/joins.out")"
check_eq "each is a too_long error" 40 \
    "$(nt_json where type=error code=too_long <"$T/joins.out" | nt_json count)"
check_eq "no big join was served" 0 \
    "$(nt_json where type=joined <"$T/joins.out" | nt_json count)"
check "the client's loadgen ended well" lg_wait 60 "$LG_PID"
check_eq "every chat of the client was acknowledged" 300 "$(acked_n honest)"

# One origin more than the cap (2 per node + 8): refused; at the cap: served.
for n in 14 15; do
	"$NT_PYTHON" -c '
import json, sys
n = int(sys.argv[1])
since = {"Y%d" % i: 1 for i in range(n)}
print(json.dumps({"type": "join", "since": since}))
' "$n" >"$T/join$n"
done
out=$(hostile joins "$H" "$P" "$T/join14" --conns 1)
check_eq "a since of 14 origins (3 nodes): joined" joined "$(nt_json get type <<<"$out")"
out=$(hostile joins "$H" "$P" "$T/join15" --conns 1)
check_eq "a since of 15 origins: too_long" too_long "$(nt_json get code <<<"$out")"

# Another node's local-only origin, or one foreign to the cluster, can never
# reach A: ignored, so the client is recovered.  A's own origin ahead of A
# is not.
echo '{"type":"join","since":{"B/seed":5,"Q":9,"A":1}}' >"$T/join-unknown"
out=$(hostile joins "$H" "$P" "$T/join-unknown" --conns 1)
check_eq "unknown origins in since are ignored: recovered" true \
    "$(nt_json get recovered <<<"$out")"
echo '{"type":"join","since":{"C":1000000}}' >"$T/join-ahead"
out=$(hostile joins "$H" "$P" "$T/join-ahead" --conns 1)
check_eq "a since ahead of A on a node of the cluster: not recovered" false \
    "$(nt_json get recovered <<<"$out")"
echo '{"type":"join","since":{"bad key":1}}' >"$T/join-bad"
out=$(hostile joins "$H" "$P" "$T/join-bad" --conns 1)
check_eq "a since key that is not an origin: bad_field" bad_field \
    "$(nt_json get code <<<"$out")"

check "B holds the client's 300 messages" wait_until 15 nt_count_is B 300
check_eq "A: one ws worker, never restarted" 1 \
    "$(grep -cF "[A] ws worker started" "$T/A.log")"
nt_finish
