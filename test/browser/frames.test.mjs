// frames.test.mjs: how smooth the page stays with ~300 letters falling at
// once. It prints the measured frame times; it does not assert on them (a
// shared CI machine is no laptop), only that the letters really were there.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join as pathJoin } from 'node:path';
import { ARTIFACTS, cleanup, launchBrowser, startOneColor, tempDir, waitFor, watchPage } from './lib/harness.mjs';
import { inkTrack, join, waitForText } from './lib/page.mjs';

let dir;
let chat;
let browser;

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  dir = await tempDir();
  chat = await startOneColor(dir);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await chat?.stop();
  if (dir) await cleanup(dir);
});

test('frame time with ~300 falling letters', { timeout: 90000 }, async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await ctx.newPage();
  const problems = watchPage(page, 'page');
  await join(page, `http://127.0.0.1:${chat.port}/?room=frames`, 'fps');

  // Six messages of 50 letters, typed at different spots (under the server's
  // limit of 10 sends per 2 s).
  const spots = [[80, 120], [640, 140], [200, 300], [760, 320], [120, 480], [700, 500]];
  const abc = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  const texts = spots.map((_, i) => `${abc.slice(i * 7)}${abc}`.slice(0, 50));
  for (let i = 0; i < spots.length; i++) {
    await page.mouse.click(...spots[i]);
    await page.locator('.box input:focus').fill(texts[i]);
    await page.keyboard.press('Enter');
  }
  const letters = 300;
  await waitFor('300 letters on screen', async () => Number(await page.getAttribute('#sky', 'data-letters')) === letters, {
    timeout: 5000,
  });

  const inkBefore = (await inkTrack(page, null, 1))[0];
  // Main-thread time, split by kind, from Chromium's own counters.
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Performance.enable');
  const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((x) => [x.name, x.value]));
  const m0 = await metrics();
  const m = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const gaps = [];
        let last = 0;
        const start = performance.now();
        const frame = (t) => {
          if (last) gaps.push(t - last);
          last = t;
          if (t - start < 3000) requestAnimationFrame(frame);
          else resolve({ gaps });
        };
        requestAnimationFrame(frame);
      }),
  );
  const m1 = await metrics();
  const perFrame = (k) => (((m1[k] - m0[k]) * 1000) / Math.max(1, m.gaps.length)).toFixed(2);
  const sorted = [...m.gaps].sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  const mean = m.gaps.reduce((s, g) => s + g, 0) / m.gaps.length;
  const long = m.gaps.filter((g) => g > 1000 / 60 * 1.5).length;
  await page.screenshot({ path: pathJoin(ARTIFACTS, 'frames-300-letters.png') });
  console.log(
    `frame-time: ${letters} letters, ${m.gaps.length} frames in 3 s, mean ${mean.toFixed(2)} ms ` +
      `(${(1000 / mean).toFixed(1)} fps), p50 ${q(0.5).toFixed(2)} ms, p95 ${q(0.95).toFixed(2)} ms, ` +
      `max ${sorted.at(-1).toFixed(2)} ms, ${long} frames over 25 ms; main thread per frame: ` +
      `script ${perFrame('ScriptDuration')} ms, style ${perFrame('RecalcStyleDuration')} ms, ` +
      `layout ${perFrame('LayoutDuration')} ms, all tasks ${perFrame('TaskDuration')} ms`,
  );
  assert.ok(m.gaps.length > 0, 'the animation loop ran');
  const inkAfter = (await inkTrack(page, null, 1))[0];
  assert.ok(inkAfter.y > inkBefore.y + 50, `the letters fell during the measurement (ink at ${inkBefore.y} then ${inkAfter.y})`);
  await waitForText(page, texts.at(-1));
  assert.deepEqual(problems, []);
  await ctx.close();
});
