// chat.test.mjs: two people chat in Debian's Chromium through host nginx to
// the real chat server; then the server is drained and replaced the way a
// deploy does it (start green, switch nginx's upstream, reload, SIGTERM blue)
// while they keep typing. Nothing may be lost, doubled or shown as an error.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join as pathJoin } from 'node:path';
import {
  ARTIFACTS,
  buildChatServer,
  cleanup,
  getJSON,
  launchBrowser,
  sleep,
  startChat,
  startNginx,
  tempDir,
  waitFor,
  watchPage,
} from './lib/harness.mjs';
import { hueOf } from '../../static/js/sky.js';
import { inkTrack, join, logEntries, sendAt, typeInFocused, visibleProblems, waitForText } from './lib/page.mjs';

let dir;
let bin;
let handover;
let blue;
let green;
let nginx;
let browser;

before(async () => {
  await mkdir(ARTIFACTS, { recursive: true });
  dir = await tempDir();
  handover = pathJoin(dir, 'handover');
  await mkdir(handover, { mode: 0o700 });
  bin = await buildChatServer(dir);
  blue = await startChat({ bin, color: 'blue', handoverDir: handover });
  nginx = await startNginx({ dir, upstreamPort: blue.port });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await nginx?.stop();
  await blue?.stop();
  await green?.stop();
  if (dir) await cleanup(dir);
});

