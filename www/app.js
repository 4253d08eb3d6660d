/* nodetalk chat page: plain JS, no build step, no dependencies.
 *
 * Protocol: doc/protocol.md.  One WebSocket, to the node that served this
 * page (its "home") whenever that node is up.  The join asks for "cluster"
 * frames: the header shows which nodes are up, and when the home node goes
 * away the page moves to another node that is up, with "since", says so,
 * and goes back home once home answers again.  Every message is kept in
 * memory keyed by its cluster id ("A-17") so that history, live pushes,
 * our own echoes and catch-up after a reconnect or a move can overlap
 * freely without anything being shown twice.
 *
 * A chat's "id" (our UUID) makes a retry safe only on the node that got it
 * first: each node knows the ids of the chats it accepted itself.  So a
 * chat is sent again only to the node it was first sent to; one that never
 * left the page may go to any node.  A chat caught on a node that went
 * away waits for that node (it may have stored it) and says so; the user
 * may send it through the current node anyway, at the risk of a duplicate.
 *
 * Security rule for this file: message data only ever reaches the DOM
 * through textContent / createTextNode, never innerHTML.
 */
(() => {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const ui = {
    body: document.body, node: $('node'), host: $('host'), status: $('status'),
    nodes: $('nodes'), retry: $('retry'), list: $('messages'), jump: $('jump'),
    toasts: $('toasts'), announce: $('announce'), form: $('composer'),
    name: $('name'), text: $('text'), send: $('send'), hint: $('hint'),
    older: $('older'),
  };

  const BACKOFF_BASE = 1000;    // first retry after 0.5-1 s
  const BACKOFF_CAP = 30000;    // never wait longer than 15-30 s
  const NEXT_NODE_DELAY = 300;  // trying the next node of a round
  const OPEN_TIMEOUT = 10000;   // a handshake that hangs counts as a failure
  const HOME_PROBE = 5000;      // away from home: is it back?
  const NAME_MAX_BYTES = 64;    // NT_FROM_MAX on the node
  const PAGE = 100;             // older messages fetched per history request
  const TITLE = document.title;
  // Errors that sending the same chat again cannot cure.
  const FINAL_ERRORS = new Set(['too_long', 'bad_field', 'missing_field',
    'bad_json', 'bad_type']);

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
  let attempt = 0;              // consecutive failed rounds, for the backoff
  let retryTimer = 0, tickTimer = 0, retryAt = 0;
  const inFlight = new Set();   // UUIDs sent on this socket, not yet acked

  // Where we are.  "home" is the node that served the page; "at" the host
  // of the current socket and atNode its node id, once it said (joined).
  const home = location.host;
  let homeId = load(sessionStorage, 'nodetalk.homeId', null);
  let at = home, atNode = null;
  let cluster = load(sessionStorage, 'nodetalk.cluster', null);  // latest frame
  let round = [];               // hosts still to try in this round
  let probe = null, probeTimer = 0;
  let unread = 0;               // new messages while the tab is hidden

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
  // A node's local-only origins ("A/seed") mean nothing to another node.
  function sinceVector() {
    const v = {};
    for (const [o, s] of seen) if (/^[A-Za-z0-9_-]+$/.test(o)) v[o] = s.hi;
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
    meta.append(el('span', 'from'), el('span', 'origin'), el('time', 'time'));
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
    // Which node accepted it: a badge, and the identity on hover.
    const origin = m.querySelector('.origin');
    const by = typeof rec.origin === 'string' && !rec.pending ? rec.origin : '';
    origin.textContent = by;
    origin.title = by ? `accepted by node ${by}` + (rec.id ? ` as ${rec.id}` : '') : '';
    if (by) m.dataset.origin = by; else delete m.dataset.origin;
    const time = m.querySelector('.time');
    if (Number.isFinite(rec.ts) && rec.ts > 0) {
      time.textContent = fmtTime(rec.ts);
      time.dateTime = new Date(rec.ts).toISOString();
      time.title = new Date(rec.ts).toLocaleString();
    }
    const state = m.querySelector('.state');
    state.replaceChildren();
    const entry = outbox.find((o) => o.client_id === rec.client_id);
    if (rec.failed) {
      // Retry only where it could work: a text that is too long stays too
      // long; it can be edited instead.
      const acts = [];
      if (!rec.final) acts.push(button('Retry', () => requeue(rec)));
      else acts.push(button('Edit', () => edit(rec)));
      acts.push(button('Discard', () => discard(rec)));
      state.append(el('span', '', `Not sent: ${rec.failed} `), ...acts);
    } else if (rec.pending && entry && held(entry)) {
      state.append(el('span', '', `sent to node ${entry.sentTo} before it went away — ` +
        `waiting for it (it may have stored it) `),
        button(`Send via ${atNode} now`, () => sendHere(rec)));
    } else if (rec.pending) {
      state.textContent = inFlight.has(rec.client_id) ? 'sending…' : 'queued — will send when connected';
    }
  }

  function button(label, onclick) {
    const b = el('button', 'link', label);
    b.type = 'button';
    b.onclick = onclick;
    return b;
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

  // Sent to a node that is not the current one, and not acknowledged: only
  // that node can tell a retry from a new chat.
  function held(entry) {
    return entry.sentTo != null && atNode != null && entry.sentTo !== atNode;
  }

  function transmit(entry) {
    if (!live || held(entry)) return;
    // "after": the newest message shown here, so that an answer sorts after
    // its question on every node, even one the question has not reached.
    ws.send(JSON.stringify({ type: 'chat', from: entry.from, text: entry.text,
      id: entry.client_id, after: maxLamport }));
    inFlight.add(entry.client_id);
    if (entry.sentTo !== atNode) { entry.sentTo = atNode; saveOutbox(); }
    const rec = byClient.get(entry.client_id);
    if (rec) paint(rec);
  }

  // After (re)joining: resend whatever is still unacknowledged, same UUID, so
  // the node stores it once even if the first attempt did get through; what
  // another node may hold waits for it (see held()).
  function flush() {
    for (const entry of outbox) {
      transmit(entry);
      const rec = byClient.get(entry.client_id);
      if (rec) paint(rec);
    }
  }

  // The user's choice: through this node, even if the other stored it.
  function sendHere(rec) {
    const entry = outbox.find((o) => o.client_id === rec.client_id);
    if (!entry) return;
    entry.sentTo = null;
    transmit(entry);
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
    rec.final = false;
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

  // Back into the box, to be shortened; the failed copy goes.
  function edit(rec) {
    discard(rec);
    ui.text.value = rec.text ?? '';
    autosize();
    ui.text.focus();
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
    if (!old && everJoined && document.hidden && !isOwn(rec)) {
      unread++;
      showUnread();
    }
  }

  // "(3) nodetalk" while the tab is hidden and messages come in.
  function showUnread() {
    document.title = unread > 0 ? `(${unread}) ${TITLE}` : TITLE;
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
      rec.final = FINAL_ERRORS.has(f.code);
      paint(rec);
    }
    toast(text);
  }

  function onJoined(f) {
    const moved = atNode != null && f.node != null && String(f.node) !== atNode;
    live = true;
    attempt = 0;
    round = [];
    if (f.node != null) atNode = String(f.node);
    if (at === home && atNode) { homeId = atNode; save(sessionStorage, 'nodetalk.homeId', homeId); }
    ui.node.textContent = atNode ?? '–';
    ui.host.textContent = at;
    setState('live');
    ui.list.setAttribute('aria-busy', 'false');
    // A rejoin (with since) says nothing about older messages.
    if (!everJoined) older = !!f.older;
    if (at !== home) {
      const msg = `Node ${homeId ?? home} is unreachable: moved to node ${atNode}` +
        (f.count ? `, ${f.count} missed message${f.count === 1 ? '' : 's'} caught up.` : '.');
      announce(msg); toast(msg, 'info');
      armProbe();
    } else if (moved) {
      const msg = `Back on node ${atNode}.`;
      announce(msg); toast(msg, 'info');
    } else if (everJoined) {
      announce(`Reconnected to node ${f.node}.` + (f.count ? ` ${f.count} new.` : ''));
    }
    everJoined = true;
    showOlder();
    // Too few to scroll: fetch older ones until the view is full.
    if (ui.list.scrollHeight <= ui.list.clientHeight + 80) requestOlder();
    flush();
    if (atBottom()) toBottom();
  }

  // The nodes, as the current node sees them.
  function onCluster(f) {
    if (!Array.isArray(f.nodes)) return;
    cluster = { node: String(f.node ?? atNode ?? ''), nodes: f.nodes.filter((n) =>
      n && typeof n.id === 'string' && typeof n.host === 'string' &&
      Number.isSafeInteger(n.port)) };
    save(sessionStorage, 'nodetalk.cluster', cluster);
    showNodes();
    setState(live ? 'live' : ui.body.dataset.state);
  }

  function showNodes() {
    ui.nodes.replaceChildren();
    if (!cluster) return;
    for (const n of cluster.nodes) {
      const li = el('li', 'node', n.id);
      const up = cluster.node === atNode && live ? !!n.up : null;
      li.dataset.node = n.id;
      li.dataset.up = up === null ? 'unknown' : String(up);
      li.classList.toggle('here', n.id === atNode && live);
      li.classList.toggle('home', n.id === homeId);
      li.title = `node ${n.id} (${n.host}:${n.port}): ` + (up === null ? 'unknown' :
        n.id === atNode ? 'connected' : up ? 'up' : 'down') + (n.id === homeId ? ', this page\'s node' : '');
      ui.nodes.append(li);
    }
  }

  function nodesDown() {
    if (!cluster || !live || cluster.node !== atNode) return [];
    return cluster.nodes.filter((n) => !n.up).map((n) => n.id);
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
      case 'cluster': onCluster(f); break;
      case 'error': onError(f); break;
      default: break;   // newer node, newer frame types: ignore
    }
  }

  /* ---- connection */
  function wsUrl(host) {
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + host + '/';
  }

  function hostOf(n) {
    return n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`;
  }

  // A round: home first, then every other node, those last seen up first.
  function nextHost() {
    if (!round.length) {
      const others = (cluster?.nodes ?? []).filter((n) => hostOf(n) !== home &&
        n.id !== homeId).sort((a, b) => (b.up === true) - (a.up === true));
      round = [home, ...others.map(hostOf)];
    }
    return round.shift();
  }

  function join(sock) {
    const j = { type: 'join', from: cleanName(ui.name.value) || 'anonymous', cluster: true };
    if (seen.size) j.since = sinceVector();   // catch up, not full history
    else ui.list.setAttribute('aria-busy', 'true');
    sock.send(JSON.stringify(j));
  }

  // Make sock the current socket (a fresh one, or a probe of home that
  // answered); events of any other socket are ignored from then on.
  function adopt(sock, host) {
    let old = ws;
    ws = sock;
    at = host;
    live = false;
    paging = null;              // a page under way died with its socket
    inFlight.clear();
    sock.onmessage = (e) => {
      if (sock !== ws) return;
      onFrame(e.data);
      // The old socket stays until the new one has joined.
      if (old && live) { old.onclose = null; old.close(1000); old = null; }
    };
    sock.onclose = () => {
      if (sock !== ws) return;
      ws = null;
      live = false;
      paging = null;
      showOlder();
      inFlight.clear();
      stopProbe();
      for (const rec of byClient.values()) if (rec.pending) paint(rec);
      showNodes();
      scheduleReconnect();
    };
  }

  function connect() {
    clearTimeout(retryTimer); clearInterval(tickTimer);
    retryTimer = tickTimer = 0;
    const host = nextHost();
    setState('connecting');
    let sock;
    try { sock = new WebSocket(wsUrl(host)); } catch (e) { scheduleReconnect(); return; }
    const guard = setTimeout(() => sock.close(), OPEN_TIMEOUT);
    adopt(sock, host);
    sock.onopen = () => {
      clearTimeout(guard);
      if (sock === ws) join(sock);
    };
    sock.onerror = () => { /* always followed by close */ };
  }

  // Away from home, every HOME_PROBE: does home answer?  If so, move back
  // (joining with since), unless a chat awaits this node's answer.
  function armProbe() {
    clearTimeout(probeTimer);
    probeTimer = setTimeout(tryHome, HOME_PROBE);
  }
  function stopProbe() {
    clearTimeout(probeTimer);
    probeTimer = 0;
    if (probe) { probe.onopen = probe.onclose = null; probe.close(); probe = null; }
  }
  function tryHome() {
    probeTimer = 0;
    if (!live || at === home) return;
    if (inFlight.size) { armProbe(); return; }
    let p;
    try { p = new WebSocket(wsUrl(home)); } catch (e) { armProbe(); return; }
    probe = p;
    const guard = setTimeout(() => p.close(), OPEN_TIMEOUT);
    p.onerror = () => {};
    p.onclose = () => { clearTimeout(guard); if (probe === p) { probe = null; armProbe(); } };
    p.onopen = () => {
      clearTimeout(guard);
      if (probe !== p || !live || inFlight.size) { p.close(); if (probe === p) { probe = null; armProbe(); } return; }
      probe = null;
      adopt(p, home);
      join(p);
    };
  }

  // Capped exponential backoff with jitter between rounds, so a restarted
  // node is not hit by every browser at the same instant; within a round
  // the next node is tried at once.  Reset only once a join succeeds.
  function scheduleReconnect() {
    let delay;
    if (round.length) {
      delay = NEXT_NODE_DELAY;
    } else {
      const ceiling = Math.min(BACKOFF_CAP, BACKOFF_BASE * 2 ** attempt);
      attempt = Math.min(attempt + 1, 16);
      delay = ceiling / 2 + Math.random() * ceiling / 2;
    }
    retryAt = Date.now() + delay;
    retryTimer = setTimeout(connect, delay);
    tickTimer = setInterval(() => setState('reconnecting'), 1000);
    setState('reconnecting');
  }

  function reconnectNow() {
    if (retryTimer) connect();
  }

  // The pill: "live" only when every node is up; otherwise what is wrong.
  function setState(state) {
    let label = 'connecting…', shown = state;
    if (state === 'reconnecting') {
      label = `reconnecting in ${Math.max(1, Math.ceil((retryAt - Date.now()) / 1000))}s`;
    } else if (state === 'live') {
      const down = nodesDown();
      if (at !== home) {
        label = `on node ${atNode}: ${homeId ?? home} is down`;
        shown = 'degraded';
      } else if (down.length) {
        label = `live · node${down.length > 1 ? 's' : ''} ${down.join(', ')} down`;
        shown = 'degraded';
      } else {
        label = 'live';
      }
    }
    if (ui.body.dataset.state !== state) announce(state === 'live' ? 'Connected.' : label);
    ui.status.textContent = label;
    ui.status.dataset.state = shown;
    ui.body.dataset.state = state;
    ui.retry.hidden = state !== 'reconnecting';
    ui.text.placeholder = state === 'live' ? 'Message' : 'Message (queued offline)';
    showNodes();
  }

  /* ---- small UI helpers */
  function announce(s) { ui.announce.textContent = s; }

  function toast(s, kind) {
    const t = el('div', 'toast' + (kind ? ` ${kind}` : ''), s);
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
  // Back on the tab, what came in meanwhile is no longer unread.
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) return;
    unread = 0;
    showUnread();
    reconnectNow();
  });

  // Messages typed before a reload of this tab are shown (pending) and resent.
  for (const entry of outbox) add(pendingRecord(entry));

  (ui.name.value ? ui.text : ui.name).focus();
  connect();

  showNodes();

  // For debugging from the console only.
  window.nodetalk = {
    get socket() { return ws; }, messages: order, outbox: () => outbox.slice(),
    since: sinceVector, reconnect: () => { if (ws) ws.close(); else connect(); },
    get node() { return atNode; }, get host() { return at; }, get cluster() { return cluster; },
  };
})();
