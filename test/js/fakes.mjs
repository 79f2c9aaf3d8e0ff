// fakes.mjs: tiny hand-written fakes for the client tests: a manual clock,
// an in-memory Storage, and a WebSocket whose server side the test drives.

/** FakeClock runs timers only when the test advances time. */
export class FakeClock {
  constructor() {
    this.now = 0;
    this.timers = new Map();
    this.next = 1;
  }

  setTimeout = (fn, ms) => {
    const id = this.next++;
    this.timers.set(id, { at: this.now + Math.max(0, ms), fn });
    return id;
  };

  clearTimeout = (id) => {
    this.timers.delete(id);
  };

  /** advance moves time forward by ms, firing due timers in order. */
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      let best = null;
      for (const [id, t] of this.timers) {
        if (t.at <= end && (best === null || t.at < best[1].at || (t.at === best[1].at && id < best[0]))) best = [id, t];
      }
      if (!best) break;
      this.timers.delete(best[0]);
      this.now = best[1].at;
      best[1].fn();
    }
    this.now = end;
  }

  /** pending lists the delays (from now) of the timers still set. */
  pending() {
    return [...this.timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b);
  }
}

/** MemoryStorage is the subset of Web Storage the page uses. */
export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}

/**
 * fakeSockets returns a WebSocket constructor and the list of sockets it
 * made. The test plays the server: open(), serve(frame), close(code, reason);
 * what the page sent is in `sent` (parsed).
 */
export function fakeSockets() {
  const made = [];
  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      made.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error('send on a socket that is not open');
      this.sent.push(JSON.parse(data));
    }
    close(code = 1000, reason = '') {
      if (this.readyState >= 2) return;
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
    // Server side:
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    serve(frame) {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
    drop(code, reason = '') {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
  }
  return { WebSocket: FakeWebSocket, made };
}

/** seqRandom returns a random() that yields the given values in turn. */
export function seqRandom(...values) {
  let i = 0;
  return () => values[i++ % values.length];
}

/** fakeCrypto gives deterministic "random" bytes. */
export function fakeCrypto() {
  let n = 0;
  return {
    getRandomValues(b) {
      for (let i = 0; i < b.length; i++) b[i] = (n++ * 37 + 11) & 0xff;
      return b;
    },
  };
}
