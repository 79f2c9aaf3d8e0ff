// client.js is the page's side of the chat protocol (docs/protocol.md): one
// WebSocket at a time, hello/resume, the outbox resent after `resumed`, the
// reconnect rules, and the move of a live connection to a new color (v1.1:
// hold, held, go). The socket constructor, timers and randomness are passed in,
// so the whole life cycle (including a server swap) is unit-tested in Node.

import {
  HINT_DELAY_MS,
  RoomState,
  SeenSet,
  cleanText,
  randomID,
  reconnectPlan,
} from './protocol.js';
import { Outbox } from './outbox.js';

// The server refuses frames over 2048 bytes by closing the socket (1009); a
// resend after reconnect would hit the same wall forever, so never send one.
export const MAX_FRAME_BYTES = 2048;
// A socket that has not opened by then is given up and retried, so a stuck
// proxy connection cannot leave the page waiting forever.
export const CONNECT_TIMEOUT_MS = 10000;
// Capabilities offered in hello: "move" lets a deploy hand this very socket to
// the new color instead of closing it.
export const CAPS = Object.freeze(['move']);
// A move whose `go` has not come by then is given up: the socket is dropped
// and resumed like any lost one. The server promises `go` within 1 s and
// otherwise closes with 1012 itself; this only guards against a stuck peer.
export const MOVE_TIMEOUT_MS = 5000;

const OPEN = 1;

/**
 * ChatClient keeps one room's connection alive and tells the page what
 * happens through the callbacks in `on` (all optional):
 *   status(s)          'connecting' | 'online' | 'reconnecting' | 'offline';
 *                      'reconnecting' only once a reconnect took over 2 s
 *   welcome(w)         the server's welcome frame
 *   msg(m, info)       a new message, info = {own, replay}; never the same seq twice
 *   resumed(seq)       the replay after a (re)connect is complete
 *   ack(cid, seq)      one of ours was accepted
 *   failed(cid, code)  one of ours was refused for good (too_long, bad_request)
 *   presence(n)        people online in the room
 *   moved(go)          the socket now belongs to another color ({color, version});
 *                      nothing else changes, so nothing needs showing
 *   error(frame)       an error frame without a cid
 * deps: {url, name, sid, storage, outboxKey, WebSocket, timers, random, crypto}.
 */
export class ChatClient {
  constructor(deps, on = {}) {
    this.url = deps.url;
    this.name = deps.name;
    this.sid = deps.sid;
    this.WS = deps.WebSocket;
    this.timers = deps.timers ?? {
      setTimeout: (f, ms) => setTimeout(f, ms),
      clearTimeout: (id) => clearTimeout(id),
    };
    this.random = deps.random ?? Math.random;
    this.crypto = deps.crypto ?? globalThis.crypto;
    this.on = on;
    this.room = new RoomState();
    this.seen = new SeenSet(1000);
    this.mine = new SeenSet(1000);
    this.outbox = new Outbox(deps.storage ?? null, deps.outboxKey ?? 'mywebchat.outbox');
    for (const m of this.outbox.pending()) this.mine.add(m.cid);
    this.unsent = new Set(this.outbox.pending().map((m) => m.cid));
    this.ws = null;
    this.ready = false; // true between `resumed` and the socket's close
    this.held = false; // between `hold` and `go`: sends wait in the outbox
    this.attempt = 0; // abnormal closes in a row, for the backoff
    this.status = 'connecting';
    this.stopped = false;
    this.retryTimer = null;
    this.connectTimer = null;
    this.hintTimer = null;
    this.flushTimer = null;
    this.moveTimer = null;
    this.sockets = 0; // sockets opened, for tests and the page's diagnostics
  }

  /** start opens the first connection. */
  start() {
    this.stopped = false;
    this.armHint();
    this.connect();
  }

  /** stop closes the connection for good (page unload, room change). */
  stop() {
    this.stopped = true;
    for (const t of ['retryTimer', 'connectTimer', 'hintTimer', 'flushTimer', 'moveTimer']) this.clear(t);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    this.setStatus('offline');
  }

