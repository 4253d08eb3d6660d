#!/usr/bin/python3
"""browser.py: drive Debian's headless Chromium over the DevTools protocol.

No Playwright or Puppeteer: only python3-websockets (10.x, asyncio API) and
/usr/bin/chromium.  A shell test cannot hold a WebSocket open between two
commands, so this runs as a small server that owns one Chromium, and every
step of the test is one short client call:

  browser.py serve --addr-file F [--chromium PATH] [--lifetime SECS]
                   [--width W --height H]
      Start Chromium (headless, fresh profile in a temp dir, DevTools port
      read from DevToolsActivePort), listen on a Unix socket in that temp
      dir and write the socket's path to F.  Runs until "quit", SIGTERM,
      SIGINT, SIGHUP, its parent going away or --lifetime seconds (default
      900), then kills Chromium's process group and removes the temp dir.

  browser.py call --addr-file F [--timeout SECS] CMD ARG...
      Send one command, print its value (a string as is, anything else as
      JSON) and exit 0; on an error print it to stderr and exit 1 (2 when
      the server cannot be reached).

Commands (PAGE is a name the test picks, e.g. "A"):
  ping                        "pong"
  open PAGE URL               new page in a browser context of its own (own
                              cookies and storage), wait for the load
  eval PAGE JS                Runtime.evaluate with awaitPromise; the value
  wait PAGE JS [SECS]         evaluate JS every 0.1 s until it is truthy
                              (default 15 s); the value, or an error naming
                              the last value seen
  type PAGE SELECTOR TEXT     focus the element, select what it holds and
                              type TEXT over it (Input.insertText: real
                              beforeinput/input events)
  click PAGE SELECTOR         scroll it into view and click its centre with
                              real mouse events; fails if something else
                              is on top of it
  key PAGE KEY                press and release KEY (Enter, Tab, Escape,
                              Backspace or one character)
  shot PAGE FILE              PNG screenshot of the viewport into FILE
  hide PAGE / show PAGE       put another tab in front of the page in its
                              window (document.hidden becomes true), or
                              close that tab and bring the page back
  events PAGE                 what the page did on its own: JS dialogs
                              (auto-dismissed), uncaught exceptions, console
                              calls, log entries
  close PAGE                  close the page and its context
  quit                        stop the server (and Chromium)

Every CDP call has a timeout (15 s by default) and so has every client call.
"""

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

try:
    import websockets
except ImportError:  # pragma: no cover - reported to the shell test
    websockets = None

CDP_TIMEOUT = 15.0
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    # Two pages side by side: neither may have its timers throttled for
    # being in the background, or a reconnect backoff would stretch.
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--mute-audio",
    "--password-store=basic",
    "--use-mock-keychain",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]

KEYS = {
    "Enter": ("Enter", 13, "\r"),
    "Tab": ("Tab", 9, None),
    "Escape": ("Escape", 27, None),
    "Backspace": ("Backspace", 8, None),
}


def log(*a):
    print(time.strftime("%H:%M:%S"), "browser.py:", *a, file=sys.stderr,
          flush=True)


class CDPError(Exception):
    pass


