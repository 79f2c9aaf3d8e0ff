// sky.js draws the physics world on one full-screen <canvas>. Each letter is
// drawn once into a small sprite (colour and soft shadow included) and then
// only copied with a rotation per frame, which stays smooth with hundreds of
// letters even where there is no GPU (measured: test/browser/frames.test.mjs;
// moving as many DOM nodes cost several times more per frame). The
// requestAnimationFrame loop runs only while letters are on screen and skips
// the redraw when nothing moved.

import { Phase, Sky, holdTimes, layoutText, placeBlock, popScale } from './physics.js';

const CAP = 700; // letters on screen at most; the oldest are recycled beyond
const SPRITE_CAP = 600; // cached letter images (about 20 KB each on a phone); cleared and redrawn lazily beyond
const PAD = 6; // px around a sprite's glyph for its shadow
const LABEL_FADE_MS = 500; // the sender's name fades as the letters start to fall
const MAX_LABELS = 40;

/** hueOf gives every nickname its own stable colour. */
export function hueOf(name) {
  let h = 2166136261;
  for (const c of String(name)) {
    h ^= c.codePointAt(0);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) % 360;
}

/**
 * Ink is how letters are coloured, read from the stylesheet's custom
 * properties so the dark theme can lighten them: lightness (%) of others'
 * letters, of your own, of name labels, and the shadow colour.
 */
const DEFAULT_INK = { letter: 46, own: 42, label: 48, shadow: 'rgba(58, 51, 80, 0.18)' };

/** letterColor is the fill of a letter of a sender's hue (own ones a shade apart). */
export function letterColor(hue, own, ink = DEFAULT_INK) {
  return `hsl(${hue} 72% ${own ? ink.own : ink.letter}%)`;
}

/**
 * SkyView draws onto `canvas` (aria-hidden: the readable copy of every
 * message is in the log). The canvas's data-letters attribute tells how many
 * letters are on screen.
 */