  /**
   * send queues a message and sends it now when the room is live. It returns
   * the queued item {cid, text, x, y}, or null when text is not sendable.
   */
  send(text, x, y) {
    const t = cleanText(text);
    if (!t) return null;
    const item = { cid: randomID(this.crypto, 12), text: t, x: clamp01(x), y: clamp01(y) };
    if (frameBytes(this.sendFrame(item)) > MAX_FRAME_BYTES) return null;
    this.outbox.add(item);
    this.mine.add(item.cid);
    this.unsent.add(item.cid);
    this.flush();
    return item;
  }

  /**
   * rename changes the name announced in hello. The server learns it on a
   * fresh socket, resumed like after a deploy, so nothing is shown twice.
   */
  rename(name) {
    this.name = name;
    const ws = this.ws;
    if (!ws) return;
    // This close is ours: it reconnects at once, not after a backoff.
    ws.onclose = null;
    ws.onmessage = null;
    try {
      ws.close(1000);
    } catch {
      // already closing
    }
    this.closed(ws, 1001, '{"retry_ms":0}');
  }

  /** nudge reconnects at once when a retry is pending (the network came back). */
  nudge() {
    if (this.retryTimer === null || this.stopped) return;
    this.clear('retryTimer');
    this.connect();
  }

  sendFrame(item) {
    return { t: 'send', cid: item.cid, text: item.text, x: item.x, y: item.y };
  }

