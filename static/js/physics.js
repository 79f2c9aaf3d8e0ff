// physics.js lays a message out as letters and lets them fall: each letter is
// held in place for a moment, then drops with gravity, a slight spin and a
// bounce, comes to rest on the floor or on the letters already piled there,
// and fades after a while. It is pure (no DOM, injected randomness), so the
// motion is unit-tested in Node and the page only copies positions to the
// screen. Letters live in a fixed pool: the oldest are recycled at the cap.

export const GRAVITY = 2200; // px/s², a little heavier than "real" so it reads as playful
export const RESTITUTION = 0.42; // share of the speed kept by a bounce
export const REST_SPEED = 90; // px/s: slower than this on touching ground, a letter settles
export const MAX_STEP = 1 / 30; // s: longer frames are split so letters cannot tunnel
export const BIN = 6; // px: width of one column of the pile's height map
export const PACK = 0.8; // how far a resting letter raises the pile, in letter heights
export const REST_MS = 7000; // how long a letter lies before it fades...
export const REST_JITTER_MS = 4000; // ...plus up to this, so piles melt unevenly
export const FADE_MS = 900;
export const PILE_MAX = 0.4; // a pile taller than this share of the height fades at once

const HOLD = 0;
const FALL = 1;
const REST = 2;
const FADE = 3;
export const Phase = Object.freeze({ HOLD, FALL, REST, FADE });

/** graphemes splits text into user-perceived characters (emoji stay whole). */
export function graphemes(text) {
  if (typeof Intl !== 'undefined' && Intl.Segmenter) {
    return Array.from(new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(text), (s) => s.segment);
  }
  return Array.from(text);
}

/**
 * layoutText places the letters of text on lines no wider than maxWidth
 * (breaking at spaces, or inside a word longer than a line). measure(ch)
 * gives a letter's advance in px. It returns {glyphs:[{ch,dx,dy,w}], width,
 * height}, offsets from the block's top-left; spaces take room but no glyph.
 */
export function layoutText(text, measure, maxWidth, lineHeight) {
  const glyphs = [];
  const words = String(text).split(/(\s+)/).filter((w) => w !== '');
  let x = 0;
  let line = 0;
  let width = 0;
  const space = measure(' ');
  for (const word of words) {
    if (/^\s+$/.test(word)) {
      if (x > 0) x += space * (word.includes('\n') ? 1 : word.length);
      continue;
    }
    const chars = graphemes(word).map((ch) => ({ ch, w: measure(ch) }));
    const ww = chars.reduce((s, c) => s + c.w, 0);
    if (x > 0 && x + ww > maxWidth) {
      line++;
      x = 0;
    }
    for (const c of chars) {
      if (x > 0 && x + c.w > maxWidth) {
        line++;
        x = 0;
      }
      glyphs.push({ ch: c.ch, dx: x, dy: line * lineHeight, w: c.w });
      x += c.w;
      width = Math.max(width, x);
    }
  }
  return { glyphs, width, height: glyphs.length ? (line + 1) * lineHeight : 0 };
}

/**
 * placeBlock turns the sender's fractions into a top-left corner on this
 * screen, kept inside it with a margin so a message from a wide screen is
 * still fully visible on a phone.
 */
export function placeBlock(fx, fy, blockW, blockH, width, height, margin = 8) {
  const x = Math.max(margin, Math.min(fx * width, width - blockW - margin));
  const y = Math.max(margin, Math.min(fy * height, height - blockH - margin));
  return { x, y };
}

/**
 * holdTimes: how long a message stays readable, the gap between letters
 * leaving, and the gap between letters appearing (others' messages type
 * themselves out; your own is already typed).
 */
export function holdTimes(n, own) {
  const type = own ? 0 : Math.min(22, 500 / Math.max(1, n));
  const hold = own ? 450 : Math.min(2600, Math.max(900, 500 + 45 * n)) + type * n;
  const stagger = Math.min(70, 2600 / Math.max(1, n));
  return { hold, stagger, type };
}

export const POP_MS = 220; // a letter's pop-in when it appears
export const WOBBLE_MS = 160; // a letter trembles this long before it lets go

/** popScale is a letter's size while it pops in (t ms after it appeared): overshoots, settles at 1. */
export function popScale(t) {
  if (t >= POP_MS) return 1;
  if (t <= 0) return 0;
  const p = t / POP_MS - 1;
  return 1 + 2.2 * p * p * p + 1.2 * p * p; // ease-out-back, 0 → 1
}

/**
 * Letter is one slot of the pool. The renderer reads ch, x, y (top-left, px),
 * a (radians), alpha, and `gen`, which changes whenever the slot gets a new
 * letter, and `moved`, set by step when something visible changed.
 */