test('two people chat, and a blue/green swap mid-conversation goes unnoticed', { timeout: 120000 }, async () => {
  const room = `e2e-${Date.now().toString(36)}`;
  const url = `${nginx.url}/?room=${room}`;

  const desk = await browser.newContext({ viewport: { width: 1000, height: 640 } });
  const phone = await browser.newContext({
    viewport: { width: 390, height: 720 },
    isMobile: true,
    hasTouch: true,
    deviceScaleFactor: 2,
  });
  const alice = await desk.newPage();
  const bob = await phone.newPage();
  const problems = [];
  const watched = [watchPage(alice, 'alice'), watchPage(bob, 'bob')];

  // The page is served by nginx with the production CSP.
  const res = await alice.goto(url);
  assert.match(res.headers()['content-security-policy'] ?? '', /script-src 'self'/);

  await join(alice, url, 'alice');
  await join(bob, url, 'bob');
  await waitFor('both online', async () => (await alice.textContent('#online')) === '2 online');

  // A click opens a box right where it was clicked, focused; Escape closes
  // it, and an empty box gives way when you click elsewhere.
  await alice.mouse.click(700, 450);
  await alice.locator('.box input:focus').waitFor();
  await alice.keyboard.press('Escape');
  assert.equal(await alice.locator('.box').count(), 0, 'Escape closes the box');
  await alice.mouse.click(700, 450);
  await alice.locator('.box input:focus').waitFor();
  await alice.mouse.click(300, 250);
  await waitFor('the empty box to give way', async () => (await alice.locator('.box').count()) === 1);
  // Measure once its pop-in animation is over.
  await alice.waitForFunction(() => document.querySelector('.box')?.getAnimations({ subtree: true }).length === 0);
  const box = await alice.locator('.box input:focus').boundingBox();
  assert.ok(box, 'a focused box opened');
  assert.ok(box.x <= 300 && box.x + box.width >= 300 && box.y <= 250 && box.y + box.height >= 250,
    `box ${JSON.stringify(box)} should cover the click at 300,250`);
  await typeInFocused(alice, 'hello bob');
  const seen = await waitForText(bob, 'hello bob');
  assert.equal(seen.from, 'alice');

  // Its letters appear on bob's screen too, in alice's colour, and move
  // down frame after frame.
  const track = (await inkTrack(bob, hueOf('alice'), 180)).filter((f) => f.n > 0);
  assert.ok(track.length >= 60, `alice's letters should be on bob's screen (seen in ${track.length} of 180 frames)`);
  let downs = 0;
  for (let i = 1; i < track.length; i++) if (track[i].y > track[i - 1].y + 0.5) downs++;
  assert.ok(downs >= 10, `the letters should move down over many frames (moved down in ${downs})`);
  assert.ok(Math.max(...track.map((f) => f.y)) > track[0].y + 100, `and fall a good distance: ${track.map((f) => Math.round(f.y))}`);
  await bob.screenshot({ path: pathJoin(ARTIFACTS, 'chat-1-bob-letters-falling.png') });

  // Bob answers from his phone with a tap.
  await sendAt(bob, 80, 420, 'hi alice!', { tap: true });
  await waitForText(alice, 'hi alice!');
  await alice.screenshot({ path: pathJoin(ARTIFACTS, 'chat-2-alice.png') });

  // Watch for anything visible going wrong during the swap.
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      for (const [p, who] of [[alice, 'alice'], [bob, 'bob']]) {
        for (const v of await visibleProblems(p).catch(() => [])) problems.push(`${who}: ${v}`);
      }
      await sleep(100);
    }
  })();

  // The deploy: green starts beside blue with the same handover folder ...
  green = await startChat({ bin, color: 'green', handoverDir: handover });
  await typeInFocused(alice, 'while green boots');
  // ... nginx switches to it ...
  await nginx.switchTo(green.port);
  await waitFor('nginx serves green', async () => (await getJSON(`${nginx.url}/healthz`)).body?.color === 'green');
  await typeInFocused(bob, 'after the switch');
  // ... and blue drains: its sockets close with 1012 and the pages resume on green.
  const term = Date.now();
  blue.proc.kill('SIGTERM');
  await typeInFocused(alice, 'during the drain');
  await typeInFocused(bob, 'me too');
  await waitFor('both pages on green', async () => {
    for (const p of [alice, bob]) if ((await p.getAttribute('#dot', 'data-color')) !== 'green') return false;
    return true;
  }, { timeout: 20000, every: 20 });
  console.log(`swap: both pages resumed on green ${Date.now() - term} ms after blue's SIGTERM`);
  const exit = await Promise.race([blue.exited, sleep(20000).then(() => null)]);
  assert.ok(exit, 'blue exits after draining');
  assert.equal(exit.code, 0, `blue exit: ${JSON.stringify(exit)}\n${blue.logs().slice(-3000)}`);
  await typeInFocused(alice, 'on green now');
  await typeInFocused(bob, 'still here');

  const want = [
    ['alice', 'hello bob'],
    ['bob', 'hi alice!'],
    ['alice', 'while green boots'],
    ['bob', 'after the switch'],
    ['alice', 'during the drain'],
    ['bob', 'me too'],
    ['alice', 'on green now'],
    ['bob', 'still here'],
  ];
  for (const [p, who] of [[alice, 'alice'], [bob, 'bob']]) {
    await waitFor(`${who} sees all ${want.length} messages, acked`, async () => {
      const es = await logEntries(p);
      return es.length >= want.length && es.every((e) => e.seq !== null);
    }, { timeout: 20000 });
  }
  await sleep(500); // a late duplicate would show up here
  watching = false;
  await watcher;

  for (const [p, who] of [[alice, 'alice'], [bob, 'bob']]) {
    const es = await logEntries(p);
    const got = es.map((e) => [e.from, e.text]);
    // Exactly these, each once. Messages typed in the same moment by two
    // people may interleave either way, so compare as sets, then check seqs.
    assert.equal(es.length, want.length, `${who}'s log: ${JSON.stringify(got)}`);
    assert.deepEqual([...got].map(String).sort(), want.map(String).sort(), `${who}'s log`);
    const seqs = es.map((e) => e.seq);
    for (let i = 1; i < seqs.length; i++) {
      assert.equal(seqs[i], seqs[i - 1] + 1, `${who}: seqs must be contiguous and in order: ${seqs}`);
    }
    assert.equal(await p.getAttribute('#dot', 'data-color'), 'green', `${who} ends up on green`);
  }
  // Both see the same history in the same order.
  assert.deepEqual(
    (await logEntries(alice)).map((e) => [e.seq, e.text]),
    (await logEntries(bob)).map((e) => [e.seq, e.text]),
  );

  await alice.screenshot({ path: pathJoin(ARTIFACTS, 'chat-3-alice-after-swap.png') });
  await bob.screenshot({ path: pathJoin(ARTIFACTS, 'chat-4-bob-after-swap.png') });
  assert.deepEqual([...problems, ...watched.flat()], [], 'nothing visible went wrong');
  assert.equal((await getJSON(`http://127.0.0.1:${green.port}/healthz`)).status, 200);

  // A reload gets the room's history into the log (in order, once) without
  // raining it down again; the name is remembered.
  await alice.reload();
  await waitFor('alice back after a reload', async () => (await alice.getAttribute('html', 'data-status')) === 'online');
  assert.equal(await alice.locator('#namecard').isVisible(), false, 'the name is asked only once');
  await waitFor('history in the log', async () => (await logEntries(alice)).length === want.length);
  assert.deepEqual(
    (await logEntries(alice)).map((e) => [e.seq, e.from, e.text]),
    (await logEntries(bob)).map((e) => [e.seq, e.from, e.text]),
  );
  const still = await inkTrack(alice, null, 10);
  assert.ok(still.every((f) => f.n === 0), 'history is not dropped on screen again');

  // The other side of "no visible error": a real outage does show, after 2 s.
  const lost = Date.now();
  green.proc.kill('SIGKILL');
  await waitFor('the reconnecting hint', async () => (await visibleProblems(alice)).includes('#hint: Reconnecting…'));
  const shownAfter = Date.now() - lost;
  assert.ok(shownAfter >= 1900, `the hint waited 2 s (${shownAfter} ms)`);
  assert.equal(await alice.getAttribute('html', 'data-status'), 'reconnecting');
  await alice.screenshot({ path: pathJoin(ARTIFACTS, 'chat-5-alice-outage.png') });
  await desk.close();
  await phone.close();
});
