#!/bin/bash
# t_http.sh: HTTP done right on the node's port (DESIGN §5).  The page's
# files with the right types and caching headers, HEAD without a body, 404,
# 405 with Allow, /status (JSON with the documented keys, counts matching
# the history) and /metrics (Prometheus text), keep-alive, 431 for a head
# over 8 KiB, 505 for HTTP/2.0; then "nodetalk --status" across the cluster,
# with a node down, and against a node that is down.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_init http
# The page as it is in this tree, so that its bytes can be compared.
WWW="$NT_SRCDIR/www"
nt_write_conf --set "www_dir = \"$WWW\";"

# --- a raw HTTP client ---------------------------------------------------------

# $T/http.py: "send HOST PORT" sends stdin as is and prints the raw answer
# (until the node closes, 10 s at most); "part FILE status|header NAME|
# headers|body|bodylen|count" reads one saved answer.
cat >"$T/http.py" <<'EOF'
import socket, sys, time

def send(host, port):
    req = sys.stdin.buffer.read()
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(req)
    out, end = b"", time.monotonic() + 10
    try:
        while time.monotonic() < end:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except ConnectionResetError:
        out += b"\n[connection reset]"
    except socket.timeout:
        out += b"\n[timed out]"
    s.close()
    sys.stdout.buffer.write(out)

