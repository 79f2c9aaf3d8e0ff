// boxes.js manages the input boxes: a click or tap on the page opens one right
// there, focused. Enter sends (the box stays for the next line), Escape closes
// it, and an empty box closes when you go elsewhere, so clicking around feels
// like moving your pen; boxes holding a draft stay until used or closed.

const MAX_BOXES = 6;
// Empty boxes close a moment after losing focus, not instantly, so a tap
// that only moves focus between boxes does not make them flicker.
const CLOSE_EMPTY_MS = 150;

/**
 * BoxLayer puts boxes into root. onSend(text, fx, fy) is called with the
 * text and the fractions of the screen where its first letter sits; it
 * returns true when the text was accepted (then the box is cleared).
 */
export class BoxLayer {
  constructor(root, { onSend, label, maxLength = 280, win = window }) {
    this.root = root;
    this.onSend = onSend;
    this.label = label;
    this.maxLength = maxLength;
    this.win = win;
    this.boxes = [];
    this.name = '';
    // On phones the on-screen keyboard shrinks the page: boxes move up to
    // stay visible (and their text position is measured anew).
    win.addEventListener('resize', () => this.refit());
  }

  refit() {
    for (const b of this.boxes) this.replace(b);
  }

  // replace places a box again from where it is now (layout position: the
  // pop-in animation's scale must not count).
  replace(b) {
    this.place(b, b.box.offsetLeft + this.inset(b.input), b.box.offsetTop + (b.input.offsetHeight || 44) / 2);
  }

  /** setName shows the sender's name on every box. */
  setName(name) {
    this.name = name;
    for (const b of this.boxes) b.tag.textContent = name;
  }

  /** open creates a focused box whose text starts at (x, y) in px. */
  open(x, y) {
    const doc = this.win.document;
    const box = doc.createElement('div');
    box.className = 'box';
    const tag = doc.createElement('span');
    tag.className = 'who';
    tag.textContent = this.name;
    const input = doc.createElement('input');
    input.type = 'text';
    input.maxLength = this.maxLength;
    input.autocomplete = 'off';
    input.spellcheck = true;
    input.enterKeyHint = 'send';
    input.setAttribute('aria-label', this.label);
    box.append(tag, input);
    this.root.append(box);
    const b = { box, tag, input, x: 0, y: 0 };
    this.place(b, x, y);
    this.boxes.push(b);
    if (this.boxes.length > MAX_BOXES) this.close(this.boxes[0]);

    input.addEventListener('keydown', (e) => {
      if (e.isComposing || e.keyCode === 229) return; // IME still composing
      if (e.key === 'Enter') {
        e.preventDefault();
        this.submit(b);
      } else if (e.key === 'Escape') {
        e.preventDefault();
        this.close(b);
      }
    });
    input.addEventListener('blur', () => {
      this.win.setTimeout(() => {
        if (input.value.trim() === '' && this.win.document.activeElement !== input) this.close(b);
      }, CLOSE_EMPTY_MS);
    });
    input.addEventListener('input', () => {
      box.classList.toggle('has-text', input.value !== '');
      // A box growing with its text slides left rather than off the screen.
      if (box.offsetLeft + box.offsetWidth > this.win.innerWidth - 4) this.replace(b);
    });
    // preventScroll: the page itself never scrolls; the phone's own panning
    // to the focused field is kept.
    input.focus({ preventScroll: true });
    return b;
  }

  // place positions a box so the caret starts at (x, y), kept on screen.
  place(b, x, y) {
    const W = this.win.innerWidth;
    const H = this.win.innerHeight;
    const style = this.win.getComputedStyle(b.input);
    const padL = this.inset(b.input);
    const inputH = b.input.offsetHeight || 44;
    const boxW = b.box.offsetWidth || 240;
    const left = Math.max(4, Math.min(x - padL, W - boxW - 4));
    const top = Math.max(4, Math.min(y - inputH / 2, H - inputH - 4));
    b.box.style.left = `${left}px`;
    b.box.style.top = `${top}px`;
    // Where the text's top-left sits; the letters of the message start here.
    const lh = parseFloat(style.lineHeight) || inputH * 0.6;
    b.x = (left + padL) / W;
    b.y = (top + (inputH - lh) / 2) / H;
  }

  // inset is the distance from a box's left edge to its text.
  inset(input) {
    const style = this.win.getComputedStyle(input);
    return (parseFloat(style.paddingLeft) || 0) + (parseFloat(style.borderLeftWidth) || 0);
  }

  submit(b) {
    const text = b.input.value;
    if (text.trim() === '') return;
    if (this.onSend(text, b.x, b.y)) {
      b.input.value = '';
      b.box.classList.remove('has-text');
      b.box.classList.remove('sent');
      // Restart the little "whoosh" animation on the box.
      void b.box.offsetWidth;
      b.box.classList.add('sent');
    }
  }

  close(b) {
    const i = this.boxes.indexOf(b);
    if (i < 0) return;
    this.boxes.splice(i, 1);
    b.box.remove();
  }

  /** closeEmpty removes boxes without a draft (before a new one opens). */
  closeEmpty() {
    for (const b of this.boxes.slice()) {
      if (b.input.value.trim() === '') this.close(b);
    }
  }

  /** contains reports whether a DOM node belongs to a box. */
  contains(node) {
    return this.boxes.some((b) => b.box.contains(node));
  }
}
