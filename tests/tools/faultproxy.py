#!/usr/bin/python3
"""faultproxy.py: a TCP proxy on loopback that can cut links, for the
nodetalk partition tests.  asyncio, standard library only.

  faultproxy.py --route NAME=LHOST:LPORT=THOST:TPORT ... --state FILE
                [--control FILE] [--lifetime SECS]

Each --route listens on LHOST:LPORT and forwards every connection to
THOST:TPORT (both must be 127.x.y.z).  A route is "up", "cut", "stall" or
"mute":

  up     bytes flow both ways;
  cut    every connection through the route is reset (both sides) and new
         connections are accepted and reset at once: a refused link;
  stall  connections stay open but nothing is forwarded either way (the
         proxy stops reading: TCP back-pressure), and new ones are held
         the same way; going back to "up" lets everything through: a
         partition that drops no connection;
  mute   like stall, but only for what the target sends: the client's
         bytes still reach the target, its answers are held (a request
         that is carried out while its answer is lost).

Control (polled every 50 ms):
  --control FILE: lines "gen N" (any number, echoed back) and
  "NAME cut" / "NAME stall" / "NAME mute" / "all cut" / "all stall"; routes
  not named are
  up.  An empty file or one without route lines heals every route.
  SIGUSR1 cuts every route, SIGUSR2 heals every route (they also bump gen).

After each change, and once at start when every listener is bound, the
proxy rewrites --state FILE atomically:
  gen N
  NAME up|cut|stall CONNS     (one line per route; CONNS = open connections)
and logs a line on stdout.  It exits after --lifetime seconds (default
120), on SIGTERM or SIGINT, and with status 1 when a listener cannot bind.
"""

import argparse
import asyncio
import ipaddress
import os
import signal
import sys
import time


def log(msg):
    print(f"faultproxy {time.strftime('%H:%M:%S')}: {msg}", flush=True)


def loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Conn:
    def __init__(self, route, cr, cw):
        self.route = route
        self.cr, self.cw = cr, cw
        self.ur = self.uw = None
        self.tasks = []
        self.go = asyncio.Event()   # set while client -> target flows
        self.back = asyncio.Event()     # set while target -> client flows
        self.set(route.state)

    def set(self, state):
        for ev, on in ((self.go, state in ("up", "mute")),
                       (self.back, state == "up")):
            if on:
                ev.set()
            else:
                ev.clear()

    def abort(self):
        for w in (self.cw, self.uw):
            if w is not None:
                try:
                    w.transport.abort()
                except Exception:   # already gone
                    pass
        for t in self.tasks:
            t.cancel()

    async def pump(self, r, w, go):
        try:
            while True:
                await go.wait()
                data = await r.read(65536)
                if not data:
                    break
                await go.wait()
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            # One side ended: end the other (half-close is not needed here).
            self.abort()

    async def run(self):
        rt = self.route
        try:
            await self.go.wait()
            self.ur, self.uw = await asyncio.wait_for(
                asyncio.open_connection(rt.thost, rt.tport), 3)
        except (OSError, asyncio.TimeoutError, asyncio.CancelledError):
            self.abort()
            rt.conns.discard(self)
            return
        self.tasks = [
            asyncio.ensure_future(self.pump(self.cr, self.uw, self.go)),
            asyncio.ensure_future(self.pump(self.ur, self.cw, self.back))]
        try:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        finally:
            rt.conns.discard(self)


class Route:
    def __init__(self, spec):
        try:
            self.name, l, t = spec.split("=")
            self.lhost, lport = l.rsplit(":", 1)
            self.thost, tport = t.rsplit(":", 1)
            self.lport, self.tport = int(lport), int(tport)
        except ValueError:
            raise SystemExit(f"faultproxy: bad --route {spec!r}: want "
                             "NAME=LHOST:LPORT=THOST:TPORT")
        if not loopback(self.lhost) or not loopback(self.thost):
            raise SystemExit(f"faultproxy: --route {spec!r}: loopback "
                             "addresses only")
        self.state = "up"
        self.conns = set()
        self.server = None
        self.accepted = 0
        self.reset = 0

    async def handle(self, cr, cw):
        self.accepted += 1
        if self.state == "cut":
            self.reset += 1
            cw.transport.abort()
            return
        c = Conn(self, cr, cw)
        self.conns.add(c)
        await c.run()

    def set(self, state):
        if state == self.state:
            return
        old, self.state = self.state, state
        for c in list(self.conns):
            if state == "cut":
                c.abort()
                self.conns.discard(c)
                self.reset += 1
            else:
                c.set(state)
        log(f"{self.name} {old} -> {state}")


class Proxy:
    def __init__(self, a):
        self.a = a
        self.routes = [Route(s) for s in a.route]
        self.gen = 0
        self.last_control = None
        self.stop = asyncio.Event()

    def write_state(self):
        tmp = self.a.state + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"gen {self.gen}\n")
            for r in self.routes:
                f.write(f"{r.name} {r.state} {len(r.conns)}\n")
        os.replace(tmp, self.a.state)

    def apply(self, wanted, gen):
        for r in self.routes:
            r.set(wanted.get(r.name, wanted.get("all", "up")))
        self.gen = gen
        self.write_state()

    def read_control(self):
        try:
            with open(self.a.control) as f:
                text = f.read()
        except OSError:
            return
        if text == self.last_control:
            return
        self.last_control = text
        wanted, gen = {}, self.gen + 1
        for line in text.splitlines():
            w = line.split()
            if len(w) == 2 and w[0] == "gen" and w[1].isdigit():
                gen = int(w[1])
            elif len(w) == 2 and w[1] in ("cut", "stall", "mute", "up"):
                wanted[w[0]] = w[1]
            elif w:
                log(f"ignoring control line {line!r}")
        self.apply(wanted, gen)

    async def main(self):
        loop = asyncio.get_running_loop()
        for r in self.routes:
            try:
                r.server = await asyncio.start_server(
                    r.handle, r.lhost, r.lport, reuse_address=True)
            except OSError as e:
                log(f"cannot listen on {r.lhost}:{r.lport}: {e}")
                return 1
        loop.add_signal_handler(signal.SIGUSR1, lambda: self.apply(
            {"all": "cut"}, self.gen + 1))
        loop.add_signal_handler(signal.SIGUSR2, lambda: self.apply(
            {}, self.gen + 1))
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        loop.add_signal_handler(signal.SIGINT, self.stop.set)
        log("listening: " + ", ".join(
            f"{r.name} {r.lhost}:{r.lport}->{r.thost}:{r.tport}"
            for r in self.routes))
        self.write_state()
        end = loop.time() + self.a.lifetime
        while not self.stop.is_set() and loop.time() < end:
            if self.a.control:
                self.read_control()
            try:
                await asyncio.wait_for(self.stop.wait(), 0.05)
            except asyncio.TimeoutError:
                pass
        log("stopping" if self.stop.is_set() else "lifetime over")
        for r in self.routes:
            r.server.close()
            for c in list(r.conns):
                c.abort()
        for r in self.routes:
            log(f"{r.name}: accepted {r.accepted}, reset {r.reset}")
        return 0


def main(argv):
    p = argparse.ArgumentParser(prog="faultproxy.py")
    p.add_argument("--route", action="append", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--control")
    p.add_argument("--lifetime", type=float, default=120.0)
    a = p.parse_args(argv)
    return asyncio.run(Proxy(a).main())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