def split(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = []
    for l in lines[1:]:
        n, _, v = l.partition(":")
        hdrs.append((n.strip().lower(), v.strip()))
    return lines[0], hdrs, body, bool(sep)

def part(f, what, name=None):
    raw = open(f, "rb").read()
    line, hdrs, body, ok = split(raw)
    if what == "status":
        p = line.split(" ")
        print(p[1] if ok and len(p) >= 2 and p[0].startswith("HTTP/") else "none")
    elif what == "header":
        v = [v for n, v in hdrs if n == name.lower()]
        print("\n".join(v))
        return 0 if v else 1
    elif what == "headers":
        print("\n".join(f"{n}: {v}" for n, v in hdrs))
    elif what == "body":
        sys.stdout.buffer.write(body)
    elif what == "bodylen":
        print(len(body))
    elif what == "count":    # answers in a row (pipelining)
        n = 0
        while raw.startswith(b"HTTP/1."):
            line, hdrs, body, ok = split(raw)
            if not ok:
                break
            n += 1
            cl = int(dict(hdrs).get("content-length", "0"))
            raw = raw.partition(b"\r\n\r\n")[2][cl:]
        print(n)
    return 0

if sys.argv[1] == "send":
    send(sys.argv[2], sys.argv[3])
else:
    sys.exit(part(*sys.argv[2:]))
EOF

# req ID FILE REQUEST: send REQUEST (printf escapes interpreted) to node ID,
# answer in $T/FILE.
req() {
	# shellcheck disable=SC2059
	printf "$3" | "$NT_PYTHON" "$T/http.py" send "${NT_ADDR[$1]}" "$P" >"$T/$2"
}
# get ID FILE METHOD PATH: an HTTP/1.1 request with Connection: close.
get() {
	req "$1" "$2" "$3 $4 HTTP/1.1\r\nHost: ${NT_ADDR[$1]}:$P\r\nConnection: close\r\n\r\n"
}
st() { "$NT_PYTHON" "$T/http.py" part "$T/$1" status; }
hdr() { "$NT_PYTHON" "$T/http.py" part "$T/$1" header "$2"; }
body() { "$NT_PYTHON" "$T/http.py" part "$T/$1" body; }
bodylen() { "$NT_PYTHON" "$T/http.py" part "$T/$1" bodylen; }

same_bytes() {
	body "$1" | cmp -s - "$2"
}

# --- the cluster, with a few messages -------------------------------------------

for id in A B C; do
	nt_start "$id"
done
wait_peers
nt_send A alice "one" >/dev/null
nt_send B bob "two" >/dev/null
nt_send C carol "three" >/dev/null
check "A holds the 3 messages" wait_until 10 nt_count_is A 3

# --- the page's files -------------------------------------------------------------

get A index GET /
check_eq "GET /: 200" 200 "$(st index)"
check_eq "GET /: Content-Type" "text/html; charset=utf-8" "$(hdr index Content-Type)"
check_match "GET /: Cache-Control present" '.' "$(hdr index Cache-Control)"
check "GET /: the body is www/index.html" same_bytes index "$WWW/index.html"
check_eq "GET /: Content-Length is the body's length" "$(bodylen index)" \
    "$(hdr index Content-Length)"
check_eq "GET /: Connection: close as asked" close "$(hdr index Connection)"

get A js GET /app.js
check_eq "GET /app.js: 200" 200 "$(st js)"
check_match "GET /app.js: Content-Type text/javascript" '^text/javascript(;|$)' \
    "$(hdr js Content-Type)"
check "GET /app.js: the body is www/app.js" same_bytes js "$WWW/app.js"
check_match "GET /app.js: Cache-Control present" '.' "$(hdr js Cache-Control)"

get A css GET /style.css
check_eq "GET /style.css: 200" 200 "$(st css)"
check_match "GET /style.css: Content-Type text/css" '^text/css(;|$)' \
    "$(hdr css Content-Type)"
check "GET /style.css: the body is www/style.css" same_bytes css "$WWW/style.css"

# --- a refused WebSocket handshake says why ----------------------------------------

# up ID FILE VERSION-LINE KEY-LINE [CONNECTION] [HTTPVER]: an upgrade request.
up() {
	req "$1" "$2" "GET / HTTP/${6:-1.1}\r\nHost: h\r\nUpgrade: websocket\r\nConnection: ${5:-Upgrade}\r\n$3$4\r\n"
}
KEY='Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
up A nover "" "$KEY"
check_eq "upgrade without Sec-WebSocket-Version: 426" 426 "$(st nover)"
check_eq "  with Sec-WebSocket-Version: 13" 13 "$(hdr nover Sec-WebSocket-Version)"
check_match "  and the body says why" 'speaks WebSocket version 13 only' "$(body nover)"
up A nokey 'Sec-WebSocket-Version: 13\r\n' ""
check_eq "upgrade without Sec-WebSocket-Key: 400" 400 "$(st nokey)"
check_match "  and the body says why" 'Sec-WebSocket-Key must be 16 random bytes in base64' "$(body nokey)"
up A noconn 'Sec-WebSocket-Version: 13\r\n' "$KEY" keep-alive
check_eq "upgrade without Connection: Upgrade: 400" 400 "$(st noconn)"
check_match "  and the body says why" 'needs the headers "Upgrade: websocket" and "Connection: Upgrade"' "$(body noconn)"
up A http10 'Sec-WebSocket-Version: 13\r\n' "$KEY" Upgrade 1.0
check_eq "upgrade over HTTP/1.0: 400" 400 "$(st http10)"
check_match "  and the body says why" 'GET request over HTTP/1.1' "$(body http10)"

get A query GET '/?from=bookmark'
check_eq "GET /?query: still the page" 200 "$(st query)"

get A head HEAD /
check_eq "HEAD /: 200" 200 "$(st head)"
check_eq "HEAD /: same Content-Type as GET" "$(hdr index Content-Type)" "$(hdr head Content-Type)"
check_eq "HEAD /: same Cache-Control as GET" "$(hdr index Cache-Control)" "$(hdr head Cache-Control)"
check_eq "HEAD /: Content-Length of the page" "$(wc -c <"$WWW/index.html" | tr -d ' ')" \
    "$(hdr head Content-Length)"
check_eq "HEAD /: no body" 0 "$(bodylen head)"

# --- errors -------------------------------------------------------------------------

get A nope GET /nope
check_eq "GET /nope: 404" 404 "$(st nope)"
get A dotdot GET /../../../../etc/passwd
check_eq "GET /../../etc/passwd: 404" 404 "$(st dotdot)"
check_fail "GET /../../etc/passwd: no passwd file in the answer" \
    grep -q "root:" "$T/dotdot"

req A post "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntext=hi"
check_eq "POST /: 405" 405 "$(st post)"
check_eq "POST /: Allow: GET, HEAD" "GET, HEAD" "$(hdr post Allow)"
check "POST / stored nothing" nt_count_is A 3

big=$(head -c 9000 /dev/zero | tr '\0' a)
req A big "GET / HTTP/1.1\r\nHost: x\r\nX-Big: $big\r\nConnection: close\r\n\r\n"
check_eq "a request head of 9 KiB: 431" 431 "$(st big)"
under=$(head -c 7000 /dev/zero | tr '\0' a)
req A under "GET / HTTP/1.1\r\nHost: x\r\nX-Big: $under\r\nConnection: close\r\n\r\n"
check_eq "a request head of 7 KiB is still served: 200" 200 "$(st under)"

req A h2 "GET / HTTP/2.0\r\nHost: x\r\nConnection: close\r\n\r\n"
check_eq "GET / HTTP/2.0: 505" 505 "$(st h2)"

# --- keep-alive -------------------------------------------------------------------

ka=$(timeout 20 "$NT_PYTHON" - "${NT_ADDR[A]}" "$P" <<'EOF'
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=10)
out = []
for path in ("/", "/status"):
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    # http.client would quietly reconnect: note the local port each time.
    out.append(f"{r.status} {r.getheader('Connection')} {c.sock.getsockname()[1] if c.sock else 'closed'}")
c.close()
a, b = out
print(a.split()[0], b.split()[0], a.split()[1], "same" if a.split()[2] == b.split()[2] else "different")
EOF
)
check_eq "keep-alive: two requests on one connection, both answered" \
    "200 200 keep-alive same" "$ka"

