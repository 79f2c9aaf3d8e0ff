// protocol.js holds the pure rules of the chat wire protocol (docs/protocol.md)
// that the page follows: which messages to apply, how long to wait before
// reconnecting, and how names, rooms and ids look. Nothing here touches the DOM,
// the network or the clock, so every rule is unit-tested in Node.

/** Room names the server accepts; anything else falls back to the lobby. */
export const ROOM_RE = /^[a-z0-9-]{1,32}$/;
export const DEFAULT_ROOM = 'lobby';
export const MAX_TEXT = 280; // code points, after trimming
export const MAX_NAME = 24; // code points, after trimming

// Reconnect timing. Closes the server announces (restart, overload, going away)
// carry their own retry_ms so clients of a draining color spread out; any other
// loss backs off exponentially with full jitter so a dead server is not hammered.
export const BACKOFF_MIN_MS = 500;
export const BACKOFF_MAX_MS = 20000;
export const ANNOUNCED_JITTER_MS = 1000;
export const ANNOUNCED_CLOSES = new Set([1001, 1012, 1013]);
export const POLICY_CLOSE = 1008;
// A reconnect that completes within this window should look like nothing
// happened (a deploy), so the "reconnecting" hint waits this long.
export const HINT_DELAY_MS = 2000;

/** codePoints counts Unicode code points, the unit of the server's limits. */
export function codePoints(s) {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** cleanText trims text and returns it if it is a sendable message, else ''. */
export function cleanText(text) {
  const t = String(text ?? '').trim();
  const n = codePoints(t);
  return n >= 1 && n <= MAX_TEXT ? t : '';
}

/** cleanName trims a nickname and returns it if the server accepts it, else ''. */
export function cleanName(name) {
  const t = String(name ?? '').replace(/\s+/g, ' ').trim();
  const n = codePoints(t);
  return n >= 1 && n <= MAX_NAME ? t : '';
}

/**
 * roomFromLocation reads the room from `?room=` first, then from `#room`.
 * Upper case is folded; a name the server would refuse gives the lobby.
 */
export function roomFromLocation(loc) {
  const q = new URLSearchParams(loc.search || '').get('room');
  const h = (loc.hash || '').replace(/^#/, '');
  for (const raw of [q, h]) {
    if (!raw) continue;
    let r;
    try {
      r = decodeURIComponent(raw).trim().toLowerCase();
    } catch {
      continue;
    }
    if (ROOM_RE.test(r)) return r;
  }
  return DEFAULT_ROOM;
}

/** wsURL is the WebSocket address of a room on the page's own host: wss on https. */
export function wsURL(loc, room) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws?room=${encodeURIComponent(room)}`;
}

/**
 * randomID returns n random bytes as hex. getRandomValues works on plain http
 * too, unlike crypto.randomUUID, which needs a secure context.
 */
export function randomID(crypto, n = 16) {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * tabSID returns this tab's session id, kept in sessionStorage so a reload of
 * the tab resumes as the same sender (the server dedupes on (sid, cid)).
 */
export function tabSID(storage, crypto) {
  const key = 'mywebchat.sid';
  let sid = null;
  try {
    sid = storage?.getItem(key) ?? null;
  } catch {
    // Storage can be disabled; a per-load id still works, only reloads lose dedupe.
  }
  if (!sid || !/^[0-9a-f]{16,64}$/.test(sid)) {
    sid = randomID(crypto);
    try {
      storage?.setItem(key, sid);
    } catch {
      // see above
    }
  }
  return sid;
}

/**
 * parseRetryMS reads `{"retry_ms":N}` from a close reason. It returns the
 * delay in ms, or -1 when the reason carries none (or nonsense).
 */
export function parseRetryMS(reason) {
  if (!reason) return -1;
  let v;
  try {
    v = JSON.parse(reason);
  } catch {
    return -1;
  }
  const n = v && typeof v === 'object' ? v.retry_ms : undefined;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return -1;
  // A server never asks for minutes; cap it so a bad reason cannot strand us.
  return Math.min(Math.round(n), BACKOFF_MAX_MS);
}

/**
 * backoffMS is full-jitter exponential backoff: uniform in [0, cap) where the
 * cap doubles from 500 ms per failed attempt (0, 1, 2, …) up to 20 s.
 */
export function backoffMS(attempt, random) {
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(Math.max(0, attempt), 16));
  return Math.floor(random() * cap);
}

/**
 * reconnectPlan decides what to do after a socket closed.
 * It returns {reconnect:false} after a policy close (1008), else
 * {reconnect:true, delay, announced}; `announced` closes do not count as failures.
 */
export function reconnectPlan(code, reason, attempt, random) {
  if (code === POLICY_CLOSE) return { reconnect: false, delay: 0, announced: false };
  if (ANNOUNCED_CLOSES.has(code)) {
    const r = parseRetryMS(reason);
    const delay = r >= 0 ? r : Math.round(random() * ANNOUNCED_JITTER_MS);
    return { reconnect: true, delay, announced: true };
  }
  return { reconnect: true, delay: backoffMS(attempt, random), announced: false };
}

/**
 * RoomState tracks one room's history position: its epoch and the last seq
 * applied. A msg is applied only when its seq is beyond the last one, so a
 * replay after a resume never shows a message twice.
 */
export class RoomState {
  constructor() {
    this.epoch = '';
    this.lastSeq = 0;
  }

  /** helloFields are the resume fields of `hello`, empty before the first welcome. */
  helloFields() {
    if (!this.epoch) return {};
    return { epoch: this.epoch, last_seq: this.lastSeq };
  }

  /**
   * welcome takes the server's reply to hello. On a reset to another epoch the
   * numbering restarts, so the position does too; a reset within the same epoch
   * keeps it (the replay then only brings what is newer).
   */
  welcome(w) {
    const epoch = String(w.epoch ?? '');
    if (w.resume !== 'ok' && epoch !== this.epoch) this.lastSeq = 0;
    this.epoch = epoch;
  }

  /** apply reports whether msg is new and, if so, records its seq. */
  apply(msg) {
    const seq = msg.seq;
    if (!Number.isSafeInteger(seq) || seq <= this.lastSeq) return false;
    this.lastSeq = seq;
    return true;
  }

  /** resumed records that the server has sent everything up to seq. */
  resumed(seq) {
    if (Number.isSafeInteger(seq) && seq > this.lastSeq) this.lastSeq = seq;
  }
}

/**
 * SeenSet remembers the last `cap` message ids shown, so a reset replay (a new
 * epoch after a lost handover) does not show again what is already on screen.
 */
export class SeenSet {
  constructor(cap = 500) {
    this.cap = cap;
    this.set = new Set();
  }

  has(id) {
    return this.set.has(id);
  }

  add(id) {
    if (this.set.has(id)) return;
    this.set.add(id);
    if (this.set.size > this.cap) this.set.delete(this.set.values().next().value);
  }
}
