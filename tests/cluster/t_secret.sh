#!/bin/bash
# t_secret.sh: a cluster secret.  Nodes that share it sign their hellos and
# replicate; a connection that claims to be a node without the secret is
# refused (error auth_failed, close 1008) and stores nothing; a node with
# the wrong secret cannot replicate until it is given the right one, and
# then catches up.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_need_websockets
nt_init secret
nt_write_conf --set 'secret = "cluster s3cret";'

nt_start A
nt_start B
nt_start C
wait_peers
check_log B "[B] Received hello from A"

check_eq "a chat to A is acknowledged" "sent A-1" "$(nt_send A alice "signed hi")"
for id in B C; do
	check "A's chat reached $id" wait_until 10 nt_has_texts "$id" "signed hi"
done

# A forged peer: a hello without the secret, then a replicated chat.
out=$(wsclient raw 127.0.0.2 "$P" \
    '{"type":"hello","from":"A","to":"B"}' \
    '{"type":"chat","replicated":true,"origin":"A","seq":2,"lamport":50,"ts":1,"from":"mallory","text":"forged"}')
check_match "the unsigned hello gets auth_failed" '"code": *"auth_failed"' "$out"
check_match "and the connection is closed with 1008" '"code": *1008' "$out"
check_log B "refused hello from A: hello is not signed"
sleep 1
check_fail "B did not store the forged chat" nt_has_texts B forged
check_eq "B holds one message" 1 "$(nt_count B)"

# A replayed hello: the same signed bytes a second time.
ts=$(( ${EPOCHREALTIME/./} / 1000 ))
mac=$("$NT_PYTHON" -c 'import hmac,hashlib,sys
print(hmac.new(sys.argv[1].encode(), ("nodetalk-hello\n%s\n%s\n%s" % ("C","B",sys.argv[2])).encode(), hashlib.sha256).hexdigest())' "cluster s3cret" "$ts")
hello="{\"type\":\"hello\",\"from\":\"C\",\"to\":\"B\",\"ts\":$ts,\"auth\":\"$mac\"}"
out=$(wsclient raw 127.0.0.2 "$P" "$hello")
check_fail "a correctly signed hello is accepted" grep -qF auth_failed <<<"$out"
out=$(wsclient raw 127.0.0.2 "$P" "$hello")
check_match "the same hello again is refused" '"code": *"auth_failed"' "$out"
check_log B "refused hello from C: hello replayed"

# C with the wrong secret: its own clients are served, nobody takes its
# messages; with the right secret again, they arrive.
nt_stop C
sed 's/cluster s3cret/wrong/' "$T/nodetalk.conf" >"$T/wrong.conf"
nt_start C -c "$T/wrong.conf"
check_eq "C acknowledges its client" "sent C-1" "$(nt_send C carol "from the outside")"
check_log A "refused hello from C: bad signature"
sleep 2
for id in A B; do
	check_fail "C's message did not reach $id" nt_has_texts "$id" "from the outside"
done
nt_stop C
nt_start C
for id in A B; do
	check "with the right secret C's message reaches $id" \
	    wait_until 15 nt_has_texts "$id" "from the outside"
done
nt_finish