req A pipe "GET /app.js HTTP/1.1\r\nHost: x\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
check_eq "three pipelined requests: three answers" 3 \
    "$("$NT_PYTHON" "$T/http.py" part "$T/pipe" count)"

# --- /status --------------------------------------------------------------------

peers_up() {
	get A status GET /status
	"$NT_PYTHON" -c 'import json,sys; p=json.load(open(sys.argv[1]))["peers"]; sys.exit(not all(p[x]["connected"] is True for x in ("B","C")))' \
	    <(body status)
}
check "/status: A's links to B and C are up" wait_until 10 peers_up
get A status GET /status
check_eq "/status: 200" 200 "$(st status)"
check_match "/status: Content-Type application/json" '^application/json(;|$)' \
    "$(hdr status Content-Type)"
body status >"$T/status.json"
check "/status: the body is JSON" "$NT_PYTHON" -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/status.json"
check_eq "/status: HEAD has no body" "200 0" \
    "$(get A status-head HEAD /status; echo "$(st status-head) $(bodylen status-head)")"

# status_get PATH: a field of $T/status.json ("a.b.c"), JSON-encoded.
status_get() {
	"$NT_PYTHON" -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k]
print(json.dumps(v))' "$T/status.json" "$1"
}
check_eq "/status: node" '"A"' "$(status_get node)"
check_eq "/status: messages equals the history count" "$(nt_count A)" "$(status_get messages)"
check_match "/status: lamport is a positive integer" '^[1-9][0-9]*$' "$(status_get lamport)"
check_match "/status: clients is a count" '^[0-9]+$' "$(status_get clients)"
for p in B C; do
	check_eq "/status: peers.$p.connected" true "$(status_get "peers.$p.connected")"
done
check_eq "/status: peers are exactly B and C" '["B", "C"]' \
    "$("$NT_PYTHON" -c 'import json,sys; print(json.dumps(sorted(json.load(open(sys.argv[1]))["peers"])))' "$T/status.json")"
for w in ws peer; do
	check_eq "/status: workers.$w.pid is the $w worker's pid" "$(nt_worker_pid A "$w")" \
	    "$(status_get "workers.$w.pid")"
	check_eq "/status: workers.$w.restarts" 0 "$(status_get "workers.$w.restarts")"
done

# --- /metrics ---------------------------------------------------------------------

