#!/usr/bin/python3
"""notifysock.py: stand in for systemd's notification socket.

  notifysock.py SOCKET OUT [--lifetime SECS]

Binds a Unix datagram socket at SOCKET (give it to a daemon as
NOTIFY_SOCKET) and appends every datagram received to OUT as one JSON
line: {"mono_us": when it arrived (CLOCK_MONOTONIC, microseconds),
"fields": {"READY": "1", ...}, "raw": the text}.  Runs until SIGTERM or
SECS (default 600) have passed.
"""
import json
import os
import signal
import socket
import sys
import time


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, out = sys.argv[1], sys.argv[2]
    life = 600.0
    if len(sys.argv) == 5 and sys.argv[3] == "--lifetime":
        life = float(sys.argv[4])
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        os.unlink(path)
    except OSError:
        pass
    s.bind(path)
    s.settimeout(0.5)
    end = time.monotonic() + life
    with open(out, "a") as f:
        print(json.dumps({"listening": path}), file=f, flush=True)
        while time.monotonic() < end:
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            text = data.decode("utf-8", "replace")
            fields = dict(l.split("=", 1) for l in text.split("\n")
                          if "=" in l)
            rec = {"mono_us": time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                   // 1000, "fields": fields, "raw": text}
            print(json.dumps(rec), file=f, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