class Letter {
  constructor(i) {
    this.i = i;
    this.on = false;
    this.gen = 0;
    this.born = 0;
    this.ch = '';
    this.hue = 0;
    this.own = false;
    this.w = 0;
    this.h = 0;
    this.x = 0;
    this.y = 0;
    this.vx = 0;
    this.vy = 0;
    this.a = 0;
    this.va = 0;
    this.alpha = 1;
    this.phase = HOLD;
    this.t = 0; // ms in the current phase
    this.appear = 0; // ms of HOLD before it is visible (others' messages type out)
    this.delay = 0; // ms of HOLD before falling
    this.life = 0; // ms of REST before fading (spent across re-settles)
    this.moved = false;
  }
}

/**
 * Sky simulates every letter on screen. width/height are the screen in px;
 * cap bounds the pool; random is injected for tests.
 */
export class Sky {
  constructor({ width, height, cap = 600, random = Math.random }) {
    this.cap = cap;
    this.random = random;
    this.letters = [];
    this.free = [];
    this.count = 0;
    this.born = 0;
    this.pileDirty = false;
    // calm: for people who asked for less motion, letters fade where they
    // are instead of falling.
    this.calm = false;
    this.resize(width, height);
  }

  /** resize adapts to a new screen; the pile falls again onto the new floor. */
  resize(width, height) {
    this.width = Math.max(1, width);
    this.height = Math.max(1, height);
    this.heights = new Float32Array(Math.ceil(this.width / BIN) + 2);
    for (const l of this.letters) {
      if (!l.on) continue;
      l.x = Math.min(l.x, Math.max(0, this.width - l.w));
      if (l.phase === REST) {
        l.phase = FALL;
        l.t = 0;
        l.vy = 0;
      }
    }
  }

  /** active is the number of letters on screen. */
  get active() {
    return this.count;
  }

  /**
   * spawn adds a laid-out message at (x, y) (top-left of the block).
   * style: {hue, own, lineHeight}. Returns the letters spawned.
   */
  spawn(glyphs, x, y, style) {
    const { hold, stagger, type } = holdTimes(glyphs.length, style.own);
    const out = [];
    glyphs.forEach((g, k) => {
      const l = this.take();
      l.gen++;
      l.born = ++this.born;
      l.ch = g.ch;
      l.hue = style.hue ?? 0;
      l.own = !!style.own;
      l.w = g.w;
      l.h = style.lineHeight;
      l.x = x + g.dx;
      l.y = y + g.dy;
      l.vx = 0;
      l.vy = 0;
      l.a = 0;
      l.va = 0;
      l.alpha = 1;
      l.phase = HOLD;
      l.t = 0;
      l.appear = k * type;
      l.delay = hold + k * stagger;
      l.life = REST_MS + this.random() * REST_JITTER_MS;
      l.moved = true;
      out.push(l);
    });
    return out;
  }

  // take returns a free slot, or recycles the oldest letter (resting ones first).
  take() {
    if (this.free.length > 0) {
      const l = this.free.pop();
      l.on = true;
      this.count++;
      return l;
    }
    if (this.letters.length < this.cap) {
      const l = new Letter(this.letters.length);
      this.letters.push(l);
      l.on = true;
      this.count++;
      return l;
    }
    let victim = null;
    for (const l of this.letters) {
      const settled = l.phase === REST || l.phase === FADE;
      if (!victim) victim = l;
      const vSettled = victim.phase === REST || victim.phase === FADE;
      if ((settled && !vSettled) || (settled === vSettled && l.born < victim.born)) victim = l;
    }
    if (victim.phase === REST) this.pileDirty = true;
    return victim;
  }

  release(l) {
    if (!l.on) return;
    if (l.phase === REST || l.phase === FADE) this.pileDirty = true;
    l.on = false;
    l.moved = true;
    l.gen++;
    this.count--;
    this.free.push(l);
  }

  /** step advances the world by dt seconds. */
  step(dt) {
    let left = Math.max(0, dt);
    while (left > 1e-6) {
      const h = Math.min(left, MAX_STEP);
      this.tick(h);
      left -= h;
    }
    if (this.pileDirty) this.rebuildPile();
  }