class CDP:
    """One WebSocket to the browser; sessions are multiplexed (flatten)."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.pending = {}
        self.listeners = {}     # sessionId -> callable(method, params)
        self.closed = None
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if "id" in msg:
                    fut = self.pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                    continue
                fn = self.listeners.get(msg.get("sessionId"))
                if fn is not None:
                    try:
                        fn(msg.get("method"), msg.get("params") or {})
                    except Exception as e:  # a listener bug must not kill us
                        log("listener:", repr(e))
        except Exception as e:
            self.closed = repr(e)
        else:
            self.closed = "DevTools connection closed"
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(CDPError(self.closed))
        self.pending.clear()

    async def send(self, method, params=None, session=None,
                   timeout=CDP_TIMEOUT):
        if self.closed:
            raise CDPError(f"{method}: {self.closed}")
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self.pending[mid] = fut
        await self.ws.send(json.dumps(msg))
        try:
            res = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self.pending.pop(mid, None)
            raise CDPError(f"{method}: no answer in {timeout:g} s") from None
        if "error" in res:
            raise CDPError(f"{method}: {res['error'].get('message')} "
                           f"{res['error'].get('data', '')}".rstrip())
        return res.get("result", {})


class Page:
    def __init__(self, browser, name, context, target, session):
        self.b = browser
        self.name = name
        self.context = context
        self.target = target
        self.session = session
        self.dialogs = []
        self.exceptions = []
        self.console = []
        self.logs = []
        self.cover = None       # the tab "hide" put in front of this page

    def on_event(self, method, p):
        if method == "Page.javascriptDialogOpening":
            self.dialogs.append({"type": p.get("type"),
                                 "message": p.get("message")})
            log(f"[{self.name}] JS dialog ({p.get('type')}): "
                f"{p.get('message')!r}: dismissed")
            asyncio.ensure_future(self._dismiss())
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = (d.get("exception") or {}).get("description") or \
                d.get("text")
            self.exceptions.append(text)
            log(f"[{self.name}] uncaught: {text}")
        elif method == "Runtime.consoleAPICalled":
            args = [a.get("value", a.get("description", a.get("type")))
                    for a in p.get("args", [])]
            entry = {"type": p.get("type"), "args": args}
            self.console.append(entry)
            log(f"[{self.name}] console.{p.get('type')}:",
                " ".join(str(a) for a in args))
        elif method == "Log.entryAdded":
            e = p.get("entry", {})
            entry = {"level": e.get("level"), "source": e.get("source"),
                     "text": e.get("text"), "url": e.get("url")}
            self.logs.append(entry)
            log(f"[{self.name}] log {e.get('level')}: {e.get('text')} "
                f"{e.get('url') or ''}".rstrip())

    async def _dismiss(self):
        try:
            await self.send("Page.handleJavaScriptDialog", {"accept": False})
        except CDPError as e:
            log(f"[{self.name}] dismissing a dialog: {e}")

    def send(self, method, params=None, timeout=CDP_TIMEOUT):
        return self.b.cdp.send(method, params, self.session, timeout)

    async def evaluate(self, expr, timeout=CDP_TIMEOUT):
        res = await self.send("Runtime.evaluate", {
            "expression": expr, "awaitPromise": True,
            "returnByValue": True, "userGesture": True,
        }, timeout=timeout)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            text = (d.get("exception") or {}).get("description") or \
                d.get("text")
            raise CDPError(f"JS error: {text}")
        r = res.get("result", {})
        if r.get("type") == "undefined":
            return None
        return r.get("value", r.get("description"))

    async def wait(self, expr, secs=15.0):
        end = time.monotonic() + secs
        last = None
        while True:
            try:
                last = await self.evaluate(expr, timeout=min(
                    CDP_TIMEOUT, max(1.0, end - time.monotonic())))
                if last:
                    return last
            except CDPError as e:
                last = f"<{e}>"
            if time.monotonic() >= end:
                raise CDPError(f"timed out after {secs:g} s waiting for "
                               f"{expr[:300]!r}; last value: "
                               f"{json.dumps(last)[:500]}")
            await asyncio.sleep(0.1)

    async def navigate(self, url, secs=20.0):
        res = await self.send("Page.navigate", {"url": url})
        if res.get("errorText"):
            raise CDPError(f"{url}: {res['errorText']}")
        await self.wait("document.readyState === 'complete' && "
                        "location.href !== 'about:blank'", secs)

    async def focus(self, sel):
        ok = await self.evaluate(
            "(() => { const e = document.querySelector(%s);"
            " if (!e) throw new Error('no element ' + %s);"
            " e.scrollIntoView({block: 'center'}); e.focus();"
            " if (typeof e.select === 'function') e.select();"
            " return document.activeElement === e; })()"
            % (json.dumps(sel), json.dumps(sel)))
        if not ok:
            raise CDPError(f"{sel} did not take the focus")

    async def type(self, sel, text):
        await self.focus(sel)
        if text == "":
            await self.key("Backspace")
        else:
            await self.send("Input.insertText", {"text": text})
        return await self.evaluate(
            f"document.querySelector({json.dumps(sel)}).value")

    async def click(self, sel):
        pos = await self.evaluate(
            "(() => { const e = document.querySelector(%s);"
            " if (!e) throw new Error('no element ' + %s);"
            " e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect();"
            " if (r.width === 0 || r.height === 0)"
            "   throw new Error(%s + ' is not visible');"
            " const x = r.left + r.width / 2, y = r.top + r.height / 2;"
            " const top = document.elementFromPoint(x, y);"
            " if (!top || (top !== e && !e.contains(top)))"
            "   throw new Error(%s + ' is covered by ' +"
            "     (top ? top.outerHTML.slice(0, 80) : 'nothing'));"
            " return [x, y]; })()"
            % (json.dumps(sel), json.dumps(sel), json.dumps(sel),
               json.dumps(sel)))
        x, y = pos
        await self.send("Input.dispatchMouseEvent",
                        {"type": "mouseMoved", "x": x, "y": y})
        for t in ("mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent",
                            {"type": t, "x": x, "y": y, "button": "left",
                             "buttons": 1 if t == "mousePressed" else 0,
                             "clickCount": 1})
        return [x, y]

    async def key(self, key):
        if key in KEYS:
            code, vk, text = KEYS[key]
        elif len(key) == 1:
            code, vk, text = None, ord(key.upper()), key
        else:
            raise CDPError(f"unknown key {key!r}")
        down = {"type": "keyDown" if text else "rawKeyDown", "key": key,
                "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk}
        if code:
            down["code"] = code
        if text:
            down["text"] = text
            down["unmodifiedText"] = text
        await self.send("Input.dispatchKeyEvent", down)
        up = {"type": "keyUp", "key": key, "windowsVirtualKeyCode": vk,
              "nativeVirtualKeyCode": vk}
        if code:
            up["code"] = code
        await self.send("Input.dispatchKeyEvent", up)

    async def hide(self):
        """Another tab in this page's window, in front: the page is hidden,
        as when the user switches tabs.  (Focus emulation, which keeps
        every page visible, is off meanwhile.)"""
        await self.send("Emulation.setFocusEmulationEnabled",
                        {"enabled": False})
        if self.cover is None:
            self.cover = (await self.b.cdp.send("Target.createTarget", {
                "url": "about:blank", "browserContextId": self.context,
                "background": False, "newWindow": False}))["targetId"]
        await self.b.cdp.send("Target.activateTarget",
                              {"targetId": self.cover})
        return await self.wait("document.visibilityState === 'hidden'", 10)

    async def show(self):
        if self.cover is not None:
            await self.b.cdp.send("Target.closeTarget",
                                  {"targetId": self.cover})
            self.cover = None
        await self.b.cdp.send("Target.activateTarget",
                              {"targetId": self.target})
        await self.send("Emulation.setFocusEmulationEnabled",
                        {"enabled": True})
        return await self.wait("document.visibilityState === 'visible'", 10)

    async def shot(self, path):
        res = await self.send("Page.captureScreenshot",
                              {"format": "png", "fromSurface": True},
                              timeout=30.0)
        data = base64.b64decode(res["data"])
        tmp = path + ".part"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return {"file": path, "bytes": len(data)}


class Browser:
    """One Chromium process with its own profile, and the pages in it."""

    def __init__(self, chromium="/usr/bin/chromium", width=1000, height=720,
                 tmp=None):
        self.chromium = chromium
        self.width = width
        self.height = height
        self.dir = tempfile.mkdtemp(prefix="nt-browser-", dir=tmp)
        self.profile = os.path.join(self.dir, "profile")
        os.mkdir(self.profile)
        self.proc = None
        self.cdp = None
        self.pages = {}

    async def start(self, secs=30.0):
        out = open(os.path.join(self.dir, "chromium.out"), "wb")
        self.proc = subprocess.Popen(
            [self.chromium, *CHROMIUM_FLAGS,
             f"--user-data-dir={self.profile}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)     # its own process group: see kill()
        out.close()
        log(f"chromium pid {self.proc.pid}, profile {self.profile}")
        portfile = os.path.join(self.profile, "DevToolsActivePort")
        end = time.monotonic() + secs
        lines = []
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise CDPError(f"chromium exited with status "
                               f"{self.proc.returncode}: {self.output()}")
            try:
                with open(portfile) as f:
                    lines = f.read().split("\n")
            except OSError:
                lines = []
            if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                break
            await asyncio.sleep(0.1)
        else:
            raise CDPError(f"no {portfile} after {secs:g} s: "
                           f"{self.output()}")
        url = f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
        log("DevTools at", url)
        ws = await asyncio.wait_for(websockets.connect(
            url, max_size=None, ping_interval=None, open_timeout=10,
            close_timeout=2), 15)
        self.cdp = CDP(ws)
        v = await self.cdp.send("Browser.getVersion")
        log("connected:", v.get("product"), "protocol",
            v.get("protocolVersion"))

    def output(self, n=1500):
        try:
            with open(os.path.join(self.dir, "chromium.out"), "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    async def open(self, name, url):
        if name in self.pages:
            raise CDPError(f"page {name} is already open")
        ctx = (await self.cdp.send("Target.createBrowserContext",
                                   {"disposeOnDetach": True}))
        ctx = ctx["browserContextId"]
        target = (await self.cdp.send("Target.createTarget", {
            "url": "about:blank", "browserContextId": ctx,
            "width": self.width, "height": self.height}))["targetId"]
        session = (await self.cdp.send("Target.attachToTarget", {
            "targetId": target, "flatten": True}))["sessionId"]
        page = Page(self, name, ctx, target, session)
        self.cdp.listeners[session] = page.on_event
        self.pages[name] = page
        for m in ("Page.enable", "Runtime.enable", "Log.enable"):
            await page.send(m)
        await page.send("Emulation.setDeviceMetricsOverride", {
            "width": self.width, "height": self.height,
            "deviceScaleFactor": 1, "mobile": False})
        # Both pages behave as if they had the focus (focus(), :focus, and
        # no "hidden" page whose timers the browser may slow down).
        await page.send("Emulation.setFocusEmulationEnabled",
                        {"enabled": True})
        await page.navigate(url)
        log(f"[{name}] opened {url}")
        return await page.evaluate("location.href")

    async def close_page(self, name):
        page = self.page(name)
        try:
            await self.cdp.send("Target.closeTarget",
                                {"targetId": page.target})
            await self.cdp.send("Target.disposeBrowserContext",
                                {"browserContextId": page.context})
        finally:
            self.cdp.listeners.pop(page.session, None)
            del self.pages[name]
        return True

    def page(self, name):
        try:
            return self.pages[name]
        except KeyError:
            raise CDPError(f"no page named {name!r} (open: "
                           f"{', '.join(self.pages) or 'none'})") from None

    async def stop(self):
        if self.cdp is not None and not self.cdp.closed:
            try:
                await asyncio.wait_for(self.cdp.send("Browser.close",
                                                     timeout=3), 4)
            except Exception:
                pass
            try:
                await asyncio.wait_for(self.cdp.ws.close(), 3)
            except Exception:
                pass
        self.kill()

    def kill(self):
        """Chromium and every process it forked: its process group."""
        p = self.proc
        if p is not None:
            pgid = p.pid        # start_new_session: pgid == pid
            for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                end = time.monotonic() + wait
                while time.monotonic() < end:
                    p.poll()
                    try:
                        os.killpg(pgid, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.05)
                else:
                    continue
                break
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                log(f"chromium pid {p.pid} did not exit")
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


# --- the server --------------------------------------------------------------

async def dispatch(b, cmd, args):
    def need(n, usage):
        if len(args) < n:
            raise CDPError(f"usage: {cmd} {usage}")

    if cmd == "ping":
        return "pong"
    if cmd == "open":
        need(2, "PAGE URL")
        return await b.open(args[0], args[1])
    if cmd == "eval":
        need(2, "PAGE JS")
        return await b.page(args[0]).evaluate(args[1])
    if cmd == "wait":
        need(2, "PAGE JS [SECS]")
        secs = float(args[2]) if len(args) > 2 else 15.0
        return await b.page(args[0]).wait(args[1], secs)
    if cmd == "type":
        need(3, "PAGE SELECTOR TEXT")
        return await b.page(args[0]).type(args[1], args[2])
    if cmd == "click":
        need(2, "PAGE SELECTOR")
        return await b.page(args[0]).click(args[1])
    if cmd == "key":
        need(2, "PAGE KEY")
        await b.page(args[0]).key(args[1])
        return True
    if cmd == "shot":
        need(2, "PAGE FILE")
        return await b.page(args[0]).shot(os.path.abspath(args[1]))
    if cmd in ("hide", "show"):
        need(1, "PAGE")
        p = b.page(args[0])
        return await (p.hide() if cmd == "hide" else p.show())
    if cmd == "events":
        need(1, "PAGE")
        p = b.page(args[0])
        return {"dialogs": p.dialogs, "exceptions": p.exceptions,
                "console": p.console, "logs": p.logs}
    if cmd == "close":
        need(1, "PAGE")
        return await b.close_page(args[0])
    raise CDPError(f"unknown command {cmd!r}")


async def serve(opts):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    why = []

    def quit_(reason):
        if not stop.is_set():
            why.append(reason)
            stop.set()

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(s, quit_, signal.Signals(s).name)

    b = Browser(opts.chromium, opts.width, opts.height)
    try:
        await b.start()
        sock = os.path.join(b.dir, "sock")

        async def client(reader, writer):
            try:
                line = await asyncio.wait_for(reader.readline(), 10)
                req = json.loads(line)
                cmd, args = req.get("cmd"), req.get("args") or []
                if cmd == "quit":
                    rep = {"ok": True, "value": "bye"}
                    quit_("quit")
                else:
                    try:
                        rep = {"ok": True,
                               "value": await dispatch(b, cmd, args)}
                    except (CDPError, ValueError, OSError) as e:
                        rep = {"ok": False, "error": str(e)}
                        log(f"{cmd} {json.dumps(args)[:200]}: {e}")
                writer.write(json.dumps(rep).encode() + b"\n")
                await writer.drain()
            except Exception as e:
                log("client:", repr(e))
            finally:
                writer.close()

        server = await asyncio.start_unix_server(client, path=sock)
        os.chmod(sock, 0o600)
        tmp = opts.addr_file + ".part"
        with open(tmp, "w") as f:
            f.write(sock + "\n")
        os.replace(tmp, opts.addr_file)
        log("ready:", sock)

        parent = os.getppid()
        end = time.monotonic() + opts.lifetime
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
            if os.getppid() != parent:
                quit_("parent went away")
            elif time.monotonic() > end:
                quit_(f"lifetime of {opts.lifetime:g} s is over")
            elif b.proc is not None and b.proc.poll() is not None:
                quit_(f"chromium exited ({b.proc.returncode}): "
                      f"{b.output(500)}")
            elif b.cdp.closed:
                quit_(f"DevTools: {b.cdp.closed}")
        log("stopping:", why[0] if why else "?")
        server.close()
    finally:
        await b.stop()
        try:
            os.unlink(opts.addr_file)
        except OSError:
            pass
    return 0


def call(opts):
    try:
        with open(opts.addr_file) as f:
            path = f.read().strip()
    except OSError as e:
        print(f"browser.py: no server ({e})", file=sys.stderr)
        return 2
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(opts.timeout)
    try:
        s.connect(path)
        s.sendall(json.dumps({"cmd": opts.cmd, "args": opts.args}).encode()
                  + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    except OSError as e:   # socket.timeout included
        print(f"browser.py: {opts.cmd}: {e or 'timed out'}", file=sys.stderr)
        return 2
    finally:
        s.close()
    try:
        rep = json.loads(buf)
    except ValueError:
        print(f"browser.py: {opts.cmd}: bad answer {buf[:200]!r}",
              file=sys.stderr)
        return 2
    if not rep.get("ok"):
        print(f"browser.py: {opts.cmd}: {rep.get('error')}", file=sys.stderr)
        return 1
    v = rep.get("value")
    if isinstance(v, str):
        print(v)
    elif v is not None:
        print(json.dumps(v))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    sv = sub.add_parser("serve")
    sv.add_argument("--addr-file", required=True)
    sv.add_argument("--chromium", default="/usr/bin/chromium")
    sv.add_argument("--lifetime", type=float, default=900)
    sv.add_argument("--width", type=int, default=1000)
    sv.add_argument("--height", type=int, default=720)
    cl = sub.add_parser("call")
    cl.add_argument("--addr-file", required=True)
    cl.add_argument("--timeout", type=float, default=None,
                    help="default: 60 s, or a wait's SECS + 30")
    cl.add_argument("cmd")
    cl.add_argument("args", nargs=argparse.REMAINDER)
    opts = ap.parse_args()
    if opts.mode == "call":
        if opts.timeout is None:
            opts.timeout = 60.0
            if opts.cmd == "wait" and len(opts.args) > 2:
                try:
                    opts.timeout = max(60.0, float(opts.args[2]) + 30)
                except ValueError:
                    pass
        return call(opts)
    if websockets is None:
        print("browser.py: python3-websockets is missing", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(opts))
    except CDPError as e:
        log("failed:", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
