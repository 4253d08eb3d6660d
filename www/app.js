/* nodetalk chat page: plain JS, no build step, no dependencies.
 *
 * Protocol: DESIGN.md §5.  One WebSocket to the node that served this page.
 * Every message is kept in memory keyed by its cluster id ("A-17") so that
 * history, live pushes, our own echoes and catch-up after a reconnect can
 * overlap freely without anything being shown twice.
 *
 * Security rule for this file: message data only ever reaches the DOM
 * through textContent / createTextNode, never innerHTML.
 */
(() => {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const ui = {
    body: document.body, node: $('node'), host: $('host'), status: $('status'),
    retry: $('retry'), list: $('messages'), jump: $('jump'), toasts: $('toasts'),
    older: $('older'),
    announce: $('announce'), form: $('composer'), name: $('name'),
    text: $('text'), send: $('send'), hint: $('hint'),
  };

  const BACKOFF_BASE = 1000;    // first retry after 0.5-1 s
  const BACKOFF_CAP = 30000;    // never wait longer than 15-30 s
  const OPEN_TIMEOUT = 10000;   // a handshake that hangs counts as a failure
  const NAME_MAX_BYTES = 64;    // NT_FROM_MAX on the node
  const PAGE = 100;             // older messages fetched per history request

  /* ---- storage: may throw (private mode, disabled cookies), so never fatal */
  function load(store, key, dflt) {
    try { const v = store.getItem(key); return v === null ? dflt : JSON.parse(v); }
    catch (e) { return dflt; }
  }
  function save(store, key, value) {
    try { store.setItem(key, JSON.stringify(value)); } catch (e) { /* memory only */ }
  }

  /* crypto.randomUUID only exists in secure contexts; a node reached over
   * plain http on a LAN address is not one, so build a v4 UUID by hand. */
  function uuid() {
    if (window.crypto && crypto.randomUUID) {
      try { return crypto.randomUUID(); } catch (e) { /* fall through */ }
    }
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /* ---- state */
  const byId = new Map();       // cluster id -> record (stored messages)
  const byClient = new Map();   // our client UUID -> record (own messages)
  const order = [];             // records in display (cluster) order
  const seen = new Map();       // origin -> { hi, ahead:Set } for "since"
  let maxLamport = 0;           // newest message seen, sent as "after"
  // Scrolling back: the first join brings the node's newest join_history
  // messages; "older" says more exist, fetched a page at a time with
  // "history" requests before the oldest message shown.
  let older = false;
  let paging = null;            // the message a page is before, while one comes
  let arrivals = 0;             // tie-breaker for records lacking lamport

  // Per tab: the UUIDs we sent (to recognise our echoes) and what is not yet
  // acknowledged.  sessionStorage survives a reload of this tab, so a message
  // typed just before a reload is still resent.
  const sentIds = new Set(load(sessionStorage, 'nodetalk.sent', []));
  let outbox = load(sessionStorage, 'nodetalk.outbox', []);
  const saveSent = () => save(sessionStorage, 'nodetalk.sent', [...sentIds].slice(-500));
  const saveOutbox = () => save(sessionStorage, 'nodetalk.outbox', outbox);

  let ws = null;                // current socket; events of older ones are ignored
  let live = false;             // true between "joined" and close
  let everJoined = false;
  let attempt = 0;              // consecutive failed connects, for the backoff
  let retryTimer = 0, tickTimer = 0, retryAt = 0;
  const inFlight = new Set();   // UUIDs sent on this socket, not yet acked

  /* ---- ordering: cluster order is (lamport, origin); own messages that are
   * not stored yet go last, in the order they were typed. */
  function cmp(a, b) {
    return (a.pending - b.pending) ||
      ((a.lamport ?? Infinity) - (b.lamport ?? Infinity) || 0) ||
      byteOrder(a.origin ?? '', b.origin ?? '') ||
      ((a.seq ?? 0) - (b.seq ?? 0)) || (a.n - b.n);
  }

  // Plain code-unit order, like the node's strcmp (localeCompare would fold case).
  function byteOrder(x, y) { return x < y ? -1 : x > y ? 1 : 0; }

  /* Catch-up vector.  We send the highest *contiguous* seq per origin rather
   * than the plain maximum: if seq 5 of B reached us before 4 (possible while
   * the node is still filling a gap), asking since B=5 would lose 4 forever.
   * Asking since B=3 only costs a duplicate, which dedup drops. */
  function noteSeen(origin, seq, old = false) {
    if (typeof origin !== 'string' || !Number.isSafeInteger(seq)) return;
    let s = seen.get(origin);
    if (!s) {
      // The first history may legitimately start above seq 1, and so may
      // a page of older ones; anything else met after a join is new to us,
      // so it must connect back to seq 1.
      s = { hi: everJoined && !old ? 0 : seq - 1, ahead: new Set() };
      seen.set(origin, s);
    }
    if (seq <= s.hi) return;
    s.ahead.add(seq);
    while (s.ahead.delete(s.hi + 1)) s.hi++;
  }
  function sinceVector() {
    const v = {};
    for (const [o, s] of seen) v[o] = s.hi;
    return v;
  }

  /* ---- rendering */
  function myName() { return ui.name.value.trim(); }
  function isOwn(rec) {
    return (rec.client_id && sentIds.has(rec.client_id)) ||
      (myName() !== '' && rec.from === myName());
  }

  function fmtTime(ts) {
    const d = new Date(ts), now = new Date();
    const t = d.toLocaleTimeString([], { hour: 'numeric', minute: '2-digit' });
    if (d.toDateString() === now.toDateString()) return t;
    const sameYear = d.getFullYear() === now.getFullYear();
    return d.toLocaleDateString([], sameYear ? { month: 'short', day: 'numeric' }
      : { year: 'numeric', month: 'short', day: 'numeric' }) + ' ' + t;
  }

  // A stable hue per sender so a busy room is easy to scan.
  function hue(name) {
    let h = 0;
    for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h % 360;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function build(rec) {
    const m = el('div', 'msg');
    const bubble = el('div', 'bubble');
    const meta = el('div', 'meta');
    meta.append(el('span', 'from'), el('time', 'time'));
    bubble.append(meta, el('div', 'text'), el('div', 'state'));
    m.append(bubble);
    rec.el = m;
    paint(rec);
    return m;
  }

  // (Re)draw one record; cheap enough to call on every change.
  function paint(rec) {
    const m = rec.el;
    if (rec.id) m.dataset.id = rec.id; else delete m.dataset.id;
    if (rec.client_id) m.dataset.clientId = rec.client_id;
    m.classList.toggle('own', !!isOwn(rec));
    m.classList.toggle('pending', !!rec.pending && !rec.failed);
    m.classList.toggle('failed', !!rec.failed);
    m.style.setProperty('--hue', hue(rec.from));
    m.querySelector('.from').textContent = rec.from || 'anonymous';
    m.querySelector('.text').textContent = rec.text ?? '';
    const time = m.querySelector('.time');
    if (Number.isFinite(rec.ts) && rec.ts > 0) {
      time.textContent = fmtTime(rec.ts);
      time.dateTime = new Date(rec.ts).toISOString();
      time.title = new Date(rec.ts).toLocaleString();
    }
    const state = m.querySelector('.state');
    state.replaceChildren();
    if (rec.failed) {
      const retry = el('button', 'link', 'Retry');
      const drop = el('button', 'link', 'Discard');
      retry.type = drop.type = 'button';
      retry.onclick = () => requeue(rec);
      drop.onclick = () => discard(rec);
      state.append(el('span', '', `Not sent: ${rec.failed} `), retry, drop);
    } else if (rec.pending) {
      state.textContent = inFlight.has(rec.client_id) ? 'sending…' : 'queued — will send when connected';
    }
  }

  function atBottom() {
    const l = ui.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 48;
  }
  function toBottom() {
    ui.list.scrollTop = ui.list.scrollHeight;
    ui.jump.hidden = true;
  }

  // Insert at the right place; nearly always the end, so search backwards.
  function place(rec) {
    let i = order.length;
    while (i > 0 && cmp(rec, order[i - 1]) < 0) i--;
    order.splice(i, 0, rec);
    ui.list.insertBefore(rec.el, order[i + 1] ? order[i + 1].el : null);
    group(i); group(i + 1);
  }
  function unplace(rec) {
    const i = order.indexOf(rec);
    if (i >= 0) { order.splice(i, 1); group(i); }
    rec.el.remove();
  }
  // Mark a message that continues a run by the same sender within 5 minutes.
  function group(i) {
    const cur = order[i], prev = order[i - 1];
    if (!cur) return;
    cur.el.classList.toggle('cont', !!prev && prev.from === cur.from &&
      Math.abs((cur.ts || 0) - (prev.ts || 0)) < 300000);
  }

  function add(rec, { scroll = false, old = false } = {}) {
    if (old) {
      // Older messages go in above what is read: keep it where it is.
      const l = ui.list, h = l.scrollHeight, top = l.scrollTop;
      rec.n = arrivals++;
      build(rec);
      place(rec);
      l.scrollTop = top + (l.scrollHeight - h);
      return;
    }
    const stick = scroll || atBottom();
    rec.n = arrivals++;
    build(rec);
    place(rec);
    if (stick) toBottom(); else if (live) ui.jump.hidden = false;
  }

  // Apply server fields to a record and move it if its order changed.
  function merge(rec, f) {
    const stick = atBottom();
    for (const k of ['origin', 'seq', 'lamport', 'ts', 'from', 'text', 'client_id']) {
      if (f[k] !== undefined && f[k] !== null) rec[k] = f[k];
    }
    if (f.id && !rec.id) { rec.id = String(f.id); byId.set(rec.id, rec); }
    if (rec.pending && rec.id) settle(rec);
    unplace(rec);
    place(rec);
    paint(rec);
    if (stick) toBottom();
  }

  /* ---- own messages */
  function settle(rec) {
    rec.pending = false;
    rec.failed = null;
    inFlight.delete(rec.client_id);
    outbox = outbox.filter((o) => o.client_id !== rec.client_id);
    saveOutbox();
  }

  function transmit(entry) {
    if (!live) return;
    // "after": the newest message shown here, so that an answer sorts after
    // its question on every node, even one the question has not reached.
    ws.send(JSON.stringify({ type: 'chat', from: entry.from, text: entry.text,
      id: entry.client_id, after: maxLamport }));
    inFlight.add(entry.client_id);
    const rec = byClient.get(entry.client_id);
    if (rec) paint(rec);
  }

  // After (re)joining: resend whatever is still unacknowledged, same UUID, so
  // the node stores it once even if the first attempt did get through.
  function flush() {
    for (const entry of outbox) transmit(entry);
  }

  function pendingRecord(entry) {
    const rec = { id: null, from: entry.from, text: entry.text, ts: entry.ts,
      client_id: entry.client_id, pending: true, failed: null };
    byClient.set(entry.client_id, rec);
    return rec;
  }

  function submit() {
    const text = ui.text.value;
    if (text.trim() === '') return;
    const from = cleanName(ui.name.value);
    if (!from) {
      hint('Enter a name first.');
      ui.name.focus();
      return;
    }
    const entry = { client_id: uuid(), from, text, ts: Date.now() };
    sentIds.add(entry.client_id); saveSent();
    outbox.push(entry); saveOutbox();
    add(pendingRecord(entry), { scroll: true });
    transmit(entry);
    ui.text.value = '';
    autosize();
    ui.text.focus();
  }

  function requeue(rec) {
    rec.failed = null;
    rec.pending = true;
    const entry = { client_id: rec.client_id, from: rec.from, text: rec.text, ts: rec.ts };
    outbox.push(entry); saveOutbox();
    paint(rec);
    transmit(entry);
  }

  function discard(rec) {
    unplace(rec);
    byClient.delete(rec.client_id);
    outbox = outbox.filter((o) => o.client_id !== rec.client_id);
    saveOutbox();
  }

  /* ---- scrolling back */
  // The oldest stored message shown: what the next page comes before.
  function oldestShown() {
    return order.find((r) => !r.pending && typeof r.origin === 'string' &&
      Number.isSafeInteger(r.seq) && Number.isSafeInteger(r.lamport));
  }
  function showOlder() {
    ui.older.hidden = !older;
    ui.older.disabled = !!paging || !live;
    ui.older.textContent = paging ? 'Loading older messages…' : 'Load older messages';
  }
  function requestOlder() {
    if (!older || paging || !live) return;
    const r = oldestShown();
    if (!r) return;
    paging = { origin: r.origin, seq: r.seq, lamport: r.lamport };
    ws.send(JSON.stringify({ type: 'history', before: paging, limit: PAGE }));
    showOlder();
  }
  // A chat of the page under way sorts before what it was asked before.
  function isPaged(f) {
    return paging && Number.isSafeInteger(f.lamport) &&
      cmp({ pending: false, lamport: f.lamport, origin: f.origin, seq: f.seq, n: 0 },
        { pending: false, ...paging, n: 0 }) < 0;
  }
  function onHistoryEnd(f) {
    paging = null;
    older = !!f.older;
    showOlder();
    if (f.count) announce(`${f.count} older messages loaded.`);
    // Still at the top, or the view not full yet: go on.
    if (ui.list.scrollTop < 80 ||
        ui.list.scrollHeight <= ui.list.clientHeight + 80) requestOlder();
  }

  /* ---- incoming frames */
  function onChat(f) {
    if (Number.isSafeInteger(f.lamport) && f.lamport > maxLamport) maxLamport = f.lamport;
    const old = isPaged(f);
    noteSeen(f.origin, f.seq, old);
    // Messages without origin/seq (seed prototype) still get shown; their
    // content stands in for an identity so a replay does not duplicate them.
    const id = f.id != null ? String(f.id)
      : `~${f.lamport ?? ''}|${f.ts ?? ''}|${f.from ?? ''}|${f.text ?? ''}`;
    const known = byId.get(id);
    const mine = f.client_id ? byClient.get(f.client_id) : null;
    if (known) {
      if (mine && mine !== known) discard(mine);   // stored twice in view: keep one
      if (known.lamport == null && f.lamport != null) merge(known, f);
      return;
    }
    if (mine) { merge(mine, { ...f, id }); return; }
    const rec = { id, from: f.from, text: f.text, ts: f.ts, origin: f.origin,
      seq: f.seq, lamport: f.lamport, client_id: f.client_id, pending: false };
    byId.set(id, rec);
    add(rec, { old });
  }

  function onAck(f) {
    // Acks carry our UUID as client_id; a node that omits it acks in order.
    const cid = f.client_id ?? inFlight.values().next().value;
    const rec = cid && byClient.get(cid);
    if (!rec) return;
    noteSeen(f.origin, f.seq);
    const known = f.id != null && byId.get(String(f.id));
    if (known && known !== rec) { discard(rec); return; }
    merge(rec, f);
  }

  function onError(f) {
    const text = f.message || f.code || 'error';
    // Errors do not name the frame they answer.  With exactly one chat of
    // ours unanswered on this socket it can only be about that one; mark it
    // instead of resending it forever.
    const cid = f.client_id || (inFlight.size === 1 ? [...inFlight][0] : null);
    const rec = cid && byClient.get(cid);
    if (live && rec && rec.pending) {
      settle(rec);
      rec.pending = true;   // still not stored, but no longer in the outbox
      rec.failed = text;
      paint(rec);
    }
    toast(text);
  }

  function onJoined(f) {
    live = true;
    attempt = 0;
    if (f.node != null) ui.node.textContent = String(f.node);
    setState('live');
    ui.list.setAttribute('aria-busy', 'false');
    if (everJoined) announce(`Reconnected to node ${f.node}.` + (f.count ? ` ${f.count} new.` : ''));
    // A rejoin (with since) says nothing about older messages.
    if (!everJoined) older = !!f.older;
    everJoined = true;
    showOlder();
    // Too few to scroll: fetch older ones until the view is full.
    if (ui.list.scrollHeight <= ui.list.clientHeight + 80) requestOlder();
    flush();
    if (atBottom()) toBottom();
  }

  function onFrame(data) {
    let f;
    try { f = JSON.parse(data); } catch (e) { return; }
    if (!f || typeof f !== 'object') return;
    switch (f.type) {
      case 'chat': onChat(f); break;
      case 'ack': onAck(f); break;
      case 'joined': onJoined(f); break;
      case 'history_end': onHistoryEnd(f); break;
      case 'error': onError(f); break;
      default: break;   // newer node, newer frame types: ignore
    }
  }

  /* ---- connection */
  function wsUrl() {
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/';
  }

  function connect() {
    clearTimeout(retryTimer); clearInterval(tickTimer);
    retryTimer = tickTimer = 0;
    setState('connecting');
    let sock;
    try { sock = new WebSocket(wsUrl()); } catch (e) { scheduleReconnect(); return; }
    ws = sock;
    live = false;
    inFlight.clear();
    const guard = setTimeout(() => sock.close(), OPEN_TIMEOUT);
    sock.onopen = () => {
      clearTimeout(guard);
      if (sock !== ws) return;
      const join = { type: 'join', from: cleanName(ui.name.value) || 'anonymous' };
      if (seen.size) join.since = sinceVector();   // catch up, not full history
      else ui.list.setAttribute('aria-busy', 'true');
      sock.send(JSON.stringify(join));
    };
    sock.onmessage = (e) => { if (sock === ws) onFrame(e.data); };
    sock.onerror = () => { /* always followed by close */ };
    sock.onclose = () => {
      clearTimeout(guard);
      if (sock !== ws) return;
      ws = null;
      live = false;
      paging = null;
      showOlder();
      inFlight.clear();
      for (const rec of byClient.values()) if (rec.pending) paint(rec);
      scheduleReconnect();
    };
  }

  // Capped exponential backoff with jitter, so a restarted node is not hit by
  // every browser at the same instant.  Reset only once a join succeeds.
  function scheduleReconnect() {
    const ceiling = Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt);
    attempt = Math.min(attempt + 1, 16);
    const delay = ceiling / 2 + Math.random() * ceiling / 2;
    retryAt = Date.now() + delay;
    retryTimer = setTimeout(connect, delay);
    tickTimer = setInterval(() => setState('reconnecting'), 1000);
    setState('reconnecting');
  }

  function reconnectNow() {
    if (retryTimer) connect();
  }

  function setState(state) {
    let label = state === 'live' ? 'live' : 'connecting…';
    if (state === 'reconnecting') {
      label = `reconnecting in ${Math.max(1, Math.ceil((retryAt - Date.now()) / 1000))}s`;
    }
    if (ui.body.dataset.state !== state) announce(state === 'live' ? 'Connected.' : label);
    ui.status.textContent = label;
    ui.status.dataset.state = state;
    ui.body.dataset.state = state;
    ui.retry.hidden = state !== 'reconnecting';
    ui.text.placeholder = state === 'live' ? 'Message' : 'Message (queued offline)';
  }

  /* ---- small UI helpers */
  function announce(s) { ui.announce.textContent = s; }

  function toast(s) {
    const t = el('div', 'toast', s);
    ui.toasts.append(t);
    while (ui.toasts.children.length > 3) ui.toasts.firstChild.remove();
    setTimeout(() => t.remove(), 6000);
  }

  let hintTimer = 0;
  function hint(s) {
    ui.hint.textContent = s;
    ui.hint.hidden = false;
    clearTimeout(hintTimer);
    hintTimer = setTimeout(() => { ui.hint.hidden = true; }, 4000);
  }

  // The node rejects control characters and names over 64 bytes.
  function cleanName(s) {
    let n = String(s).replace(/[\u0000-\u001f\u007f]/g, '').trim();
    const enc = new TextEncoder();
    while (enc.encode(n).length > NAME_MAX_BYTES) n = Array.from(n).slice(0, -1).join('');
    return n;
  }

  // Grow the box with its text up to the CSS max-height, then scroll inside.
  function autosize() {
    const t = ui.text;
    t.style.height = 'auto';
    if (t.value === '') { t.style.height = t.style.overflowY = ''; return; }   // rows=1
    const border = t.offsetHeight - t.clientHeight;
    t.style.height = `${t.scrollHeight + border}px`;
    t.style.overflowY = t.scrollHeight > t.clientHeight ? 'auto' : 'hidden';
  }

  /* ---- wiring */
  ui.host.textContent = location.host;
  ui.name.value = load(localStorage, 'nodetalk.name', '');
  autosize();

  let nameTimer = 0;
  ui.name.addEventListener('input', () => {
    save(localStorage, 'nodetalk.name', cleanName(ui.name.value));
    ui.hint.hidden = true;
    clearTimeout(nameTimer);   // "own" also means "same name": repaint, but not per keystroke
    nameTimer = setTimeout(() => order.forEach(paint), 300);
  });

  ui.form.addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  ui.text.addEventListener('keydown', (e) => {
    // Enter sends, Shift+Enter is a newline; never send mid-IME-composition.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      submit();
    }
  });
  ui.text.addEventListener('input', autosize);
  ui.list.addEventListener('scroll', () => {
    if (atBottom()) ui.jump.hidden = true;
    if (ui.list.scrollTop < 80) requestOlder();   // scrolled to the top: older ones
  }, { passive: true });
  ui.older.addEventListener('click', requestOlder);
  ui.jump.addEventListener('click', toBottom);
  ui.retry.addEventListener('click', reconnectNow);
  window.addEventListener('online', reconnectNow);
  // Phones throttle timers in background tabs; coming back should not wait.
  document.addEventListener('visibilitychange', () => { if (!document.hidden) reconnectNow(); });

  // Messages typed before a reload of this tab are shown (pending) and resent.
  for (const entry of outbox) add(pendingRecord(entry));

  (ui.name.value ? ui.text : ui.name).focus();
  connect();

  // For debugging from the console only.
  window.nodetalk = {
    get socket() { return ws; }, messages: order, outbox: () => outbox.slice(),
    since: sinceVector, reconnect: () => { if (ws) ws.close(); else connect(); },
  };
})();