  tick(dt) {
    const ms = dt * 1000;
    for (const l of this.letters) {
      if (!l.on) continue;
      l.t += ms;
      switch (l.phase) {
        case HOLD:
          if (l.t >= l.delay) {
            l.a = 0;
            this.drop(l);
          } else if (l.t < l.appear + POP_MS + 40) {
            l.moved = true; // appearing or popping in
          } else if (l.delay - l.t < WOBBLE_MS && !this.calm) {
            l.a = Math.sin(l.t * 0.09) * 0.07;
            l.moved = true;
          }
          break;
        case FALL:
          this.fall(l, dt);
          break;
        case REST:
          l.life -= ms;
          if (Math.abs(l.a) > 0.002) {
            l.a *= Math.exp(-6 * dt); // settle flat-ish
            l.moved = true;
          }
          if (l.life <= 0) {
            l.phase = FADE;
            l.t = 0;
          }
          break;
        case FADE:
          l.alpha = Math.min(1, Math.max(0, 1 - l.t / FADE_MS));
          l.moved = true;
          if (l.alpha <= 0) this.release(l);
          break;
      }
    }
  }

  drop(l) {
    if (this.calm) {
      l.phase = FADE;
      l.t = -REST_MS / 2; // stays readable a while, then fades in place
      return;
    }
    l.phase = FALL;
    l.t = 0;
    l.vx = (this.random() - 0.5) * 120;
    l.vy = -60 - this.random() * 120; // a little hop before the fall
    l.va = (this.random() - 0.5) * 3;
    l.moved = true;
  }

  fall(l, dt) {
    l.vy += GRAVITY * dt;
    l.x += l.vx * dt;
    l.y += l.vy * dt;
    l.a += l.va * dt;
    l.moved = true;
    if (l.x < 0) {
      l.x = 0;
      l.vx = Math.abs(l.vx) * 0.5;
    } else if (l.x + l.w > this.width) {
      l.x = Math.max(0, this.width - l.w);
      l.vx = -Math.abs(l.vx) * 0.5;
    }
    const level = this.levelUnder(l);
    const ground = this.height - level;
    if (l.y + l.h < ground || l.vy < 0) return;
    l.y = ground - l.h;
    if (l.vy > REST_SPEED) {
      l.vy = -l.vy * RESTITUTION * (0.8 + 0.4 * this.random());
      l.vx *= 0.6;
      l.va = l.va * 0.4 + (this.random() - 0.5) * 2;
      return;
    }
    // Like sand: a letter landing on the edge of a taller heap slides off
    // towards the lower side instead of stacking into a thin tower.
    const side = l.w + BIN;
    const left = this.levelAt(l.x - side, l.w);
    const right = this.levelAt(l.x + side, l.w);
    const lowest = Math.min(left, right);
    if (level > 0 && lowest < level - l.h * 0.5) {
      const dir = left < right ? -1 : left > right ? 1 : this.random() < 0.5 ? -1 : 1;
      l.vx = dir * 140;
      l.vy = 0;
      l.va = dir * 2.5;
      l.x += dir * 1.5;
      return;
    }
    this.settle(l, level);
  }

  // levelAt is the pile's height under a letter of width w at x.
  levelAt(x, w) {
    if (x < 0 || x + w > this.width) return Infinity; // walls never count as lower
    return this.levelUnder({ x, w });
  }

  settle(l, level) {
    l.phase = REST;
    l.t = 0;
    l.vx = 0;
    l.vy = 0;
    l.va = 0;
    // Keep a small tilt: a pile of perfectly level letters looks fake.
    l.a = Math.max(-0.35, Math.min(0.35, ((l.a + Math.PI) % (2 * Math.PI)) - Math.PI));
    this.raise(l, level);
    if (level > this.height * PILE_MAX) l.life = 0;
  }

  // levelUnder is the pile's height (px above the floor) under letter l.
  levelUnder(l) {
    const a = Math.max(0, Math.floor(l.x / BIN));
    const b = Math.min(this.heights.length - 1, Math.floor((l.x + l.w - 1) / BIN));
    let m = 0;
    for (let k = a; k <= b; k++) if (this.heights[k] > m) m = this.heights[k];
    return m;
  }

  raise(l, level) {
    const a = Math.max(0, Math.floor(l.x / BIN));
    const b = Math.min(this.heights.length - 1, Math.floor((l.x + l.w - 1) / BIN));
    const top = level + l.h * PACK;
    for (let k = a; k <= b; k++) if (this.heights[k] < top) this.heights[k] = top;
  }

  // rebuildPile recomputes the height map after letters left it; a letter
  // whose support is gone falls again, so piles crumble instead of floating.
  rebuildPile() {
    this.pileDirty = false;
    this.heights.fill(0);
    const resting = this.letters.filter((l) => l.on && (l.phase === REST || l.phase === FADE));
    resting.sort((p, q) => q.y + q.h - (p.y + p.h)); // lowest first
    for (const l of resting) {
      const level = this.levelUnder(l);
      const bottom = l.y + l.h;
      if (l.phase === REST && bottom < this.height - level - 2) {
        l.phase = FALL;
        l.t = 0;
        l.vy = 0;
        continue;
      }
      this.raise(l, this.height - bottom);
    }
  }
}