get A metrics GET /metrics
check_eq "/metrics: 200" 200 "$(st metrics)"
check_match "/metrics: Content-Type text/plain" '^text/plain(;|$)' "$(hdr metrics Content-Type)"
body metrics >"$T/metrics.txt"
mline() { grep -qxF -- "$1" "$T/metrics.txt"; }
check "/metrics: nodetalk_messages_stored $(nt_count A)" \
    mline "nodetalk_messages_stored $(nt_count A)"
check "/metrics: nodetalk_peer_up{peer=\"B\"} 1" mline 'nodetalk_peer_up{peer="B"} 1'
check "/metrics: nodetalk_peer_up{peer=\"C\"} 1" mline 'nodetalk_peer_up{peer="C"} 1'
check "/metrics: nodetalk_worker_restarts_total{worker=\"ws\"} 0" \
    mline 'nodetalk_worker_restarts_total{worker="ws"} 0'
check "/metrics: nodetalk_worker_restarts_total{worker=\"peer\"} 0" \
    mline 'nodetalk_worker_restarts_total{worker="peer"} 0'
# Every histogram: a TYPE line, buckets that never decrease, ending in +Inf,
# which equals _count; a _sum.
hist=$("$NT_PYTHON" - "$T/metrics.txt" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
names = [l.split()[2] for l in lines if l.startswith("# TYPE ") and l.split()[3] == "histogram"]
bad = []
for n in names:
    b = [(m.group(1), int(m.group(2))) for l in lines
         for m in [re.fullmatch(re.escape(n) + r'_bucket\{le="([^"]+)"\} (\d+)', l)] if m]
    cnt = [int(l.split()[1]) for l in lines if l.startswith(n + "_count ")]
    sm = [l for l in lines if re.fullmatch(re.escape(n) + r"_sum [0-9.e+-]+", l)]
    if not b or b[-1][0] != "+Inf" or any(x[1] > y[1] for x, y in zip(b, b[1:])) \
            or len(cnt) != 1 or cnt[0] != b[-1][1] or len(sm) != 1:
        bad.append(n)
print(len(names), "histograms", "bad: " + " ".join(bad) if bad else "all well-formed")
EOF
)
check_match "/metrics: histogram lines, well-formed" '^[1-9][0-9]* histograms all well-formed$' "$hist"
check "/metrics: a commit-latency histogram counted the messages" \
    grep -qE '^nodetalk_commit_seconds_count [1-9]' "$T/metrics.txt"

# --- nodetalk --status ------------------------------------------------------------

ntstatus() {
	timeout 30 "$NT_CLIENT" --server-host "${NT_ADDR[$1]}" --port "$P" --timeout 5 --status
}
out=$(ntstatus A)
check_eq "nodetalk --status (A): exit 0" 0 "$?"
printf '%s\n' "$out" | sed 's/^/#   /'
# node_line ID: "ID messages" from the --status output, or the whole line.
node_line() {
	printf '%s\n' "$out" | awk -v id="$1" '$1 == id { print $1, ($3 ~ /^unreachable/ ? $0 : $3) }'
}
for id in A B C; do
	check_eq "nodetalk --status: node $id with its message count" "$id 3" "$(node_line "$id")"
done

nt_stop C
check_eq "C stops cleanly" 0 "$?"
out=$(ntstatus A)
check_eq "nodetalk --status (A) with C down: still exit 0" 0 "$?"
printf '%s\n' "$out" | sed 's/^/#   /'
check_match "nodetalk --status: C unreachable" '^C +[^ ]+ +unreachable' \
    "$(printf '%s\n' "$out" | grep '^C ')"
check_eq "nodetalk --status: A still shows its count" "A 3" "$(node_line A)"
a_sees_c_down() { ntstatus A | grep -qE '^A .*C DOWN'; }
check "nodetalk --status: A's link to C is DOWN" wait_until 10 a_sees_c_down
check_eq "nodetalk --status: B still shows its count" "B 3" "$(node_line B)"

out=$(ntstatus C 2>&1)
check_eq "nodetalk --status against the stopped C: exit 1" 1 "$?"
printf '%s\n' "$out" | sed 's/^/#   /'

nt_finish