export class SkyView {
  constructor(canvas, win = window) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.win = win;
    this.sky = new Sky({ width: win.innerWidth, height: win.innerHeight, cap: CAP });
    const calm = win.matchMedia?.('(prefers-reduced-motion: reduce)');
    if (calm) {
      this.sky.calm = calm.matches;
      calm.addEventListener?.('change', (e) => {
        this.sky.calm = e.matches;
      });
    }
    this.sprites = new Map();
    this.widths = new Map();
    this.measureCtx = null;
    this.font = '';
    this.look = '';
    this.ink = DEFAULT_INK;
    this.lineHeight = 28;
    this.dpr = 1;
    this.running = false;
    this.last = 0;
    this.shown = -1;
    this.labels = []; // {text, x, y, hue, t, life}: who wrote a message, above it
    this.hadLabels = false;
    this.frame = (t) => this.tick(t);
    win.addEventListener('resize', () => {
      this.sky.resize(win.innerWidth, win.innerHeight);
      this.readFont();
      this.fit();
      this.wake();
    });
    // A switch between light and dark theme recolours every letter.
    win.matchMedia?.('(prefers-color-scheme: dark)').addEventListener?.('change', () => {
      this.readFont();
      for (const l of this.sky.letters) l.moved = true;
      this.wake();
    });
    this.readFont();
    this.fit();
  }

  // readFont takes the letters' font from the stylesheet (class "l"), so
  // layout and drawing follow the CSS, including the small-screen size.
  readFont() {
    const doc = this.win.document;
    const probe = doc.createElement('span');
    probe.className = 'l';
    probe.textContent = 'M';
    doc.body.append(probe);
    const cs = this.win.getComputedStyle(probe);
    const font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
    const num = (name, dflt) => parseFloat(cs.getPropertyValue(name)) || dflt;
    this.ink = {
      letter: num('--letter-l', DEFAULT_INK.letter),
      own: num('--letter-l-own', DEFAULT_INK.own),
      label: num('--label-l', DEFAULT_INK.label),
      shadow: cs.getPropertyValue('--letter-shadow').trim() || DEFAULT_INK.shadow,
    };
    const look = `${font}|${this.ink.letter}|${this.ink.own}|${this.ink.shadow}`;
    this.labelFont = `700 12px ${cs.fontFamily}`;
    this.lineHeight = Math.round(parseFloat(cs.lineHeight) || parseFloat(cs.fontSize) * 1.25 || 28);
    probe.remove();
    this.font = font;
    if (look !== this.look) {
      this.look = look;
      this.widths.clear();
      this.sprites.clear();
    }
  }

  // fit sizes the canvas to the screen in device pixels, at most 2x: sharper
  // is invisible on letters this size and only costs fill rate on phones.
  fit() {
    const dpr = Math.min(2, this.win.devicePixelRatio || 1);
    if (dpr !== this.dpr) this.sprites.clear();
    this.dpr = dpr;
    this.canvas.width = Math.round(this.win.innerWidth * dpr);
    this.canvas.height = Math.round(this.win.innerHeight * dpr);
    for (const l of this.sky.letters) l.moved = true;
  }

  measure(ch) {
    let w = this.widths.get(ch);
    if (w !== undefined) return w;
    if (!this.measureCtx) this.measureCtx = this.win.document.createElement('canvas').getContext('2d');
    this.measureCtx.font = this.font;
    w = this.measureCtx.measureText(ch).width;
    if (this.widths.size > 2000) this.widths.clear();
    this.widths.set(ch, w);
    return w;
  }

  /** drop shows text at the fractions (fx, fy) of the screen and lets it fall. */
  drop(text, fx, fy, { name, own = false }) {
    // Positions come from other people's browsers: anything odd lands mid-screen.
    fx = Number.isFinite(fx) ? Math.min(1, Math.max(0, fx)) : 0.5;
    fy = Number.isFinite(fy) ? Math.min(1, Math.max(0, fy)) : 0.5;
    const W = this.win.innerWidth;
    const H = this.win.innerHeight;
    // Wrap within the room right of where it was typed, so the text stays
    // where the sender put it; only a sliver of room moves it left.
    const room = W - fx * W - 12;
    const maxWidth = Math.max(Math.min(160, W - 16), Math.min(room, W * 0.9, 640));
    const { glyphs, width, height } = layoutText(text, (c) => this.measure(c), maxWidth, this.lineHeight);
    if (glyphs.length === 0) return;
    const { x, y } = placeBlock(fx, fy, width, height, W, H);
    const hue = hueOf(name);
    this.sky.spawn(glyphs, x, y, { hue, own, lineHeight: this.lineHeight });
    if (!own && name) {
      // Others' messages carry their author's name until they start to fall.
      if (this.labels.length >= MAX_LABELS) this.labels.shift();
      this.labels.push({ text: name, x: x + 2, y: Math.max(2, y - 4), hue, t: 0, life: holdTimes(glyphs.length, false).hold });
    }
    this.wake();
  }

  wake() {
    if (this.running) return;
    this.running = true;
    this.last = 0;
    this.win.requestAnimationFrame(this.frame);
  }

  tick(t) {
    const dt = this.last ? Math.min(0.1, (t - this.last) / 1000) : 1 / 60;
    this.last = t;
    this.sky.step(dt);
    for (const lb of this.labels) lb.t += dt * 1000;
    this.labels = this.labels.filter((lb) => lb.t < lb.life + LABEL_FADE_MS);
    this.paint();
    if (this.shown !== this.sky.active) {
      this.shown = this.sky.active;
      this.canvas.dataset.letters = String(this.shown);
    }
    if (this.sky.active > 0 || this.labels.length > 0) {
      this.win.requestAnimationFrame(this.frame);
    } else {
      this.running = false; // nothing on screen: no work, no battery drain
    }
  }

  paint() {
    let dirty = false;
    for (const l of this.sky.letters) {
      if (l.moved) {
        dirty = true;
        l.moved = false;
      }
    }
    if (!dirty && this.labels.length === 0 && !this.hadLabels) return; // a still picture needs no redraw
    this.hadLabels = this.labels.length > 0;
    const ctx = this.ctx;
    const dpr = this.dpr;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    for (const l of this.sky.letters) {
      if (!l.on) continue;
      let k = dpr;
      if (l.phase === Phase.HOLD) {
        if (l.t < l.appear) continue; // not typed out yet
        k *= popScale(l.t - l.appear);
      }
      const sp = this.sprite(l);
      const c = Math.cos(l.a) * k;
      const s = Math.sin(l.a) * k;
      // Rotate around a point a little below the letter's middle: it tips
      // over like a small solid thing rather than spinning on its centre.
      ctx.setTransform(c, s, -s, c, (l.x + l.w / 2) * dpr, (l.y + l.h * 0.6) * dpr);
      ctx.globalAlpha = l.alpha;
      ctx.drawImage(sp.img, -sp.ox, -sp.oy, sp.w, sp.h);
    }
    if (this.labels.length > 0) {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.font = this.labelFont;
      ctx.textBaseline = 'bottom';
      for (const lb of this.labels) {
        ctx.globalAlpha = Math.min(1, lb.t / 150, 1 - (lb.t - lb.life) / LABEL_FADE_MS);
        ctx.fillStyle = `hsl(${lb.hue} 45% ${this.ink.label}%)`;
        ctx.fillText(lb.text, lb.x, lb.y);
      }
    }
    ctx.globalAlpha = 1;
  }

  // sprite returns the pre-drawn image of a letter in its colour.
  sprite(l) {
    const key = `${l.hue}|${l.own ? 1 : 0}|${l.ch}`;
    let sp = this.sprites.get(key);
    if (sp) return sp;
    if (this.sprites.size >= SPRITE_CAP) this.sprites.clear();
    const w = Math.ceil(l.w) + PAD * 2;
    const h = Math.ceil(l.h) + PAD * 2;
    const img = this.win.document.createElement('canvas');
    img.width = Math.ceil(w * this.dpr);
    img.height = Math.ceil(h * this.dpr);
    const g = img.getContext('2d');
    g.scale(this.dpr, this.dpr);
    g.font = this.font;
    g.textBaseline = 'middle';
    g.shadowColor = this.ink.shadow;
    g.shadowBlur = 5;
    g.shadowOffsetY = 2;
    g.fillStyle = letterColor(l.hue, l.own, this.ink);
    g.fillText(l.ch, PAD, PAD + l.h / 2);
    sp = { img, w, h, ox: PAD + l.w / 2, oy: PAD + l.h * 0.6 };
    this.sprites.set(key, sp);
    return sp;
  }
}
