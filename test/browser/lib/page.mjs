// page.mjs: helpers that drive the chat page the way a person does, and read
// back what the page shows (the message log, the falling letters).

import { waitFor } from './harness.mjs';

/** join opens the page, picks a name in the name card and waits for the room. */
export async function join(page, url, name) {
  await page.goto(url);
  await page.locator('#nameinput').waitFor({ state: 'visible' });
  await page.locator('#nameinput').fill(name);
  await page.keyboard.press('Enter');
  await waitFor(`${name} online`, async () => (await page.getAttribute('html', 'data-status')) === 'online');
}

/** logEntries reads the message log: [{from, text, seq, cid, pending}]. */
export function logEntries(page) {
  return page.$$eval('#log li', (lis) =>
    lis.map((li) => ({
      from: li.querySelector('b')?.textContent ?? '',
      text: li.querySelector('span')?.textContent ?? '',
      seq: li.dataset.seq === undefined ? null : Number(li.dataset.seq),
      cid: li.dataset.cid ?? '',
      pending: li.classList.contains('pending'),
    })),
  );
}

/** waitForText waits until the page's log shows text (acked, with a seq). */
export async function waitForText(page, text, timeout = 15000) {
  return waitFor(
    `"${text}" in the log`,
    async () => (await logEntries(page)).find((e) => e.text === text && e.seq !== null),
    { timeout },
  );
}

/** sendAt clicks (or taps) at x, y and types text + Enter into the box that opens. */
export async function sendAt(page, x, y, text, { tap = false } = {}) {
  if (tap) await page.touchscreen.tap(x, y);
  else await page.mouse.click(x, y);
  await page.locator('.box input:focus').waitFor();
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

/** typeInFocused types text + Enter into the box that has focus. */
export async function typeInFocused(page, text) {
  await page.locator('.box input:focus').waitFor();
  await page.keyboard.type(text);
  await page.keyboard.press('Enter');
}

/**
 * inkTrack samples the letter canvas on `frames` successive animation frames
 * and returns, per frame, how many pixels show letters of the given hue (a
 * sender's colour; null for any colour) and their mean height in CSS px.
 * The page draws letters on a canvas, so this is how a test sees them move.
 */
export function inkTrack(page, hue, frames) {
  return page.evaluate(
    ([hue, frames]) =>
      new Promise((resolve) => {
        const canvas = document.getElementById('sky');
        const ctx = canvas.getContext('2d');
        const dpr = canvas.width / innerWidth;
        const out = [];
        const hueOf = (r, g, b) => {
          const max = Math.max(r, g, b);
          const min = Math.min(r, g, b);
          if (max - min < 40) return -1; // grey: shadow or antialiasing
          let h;
          if (max === r) h = ((g - b) / (max - min)) % 6;
          else if (max === g) h = (b - r) / (max - min) + 2;
          else h = (r - g) / (max - min) + 4;
          return (h * 60 + 360) % 360;
        };
        const sample = () => {
          const { data, width, height } = ctx.getImageData(0, 0, canvas.width, canvas.height);
          let n = 0;
          let sy = 0;
          for (let y = 0; y < height; y += 2) {
            for (let x = 0; x < width; x += 2) {
              const i = (y * width + x) * 4;
              if (data[i + 3] < 160) continue;
              const h = hueOf(data[i], data[i + 1], data[i + 2]);
              if (h < 0) continue;
              if (hue !== null && Math.min(Math.abs(h - hue), 360 - Math.abs(h - hue)) > 14) continue;
              n++;
              sy += y / dpr;
            }
          }
          out.push({ n, y: n ? sy / n : null });
          if (out.length >= frames) resolve(out);
          else requestAnimationFrame(sample);
        };
        requestAnimationFrame(sample);
      }),
    [hue, frames],
  );
}

/** visibleProblems reports the hint or an error toast when on screen. */
export function visibleProblems(page) {
  return page.evaluate(() => {
    const out = [];
    for (const id of ['hint', 'toast']) {
      const el = document.getElementById(id);
      if (el && !el.hidden) out.push(`#${id}: ${el.textContent}`);
    }
    const st = document.documentElement.dataset.status;
    if (st !== 'online') out.push(`status ${st}`);
    return out;
  });
}
