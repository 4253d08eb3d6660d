#!/bin/bash
# t_burst.sh: a burst of connects loses no SYNs.  While node A's ws worker
# is stopped (a node too busy to accept for a moment), N clients connect at
# once: the kernel completes every handshake into the listen queue, as
# long as it is net.core.somaxconn long (with a queue of 128 the rest of
# the SYNs would be dropped and retried by TCP a second or more later).
# Once the worker runs again, each of them gets its answer.
# shellcheck disable=SC2317  # helpers run through check and wait_until
[ -n "$BASH_VERSION" ] || exec /bin/bash "$0" "$@"  # $(SHELL) may be dash
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"
nt_init burst
N=400
somax=$(cat /proc/sys/net/core/somaxconn)
[ "$somax" -gt "$N" ] ||
    nt_fatal "net.core.somaxconn is $somax here; this test needs more than $N"
nt_write_conf --set 'max_clients = 1000;' --set 'max_clients_per_address = 1000;'
nt_start A
HA=${NT_ADDR[A]}
ws=$(nt_worker_pid A ws)
check "A's ws worker is known" test -n "$ws"

# The python side: N connects at once; who completed the handshake within
# 0.8 s (the first SYN retransmit comes after 1 s); then, on "go", a
# request on each and the count of 200s.
cat >"$T/burst.py" <<'PY'
import os, resource, select, socket, sys, time
host, port, n, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 64)), hard))
socks = []
for _ in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((host, port))
    socks.append(s)
pending = {s.fileno(): s for s in socks}
up = []
p = select.poll()
for s in socks:
    p.register(s, select.POLLOUT)
end = time.monotonic() + 0.8
while pending and time.monotonic() < end:
    for fd, _ in p.poll(50):
        s = pending.pop(fd)
        p.unregister(fd)
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            up.append(s)
print("connected", len(up), flush=True)
while not os.path.exists(go):
    time.sleep(0.02)
for s in up:
    s.setblocking(True)
    s.settimeout(10)
    s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
ok = 0
for s in up:
    try:
        if s.recv(64).startswith(b"HTTP/1.1 200 "):
            ok += 1
    except OSError:
        pass
print("answered", ok, flush=True)
PY

kill -STOP "$ws"
nt_bg "$T/burst.out" timeout 60 "$NT_PYTHON" "$T/burst.py" "$HA" "$P" "$N" "$T/go"
burst=$NT_BG_PID
check "the burst is in" wait_until 20 grep -q '^connected' "$T/burst.out"
kill -CONT "$ws"
touch "$T/go"
check_eq "all $N connects of the burst completed at once" "connected $N" \
    "$(grep '^connected' "$T/burst.out")"
check "the burst is answered" wait_until 30 grep -q '^answered' "$T/burst.out"
wait "$burst"
check_eq "each connection of the burst got /status" "answered $N" \
    "$(grep '^answered' "$T/burst.out")"
nt_finish
