// move.test.mjs: a deploy moves the page's live WebSocket to the new color
// (protocol v1.1). nginx reaches the colors over unix sockets, as the deploy
// agent lays it out; blue drains while green runs. The page's socket must
// never fire `close`, and a message typed during the move arrives once, on
// both pages.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join as pathJoin } from 'node:path';
import { buildChatServer, cleanup, getJSON, launchBrowser, startChat, startNginx, tempDir, waitFor, watchPage } from './lib/harness.mjs';
import { join, logEntries, sendAt, typeInFocused, waitForText } from './lib/page.mjs';

const exec = promisify(execFile);

let dir;
let bin;
let blue;
let green;
let nginx;
let browser;

// pointAt writes the upstream to the color's unix socket and reloads nginx,
// as the deploy agent's switch does.
async function pointAt(sock) {
  const prefix = pathJoin(dir, 'nginx');
  await writeFile(pathJoin(prefix, 'upstream.conf'), `upstream chat {\n    server unix:${sock};\n    keepalive 8;\n}\n`);
  const args = ['-p', prefix, '-c', pathJoin(prefix, 'nginx.conf')];
  await exec('nginx', [...args, '-t']);
  await exec('nginx', [...args, '-s', 'reload']);
}

before(async () => {
  dir = await tempDir();
  const handover = pathJoin(dir, 'handover');
  await mkdir(handover, { mode: 0o700 });
  bin = await buildChatServer(dir);
  const sock = (color) => pathJoin(dir, `${color}.sock`);
  blue = await startChat({ bin, color: 'blue', handoverDir: handover, env: { CHAT_SOCKET: sock('blue') } });
  blue.sock = sock('blue');
  nginx = await startNginx({ dir, upstreamPort: blue.port });
  await pointAt(blue.sock);
  green = { sock: sock('green'), start: () => startChat({ bin, color: 'green', handoverDir: handover, env: { CHAT_SOCKET: sock('green') } }) };
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await nginx?.stop();
  await blue?.stop();
  await green?.stop?.();
  if (dir) await cleanup(dir);
});

test('a deploy moves the page’s socket: no close event, a message typed during the move arrives once', { timeout: 120000 }, async () => {
  const room = `mv-${Date.now().toString(36)}`;
  const url = `${nginx.url}/?room=${room}`;
  const pages = [];
  for (const name of ['alice', 'bob']) {
    const ctx = await browser.newContext({ viewport: { width: 900, height: 600 } });
    // Count every close event of every WebSocket the page opens.
    await ctx.addInitScript(() => {
      const Native = window.WebSocket;
      window.__wsOpened = 0;
      window.__wsClosed = 0;
      window.WebSocket = class extends Native {
        constructor(...args) {
          super(...args);
          window.__wsOpened++;
          this.addEventListener('close', () => window.__wsClosed++);
        }
      };
    });
    const page = await ctx.newPage();
    watchPage(page, name);
    await join(page, url, name);
    pages.push(page);
  }
  const [alice, bob] = pages;
  await waitFor('both online', async () => (await alice.textContent('#online')) === '2 online');
  await sendAt(alice, 300, 300, 'before the deploy');
  await waitForText(bob, 'before the deploy');
  assert.equal((await getJSON(`${nginx.url}/healthz`)).body?.color, 'blue');

  // The deploy: green starts beside blue, nginx switches to green's socket,
  // blue drains and moves the open sockets to green.
  const g = await green.start();
  Object.assign(green, g);
  await pointAt(green.sock);
  await waitFor('nginx serves green', async () => (await getJSON(`${nginx.url}/healthz`)).body?.color === 'green');
  await alice.mouse.click(500, 200);
  await alice.locator('.box input:focus').waitFor();
  const term = Date.now();
  blue.proc.kill('SIGTERM');
  await typeInFocused(alice, 'typed during the move');
  const exit = await blue.exited;
  console.log(`move: blue exited ${Date.now() - term} ms after SIGTERM (${JSON.stringify(exit)})`);
  assert.equal(exit.code, 0, `blue exits 0 after the drain:\n${blue.logs().slice(-2000)}`);
  assert.match(blue.logs(), /"moved connections".*"to":"green".*"moved":2/, 'blue moved both pages to green');

  await typeInFocused(alice, 'after the move');
  for (const [p, who] of [[alice, 'alice'], [bob, 'bob']]) {
    await waitForText(p, 'after the move');
    const es = await logEntries(p);
    const during = es.filter((e) => e.text === 'typed during the move');
    assert.equal(during.length, 1, `${who} shows the message typed during the move once: ${JSON.stringify(es)}`);
    const seqs = es.map((e) => e.seq);
    assert.deepEqual(seqs, [1, 2, 3], `${who}'s log runs 1..3 with no gap or duplicate: ${JSON.stringify(es)}`);
    const ws = await p.evaluate(() => ({ opened: window.__wsOpened, closed: window.__wsClosed }));
    assert.deepEqual(ws, { opened: 1, closed: 0 }, `${who}'s page opened one socket and saw no close event`);
    assert.equal(await p.getAttribute('html', 'data-status'), 'online', `${who} stays online`);
  }
});
