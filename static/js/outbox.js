// outbox.js keeps the messages this tab sent that the server has not acked
// yet, mirrored to sessionStorage, so a reconnect (or a reload of the tab)
// resends them with the same cid and the server's dedupe makes that safe.

// A chat tab never needs more in flight than this; beyond it the oldest go,
// so a long offline spell cannot fill storage.
export const OUTBOX_CAP = 100;

/**
 * Outbox is an ordered list of pending sends {cid, text, x, y}.
 * storage may be null (or throw, e.g. when disabled): then it lives in memory only.
 */
export class Outbox {
  constructor(storage, key) {
    this.storage = storage;
    this.key = key;
    this.items = [];
    this.load();
  }

  load() {
    if (!this.storage) return;
    let raw = null;
    try {
      raw = this.storage.getItem(this.key);
    } catch {
      return;
    }
    if (!raw) return;
    try {
      const v = JSON.parse(raw);
      if (!Array.isArray(v)) return;
      this.items = v
        .filter(
          (m) =>
            m &&
            typeof m.cid === 'string' &&
            typeof m.text === 'string' &&
            typeof m.x === 'number' &&
            typeof m.y === 'number',
        )
        .slice(-OUTBOX_CAP)
        .map(({ cid, text, x, y }) => ({ cid, text, x, y }));
    } catch {
      // A corrupt mirror is dropped rather than breaking the page.
      this.items = [];
    }
  }

  save() {
    if (!this.storage) return;
    try {
      if (this.items.length === 0) this.storage.removeItem(this.key);
      else this.storage.setItem(this.key, JSON.stringify(this.items));
    } catch {
      // Quota or disabled storage: the in-memory list still works.
    }
  }

  /** add queues a send; a cid already queued is not queued twice. */
  add(item) {
    if (this.has(item.cid)) return;
    this.items.push({ cid: item.cid, text: item.text, x: item.x, y: item.y });
    if (this.items.length > OUTBOX_CAP) this.items.splice(0, this.items.length - OUTBOX_CAP);
    this.save();
  }

  has(cid) {
    return this.items.some((m) => m.cid === cid);
  }

  /** remove drops cid (acked, or refused for good) and reports whether it was there. */
  remove(cid) {
    const i = this.items.findIndex((m) => m.cid === cid);
    if (i < 0) return false;
    this.items.splice(i, 1);
    this.save();
    return true;
  }

  /** pending returns a copy of the queued sends, oldest first. */
  pending() {
    return this.items.slice();
  }

  get size() {
    return this.items.length;
  }
}