  connect() {
    this.retryTimer = null;
    if (this.stopped) return;
    let ws;
    try {
      ws = new this.WS(this.url);
    } catch {
      // A malformed URL or a blocked scheme: treat like a failed connection.
      this.closed(null, 1006, '');
      return;
    }
    this.ws = ws;
    this.sockets++;
    this.connectTimer = this.timers.setTimeout(() => {
      this.connectTimer = null;
      if (this.ws === ws && ws.readyState !== OPEN) {
        try {
          ws.close();
        } catch {
          // ignore
        }
        this.closed(ws, 1006, '');
      }
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.clear('connectTimer');
      this.write(ws, { t: 'hello', name: this.name, sid: this.sid, caps: [...CAPS], ...this.room.helloFields() });
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      let f;
      try {
        f = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (f && typeof f === 'object') this.frame(f);
    };
    ws.onclose = (ev) => this.closed(ws, ev.code, ev.reason);
    // onerror is always followed by onclose, which does the work.
    ws.onerror = () => {};
  }

  frame(f) {
    switch (f.t) {
      case 'welcome':
        this.room.welcome(f);
        this.ready = false;
        this.on.welcome?.(f);
        if (typeof f.online === 'number') this.on.presence?.(f.online);
        break;
      case 'msg':
        this.message(f);
        break;
      case 'resumed':
        this.room.resumed(f.seq);
        this.ready = true;
        this.attempt = 0;
        this.clear('hintTimer');
        this.setStatus('online');
        this.on.resumed?.(this.room.lastSeq);
        // Everything unacked goes again, same cid: the server dedupes.
        for (const m of this.outbox.pending()) this.unsent.add(m.cid);
        this.flush();
        break;
      case 'ack':
        if (typeof f.cid === 'string') this.acked(f.cid, f.seq);
        break;
      case 'presence':
        if (typeof f.online === 'number') this.on.presence?.(f.online);
        break;
      case 'error':
        this.error(f);
        break;
      case 'hold':
        this.hold();
        break;
      case 'go':
        this.go(f);
        break;
      default:
      // Unknown frame types are ignored, as the protocol asks of both sides.
    }
  }

  message(m) {
    if (!this.room.apply(m)) return;
    const cid = typeof m.cid === 'string' ? m.cid : '';
    // Our own message echoed before its ack (or replayed after a lost ack)
    // proves it was accepted.
    if (cid && this.outbox.has(cid)) this.acked(cid, m.seq);
    if (cid && this.seen.has(cid)) return; // already shown (a reset replay)
    if (cid) this.seen.add(cid);
    this.on.msg?.(m, { own: cid !== '' && this.mine.has(cid), replay: !this.ready });
  }

  /**
   * hold answers the server's `hold` with `held` at once; until `go` no data
   * frame leaves (flush waits) and sends queue in the outbox. The browser
   * keeps answering pings by itself.
   */
  hold() {
    const ws = this.ws;
    if (!ws || this.held) return;
    this.held = true;
    this.write(ws, { t: 'held' });
    this.clear('moveTimer');
    this.moveTimer = this.timers.setTimeout(() => {
      this.moveTimer = null;
      if (this.ws !== ws || !this.held) return;
      try {
        ws.close();
      } catch {
        // already closing
      }
      this.closed(ws, 1006, '');
    }, MOVE_TIMEOUT_MS);
  }

  /**
   * go: the same socket now belongs to the new color. The room's position
   * runs on (no welcome, no resumed), and what was queued meanwhile goes out
   * in order.
   */
  go(f) {
    if (!this.held) return;
    this.held = false;
    this.clear('moveTimer');
    this.on.moved?.({ color: String(f.color ?? ''), version: String(f.version ?? '') });
    this.flush();
  }

  acked(cid, seq) {
    this.unsent.delete(cid);
    if (this.outbox.remove(cid)) this.on.ack?.(cid, seq);
  }

  error(f) {
    const cid = typeof f.cid === 'string' ? f.cid : '';
    if (!cid || !this.outbox.has(cid)) {
      this.on.error?.(f);
      return;
    }
    if (f.code === 'rate_limited' || f.code === 'draining') {
      // Not accepted: keep it queued and try again later (a draining server
      // closes the socket soon and the resume sends it to the next one).
      this.unsent.add(cid);
      const ms = typeof f.retry_ms === 'number' && f.retry_ms >= 0 ? f.retry_ms : 1000;
      this.clear('flushTimer');
      this.flushTimer = this.timers.setTimeout(() => {
        this.flushTimer = null;
        this.flush();
      }, Math.min(ms, 20000));
      return;
    }
    // too_long, bad_request: sending again would fail the same way.
    this.unsent.delete(cid);
    this.outbox.remove(cid);
    this.on.failed?.(cid, f.code);
  }

  /** flush sends, oldest first, the queued messages not yet sent on this socket. */
  flush() {
    if (!this.ready || this.held || !this.ws || this.flushTimer !== null) return;
    for (const m of this.outbox.pending()) {
      if (!this.unsent.has(m.cid)) continue;
      if (!this.write(this.ws, this.sendFrame(m))) return;
      this.unsent.delete(m.cid);
    }
  }

  write(ws, f) {
    if (ws.readyState !== OPEN) return false;
    try {
      ws.send(JSON.stringify(f));
      return true;
    } catch {
      return false;
    }
  }

  closed(ws, code, reason) {
    if (ws !== null && this.ws !== ws) return; // an old socket, already replaced
    this.clear('connectTimer');
    this.clear('flushTimer');
    this.clear('moveTimer');
    this.ws = null;
    this.ready = false;
    this.held = false;
    for (const m of this.outbox.pending()) this.unsent.add(m.cid);
    if (this.stopped) return;
    const plan = reconnectPlan(code, reason, this.attempt, this.random);
    if (!plan.reconnect) {
      // 1008: the server refused us on policy (origin, room); retrying would
      // just be refused again.
      this.clear('hintTimer');
      this.setStatus('offline');
      return;
    }
    if (!plan.announced) this.attempt++;
    // The wait a draining server asks for is part of a normal deploy, not
    // trouble: the 2 s of grace start when we may reconnect.
    this.armHint(plan.announced ? plan.delay : 0);
    this.clear('retryTimer');
    this.retryTimer = this.timers.setTimeout(() => this.connect(), plan.delay);
  }

  // armHint shows 'reconnecting' only if we are still not back 2 s (after
  // an extra wait) from now. A timer already running is kept, so repeated
  // failures cannot push the hint away forever.
  armHint(extra = 0) {
    if (this.hintTimer !== null || this.status === 'reconnecting') return;
    this.hintTimer = this.timers.setTimeout(() => {
      this.hintTimer = null;
      if (!this.ready && !this.stopped) this.setStatus('reconnecting');
    }, HINT_DELAY_MS + extra);
  }

  setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    this.on.status?.(s);
  }

  clear(name) {
    if (this[name] !== null) {
      this.timers.clearTimeout(this[name]);
      this[name] = null;
    }
  }
}

function clamp01(v) {
  const n = Number(v);
  if (!Number.isFinite(n)) return 0.5;
  return Math.min(1, Math.max(0, Math.round(n * 10000) / 10000));
}

function frameBytes(f) {
  return new TextEncoder().encode(JSON.stringify(f)).length;
}
